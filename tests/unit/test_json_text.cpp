#define BOOST_TEST_MODULE json_text
#include <boost/test/unit_test.hpp>

#include "base/json_text.hpp"
#include "http/json_mapping.hpp"

#include <limits>
#include <random>

using namespace parley;
using nlohmann::json;

namespace {

// Text of every kind: plain, quotes and backslashes, control characters,
// DEL, valid multi-byte UTF-8, and invalid or cut-off sequences.
const std::vector<std::string> pieces{"a",
                                      "Lisbon ",
                                      "\"",
                                      "\\",
                                      "\n",
                                      "\t",
                                      "\x01",
                                      "\x1f",
                                      "\x7f",
                                      "é",
                                      "🙂",
                                      "\xff",
                                      "\xc3",
                                      "\xe2\x82",
                                      "\xf0\x9f\x99",
                                      "\x80",
                                      "\xed\xa0\x80",
                                      std::string("\0", 1),
                                      "\xe2\x82\xac",
                                      "\xf4\x8f\xbf\xbf",
                                      "\xf4\x90\x80\x80",
                                      "\xc0\xaf",
                                      "\xef\xbf\xbf"};

std::string random_text(std::mt19937& random) {
  std::string text;
  for (int k = 0, len = static_cast<int>(random() % 12); k < len; ++k)
    text += pieces[random() % pieces.size()];
  return text;
}

std::string reference_dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// A message as a json tree dumps it: how the API rendered messages before
/// they were written out directly, and the standard they are held to.
json message_as_a_tree(const message_record& m) {
  json j = {
      {"id", m.id},
      {"conversation_id", m.conversation_id},
      {"seq", m.seq},
      {"role", m.role},
      {"content", m.content.str()},
      {"created_at", format_rfc3339(m.created_at)},
      {"edited_at", m.edited_at ? json(format_rfc3339(*m.edited_at)) : json(nullptr)},
      {"parent_id", m.parent_id ? json(*m.parent_id) : json(nullptr)},
      {"sibling_index", m.sibling_index},
      {"sibling_count", m.sibling_count},
  };
  if (m.model) {
    j["model"] = *m.model;
    j["finish_reason"] = m.finish_reason ? json(*m.finish_reason) : json(nullptr);
    j["usage"] = {{"prompt_tokens", m.prompt_tokens.value_or(0)},
                  {"completion_tokens", m.completion_tokens.value_or(0)}};
  }
  return j;
}

message_record random_message(std::mt19937& random, int round) {
  message_record m;
  m.id = round % 9 == 0 ? random_text(random)
                        : "0193c3a0-0000-7000-8000-00000000000" + std::to_string(round % 10);
  m.conversation_id = "0193c3a0-0000-7000-8000-000000000001";
  m.seq = static_cast<std::int64_t>(random()) - (round % 5 == 0 ? 1'000'000'000 : 0);
  if (round % 11 == 0) m.seq = std::numeric_limits<std::int64_t>::min();
  if (round % 13 == 0) m.seq = std::numeric_limits<std::int64_t>::max();
  m.role = round % 17 == 0 ? random_text(random) : round % 2 ? "assistant" : "user";
  m.content = random_text(random);
  m.created_at = 1'764'979'200'000 + static_cast<std::int64_t>(random() % 1'000'000);
  if (round % 3 == 0) m.edited_at = m.created_at + 5;
  if (round % 4 != 0) m.parent_id = round % 19 == 0 ? random_text(random) : m.conversation_id;
  m.sibling_count = static_cast<std::int64_t>(random() % 1000) + 1;
  m.sibling_index = static_cast<std::int64_t>(random()) % m.sibling_count + 1;
  if (round % 2) {
    m.model = round % 7 == 0 ? random_text(random) : "echo";
    if (round % 4 != 1) m.finish_reason = round % 8 == 3 ? random_text(random) : "stop";
    if (round % 6 != 1) m.prompt_tokens = static_cast<std::int64_t>(random() % 100000);
    if (round % 10 != 3) m.completion_tokens = static_cast<std::int64_t>(random()) * 4096 - 99;
  } else if (round % 4 == 0) {
    // Token counts and a finish reason without a model are not shown.
    m.finish_reason = "stop";
    m.completion_tokens = 5;
  }
  return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(escapes_as_json_writes_them) {
  auto quoted = [](std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
  };
  BOOST_TEST(quoted("") == R"("")");
  BOOST_TEST(quoted("a/b") == R"("a/b")");
  BOOST_TEST(quoted("\x01\x1f") == R"("\u0001\u001f")");
  BOOST_TEST(quoted(std::string("a\0b", 3)) == R"("a\u0000b")");
  BOOST_TEST(quoted("\b\f\n\r\t\"\\") == R"("\b\f\n\r\t\"\\")");
  BOOST_TEST(quoted("\x7f") == "\"\x7f\"");          // DEL stays as it is
  BOOST_TEST(quoted("é🙂") == "\"é🙂\"");      // valid UTF-8 too
  BOOST_TEST(quoted("\xff") == "\"\xef\xbf\xbd\"");  // invalid: U+FFFD
  // Invalid forms json replaces its own way: a surrogate, an overlong form,
  // a code point above U+10FFFF.
  for (auto bad : {"\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"})
    BOOST_TEST(quoted(bad) == reference_dump(json(bad)));
}

BOOST_AUTO_TEST_CASE(a_json_string_is_what_json_dumps) {
  std::mt19937 random(7);
  for (int round = 0; round < 5000; ++round) {
    auto text = round == 0 ? std::string() : random_text(random);
    std::string out = "prefix";
    append_json_string(out, text);
    BOOST_TEST(out == "prefix" + reference_dump(json(text)), "round " << round);
  }
}

BOOST_AUTO_TEST_CASE(messages_pages_and_exchanges_are_what_a_tree_dumps) {
  std::mt19937 random(20261206);
  for (int round = 0; round < 2000; ++round) {
    auto m = random_message(random, round);
    BOOST_TEST(message_json(m) == reference_dump(message_as_a_tree(m)), "round " << round);

    message_page page;
    for (int i = 0, n = static_cast<int>(random() % 4); i < n; ++i)
      page.data.push_back(random_message(random, round + i));
    page.has_more = round % 2;
    json data = json::array();
    for (auto& p : page.data) data.push_back(message_as_a_tree(p));
    BOOST_TEST(page_json(page) == reference_dump({{"data", data}, {"has_more", page.has_more}}),
               "round " << round);

    exchange_result r;
    json tree = json::object();
    if (round % 3 != 2) {
      r.message = random_message(random, 2 * round);
      tree["message"] = message_as_a_tree(*r.message);
    }
    if (round % 3 != 1) {
      r.reply = random_message(random, 2 * round + 1);
      tree["reply"] = message_as_a_tree(*r.reply);
    }
    if (round % 10 == 0) {
      conversation_record c;
      c.id = "0193c3a0-0000-7000-8000-000000000001";
      c.user_id = "alice";
      c.model = "echo";
      r.conversation = c;
      auto with = to_json(c);
      for (auto& [k, v] : tree.items()) with[k] = v;
      // A create's answer puts the messages after the conversation's fields:
      // the same object, in another key order.
      BOOST_TEST((json::parse(exchange_json(r)) == json::parse(reference_dump(with))),
                 "round " << round);
      continue;
    }
    BOOST_TEST(exchange_json(r) == reference_dump(tree), "round " << round);
  }
}
