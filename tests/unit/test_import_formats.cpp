#define BOOST_TEST_MODULE import_formats
#include <boost/test/unit_test.hpp>

// The export and import formats (http/export_formats, http/import_formats):
// how a body is split, what each format becomes, what is refused and why.

#include "http/export_formats.hpp"
#include "http/import_formats.hpp"

#include <nlohmann/json.hpp>

using namespace parley;
using nlohmann::json;

namespace {

std::vector<std::string> split(std::string_view body, bool ndjson) {
  import_splitter s(body, ndjson);
  std::vector<std::string> out;
  while (auto v = s.next()) out.emplace_back(*v);
  return out;
}

import_context context() { return {"alice", 1'700'000'000'000, nullptr}; }

json parley_export(json messages, json conversation = {{"id", "c1"}, {"title", "T"}}) {
  return {{"format", "parley.conversation.v1"},
          {"conversation", std::move(conversation)},
          {"messages", std::move(messages)}};
}

json message(const std::string& id, int seq, const std::string& role, json parent = nullptr) {
  return {{"id", id},
          {"seq", seq},
          {"role", role},
          {"content", "text " + id},
          {"created_at", "2026-11-22T13:05:07.123Z"},
          {"parent_id", parent}};
}

std::string error_of(const json& j) {
  auto r = import_conversation(j.dump(), context());
  BOOST_REQUIRE(!r);
  return r.error().detail;
}

}  // namespace

BOOST_AUTO_TEST_CASE(bodies_split_into_their_top_level_values) {
  // Brackets, commas and escaped quotes inside strings do not end a value.
  auto parts = split(R"( [ {"a":"],\"}"} , {"b":[1,{"c":2}]} ,42, "x" ] )", false);
  BOOST_TEST((parts ==
              std::vector<std::string>{R"({"a":"],\"}"})", R"({"b":[1,{"c":2}]})", "42", "\"x\""}));
  BOOST_TEST(split("[]", false).empty());
  BOOST_TEST(split("[1,2]", false) == (std::vector<std::string>{"1", "2"}));
  BOOST_TEST(split(" {\"one\":1} trailing", false) == std::vector<std::string>{"{\"one\":1}"});
  BOOST_TEST(split("{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{bad", true) ==
             (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}\r", "{bad"}));
  // An unclosed array or object ends with the body; a stray character is one value.
  BOOST_TEST(split("[{\"a\":[1,2", false) == std::vector<std::string>{"{\"a\":[1,2"});
  BOOST_TEST(split("]", false) == std::vector<std::string>{"]"});
  BOOST_TEST(split("", false).empty());
}

BOOST_AUTO_TEST_CASE(parley_exports_keep_the_tree_with_new_ids) {
  auto body = parley_export({message("m1", 1, "user"), message("m2", 2, "assistant", "m1"),
                             message("m3", 4, "assistant", "m1"), message("m4", 5, "user", "m2")});
  body["conversation"]["active_leaf_id"] = "m4";
  auto r = import_conversation(body.dump(), context());
  BOOST_REQUIRE(bool(r));
  BOOST_TEST(r->source == "parley:c1");
  BOOST_TEST(r->row.user_id == "alice");
  BOOST_TEST(*r->row.title == "T");
  BOOST_TEST(r->row.model == "echo");  // no registry: the default
  BOOST_REQUIRE_EQUAL(r->messages.size(), 4u);
  auto& m = r->messages;
  BOOST_TEST(m[0].id != "m1");
  BOOST_TEST(m[1].conversation_id == r->row.id);
  BOOST_TEST(*m[1].parent_id == m[0].id);
  BOOST_TEST(*m[3].parent_id == m[1].id);
  BOOST_TEST(m[2].seq == 4);  // seqs kept, gaps and all
  BOOST_TEST(m[2].sibling_index == 2);
  BOOST_TEST(m[2].sibling_count == 2);
  BOOST_TEST(m[0].created_at == 1795352707123);
  BOOST_TEST(*r->row.active_leaf_id == m[3].id);
  BOOST_TEST(r->row.message_count == 3);
  BOOST_TEST(r->row.last_seq == 5);
  // Without an active leaf: the newest message's branch.
  body["conversation"].erase("active_leaf_id");
  r = import_conversation(body.dump(), context());
  BOOST_TEST(*r->row.active_leaf_id == r->messages.back().id);
  // Without an id, the source is the entry's hash: the same text, the same source.
  body["conversation"].erase("id");
  auto a = import_conversation(body.dump(), context());
  auto b = import_conversation(body.dump(), context());
  BOOST_TEST(a->source.rfind("parley:sha256:", 0) == 0u);
  BOOST_TEST(a->source == b->source);
}

BOOST_AUTO_TEST_CASE(broken_parley_entries_say_what_is_wrong) {
  BOOST_TEST(error_of(parley_export(json::array({message("m1", 1, "robot")}))).find("role") !=
             std::string::npos);
  BOOST_TEST(
      error_of(parley_export(json::array({message("m1", 1, "user", "m9")}))).find("parent_id") !=
      std::string::npos);
  // A parent must come first: a later one is no parent.
  BOOST_TEST(error_of(parley_export({message("m1", 1, "user", "m2"), message("m2", 2, "user")}))
                 .find("parent_id") != std::string::npos);
  BOOST_TEST(
      error_of(parley_export({message("m1", 1, "user"), message("m2", 1, "user")})).find("seq") !=
      std::string::npos);
  auto empty = message("m1", 1, "user");
  empty["content"] = "";
  BOOST_TEST(error_of(parley_export(json::array({empty}))).find("content") != std::string::npos);
  // U+0000 anywhere (PostgreSQL cannot store it) refuses the entry.
  auto nul = message("m1", 1, "user");
  nul["content"] = std::string("a\0b", 3);
  BOOST_TEST(error_of(parley_export(json::array({nul}))).find("U+0000") != std::string::npos);
  nul = message("m1", 1, "assistant");
  nul["model"] = std::string("e\0", 2);
  BOOST_TEST(error_of(parley_export(json::array({nul}))).find("U+0000") != std::string::npos);
  BOOST_TEST(error_of(parley_export(json::array({message("m1", 1, "user")}),
                                    {{"id", "c1"}, {"title", std::string("t\0", 2)}}))
                 .find("U+0000") != std::string::npos);
  // A long reply is kept: replies are not held to what a user may send.
  auto long_text = message("m1", 1, "assistant");
  long_text["content"] = std::string(100'000, 'x');
  BOOST_TEST(bool(import_conversation(parley_export(json::array({long_text})).dump(), context())));
  // Values of an unexpected type are an error of the entry, never an exception.
  auto typed = message("m1", 1, "user");
  typed["seq"] = "1";
  BOOST_TEST(!error_of(parley_export(json::array({typed}))).empty());
  BOOST_TEST(!error_of(parley_export(json::array({message("m1", 1, "user")}),
                                     {{"usage", {{"cost_usd", "x"}}}, {"id", 4}}))
                  .empty());
  auto bad_time = message("m1", 1, "user");
  bad_time["created_at"] = "yesterday";
  BOOST_TEST(error_of(parley_export(json::array({bad_time}))).find("created_at") !=
             std::string::npos);
  BOOST_TEST(
      error_of(parley_export(json::array({message("m1", 1, "user")}), {{"metadata", {{"k", 1}}}}))
          .find("metadata") != std::string::npos);
  BOOST_TEST(error_of({{"format", "parley.conversation.v2"}}).find("format") != std::string::npos);
  BOOST_TEST(error_of({{"format", "parley.conversation.v1"}}).find("conversation") !=
             std::string::npos);
  BOOST_TEST(!import_conversation("[1]", context()));
  BOOST_TEST(!import_conversation("{", context()));
  BOOST_TEST(!import_conversation(std::string(100, '[') + std::string(100, ']'), context()));
}

BOOST_AUTO_TEST_CASE(chatgpt_conversations_skip_what_was_not_shown) {
  auto node = [](json message, json parent) {
    return json{{"message", message}, {"parent", parent}, {"children", json::array()}};
  };
  auto says = [](const std::string& role, json parts, json time) {
    return json{{"author", {{"role", role}}},
                {"content", {{"content_type", "text"}, {"parts", parts}}},
                {"create_time", time}};
  };
  json code = {{"author", {{"role", "assistant"}}},
               {"content", {{"content_type", "code"}, {"text", "print(1)"}}},
               {"create_time", 20.0}};
  json c = {{"title", std::string(300, 't')},
            {"create_time", 10.0},
            {"id", "abc"},
            {"mapping",
             {{"r", node(nullptr, nullptr)},
              {"u", node(says("user", {"hi", {{"asset", "image"}}, "there"}, nullptr), "r")},
              {"c", node(code, "u")},
              {"x", node(says("assistant", {""}, 30.0), "c")},
              {"late", node(says("user", {"before its parent"}, 5.0), "x")}}},
            {"current_node", "missing"}};
  auto r = import_conversation(c.dump(), context());
  BOOST_REQUIRE(bool(r));
  BOOST_TEST(r->source == "chatgpt:abc");
  BOOST_TEST(r->row.title->size() == 200u);  // cut to 200 characters, not refused
  BOOST_TEST(r->row.created_at == 10'000);
  BOOST_REQUIRE_EQUAL(r->messages.size(), 3u);
  BOOST_TEST(r->messages[0].content == "hi\nthere");  // the image part left out
  BOOST_TEST(r->messages[0].created_at == 10'000);    // no time: the conversation's
  BOOST_TEST(r->messages[1].content == "print(1)");
  BOOST_TEST(r->messages[2].content == "before its parent");
  BOOST_TEST(*r->messages[2].parent_id == r->messages[1].id);  // past the empty node
  BOOST_TEST(r->messages[2].created_at == 20'000);             // never before its parent
  // No usable current node: the newest message's branch.
  BOOST_TEST(*r->row.active_leaf_id == r->messages[2].id);

  // Fields of unexpected types are read as absent, not thrown.
  auto odd = c;
  odd["mapping"]["u"]["message"]["author"]["role"] = 5;
  odd["mapping"]["c"]["message"]["content"]["content_type"] = 7;
  odd["mapping"]["x"]["message"]["metadata"] = {{"is_visually_hidden_from_conversation", "yes"}};
  odd["mapping"]["late"]["message"]["create_time"] = "soon";
  odd["id"] = 12;
  auto read = import_conversation(odd.dump(), context());
  BOOST_REQUIRE(bool(read));
  BOOST_TEST(read->messages.size() == 1u);
  BOOST_TEST(read->source.rfind("chatgpt:sha256:", 0) == 0u);

  c["mapping"]["r"]["parent"] = "late";  // r → late → x → c → u → r
  BOOST_TEST(error_of(c).find("loop") != std::string::npos);
  // A long run of skipped nodes is walked once, not once per kept child.
  json chain = {{"title", "chain"}, {"mapping", json::object()}};
  std::string parent = "";
  for (int i = 0; i < 20000; ++i) {
    auto id = "h" + std::to_string(i);
    chain["mapping"][id] = node(nullptr, parent.empty() ? json() : json(parent));
    parent = id;
  }
  for (int i = 0; i < 2000; ++i)
    chain["mapping"]["k" + std::to_string(i)] = node(says("user", {"hi"}, i), parent);
  auto walked = import_conversation(chain.dump(), context());
  BOOST_REQUIRE(bool(walked));
  BOOST_TEST(walked->messages.size() == 2000u);
  BOOST_TEST(error_of({{"mapping", 3}}).find("mapping") != std::string::npos);
  BOOST_TEST(error_of({{"title", "neither"}}).find("neither") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_export_reads_back_as_an_import) {
  conversation_export e;
  e.conversation.id = "0193c3a0-0000-7000-8000-000000000001";
  e.conversation.user_id = "bob";
  e.conversation.model = "echo";
  e.conversation.title = "Round";
  for (int seq = 1; seq <= 3; ++seq) {
    message_record m;
    m.id = "0193c3a0-0000-7000-8000-00000000010" + std::to_string(seq);
    m.conversation_id = e.conversation.id;
    m.seq = seq;
    m.role = seq % 2 ? "user" : "assistant";
    m.content = "line <" + std::to_string(seq) + ">";
    m.created_at = 1000 * seq;
    if (seq > 1) m.parent_id = e.messages.back().id;
    e.messages.push_back(m);
  }
  e.conversation.active_leaf_id = e.messages.back().id;
  auto j = json::parse(export_json(e));
  BOOST_TEST(j["format"] == conversation_export_format);
  BOOST_TEST(j["messages"].size() == 3u);
  auto r = import_conversation(export_json(e), context());
  BOOST_REQUIRE(bool(r));
  BOOST_TEST(r->source == "parley:" + e.conversation.id);
  BOOST_TEST(r->messages[2].content == "line <3>");
  BOOST_TEST(r->messages[2].created_at == 3000);
  BOOST_TEST(r->row.message_count == 3);

  auto md = export_markdown(e);
  BOOST_TEST(md.rfind("# Round\n", 0) == 0u);
  BOOST_TEST(md.find("## Assistant · 1970-01-01T00:00:02.000Z\n\nline <2>") != std::string::npos);
}
