#include "persistence/search_query.hpp"

#include <utility>

namespace parley {

namespace {

/// The code point at the start of `text` and its length in bytes; an invalid
/// sequence is one byte long and no code point (U+FFFD, a separator).
std::pair<char32_t, std::size_t> decode(std::string_view text) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  auto lead = byte(0);
  std::size_t n = lead < 0x80       ? 1
                  : lead >> 5 == 6  ? 2
                  : lead >> 4 == 14 ? 3
                  : lead >> 3 == 30 ? 4
                                    : 0;
  if (n == 0 || n > text.size()) return {0xFFFD, 1};
  char32_t cp = n == 1 ? lead : lead & (0x7F >> n);
  for (std::size_t i = 1; i < n; ++i) {
    if (byte(i) >> 6 != 2) return {0xFFFD, 1};
    cp = cp << 6 | (byte(i) & 0x3F);
  }
  return {cp, n};
}

/// Letters and digits, as far as the two databases' tokenizers agree: ASCII
/// letters and digits, and every code point past ASCII but punctuation,
/// symbols and emoji (which both tokenizers drop, and which would otherwise
/// make a word that matches nothing).
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c <= 0xBF || c == 0xD7 || c == 0xF7 || c == 0xFFFD) return false;
  if (c >= 0x2000 && c <= 0x2BFF) return false;    // punctuation, symbols, arrows, shapes
  if (c >= 0x3000 && c <= 0x303F) return false;    // CJK punctuation
  if (c >= 0xFE30 && c <= 0xFE4F) return false;    // CJK compatibility forms
  if (c >= 0xFF00 && c <= 0xFF0F) return false;    // fullwidth punctuation
  if (c >= 0x1F000 && c <= 0x1FAFF) return false;  // emoji and pictographs
  return true;
}

/// Reads the query left to right, a token at a time.
class search_parser {
 public:
  explicit search_parser(std::string_view text) : text_(text) {}

  search_expression parse() {
    search_expression out;
    search_alternative current;
    auto close_alternative = [&] {
      if (!current.required.empty()) out.alternatives.push_back(std::move(current));
      current = {};
    };
    while (words_ < max_search_words) {
      skip_separators();
      if (at_end()) break;
      bool negated = false;
      if (peek() == '-') {
        negated = true;
        ++at_;
      }
      search_phrase phrase;
      if (!at_end() && peek() == '"') {
        ++at_;
        phrase = quoted_words();
      } else {
        auto word = next_word();
        if (!negated && word == "OR") {
          close_alternative();
          continue;
        }
        if (!word.empty()) phrase.push_back(std::move(word));
      }
      if (phrase.empty()) continue;
      (negated ? current.excluded : current.required).push_back(std::move(phrase));
    }
    close_alternative();
    return out;
  }

 private:
  bool at_end() const { return at_ >= text_.size(); }
  char peek() const { return text_[at_]; }
  /// The length of the word character at the cursor; 0 when it is none.
  std::size_t word_char() const {
    auto [c, n] = decode(text_.substr(at_));
    return is_word_char(c) ? n : 0;
  }
  /// Moves past the character at the cursor, whatever it is.
  void skip_char() { at_ += decode(text_.substr(at_)).second; }

  /// Skips what can start neither a word, a phrase nor an exclusion.
  void skip_separators() {
    while (!at_end() && !word_char() && peek() != '"' && peek() != '-') skip_char();
  }

  /// The word at the cursor (empty when none starts there), counted.
  std::string next_word() {
    auto start = at_;
    for (std::size_t n; !at_end() && (n = word_char()) != 0;) at_ += n;
    if (start == at_) {
      skip_char();  // a lone '-' or a character between words
      return {};
    }
    ++words_;
    return std::string(text_.substr(start, at_ - start));
  }

  /// The words up to the closing quote (or the end: an unclosed quote closes there).
  search_phrase quoted_words() {
    search_phrase out;
    while (!at_end() && peek() != '"' && words_ < max_search_words) {
      if (word_char())
        out.push_back(next_word());
      else
        skip_char();
    }
    if (!at_end() && peek() == '"') ++at_;
    return out;
  }

  std::string_view text_;
  std::size_t at_ = 0;
  std::size_t words_ = 0;
};

/// `"a b c"`: words hold no quote, so none needs escaping.
std::string quoted(const search_phrase& phrase) {
  std::string out = "\"";
  for (std::size_t i = 0; i < phrase.size(); ++i) {
    if (i) out += ' ';
    out += phrase[i];
  }
  return out + '"';
}

}  // namespace

search_expression parse_search(std::string_view text) { return search_parser(text).parse(); }

std::string fts5_match(const search_expression& e, std::string_view column) {
  std::string out;
  for (auto& alternative : e.alternatives) {
    if (!out.empty()) out += " OR ";
    std::string required;
    for (auto& phrase : alternative.required) {
      if (!required.empty()) required += " AND ";
      required += quoted(phrase);
    }
    // FTS5's NOT is binary: what is required, NOT each exclusion.
    out += "(" + required;
    for (auto& phrase : alternative.excluded) out += " NOT " + quoted(phrase);
    out += ")";
  }
  return std::string(column) + " : (" + out + ")";
}

std::string websearch_text(const search_expression& e) {
  std::string out;
  for (auto& alternative : e.alternatives) {
    if (!out.empty()) out += " or ";
    for (auto& phrase : alternative.required) out += quoted(phrase) + " ";
    for (auto& phrase : alternative.excluded) out += "-" + quoted(phrase) + " ";
  }
  return out;
}

}  // namespace parley
