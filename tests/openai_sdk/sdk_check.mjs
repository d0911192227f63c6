// Drives Parley's OpenAI-compatible routes with the official `openai` package,
// as an application written against OpenAI would. tests/integration/
// test_api_openai.cpp starts the servers (and the mock upstream) and runs
// one scenario per call:
//
//   node sdk_check.mjs SCENARIO
//
// PARLEY_URL is the server's base URL, PARLEY_API_KEY what the SDK sends as
// its key (a JWT in jwt mode), PARLEY_USER the X-User-Id header (none mode).
// Exit status: 0 every check passed, 1 a check failed, 2 usage error.
import OpenAI from "openai";

const scenario = process.argv[2];
const baseUrl = process.env.PARLEY_URL;
if (!scenario || !baseUrl) {
  console.error("usage: PARLEY_URL=… node sdk_check.mjs SCENARIO");
  process.exit(2);
}
const headers = process.env.PARLEY_USER ? { "X-User-Id": process.env.PARLEY_USER } : {};
const client = new OpenAI({
  baseURL: `${baseUrl}/v1`,
  apiKey: process.env.PARLEY_API_KEY || "unused-in-none-mode",
  defaultHeaders: headers,
  maxRetries: 0,
});

let failures = 0;
function check(ok, what) {
  if (!ok) {
    failures++;
    console.error(`FAIL: ${what}`);
  }
}
function equal(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/// Runs `call`, which must throw the SDK's `errorClass` with `status`; returns the error.
async function expectError(errorClass, status, call, what) {
  try {
    await call();
  } catch (e) {
    check(e instanceof errorClass, `${what}: ${e.constructor.name} is not ${errorClass.name} (${e.message})`);
    equal(e.status, status, `${what}: status`);
    check(typeof e.message === "string" && e.message.length > 10, `${what}: a useful message`);
    check(Boolean(e.requestID), `${what}: the request id (x-request-id) is known`);
    return e;
  }
  check(false, `${what}: no error was raised`);
  return null;
}

/// Parley's own API, for what the SDK has no call for.
async function parley(method, path, body) {
  const r = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...headers,
      Authorization: `Bearer ${process.env.PARLEY_API_KEY || ""}`,
      "Content-Type": "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

async function chatWhole(model = "echo") {
  const c = await client.chat.completions.create({
    model,
    messages: [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: "hello from the sdk" },
    ],
  });
  equal(c.object, "chat.completion", "chat: object");
  equal(c.choices[0].message.role, "assistant", "chat: role");
  equal(c.choices[0].message.content, "Echo: hello from the sdk", "chat: text");
  equal(c.choices[0].finish_reason, "stop", "chat: finish_reason");
  check(c.usage.prompt_tokens > 0 && c.usage.completion_tokens > 0, "chat: usage");
  equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens, "chat: total");
  return c;
}

async function chatStreamed() {
  const stream = await client.chat.completions.create({
    model: "echo",
    messages: [{ role: "user", content: [{ type: "text", text: "streamed words arrive" }] }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    equal(chunk.object, "chat.completion.chunk", "stream: object");
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? "";
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  equal(text, "Echo: streamed words arrive", "stream: assembled text");
  check(chunks >= 4, `stream: one chunk per word (${chunks})`);
  equal(finish, "stop", "stream: finish_reason");
  check(usage && usage.completion_tokens > 0, "stream: usage chunk");
}

async function responses() {
  // A stored call without a conversation starts one.
  const first = await client.responses.create({ model: "echo", input: "first question" });
  equal(first.object, "response", "responses: object");
  equal(first.status, "completed", "responses: status");
  equal(first.output_text, "Echo: first question", "responses: output_text");
  equal(first.output[0].content[0].type, "output_text", "responses: output item");
  check(first.usage.input_tokens > 0 && first.usage.output_tokens > 0, "responses: usage");
  const conversation = first.conversation.id;
  check(Boolean(conversation), "responses: conversation id");

  // The reply is stored under the response's id.
  const fetched = await client.responses.retrieve(first.id);
  equal(fetched.output_text, first.output_text, "retrieve: text");
  equal(fetched.conversation.id, conversation, "retrieve: conversation");

  // Continuing from it appends to the same conversation.
  const second = await client.responses.create({
    model: "echo",
    input: "second question",
    previous_response_id: first.id,
  });
  equal(second.conversation.id, conversation, "previous_response_id: same conversation");
  equal(second.previous_response_id, first.id, "previous_response_id: echoed");

  // Continuing from the first again (no longer the active leaf) branches.
  const branched = await client.responses.create({
    model: "echo",
    input: "another second question",
    previous_response_id: first.id,
    instructions: "You are terse.",
  });
  equal(branched.conversation.id, conversation, "branch: same conversation");
  equal(branched.instructions, "You are terse.", "branch: instructions echoed");
  const tree = await parley("GET", `/v1/conversations/${conversation}/messages?view=all`);
  const users = tree.body.data.filter((m) => m.role === "user");
  equal(users.length, 3, "branch: every user message stored");
  const siblings = users.filter((m) => m.parent_id === first.id);
  equal(siblings.length, 2, "branch: both follow the first reply");
  const active = await parley("GET", `/v1/conversations/${conversation}/messages`);
  equal(active.body.data.map((m) => m.content).join("|"),
    "first question|Echo: first question|another second question|Echo: another second question",
    "branch: the new branch is active");

  // `conversation` appends to a conversation made through Parley's own API.
  const made = await parley("POST", "/v1/conversations", { title: "from the sdk" });
  equal(made.status, 201, "conversation: created");
  const appended = await client.responses.create({
    model: "echo",
    input: [{ role: "user", content: "appended here" }],
    conversation: made.body.id,
  });
  equal(appended.conversation.id, made.body.id, "conversation: reply stored there");
  const listed = await parley("GET", `/v1/conversations/${made.body.id}/messages`);
  equal(listed.body.data.length, 2, "conversation: message and reply");

  // store: false leaves nothing behind.
  const before = await parley("GET", `/v1/conversations/${conversation}/messages?view=all`);
  const unstored = await client.responses.create({
    model: "echo",
    input: "not kept",
    previous_response_id: branched.id,
    store: false,
  });
  equal(unstored.output_text, "Echo: not kept", "store false: answered");
  const after = await parley("GET", `/v1/conversations/${conversation}/messages?view=all`);
  equal(after.body.data.length, before.body.data.length, "store false: nothing stored");
  await expectError(OpenAI.NotFoundError, 404, () => client.responses.retrieve(unstored.id),
    "store false: not retrievable");
}

async function responsesStreamed() {
  const stream = await client.responses.create({
    model: "echo",
    input: "stream this reply",
    stream: true,
  });
  const types = [];
  let sequence = 0;
  let text = "";
  let completed = null;
  for await (const event of stream) {
    types.push(event.type);
    equal(event.sequence_number, sequence++, `stream event ${event.type}: sequence_number`);
    if (event.type === "response.output_text.delta") text += event.delta;
    if (event.type === "response.completed") completed = event.response;
  }
  equal(types[0], "response.created", "stream: first event");
  equal(types.at(-2), "response.output_text.done", "stream: text done");
  equal(types.at(-1), "response.completed", "stream: last event");
  equal(text, "Echo: stream this reply", "stream: deltas assembled");
  // Committed before response.completed: retrievable at once.
  const fetched = await client.responses.retrieve(completed.id);
  equal(fetched.output_text, text, "stream: stored before completed");
}

async function errors() {
  const unknown = await expectError(OpenAI.NotFoundError, 404, () =>
    client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
  "unknown model");
  equal(unknown?.code, "model_not_found", "unknown model: code");
  const role = await expectError(OpenAI.BadRequestError, 400, () =>
    client.chat.completions.create({ model: "echo", messages: [{ role: "wizard", content: "x" }] }),
  "bad role");
  equal(role?.param, "messages[0].role", "bad role: param");
  const empty = await expectError(OpenAI.BadRequestError, 400, () =>
    client.chat.completions.create({ model: "echo", messages: [] }), "empty messages");
  equal(empty?.param, "messages", "empty messages: param");
  const hot = await expectError(OpenAI.BadRequestError, 400, () =>
    client.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "x" }], temperature: 3 }),
  "temperature");
  equal(hot?.param, "temperature", "temperature: param");
  const both = await expectError(OpenAI.BadRequestError, 400, () =>
    client.responses.create({ model: "echo", input: "x", conversation: "01a24cdc-ddaf-7b85-bfc7-0aec2326e0d4", previous_response_id: "01a24cdc-ddaf-7b85-bfc7-0aec2326e0d5" }),
  "conversation with previous_response_id");
  equal(both?.param, "previous_response_id", "conversation with previous_response_id: param");
  await expectError(OpenAI.NotFoundError, 404, () =>
    client.responses.retrieve("01a24cdc-ddaf-7b85-bfc7-0aec2326e0d4"), "unknown response");
  await expectError(OpenAI.NotFoundError, 404, () =>
    client.responses.create({ model: "echo", input: "x", previous_response_id: "resp_123" }),
  "unknown previous response");
  await expectError(OpenAI.NotFoundError, 404, () =>
    client.responses.create({ model: "echo", input: "x", conversation: "01a24cdc-ddaf-7b85-bfc7-0aec2326e0d4" }),
  "unknown conversation");
}

const scenarios = {
  // Everything a none-mode server with the built-in model answers.
  basics: async () => {
    await chatWhole();
    await chatStreamed();
    await responses();
    await responsesStreamed();
    await errors();
  },
  // jwt mode: the token is the SDK's apiKey; a wrong one is refused.
  jwt: async () => {
    await chatWhole();
    const wrong = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "not-a-token", maxRetries: 0 });
    await expectError(OpenAI.AuthenticationError, 401, () =>
      wrong.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "x" }] }),
    "wrong token");
  },
  // The mock upstream fails (the test queued a 500): a provider error.
  "provider-failure": async () => {
    await expectError(OpenAI.APIError, 502, () =>
      client.chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "x" }] }),
    "provider failure");
  },
  // The first model fails, its fallback answers and is named.
  fallback: async () => {
    const c = await client.chat.completions.create({
      model: "backed",
      messages: [{ role: "user", content: "who answers" }],
    });
    equal(c.model, "claude", "fallback: the answering model");
    check(c.choices[0].message.content.length > 0, "fallback: text");
  },
  // A second request within the minute is refused with Retry-After.
  "rate-limit": async () => {
    await chatWhole();
    const e = await expectError(OpenAI.RateLimitError, 429, () => chatWhole(), "rate limit");
    check(e && Number(e.headers.get("retry-after")) >= 1, "rate limit: retry-after");
  },
};

if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
try {
  await scenarios[scenario]();
} catch (e) {
  failures++;
  console.error(`FAIL: ${scenario} threw ${e.constructor.name}: ${e.message}`);
}
if (failures) {
  console.error(`${scenario}: ${failures} check(s) failed`);
  process.exit(1);
}
console.log(`${scenario}: every check passed`);
