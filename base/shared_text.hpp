#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace parley {

/// Immutable text held once and shared by everything that holds it: a
/// message's content is one allocation whether the context window, a prompt,
/// a write set or a reply has it, and passing it on copies a pointer. The
/// count of holders and the characters share that one allocation.
class shared_text {
 public:
  shared_text() = default;
  shared_text(std::string_view text)  // NOLINT(google-explicit-constructor): text is its value
      : rep_(text.empty() ? nullptr : make(text)) {}
  shared_text(const std::string& text) : shared_text(std::string_view(text)) {}  // NOLINT
  shared_text(const char* text) : shared_text(std::string_view(text)) {}         // NOLINT

  shared_text(const shared_text& other) noexcept : rep_(other.rep_) {
    if (rep_) rep_->holders.fetch_add(1, std::memory_order_relaxed);
  }
  shared_text(shared_text&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  shared_text& operator=(shared_text other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~shared_text() {
    if (rep_ && rep_->holders.fetch_sub(1, std::memory_order_acq_rel) == 1) ::operator delete(rep_);
  }

  std::string_view view() const {
    return rep_ ? std::string_view(characters(rep_), rep_->size) : std::string_view();
  }
  operator std::string_view() const { return view(); }  // NOLINT
  /// A std::string copy, for what needs one (JSON values, concatenation).
  std::string str() const { return std::string(view()); }
  const char* data() const { return view().data(); }
  std::size_t size() const { return rep_ ? rep_->size : 0; }
  bool empty() const { return size() == 0; }

  friend bool operator==(const shared_text& a, const shared_text& b) {
    return a.view() == b.view();
  }
  friend bool operator==(const shared_text& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const shared_text& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const shared_text& a, const char* b) { return a.view() == b; }
  template <class Stream>
  friend Stream& operator<<(Stream& out, const shared_text& t) {
    return out << t.view();
  }

 private:
  struct rep {
    std::atomic<std::size_t> holders;
    std::size_t size;
  };

  static char* characters(rep* r) { return reinterpret_cast<char*>(r + 1); }

  static rep* make(std::string_view text) {
    auto* r = static_cast<rep*>(::operator new(sizeof(rep) + text.size()));
    new (r) rep{{1}, text.size()};
    std::memcpy(characters(r), text.data(), text.size());
    return r;
  }

  rep* rep_ = nullptr;  ///< null for the empty text
};

}  // namespace parley
