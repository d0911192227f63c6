#define BOOST_TEST_MODULE openai_mapping
#include <boost/test/unit_test.hpp>

// The OpenAI-compatible bodies: what is accepted, what each invalid field is
// answered with (status, param, code), and OpenAI's JSON out.

#include "config/settings.hpp"
#include "http/openai_mapping.hpp"

using namespace parley;
using nlohmann::json;

namespace {

const model_registry& models() {
  static auto registry = model_registry::build(settings{});
  return *registry;
}

parse_limits limits() {
  parse_limits l;
  l.models = &models();
  return l;
}

json chat(json changes) {
  json body{{"model", "echo"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  body.merge_patch(changes);
  return body;
}

/// The status, param and code a body is refused with.
std::tuple<int, json, json> refusal(const parsed<chat_completion_call>& r) {
  BOOST_REQUIRE(!r);
  auto e = openai_error_json(r.error())["error"];
  return {openai_status(r.error()), e["param"], e["code"]};
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_chat_request_takes_roles_parts_sampling_and_stop) {
  auto r = parse_chat_completion(
      chat({{"messages",
             json::array({{{"role", "developer"}, {"content", "be brief"}},
                          {{"role", "user"},
                           {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                    {{"type", "text"}, {"text", "b"}}})}}})},
            {"temperature", 0.5},
            {"max_completion_tokens", 9},
            {"stop", "END"},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}}}),
      limits());
  BOOST_REQUIRE(r);
  BOOST_TEST(r->request.model == "echo");
  BOOST_TEST(r->request.messages.size() == 2u);
  BOOST_TEST(r->request.messages[0].role == "system");
  BOOST_TEST(r->request.messages[1].content.str() == "ab");
  BOOST_TEST(*r->request.temperature == 0.5);
  BOOST_TEST(*r->request.max_tokens == 9u);
  BOOST_TEST(r->request.stop == std::vector<std::string>{"END"});
  BOOST_TEST(r->stream);
  BOOST_TEST(r->include_usage);
}

BOOST_AUTO_TEST_CASE(each_invalid_chat_field_is_a_400_naming_it) {
  auto expect = [](json changes, const char* param) {
    auto [status, p, code] = refusal(parse_chat_completion(chat(changes), limits()));
    BOOST_TEST(status == 400, changes.dump());
    BOOST_TEST(p == param, changes.dump() << " named " << p.dump());
  };
  expect({{"messages", json::array()}}, "messages");
  expect({{"messages", "hi"}}, "messages");
  expect({{"messages", json::array({{{"role", "tool"}, {"content", "x"}}})}}, "messages[0].role");
  expect({{"messages", json::array({{{"role", "user"}}})}}, "messages[0].content");
  expect({{"messages", json::array({{{"role", "user"}, {"content", json::array({1})}}})}},
         "messages[0].content[0]");
  expect({{"temperature", 2.5}}, "temperature");
  expect({{"temperature", "hot"}}, "temperature");
  expect({{"max_tokens", 0}}, "max_tokens");
  expect({{"stop", json::array({"a", "b", "c", "d", "e"})}}, "stop");
  expect({{"stream", "yes"}}, "stream");
  expect({{"stream_options", {{"include_usage", 1}}}}, "stream_options");
  expect({{"model", nullptr}}, "model");
}

BOOST_AUTO_TEST_CASE(an_unknown_model_is_404_model_not_found) {
  auto [status, param, code] = refusal(parse_chat_completion(chat({{"model", "gpt-9"}}), limits()));
  BOOST_TEST(status == 404);
  BOOST_TEST(code == "model_not_found");
  BOOST_TEST(param == "model");
}

BOOST_AUTO_TEST_CASE(messages_longer_than_the_model_takes_are_refused_not_cut) {
  std::string long_text(40000, 'x');
  auto [status, param, code] = refusal(parse_chat_completion(
      chat({{"messages", json::array({{{"role", "user"}, {"content", long_text}}})}}), limits()));
  BOOST_TEST(status == 400);
  BOOST_TEST(code == "context_length_exceeded");
  BOOST_TEST(param == "messages");
}

BOOST_AUTO_TEST_CASE(a_responses_request_splits_instructions_from_the_messages) {
  auto r = parse_response_request(
      {{"input", json::array({{{"role", "system"}, {"content", "rules"}},
                              {{"type", "message"}, {"role", "user"}, {"content", "q"}}})},
       {"instructions", "be kind"},
       {"conversation", {{"id", "c"}}},
       {"store", false}},
      limits());
  BOOST_REQUIRE(r);
  BOOST_TEST(r->input.size() == 1u);
  BOOST_TEST(*r->instructions == "be kind\n\nrules");
  BOOST_TEST(*r->conversation == "c");
  BOOST_TEST(!r->store);
  BOOST_TEST(!r->model);
}

BOOST_AUTO_TEST_CASE(invalid_responses_requests_name_their_field) {
  auto param_of = [](json body) {
    auto r = parse_response_request(body, limits());
    BOOST_REQUIRE(!r);
    return openai_error_json(r.error())["error"]["param"];
  };
  BOOST_TEST(param_of({{"input", ""}}) == "input");
  BOOST_TEST(param_of(json::object()) == "input");
  BOOST_TEST(param_of({{"input", json::array({{{"type", "function_call"}}})}}) == "input[0].type");
  BOOST_TEST(param_of({{"input", json::array({{{"role", "system"}, {"content", "x"}}})}}) ==
             "input");
  BOOST_TEST(param_of({{"input", "x"}, {"conversation", "a"}, {"previous_response_id", "b"}}) ==
             "previous_response_id");
  BOOST_TEST(param_of({{"input", "x"}, {"max_output_tokens", -1}}) == "max_output_tokens");
}

BOOST_AUTO_TEST_CASE(answers_render_in_openai_shapes) {
  stateless_result r{"echo", "Echo: hi", finish_reason::length, {3, 2}};
  auto c = chat_completion_json("chatcmpl-1", 5000, r);
  BOOST_TEST(c["created"] == 5);
  BOOST_TEST(c["choices"][0]["finish_reason"] == "length");
  BOOST_TEST(c["usage"]["total_tokens"] == 5);
  completion_usage u{1, 2};
  auto last = chat_chunk_json("chatcmpl-1", 5000, "echo", nullptr, nullptr, &u);
  BOOST_TEST(last["choices"].empty());
  BOOST_TEST(last["usage"]["completion_tokens"] == 2);
  message_record m;
  m.id = "m1";
  m.content = std::string("text");
  m.finish_reason = "length";
  m.model = "echo";
  conversation_record conv;
  conv.id = "c1";
  auto resp = response_json(response_of(m, conv));
  BOOST_TEST(resp["status"] == "incomplete");
  BOOST_TEST(resp["incomplete_details"]["reason"] == "max_output_tokens");
  BOOST_TEST(resp["output"][0]["content"][0]["text"] == "text");
  BOOST_TEST(resp["conversation"]["id"] == "c1");
  auto p = make_problem(429, "slow down");
  BOOST_TEST(openai_error_json(p)["error"]["type"] == "rate_limit_error");
  BOOST_TEST(openai_error_json(make_problem(503, "x"))["error"]["type"] == "server_error");
  auto provider = make_problem(502, "the model failed");
  provider.message_id = "m-user";
  BOOST_TEST(openai_error_json(provider)["error"]["message_id"] == "m-user");
  BOOST_TEST(!openai_error_json(p)["error"].contains("message_id"));
}
