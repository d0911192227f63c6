#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace parley {

/// Immutable text held once and shared by everything that holds it: a
/// message's content is one allocation whether the context window, a prompt,
/// a write set or a reply has it, and passing it on copies a pointer.
class shared_text {
 public:
  shared_text() = default;
  shared_text(std::string text)  // NOLINT(google-explicit-constructor): text is its value
      : text_(text.empty() ? nullptr : std::make_shared<const std::string>(std::move(text))) {}
  shared_text(const char* text) : shared_text(std::string(text)) {}  // NOLINT

  const std::string& str() const { return text_ ? *text_ : empty_text(); }
  operator const std::string&() const { return str(); }  // NOLINT
  operator std::string_view() const { return str(); }    // NOLINT
  std::size_t size() const { return str().size(); }
  bool empty() const { return str().empty(); }

  friend bool operator==(const shared_text& a, const shared_text& b) { return a.str() == b.str(); }
  friend bool operator==(const shared_text& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const shared_text& a, const char* b) { return a.str() == b; }
  template <class Stream>
  friend Stream& operator<<(Stream& out, const shared_text& t) {
    return out << t.str();
  }

 private:
  static const std::string& empty_text() {
    static const std::string empty;
    return empty;
  }

  std::shared_ptr<const std::string> text_;  ///< null for the empty text
};

}  // namespace parley
