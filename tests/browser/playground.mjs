// The playground (GET /) used as a person would, in Debian's chromium against
// a real parley server: create a conversation, send and watch the reply grow,
// stop a reply, edit and resend, regenerate, rename, pick a model, set a
// system prompt, read usage, search, scroll the list, delete; message text
// that is HTML or a javascript: link stays inert; a second page on the same
// conversation sees the exchange; errors show the problem's title and
// detail; a phone-sized window works; and in jwt mode the token works and
// never appears in a URL or the server's log. Screenshots of the main screens
// go to SCREENSHOT_DIR (docs/images/ holds the committed ones).
//
//   node playground.mjs PARLEY_BINARY SCREENSHOT_DIR   (see harness.mjs)
import { createHmac } from "node:crypto";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browserTest, startServer } from "./harness.mjs";

const { parleyBinary, screenshotDir, fail, launch, finish } =
  await browserTest("playground", "playground.mjs");

const maxChars = 2000;
// echo writes a word every 60 ms: replies grow visibly. "broken" is served
// by nothing (connection refused at once, no retries): every reply fails.
const config = `[limits]
max_message_chars = ${maxChars}
[[providers]]
name = "builtin"
kind = "builtin"
itl_ms = 60
[[providers]]
name = "down"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
max_retries = 0
[[models]]
id = "broken"
provider = "down"
upstream = "nothing"
context_window = 4096
max_output_tokens = 256
`;
const jwtSecret = "a-playground-test-secret-of-more-than-32-bytes";

function check(condition, what) {
  if (!condition) fail(what);
  return condition;
}

/// Calls the API from the test (not the page), as `headers` say.
async function api(baseUrl, headers, method, path, body) {
  const response = await fetch(baseUrl + path, {
    method, headers: { ...headers, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

function base64url(text) {
  return Buffer.from(text).toString("base64url");
}

function hs256(claims) {
  const head = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", jwtSecret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/// Watches a page for what must never happen: a dialog (an alert from
/// injected script), an uncaught error, a refused resource, a request to
/// another host.
function guard(page, name) {
  page.on("dialog", async (dialog) => {
    fail(`${name}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("pageerror", (e) => fail(`${name}: uncaught error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/WebSocket|status of 4\d\d/.test(m.text()))
      fail(`${name}: console error: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith("http://127.0.0.1:") && !r.url().startsWith("ws://127.0.0.1:"))
      fail(`${name}: requested another host: ${r.url()}`);
  });
}

const streaming = "#messages li.msg.assistant.streaming .body";
const replies = "#messages li.msg.assistant:not(.streaming)";

/// Sends `text` from the composer with Enter and returns the lengths of the
/// reply seen while it streamed, once its stored reply is shown. Plain text
/// (not Markdown) must grow only by appending: every snapshot a prefix of
/// the stored reply, so nothing came twice or out of order.
async function sendAndWatch(page, text, { plain = true } = {}) {
  const before = await page.locator(replies).count();
  await page.fill("#input", text);
  await page.press("#input", "Enter");
  const snapshots = [];
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const growing = await page.locator(streaming).allTextContents();
    if (growing.length) snapshots.push(growing[0].trim());
    if (growing.length === 0 && (await page.locator(replies).count()) > before &&
        (await page.locator("#send").isEnabled())) break;
    await page.waitForTimeout(25);
  }
  if (plain) {
    const final = `Echo: ${text}`;
    const wrong = snapshots.find((t) => !final.startsWith(t));
    check(wrong === undefined, `while streaming "${text}" the page showed "${wrong}"`);
  }
  return snapshots.map((t) => t.length);
}

/// What `page` shows of a reply being written, every 25 ms until `stop()`.
function watchGrowth(page) {
  const snapshots = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const growing = await page.locator(streaming).allTextContents();
      if (growing.length) snapshots.push(growing[0].trim());
      await page.waitForTimeout(25);
    }
    return snapshots;
  })();
  return { stop: () => { running = false; return done; } };
}

/// Waits until `page` shows a reply with exactly `text`.
function replyShown(page, text, timeout = 10000) {
  return page.waitForFunction((t) => [...document.querySelectorAll("#messages .msg.assistant:not(.streaming) .body")]
    .some((b) => b.textContent.trim() === t), text, { timeout }).then(() => true, () => false);
}

async function lastReplyText(page) {
  return (await page.locator(`${replies} .body`).last().textContent()).trim();
}

async function noneMode(browser, dir) {
  const { server, baseUrl } = await startServer(parleyBinary, dir, ["--config", join(dir, "parley.toml")]);
  const alice = { "X-User-Id": "alice" };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // A click on a message's link must open nothing.
    context.on("page", (p) => { if (p.url() !== "about:blank") fail(`a page opened: ${p.url()}`); });
    const page = await context.newPage();
    guard(page, "page A");
    const answer = await page.goto(`${baseUrl}/`);
    const policy = answer.headers()["content-security-policy"] ?? "";
    check(/script-src 'self'/.test(policy) && !/unsafe-inline/.test(policy),
          `the page's policy allows inline script: ${policy}`);

    await page.fill("#user-id", "alice");
    await page.click("#sign-in");
    await page.click("#new-conversation");
    await page.waitForSelector("#conversation:not([hidden])");

    // The reply grows on the page before it is done.
    const words = "the quick brown fox jumps over the lazy dog and then runs far away into the woods";
    const lengths = await sendAndWatch(page, words);
    const distinct = [...new Set(lengths)].filter((n) => n > 0);
    check(distinct.length >= 3, `the reply did not grow visibly while streaming (lengths ${distinct})`);
    check(distinct.every((n, i) => i === 0 || n > distinct[i - 1]), `the streamed text shrank: ${distinct}`);
    check(await lastReplyText(page) === `Echo: ${words}`, `the reply is "${await lastReplyText(page)}"`);
    const id = new URL(page.url()).hash.slice(1);
    await page.waitForFunction(() => document.querySelector("#conversation-list .active .item-title")
      ?.textContent.startsWith("the quick brown fox"));

    // A second page on the same conversation sees the exchange of the
    // first as it is written (the socket's deltas, not a reload).
    const pageB = await context.newPage();
    guard(pageB, "page B");
    await pageB.goto(`${baseUrl}/#${id}`);
    await pageB.waitForSelector(`${replies}`);
    await page.waitForTimeout(300);  // B's socket is open
    const fan = "seen on both pages one word at a time";
    const onB = watchGrowth(pageB);
    await sendAndWatch(page, fan);
    check(await replyShown(pageB, `Echo: ${fan}`), "page B did not show the reply of page A's exchange");
    const seenOnB = (await onB.stop()).filter((t) => t.length > 0);
    check(seenOnB.length >= 2, "page B did not show page A's reply while it was written");
    check(seenOnB.every((t) => `Echo: ${fan}`.startsWith(t)),
          `page B showed text that is not the reply's beginning: ${seenOnB.find((t) => !`Echo: ${fan}`.startsWith(t))}`);
    check(await pageB.locator("#messages .msg.user .body", { hasText: fan }).count() === 1,
          "page B does not show page A's message once");
    // ...and the other way round, with the reply growing on A.
    const back = "and back from the second page to the first one again";
    await pageB.fill("#input", back);
    await pageB.press("#input", "Enter");
    await page.waitForSelector(streaming, { timeout: 5000 })
      .catch(() => fail("page A did not show page B's reply while it was written"));
    check(await replyShown(page, `Echo: ${back}`), "page A did not show the reply of page B's exchange");

    // A reply that fails: the sending page shows the problem, the watching
    // page does not keep a reply "being written".
    await page.selectOption("#model", "broken");
    await page.waitForTimeout(300);
    await page.fill("#input", "this one fails");
    await page.press("#input", "Enter");
    await page.waitForSelector('#errors .error:has-text("Bad Gateway")', { timeout: 10000 })
      .catch(() => fail("the failed reply shows no 502 problem"));
    await pageB.waitForFunction(() => !document.querySelector("#messages .streaming") &&
      document.querySelector("#stop").hidden, null, { timeout: 5000 })
      .catch(() => fail("page B still shows a failed reply as being written"));
    check(await pageB.locator("#messages .msg.user .body", { hasText: "this one fails" }).count() === 1,
          "page B does not show the message whose reply failed");
    await page.locator("#errors .dismiss").last().click();
    await page.selectOption("#model", "echo");
    await page.waitForTimeout(300);

    // Stop while this page's exchange waits behind page B's: both stop, B's
    // at once and A's as soon as it starts.
    const longer = Array.from({ length: 60 }, (_, i) => `b${i}`).join(" ");
    await pageB.fill("#input", longer);
    await pageB.press("#input", "Enter");
    await page.waitForSelector(streaming);
    await page.fill("#input", "queued behind the other page");
    await page.press("#input", "Enter");
    await page.waitForTimeout(200);
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector("#stop").hidden &&
      !document.querySelector("#send").disabled, null, { timeout: 15000 })
      .catch(() => fail("stopping a waiting exchange did not end it"));
    const afterStop = (await api(baseUrl, alice, "GET", `/v1/conversations/${id}/messages?limit=200`)).body.data;
    const [otherReply, , queuedReply] = afterStop.slice(-3);
    check(otherReply?.finish_reason === "cancelled" && queuedReply?.finish_reason === "cancelled" &&
          afterStop.at(-2)?.content === "queued behind the other page",
          `after Stop the replies ended ${otherReply?.finish_reason} and ${queuedReply?.finish_reason}`);
    await pageB.close();

    // Opening another conversation while a reply is written shows only that
    // one; the reply goes on and is there on coming back.
    const other = await api(baseUrl, alice, "POST", "/v1/conversations",
                            { title: "a quiet one", message: { content: "nothing here moves" } });
    const waiting = "this reply is written while another conversation is open";
    await page.fill("#input", waiting);
    await page.press("#input", "Enter");
    await page.waitForSelector(streaming);
    await page.goto(`${baseUrl}/#${other.body.id}`);
    await page.waitForSelector(replies);
    await page.waitForTimeout(500);
    check(await page.locator(streaming).count() === 0 &&
          await page.locator("#messages .msg.user .body", { hasText: waiting }).count() === 0,
          "the other conversation shows the first one's exchange");
    await page.locator(`#conversation-list [data-id="${id}"]`).click();
    check(await replyShown(page, `Echo: ${waiting}`), "the reply written meanwhile is not shown on coming back");

    // Stop mid-reply: the stored reply is cut and marked.
    const long = Array.from({ length: 80 }, (_, i) => `word${i}`).join(" ");
    await page.fill("#input", long);
    await page.press("#input", "Enter");
    await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent.length ?? 0) > 30, streaming);
    check(await page.locator("#stop").isVisible(), "no stop button while a reply is written");
    await page.screenshot({ path: join(screenshotDir, "playground-streaming.png") });
    await page.click("#stop");
    await page.waitForSelector(`${replies} .badge:text("stopped")`, { timeout: 10000 })
      .catch(() => fail("a stopped reply is not marked stopped"));
    const stored = await api(baseUrl, alice, "GET", `/v1/conversations/${id}/messages?limit=200`);
    const cut = stored.body.data.at(-1);
    check(cut.finish_reason === "cancelled" && cut.content.length < `Echo: ${long}`.length,
          `the stopped reply was stored as ${cut.finish_reason} with ${cut.content.length} characters`);
    check(await lastReplyText(page) === cut.content.trim(), "the page does not show the stored stopped reply");

    // Edit the last message and resend: a new branch after the reply before it.
    const shownBefore = await page.locator("#messages li.msg").count();
    await page.locator("#messages li.msg.user").last().getByRole("button", { name: "Edit" }).click();
    await page.fill(".edit-form textarea", "the last message, edited");
    await page.click('.edit-form button:text("Send edited")');
    check(await replyShown(page, "Echo: the last message, edited"), "edit and resend of the last message failed");
    check(await page.locator("#messages li.msg").count() === shownBefore,
          "editing the last message changed the messages before it");
    await page.waitForSelector('#messages li.msg.user >> nth=-1 >> .siblings:text("version 2 of 2")', { timeout: 5000 })
      .catch(() => fail("the edited last message is not shown as the second version"));

    // Edit the first message and resend: a new branch from the root.
    await page.locator("#messages li.msg.user").first().getByRole("button", { name: "Edit" }).click();
    await page.fill(".edit-form textarea", "an edited first message");
    await page.click('.edit-form button:text("Send edited")');
    await page.waitForFunction(() => {
      const items = document.querySelectorAll("#messages li.msg:not(.streaming)");
      return items.length === 2 && items[1].querySelector(".body").textContent.trim() ===
        "Echo: an edited first message";
    }, null, { timeout: 10000 }).catch(() => fail("edit and resend did not show the new branch"));
    await page.waitForSelector('#messages li.msg.user .siblings:text("version 2 of 2")', { timeout: 5000 })
      .catch(() => fail("the edited message is not shown as the second version"));

    // Regenerate the reply.
    const firstVersion = await page.locator(replies).last().getAttribute("data-id");
    await page.locator(replies).last().getByRole("button", { name: "Regenerate" }).click();
    await page.waitForSelector(`${replies} .siblings:text("version 2 of 2")`, { timeout: 10000 })
      .catch(() => fail("the regenerated reply is not shown as the second version"));
    check(await lastReplyText(page) === "Echo: an edited first message", "the regenerated reply differs");
    check(await page.locator("#messages li.msg").count() === 2, "regenerate left the old reply on the branch");
    // Another client switches back to the first version: the page follows.
    await api(baseUrl, alice, "PATCH", `/v1/conversations/${id}`, { active_message_id: firstVersion });
    await page.waitForFunction((want) => {
      const items = document.querySelectorAll("#messages li.msg");
      return items.length === 2 && items[1].dataset.id === want;
    }, firstVersion, { timeout: 5000 }).catch(() => fail("a branch switched elsewhere is not shown"));

    // Text that is HTML, and a javascript: link, stay inert.
    const html = "<img src=x onerror=alert(1)>";
    await sendAndWatch(page, html);
    check(await page.locator("#messages img").count() === 0, "message HTML became an <img>");
    check((await page.locator("#messages li.msg.user .body").last().textContent()) === html,
          "the HTML message is not shown as typed");
    check(await lastReplyText(page) === `Echo: ${html}`, "the reply quoting HTML is not shown as text");
    await sendAndWatch(page, "[click me](javascript:alert(1))");
    const link = page.locator(`${replies} .body a`, { hasText: "click me" }).last();
    check(await link.count() === 1, "the Markdown link is not rendered");
    const href = await link.getAttribute("href");
    check(href === null || !/^\s*javascript:/i.test(href), `the link kept href=${href}`);
    await link.click();
    await page.waitForTimeout(300);
    await sendAndWatch(page, "**bold** and `code`\n\n- one\n- two", { plain: false });
    check(await page.locator(`${replies} .body strong`).last().textContent() === "bold",
          "Markdown is not rendered");
    await page.screenshot({ path: join(screenshotDir, "playground-conversation.png") });

    // Shift+Enter is a new line, not a send.
    await page.fill("#input", "first line");
    await page.press("#input", "Shift+Enter");
    await page.type("#input", "second line");
    check(await page.inputValue("#input") === "first line\nsecond line", "Shift+Enter did not add a line");
    await page.fill("#input", "");

    // A refused message shows the problem's title and detail, and the text
    // stays to be changed.
    const tooLong = "x".repeat(maxChars + 1);
    await page.fill("#input", tooLong);
    await page.press("#input", "Enter");
    await page.waitForSelector("#errors .error", { timeout: 5000 });
    const error = await page.locator("#errors .error").last().textContent();
    check(/Unprocessable/.test(error) && error.includes(`at most ${maxChars}`),
          `the 422 is shown as "${error}"`);
    check(await page.inputValue("#input") === tooLong, "the refused message's text was lost");
    await page.fill("#input", "");
    await page.locator("#errors .dismiss").last().click();

    // Rename, model picker, system prompt.
    await page.click("#title");
    await page.fill("#title-input", "Renamed in the browser");
    await page.press("#title-input", "Enter");
    await page.waitForSelector('#conversation-list .active .item-title:text("Renamed in the browser")');
    const options = await page.locator("#model option").allTextContents();
    check(options.some((o) => o.startsWith("echo") && o.includes("8,192")),
          `the model picker shows ${options}`);
    await page.click("#toggle-system");
    await page.fill("#system-prompt", "You are terse.");
    await page.click('#system button:text("Save system prompt")');
    await page.waitForSelector('#system-saved:text("Saved")');
    const conversation = await api(baseUrl, alice, "GET", `/v1/conversations/${id}`);
    check(conversation.body.system_prompt === "You are terse." &&
          conversation.body.title === "Renamed in the browser",
          "rename or system prompt did not reach the server");

    // Usage by day and model.
    await page.click("#open-usage");
    await page.waitForSelector("#usage-table tbody td:text('echo')", { timeout: 5000 })
      .catch(() => fail("the usage panel shows no row for echo"));
    check(/\d+ requests, [\d,]+ tokens/.test(await page.locator("#usage-total").textContent()),
          "the usage panel has no totals");
    await page.screenshot({ path: join(screenshotDir, "playground-usage.png") });
    await page.click("#close-usage");

    // Search finds the conversation by a word of a message.
    await page.fill("#search", "woods");
    await page.waitForSelector("#search-results .search-hit mark", { timeout: 5000 })
      .catch(() => fail("search shows no highlighted hit"));
    await page.fill("#search", "");

    // Delete, in two clicks.
    await page.click("#delete-conversation");
    await page.click("#delete-conversation");
    await page.waitForSelector("#empty-state:not([hidden])");
    check((await api(baseUrl, alice, "GET", `/v1/conversations/${id}`)).status === 404,
          "the deleted conversation is still there");
    check(await page.locator(`#conversation-list [data-id="${id}"]`).count() === 0,
          "the deleted conversation is still listed");

    // The list scrolls through every conversation of a user once.
    const bob = { "X-User-Id": "bob" };
    for (let i = 0; i < 45; ++i)
      await api(baseUrl, bob, "POST", "/v1/conversations", { title: `bob ${String(i).padStart(2, "0")}` });
    await page.fill("#user-id", "bob");
    await page.click("#sign-in");
    await page.waitForFunction(() => document.querySelectorAll("#conversation-list li").length >= 20);
    for (let i = 0; i < 10 && (await page.locator("#conversation-list li").count()) < 45; ++i) {
      await page.locator("#list-end").scrollIntoViewIfNeeded();
      await page.waitForTimeout(200);
    }
    const titles = await page.locator("#conversation-list .item-title").allTextContents();
    check(titles.length === 45 && new Set(titles).size === 45 && titles[0] === "bob 44",
          `scrolling listed ${titles.length} (${new Set(titles).size} distinct), first ${titles[0]}`);
    await context.close();

    // A phone-sized window: the list slides over the conversation.
    const phone = await browser.newContext({ viewport: { width: 390, height: 800 }, isMobile: true,
                                             hasTouch: true });
    const small = await phone.newPage();
    guard(small, "phone");
    await small.goto(`${baseUrl}/`);
    await small.fill("#user-id", "bob");
    await small.click("#sign-in");
    check(!(await small.locator("#sidebar").isVisible()) ||
          (await small.locator("#sidebar").boundingBox()).x < 0, "the list covers a phone's screen");
    await small.click("#toggle-sidebar");
    await small.waitForTimeout(300);
    await small.click("#close-sidebar");
    await small.waitForTimeout(300);
    check((await small.locator("#sidebar").boundingBox()).x < 0, "the list does not close on a phone");
    await small.click("#toggle-sidebar");
    await small.waitForTimeout(300);
    await small.click("#new-conversation");
    await small.waitForSelector("#conversation:not([hidden])");
    await sendAndWatch(small, "hello from a phone, with **Markdown** in it", { plain: false });
    const width = await small.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `the page is ${width}px wide on a 390px screen`);
    await small.screenshot({ path: join(screenshotDir, "playground-phone.png") });
    await phone.close();
  } finally {
    server.kill("SIGTERM");
  }
}

async function jwtMode(browser, dir) {
  await writeFile(join(dir, "parley.toml"), `${config}[auth]\nmode = "jwt"\njwt_secret = "${jwtSecret}"\n`);
  const { server, baseUrl } = await startServer(parleyBinary, dir, ["--config", join(dir, "parley.toml")]);
  let log = "";
  server.stdout.on("data", (c) => { log += c; });
  server.stderr.on("data", (c) => { log += c; });
  const token = hs256({ sub: "carol", exp: Math.floor(Date.now() / 1000) + 3600 });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const urls = [];
    context.on("request", (r) => urls.push(r.url()));
    const page = await context.newPage();
    guard(page, "jwt page");
    page.on("websocket", (ws) => urls.push(ws.url()));
    await page.goto(`${baseUrl}/playground`);
    check(await page.locator("#token").isVisible() && !(await page.locator("#user-id").isVisible()),
          "jwt mode does not ask for a token");
    await page.waitForSelector("#errors .error", { timeout: 5000 })
      .catch(() => fail("jwt mode without a token says nothing"));

    // A token signed with another key is refused with the problem shown.
    const forged = hs256({ sub: "carol" }).replace(/\.[^.]+$/, ".AAAA");
    await page.fill("#token", forged);
    await page.click("#sign-in");
    await page.waitForSelector('#errors .error:has-text("Unauthorized")', { timeout: 5000 })
      .catch(() => fail("a refused token shows no Unauthorized problem"));

    await page.fill("#token", token);
    await page.click("#sign-in");
    await page.click("#new-conversation");
    await page.waitForSelector("#conversation:not([hidden])");
    await sendAndWatch(page, "signed in with a token");
    check(await lastReplyText(page) === "Echo: signed in with a token", "jwt mode: no reply");
    check(await page.evaluate(() => sessionStorage.getItem("parley.token")) === token &&
          await page.evaluate(() => localStorage.getItem("parley.token")) === null,
          "the token is not kept in session storage (only)");
    const id = new URL(page.url()).hash.slice(1);
    const listed = await api(baseUrl, { Authorization: `Bearer ${token}` }, "GET", `/v1/conversations/${id}`);
    check(listed.status === 200 && listed.body.user_id === "carol", "the conversation is not carol's");

    // The socket authenticates with the token too (in a subprotocol): a
    // second tab of the same session sees the first one's exchange.
    const pageB = await context.newPage();
    guard(pageB, "jwt page B");
    const frames = [];
    pageB.on("websocket", (ws) => {
      urls.push(ws.url());
      ws.on("framereceived", (f) => frames.push(String(f.payload)));
    });
    await pageB.goto(`${baseUrl}/playground#${id}`);
    // Session storage is the tab's own: the second tab is given the token too.
    await pageB.fill("#token", token);
    await pageB.click("#sign-in");
    await pageB.locator(`#conversation-list [data-id="${id}"]`).click();
    await pageB.waitForSelector(replies);
    await page.waitForTimeout(300);
    await sendAndWatch(page, "to the other tab");
    check(await replyShown(pageB, "Echo: to the other tab"), "jwt mode: the second tab did not see the exchange");
    check(frames.some((f) => f.includes('"type":"delta"')) && frames.some((f) => f.includes('"type":"done"')),
          "jwt mode: the second tab's WebSocket did not bring the exchange");
    await pageB.screenshot({ path: join(screenshotDir, "playground-jwt.png") });

    check(urls.length > 5 && !urls.some((u) => u.includes(token)), "the token appeared in a URL");
    check(!log.includes(token) && !log.includes(token.split(".")[2]), "the token appeared in the server's log");
    await context.close();
  } finally {
    server.kill("SIGTERM");
  }
}

const dir = await mkdtemp(join(tmpdir(), "parley-playground-"));
await mkdir(screenshotDir, { recursive: true });
let browser;
try {
  await writeFile(join(dir, "parley.toml"), config);
  browser = await launch();
  await mkdir(join(dir, "none"));
  await writeFile(join(dir, "none", "parley.toml"), config);
  await noneMode(browser, join(dir, "none"));
  await mkdir(join(dir, "jwt"));
  await jwtMode(browser, join(dir, "jwt"));
} catch (e) {
  fail(`stopped: ${e.stack ?? e}`);
} finally {
  await browser?.close();
  await rm(dir, { recursive: true, force: true });
}
finish();
