#pragma once

// The search language of GET /v1/search, parsed once and written out for
// each database's full-text engine. Every input parses: a character that is
// not part of a word, a quote or a leading `-` is a separator, so no text a
// client sends can be a syntax error in either database.
//
//   words         all must match, in any order
//   "a phrase"    its words next to each other, in order
//   -word         must not match (also -"a phrase")
//   a OR b        either side; AND binds tighter: `a b OR c` is (a b) or c

#include <string>
#include <string_view>
#include <vector>

namespace parley {

/// One or more words that must appear together, in order (one word: anywhere).
using search_phrase = std::vector<std::string>;

/// The phrases that must all match and those that must not.
struct search_alternative {
  std::vector<search_phrase> required;
  std::vector<search_phrase> excluded;
};

/// Alternatives, any of which may match. Alternatives with nothing required
/// are dropped: "everything but x" is no search.
struct search_expression {
  std::vector<search_alternative> alternatives;
  bool empty() const { return alternatives.empty(); }
};

/// At most this many words are read from a query; the rest are ignored.
inline constexpr std::size_t max_search_words = 64;

/// Parses `text` (any bytes). Words are runs of letters and digits; other
/// characters separate them (see is_word_char in the source).
search_expression parse_search(std::string_view text);

/// `text` for SQLite FTS5's MATCH, restricted to the column `column`: every
/// word a quoted string, so no FTS5 operator or column name can come from input.
std::string fts5_match(const search_expression& e, std::string_view column);

/// `text` for PostgreSQL's websearch_to_tsquery: every word quoted, so that
/// a word "or" is a word and never the operator.
std::string websearch_text(const search_expression& e);

}  // namespace parley
