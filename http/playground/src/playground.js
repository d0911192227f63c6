// The playground: a person's way into Parley through its public API alone.
// State lives here; the page's markup is http/playground/index.html.
import { Api, Credentials, ProblemError, runPosition } from "./api.js";
import { renderMarkdown, renderSnippet } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const mode = document.querySelector('meta[name="parley-auth-mode"]')?.content === "jwt" ? "jwt" : "none";
// A token lasts as long as the tab; a user id (no secret) across visits.
const credentials = new Credentials(mode, mode === "jwt" ? sessionStorage : localStorage);
const api = new Api(credentials);

// A seq above every message's: `before` it are the newest messages.
const beyondLastSeq = Number.MAX_SAFE_INTEGER;
const pageSize = 50;
// How near the end of the list (px) the next page is read.
const listMargin = 100;

const state = {
  models: [],
  conversations: new Map(),  // id → Conversation, as last read
  order: [],                 // ids, most recently updated first
  nextCursor: undefined,     // undefined: not read yet; null: the end
  loadingList: false,
  identity: 0,               // counts sign-ins: answers for an earlier one are dropped
  opened: 0,                 // counts openings: answers for an earlier one are dropped
  current: null,             // the open Conversation
  messages: [],              // its active branch as shown, ascending seq
  hasEarlier: false,
  runs: new Map(),           // run id (null: unnamed) → see runOf
  placed: [],                // messages events placed since the branch was last read
  own: null,                 // this tab's exchange: {controller, runId, stopAsked}
  editing: null,             // the message being edited: {id, draft}
  socket: null,
  socketFailures: 0,
};

// --- small helpers ---

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(text, className, onClick) {
  const b = el("button", className, text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function showProblem(problem) {
  const item = el("div", "error");
  item.append(el("strong", "error-title", problem.title ?? "Error"));
  if (problem.detail) item.append(el("span", "error-detail", problem.detail));
  item.append(button("×", "icon dismiss", () => item.remove()));
  const box = $("errors");
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
}

function report(error) {
  if (error?.name === "AbortError") return;
  showProblem(error instanceof ProblemError ? error.problem
                                            : { title: "Error", detail: String(error?.message ?? error) });
}

/// Runs `work`, showing what failed; resolves to its value or undefined.
async function attempt(work) {
  try {
    return await work();
  } catch (e) {
    report(e);
    return undefined;
  }
}

const path = (...parts) => `/v1/conversations/${parts.map(encodeURIComponent).join("/")}`;

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// --- identity ---

function showIdentity() {
  const jwt = mode === "jwt";
  $("user-label").hidden = jwt;
  $("token-label").hidden = !jwt;
  $("user-id").value = credentials.userId;
  $("token").value = "";
  $("token").placeholder = credentials.token ? "token set (paste another to replace)" : "paste a JWT";
  $("sign-out").hidden = !jwt || !credentials.token;
}

function signedIn() {
  closeConversation();
  state.identity += 1;
  state.conversations.clear();
  state.order = [];
  state.nextCursor = undefined;
  state.loadingList = false;
  $("search").value = "";
  search("");
  renderList();
  showIdentity();
  if (!credentials.ready) {
    showProblem({ title: "Token needed", detail: "paste a JWT whose sub is your user id, then Use" });
    return;
  }
  loadModels();
  loadMoreConversations();
}

$("identity").addEventListener("submit", (e) => {
  e.preventDefault();
  $("errors").replaceChildren();
  if (mode === "jwt") {
    const token = $("token").value.trim();
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
      showProblem({ title: "Not a token", detail: "a JWT is three base64url parts joined by dots" });
      return;
    }
    credentials.set(token);
  } else {
    credentials.set($("user-id").value.trim());
  }
  signedIn();
});

$("sign-out").addEventListener("click", () => {
  credentials.set("");
  signedIn();
});

// --- models ---

async function loadModels() {
  const identity = state.identity;
  const answer = await attempt(() => api.call("GET", "/v1/models"));
  if (!answer || identity !== state.identity) return;
  state.models = answer.data;
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => {
    const option = el("option", null, `${m.id} · ${m.context_window.toLocaleString()} tokens`);
    option.value = m.id;
    return option;
  }));
  if (state.current) select.value = state.current.model;
}

$("model").addEventListener("change", async () => {
  const conversation = state.current;
  const model = $("model").value;
  const updated = await attempt(() => api.call("PATCH", path(conversation.id), { model }));
  if (updated) conversationChanged(updated);
  else $("model").value = conversation.model;
});

// --- the conversation list ---

function conversationChanged(conversation, toTop = false) {
  const known = state.conversations.has(conversation.id);
  state.conversations.set(conversation.id, conversation);
  if (toTop) state.order = [conversation.id, ...state.order.filter((id) => id !== conversation.id)];
  else if (!known) state.order.push(conversation.id);
  if (state.current?.id === conversation.id) {
    state.current = conversation;
    renderHead();
  }
  renderList();
}

function renderList() {
  const items = state.order.map((id) => {
    const c = state.conversations.get(id);
    const li = el("li");
    const b = button("", "conversation-item", () => openConversation(id));
    b.dataset.id = id;
    if (state.current?.id === id) b.classList.add("active");
    b.append(el("span", "item-title", c.title || "Untitled"),
             el("span", "item-meta", `${formatTime(c.updated_at)} · ${c.message_count} messages`));
    li.append(b);
    return li;
  });
  $("conversation-list").replaceChildren(...items);
}

async function loadMoreConversations() {
  if (state.loadingList || state.nextCursor === null || !credentials.ready) return;
  const identity = state.identity;
  state.loadingList = true;
  try {
    const query = new URLSearchParams({ limit: "20" });
    if (state.nextCursor) query.set("cursor", state.nextCursor);
    const page = await api.call("GET", `/v1/conversations?${query}`);
    if (identity !== state.identity) return;
    for (const c of page.data) conversationChanged(c);
    state.nextCursor = page.next_cursor;
  } catch (e) {
    // Scrolling again tries again.
    if (identity === state.identity) report(e);
    return;
  } finally {
    if (identity === state.identity) state.loadingList = false;
  }
  // The end may still be in view (a tall window): keep filling.
  fillList();
}

/// Reads the next page when the end of the list is in view.
function fillList() {
  if (!state.nextCursor || !$("search-results").hidden) return;
  const box = $("sidebar").getBoundingClientRect();
  const end = $("list-end").getBoundingClientRect();
  if (end.top <= box.bottom + listMargin) loadMoreConversations();
}

new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && $("search-results").hidden) loadMoreConversations();
}, { root: $("sidebar"), rootMargin: `${listMargin}px` }).observe($("list-end"));
$("sidebar").addEventListener("scroll", fillList, { passive: true });

$("new-conversation").addEventListener("click", async () => {
  const created = await attempt(() => api.call("POST", "/v1/conversations", {}));
  if (!created) return;
  conversationChanged(created, true);
  await openConversation(created.id);
  $("input").focus();
});

// --- search ---

let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => search($("search").value.trim()), 300);
});

async function search(q, cursor = null) {
  const results = $("search-results");
  if (!q) {
    results.hidden = true;
    results.replaceChildren();
    $("conversation-list").hidden = false;
    fillList();
    return;
  }
  const query = new URLSearchParams({ q, limit: "20" });
  if (cursor) query.set("cursor", cursor);
  const page = await attempt(() => api.call("GET", `/v1/search?${query}`));
  if (!page || $("search").value.trim() !== q) return;
  const items = page.data.map((hit) => {
    const li = el("li");
    const b = button("", "search-hit", async () => {
      await openConversation(hit.conversation_id);
      closeSidebar();
    });
    const snippet = el("span", "snippet");
    snippet.append(renderSnippet(hit.snippet));
    b.append(el("span", "item-title", hit.conversation_title || "Untitled"), snippet);
    li.append(b);
    return li;
  });
  if (page.data.length === 0 && !cursor) items.push(el("li", "hint", "Nothing matches."));
  if (page.next_cursor) {
    const li = el("li");
    li.append(button("More results", "more", () => { li.remove(); search(q, page.next_cursor); }));
    items.push(li);
  }
  if (cursor) results.append(...items);
  else results.replaceChildren(...items);
  results.hidden = false;
  $("conversation-list").hidden = true;
}

// --- the open conversation ---

function closeSocket() {
  const socket = state.socket;
  state.socket = null;
  socket?.close(1000);
}

function closeConversation() {
  state.opened += 1;
  closeSocket();
  state.socketFailures = 0;
  state.own?.controller.abort();
  state.own = null;
  state.current = null;
  state.messages = [];
  state.runs.clear();
  state.editing = null;
  $("conversation").hidden = true;
  $("empty-state").hidden = false;
  setBusy();
  renderList();
}

async function openConversation(id) {
  if (state.current?.id === id) return;
  closeConversation();
  const opened = state.opened;
  const conversation = await attempt(() => api.call("GET", path(id)));
  // Another conversation was opened meanwhile: the last click wins.
  if (!conversation || opened !== state.opened) return;
  state.current = conversation;
  conversationChanged(conversation);
  history.replaceState(null, "", `#${id}`);
  $("empty-state").hidden = true;
  $("conversation").hidden = false;
  $("system").hidden = true;
  $("rename").hidden = true;
  renderHead();
  await loadMessages();
  if (opened !== state.opened) return;
  openSocket(id);
  closeSidebar();
}

function renderHead() {
  const c = state.current;
  $("title").textContent = c.title || "Untitled";
  $("title").hidden = !$("rename").hidden;
  if (state.models.length) $("model").value = c.model;
  $("system-prompt").value = c.system_prompt ?? "";
}

/// The newest messages of the active branch as stored, with what arrived
/// while they were read placed after them.
let messageReads = 0;
async function loadMessages() {
  if (!state.current) return;
  const id = state.current.id;
  const read = ++messageReads;
  state.placed = [];
  const count = Math.min(200, Math.max(pageSize, state.messages.length));
  const page = await attempt(() => api.call("GET", `${path(id, "messages")}?limit=${count}&before=${beyondLastSeq}`));
  if (!page || state.current?.id !== id || read !== messageReads) return;
  // Events placed while the page was read may be newer than it.
  const lastSeq = page.data.at(-1)?.seq ?? 0;
  const arrived = state.placed.filter((m) => m.seq > lastSeq);
  state.placed = [];
  state.messages = page.data;
  state.hasEarlier = page.has_more;
  for (const m of arrived) placeMessage(m, false);
  renderMessages(true);
}

$("load-earlier").addEventListener("click", async () => {
  const id = state.current.id;
  const first = state.messages[0]?.seq ?? beyondLastSeq;
  const page = await attempt(() => api.call("GET", `${path(id, "messages")}?limit=${pageSize}&before=${first}`));
  if (!page || state.current?.id !== id) return;
  const shown = new Set(state.messages.map((m) => m.id));
  state.messages = [...page.data.filter((m) => !shown.has(m.id)), ...state.messages];
  state.hasEarlier = page.has_more;
  renderMessages();
});

/// Puts a stored message where it belongs on the shown branch: after its
/// parent, in place of whatever followed the parent (a new branch), or, when
/// its parent is not shown, by reading the branch again.
function placeMessage(message, render = true) {
  const at = state.messages.findIndex((m) => m.id === message.id);
  if (at >= 0) {
    state.messages[at] = message;
  } else if (message.parent_id === null) {
    state.messages = [message];
    state.hasEarlier = false;
  } else {
    const parent = state.messages.findIndex((m) => m.id === message.parent_id);
    if (parent < 0) {
      if (render) loadMessages();
      return;
    }
    state.messages = [...state.messages.slice(0, parent + 1), message];
  }
  if (render) renderMessages();
}

function renderMessage(message) {
  const li = el("li", `msg ${message.role}`);
  li.dataset.id = message.id;
  li.dataset.seq = message.seq;
  const meta = el("div", "meta");
  const who = message.role === "user" ? "You" : message.role === "assistant" ? "Assistant" : "System";
  meta.append(el("span", "role", message.model ? `${who} · ${message.model}` : who));
  if (message.sibling_count > 1)
    meta.append(el("span", "siblings", `version ${message.sibling_index} of ${message.sibling_count}`));
  if (message.finish_reason === "cancelled") meta.append(el("span", "badge", "stopped"));
  if (message.finish_reason === "length") meta.append(el("span", "badge", "cut at max tokens"));
  if (message.edited_at) meta.append(el("span", "badge", "edited"));
  if (state.editing?.id === message.id) {
    li.append(meta, editForm(message));
    return li;
  }
  li.append(meta, messageBody(message.role, message.content));
  const actions = el("div", "actions");
  if (message.role === "user") actions.append(button("Edit", "edit", () => startEdit(message)));
  if (message.role === "assistant")
    actions.append(button("Regenerate", "regenerate", () => regenerate(message)));
  li.append(actions);
  return li;
}

function messageBody(role, content) {
  const body = el("div", role === "user" ? "body plain" : "body markdown");
  // What a person typed is shown as typed; replies are Markdown.
  if (role === "user") body.textContent = content;
  else body.append(renderMarkdown(content));
  return body;
}

/// Whether the message list is scrolled to (about) its end: it then follows
/// what is added.
function atListEnd(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

function renderMessages(scrollToEnd = false) {
  const list = $("messages");
  const nearEnd = atListEnd(list);
  const items = state.messages.map(renderMessage);
  for (const run of state.runs.values()) {
    if (run.done || !started(run)) continue;
    run.element = el("li", "msg assistant streaming");
    run.element.append(el("div", "meta", "Assistant · writing…"), messageBody("assistant", runText(run)));
    items.push(run.element);
  }
  const editing = document.activeElement?.closest?.(".edit-form") ? document.activeElement : null;
  list.replaceChildren(...items);
  if (editing) {
    const area = list.querySelector(".edit-form textarea");
    area?.focus();
    area?.setSelectionRange(editing.selectionStart, editing.selectionEnd);
  }
  $("load-earlier").hidden = !state.hasEarlier;
  if (scrollToEnd || nearEnd) list.scrollTop = list.scrollHeight;
}

/// Shows a run's text as it grows, at most once a frame.
function showRunText(run) {
  if (run.frame) return;
  run.frame = requestAnimationFrame(() => {
    run.frame = null;
    if (!run.element || run.done) {
      renderMessages();
      return;
    }
    const list = $("messages");
    const nearEnd = atListEnd(list);
    run.element.lastElementChild.replaceWith(messageBody("assistant", runText(run)));
    if (nearEnd) list.scrollTop = list.scrollHeight;
  });
}

// --- runs: the events of an exchange, from this tab's stream or the socket ---

/// A run as this tab knows it: the numbers of the events it had, its text
/// as pieces in number order (a resume's replay, numbered as the last event
/// it stands for, can come after live events of higher numbers), whether
/// this tab's own stream brings it and whether the socket asked for it.
function runOf(id) {
  const key = id ?? null;
  let run = state.runs.get(key);
  if (!run) {
    run = { seen: new Set(), lastN: 0, pieces: [], done: false, own: false, resumed: false,
            element: null, frame: null };
    state.runs.set(key, run);
  }
  return run;
}

function runText(run) {
  return run.pieces.map((p) => p.text).join("");
}

function started(run) {
  return run !== undefined && run.seen.size > 0;
}

/// Records event `n` of `run` (unnumbered: the next); the number, or null
/// when the run had it already: this tab's stream and the socket both bring
/// this tab's exchanges, numbered alike, and a replay may repeat live ones.
function acceptEvent(run, n) {
  const at = n ?? run.lastN + 1;
  if (run.seen.has(at)) return null;
  run.seen.add(at);
  run.lastN = Math.max(run.lastN, at);
  return at;
}

/// A run first seen on the socket, started by another client: resuming it
/// makes this socket hear how it ends even if it fails (plain watchers hear
/// only replies).
function followRun(runId) {
  const run = state.runs.get(runId);
  if (!run || run.own || run.resumed || !state.socket) return;
  run.resumed = true;
  if (state.socket.readyState === WebSocket.OPEN)
    state.socket.send(JSON.stringify({ type: "resume", run_id: runId, after: run.lastN }));
}

/// Marks the runs other clients started as ended, but for `running` (the
/// run the conversation reports as running, if any).
function endOtherRuns(running) {
  for (const [runId, run] of state.runs) if (!run.own && runId !== running) run.done = true;
}

function finishRun(runId) {
  if (runId) runOf(runId).done = true;
  const unnamed = state.runs.get(null);
  if (unnamed) unnamed.done = true;
}

/// A stored message an event brought: shown, and kept for a read of the
/// branch in flight to merge.
function placeArrived(message) {
  state.placed.push(message);
  placeMessage(message);
}

const runEvents = {
  message(runId, n, message) {
    if (runId && acceptEvent(runOf(runId), n) === null) return;
    placeArrived(message);
    startedRun(runId);
  },
  delta(runId, n, text) {
    const run = runOf(runId);
    const at = acceptEvent(run, n);
    if (at === null) return;
    const before = run.pieces.findIndex((p) => p.n > at);
    run.pieces.splice(before < 0 ? run.pieces.length : before, 0, { n: at, text });
    if (!run.element) renderMessages();
    showRunText(run);
    startedRun(runId);
  },
  compaction(runId, n) {
    if (runId && acceptEvent(runOf(runId), n) !== null) startedRun(runId);
  },
  done(runId, n, reply) {
    if (runId && acceptEvent(runOf(runId), n) === null) return;
    finishRun(runId);
    placeArrived(reply);
    setBusy();
    afterExchange();
  },
  error(runId, n, problem) {
    if (runId && acceptEvent(runOf(runId), n) === null) return;
    finishRun(runId);
    renderMessages();
    showProblem(problem);
    setBusy();
    afterExchange();
  },
};

/// The first events of a run: follow it if it is another client's, and
/// stop it if this tab asked to before it had started.
function startedRun(runId) {
  if (runId) followRun(runId);
  if (state.own?.stopAsked && runId && runId === state.own.runId) {
    state.own.stopAsked = false;
    stop();
  }
  setBusy();
}

/// After an exchange: the branch and the conversation as stored (sibling
/// counts, usage, the list's order).
let refreshTimer = null;
function afterExchange() {
  const id = state.current?.id;
  if (!id) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const conversation = await attempt(() => api.call("GET", path(id)));
    if (conversation && state.current?.id === id) {
      conversationChanged(conversation, true);
      await loadMessages();
    }
  }, 150);
}

function running() {
  return state.own !== null || [...state.runs.values()].some((r) => !r.done && started(r));
}

function setBusy() {
  $("send").disabled = state.own !== null;
  $("stop").hidden = !running();
  $("stop").textContent = state.own?.stopAsked ? "Stopping…" : "Stop";
}

/// Sends an exchange of this tab, streamed, and shows it as it comes.
/// Resolves to false when the server refused it before it started (nothing
/// was stored), else true.
async function exchange(route, body) {
  const conversationId = state.current.id;
  const own = { controller: new AbortController(), runId: null, stopAsked: false };
  let ended = false;
  state.own = own;
  setBusy();
  try {
    await api.stream(route, body, {
      signal: own.controller.signal,
      onOpen: (runId) => {
        own.runId = runId;
        if (runId) runOf(runId).own = true;
      },
      onEvent: (type, data, id) => {
        if (state.current?.id !== conversationId) return;
        const { run, n } = runPosition(id);
        const handle = runEvents[type];
        if (!handle) return;
        if (type === "done" || type === "error") ended = true;
        // An event without an id (a failure after the stream began) is the
        // exchange's all the same.
        handle(run ?? own.runId, n, type === "delta" ? data.content : data);
      },
    });
    if (!ended && state.current?.id === conversationId) streamCutShort(own.runId);
    return true;
  } catch (e) {
    report(e);
    if (e.beforeStream || e.name === "AbortError") {
      if (state.current?.id === conversationId) loadMessages();
      return !e.beforeStream;
    }
    // Cut off mid-stream: the reply goes on without this stream.
    if (state.current?.id === conversationId) streamCutShort(own.runId, false);
    return true;
  } finally {
    if (state.own === own) state.own = null;
    setBusy();
  }
}

/// The stream ended without done or error (a proxy cut it, the server
/// restarted): the reply goes on being written and stored, so follow it on
/// the socket from where the stream stopped, or read what is stored.
function streamCutShort(runId, tell = true) {
  if (tell)
    showProblem({ title: "Connection lost",
                  detail: "the reply's stream ended early; the rest is shown as it is stored" });
  const run = runId ? state.runs.get(runId) : null;
  if (run && state.socket?.readyState === WebSocket.OPEN) {
    run.own = false;
    run.resumed = true;
    state.socket.send(JSON.stringify({ type: "resume", run_id: runId, after: run.lastN }));
  } else {
    if (run) run.done = true;
    afterExchange();
  }
}

async function sendMessage(text) {
  const conversation = state.current;
  const accepted = await exchange(path(conversation.id, "messages"), { content: text });
  if (!accepted) {
    // Refused (too long, rate limited…): nothing was stored, so the text is
    // given back to be changed or sent again.
    if (!$("input").value) $("input").value = text;
    return;
  }
  if (!conversation.title && state.current?.id === conversation.id) {
    const title = text.split("\n")[0].slice(0, 60).trim();
    const updated = title && await attempt(() => api.call("PATCH", path(conversation.id), { title }));
    if (updated) conversationChanged(updated);
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value;
  if (!text.trim() || state.own) return;
  $("input").value = "";
  sendMessage(text);
});

/// Enter submits `form` from `area`, Shift+Enter is a new line, Escape
/// calls `onEscape` (if any).
function submitOnEnter(area, form, onEscape) {
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === "Escape" && onEscape) {
      onEscape();
    }
  });
}

submitOnEnter($("input"), $("composer"));

/// Cancels the conversation's running exchange (POST …/cancel). This tab's
/// own exchange, if it still waits its turn behind it, is cancelled too as
/// soon as it starts.
async function stop() {
  const id = state.current?.id;
  if (!id) return;
  const own = state.own;
  const ownWaiting = own !== null && !started(state.runs.get(own.runId));
  let nothingRan = false;
  try {
    await api.call("POST", path(id, "cancel"));
  } catch (e) {
    if (e.problem?.status !== 409) {
      report(e);
      return;
    }
    nothingRan = true;
  }
  if (state.current?.id !== id) return;
  if (ownWaiting && state.own === own) {
    // Started while the cancel was under way: cancel it now.
    if (started(state.runs.get(own.runId))) stop();
    else own.stopAsked = true;
  } else if (nothingRan) {
    // Whatever was shown as running has ended.
    endOtherRuns();
    renderMessages();
    loadMessages();
  }
  setBusy();
}

$("stop").addEventListener("click", stop);

/// Hides `message` and what follows it: the exchange about to start replaces them.
function truncateFrom(message) {
  const at = state.messages.findIndex((m) => m.id === message.id);
  if (at >= 0) state.messages = state.messages.slice(0, at);
  renderMessages();
}

/// An edit form survives the page being drawn again (a reply arriving).
function startEdit(message) {
  if (state.own) return;
  state.editing = { id: message.id, draft: message.content };
  renderMessages();
  $("messages").querySelector(".edit-form textarea")?.focus();
}

function stopEdit() {
  state.editing = null;
  renderMessages();
}

function editForm(message) {
  const form = el("form", "edit-form");
  const area = el("textarea");
  area.value = state.editing.draft;
  area.rows = Math.min(10, area.value.split("\n").length + 1);
  area.setAttribute("aria-label", "Edited message");
  area.addEventListener("input", () => { state.editing.draft = area.value; });
  const send = el("button", "primary", "Send edited");
  send.type = "submit";
  form.append(area, send, button("Cancel", "cancel", stopEdit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = area.value;
    if (!text.trim() || state.own) return;
    state.editing = null;
    truncateFrom(message);
    // A sibling of the original: a new branch from its parent.
    const accepted = await exchange(path(state.current.id, "messages"),
                                    { content: text, parent_id: message.parent_id });
    // Refused: the original comes back (the branch is read again) with the
    // edit still open.
    if (!accepted) state.editing = { id: message.id, draft: text };
  });
  submitOnEnter(area, form, stopEdit);
  return form;
}

function regenerate(message) {
  if (state.own) return;
  truncateFrom(message);
  exchange(path(state.current.id, "regenerate"), { message_id: message.id });
}

// --- the socket: every exchange of the conversation, whoever started it ---

const maxSocketFailures = 5;

function openSocket(id) {
  closeSocket();
  let socket;
  try {
    socket = api.websocket(id);
  } catch (e) {
    showProblem({ title: "No live updates", detail: e.message });
    return;
  }
  state.socket = socket;
  socket.addEventListener("open", () => {
    if (state.socket !== socket) return;
    // What runs now, from where this tab lost it (or from its start).
    const unfinished = [...state.runs.entries()].filter(([runId, r]) => runId && !r.done && !r.own);
    for (const [runId, run] of unfinished) {
      run.resumed = true;
      socket.send(JSON.stringify({ type: "resume", run_id: runId, after: run.lastN }));
    }
    if (unfinished.length === 0) socket.send(JSON.stringify({ type: "resume" }));
  });
  socket.addEventListener("message", (m) => {
    if (state.socket !== socket) return;
    // Heard from: the socket works (one that opens and closes at once does not).
    state.socketFailures = 0;
    let frame;
    try {
      frame = JSON.parse(m.data);
    } catch {
      return;
    }
    onFrame(frame);
  });
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (state.current?.id !== id) return;
    state.socketFailures += 1;
    if (state.socketFailures > maxSocketFailures) {
      showProblem({ title: "No live updates",
                    detail: "the conversation's WebSocket keeps closing; reopen the conversation to try again" });
      return;
    }
    setTimeout(() => {
      if (state.current?.id !== id || state.socket) return;
      openSocket(id);
      loadMessages();
    }, 500 * 2 ** state.socketFailures);
  });
}

function onFrame(frame) {
  switch (frame.type) {
    case "message":
      return runEvents.message(frame.run_id, frame.n, frame.message);
    case "delta":
      return runEvents.delta(frame.run_id, frame.n, frame.content);
    case "compaction":
      return runEvents.compaction(frame.run_id, frame.n);
    case "done":
      return runEvents.done(frame.run_id, frame.n, frame.reply);
    case "branch":
      return loadMessages();
    case "error":
      if (frame.run_id) return runEvents.error(frame.run_id, frame.n, frame.error);
      if (frame.error?.status === 404) return checkConversation();
      return showProblem(frame.error ?? { title: "Error" });
    default:
      return undefined;
  }
}

/// A 404 on the socket: the conversation was deleted, or a run it asked to
/// resume has expired (then the branch as stored is all there is).
async function checkConversation() {
  const id = state.current?.id;
  if (!id) return;
  try {
    const conversation = await api.call("GET", path(id));
    if (state.current?.id !== id) return;
    // Runs it no longer holds have ended; the one it runs goes on.
    endOtherRuns(conversation.running?.run_id);
    setBusy();
    loadMessages();
  } catch (e) {
    if (e.problem?.status === 404 && state.current?.id === id) conversationGone(id);
    else report(e);
  }
}

function conversationGone(id) {
  if (!id) return;
  state.conversations.delete(id);
  state.order = state.order.filter((o) => o !== id);
  if (state.current?.id === id) {
    closeConversation();
    history.replaceState(null, "", location.pathname);
  }
  renderList();
}

// --- title, system prompt, deletion ---

$("title").addEventListener("click", () => {
  $("title").hidden = true;
  $("rename").hidden = false;
  $("title-input").value = state.current.title ?? "";
  $("title-input").focus();
});

$("title-input").addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    $("rename").hidden = true;
    renderHead();
  }
});

$("rename").addEventListener("submit", async (e) => {
  e.preventDefault();
  const title = $("title-input").value.trim();
  const updated = await attempt(() => api.call("PATCH", path(state.current.id), { title: title || null }));
  if (!updated) return;
  $("rename").hidden = true;
  conversationChanged(updated);
});

$("toggle-system").addEventListener("click", () => {
  $("system").hidden = !$("system").hidden;
  $("system-saved").textContent = "";
});

$("system").addEventListener("submit", async (e) => {
  e.preventDefault();
  const prompt = $("system-prompt").value;
  const updated = await attempt(() =>
    api.call("PATCH", path(state.current.id), { system_prompt: prompt.trim() ? prompt : null }));
  if (!updated) return;
  conversationChanged(updated);
  $("system-saved").textContent = "Saved: the next reply uses it.";
});

let deleteArmed = null;
$("delete-conversation").addEventListener("click", async () => {
  const b = $("delete-conversation");
  if (!deleteArmed) {
    b.textContent = "Really delete?";
    deleteArmed = setTimeout(() => {
      deleteArmed = null;
      b.textContent = "Delete";
    }, 4000);
    return;
  }
  clearTimeout(deleteArmed);
  deleteArmed = null;
  b.textContent = "Delete";
  const id = state.current.id;
  const deleted = await attempt(async () => (await api.call("DELETE", path(id)), true));
  if (deleted) conversationGone(id);
});

// --- usage ---

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

$("open-usage").addEventListener("click", () => {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400000);
  if (!$("usage-from").value) $("usage-from").value = isoDay(weekAgo);
  if (!$("usage-to").value) $("usage-to").value = isoDay(today);
  $("usage").showModal();
  showUsage();
});

$("close-usage").addEventListener("click", () => $("usage").close());
$("usage-range").addEventListener("submit", (e) => {
  e.preventDefault();
  showUsage();
});

/// Tokens and cost by day and model: one /v1/usage call per day of the range.
async function showUsage() {
  const from = new Date(`${$("usage-from").value}T00:00:00Z`);
  const to = new Date(`${$("usage-to").value}T00:00:00Z`);
  const days = [];
  for (let d = to; d >= from && days.length < 32; d = new Date(d.getTime() - 86400000)) days.push(isoDay(d));
  if (days.length === 0 || days.length > 31) {
    showProblem({ title: "Invalid range", detail: "choose from 1 to 31 days, the first not after the last" });
    return;
  }
  const answers = await attempt(() => Promise.all(days.map((day) =>
    api.call("GET", `/v1/usage?from=${day}&to=${day}`))));
  if (!answers) return;
  const rows = [];
  const total = { requests: 0, total_tokens: 0, cost_usd: 0 };
  answers.forEach((answer, i) => {
    for (const m of answer.by_model) {
      if (m.requests === 0 && m.total_tokens === 0) continue;
      const tr = el("tr");
      for (const cell of [days[i], m.model, m.requests, m.prompt_tokens, m.completion_tokens, m.total_tokens])
        tr.append(el("td", null, typeof cell === "number" ? cell.toLocaleString() : cell));
      tr.append(el("td", null, m.cost_usd.toFixed(6)));
      rows.push(tr);
    }
    total.requests += answer.total.requests;
    total.total_tokens += answer.total.total_tokens;
    total.cost_usd += answer.total.cost_usd;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "hint", "No usage in these days.");
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  $("usage-table").tBodies[0].replaceChildren(...rows);
  $("usage-total").textContent = `${days.length} days: ${total.requests.toLocaleString()} requests, ` +
    `${total.total_tokens.toLocaleString()} tokens, $${total.cost_usd.toFixed(6)}`;
}

// --- narrow screens: the list slides over the conversation ---

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("toggle-sidebar").setAttribute("aria-expanded", "false");
}

$("close-sidebar").addEventListener("click", closeSidebar);
$("toggle-sidebar").addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  $("toggle-sidebar").setAttribute("aria-expanded", String(open));
});

// --- start ---

/// The conversation the address names (#ID), as on load or a link.
function openNamedConversation() {
  const wanted = location.hash.slice(1);
  if (credentials.ready && /^[0-9a-f-]{36}$/.test(wanted)) openConversation(wanted);
}

window.addEventListener("hashchange", openNamedConversation);
signedIn();
openNamedConversation();
