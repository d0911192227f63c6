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

std::string user_header(const std::string& user) { return "X-User-Id: " + user; }

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
