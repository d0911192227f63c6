#pragma once

#include "config/errors.hpp"
#include "config/shared_text.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
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

/// The engine's estimate of a prompt's tokens: its messages' estimates summed.
std::int64_t estimate_prompt_tokens(const std::vector<chat_message>& messages);

/// What a provider is asked: the assembled context and sampling parameters.
struct completion_request {
  std::string upstream_model;
  std::vector<chat_message> messages;
  std::optional<double> temperature;
  std::uint32_t max_tokens = 0;  ///< the most completion tokens to produce
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
