// The playground: a person's way into Parley through its public API alone.
// State lives here; the page's markup is http/playground/index.html.
import { Api, Credentials, ProblemError, runPosition } from "./api.js";
import { renderMarkdown, renderSnippet } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const mode = document.querySelector('meta[name="parley-auth-mode"]')?.content === "jwt" ? "jwt" : "none";
// A token lasts as long as the tab; a user id (no secret) across visits.
const credentials = new Credentials(mode, mode === "jwt" ? sessionStorage : localStorage);
const api = new Api(credentials);

// The newest messages of a conversation are those below the largest seq.
const newest = Number.MAX_SAFE_INTEGER;
const pageSize = 50;

const state = {
  models: [],
  conversations: new Map(),  // id → Conversation, as last read
  order: [],                 // ids, most recently updated first
  nextCursor: undefined,     // undefined: not read yet; null: the end
  loadingList: false,
  current: null,             // the open Conversation
  messages: [],              // its active branch as shown, ascending seq
  hasEarlier: false,
  runs: new Map(),           // run id → {lastN, text, done, element}
  own: null,                 // this tab's exchange: {controller, conversationId}
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
  state.conversations.clear();
  state.order = [];
  state.nextCursor = undefined;
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
  const answer = await attempt(() => api.call("GET", "/v1/models"));
  if (!answer) return;
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
  state.loadingList = true;
  try {
    const query = new URLSearchParams({ limit: "20" });
    if (state.nextCursor) query.set("cursor", state.nextCursor);
    const page = await api.call("GET", `/v1/conversations?${query}`);
    for (const c of page.data) conversationChanged(c);
    state.nextCursor = page.next_cursor;
  } catch (e) {
    report(e);
    return;
  } finally {
    state.loadingList = false;
  }
  // The sentinel may still be in view (a tall window): keep filling.
  if (state.nextCursor && sentinelVisible()) loadMoreConversations();
}

function sentinelVisible() {
  const box = $("sidebar").getBoundingClientRect();
  const end = $("list-end").getBoundingClientRect();
  return end.top <= box.bottom + 100;
}

new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && $("search-results").hidden) loadMoreConversations();
}, { root: $("sidebar"), rootMargin: "100px" }).observe($("list-end"));

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
    $("conversation-list").hidden = false;
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

function closeConversation() {
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000);
  }
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
  const conversation = await attempt(() => api.call("GET", path(id)));
  if (!conversation) return;
  state.current = conversation;
  conversationChanged(conversation);
  history.replaceState(null, "", `#${id}`);
  $("empty-state").hidden = true;
  $("conversation").hidden = false;
  $("system").hidden = true;
  $("rename").hidden = true;
  renderHead();
  await loadMessages();
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

/// The newest messages of the active branch, replacing what is shown.
async function loadMessages() {
  const id = state.current.id;
  const count = Math.min(200, Math.max(pageSize, state.messages.length));
  const page = await attempt(() => api.call("GET", `${path(id, "messages")}?limit=${count}&before=${newest}`));
  if (!page || state.current?.id !== id) return;
  state.messages = page.data;
  state.hasEarlier = page.has_more;
  renderMessages(true);
}

$("load-earlier").addEventListener("click", async () => {
  const id = state.current.id;
  const first = state.messages[0]?.seq ?? newest;
  const page = await attempt(() => api.call("GET", `${path(id, "messages")}?limit=${pageSize}&before=${first}`));
  if (!page || state.current?.id !== id) return;
  state.messages = [...page.data, ...state.messages];
  state.hasEarlier = page.has_more;
  renderMessages();
});

/// Puts a stored message where it belongs on the shown branch: after its
/// parent, in place of whatever followed the parent (a new branch), or, when
/// its parent is not shown, by reading the branch again.
function placeMessage(message) {
  const at = state.messages.findIndex((m) => m.id === message.id);
  if (at >= 0) {
    state.messages[at] = message;
  } else if (message.parent_id === null) {
    state.messages = [message];
    state.hasEarlier = false;
  } else {
    const parent = state.messages.findIndex((m) => m.id === message.parent_id);
    if (parent < 0) {
      loadMessages();
      return;
    }
    state.messages = [...state.messages.slice(0, parent + 1), message];
  }
  renderMessages();
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

function renderMessages(scrollToEnd = false) {
  const list = $("messages");
  const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const items = state.messages.map(renderMessage);
  for (const run of state.runs.values()) {
    if (run.done) continue;
    run.element = el("li", "msg assistant streaming");
    run.element.append(el("div", "meta", "Assistant · writing…"), messageBody("assistant", run.text));
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
    const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    run.element.lastElementChild.replaceWith(messageBody("assistant", run.text));
    if (nearEnd) list.scrollTop = list.scrollHeight;
  });
}

// --- runs: the events of an exchange, from this tab's stream or the socket ---

function runOf(id) {
  const key = id ?? "unnamed";
  let run = state.runs.get(key);
  if (!run) {
    run = { lastN: 0, text: "", done: false, element: null, frame: null };
    state.runs.set(key, run);
  }
  return run;
}

/// Whether an event is new: the stream and the socket both bring this tab's
/// own exchange, numbered alike.
function fresh(runId, n) {
  if (!runId || n === null || n === undefined) return true;
  const run = runOf(runId);
  if (n <= run.lastN) return false;
  run.lastN = n;
  return true;
}

const runEvents = {
  message(runId, n, message) {
    if (!fresh(runId, n)) return;
    runOf(runId);
    placeMessage(message);
  },
  delta(runId, n, text) {
    if (!fresh(runId, n)) return;
    const run = runOf(runId);
    run.text += text;
    if (!run.element) renderMessages();
    showRunText(run);
    setBusy();
  },
  compaction(runId, n) {
    fresh(runId, n);
  },
  done(runId, n, reply) {
    if (!fresh(runId, n)) return;
    runOf(runId).done = true;
    placeMessage(reply);
    setBusy();
    afterExchange();
  },
  error(runId, n, problem) {
    if (!fresh(runId, n)) return;
    runOf(runId).done = true;
    renderMessages();
    showProblem(problem);
    setBusy();
    afterExchange();
  },
};

/// After an exchange: the branch and the conversation as stored (sibling
/// counts, usage, the list's order).
let refreshTimer = null;
function afterExchange() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const id = state.current?.id;
    if (!id) return;
    const conversation = await attempt(() => api.call("GET", path(id)));
    if (conversation && state.current?.id === id) {
      conversationChanged(conversation, true);
      await loadMessages();
    }
  }, 150);
}

function running() {
  return state.own !== null || [...state.runs.values()].some((r) => !r.done && r.lastN > 0);
}

function setBusy() {
  $("send").disabled = state.own !== null;
  $("stop").hidden = !running();
}

/// Sends an exchange of this tab, streamed, and shows it as it comes.
async function exchange(route, body) {
  const conversationId = state.current.id;
  const controller = new AbortController();
  const own = { controller, conversationId };
  state.own = own;
  setBusy();
  try {
    await api.stream(route, body, (type, data, id) => {
      if (state.current?.id !== conversationId) return;
      const { run, n } = runPosition(id);
      const handle = runEvents[type];
      if (!handle) return;
      if (type === "delta") handle(run, n, data.content);
      else handle(run, n, data);
    }, controller.signal);
  } catch (e) {
    report(e);
    if (state.current?.id === conversationId) loadMessages();
  } finally {
    if (state.own === own) state.own = null;
    setBusy();
  }
}

async function sendMessage(text) {
  const conversation = state.current;
  await exchange(path(conversation.id, "messages"), { content: text });
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

$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", async () => {
  const id = state.current?.id;
  if (!id) return;
  try {
    await api.call("POST", path(id, "cancel"));
  } catch (e) {
    // 409: it ended on its own meanwhile.
    if (e.problem?.status !== 409) report(e);
  }
});

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
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = area.value;
    if (!text.trim() || state.own) return;
    state.editing = null;
    truncateFrom(message);
    // A sibling of the original: a new branch from its parent.
    exchange(path(state.current.id, "messages"), { content: text, parent_id: message.parent_id });
  });
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === "Escape") {
      stopEdit();
    }
  });
  return form;
}

function regenerate(message) {
  if (state.own) return;
  truncateFrom(message);
  exchange(path(state.current.id, "regenerate"), { message_id: message.id });
}

// --- the socket: every exchange of the conversation, whoever started it ---

function openSocket(id) {
  let socket;
  try {
    socket = api.websocket(id);
  } catch (e) {
    showProblem({ title: "No live updates", detail: e.message });
    return;
  }
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.socketFailures = 0;
    // An exchange already running (another tab's): from its start.
    if (state.current?.running) socket.send(JSON.stringify({ type: "resume" }));
  });
  socket.addEventListener("message", (m) => {
    if (state.socket !== socket) return;
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
    if (state.socketFailures > 5) {
      showProblem({ title: "No live updates",
                    detail: "the conversation's WebSocket keeps closing; reload the page to try again" });
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
      if (frame.error?.status === 404) return conversationGone(state.current?.id);
      return showProblem(frame.error ?? { title: "Error" });
    default:
      return undefined;
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

$("toggle-sidebar").addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  $("toggle-sidebar").setAttribute("aria-expanded", String(open));
});

// --- start ---

signedIn();
const wanted = location.hash.slice(1);
if (credentials.ready && /^[0-9a-f-]{36}$/.test(wanted)) openConversation(wanted);
