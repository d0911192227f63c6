// The public API as the playground calls it: fetch with the caller's
// credentials in headers (never in a URL), problems turned into errors that
// carry their title and detail, SSE answers read from a fetch body (an
// EventSource cannot send headers), and the conversation's WebSocket with the
// credentials offered as a subprotocol.

/// A failed call: the problem+json the server answered, or one made up for
/// a network failure or an answer that was not a problem.
export class ProblemError extends Error {
  constructor(problem) {
    super(`${problem.title}: ${problem.detail ?? ""}`);
    this.problem = problem;
  }
}

/// Who the playground speaks for: `mode` is the server's auth.mode.
export class Credentials {
  constructor(mode, storage) {
    this.mode = mode;
    this.storage = storage;
  }
  get userId() {
    return this.storage.getItem("parley.user") ?? "";
  }
  get token() {
    return this.storage.getItem("parley.token") ?? "";
  }
  set(value) {
    const key = this.mode === "jwt" ? "parley.token" : "parley.user";
    if (value) this.storage.setItem(key, value);
    else this.storage.removeItem(key);
  }
  /// Whether requests can be made: jwt mode needs a token.
  get ready() {
    return this.mode !== "jwt" || this.token !== "";
  }
  headers() {
    if (this.mode === "jwt") return this.token ? { Authorization: `Bearer ${this.token}` } : {};
    return this.userId ? { "X-User-Id": this.userId } : {};
  }
  /// The subprotocols a WebSocket offers: "parley" (which the server
  /// accepts) and the credentials, which a browser cannot send as headers.
  websocketProtocols() {
    const protocols = ["parley"];
    if (this.mode === "jwt" && this.token) protocols.push(`parley.bearer.${this.token}`);
    if (this.mode !== "jwt" && this.userId) protocols.push(`parley.user.${base64url(this.userId)}`);
    return protocols;
  }
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

async function problemOf(response) {
  const text = await response.text().catch(() => "");
  let problem = null;
  try {
    const body = JSON.parse(text);
    if (body && typeof body.title === "string") problem = body;
  } catch {
    // Not JSON: a proxy's page, say.
  }
  problem ??= { title: response.statusText || `HTTP ${response.status}`, status: response.status,
                detail: text.slice(0, 300) || `the server answered ${response.status}` };
  const retryAfter = response.headers.get("Retry-After");
  if (retryAfter) problem.detail = `${problem.detail ?? ""} (try again in ${retryAfter} s)`;
  return problem;
}

function networkProblem(error) {
  return { title: "Network error", status: 0, detail: `the server could not be reached (${error.message})` };
}

export class Api {
  constructor(credentials) {
    this.credentials = credentials;
  }

  async #fetch(method, path, body, extra = {}) {
    const headers = { ...this.credentials.headers(), ...extra.headers };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: extra.signal, cache: "no-store",
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ProblemError(networkProblem(e));
    }
    if (!response.ok) throw new ProblemError(await problemOf(response));
    return response;
  }

  /// The JSON answer of a call (null for 204).
  async call(method, path, body) {
    const response = await this.#fetch(method, path, body);
    return response.status === 204 ? null : response.json();
  }

  /// A streamed exchange: calls `onOpen(runId)` once the stream starts, then
  /// `onEvent(type, data, id)` for each SSE event until it ends. A problem
  /// the server answered before the stream started is thrown with
  /// `beforeStream` set: nothing was stored.
  async stream(path, body, { onOpen, onEvent, signal }) {
    let response;
    try {
      response = await this.#fetch("POST", path, { ...body, stream: true },
                                   { headers: { Accept: "text/event-stream" }, signal });
    } catch (e) {
      // Answered with a problem: nothing was stored. (Not after a network
      // failure: the request may have arrived.)
      if (e instanceof ProblemError && e.problem.status > 0) e.beforeStream = true;
      throw e;
    }
    onOpen(response.headers.get("X-Run-Id"));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (e.name === "AbortError") throw e;
        throw new ProblemError(networkProblem(e));
      }
      if (chunk.done) break;
      buffer += chunk.value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseEvent(block);
        if (event) onEvent(event.type, event.data, event.id);
      }
    }
  }

  /// The conversation's WebSocket (the caller attaches its handlers).
  websocket(conversationId) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new WebSocket(`${scheme}//${location.host}/v1/conversations/${conversationId}/ws`,
                         this.credentials.websocketProtocols());
  }
}

/// One SSE event block: {type, data (parsed JSON), id}, or null for a comment.
function parseEvent(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (data.length === 0) return null;
  try {
    return { type, id, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}

/// The run and number of an SSE event id "<run_id>:<n>".
export function runPosition(id) {
  const colon = id ? id.lastIndexOf(":") : -1;
  if (colon < 0) return { run: null, n: null };
  return { run: id.slice(0, colon), n: Number(id.slice(colon + 1)) };
}
