#define BOOST_TEST_MODULE chat_protocol
#include <boost/test/unit_test.hpp>

#include <random>

#include "providers/chat_protocol.hpp"

#include <nlohmann/json.hpp>

using namespace parley;
using nlohmann::json;

namespace {

completion_request conversation(bool stream) {
  completion_request r;
  r.upstream_model = "m-1";
  r.messages = {{"system", "Be terse."},
                {"user", "Hi"},
                {"assistant", "Hello."},
                {"user", "Plan a trip"},
                {"user", "to Lisbon"}};
  r.max_tokens = 256;
  r.temperature = 1.5;
  r.stream = stream;
  return r;
}

/// Feeds a recorded stream through the protocol, as the provider does.
struct stream_result {
  std::string text;
  decoded_piece last;  ///< reason and usage as they stand at the end
  std::optional<failure> error;
};

stream_result decode_stream(const chat_protocol& p, const std::string& body) {
  stream_result out;
  sse_parser parser([&](sse_event& e) {
    if (out.error || out.last.end) return;
    auto piece = p.decode_event(e);
    if (!piece) {
      out.error = piece.error();
      return;
    }
    out.text += piece->text;
    if (piece->reason) out.last.reason = piece->reason;
    if (piece->prompt_tokens) out.last.prompt_tokens = piece->prompt_tokens;
    if (piece->completion_tokens) out.last.completion_tokens = piece->completion_tokens;
    out.last.end = piece->end;
  });
  parser.feed(body);
  return out;
}

}  // namespace

// --- OpenAI ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(openai_request) {
  auto p = make_openai_protocol();
  BOOST_TEST(p->endpoint("https://api.groq.com/openai/v1") ==
             "https://api.groq.com/openai/v1/chat/completions");
  auto headers = p->headers("sk-test");
  BOOST_TEST((std::find(headers.begin(), headers.end(), "Authorization: Bearer sk-test") !=
              headers.end()));
  for (auto& h : p->headers("")) BOOST_TEST(h.find("Authorization") == std::string::npos);

  auto body = json::parse(p->request_body(conversation(false)));
  BOOST_TEST(body["model"] == "m-1");
  BOOST_REQUIRE(body["messages"].size() == 5u);
  BOOST_TEST(body["messages"][0] == (json{{"role", "system"}, {"content", "Be terse."}}));
  BOOST_TEST(body["messages"][4]["content"] == "to Lisbon");
  BOOST_TEST(body["max_tokens"] == 256);
  BOOST_TEST(body["temperature"] == 1.5);
  BOOST_TEST(!body.contains("stream"));

  auto streamed = json::parse(p->request_body(conversation(true)));
  BOOST_TEST(streamed["stream"] == true);
  BOOST_TEST(streamed["stream_options"]["include_usage"] == true);
}

/// The body as a json tree dumps it: how request_body wrote it before it
/// wrote the text out directly, and the standard it is held to.
std::string openai_body_as_a_tree(const completion_request& r) {
  json messages = json::array();
  for (auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content.str()}});
  json body{{"model", r.upstream_model}, {"messages", std::move(messages)}};
  if (r.max_tokens > 0) body["max_tokens"] = r.max_tokens;
  if (r.temperature) body["temperature"] = *r.temperature;
  if (r.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

BOOST_AUTO_TEST_CASE(openai_request_bytes_are_what_a_json_tree_dumps) {
  // Text of every kind: plain, quotes and backslashes, control characters,
  // DEL, valid multi-byte UTF-8, and invalid or cut-off sequences.
  const std::vector<std::string> pieces{
      "a", "Lisbon ", "\"",   "\\",   "\n",       "\t",           "\x01", "\x1f",        "\x7f",
      "é", "🙂",    "\xff", "\xc3", "\xe2\x82", "\xf0\x9f\x99", "\x80", "\xed\xa0\x80"};
  auto p = make_openai_protocol();
  std::mt19937 random(20261206);
  for (int round = 0; round < 2000; ++round) {
    completion_request r;
    r.upstream_model = round % 7 == 0 ? "m\"odd\xff" : "m-1";
    auto history = std::make_shared<prompt::history>();
    for (int m = 0, n = static_cast<int>(random() % 6); m < n; ++m) {
      std::string text;
      for (int k = 0, len = static_cast<int>(random() % 12); k < len; ++k)
        text += pieces[random() % pieces.size()];
      history->emplace_back(m % 2 ? "assistant" : "user", text);
    }
    std::optional<chat_message> system;
    if (round % 5 == 0) system.emplace("system", "Be \"terse\".");
    auto n = history->size();
    r.messages = prompt(system, history, 0, n, 0, std::nullopt);
    r.max_tokens = round % 3 == 0 ? 0 : static_cast<std::uint32_t>(random() % 5000);
    if (round % 4 == 0) r.temperature = (random() % 200) / 100.0;
    // Numbers json formats its own way, and a role that needs escaping.
    if (round == 1) {
      r.temperature = 1e-05;
      r.max_tokens = 4294967295u;
    }
    if (round == 2) r.temperature = 1.0;
    if (round == 3 && !history->empty()) (*history)[0].role = "us\"er";
    r.stream = round % 2 == 0;
    BOOST_TEST(p->request_body(r) == openai_body_as_a_tree(r), "round " << round);
  }
}

BOOST_AUTO_TEST_CASE(openai_answer) {
  // Recorded from api.openai.com (ids shortened).
  const std::string recorded = R"({
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
    "created": 1741569952, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Lisbon: 3 days.",
                 "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_06737a9306"})";
  auto p = make_openai_protocol();
  auto a = p->decode_answer(recorded);
  BOOST_REQUIRE(bool(a));
  BOOST_TEST(a->text == "Lisbon: 3 days.");
  BOOST_TEST((a->reason == finish_reason::stop));
  BOOST_TEST(*a->prompt_tokens == 19);
  BOOST_TEST(*a->completion_tokens == 10);
  BOOST_TEST(a->end);

  auto cut =
      p->decode_answer(R"({"choices":[{"message":{"content":"Lis"},"finish_reason":"length"}]})");
  BOOST_REQUIRE(bool(cut));
  BOOST_TEST((cut->reason == finish_reason::length));
  BOOST_TEST(!cut->prompt_tokens);  // no usage: the engine estimates
}

BOOST_AUTO_TEST_CASE(openai_stream) {
  // Recorded from api.openai.com with stream_options.include_usage.
  const std::string recorded =
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}"
      "\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"content\":\"Lisbon\"},\"finish_reason\":null}],\"usage\":null}\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"content\":\": 3 days.\"},\"finish_reason\":null}],\"usage\":null}\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
      "\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
      "\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":4,\"total_tokens\":23}}\n\n"
      "data: [DONE]\n\n";
  auto r = decode_stream(*make_openai_protocol(), recorded);
  BOOST_TEST(!r.error);
  BOOST_TEST(r.text == "Lisbon: 3 days.");
  BOOST_TEST((r.last.reason == finish_reason::length));
  BOOST_TEST(*r.last.prompt_tokens == 19);
  BOOST_TEST(*r.last.completion_tokens == 4);
  BOOST_TEST(r.last.end);
}

BOOST_AUTO_TEST_CASE(openai_errors_and_garbage) {
  auto p = make_openai_protocol();
  const std::string error_body =
      R"({"error": {"message": "Incorrect API key provided: sk-...abc.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})";
  BOOST_TEST(upstream_error_message(error_body) == "Incorrect API key provided: sk-...abc.");
  auto e = p->decode_answer(error_body);
  BOOST_REQUIRE(!e);
  BOOST_TEST((e.error().code == errc::provider_error));
  BOOST_TEST(!p->decode_answer("{not json"));
  BOOST_TEST(!p->decode_answer(R"({"choices": []})"));
  BOOST_TEST(!p->decode_answer(R"([1, 2])"));
  auto r = decode_stream(*p,
                         "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                         "data: {\"error\":{\"message\":\"overloaded\"}}\n\n");
  BOOST_TEST(r.text == "a");
  BOOST_REQUIRE(r.error.has_value());
  BOOST_TEST(r.error->detail.find("overloaded") != std::string::npos);
  BOOST_TEST(decode_stream(*p, "data: {oops\n\n").error.has_value());
  BOOST_TEST(!decode_stream(*p, "data: {\"choices\":[]}\n\n").last.end);  // not complete yet
}

// --- Anthropic ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(anthropic_request) {
  auto p = make_anthropic_protocol();
  BOOST_TEST(p->endpoint("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages");
  auto headers = p->headers("sk-ant");
  BOOST_TEST((std::find(headers.begin(), headers.end(), "x-api-key: sk-ant") != headers.end()));
  BOOST_TEST((std::find(headers.begin(), headers.end(), "anthropic-version: 2023-06-01") !=
              headers.end()));

  auto body = json::parse(p->request_body(conversation(true)));
  BOOST_TEST(body["model"] == "m-1");
  BOOST_TEST(body["system"] == "Be terse.");
  BOOST_TEST(body["max_tokens"] == 256);
  BOOST_TEST(body["temperature"] == 1.0);  // Anthropic's range ends at 1
  BOOST_TEST(body["stream"] == true);
  // The system prompt is not a message; the two user turns become one.
  BOOST_REQUIRE(body["messages"].size() == 3u);
  BOOST_TEST(body["messages"][0] == (json{{"role", "user"}, {"content", "Hi"}}));
  BOOST_TEST(body["messages"][1]["role"] == "assistant");
  BOOST_TEST(body["messages"][2] ==
             (json{{"role", "user"}, {"content", "Plan a trip\n\nto Lisbon"}}));

  completion_request bare;
  bare.upstream_model = "m";
  bare.messages = {{"user", "x"}};
  auto minimal = json::parse(p->request_body(bare));
  BOOST_TEST(minimal["max_tokens"] == 1024);  // required by the API
  BOOST_TEST(!minimal.contains("system"));
  BOOST_TEST(!minimal.contains("temperature"));
}

BOOST_AUTO_TEST_CASE(anthropic_answer) {
  // Recorded from api.anthropic.com.
  const std::string recorded = R"({
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
    "model": "claude-3-5-haiku-20241022",
    "content": [{"type": "text", "text": "Lisbon: "}, {"type": "text", "text": "3 days."}],
    "stop_reason": "max_tokens", "stop_sequence": null,
    "usage": {"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 8}})";
  auto a = make_anthropic_protocol()->decode_answer(recorded);
  BOOST_REQUIRE(bool(a));
  BOOST_TEST(a->text == "Lisbon: 3 days.");
  BOOST_TEST((a->reason == finish_reason::length));
  BOOST_TEST(*a->prompt_tokens == 21);
  BOOST_TEST(*a->completion_tokens == 8);
}

BOOST_AUTO_TEST_CASE(anthropic_stream) {
  // Recorded from api.anthropic.com (abridged ids).
  const std::string recorded =
      "event: message_start\n"
      "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
      "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-haiku-20241022\","
      "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":21,"
      "\"output_tokens\":1}}}\n\n"
      "event: content_block_start\n"
      "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
      "\"text\":\"\"}}\n\n"
      "event: ping\ndata: {\"type\": \"ping\"}\n\n"
      "event: content_block_delta\n"
      "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
      "\"text\":\"Lisbon\"}}\n\n"
      "event: content_block_delta\n"
      "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
      "\"text\":\": 3 days.\"}}\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
      "event: message_delta\n"
      "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
      "\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto r = decode_stream(*make_anthropic_protocol(), recorded);
  BOOST_TEST(!r.error);
  BOOST_TEST(r.text == "Lisbon: 3 days.");
  BOOST_TEST((r.last.reason == finish_reason::stop));
  BOOST_TEST(*r.last.prompt_tokens == 21);
  BOOST_TEST(*r.last.completion_tokens == 9);  // not message_start's advance count
  BOOST_TEST(r.last.end);
}

BOOST_AUTO_TEST_CASE(anthropic_errors) {
  auto p = make_anthropic_protocol();
  const std::string overloaded =
      R"({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})";
  BOOST_TEST(upstream_error_message(overloaded) == "Overloaded");
  BOOST_TEST(!p->decode_answer(overloaded));
  auto r = decode_stream(*p,
                         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                         "\"delta\":{\"type\":\"text_delta\",\"text\":\"Li\"}}\n\n"
                         "event: error\ndata: " +
                             overloaded + "\n\n");
  BOOST_TEST(r.text == "Li");
  BOOST_REQUIRE(r.error.has_value());
  BOOST_TEST(r.error->detail.find("Overloaded") != std::string::npos);
  BOOST_TEST(!p->decode_answer(R"({"type": "message"})"));  // no content
}
