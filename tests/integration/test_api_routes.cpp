#define BOOST_TEST_MODULE api_routes
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <memory>
#include <string>
#include <thread>

using namespace parley::testing;
using nlohmann::json;

namespace {

/// One server for this file; each test uses its own user so tests stay apart.
server_process& server() {
  static auto s = std::make_unique<server_process>(server_options{
      .config_toml = "[server]\nmax_body_bytes = 4096\n[limits]\nmax_message_chars = 20\n"
                     "[[models]]\nid = \"tiny\"\nprovider = \"builtin\"\ncontext_window = 64\n"
                     "max_output_tokens = 16\n"});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

std::string create(http_client& c, const json& body = json::object()) {
  auto r = c.post("/v1/conversations", body);
  BOOST_REQUIRE_EQUAL(r.status, 201);
  return r.json()["id"].get<std::string>();
}

std::string field_of(const json& problem) {
  BOOST_REQUIRE(problem["errors"].is_array());
  BOOST_REQUIRE(!problem["errors"].empty());
  return problem["errors"][0]["field"].get<std::string>();
}

}  // namespace

BOOST_AUTO_TEST_CASE(service_routes) {
  auto c = client("svc");
  auto health = c.get("/health");
  BOOST_TEST(health.status == 200);
  BOOST_TEST(health.json()["status"] == "ok");
  BOOST_TEST(!health.header("x-request-id").empty());
  BOOST_TEST(c.get("/ready").status == 200);
  auto models = c.get("/v1/models").json();
  BOOST_TEST(models["data"][0]["id"] == "echo");
  BOOST_TEST(models["data"][0]["provider"] == "builtin");
  BOOST_TEST(models["data"][0]["context_window"] == 8192);
  BOOST_TEST(models["data"][0]["max_output_tokens"] == 512);
  BOOST_TEST(models["data"][0]["default"] == true);
  BOOST_TEST(models["data"][1]["id"] == "tiny");
  // The request id is echoed when the client sends one.
  BOOST_TEST(c.get("/health", {"X-Request-Id: trace-42"}).header("x-request-id") == "trace-42");
}

BOOST_AUTO_TEST_CASE(create_with_a_first_message) {
  auto c = client("alice");
  auto r = c.post("/v1/conversations", {{"title", "Trip"},
                                        {"system_prompt", "Be terse."},
                                        {"metadata", {{"k", "v"}}},
                                        {"message", "hello"}});
  BOOST_REQUIRE_EQUAL(r.status, 201);
  auto j = r.json();
  BOOST_TEST(r.header("location") == "/v1/conversations/" + j["id"].get<std::string>());
  BOOST_TEST(j["user_id"] == "alice");
  BOOST_TEST(j["title"] == "Trip");
  BOOST_TEST(j["model"] == "echo");
  BOOST_TEST(j["system_prompt"] == "Be terse.");
  BOOST_TEST(j["metadata"]["k"] == "v");
  BOOST_TEST(j["message_count"] == 2);
  BOOST_TEST(j["message"]["seq"] == 1);
  BOOST_TEST(j["message"]["role"] == "user");
  BOOST_TEST(j["message"]["content"] == "hello");
  BOOST_TEST(j["reply"]["seq"] == 2);
  BOOST_TEST(j["reply"]["role"] == "assistant");
  BOOST_TEST(j["reply"]["content"] == "Echo: hello");
  BOOST_TEST(j["reply"]["model"] == "echo");
  BOOST_TEST(j["reply"]["finish_reason"] == "stop");
  BOOST_TEST(j["reply"]["usage"]["completion_tokens"].get<int>() > 0);
  BOOST_TEST(j["usage"]["total_tokens"] ==
             j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  auto created = j["created_at"].get<std::string>();
  BOOST_TEST(created.size() == 24u);  // 2026-11-22T13:05:07.123Z
  BOOST_TEST(created.back() == 'Z');
  BOOST_TEST(j["message"]["edited_at"].is_null());
}

BOOST_AUTO_TEST_CASE(get_patch_delete_conversation) {
  auto c = client("patcher");
  auto id = create(c, {{"title", "Old"}});
  auto got = c.get("/v1/conversations/" + id).json();
  BOOST_TEST(got["title"] == "Old");
  BOOST_TEST(got["message_count"] == 0);
  auto patched = c.patch(
      "/v1/conversations/" + id,
      {{"title", "New"}, {"model", "tiny"}, {"system_prompt", "S"}, {"metadata", {{"a", "b"}}}});
  BOOST_TEST(patched.status == 200);
  BOOST_TEST(patched.json()["title"] == "New");
  BOOST_TEST(patched.json()["model"] == "tiny");
  BOOST_TEST(patched.json()["metadata"]["a"] == "b");
  auto cleared = c.patch("/v1/conversations/" + id, {{"title", nullptr}}).json();
  BOOST_TEST(cleared["title"].is_null());
  BOOST_TEST(cleared["system_prompt"] == "S");
  BOOST_TEST(c.post("/v1/conversations/" + id + "/messages", {{"content", "x"}}).status == 201);
  BOOST_TEST(c.del("/v1/conversations/" + id).status == 204);
  expect_problem(c.get("/v1/conversations/" + id), 404);
  expect_problem(c.get("/v1/conversations/" + id + "/messages"), 404);
  expect_problem(c.del("/v1/conversations/" + id), 404);
}

BOOST_AUTO_TEST_CASE(list_pages_visit_each_conversation_once) {
  auto c = client("lister");
  std::vector<std::string> ids;
  // A millisecond apart: the list orders by update time, and equal times by
  // id, which is random within a millisecond.
  for (int i = 0; i < 7; ++i) {
    ids.push_back(create(c, {{"title", "c" + std::to_string(i)}}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Touch the first one: it becomes the most recently updated.
  c.post("/v1/conversations/" + ids[0] + "/messages", {{"content", "bump"}});
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto r = c.get("/v1/conversations?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    BOOST_REQUIRE_EQUAL(r.status, 200);
    auto j = r.json();
    for (auto& conv : j["data"]) seen.push_back(conv["id"]);
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"];
  }
  BOOST_REQUIRE_EQUAL(seen.size(), 7u);
  BOOST_TEST(seen.front() == ids[0]);
  BOOST_TEST(seen[1] == ids[6]);  // then newest first
  std::sort(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  BOOST_TEST(seen == ids, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(messages_send_list_edit_delete_regenerate) {
  auto c = client("writer");
  auto id = create(c);
  auto base = "/v1/conversations/" + id;
  auto sent = c.post(base + "/messages", {{"content", "one"}});
  BOOST_REQUIRE_EQUAL(sent.status, 201);
  BOOST_TEST(sent.json()["message"]["seq"] == 1);
  BOOST_TEST(sent.json()["reply"]["content"] == "Echo: one");
  auto note = c.post(base + "/messages", {{"content", "note"}, {"reply", false}});
  BOOST_TEST(note.status == 201);
  BOOST_TEST(note.json()["message"]["seq"] == 3);
  BOOST_TEST(!note.json().contains("reply"));
  auto system = c.post(base + "/messages", {{"content", "sys"}, {"role", "system"}});
  BOOST_TEST(!system.json().contains("reply"));  // reply defaults to false for other roles
  c.post(base + "/messages", {{"content", "two"}});

  auto all = c.get(base + "/messages").json();
  BOOST_REQUIRE_EQUAL(all["data"].size(), 6u);
  for (int i = 0; i < 6; ++i) BOOST_TEST(all["data"][i]["seq"] == i + 1);
  BOOST_TEST(all["has_more"] == false);
  auto after = c.get(base + "/messages?after=2&limit=2").json();
  BOOST_TEST(after["data"][0]["seq"] == 3);
  BOOST_TEST(after["has_more"] == true);
  auto before = c.get(base + "/messages?before=5&limit=2").json();
  BOOST_REQUIRE_EQUAL(before["data"].size(), 2u);
  BOOST_TEST(before["data"][0]["seq"] == 3);
  BOOST_TEST(before["data"][1]["seq"] == 4);
  BOOST_TEST(before["has_more"] == true);

  // Edit the last user message and regenerate: the reply reflects the edit
  // and replaces the old reply.
  auto last_user = all["data"][4]["id"].get<std::string>();
  auto edited = c.patch(base + "/messages/" + last_user, {{"content", "two edited"}});
  BOOST_TEST(edited.status == 200);
  BOOST_TEST(edited.json()["content"] == "two edited");
  BOOST_TEST(edited.json()["edited_at"].is_string());
  auto regen = c.post(base + "/regenerate", json::object());
  BOOST_REQUIRE_EQUAL(regen.status, 201);
  BOOST_TEST(regen.json()["reply"]["content"] == "Echo: two edited");
  BOOST_TEST(regen.json()["reply"]["seq"] == 7);  // seqs are never reused
  BOOST_TEST(c.get(base).json()["message_count"] == 6);

  // Delete the newest message: the reply it replaced, kept as its sibling,
  // ends the branch again, and the next message still gets a higher seq.
  auto newest = regen.json()["reply"]["id"].get<std::string>();
  BOOST_TEST(c.del(base + "/messages/" + newest).status == 204);
  expect_problem(c.del(base + "/messages/" + newest), 404);
  BOOST_TEST(c.get(base).json()["message_count"] == 6);
  auto next = c.post(base + "/messages", {{"content", "three"}}).json();
  BOOST_TEST(next["message"]["seq"] == 8);
  BOOST_TEST(next["message"]["parent_id"] == all["data"][5]["id"]);
  BOOST_TEST(c.get(base).json()["message_count"] == 8);
}

BOOST_AUTO_TEST_CASE(context_window_leaves_out_old_messages) {
  auto c = client("windowed");
  auto id = create(c, {{"model", "tiny"}, {"system_prompt", "terse"}});
  std::vector<int> prompt_tokens;
  for (int i = 0; i < 10; ++i) {
    auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "sixteen chars ok"}});
    BOOST_REQUIRE_EQUAL(r.status, 201);
    prompt_tokens.push_back(r.json()["reply"]["usage"]["prompt_tokens"]);
  }
  BOOST_TEST(prompt_tokens.back() <= 48);                // 64 - 16 for the reply
  BOOST_TEST(prompt_tokens.back() == prompt_tokens[8]);  // stopped growing
  BOOST_TEST(prompt_tokens[0] > 8);                      // the system prompt counts
}

BOOST_AUTO_TEST_CASE(usage_totals_by_model) {
  auto c = client("meter");
  auto id = create(c, {{"message", "a"}});
  c.post("/v1/conversations/" + id + "/messages", {{"content", "b"}, {"model", "tiny"}});
  auto u = c.get("/v1/usage").json();
  BOOST_TEST(u["user_id"] == "meter");
  BOOST_TEST(u["total"]["requests"] == 2);
  BOOST_REQUIRE_EQUAL(u["by_model"].size(), 2u);
  BOOST_TEST(u["total"]["total_tokens"] ==
             u["total"]["prompt_tokens"].get<int>() + u["total"]["completion_tokens"].get<int>());
  auto none = c.get("/v1/usage?from=2000-01-01&to=2000-12-31").json();
  BOOST_TEST(none["total"]["requests"] == 0);
  BOOST_TEST(field_of(expect_problem(c.get("/v1/usage?from=yesterday"), 422)) == "from");
}

BOOST_AUTO_TEST_CASE(every_error_status_is_a_problem) {
  auto c = client("errors");
  auto id = create(c, {{"message", "hi"}});
  auto base = "/v1/conversations/" + id;
  expect_problem(c.request("POST", "/v1/conversations", "{not json"), 400);
  expect_problem(c.request("POST", "/v1/conversations", "[1,2]"), 400);
  expect_problem(c.request("POST", "/v1/conversations", std::string(3000, '[')), 400);
  auto unauthorized = c.get("/v1/conversations", {"X-User-Id: not valid!"});
  expect_problem(unauthorized, 401);
  BOOST_TEST(unauthorized.header("www-authenticate") == "Bearer");
  expect_problem(c.get("/v1/conversations/not-a-uuid"), 404);
  expect_problem(c.get("/v1/conversations/01a20421-86a4-75e1-b9c5-9c9695ddd071"), 404);
  expect_problem(c.get("/v1/nothing-here"), 404);
  expect_problem(
      c.patch(base + "/messages/01a20421-86a4-75e1-b9c5-9c9695ddd071", {{"content", "x"}}), 404);
  auto not_allowed = c.request("PUT", "/v1/conversations");
  expect_problem(not_allowed, 405);
  BOOST_TEST(not_allowed.header("allow") == "GET, POST");
  auto empty = create(c);
  expect_problem(c.post("/v1/conversations/" + empty + "/regenerate", json::object()), 409);
  expect_problem(
      c.request("POST", base + "/messages", "{\"content\":\"" + std::string(5000, 'x') + "\"}"),
      413);
  expect_problem(c.request("POST", base + "/messages", "content=hi", {"Content-Type: text/plain"}),
                 415);

  auto missing = expect_problem(c.post(base + "/messages", json::object()), 422);
  BOOST_TEST(field_of(missing) == "content");
  BOOST_TEST(field_of(expect_problem(c.post(base + "/messages", {{"content", ""}}), 422)) ==
             "content");
  // max_message_chars = 20, counted in code points: 20 two-byte characters pass, 21 do not.
  std::string twenty;
  for (int i = 0; i < 20; ++i) twenty += "é";
  BOOST_TEST(c.post(base + "/messages", {{"content", twenty}, {"reply", false}}).status == 201);
  BOOST_TEST(field_of(expect_problem(c.post(base + "/messages", {{"content", twenty + "é"}}),
                                     422)) == "content");
  // U+0000 cannot be stored (PostgreSQL's text has no room for it): refused, not cut.
  BOOST_TEST(field_of(expect_problem(
                 c.post(base + "/messages", {{"content", std::string("a\0b", 3)}}), 422)) ==
             "content");
  BOOST_TEST(field_of(expect_problem(c.post(base + "/messages", {{"content", 5}}), 422)) ==
             "content");
  BOOST_TEST(field_of(expect_problem(
                 c.post(base + "/messages", {{"content", "x"}, {"temperature", 3}}), 422)) ==
             "temperature");
  BOOST_TEST(field_of(expect_problem(
                 c.post(base + "/messages", {{"content", "x"}, {"max_tokens", 0}}), 422)) ==
             "max_tokens");
  BOOST_TEST(field_of(expect_problem(
                 c.post(base + "/messages", {{"content", "x"}, {"model", "nope"}}), 422)) ==
             "model");
  BOOST_TEST(field_of(expect_problem(c.post("/v1/conversations", {{"model", "nope"}}), 422)) ==
             "model");
  BOOST_TEST(field_of(expect_problem(
                 c.post("/v1/conversations", {{"title", std::string(201, 't')}}), 422)) == "title");
  BOOST_TEST(field_of(expect_problem(c.post("/v1/conversations", {{"metadata", {{"k", 1}}}}),
                                     422)) == "metadata.k");
  BOOST_TEST(field_of(expect_problem(c.get(base + "/messages?limit=0"), 422)) == "limit");
  BOOST_TEST(field_of(expect_problem(c.get("/v1/conversations?limit=500"), 422)) == "limit");
  BOOST_TEST(field_of(expect_problem(c.get("/v1/conversations?cursor=bogus"), 422)) == "cursor");
  // A streamed request that fails validation is a plain problem, not a stream.
  auto stream = c.post(base + "/messages", {{"content", ""}, {"stream", true}});
  BOOST_TEST(field_of(expect_problem(stream, 422)) == "content");
}

BOOST_AUTO_TEST_CASE(another_users_conversation_is_missing_for_every_route) {
  auto alice = client("owner-a");
  auto bob = client("intruder-b");
  auto created = alice.post("/v1/conversations", {{"title", "mine"}, {"message", "secret"}});
  auto id = created.json()["id"].get<std::string>();
  auto mid = created.json()["message"]["id"].get<std::string>();
  auto base = "/v1/conversations/" + id;
  expect_problem(bob.get(base), 404);
  expect_problem(bob.patch(base, {{"title", "stolen"}}), 404);
  expect_problem(bob.get(base + "/messages"), 404);
  expect_problem(bob.post(base + "/messages", {{"content", "hi"}}), 404);
  expect_problem(bob.patch(base + "/messages/" + mid, {{"content", "changed"}}), 404);
  expect_problem(bob.del(base + "/messages/" + mid), 404);
  expect_problem(bob.post(base + "/regenerate", json::object()), 404);
  expect_problem(bob.del(base), 404);
  BOOST_TEST(bob.get("/v1/conversations").json()["data"].empty());
  // Nothing changed for the owner.
  auto after = alice.get(base).json();
  BOOST_TEST(after["title"] == "mine");
  BOOST_TEST(after["message_count"] == 2);
  auto messages = alice.get(base + "/messages").json();
  BOOST_TEST(messages["data"][0]["content"] == "secret");
  BOOST_TEST(messages["data"][0]["edited_at"].is_null());
}

BOOST_AUTO_TEST_CASE(idempotent_retries_return_the_first_answer) {
  auto c = client("retrier");
  auto first = c.post("/v1/conversations", {{"message", "once"}}, {"Idempotency-Key: create-1"});
  auto again = c.post("/v1/conversations", {{"message", "once"}}, {"Idempotency-Key: create-1"});
  BOOST_REQUIRE_EQUAL(first.status, 201);
  BOOST_TEST(again.status == 201);
  BOOST_TEST(again.json()["id"] == first.json()["id"]);
  BOOST_TEST(again.json()["reply"]["id"] == first.json()["reply"]["id"]);
  BOOST_TEST(again.header("location") == first.header("location"));
  BOOST_TEST(c.get("/v1/conversations").json()["data"].size() == 1u);

  auto base = "/v1/conversations/" + first.json()["id"].get<std::string>();
  auto sent = c.post(base + "/messages", {{"content", "pay"}}, {"Idempotency-Key: pay-1"});
  auto repeat = c.post(base + "/messages", {{"content", "pay"}}, {"Idempotency-Key: pay-1"});
  BOOST_TEST(repeat.json() == sent.json());
  BOOST_TEST(repeat.header("idempotent-replayed") == "true");
  BOOST_TEST(c.get(base).json()["message_count"] == 4);
  expect_problem(c.post(base + "/messages", {{"content", "other"}}, {"Idempotency-Key: pay-1"}),
                 422);
  // The same key from another user is a different key.
  auto other = http_client(server().base_url(), "retrier-2");
  BOOST_TEST(other.post("/v1/conversations", json::object(), {"Idempotency-Key: pay-1"}).status ==
             201);

  auto regen = c.post(base + "/regenerate", json::object(), {"Idempotency-Key: regen-1"});
  auto regen_again = c.post(base + "/regenerate", json::object(), {"Idempotency-Key: regen-1"});
  BOOST_TEST(regen_again.json()["reply"]["id"] == regen.json()["reply"]["id"]);
  BOOST_TEST(c.get(base + "/messages").json()["data"].size() == 4u);

  // Deleting the conversation does not change the answer a repeat gets.
  BOOST_REQUIRE_EQUAL(c.del(base).status, 204);
  auto after_delete = c.post(base + "/messages", {{"content", "pay"}}, {"Idempotency-Key: pay-1"});
  BOOST_TEST(after_delete.status == 201);
  BOOST_TEST(after_delete.header("idempotent-replayed") == "true");
  BOOST_TEST(after_delete.json() == sent.json());
  auto create_again =
      c.post("/v1/conversations", {{"message", "once"}}, {"Idempotency-Key: create-1"});
  BOOST_TEST(create_again.json() == first.json());
  BOOST_TEST(create_again.header("location") == first.header("location"));
  // A key never used on a conversation that is gone is just a 404.
  expect_problem(c.post(base + "/messages", {{"content", "pay"}}, {"Idempotency-Key: new-1"}), 404);
}
