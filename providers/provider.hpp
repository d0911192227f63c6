#pragma once

#include "base/errors.hpp"
#include "base/shared_text.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parley {

/// One message of a prompt. Its text is shared with the context window, not
/// copied, and its token estimate is the one the window computed when the
/// message arrived.
struct chat_message {
  chat_message(std::string role, shared_text content);
  chat_message(std::string role, shared_text content, std::int64_t tokens)
      : role(std::move(role)), content(std::move(content)), tokens(tokens) {}

  std::string role;  ///< system, user, assistant
  shared_text content;
  std::int64_t tokens = 0;  ///< estimate_message_tokens(content)
};

/// A prompt's messages, oldest first: the system message (if any), a run of a
/// conversation's history that the prompt shares with its context window (the
/// window copies its history only if it changes while a prompt still holds
/// it), and the new message (if any). Building one copies no text and counts
/// nothing: each message brings its estimate, and the history's total comes
/// with it.
class prompt {
 public:
  using history = std::vector<chat_message>;

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = chat_message;
    using difference_type = std::ptrdiff_t;
    using pointer = const chat_message*;
    using reference = const chat_message&;

    iterator() = default;
    iterator(const prompt* p, std::size_t at) : prompt_(p), at_(at) {}
    reference operator*() const { return (*prompt_)[at_]; }
    pointer operator->() const { return &(*prompt_)[at_]; }
    iterator& operator++() { return ++at_, *this; }
    iterator operator++(int) { return {prompt_, at_++}; }
    bool operator==(const iterator& o) const { return at_ == o.at_; }

   private:
    const prompt* prompt_ = nullptr;
    std::size_t at_ = 0;
  };

  prompt() = default;
  prompt(const prompt&) = default;
  prompt& operator=(const prompt&) = default;
  /// A moved-from prompt is empty.
  prompt(prompt&& other) noexcept;
  prompt& operator=(prompt&& other) noexcept;
  /// A prompt of its own messages.
  prompt(std::initializer_list<chat_message> messages);
  /// `system`, then `shared[first, last)` whose estimates sum to
  /// `shared_tokens`, then `pending`.
  prompt(std::optional<chat_message> system, std::shared_ptr<const history> shared,
         std::size_t first, std::size_t last, std::int64_t shared_tokens,
         std::optional<chat_message> pending);

  /// Puts `m` between the system prompt and the history: a summary of what
  /// the history leaves out.
  void set_summary(chat_message m);

  std::size_t size() const {
    return (system_ ? 1 : 0) + (summary_ ? 1 : 0) + (last_ - first_) + (pending_ ? 1 : 0);
  }
  bool empty() const { return size() == 0; }
  /// The i-th message, oldest first; i < size().
  const chat_message& operator[](std::size_t i) const;
  /// The newest message; not empty().
  const chat_message& back() const { return (*this)[size() - 1]; }
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, size()}; }
  /// The engine's estimate of the prompt's tokens: its messages' estimates summed.
  std::int64_t estimated_tokens() const { return tokens_; }

 private:
  std::optional<chat_message> system_;
  std::optional<chat_message> summary_;
  std::shared_ptr<const history> shared_;
  std::size_t first_ = 0, last_ = 0;
  std::optional<chat_message> pending_;
  std::int64_t tokens_ = 0;
};

/// What a provider is asked: the assembled context and sampling parameters.
struct completion_request {
  std::string upstream_model;
  prompt messages;
  std::optional<double> temperature;
  std::uint32_t max_tokens = 0;  ///< the most completion tokens to produce
  /// Sequences that end the text where one would begin (it is not included).
  std::vector<std::string> stop;
  /// Deliver text as it is produced (the caller streams it on). Otherwise a
  /// provider may deliver the whole text at once, and may retry a failed
  /// attempt whose partial text nobody has seen.
  bool stream = false;
  /// The latest the completion may end, retries included.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

enum class finish_reason { stop, length, cancelled };

const char* to_string(finish_reason r);

struct completion_usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

/// How a completion ended when it did not fail.
struct completion_result {
  finish_reason reason = finish_reason::stop;
  completion_usage usage;
  /// True when the provider counted the prompt tokens itself; false when
  /// `usage` is the engine's estimate.
  bool usage_reported = false;
};

/// Where a provider delivers a completion. Both callbacks may run on any
/// thread (never concurrently with each other); they must not block.
struct completion_callbacks {
  /// The next piece of text, in order. Never called after on_finish.
  std::function<void(std::string)> on_delta;
  /// Called exactly once, last: the result, or a failure with errc
  /// provider_error or provider_timeout.
  std::function<void(outcome<completion_result>)> on_finish;
};

/// A completion in flight.
class completion_handle {
 public:
  virtual ~completion_handle() = default;
  /// Stops the completion (and frees its upstream request) as soon as possible;
  /// on_finish then reports finish_reason::cancelled with the text so far.
  /// Thread-safe; a no-op once finished.
  virtual void cancel() = 0;
};

/// An LLM provider. Implementations are thread-safe and never block the caller:
/// `start` returns at once and the work happens on the provider's own threads.
class provider {
 public:
  virtual ~provider() = default;
  virtual std::shared_ptr<completion_handle> start(completion_request request,
                                                   completion_callbacks callbacks) = 0;
};

}  // namespace parley
