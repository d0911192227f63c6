#define BOOST_TEST_MODULE api_providers
#include <boost/test/unit_test.hpp>

// The real server in front of the mock upstream: what each protocol receives,
// how every provider fault is answered, fallbacks, usage and its limits.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/mock_upstream_process.hpp"
#include "support/server_process.hpp"

#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const std::string secret_key = "sk-test-not-to-be-seen-4242";

mock_upstream& mock() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

/// The providers and models every server of this file has, pointed at the mock.
std::string providers_toml() {
  return "[[providers]]\nname = \"oai\"\nkind = \"openai\"\nbase_url = \"" +
         mock().openai_base_url() +
         "\"\napi_key_env = \"MOCK_KEY\"\ntimeout_ms = 3000\nstall_timeout_ms = 500\n"
         "[[providers]]\nname = \"ant\"\nkind = \"anthropic\"\nbase_url = \"" +
         mock().base_url() +
         "\"\napi_key_env = \"MOCK_KEY\"\ntimeout_ms = 3000\n"
         "[[models]]\nid = \"gpt\"\nprovider = \"oai\"\nupstream = \"gpt-up\"\n"
         "input_price_per_mtok = 2.0\noutput_price_per_mtok = 10.0\n"
         "[[models]]\nid = \"claude\"\nprovider = \"ant\"\nupstream = \"claude-up\"\n"
         "[[models]]\nid = \"small\"\nprovider = \"oai\"\nupstream = \"small-up\"\n"
         "context_window = 64\nmax_output_tokens = 16\n"
         "[[models]]\nid = \"backed\"\nprovider = \"oai\"\nupstream = \"backed-up\"\n"
         "fallback = \"claude\"\n"
         "[[models]]\nid = \"last-resort\"\nprovider = \"ant\"\nupstream = \"lr-up\"\n"
         "fallback = \"echo\"\n"
         "[[providers]]\nname = \"slowecho\"\nkind = \"builtin\"\nitl_ms = 100\n"
         "[[models]]\nid = \"slow-echo\"\nprovider = \"slowecho\"\nupstream = \"echo\"\n";
}

server_process& server() {
  static auto s = std::make_unique<server_process>(
      server_options{.config_toml = providers_toml(), .env = {{"MOCK_KEY", secret_key}}});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

/// The body of the last completion request the mock received.
json last_upstream_body() {
  auto seen = mock().requests();
  BOOST_REQUIRE(!seen.empty());
  return seen.back()["body"];
}

json send(http_client& c, const std::string& id, const json& body, long status = 201) {
  auto r = c.post("/v1/conversations/" + id + "/messages", body);
  BOOST_REQUIRE_EQUAL(r.status, status);
  return r.json();
}

/// Asserts a provider failure: the status, the stored user message named,
/// and no assistant message stored.
void expect_provider_failure(http_client& c, const std::string& id, const http_response& r,
                             long status) {
  BOOST_TEST(r.status == status);
  BOOST_TEST(r.header("content-type") == "application/problem+json");
  auto problem = r.json();
  BOOST_REQUIRE(problem["message_id"].is_string());
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(!stored.empty());
  BOOST_TEST(stored.back()["id"] == problem["message_id"]);
  BOOST_TEST(stored.back()["role"] == "user");
}

/// Sends a POST over a raw socket and hangs up after `wait` without reading
/// the answer, as a client that gives up does.
void post_and_hang_up(std::uint16_t port, const std::string& path, const std::string& body,
                      const std::string& user, milliseconds wait) {
  int fd = raw_post(port, path, body, user);
  std::this_thread::sleep_for(wait);
  close(fd);
}

struct fresh_mock {
  fresh_mock() {
    mock().clear_behaviors();
    mock().clear_requests();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(providers, fresh_mock)

BOOST_AUTO_TEST_CASE(models_are_listed_without_keys) {
  auto c = client("models");
  auto r = c.get("/v1/models");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.body.find(secret_key) == std::string::npos);
  std::map<std::string, json> by_id;
  auto listed = r.json();
  for (auto& m : listed["data"]) by_id[m["id"].get<std::string>()] = m;
  BOOST_REQUIRE(by_id.count("gpt"));
  BOOST_TEST(by_id["gpt"]["provider"] == "oai");
  BOOST_TEST(by_id["gpt"]["input_price_per_mtok"] == 2.0);
  BOOST_TEST(by_id["small"]["context_window"] == 64);
  BOOST_TEST(by_id["echo"]["default"] == true);
  BOOST_TEST(server().log().find(secret_key) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(openai_receives_the_system_prompt_then_the_history) {
  auto c = client("oai-user");
  auto id = create_conversation(c, {{"model", "gpt"}, {"system_prompt", "Be terse."}});
  auto first = send(c, id, {{"content", "one"}});
  BOOST_TEST(first["reply"]["content"] == "Mock: one");
  BOOST_TEST(first["reply"]["model"] == "gpt");
  send(c, id, {{"content", "two"}, {"temperature", 0.5}, {"max_tokens", 7}});
  auto seen = mock().requests();
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[1]["headers"]["authorization"] == "Bearer " + secret_key);
  auto body = seen[1]["body"];
  BOOST_TEST(body["model"] == "gpt-up");
  BOOST_TEST(body["temperature"] == 0.5);
  BOOST_TEST(body["max_tokens"] == 7);
  BOOST_TEST(body["messages"] == (json::array({{{"role", "system"}, {"content", "Be terse."}},
                                               {{"role", "user"}, {"content", "one"}},
                                               {{"role", "assistant"}, {"content", "Mock: one"}},
                                               {{"role", "user"}, {"content", "two"}}})));
}

BOOST_AUTO_TEST_CASE(anthropic_receives_the_system_prompt_on_top) {
  auto c = client("ant-user");
  auto id = create_conversation(c, {{"model", "claude"}, {"system_prompt", "Be kind."}});
  auto r = send(c, id, {{"content", "hello"}});
  BOOST_TEST(r["reply"]["content"] == "Mock: hello");
  auto seen = mock().requests();
  BOOST_REQUIRE(seen.size() == 1u);
  BOOST_TEST(seen[0]["headers"]["x-api-key"] == secret_key);
  BOOST_TEST(seen[0]["headers"]["anthropic-version"].is_string());
  auto body = seen[0]["body"];
  BOOST_TEST(body["model"] == "claude-up");
  BOOST_TEST(body["system"] == "Be kind.");
  BOOST_TEST(body["messages"] == (json::array({{{"role", "user"}, {"content", "hello"}}})));
  BOOST_TEST(body["max_tokens"] == 512);  // the model's max_output_tokens
}

BOOST_AUTO_TEST_CASE(a_small_window_leaves_out_old_messages_but_never_the_system_prompt) {
  auto c = client("small-user");
  // Budget 64 - 16 = 48 tokens; "Sys." takes 5, each 40-character message 14.
  auto id = create_conversation(c, {{"model", "small"}, {"system_prompt", "Sys."}});
  for (int i = 0; i < 4; ++i)
    send(c, id, {{"content", std::string(39, static_cast<char>('a' + i)) + "!"}, {"reply", false}});
  send(c, id, {{"content", std::string(39, 'z') + "?"}});
  auto messages = last_upstream_body()["messages"];
  BOOST_REQUIRE(messages.size() == 4u);  // the system prompt and the three newest
  BOOST_TEST(messages[0]["content"] == "Sys.");
  BOOST_TEST(messages[1]["content"].get<std::string>()[0] == 'c');
  BOOST_TEST(messages[3]["content"].get<std::string>()[0] == 'z');
}

BOOST_AUTO_TEST_CASE(edits_and_deletions_reach_the_next_prompt) {
  auto c = client("edit-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  auto first = send(c, id, {{"content", "original"}});
  auto second = send(c, id, {{"content", "to delete"}, {"reply", false}});
  auto mid = first["message"]["id"].get<std::string>();
  BOOST_REQUIRE_EQUAL(
      c.patch("/v1/conversations/" + id + "/messages/" + mid, {{"content", "edited"}}).status, 200);
  BOOST_REQUIRE_EQUAL(
      c.del("/v1/conversations/" + id + "/messages/" + second["message"]["id"].get<std::string>())
          .status,
      204);
  send(c, id, {{"content", "next"}});
  auto messages = last_upstream_body()["messages"];
  BOOST_REQUIRE(messages.size() == 3u);
  BOOST_TEST(messages[0]["content"] == "edited");
  BOOST_TEST(messages[2]["content"] == "next");
}

BOOST_AUTO_TEST_CASE(transient_failures_are_retried_unseen) {
  auto c = client("retry-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  mock().push_behaviors(json::array({{{"status", 502}}, {{"fault", "cut"}, {"words", 30}}}));
  auto r = send(c, id, {{"content", "persist"}});
  BOOST_TEST(r["reply"]["content"] == "Mock: persist");
  BOOST_TEST(mock().requests().size() == 3u);
  mock().push_behaviors(json::array({{{"status", 429}, {"retry_after", 0}}}));
  BOOST_TEST(send(c, id, {{"content", "again"}})["reply"]["content"] == "Mock: again");
  BOOST_TEST(mock().requests().size() == 5u);
}

BOOST_AUTO_TEST_CASE(provider_errors_are_502_with_the_user_message_kept) {
  auto c = client("fail-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  for (json behaviors :
       {json::array({{{"status", 500}}, {{"status", 500}}, {{"status", 500}}}),
        json::array({{{"status", 400}}}), json::array({{{"fault", "malformed"}}})}) {
    mock().push_behaviors(behaviors);
    auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "doomed"}});
    expect_provider_failure(c, id, r, 502);
  }
  // Nothing but the three user messages was stored; regenerate answers the last.
  auto stored = all_messages(c, id);
  BOOST_TEST(stored.size() == 3u);
  auto regen = c.post("/v1/conversations/" + id + "/regenerate", json::object());
  BOOST_REQUIRE_EQUAL(regen.status, 201);
  BOOST_TEST(regen.json()["reply"]["content"] == "Mock: doomed");
  BOOST_TEST(regen.json()["reply"]["seq"] == 4);

  // A first message that fails keeps the new conversation and its message.
  mock().push_behaviors(json::array({{{"status", 401}}}));
  auto created = c.post("/v1/conversations", {{"model", "gpt"}, {"message", {{"content", "hi"}}}});
  BOOST_TEST(created.status == 502);
  BOOST_TEST(created.json()["message_id"].is_string());
}

BOOST_AUTO_TEST_CASE(a_repeated_key_replays_a_provider_failure_without_asking_again) {
  auto c = client("fail-repeat");
  auto id = create_conversation(c, {{"model", "gpt"}});
  auto path = "/v1/conversations/" + id + "/messages";
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto first = c.post(path, {{"content", "doomed"}}, {"Idempotency-Key: doomed-1"});
  expect_provider_failure(c, id, first, 502);
  auto asked = mock().requests().size();
  auto repeat = c.post(path, {{"content", "doomed"}}, {"Idempotency-Key: doomed-1"});
  BOOST_TEST(repeat.status == 502);
  BOOST_TEST(repeat.header("content-type") == "application/problem+json");
  BOOST_TEST(repeat.header("idempotent-replayed") == "true");
  auto replayed = repeat.json();
  BOOST_TEST(replayed["message_id"] == first.json()["message_id"]);
  BOOST_TEST(replayed["detail"] == first.json()["detail"]);
  // The problem names the request it answers, as its header does.
  BOOST_TEST(replayed["request_id"] == repeat.header("x-request-id"));
  BOOST_TEST(mock().requests().size() == asked);  // the provider was not asked again
  BOOST_TEST(all_messages(c, id).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_repeated_create_does_not_ask_the_model_again) {
  auto c = client("create-repeat");
  json body{{"model", "gpt"}, {"message", {{"content", "once"}}}};
  auto first = c.post("/v1/conversations", body, {"Idempotency-Key: create-once"});
  BOOST_REQUIRE_EQUAL(first.status, 201);
  auto asked = mock().requests().size();
  auto again = c.post("/v1/conversations", body, {"Idempotency-Key: create-once"});
  BOOST_TEST(again.status == 201);
  BOOST_TEST(again.header("idempotent-replayed") == "true");
  BOOST_TEST(again.json() == first.json());
  BOOST_TEST(mock().requests().size() == asked);
}

BOOST_AUTO_TEST_CASE(timeouts_are_504_and_free_the_upstream) {
  auto c = client("slow-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  // Silent until the provider's 3 s timeout.
  mock().push_behaviors(json::array({{{"fault", "stall"}}}));
  auto start = std::chrono::steady_clock::now();
  auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "anyone?"}});
  expect_provider_failure(c, id, r, 504);
  BOOST_TEST(((std::chrono::steady_clock::now() - start) < std::chrono::seconds(6)));
  for (int i = 0; i < 100 && mock().stats()["in_flight"] != 0; ++i)
    std::this_thread::sleep_for(milliseconds(20));
  BOOST_TEST(mock().stats()["in_flight"] == 0);  // the connection was closed, not left waiting
  BOOST_TEST(mock().stats()["abandoned"].get<int>() >= 1);
}

BOOST_AUTO_TEST_CASE(a_client_that_goes_away_asking_to_cancel_frees_the_upstream) {
  auto c = client("gone-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  auto abandoned_before = mock().stats()["abandoned"].get<int>();
  mock().push_behaviors(json::array({{{"fault", "stall"}}}));
  post_and_hang_up(server().port(), "/v1/conversations/" + id + "/messages",
                   R"({"content": "bye", "on_disconnect": "cancel"})", "gone-user",
                   milliseconds(300));
  // Well before the provider's 3 s timeout, the upstream request is closed.
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST(eventually([&] { return mock().stats()["abandoned"].get<int>() > abandoned_before; }));
  BOOST_TEST(mock().stats()["abandoned"].get<int>() == abandoned_before + 1);
  BOOST_TEST(mock().stats()["in_flight"] == 0);
  BOOST_TEST(((std::chrono::steady_clock::now() - start) < milliseconds(2000)));
  // The user message is kept; there was no text to keep of the reply.
  BOOST_TEST(eventually([&] { return all_messages(c, id).size() == 1u; }));
  BOOST_TEST(all_messages(c, id)[0]["content"] == "bye");
}

BOOST_AUTO_TEST_CASE(a_client_that_goes_away_asking_to_cancel_keeps_the_text_so_far) {
  auto c = client("gone-echo-user");
  auto id = create_conversation(c, {{"model", "slow-echo"}});
  // 13 words, one every 100 ms; the client leaves after about 450 ms.
  post_and_hang_up(server().port(), "/v1/conversations/" + id + "/messages",
                   R"({"content": "a b c d e f g h i j k l", "on_disconnect": "cancel"})",
                   "gone-echo-user", milliseconds(450));
  BOOST_REQUIRE(eventually([&] { return all_messages(c, id).size() == 2u; }));
  auto reply = all_messages(c, id)[1];
  BOOST_TEST(reply["finish_reason"] == "cancelled");
  auto text = reply["content"].get<std::string>();
  BOOST_TEST(text.rfind("Echo:", 0) == 0u);
  BOOST_TEST(text.size() < std::string("Echo: a b c d e f g h i j k l").size());
  // The conversation goes on as usual.
  BOOST_TEST(send(c, id, {{"content", "again"}})["message"]["seq"] == 3);
}

BOOST_AUTO_TEST_CASE(a_failing_model_falls_back_in_order) {
  auto c = client("fallback-user");
  auto id = create_conversation(c, {{"model", "backed"}});
  // backed (openai) fails for good; its fallback claude answers.
  mock().push_behaviors(json::array({{{"status", 404}}}));
  auto r = send(c, id, {{"content", "rescue me"}});
  BOOST_TEST(r["reply"]["model"] == "claude");
  BOOST_TEST(r["reply"]["content"] == "Mock: rescue me");
  auto seen = mock().requests();
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[0]["path"] == "/v1/chat/completions");
  BOOST_TEST(seen[1]["path"] == "/v1/messages");

  // last-resort (anthropic) fails; echo, needing no network, answers.
  auto other = create_conversation(c, {{"model", "last-resort"}});
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto e = send(c, other, {{"content", "still here"}});
  BOOST_TEST(e["reply"]["model"] == "echo");
  BOOST_TEST(e["reply"]["content"] == "Echo: still here");
}

BOOST_AUTO_TEST_CASE(usage_and_cost_are_recorded_per_user_and_model) {
  auto c = client("usage-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  mock().push_behaviors(json::array({{{"prompt_tokens", 1000}, {"words", 10}}}));
  auto r = send(c, id, {{"content", "count me"}});
  BOOST_TEST(r["reply"]["usage"]["prompt_tokens"] == 1000);
  BOOST_TEST(r["reply"]["usage"]["completion_tokens"] == 10);
  auto conv = c.get("/v1/conversations/" + id).json();
  const double cost = (1000 * 2.0 + 10 * 10.0) / 1e6;
  BOOST_TEST(conv["usage"]["cost_usd"].get<double>() == cost, boost::test_tools::tolerance(1e-12));
  auto usage = c.get("/v1/usage").json();
  BOOST_TEST(usage["total"]["requests"] == 1);
  BOOST_TEST(usage["total"]["total_tokens"] == 1010);
  BOOST_TEST(usage["total"]["cost_usd"].get<double>() == cost, boost::test_tools::tolerance(1e-12));
  BOOST_REQUIRE(usage["by_model"].size() == 1u);
  BOOST_TEST(usage["by_model"][0]["model"] == "gpt");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(tokens_per_day_are_enforced_before_anything_is_stored) {
  fresh_mock reset;
  server_process limited(
      server_options{.config_toml = providers_toml() + "[limits]\ntokens_per_day = 100\n",
                     .env = {{"MOCK_KEY", secret_key}}});
  http_client c(limited.base_url(), "quota-user");
  auto id = create_conversation(c, {{"model", "gpt"}});
  mock().push_behaviors(json::array({{{"prompt_tokens", 90}, {"words", 20}}}));
  send(c, id, {{"content", "first"}});  // 110 tokens: over the limit from now on
  auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "second"}});
  BOOST_TEST(r.status == 429);
  BOOST_TEST(r.header("content-type") == "application/problem+json");
  auto retry_after = std::stoi(r.header("retry-after"));
  BOOST_TEST(retry_after > 0);
  BOOST_TEST(retry_after <= 86400);
  BOOST_TEST(all_messages(c, id).size() == 2u);  // the refused message was not stored
  // Messages without a reply cost nothing and are still accepted; other users are unaffected.
  BOOST_TEST(
      c.post("/v1/conversations/" + id + "/messages", {{"content", "note"}, {"reply", false}})
          .status == 201);
  http_client other(limited.base_url(), "other-user");
  auto other_id = create_conversation(other, {{"model", "gpt"}});
  BOOST_TEST(
      other.post("/v1/conversations/" + other_id + "/messages", {{"content", "hi"}}).status == 201);
  // A restarted server (on a new port) seeds the count from the database.
  limited.restart();
  http_client after_restart(limited.base_url(), "quota-user");
  BOOST_TEST(
      after_restart.post("/v1/conversations/" + id + "/messages", {{"content", "third"}}).status ==
      429);
}

BOOST_AUTO_TEST_CASE(an_api_key_in_the_environment_adds_its_provider) {
  fresh_mock reset;
  server_process env_only(server_options{
      .env = {{"OPENAI_API_KEY", secret_key}, {"OPENAI_BASE_URL", mock().openai_base_url()}}});
  http_client c(env_only.base_url(), "env-user");
  auto models = c.get("/v1/models").json();
  bool listed = false;
  for (auto& m : models["data"]) listed = listed || m["id"] == "gpt-4o-mini";
  BOOST_TEST(listed);
  auto id = create_conversation(c, {{"model", "gpt-4o-mini"}});
  auto r = send(c, id, {{"content", "via env"}});
  BOOST_TEST(r["reply"]["content"] == "Mock: via env");
  auto seen = mock().requests();
  BOOST_REQUIRE(seen.size() == 1u);
  BOOST_TEST(seen[0]["headers"]["authorization"] == "Bearer " + secret_key);
  BOOST_TEST(seen[0]["body"]["model"] == "gpt-4o-mini");
  BOOST_TEST(env_only.log().find(secret_key) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_missing_key_stops_the_start_with_a_clear_message) {
  std::string out;
  temp_dir dir;
  auto path = dir.path() + "/parley.toml";
  {
    std::ofstream f(path);
    f << "[[providers]]\nname = \"p\"\nkind = \"openai\"\napi_key_env = \"NOT_SET_KEY_X\"\n";
  }
  auto code = run_parley({"serve", "--config", path}, out);
  BOOST_TEST(code == 2);
  BOOST_TEST(out.find("NOT_SET_KEY_X") != std::string::npos);
}
