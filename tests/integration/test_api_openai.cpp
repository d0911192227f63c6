#define BOOST_TEST_MODULE api_openai
#include <boost/test/unit_test.hpp>

// The OpenAI-compatible routes against the real server: driven by the official
// `openai` npm package (tests/openai_sdk/sdk_check.mjs, one scenario per
// case), and on the wire where the SDK hides what matters (the stream's
// last line, headers, metering, cancellation).

#include "support/api.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/jwt_signer.hpp"
#include "support/mock_upstream_process.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <unistd.h>

#include <ctime>
#include <memory>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const std::string jwt_secret = "openai-routes-secret-1c3e5d7b9f0a2c4e6f8a1c3e5d7b9f0a";

mock_upstream& mock() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

/// Models on the mock: `gpt` alone, `backed` falling back to `claude`.
std::string providers_toml() {
  return "[[providers]]\nname = \"oai\"\nkind = \"openai\"\nbase_url = \"" +
         mock().openai_base_url() +
         "\"\napi_key_env = \"MOCK_KEY\"\ntimeout_ms = 3000\nstall_timeout_ms = 500\n"
         "[[providers]]\nname = \"ant\"\nkind = \"anthropic\"\nbase_url = \"" +
         mock().base_url() +
         "\"\napi_key_env = \"MOCK_KEY\"\ntimeout_ms = 3000\n"
         "[[models]]\nid = \"gpt\"\nprovider = \"oai\"\nupstream = \"gpt-up\"\n"
         "[[models]]\nid = \"claude\"\nprovider = \"ant\"\nupstream = \"claude-up\"\n"
         "[[models]]\nid = \"backed\"\nprovider = \"oai\"\nupstream = \"backed-up\"\n"
         "fallback = \"claude\"\n";
}

server_process& server() {
  static auto s = std::make_unique<server_process>(
      server_options{.config_toml = providers_toml(), .env = {{"MOCK_KEY", "sk-mock"}}});
  return *s;
}

/// Runs one scenario of sdk_check.mjs against `base_url`; its output on failure.
void run_sdk(const std::string& scenario, const std::string& base_url,
             std::map<std::string, std::string> env = {}) {
  temp_dir dir;
  env["PARLEY_URL"] = base_url;
  auto out = dir.path() + "/out", err = dir.path() + "/err";
  auto pid = spawn({"/usr/bin/env", "node",
                    std::string(PARLEY_SOURCE_DIR) + "/tests/openai_sdk/sdk_check.mjs", scenario},
                   env, dir.path(), out, err);
  int code = wait_exit(pid, std::chrono::seconds(90));
  BOOST_TEST(code == 0, scenario << " exited " << code << ":\n"
                                 << read_file(out) << read_file(err));
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_sdk_creates_completions_and_responses_and_gets_typed_errors) {
  run_sdk("basics", server().base_url(), {{"PARLEY_USER", "sdk-user"}});
}

BOOST_AUTO_TEST_CASE(the_sdk_passes_a_jwt_as_its_api_key) {
  server_process jwt_server(server_options{.config_toml = "[auth]\nmode = \"jwt\"\n",
                                           .env = {{"PARLEY_JWT_SECRET", jwt_secret}}});
  auto now = static_cast<std::int64_t>(std::time(nullptr));
  auto token = jwt_hs256({{"sub", "sdk-jwt-user"}, {"exp", now + 600}}, jwt_secret);
  run_sdk("jwt", jwt_server.base_url(), {{"PARLEY_API_KEY", token}});
  // The token's subject is the caller: the usage is metered to it.
  http_client c(jwt_server.base_url());
  auto usage = c.get("/v1/usage", {"Authorization: Bearer " + token});
  BOOST_TEST(usage.status == 200);
  BOOST_TEST(usage.json()["user_id"] == "sdk-jwt-user");
  BOOST_TEST(usage.json()["total"]["requests"] == 1);
}

BOOST_AUTO_TEST_CASE(a_provider_failure_reaches_the_sdk_as_an_error) {
  mock().clear_behaviors();
  // Enough failures for the provider's own retries too.
  mock().push_behaviors(json::array({{{"status", 500}},
                                     {{"status", 500}},
                                     {{"status", 500}},
                                     {{"status", 500}},
                                     {{"status", 500}}}));
  run_sdk("provider-failure", server().base_url(), {{"PARLEY_USER", "sdk-failure"}});
  mock().clear_behaviors();
}

BOOST_AUTO_TEST_CASE(a_fallback_model_answers_when_the_first_fails) {
  mock().clear_behaviors();
  mock().push_behaviors(json::array({{{"status", 400}}}));  // not retried: straight to the fallback
  run_sdk("fallback", server().base_url(), {{"PARLEY_USER", "sdk-fallback"}});
  mock().clear_behaviors();
}

BOOST_AUTO_TEST_CASE(the_sdk_sees_a_rate_limit_with_retry_after) {
  server_process limited(server_options{.config_toml = "[limits]\nrequests_per_minute = 1\n"});
  run_sdk("rate-limit", limited.base_url(), {{"PARLEY_USER", "sdk-limited"}});
}

BOOST_AUTO_TEST_CASE(a_stream_ends_with_done_and_every_answer_has_a_request_id) {
  http_client c(server().base_url(), "wire-user");
  auto r = c.post("/v1/chat/completions",
                  {{"model", "echo"},
                   {"messages", json::array({{{"role", "user"}, {"content", "a b c"}}})},
                   {"stream", true}});
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.header("content-type") == "text/event-stream");
  BOOST_TEST(!r.header("x-request-id").empty());
  BOOST_TEST(r.body.ends_with("data: [DONE]\n\n"));
  // Without include_usage, no chunk carries usage.
  BOOST_TEST(r.body.find("\"usage\"") == std::string::npos);
  auto bad = c.post("/v1/chat/completions", json{{"model", "echo"}, {"messages", "no"}});
  BOOST_TEST(bad.status == 400);
  BOOST_TEST(bad.header("content-type") == "application/json");
  BOOST_TEST(!bad.header("x-request-id").empty());
  BOOST_TEST(bad.json()["error"]["param"] == "messages");
  BOOST_TEST(bad.json()["error"]["type"] == "invalid_request_error");
  auto malformed =
      c.request("POST", "/v1/responses", "{not json", {"Content-Type: application/json"});
  BOOST_TEST(malformed.status == 400);
  BOOST_TEST(malformed.json()["error"]["message"].is_string());
  // Another user's stored reply is not found, as a missing one.
  auto mine = c.post("/v1/responses", json{{"input", "private"}});
  BOOST_REQUIRE(mine.status == 200);
  http_client other(server().base_url(), "wire-other");
  auto theirs = other.get("/v1/responses/" + mine.json()["id"].get<std::string>());
  BOOST_TEST(theirs.status == 404);
  BOOST_TEST(theirs.json()["error"]["type"] == "invalid_request_error");
}

BOOST_AUTO_TEST_CASE(completions_are_metered_and_held_to_the_daily_tokens) {
  server_process quota(server_options{.config_toml = "[limits]\ntokens_per_day = 30\n"});
  http_client c(quota.base_url(), "quota-user");
  json body{{"model", "echo"},
            {"messages", json::array({{{"role", "user"}, {"content", "one two three four"}}})}};
  int answered = 0;
  http_response last;
  for (int i = 0; i < 10; ++i) {
    last = c.post("/v1/chat/completions", body);
    if (last.status != 200) break;
    ++answered;
  }
  BOOST_TEST(answered >= 1);
  BOOST_TEST(last.status == 429);
  BOOST_TEST(std::stoi(last.header("retry-after")) >= 1);
  BOOST_TEST(last.json()["error"]["type"] == "rate_limit_error");
  auto usage = c.get("/v1/usage").json();
  BOOST_TEST(usage["total"]["requests"] == answered);
  BOOST_TEST(usage["by_model"][0]["model"] == "echo");
  // Metering is per user: another user is not held back.
  http_client other(quota.base_url(), "quota-other");
  BOOST_TEST(other.post("/v1/chat/completions", body).status == 200);
}

BOOST_AUTO_TEST_CASE(a_client_that_goes_away_cancels_the_upstream_request) {
  mock().clear_behaviors();
  auto abandoned_before = mock().stats()["abandoned"].get<int>();
  mock().push_behaviors(json::array({{{"fault", "stall"}}}));
  int fd = raw_post(
      server().port(), "/v1/chat/completions",
      R"({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "x"}]})",
      "gone-user");
  std::this_thread::sleep_for(milliseconds(300));
  close(fd);
  BOOST_TEST(eventually([&] { return mock().stats()["abandoned"].get<int>() > abandoned_before; }));
  BOOST_TEST(mock().stats()["in_flight"] == 0);
  mock().clear_behaviors();
}

BOOST_AUTO_TEST_CASE(stop_sequences_reach_the_upstream_and_end_the_echo) {
  mock().clear_behaviors();
  mock().clear_requests();
  http_client c(server().base_url(), "stop-user");
  auto r = c.post("/v1/chat/completions",
                  {{"model", "gpt"},
                   {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                   {"stop", json::array({"END", "###"})},
                   {"max_tokens", 7}});
  BOOST_TEST(r.status == 200);
  auto sent = mock().requests().back()["body"];
  BOOST_TEST(sent["stop"] == json::array({"END", "###"}));
  BOOST_TEST(sent["max_tokens"] == 7);
  auto echo =
      c.post("/v1/chat/completions",
             {{"model", "echo"},
              {"messages", json::array({{{"role", "user"}, {"content", "keep this. cut"}}})},
              {"stop", "."}});
  BOOST_TEST(echo.json()["choices"][0]["message"]["content"] == "Echo: keep this");
}

namespace {

json post_response(http_client& c, const json& body, long status = 200) {
  auto r = c.post("/v1/responses", body);
  BOOST_REQUIRE_MESSAGE(r.status == status, r.status << " " << r.body);
  return r.json();
}

json user_message(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

}  // namespace

BOOST_AUTO_TEST_CASE(a_multi_message_input_is_stored_in_order_and_the_last_answered) {
  http_client c(server().base_url(), "steps-user");
  auto r = post_response(c, {{"input", json::array({user_message("u1"),
                                                    {{"role", "assistant"}, {"content", "a1"}},
                                                    {{"role", "developer"}, {"content", "rules"}},
                                                    user_message("u2")})}});
  BOOST_TEST(r["output_text"] == "Echo: u2");
  std::string id = r["conversation"]["id"];
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 4u);
  std::vector<std::string> contents;
  for (auto& m : stored) contents.push_back(m["content"]);
  BOOST_TEST((contents == std::vector<std::string>{"u1", "a1", "u2", "Echo: u2"}));
  for (std::size_t i = 1; i < stored.size(); ++i)
    BOOST_TEST(stored[i]["parent_id"] == stored[i - 1]["id"]);
  BOOST_TEST(stored[3]["id"] == r["id"]);
  // Onto an existing conversation, after its active leaf.
  auto more = post_response(c, {{"conversation", {{"id", id}}},
                                {"input", json::array({user_message("u3"), user_message("u4")})}});
  BOOST_TEST(more["output_text"] == "Echo: u4");
  auto after = all_messages(c, id);
  BOOST_REQUIRE(after.size() == 7u);
  BOOST_TEST(after[4]["parent_id"] == r["id"]);
  BOOST_TEST(after[5]["content"] == "u4");
}

BOOST_AUTO_TEST_CASE(a_failing_provider_ends_streams_with_their_failure_and_keeps_the_input) {
  mock().clear_behaviors();
  http_client c(server().base_url(), "failing-user");
  auto conversation = create_conversation(c, {{"model", "gpt"}});
  // 400 is not retried and `gpt` has no fallback: one behavior, one failure.
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto streamed = c.post(
      "/v1/responses", {{"conversation", conversation}, {"input", "will fail"}, {"stream", true}});
  BOOST_TEST(streamed.status == 200);
  BOOST_TEST(streamed.body.find("event: response.created") != std::string::npos);
  BOOST_TEST(streamed.body.find("event: response.failed") != std::string::npos);
  BOOST_TEST(streamed.body.find("response.completed") == std::string::npos);
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto whole = c.post("/v1/responses", {{"conversation", conversation}, {"input", "fails too"}});
  BOOST_TEST(whole.status == 502);
  BOOST_TEST(whole.json()["error"]["type"] == "server_error");
  // The inputs stay stored, without replies.
  auto stored = all_messages(c, conversation);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[0]["content"] == "will fail");
  BOOST_TEST(stored[1]["role"] == "user");

  mock().push_behaviors(json::array({{{"status", 400}}}));
  json chat{{"model", "gpt"}, {"messages", json::array({user_message("x")})}, {"stream", true}};
  auto chunks = c.post("/v1/chat/completions", chat);
  BOOST_TEST(chunks.status == 200);
  BOOST_TEST(chunks.body.find("data: {\"error\":") != std::string::npos);
  BOOST_TEST(chunks.body.find("[DONE]") == std::string::npos);
  mock().clear_behaviors();
}

BOOST_AUTO_TEST_CASE(store_false_reads_the_branch_as_context_and_stores_nothing) {
  mock().clear_behaviors();
  http_client c(server().base_url(), "context-user");
  auto first = post_response(c, {{"model", "gpt"}, {"input", "remember the number 42"}});
  std::string conversation = first["conversation"]["id"];
  auto before = all_messages(c, conversation).size();
  mock().clear_requests();
  auto r = c.post("/v1/responses", {{"conversation", conversation},
                                    {"input", "which number?"},
                                    {"instructions", "Be exact."},
                                    {"store", false},
                                    {"stream", true}});
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body.find("event: response.completed") != std::string::npos);
  auto sent = mock().requests().back()["body"]["messages"];
  BOOST_REQUIRE(sent.size() == 4u);
  BOOST_TEST(sent[0] == json({{"role", "system"}, {"content", "Be exact."}}));
  BOOST_TEST(sent[1]["content"] == "remember the number 42");
  BOOST_TEST(sent[3]["content"] == "which number?");
  BOOST_TEST(all_messages(c, conversation).size() == before);
}

BOOST_AUTO_TEST_CASE(ids_that_name_nothing_of_the_callers_are_404_naming_the_field) {
  http_client alice(server().base_url(), "alice-oa");
  http_client bob(server().base_url(), "bob-oa");
  auto mine = post_response(alice, {{"input", "mine"}});
  std::string conversation = mine["conversation"]["id"];
  auto param_of = [](const http_response& r) {
    BOOST_TEST(r.status == 404);
    return r.json()["error"]["param"];
  };
  // Someone else's reply and conversation, stored or not.
  BOOST_TEST(
      param_of(bob.post("/v1/responses", {{"input", "x"}, {"previous_response_id", mine["id"]}})) ==
      "previous_response_id");
  BOOST_TEST(param_of(bob.post("/v1/responses", {{"input", "x"},
                                                 {"previous_response_id", mine["id"]},
                                                 {"store", false}})) == "previous_response_id");
  BOOST_TEST(
      param_of(bob.post("/v1/responses", {{"input", "x"}, {"conversation", conversation}})) ==
      "conversation");
  BOOST_TEST(param_of(bob.post("/v1/responses", {{"input", "x"},
                                                 {"conversation", conversation},
                                                 {"store", false}})) == "conversation");
  BOOST_TEST(bob.get("/v1/responses/" + mine["id"].get<std::string>()).status == 404);
  // A user message is no response.
  auto user_id = all_messages(alice, conversation)[0]["id"];
  BOOST_TEST(
      param_of(alice.post("/v1/responses", {{"input", "x"}, {"previous_response_id", user_id}})) ==
      "previous_response_id");
  BOOST_TEST(alice.get("/v1/responses/" + user_id.get<std::string>()).status == 404);
  // A deleted reply is gone as a response too.
  auto deleted = post_response(alice, {{"input", "short-lived"}});
  std::string path = "/v1/conversations/" + deleted["conversation"]["id"].get<std::string>();
  BOOST_TEST(alice.del(path).status == 204);
  BOOST_TEST(param_of(alice.post("/v1/responses",
                                 {{"input", "x"}, {"previous_response_id", deleted["id"]}})) ==
             "previous_response_id");
}

BOOST_AUTO_TEST_CASE(every_refusal_on_these_routes_is_in_openai_shape) {
  http_client c(server().base_url(), "shape-user");
  auto expect = [](const http_response& r, long status, const char* type) {
    BOOST_TEST(r.status == status, r.status << " " << r.body);
    BOOST_TEST(r.header("content-type") == "application/json");
    BOOST_TEST(!r.header("x-request-id").empty());
    BOOST_TEST(r.json()["error"]["type"] == type);
    BOOST_TEST(r.json()["error"]["message"].get<std::string>().size() > 5u);
  };
  expect(c.request("POST", "/v1/chat/completions", "{}", {"Content-Type: text/plain"}), 415,
         "invalid_request_error");
  auto wrong_method = c.get("/v1/chat/completions");
  expect(wrong_method, 405, "invalid_request_error");
  BOOST_TEST(wrong_method.header("allow") == "POST");
  std::string huge(2 * 1024 * 1024, 'x');
  expect(c.post("/v1/responses", {{"input", huge}}), 413, "invalid_request_error");
  auto too_long = c.post(
      "/v1/chat/completions",
      {{"model", "echo"}, {"messages", json::array({user_message(std::string(40000, 'y'))})}});
  expect(too_long, 400, "invalid_request_error");
  BOOST_TEST(too_long.json()["error"]["code"] == "context_length_exceeded");
  expect(c.post("/v1/chat/completions",
                {{"model", "echo"}, {"messages", json::array({user_message("x")})}, {"stop", ""}}),
         400, "invalid_request_error");
}

BOOST_AUTO_TEST_CASE(the_generation_slots_and_the_deadline_hold_on_these_routes) {
  server_process slow(server_options{
      .config_toml = "[limits]\nconcurrent_generations = 1\n[actors]\ngeneration_timeout_ms = "
                     "3000\n[[providers]]\nname = \"slow\"\nkind = \"builtin\"\nitl_ms = 200\n"
                     "[[models]]\nid = \"slow-echo\"\nprovider = \"slow\"\nupstream = \"echo\"\n"});
  // Twenty words at 200 ms each outlast the 3 s deadline.
  std::string words;
  for (int i = 1; i <= 20; ++i) words += "w" + std::to_string(i) + " ";
  json slow_call{{"model", "slow-echo"}, {"messages", json::array({user_message(words)})}};
  // A streamed call holds the user's one generation slot while it runs.
  auto streamed_call = slow_call;
  streamed_call["stream"] = true;
  int fd = raw_post(slow.port(), "/v1/chat/completions", streamed_call.dump(), "slot-user");
  std::string streamed;
  // The stream's start (it stays open).
  for (int waited = 0; streamed.find("\r\n\r\n") == std::string::npos && waited < 25; ++waited)
    closed_within(fd, milliseconds(200), &streamed);
  BOOST_REQUIRE_MESSAGE(streamed.rfind("HTTP/1.1 200", 0) == 0u, streamed);
  http_client c(slow.base_url(), "slot-user");
  json quick{{"model", "echo"}, {"messages", json::array({user_message("x")})}};
  auto refused = c.post("/v1/chat/completions", quick);
  BOOST_TEST(refused.status == 429);
  BOOST_TEST(refused.json()["error"]["type"] == "rate_limit_error");
  BOOST_TEST(!refused.header("retry-after").empty());
  // The stream meets the deadline: its last line is the 504's error.
  closed_within(fd, milliseconds(6000), &streamed);
  close(fd);
  BOOST_TEST(streamed.find("data: {\"error\":") != std::string::npos, streamed);
  BOOST_TEST(streamed.find("did not answer in time") != std::string::npos);
  // A whole answer too: 504, and the slot is free again.
  auto late = c.post("/v1/chat/completions", slow_call);
  BOOST_TEST(late.status == 504, late.status << " " << late.body);
  BOOST_TEST(late.json()["error"]["type"] == "server_error");
  BOOST_TEST(c.post("/v1/chat/completions", quick).status == 200);
}

BOOST_AUTO_TEST_CASE(a_streamed_keyed_call_to_a_missing_conversation_is_answered_404) {
  http_client c(server().base_url(), "missing-keyed");
  std::string missing = "01a24cdc-ddaf-7b85-bfc7-0aec2326e0d4";
  auto responses =
      c.post("/v1/responses", {{"conversation", missing}, {"input", "x"}, {"stream", true}},
             {"Idempotency-Key: missing-1"});
  BOOST_TEST(responses.status == 404);
  BOOST_TEST(responses.json()["error"]["param"] == "conversation");
  // Parley's own route, the same way.
  auto own = c.post("/v1/conversations/" + missing + "/messages",
                    {{"content", "x"}, {"stream", true}}, {"Idempotency-Key: missing-2"});
  BOOST_TEST(own.status == 404);
  BOOST_TEST(own.header("content-type") == "application/problem+json");
}

BOOST_AUTO_TEST_CASE(a_repeated_idempotency_key_replays_a_stored_response) {
  http_client c(server().base_url(), "idem-oa");
  for (auto input : {json("just one"),
                     json::array({user_message("first of two"), user_message("second of two")})}) {
    std::string key = "responses-" + std::to_string(input.size());
    json body{{"input", input}};
    auto first = c.post("/v1/responses", body, {"Idempotency-Key: " + key});
    BOOST_REQUIRE(first.status == 200);
    std::string conversation = first.json()["conversation"]["id"];
    auto stored = all_messages(c, conversation).size();
    auto again = c.post("/v1/responses", body, {"Idempotency-Key: " + key});
    BOOST_TEST(again.status == 200);
    BOOST_TEST(again.header("idempotent-replayed") == "true");
    BOOST_TEST(again.json()["id"] == first.json()["id"]);
    BOOST_TEST(again.json()["output_text"] == first.json()["output_text"]);
    BOOST_TEST(all_messages(c, conversation).size() == stored);
    auto other = c.post("/v1/responses", {{"input", "another body"}}, {"Idempotency-Key: " + key});
    BOOST_TEST(other.status == 400);
    BOOST_TEST(other.json()["error"]["param"] == "Idempotency-Key");
  }
  // A repeat after its conversation was deleted still gets the first answer.
  json onto{{"input", "onto"}};
  auto made = post_response(c, {{"input", "start"}});
  std::string conversation = made["conversation"]["id"];
  onto["conversation"] = conversation;
  auto first = c.post("/v1/responses", onto, {"Idempotency-Key: onto-deleted"});
  BOOST_REQUIRE(first.status == 200);
  BOOST_TEST(c.del("/v1/conversations/" + conversation).status == 204);
  auto again = c.post("/v1/responses", onto, {"Idempotency-Key: onto-deleted"});
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.json()["id"] == first.json()["id"]);
}

BOOST_AUTO_TEST_CASE(a_multi_message_input_that_fails_stores_all_of_it_once) {
  mock().clear_behaviors();
  http_client c(server().base_url(), "atomic-oa");
  auto conversation = create_conversation(c, {{"model", "gpt"}});
  json body{{"conversation", conversation},
            {"input", json::array({user_message("one"), user_message("two")})}};
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto failed = c.post("/v1/responses", body, {"Idempotency-Key: atomic"});
  BOOST_TEST(failed.status == 502);
  // The input is stored whole, in one transaction; the error names the last message.
  auto stored = all_messages(c, conversation);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(failed.json()["error"]["message_id"] == stored[1]["id"]);
  // The repeat gets the same answer and stores nothing more.
  auto again = c.post("/v1/responses", body, {"Idempotency-Key: atomic"});
  BOOST_TEST(again.status == 502);
  BOOST_TEST(again.header("idempotent-replayed") == "true");
  BOOST_TEST(all_messages(c, conversation).size() == 2u);
  mock().clear_behaviors();
}

BOOST_AUTO_TEST_CASE(a_database_that_cannot_write_is_a_503_and_nothing_is_acknowledged,
                     *boost::unit_test::precondition(only_on_sqlite)) {
  server_process locked;
  auto db = locked.database_url().substr(std::string("sqlite://").size());
  // Another process holds the write lock for 5 s.
  sqlite_write_lock locker(db, std::chrono::seconds(5));
  // The completion's usage and the Response's exchange cannot commit: neither is answered 200.
  http_response chat, stored;
  std::thread chatting([&] {
    http_client c(locked.base_url(), "locked-oa");
    chat = c.post("/v1/chat/completions",
                  {{"model", "echo"}, {"messages", json::array({user_message("x")})}});
  });
  std::thread storing([&] {
    http_client c(locked.base_url(), "locked-oa");
    stored = c.post("/v1/responses", {{"input", "y"}});
  });
  chatting.join();
  storing.join();
  BOOST_TEST(locker.released());
  for (auto* r : {&chat, &stored}) {
    BOOST_TEST(r->status == 503, r->status << " " << r->body);
    BOOST_TEST(r->json()["error"]["type"] == "server_error");
    BOOST_TEST(!r->header("retry-after").empty());
  }
  // Once the lock is gone: nothing was metered or stored for them, and both work.
  http_client c(locked.base_url(), "locked-oa");
  BOOST_TEST(c.get("/v1/usage").json()["total"]["requests"] == 0);
  BOOST_TEST(c.get("/v1/conversations").json()["data"].empty());
  BOOST_TEST(c.post("/v1/chat/completions",
                    {{"model", "echo"}, {"messages", json::array({user_message("x")})}})
                 .status == 200);
  BOOST_TEST(c.post("/v1/responses", {{"input", "y"}}).status == 200);
}
