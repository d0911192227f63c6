#define BOOST_TEST_MODULE api_transfer
#include <boost/test/unit_test.hpp>

// Export and import over real HTTP: a conversation as JSON and Markdown,
// everything as NDJSON, Parley's own format round-tripped, ChatGPT's
// conversations.json imported as a tree, repeats skipped, broken entries
// failing alone, and a 60 MB import held to the size of what it stores.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace parley::testing;
using nlohmann::json;

namespace {

server_process& server() {
  static auto s = std::make_unique<server_process>(
      server_options{.config_toml = "[limits]\nmax_import_bytes = 80000000\n"});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

http_response import_body(http_client& c, const std::string& body,
                          const std::string& type = "application/json") {
  return c.request("POST", "/v1/import", body, {"Content-Type: " + type});
}

json import_ok(http_client& c, const std::string& body,
               const std::string& type = "application/json") {
  auto r = import_body(c, body, type);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.body.substr(0, 500));
  return r.json();
}

json export_of(http_client& c, const std::string& id) {
  auto r = c.get(conversation_path(id, "/export"));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.header("content-type") == "application/json");
  return r.json();
}

/// A conversation with two branches, an edit and a system prompt.
std::string tree_conversation(http_client& c) {
  auto created = c.post("/v1/conversations", {{"title", "Tree"},
                                              {"system_prompt", "Be brief."},
                                              {"metadata", {{"team", "blue"}}},
                                              {"message", "first"}})
                     .json();
  auto id = created["id"].get<std::string>();
  send_message(c, id, {{"content", "second"}});
  send_message(c, id, {{"content", "second, again"}, {"parent_id", created["reply"]["id"]}});
  c.patch(conversation_path(id, "/messages/" + created["message"]["id"].get<std::string>()),
          {{"content", "first, edited"}});
  return id;
}

/// What must survive a round trip: everything but ids, with each parent named
/// by its seq instead.
json comparable(const json& exported) {
  json c = exported["conversation"];
  std::map<std::string, std::int64_t> seq_of;
  for (auto& m : exported["messages"]) seq_of[m["id"].get<std::string>()] = m["seq"];
  json out = {{"conversation", c}, {"messages", json::array()}};
  for (auto key : {"id", "user_id", "active_leaf_id"}) out["conversation"].erase(key);
  out["active_leaf_seq"] =
      c["active_leaf_id"].is_null() ? json() : json(seq_of[c["active_leaf_id"]]);
  for (auto m : exported["messages"]) {
    m["parent_seq"] = m["parent_id"].is_null() ? json() : json(seq_of[m["parent_id"]]);
    for (auto key : {"id", "conversation_id", "parent_id"}) m.erase(key);
    out["messages"].push_back(m);
  }
  return out;
}

/// ChatGPT's shape: a root, a hidden system node, a user message, two
/// replies (the second one current), an empty node and a hidden one.
json chatgpt_conversation(const std::string& id, const std::string& title) {
  auto node = [](const std::string& node_id, json message, json parent, json children) {
    return json{{"id", node_id}, {"message", message}, {"parent", parent}, {"children", children}};
  };
  auto message = [](const std::string& role, json parts, json time, bool hidden = false) {
    json m = {{"author", {{"role", role}}},
              {"content", {{"content_type", "text"}, {"parts", parts}}},
              {"create_time", time}};
    if (hidden) m["metadata"] = {{"is_visually_hidden_from_conversation", true}};
    return m;
  };
  json mapping = {
      {"root", node("root", nullptr, nullptr, {"sys"})},
      {"sys", node("sys", message("system", {""}, nullptr, true), "root", {"u1"})},
      {"u1", node("u1", message("user", {"Hello", "there"}, 1700000000.5), "sys", {"a1", "a2"})},
      // No time of its own: it takes its parent's.
      {"a1", node("a1", message("assistant", {"First answer"}, nullptr), "u1", json::array())},
      {"a2", node("a2", message("assistant", {"Second answer"}, 1700000002.0), "u1", {"empty"})},
      {"empty", node("empty", message("assistant", {""}, 1700000003.0), "a2", {"u2"})},
      {"u2", node("u2", message("user", {"Thanks"}, 1700000004.0), "empty", {"tool"})},
      {"tool", node("tool", message("tool", {"internal"}, 1700000005.0), "u2", json::array())},
  };
  return {{"title", title},
          {"create_time", 1700000000.0},
          {"update_time", 1700000009.0},
          {"mapping", mapping},
          {"current_node", "tool"},
          {"conversation_id", id},
          {"moderation_results", json::array()}};
}

// The server under test is built as this test is: under AddressSanitizer
// its freed memory sits in quarantine, so its peak says nothing of Parley's.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool built_with_address_sanitizer = true;
#elif defined(__has_feature)
constexpr bool built_with_address_sanitizer = __has_feature(address_sanitizer);
#else
constexpr bool built_with_address_sanitizer = false;
#endif

/// A size the kernel reports for process `pid` (`VmRSS`, `VmHWM` …), in bytes.
std::uint64_t memory_of(int pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_conversation_exports_as_json_and_markdown) {
  auto c = client("export-one");
  auto id = tree_conversation(c);
  auto e = export_of(c, id);
  BOOST_TEST(e["format"] == "parley.conversation.v1");
  BOOST_TEST(e["conversation"]["id"] == id);
  BOOST_TEST(e["conversation"]["title"] == "Tree");
  // Every message of the tree, in seq order, with its parent.
  auto& messages = e["messages"];
  BOOST_REQUIRE_EQUAL(messages.size(), 6u);
  for (std::size_t i = 0; i < messages.size(); ++i) BOOST_TEST(messages[i]["seq"] == i + 1);
  BOOST_TEST(messages[0]["parent_id"].is_null());
  BOOST_TEST(messages[4]["parent_id"] == messages[1]["id"]);
  BOOST_TEST(messages[0]["edited_at"].is_string());

  auto md = c.get(conversation_path(id, "/export?format=markdown"));
  BOOST_REQUIRE_EQUAL(md.status, 200);
  BOOST_TEST(md.header("content-type").rfind("text/markdown", 0) == 0u);
  BOOST_TEST(md.body.find("# Tree") == 0u);
  BOOST_TEST(md.body.find("Be brief.") != std::string::npos);
  // The active branch only.
  BOOST_TEST(md.body.find("second, again") != std::string::npos);
  BOOST_TEST(md.body.find("\nsecond\n") == std::string::npos);
  BOOST_TEST(md.body.find("first, edited") != std::string::npos);

  expect_problem(c.get(conversation_path(id, "/export?format=pdf")), 422);
  expect_problem(client("export-other").get(conversation_path(id, "/export")), 404);
  expect_problem(c.get(conversation_path("not-an-id", "/export")), 404);
}

BOOST_AUTO_TEST_CASE(export_then_import_round_trips_every_message_branch_and_time) {
  auto from = client("round-from");
  auto id = tree_conversation(from);
  auto exported = export_of(from, id);
  auto to = client("round-to");
  auto answer = import_ok(to, exported.dump());
  BOOST_TEST(answer["imported"] == 1);
  BOOST_TEST(answer["skipped"] == 0);
  BOOST_TEST(answer["errors"].empty());
  BOOST_REQUIRE_EQUAL(answer["conversations"].size(), 1u);
  auto new_id = answer["conversations"][0].get<std::string>();
  BOOST_TEST(new_id != id);
  auto again = export_of(to, new_id);
  BOOST_TEST(again["conversation"]["user_id"] == "round-to");
  BOOST_TEST(comparable(again) == comparable(exported));
  // It is a conversation like any other: listed, continued on its active branch.
  auto next = send_message(to, new_id, {{"content", "after import"}});
  BOOST_TEST(next["message"]["parent_id"] == again["conversation"]["active_leaf_id"]);
  BOOST_TEST(next["message"]["seq"] == 7);
  // The same source again is skipped; the original owner's copy is untouched.
  auto repeat = import_ok(to, exported.dump());
  BOOST_TEST(repeat["imported"] == 0);
  BOOST_TEST(repeat["skipped"] == 1);
  BOOST_TEST(export_of(from, id)["messages"].size() == 6u);
}

BOOST_AUTO_TEST_CASE(a_chatgpt_export_imports_as_a_tree) {
  auto c = client("chatgpt");
  json body = json::array(
      {chatgpt_conversation("cg-1", "From ChatGPT"), chatgpt_conversation("cg-2", "Second one")});
  auto answer = import_ok(c, body.dump());
  BOOST_TEST(answer["imported"] == 2);
  BOOST_TEST(answer["errors"].empty());
  auto id = answer["conversations"][0].get<std::string>();
  auto e = export_of(c, id);
  BOOST_TEST(e["conversation"]["title"] == "From ChatGPT");
  BOOST_TEST(e["conversation"]["created_at"] == "2023-11-14T22:13:20.000Z");
  auto& m = e["messages"];
  // The hidden system node, the empty one and the tool's are skipped; text parts are joined.
  BOOST_REQUIRE_EQUAL(m.size(), 4u);
  BOOST_TEST(m[0]["content"] == "Hello\nthere");
  BOOST_TEST(m[0]["parent_id"].is_null());
  BOOST_TEST(m[0]["created_at"] == "2023-11-14T22:13:20.500Z");
  BOOST_TEST(m[1]["content"] == "First answer");
  BOOST_TEST(m[2]["content"] == "Second answer");
  // A missing time is its parent's.
  BOOST_TEST(m[1]["created_at"] == m[0]["created_at"]);
  BOOST_TEST(m[2]["created_at"] == "2023-11-14T22:13:22.000Z");
  BOOST_TEST(m[1]["parent_id"] == m[0]["id"]);
  BOOST_TEST(m[2]["parent_id"] == m[0]["id"]);
  BOOST_TEST(m[2]["sibling_index"] == 2);
  BOOST_TEST(m[2]["sibling_count"] == 2);
  // The skipped empty node's child follows its nearest kept ancestor.
  BOOST_TEST(m[3]["content"] == "Thanks");
  BOOST_TEST(m[3]["parent_id"] == m[2]["id"]);
  // current_node (the skipped tool message) → its kept ancestor is the active leaf.
  BOOST_TEST(e["conversation"]["active_leaf_id"] == m[3]["id"]);
  BOOST_TEST(e["conversation"]["message_count"] == 3);
  auto shown = c.get(conversation_path(id, "/messages")).json()["data"];
  BOOST_REQUIRE_EQUAL(shown.size(), 3u);
  BOOST_TEST(shown[1]["content"] == "Second answer");

  auto repeat = import_ok(c, body.dump());
  BOOST_TEST(repeat["imported"] == 0);
  BOOST_TEST(repeat["skipped"] == 2);
}

BOOST_AUTO_TEST_CASE(broken_entries_fail_alone) {
  auto c = client("import-broken");
  auto good = chatgpt_conversation("ok-1", "good");
  auto looped = chatgpt_conversation("loop-1", "loop");
  looped["mapping"]["u1"]["parent"] = "u2";  // u1 → … → u2 → u1
  looped["mapping"]["sys"]["parent"] = "u1";
  json bad_role = {{"format", "parley.conversation.v1"},
                   {"conversation", {{"id", "x"}}},
                   {"messages", {{{"id", "m"}, {"seq", 1}, {"role", "robot"}, {"content", "hi"}}}}};
  json orphan = {
      {"format", "parley.conversation.v1"},
      {"conversation", {{"id", "y"}}},
      {"messages",
       {{{"id", "m"}, {"seq", 1}, {"role", "user"}, {"content", "hi"}, {"parent_id", "zz"}}}}};
  json body = json::array({good, looped, 42, bad_role, orphan, {{"format", "other"}}});
  auto answer = import_ok(c, body.dump());
  BOOST_TEST(answer["imported"] == 1);
  BOOST_REQUIRE_EQUAL(answer["errors"].size(), 5u);
  std::vector<int> failed;
  for (auto& e : answer["errors"]) {
    failed.push_back(e["index"]);
    BOOST_TEST(!e["detail"].get<std::string>().empty());
  }
  BOOST_TEST((failed == std::vector<int>{1, 2, 3, 4, 5}));
  BOOST_TEST(answer["errors"][2]["detail"].get<std::string>().find("role") != std::string::npos);

  // NDJSON: a line that is not JSON fails alone too.
  auto one = export_of(c, answer["conversations"][0].get<std::string>());
  auto other = one;
  other["conversation"]["id"] = "another-source";
  auto lines = one.dump() + "\n{not json\n\n" + other.dump() + "\n";
  auto nd = import_ok(c, lines, "application/x-ndjson");
  BOOST_TEST(nd["imported"] == 2);
  BOOST_REQUIRE_EQUAL(nd["errors"].size(), 1u);
  BOOST_TEST(nd["errors"][0]["index"] == 1);

  // A body that is nothing importable is an error entry, not a failure.
  auto junk = import_ok(c, "\"just a string\"");
  BOOST_TEST(junk["imported"] == 0);
  BOOST_TEST(junk["errors"].size() == 1u);
  expect_problem(import_body(c, "[]", "text/plain"), 415);
  BOOST_TEST(import_ok(c, "[]")["imported"] == 0);
}

BOOST_AUTO_TEST_CASE(import_bodies_have_a_limit_of_their_own) {
  server_process small(server_options{
      .config_toml = "[server]\nmax_body_bytes = 1000\n[limits]\nmax_import_bytes = 5000\n"});
  http_client c(small.base_url(), "import-limit");
  json one = {{"format", "parley.conversation.v1"},
              {"conversation", {{"id", "limit-1"}}},
              {"messages",
               {{{"id", "m"}, {"seq", 1}, {"role", "user"}, {"content", std::string(3000, 'x')}}}}};
  // Past server.max_body_bytes but within limits.max_import_bytes: read.
  auto r = c.request("POST", "/v1/import", one.dump(), {"Content-Type: application/json"});
  BOOST_TEST(r.status == 200, r.body);
  BOOST_TEST(r.json()["imported"] == 1);
  one["messages"][0]["content"] = std::string(6000, 'x');
  expect_problem(c.request("POST", "/v1/import", one.dump(), {"Content-Type: application/json"}),
                 413);
  // The other routes keep server.max_body_bytes.
  expect_problem(c.post("/v1/conversations", {{"title", std::string(1200, 't')}}), 413);
}

BOOST_AUTO_TEST_CASE(a_very_long_message_is_stored_and_its_start_searchable) {
  // 3 MB of distinct words: more than a PostgreSQL tsvector holds (1 MB).
  auto c = client("import-long");
  std::string text = "zanzibar";
  for (int i = 0; text.size() < 3'000'000; ++i) text += " word" + std::to_string(i);
  json one = {{"format", "parley.conversation.v1"},
              {"conversation", {{"id", "long-1"}}},
              {"messages", {{{"id", "m"}, {"seq", 1}, {"role", "assistant"}, {"content", text}}}}};
  auto answer = import_ok(c, one.dump());
  BOOST_REQUIRE_EQUAL(answer["imported"], 1);
  auto id = answer["conversations"][0].get<std::string>();
  BOOST_TEST(c.get(conversation_path(id, "/messages")).json()["data"][0]["content"] == text);
  auto found = c.get("/v1/search?q=zanzibar").json()["data"];
  BOOST_REQUIRE_EQUAL(found.size(), 1u);
  BOOST_TEST(found[0]["conversation_id"] == id);
}

BOOST_AUTO_TEST_CASE(everything_exports_as_ndjson) {
  auto c = client("export-all");
  std::set<std::string> ids;
  for (int i = 0; i < 37; ++i) {
    auto id = create_conversation(c, {{"title", "n" + std::to_string(i)}});
    send_message(c, id, {{"content", "hello " + std::to_string(i)}});
    ids.insert(id);
  }
  auto other = client("export-all-other");
  create_conversation(other);
  auto r = c.get("/v1/export");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.header("content-type") == "application/x-ndjson");
  std::istringstream lines(r.body);
  std::set<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line);
    BOOST_TEST(j["format"] == "parley.conversation.v1");
    BOOST_TEST(j["messages"].size() == 2u);
    BOOST_TEST(seen.insert(j["conversation"]["id"].get<std::string>()).second);
  }
  BOOST_TEST(seen == ids);
  // And it reads back as an NDJSON import.
  auto copy = client("export-all-copy");
  auto back = import_ok(copy, r.body, "application/x-ndjson");
  BOOST_TEST(back["imported"] == 37);
  BOOST_TEST(client("export-all-nobody").get("/v1/export").body.empty());
}

BOOST_AUTO_TEST_CASE(a_60_mb_import_holds_no_more_than_it_stores) {
  // 60 MB of ChatGPT conversations, each with a few large messages.
  std::string text(5000, 'x');
  json body = json::array();
  std::size_t size = 0;
  for (int i = 0; size < 60'000'000; ++i) {
    auto conv = chatgpt_conversation("big-" + std::to_string(i), "big " + std::to_string(i));
    for (auto node : {"u1", "a1", "a2", "u2"})
      conv["mapping"][node]["message"]["content"]["parts"] = {text + std::to_string(i)};
    size += conv.dump().size();
    body.push_back(std::move(conv));
  }
  auto text_body = body.dump();
  body = json();
  auto c = client("import-big");
  auto pid = server().pid();
  auto before = memory_of(pid, "VmRSS");
  auto r = import_body(c, text_body);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.body.substr(0, 300));
  auto answer = r.json();
  BOOST_TEST(answer["errors"].empty());
  BOOST_TEST(answer["imported"].get<std::size_t>() > 2000u);
  // The body is read whole by the HTTP layer (RESTinio 0.6 has no streamed
  // request bodies); the parsing on top of it holds one conversation at a
  // time. A whole-document parse would hold several times the body.
  auto peak = memory_of(pid, "VmHWM");
  auto grown = peak - std::min(before, peak);
  BOOST_TEST_MESSAGE("peak RSS grew by " << grown / 1e6 << " MB for a " << text_body.size() / 1e6
                                         << " MB body");
  if (built_with_address_sanitizer)
    BOOST_TEST_MESSAGE("not compared: AddressSanitizer keeps freed memory in quarantine");
  else
    BOOST_TEST(grown < 2 * text_body.size() + 32'000'000u);
  // Everything is there.
  auto last = answer["conversations"].back().get<std::string>();
  BOOST_TEST(c.get(conversation_path(last, "/messages")).json()["data"].size() == 3u);
}
