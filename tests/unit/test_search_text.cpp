#define BOOST_TEST_MODULE search_text
#include <boost/test/unit_test.hpp>

// The search language (persistence/search_query) and the snippets' HTML
// (http/json_mapping): what a query means, what each database is sent, and
// what a client is shown.

#include "http/json_mapping.hpp"
#include "persistence/search_query.hpp"

#include <random>
#include <string>

using namespace parley;

namespace {

using phrases = std::vector<search_phrase>;

std::string marked(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '[')
      out += search_mark_open;
    else if (c == ']')
      out += search_mark_close;
    else
      out += c;
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(words_phrases_exclusions_and_alternatives) {
  auto e = parse_search("red  \"big dog\" -cat -\"small mouse\" OR blue");
  BOOST_REQUIRE_EQUAL(e.alternatives.size(), 2u);
  BOOST_TEST((e.alternatives[0].required == phrases{{"red"}, {"big", "dog"}}));
  BOOST_TEST((e.alternatives[0].excluded == phrases{{"cat"}, {"small", "mouse"}}));
  BOOST_TEST((e.alternatives[1].required == phrases{{"blue"}}));
  BOOST_TEST(fts5_match(e, "content") ==
             "content : ((\"red\" AND \"big dog\" NOT \"cat\" NOT \"small mouse\") OR (\"blue\"))");
  BOOST_TEST(websearch_text(e) == "\"red\" \"big dog\" -\"cat\" -\"small mouse\"  or \"blue\" ");
}

BOOST_AUTO_TEST_CASE(anything_else_separates_words) {
  // Operators of either engine are only separators here.
  auto e = parse_search("NEAR(a b) c:d *e* {f} ^g AND h \\ i's");
  BOOST_REQUIRE_EQUAL(e.alternatives.size(), 1u);
  BOOST_TEST((e.alternatives[0].required == phrases{{"NEAR"},
                                                    {"a"},
                                                    {"b"},
                                                    {"c"},
                                                    {"d"},
                                                    {"e"},
                                                    {"f"},
                                                    {"g"},
                                                    {"AND"},
                                                    {"h"},
                                                    {"i"},
                                                    {"s"}}));
  // Letters past ASCII stay in words; punctuation and emoji do not.
  e = parse_search("café—naïve «日本語» 🙂 x…y");
  BOOST_TEST(
      (e.alternatives[0].required == phrases{{"café"}, {"naïve"}, {"日本語"}, {"x"}, {"y"}}));
  // Bytes that are not UTF-8 are separators too.
  e = parse_search(
      "a\xff\xfe"
      "b\xc3");
  BOOST_TEST((e.alternatives[0].required == phrases{{"a"}, {"b"}}));
}

BOOST_AUTO_TEST_CASE(what_cannot_match_is_dropped) {
  BOOST_TEST(parse_search("").empty());
  BOOST_TEST(parse_search("   \t ").empty());
  BOOST_TEST(parse_search("***").empty());
  BOOST_TEST(parse_search("\"\"").empty());
  BOOST_TEST(parse_search("-").empty());
  BOOST_TEST(parse_search("OR OR").empty());
  // Only exclusions: no search (everything but x is not an answer).
  BOOST_TEST(parse_search("-x -\"y z\"").empty());
  auto e = parse_search("-x OR y");
  BOOST_REQUIRE_EQUAL(e.alternatives.size(), 1u);
  BOOST_TEST((e.alternatives[0].required == phrases{{"y"}}));
  // An unclosed quote closes at the end; "or" in lower case is a word.
  e = parse_search("\"open phrase or");
  BOOST_TEST((e.alternatives[0].required == phrases{{"open", "phrase", "or"}}));
  // A word that is OR only when alone and unquoted.
  e = parse_search("\"OR\" -OR");
  BOOST_TEST((e.alternatives[0].required == phrases{{"OR"}}));
  BOOST_TEST((e.alternatives[0].excluded == phrases{{"OR"}}));
}

BOOST_AUTO_TEST_CASE(long_queries_are_cut_to_the_word_limit) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "w" + std::to_string(i) + " ";
  auto e = parse_search(text);
  BOOST_REQUIRE_EQUAL(e.alternatives.size(), 1u);
  BOOST_TEST(e.alternatives[0].required.size() == max_search_words);
}

BOOST_AUTO_TEST_CASE(no_input_puts_a_quote_or_operator_into_the_engines_text) {
  // Whatever the input, every word the engines see is a quoted run of word
  // characters, and the only operators are the ones written here.
  std::mt19937 random(42);
  const std::string alphabet = "ab \"-()*:^{}\\'OR\x01\xc3\xa9\xff";
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int i = 0, n = static_cast<int>(random() % 40); i < n; ++i)
      text += alphabet[random() % alphabet.size()];
    auto e = parse_search(text);
    for (auto& a : e.alternatives)
      for (auto* list : {&a.required, &a.excluded})
        for (auto& phrase : *list)
          for (auto& word : phrase) {
            BOOST_TEST(!word.empty());
            BOOST_TEST(word.find_first_of("\"-()*:^{}\\' \x01") == std::string::npos, word);
          }
  }
}

BOOST_AUTO_TEST_CASE(snippets_escape_the_text_and_mark_the_matches) {
  BOOST_TEST(snippet_html(marked("a <b>[bold]</b> & 'q' \"x\"")) ==
             "a &lt;b&gt;<mark>bold</mark>&lt;/b&gt; &amp; &#39;q&#39; &quot;x&quot;");
  // Unpaired marks never leave a tag open or close one that was not opened.
  BOOST_TEST(snippet_html(marked("]a [b")) == "a <mark>b</mark>");
  BOOST_TEST(snippet_html(marked("[a [b] c]")) == "<mark>a b</mark> c");
  BOOST_TEST(snippet_html("") == "");
}

BOOST_AUTO_TEST_CASE(long_snippets_keep_a_window_around_the_first_match) {
  std::string text(500, 'x');
  text += "[needle]";
  text += std::string(500, 'y');
  auto html = snippet_html(marked(text), 200);
  BOOST_TEST(html.find("<mark>needle</mark>") != std::string::npos);
  BOOST_TEST(html.starts_with("\u2026"));
  BOOST_TEST(html.ends_with("\u2026"));
  // About 200 characters: the window and the ellipses.
  auto visible =
      html.size() - std::string("<mark></mark>").size() - 2 * std::string("\u2026").size();
  BOOST_TEST(visible == 200u);
  // Multi-byte characters are never cut.
  std::string wide;
  for (int i = 0; i < 300; ++i) wide += "é";
  html = snippet_html(wide, 200);
  BOOST_TEST(html == std::string(wide, 0, 400) + "\u2026");
}

BOOST_AUTO_TEST_CASE(search_cursors_round_trip_and_refuse_other_text) {
  search_cursor c{-1234567890123, "m:0193c3a0-0000-7000-8000-000000000001"};
  auto back = decode_search_cursor(encode_search_cursor(c));
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->score == c.score);
  BOOST_TEST(back->key == c.key);
  for (auto bad : {"", "_", "1_", "x_m:0193c3a0-0000-7000-8000-000000000001",
                   "1.5_m:0193c3a0-0000-7000-8000-000000000001",
                   "99999999999999999999_m:0193c3a0-0000-7000-8000-000000000001",
                   "1_q:0193c3a0-0000-7000-8000-000000000001", "1_m:nope"})
    BOOST_TEST(!decode_search_cursor(bad).has_value(), bad);
}
