// Opens /docs (Swagger UI) and /redoc (Redoc) of a real parley server in
// Debian's chromium with every host but the server unreachable, and checks
// that both render every operation of /openapi.json, that nothing was asked
// of another host, and that the page hit no script error or
// Content-Security-Policy violation. Leaves a screenshot of each page.
//
//   node docs_viewers.mjs PARLEY_BINARY SCREENSHOT_DIR   (see harness.mjs)
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browserTest, startServer } from "./harness.mjs";

const { parleyBinary, screenshotDir, usage, fail, problems, launch, finish } =
  await browserTest("docs-viewers", "docs_viewers.mjs");

/// Opens `path` in a fresh page, waits for `ready` to hold, and records what
/// the page asked of other hosts and every error it reported.
async function visit(context, baseUrl, path, ready, screenshot) {
  const page = await context.newPage();
  const messages = [];
  page.on("console", (m) => {
    if (m.type() === "error" || /Content Security Policy/i.test(m.text())) messages.push(m.text());
  });
  page.on("pageerror", (e) => messages.push(`uncaught: ${e.message}`));
  page.on("response", (r) => {
    // The browser asks for /favicon.ico by itself; Parley has none.
    if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) {
      messages.push(`${r.status()} for ${r.url()}`);
    }
  });
  const answer = await page.goto(baseUrl + path, { waitUntil: "load" });
  if (answer.status() !== 200) fail(`${path}: status ${answer.status()}`);
  try {
    await ready(page);
  } catch (e) {
    fail(`${path}: did not render: ${e.message.split("\n")[0]}`);
  }
  await page.screenshot({ path: join(screenshotDir, screenshot) });
  for (const m of messages) {
    // Redoc's attribution shows a logo from its CDN, which the policy blocks
    // before any request is made; Redoc then hides the image by itself.
    if (!m.includes("'https://cdn.redoc.ly/redoc/logo-mini.svg'")) fail(`${path}: ${m}`);
  }
  await page.close();
}

const dir = await mkdtemp(join(tmpdir(), "parley-docs-viewers-"));
await mkdir(screenshotDir, { recursive: true });
const { server, baseUrl } = await startServer(parleyBinary, dir).catch((e) => usage(e.message));
// The network ends at this machine: no name resolves but the server's.
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const elsewhere = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1") return route.continue();
    elsewhere.push(url.href);
    return route.abort("internetdisconnected");
  });
  const document = await (await context.request.get(`${baseUrl}/openapi.json`)).json();
  const operations = Object.values(document.paths).flatMap((item) =>
    Object.values(item).flatMap((op) => (op.operationId ? [op.operationId] : [])),
  );
  const tags = [...new Set(Object.values(document.paths).flatMap((item) =>
    Object.values(item).flatMap((op) => op.tags || [])))];
  /// Each operation of the document shown, and nothing else (an operation
  /// with two tags is shown twice, under each).
  const compare = (path, shownIds) => {
    const shown = new Set(shownIds);
    for (const id of operations) if (!shown.has(id)) fail(`${path}: operation ${id} not shown`);
    for (const id of shown) if (!operations.includes(id)) fail(`${path}: shows ${id}, not in the document`);
  };
  const timeout = 20000;

  await visit(
    context,
    baseUrl,
    "/docs",
    async (page) => {
      await page.waitForSelector(".information-container .title", { timeout });
      const title = await page.textContent(".information-container .title");
      if (!title.includes(document.info.title)) fail(`/docs: title is "${title}"`);
      const ids = await page.$$eval(".opblock", (blocks) => blocks.map((b) => b.id));
      // Swagger UI names each block operations-{tag}-{operationId}.
      compare("/docs", ids.map((id) => id.replace(new RegExp(`^operations-(${tags.join("|")})-`), "")));
      // The screenshot shows the list of operations, not only the introduction.
      await page.locator(".opblock-tag-section").first().scrollIntoViewIfNeeded();
    },
    "docs.png",
  );

  await visit(
    context,
    baseUrl,
    "/redoc",
    async (page) => {
      await page.waitForSelector("h1", { timeout });
      const title = await page.textContent("h1");
      if (!title.includes(document.info.title)) fail(`/redoc: title is "${title}"`);
      // Redoc names each menu entry tag/{tag}/operation/{operationId}.
      const ids = await page.$$eval("[data-item-id*='/operation/']", (items) =>
        items.map((i) => i.getAttribute("data-item-id").replace(/^.*\/operation\//, "")),
      );
      compare("/redoc", ids);
    },
    "redoc.png",
  );

  for (const url of elsewhere) fail(`asked another host: ${url}`);
  if (problems.length === 0) {
    console.log(`docs-viewers: /docs and /redoc rendered all ${operations.length} operations with no other host; screenshots in ${screenshotDir}`);
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
  await rm(dir, { recursive: true, force: true });
}
finish();
