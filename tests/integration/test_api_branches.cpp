#define BOOST_TEST_MODULE api_branches
#include <boost/test/unit_test.hpp>

// Message trees over real HTTP: edit-and-resend and regenerate make
// siblings, the model sees exactly the active branch, switching is stored
// and announced, deletion re-parents, and a fork is a copy of its own.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/mock_upstream_process.hpp"
#include "support/server_process.hpp"
#include "support/ws_client.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace parley::testing;
using nlohmann::json;

namespace {

mock_upstream& mock() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

std::string config_toml() {
  return "[[providers]]\nname = \"oai\"\nkind = \"openai\"\nbase_url = \"" +
         mock().openai_base_url() +
         "\"\napi_key_env = \"MOCK_KEY\"\ntimeout_ms = 3000\n"
         "[[models]]\nid = \"gpt\"\nprovider = \"oai\"\nupstream = \"gpt-up\"\n";
}

server_options options() {
  return {.config_toml = config_toml(), .env = {{"MOCK_KEY", "sk-mock"}}};
}

server_process& server() {
  static auto s = std::make_unique<server_process>(options());
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

json regenerate(http_client& c, const std::string& id, const json& body = json::object()) {
  auto r = c.post(conversation_path(id, "/regenerate"), body);
  BOOST_REQUIRE_EQUAL(r.status, 201);
  return r.json()["reply"];
}

json conversation(http_client& c, const std::string& id) {
  auto r = c.get(conversation_path(id));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  return r.json();
}

/// The contents of a listing (`query` after `?`), in order.
std::vector<std::string> contents(http_client& c, const std::string& id,
                                  const std::string& query = "") {
  auto r = c.get(conversation_path(id, "/messages?limit=200" + (query.empty() ? "" : "&" + query)));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  std::vector<std::string> out;
  auto page = r.json();
  for (auto& m : page["data"]) out.push_back(m["content"].get<std::string>());
  return out;
}

/// The messages of the last request the mock received, as "role: content".
std::vector<std::string> upstream_context() {
  auto seen = mock().requests();
  BOOST_REQUIRE(!seen.empty());
  std::vector<std::string> out;
  auto& messages = seen.back()["body"]["messages"];
  for (auto& m : messages)
    out.push_back(m["role"].get<std::string>() + ": " + m["content"].get<std::string>());
  return out;
}

std::string id_of(const json& j) { return j["id"].get<std::string>(); }

using texts = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(edit_and_resend_starts_a_sibling_branch) {
  auto c = client("edit-resend");
  auto id = create_conversation(c);
  auto first = send_message(c, id, {{"content", "a"}});
  auto second = send_message(c, id, {{"content", "b"}});
  BOOST_TEST(first["message"]["parent_id"].is_null());
  BOOST_TEST(first["reply"]["parent_id"] == first["message"]["id"]);
  BOOST_TEST(second["message"]["parent_id"] == first["reply"]["id"]);

  // "b" edited and sent again: a sibling of "b" under the first reply.
  auto edited = send_message(c, id, {{"content", "b2"}, {"parent_id", first["reply"]["id"]}});
  BOOST_TEST(edited["message"]["parent_id"] == first["reply"]["id"]);
  BOOST_TEST(edited["message"]["sibling_index"] == 2);
  BOOST_TEST(edited["message"]["sibling_count"] == 2);
  BOOST_TEST(edited["message"]["seq"] == 5);
  BOOST_TEST(edited["reply"]["parent_id"] == edited["message"]["id"]);
  BOOST_TEST(edited["reply"]["content"] == "Echo: b2");

  auto conv = conversation(c, id);
  BOOST_TEST(conv["active_leaf_id"] == edited["reply"]["id"]);
  BOOST_TEST(conv["message_count"] == 4);
  BOOST_TEST(conv["forked_from"].is_null());

  BOOST_TEST(contents(c, id) == (texts{"a", "Echo: a", "b2", "Echo: b2"}));
  BOOST_TEST(contents(c, id, "leaf_id=" + id_of(second["reply"])) ==
             (texts{"a", "Echo: a", "b", "Echo: b"}));
  BOOST_TEST(contents(c, id, "view=all") ==
             (texts{"a", "Echo: a", "b", "Echo: b", "b2", "Echo: b2"}));

  // Sibling positions as listed: "b" is the first of two.
  auto all = c.get(conversation_path(id, "/messages?view=all")).json()["data"];
  BOOST_TEST(all[2]["sibling_index"] == 1);
  BOOST_TEST(all[2]["sibling_count"] == 2);
  BOOST_TEST(all[3]["sibling_count"] == 1);

  // Paging the branch: after and before stay within it.
  auto page = c.get(conversation_path(id, "/messages?limit=2&after=2")).json();
  BOOST_TEST(page["data"].size() == 2u);
  BOOST_TEST(page["data"][0]["content"] == "b2");
  BOOST_TEST(page["has_more"] == false);
  page = c.get(conversation_path(id, "/messages?limit=1&before=5")).json();
  BOOST_TEST(page["data"][0]["content"] == "Echo: a");
  BOOST_TEST(page["has_more"] == true);

  // A new root: the first message edited.
  auto root = send_message(c, id, {{"content", "a2"}, {"parent_id", nullptr}});
  BOOST_TEST(root["message"]["parent_id"].is_null());
  BOOST_TEST(root["message"]["sibling_index"] == 2);
  BOOST_TEST(contents(c, id) == (texts{"a2", "Echo: a2"}));
  BOOST_TEST(conversation(c, id)["message_count"] == 2);
}

BOOST_AUTO_TEST_CASE(regenerate_keeps_the_previous_reply_as_a_sibling) {
  auto c = client("regen-tree");
  auto created = c.post("/v1/conversations", {{"message", "q"}}).json();
  auto id = id_of(created);
  auto question = created["message"];
  auto first = created["reply"];

  auto second = regenerate(c, id);
  BOOST_TEST(second["parent_id"] == question["id"]);
  BOOST_TEST(second["sibling_index"] == 2);
  BOOST_TEST(second["sibling_count"] == 2);
  BOOST_TEST(contents(c, id, "view=all").size() == 3u);
  BOOST_TEST(contents(c, id).size() == 2u);
  BOOST_TEST(conversation(c, id)["message_count"] == 2);
  BOOST_TEST(conversation(c, id)["active_leaf_id"] == second["id"]);

  // Any assistant message of the tree, not only the active leaf's.
  auto third = regenerate(c, id, {{"message_id", first["id"]}});
  BOOST_TEST(third["sibling_index"] == 3);
  BOOST_TEST(third["sibling_count"] == 3);
  BOOST_TEST(conversation(c, id)["active_leaf_id"] == third["id"]);
  auto listed = c.get(conversation_path(id, "/messages")).json()["data"];
  BOOST_REQUIRE_EQUAL(listed.size(), 2u);
  BOOST_TEST(listed[1]["id"] == third["id"]);

  // Only assistant messages of this conversation.
  auto field = [&](const json& body) {
    return expect_problem(c.post(conversation_path(id, "/regenerate"), body),
                          422)["errors"][0]["field"];
  };
  BOOST_TEST(field({{"message_id", question["id"]}}) == "message_id");
  BOOST_TEST(field({{"message_id", id}}) == "message_id");
  BOOST_TEST(field({{"message_id", "not-an-id"}}) == "message_id");
  BOOST_TEST(field({{"message_id", 7}}) == "message_id");
}

BOOST_AUTO_TEST_CASE(the_model_sees_exactly_the_active_branch) {
  mock().clear_behaviors();
  auto c = client("context-branch");
  auto id = create_conversation(c, {{"model", "gpt"}, {"system_prompt", "Be brief."}});
  auto one = send_message(c, id, {{"content", "one"}});
  auto r1 = one["reply"]["content"].get<std::string>();
  auto two = send_message(c, id, {{"content", "two"}});
  auto r2 = two["reply"]["content"].get<std::string>();
  BOOST_TEST(upstream_context() ==
             (texts{"system: Be brief.", "user: one", "assistant: " + r1, "user: two"}));

  // A branch from the first reply: "two" and its reply are not sent.
  auto alt = send_message(c, id, {{"content", "two-b"}, {"parent_id", one["reply"]["id"]}});
  BOOST_TEST(upstream_context() ==
             (texts{"system: Be brief.", "user: one", "assistant: " + r1, "user: two-b"}));

  // Back to the first branch, then continue it.
  auto switched = c.patch(conversation_path(id), {{"active_message_id", two["message"]["id"]}});
  BOOST_REQUIRE_EQUAL(switched.status, 200);
  BOOST_TEST(switched.json()["active_leaf_id"] == two["reply"]["id"]);
  send_message(c, id, {{"content", "three"}});
  BOOST_TEST(upstream_context() == (texts{"system: Be brief.", "user: one", "assistant: " + r1,
                                          "user: two", "assistant: " + r2, "user: three"}));

  // Regenerating the other branch's reply continues that branch.
  regenerate(c, id, {{"message_id", alt["reply"]["id"]}});
  BOOST_TEST(upstream_context() ==
             (texts{"system: Be brief.", "user: one", "assistant: " + r1, "user: two-b"}));
  BOOST_TEST(contents(c, id).size() == 4u);
}

BOOST_AUTO_TEST_CASE(switching_branches_is_stored_and_announced) {
  auto c = client("switcher");
  auto id = create_conversation(c);
  auto one = send_message(c, id, {{"content", "one"}});
  auto two = send_message(c, id, {{"content", "two"}});
  auto alt = send_message(c, id, {{"content", "alt"}, {"parent_id", one["reply"]["id"]}});

  ws_client watcher(server().port(), conversation_path(id, "/ws"), "switcher");
  // Switching to a message takes its newest leaf; other fields change with it.
  auto r =
      c.patch(conversation_path(id), {{"active_message_id", two["message"]["id"]}, {"title", "t"}});
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.json()["active_leaf_id"] == two["reply"]["id"]);
  BOOST_TEST(r.json()["title"] == "t");
  BOOST_TEST(r.json()["message_count"] == 4);
  auto event = watcher.read_json();
  BOOST_TEST(event["type"] == "branch");
  BOOST_TEST(event["active_leaf_id"] == two["reply"]["id"]);
  // The first message's newest leaf is the reply to "alt", its newest child's.
  r = c.patch(conversation_path(id), {{"active_message_id", one["message"]["id"]}});
  BOOST_TEST(r.json()["active_leaf_id"] == alt["reply"]["id"]);
  event = watcher.read_json();
  BOOST_TEST(event["type"] == "branch");
  BOOST_TEST(event["active_leaf_id"] == alt["reply"]["id"]);
  // Switching to where it is already changes nothing and announces nothing.
  r = c.patch(conversation_path(id), {{"active_message_id", alt["reply"]["id"]}});
  BOOST_TEST(r.json()["active_leaf_id"] == alt["reply"]["id"]);
  r = c.patch(conversation_path(id), {{"active_message_id", two["reply"]["id"]}});
  event = watcher.read_json();
  BOOST_TEST(event["active_leaf_id"] == two["reply"]["id"]);

  auto field = [&](const json& body) {
    return expect_problem(c.patch(conversation_path(id), body), 422)["errors"][0]["field"];
  };
  BOOST_TEST(field({{"active_message_id", id}}) == "active_message_id");
  BOOST_TEST(field({{"active_message_id", "x"}}) == "active_message_id");
  BOOST_TEST(contents(c, id) == (texts{"one", "Echo: one", "two", "Echo: two"}));
}

BOOST_AUTO_TEST_CASE(a_failed_regenerate_of_another_branch_changes_nothing) {
  mock().clear_behaviors();
  auto c = client("regen-fail");
  auto id = create_conversation(c, {{"model", "gpt"}});
  auto one = send_message(c, id, {{"content", "one"}});
  auto two = send_message(c, id, {{"content", "two"}});
  mock().push_behaviors(json::array({{{"status", 400}}}));
  auto r = c.post(conversation_path(id, "/regenerate"), {{"message_id", one["reply"]["id"]}},
                  {"Idempotency-Key: regen-fail-1"});
  BOOST_TEST(r.status == 502, r.body);
  auto conv = conversation(c, id);
  BOOST_TEST(conv["message_count"] == 4);
  BOOST_TEST(conv["active_leaf_id"] == two["reply"]["id"]);
  // The row written next (a rename) still counts the active branch.
  BOOST_TEST(c.patch(conversation_path(id), {{"title", "renamed"}}).json()["message_count"] == 4);
  auto three = send_message(c, id, {{"content", "three"}});
  BOOST_TEST(three["message"]["parent_id"] == two["reply"]["id"]);
  BOOST_TEST(conversation(c, id)["message_count"] == 6);
}

BOOST_AUTO_TEST_CASE(the_active_branch_survives_a_restart) {
  server_process own(options());
  http_client c(own.base_url(), "restart-branch");
  auto id = create_conversation(c);
  auto one = send_message(c, id, {{"content", "one"}});
  send_message(c, id, {{"content", "two"}});
  send_message(c, id, {{"content", "alt"}, {"parent_id", one["reply"]["id"]}});
  own.restart();
  http_client again(own.base_url(), "restart-branch");
  BOOST_TEST(contents(again, id) == (texts{"one", "Echo: one", "alt", "Echo: alt"}));
  // The reloaded window follows it too.
  auto next = send_message(again, id, {{"content", "more"}});
  BOOST_TEST(next["message"]["parent_id"] != nullptr);
  BOOST_TEST(contents(again, id).back() == "Echo: more");
  BOOST_TEST(conversation(again, id)["message_count"] == 6);
}

BOOST_AUTO_TEST_CASE(deleting_in_a_tree_reparents_and_moves_the_leaf) {
  auto c = client("tree-delete");
  auto created = c.post("/v1/conversations", {{"message", "q"}}).json();
  auto id = id_of(created);
  auto more = send_message(c, id, {{"content", "more"}});
  // A message in the middle of the active branch: its child takes its parent.
  BOOST_TEST(c.del(conversation_path(id, "/messages/" + id_of(more["message"]))).status == 204);
  auto listed = c.get(conversation_path(id, "/messages")).json()["data"];
  BOOST_REQUIRE_EQUAL(listed.size(), 3u);
  BOOST_TEST(listed[2]["parent_id"] == created["reply"]["id"]);
  BOOST_TEST(conversation(c, id)["message_count"] == 3);

  // The active leaf: the newest leaf under its parent takes over.
  auto last = listed[2];
  auto sibling = regenerate(c, id, {{"message_id", created["reply"]["id"]}});
  BOOST_TEST(c.del(conversation_path(id, "/messages/" + id_of(sibling))).status == 204);
  auto conv = conversation(c, id);
  BOOST_TEST(conv["active_leaf_id"] == last["id"]);
  BOOST_TEST(conv["message_count"] == 3);

  // Off the active branch: nothing shown changes.
  auto off = regenerate(c, id, {{"message_id", created["reply"]["id"]}});
  c.patch(conversation_path(id), {{"active_message_id", last["id"]}});
  BOOST_TEST(c.del(conversation_path(id, "/messages/" + id_of(off))).status == 204);
  BOOST_TEST(conversation(c, id)["message_count"] == 3);

  // The root: its child becomes a root.
  BOOST_TEST(c.del(conversation_path(id, "/messages/" + id_of(created["message"]))).status == 204);
  listed = c.get(conversation_path(id, "/messages")).json()["data"];
  BOOST_REQUIRE_EQUAL(listed.size(), 2u);
  BOOST_TEST(listed[0]["parent_id"].is_null());

  // Down to nothing, and on again from there.
  for (auto& m : listed)
    BOOST_TEST(c.del(conversation_path(id, "/messages/" + id_of(m))).status == 204);
  conv = conversation(c, id);
  BOOST_TEST(conv["active_leaf_id"].is_null());
  BOOST_TEST(conv["message_count"] == 0);
  BOOST_TEST(contents(c, id).empty());
  auto fresh = send_message(c, id, {{"content", "again"}});
  BOOST_TEST(fresh["message"]["parent_id"].is_null());
  BOOST_TEST(contents(c, id) == (texts{"again", "Echo: again"}));
}

BOOST_AUTO_TEST_CASE(a_fork_copies_the_branch_and_is_independent) {
  auto c = client("forker");
  auto id = create_conversation(
      c, {{"title", "source"}, {"system_prompt", "sp"}, {"metadata", {{"k", "v"}}}});
  auto one = send_message(c, id, {{"content", "one"}});
  auto two = send_message(c, id, {{"content", "two"}});
  send_message(c, id, {{"content", "alt"}, {"parent_id", one["reply"]["id"]}});

  // From a message of the branch that is not active.
  auto r = c.post(conversation_path(id, "/fork"), {{"message_id", two["message"]["id"]}});
  BOOST_REQUIRE_EQUAL(r.status, 201);
  auto fork = r.json();
  auto fork_id = id_of(fork);
  BOOST_TEST(r.header("location") == conversation_path(fork_id));
  BOOST_TEST(fork_id != id);
  BOOST_TEST(fork["title"] == "source");
  BOOST_TEST(fork["system_prompt"] == "sp");
  BOOST_TEST(fork["metadata"]["k"] == "v");
  BOOST_TEST(fork["message_count"] == 3);
  BOOST_TEST(fork["forked_from"]["conversation_id"] == id);
  BOOST_TEST(fork["forked_from"]["message_id"] == two["message"]["id"]);
  auto copied = c.get(conversation_path(fork_id, "/messages")).json()["data"];
  BOOST_REQUIRE_EQUAL(copied.size(), 3u);
  for (std::size_t i = 0; i < copied.size(); ++i) {
    BOOST_TEST(copied[i]["seq"] == i + 1);
    BOOST_TEST(copied[i]["conversation_id"] == fork_id);
    BOOST_TEST(copied[i]["parent_id"] == (i ? copied[i - 1]["id"] : json()));
  }
  BOOST_TEST(copied[2]["content"] == "two");
  BOOST_TEST(copied[2]["id"] != two["message"]["id"]);
  BOOST_TEST(copied[0]["created_at"] == one["message"]["created_at"]);
  BOOST_TEST(fork["active_leaf_id"] == copied[2]["id"]);

  // Changes to one leave the other as it was.
  BOOST_TEST(
      c.patch(conversation_path(fork_id, "/messages/" + id_of(copied[0])), {{"content", "changed"}})
          .status == 200);
  send_message(c, fork_id, {{"content", "fork only"}});
  BOOST_TEST(contents(c, id, "view=all").front() == "one");
  BOOST_TEST(contents(c, id, "view=all").size() == 6u);
  BOOST_TEST(c.del(conversation_path(id)).status == 204);
  BOOST_TEST(contents(c, fork_id) ==
             (texts{"changed", "Echo: one", "two", "fork only", "Echo: fork only"}));

  auto titled = c.post(conversation_path(fork_id, "/fork"),
                       {{"message_id", copied[0]["id"]}, {"title", "t2"}});
  BOOST_REQUIRE_EQUAL(titled.status, 201);
  BOOST_TEST(titled.json()["title"] == "t2");
  BOOST_TEST(titled.json()["message_count"] == 1);

  // Someone else's conversation is missing; a message of another is invalid.
  auto other = client("not-the-forker");
  expect_problem(other.post(conversation_path(fork_id, "/fork"), {{"message_id", copied[0]["id"]}}),
                 404);
  auto field = [&](const json& body) {
    return expect_problem(c.post(conversation_path(fork_id, "/fork"), body),
                          422)["errors"][0]["field"];
  };
  BOOST_TEST(field(json::object()) == "message_id");
  BOOST_TEST(field({{"message_id", two["message"]["id"]}}) == "message_id");
  BOOST_TEST(field({{"message_id", "zz"}}) == "message_id");
  BOOST_TEST(field({{"message_id", copied[0]["id"]}, {"title", 5}}) == "title");
}

BOOST_AUTO_TEST_CASE(branch_inputs_are_validated) {
  auto c = client("branch-inputs");
  auto id = create_conversation(c);
  auto other = create_conversation(c);
  auto elsewhere = send_message(c, other, {{"content", "x"}});
  send_message(c, id, {{"content", "x"}});
  auto field = [&](const http_response& r) {
    return expect_problem(r, 422)["errors"][0]["field"].get<std::string>();
  };
  auto post = [&](const json& body) { return c.post(conversation_path(id, "/messages"), body); };
  BOOST_TEST(field(post({{"content", "y"}, {"parent_id", 12}})) == "parent_id");
  BOOST_TEST(field(post({{"content", "y"}, {"parent_id", "../x"}})) == "parent_id");
  BOOST_TEST(field(post({{"content", "y"}, {"parent_id", elsewhere["message"]["id"]}})) ==
             "parent_id");
  BOOST_TEST(field(c.get(conversation_path(id, "/messages?leaf_id=nope"))) == "leaf_id");
  BOOST_TEST(field(c.get(conversation_path(
                 id, "/messages?leaf_id=" + id_of(elsewhere["reply"])))) == "leaf_id");
  BOOST_TEST(field(c.get(conversation_path(id, "/messages?view=tree"))) == "view");
  // Nothing was stored by the refused requests.
  BOOST_TEST(contents(c, id, "view=all").size() == 2u);
  BOOST_TEST(conversation(c, id)["message_count"] == 2);
}
