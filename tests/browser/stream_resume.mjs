// A browser's EventSource picks a reply up again by itself after the
// connection drops: Debian's chromium opens a page that follows a running
// exchange (GET …/stream), a proxy in front of a real parley server cuts the
// connection after two deltas, and the browser reconnects with
// Last-Event-ID. The page must end with exactly the stored reply, every
// event once. Leaves a screenshot of the page.
//
//   node stream_resume.mjs PARLEY_BINARY SCREENSHOT_DIR   (see harness.mjs)
import { createServer, request } from "node:http";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browserTest, startServer } from "./harness.mjs";

const { parleyBinary, screenshotDir, usage, fail, problems, launch, finish } =
  await browserTest("stream-resume", "stream_resume.mjs");
const user = { "X-User-Id": "browser-resume" };

/// Parley with `echo` writing a word every 150 ms: the reply is still being
/// written when the page joins.
async function startSlowServer(dir) {
  const config = join(dir, "parley.toml");
  await writeFile(config, '[[providers]]\nname = "builtin"\nkind = "builtin"\nitl_ms = 150\n');
  return startServer(parleyBinary, dir, ["--config", config]);
}

/// The page: follows the conversation's running exchange with an EventSource
/// and writes what it gets into the document.
const page = `<!doctype html><meta charset="utf-8"><title>resume</title>
<body style="font: 16px sans-serif; margin: 2em">
<h1>EventSource resume</h1><p id="status">connecting</p><pre id="text" style="white-space: pre-wrap"></pre>
<script>
const id = new URLSearchParams(location.search).get("conversation");
window.seen = []; window.drops = 0; window.finished = null;
const es = new EventSource("/v1/conversations/" + id + "/stream");
for (const name of ["message", "delta", "done", "error"]) {
  es.addEventListener(name, (e) => {
    if (!e.data) return;  // a connection error, not an error event
    const data = JSON.parse(e.data);
    window.seen.push({ name, id: e.lastEventId, data });
    if (name === "delta") document.getElementById("text").textContent += data.content;
    if (name === "done" || name === "error") {
      es.close();
      window.finished = name;
      document.getElementById("status").textContent = name + " after " + window.drops + " drop(s)";
    }
  });
}
es.onerror = () => {
  window.drops++;
  window.seen.push({ name: "drop" });
  document.getElementById("status").textContent = "reconnecting";
};
</script>`;

/// Serves the page and passes /v1 to parley; cuts the first stream after two deltas.
function startFront(baseUrl) {
  const streams = [];
  const front = createServer((req, res) => {
    if (!req.url.startsWith("/v1/")) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(page);
      return;
    }
    const isStream = req.url.includes("/stream");
    const number = isStream ? streams.push({ lastEventId: req.headers["last-event-id"] ?? null }) : 0;
    const upstream = request(baseUrl + req.url, { method: req.method, headers: { ...req.headers, ...user } },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        let deltas = 0;
        answer.on("data", (chunk) => {
          res.write(chunk);
          deltas += (chunk.toString().match(/event: delta/g) || []).length;
          if (number === 1 && deltas >= 2) {
            // The server's side of the connection goes away mid-reply.
            answer.destroy();
            res.socket.destroy();
          }
        });
        answer.on("end", () => res.end());
      });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve) => front.listen(0, "127.0.0.1", () =>
    resolve({ front, frontUrl: `http://127.0.0.1:${front.address().port}`, streams })));
}

async function api(baseUrl, method, path, body) {
  const answer = await fetch(baseUrl + path, {
    method, headers: { ...user, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: answer.status, body: answer.status === 204 ? null : await answer.json() };
}

const dir = await mkdtemp(join(tmpdir(), "parley-stream-resume-"));
await mkdir(screenshotDir, { recursive: true });
const { server, baseUrl } = await startSlowServer(dir).catch((e) => usage(e.message));
const { front, frontUrl, streams } = await startFront(baseUrl);
const browser = await launch();
try {
  const conversation = (await api(baseUrl, "POST", "/v1/conversations", {})).body.id;
  const words = Array.from({ length: 30 }, (_, i) => `w${i + 1}`).join(" ");
  // Someone else's streamed send, read to its end in the background.
  const sending = fetch(`${baseUrl}/v1/conversations/${conversation}/messages`, {
    method: "POST", headers: { ...user, "Content-Type": "application/json" },
    body: JSON.stringify({ content: words, stream: true }),
  }).then((r) => r.text());
  let running = null;
  for (let i = 0; i < 100 && !running; ++i) {
    running = (await api(baseUrl, "GET", `/v1/conversations/${conversation}`)).body.running;
    if (!running) await new Promise((r) => setTimeout(r, 20));
  }
  if (!running) throw new Error("the exchange never showed as running");

  const context = await browser.newContext({ viewport: { width: 900, height: 500 } });
  const tab = await context.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(e.message));
  await tab.goto(`${frontUrl}/?conversation=${conversation}`);
  await tab.waitForFunction(() => window.finished !== null, null, { timeout: 30000 });
  await tab.screenshot({ path: join(screenshotDir, "stream-resume.png") });
  const timeline = await tab.evaluate(() => window.seen);
  const seen = timeline.filter((e) => e.name !== "drop");
  const drops = await tab.evaluate(() => window.drops);
  await sending;

  const stored = (await api(baseUrl, "GET", `/v1/conversations/${conversation}/messages`)).body.data;
  const reply = stored.find((m) => m.role === "assistant");
  const done = seen.at(-1);
  if (done?.name !== "done") fail(`the page ended with ${JSON.stringify(done)}`);
  if (drops < 1) fail("the connection never dropped");
  if (streams.length < 2) fail(`the browser asked for the stream ${streams.length} time(s)`);
  if (streams[0]?.lastEventId !== null) fail("the first request named an event already");
  const beforeDrop = timeline[timeline.findIndex((e) => e.name === "drop") - 1];
  if (streams[1]?.lastEventId !== beforeDrop?.id) {
    fail(`the reconnect sent Last-Event-ID ${streams[1]?.lastEventId}, the last event seen was ${beforeDrop?.id}`);
  }
  const numbers = seen.map((e) => Number(e.id.split(":").at(-1)));
  if (!seen.every((e) => e.id.startsWith(running.run_id + ":"))) fail("an event of another run");
  for (let i = 1; i < numbers.length; ++i) {
    if (numbers[i] <= numbers[i - 1]) fail(`event ${numbers[i]} after ${numbers[i - 1]}: repeated or out of order`);
  }
  const text = seen.filter((e) => e.name === "delta").map((e) => e.data.content).join("");
  if (text !== `Echo: ${words}`) fail(`the page assembled "${text}"`);
  if (!reply || reply.content !== text || done?.data?.content !== text) {
    fail(`stored "${reply?.content}", done "${done?.data?.content}", page "${text}"`);
  }
  const shown = await tab.textContent("#text");
  if (shown !== text) fail(`the page shows "${shown}"`);
  for (const e of errors) fail(`uncaught: ${e}`);
  if (problems.length > 0) {
    fail(`what the page saw: ${JSON.stringify(timeline.map((e) => [e.name, e.id]))}; ` +
      `the stream requests: ${JSON.stringify(streams)}`);
  }
  if (problems.length === 0) {
    console.log(`stream-resume: the browser reconnected ${streams.length - 1} time(s) with Last-Event-ID and ` +
      `assembled the stored reply (${seen.length} events, none twice); screenshot in ${screenshotDir}`);
  }
} finally {
  await browser.close();
  front.close();
  server.kill("SIGTERM");
  await rm(dir, { recursive: true, force: true });
}
finish();
