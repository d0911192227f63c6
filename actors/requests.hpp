#pragma once

// Plain values the HTTP layer hands to the engine and gets back. No CAF here.

#include "actors/conversation_events.hpp"
#include "base/errors.hpp"
#include "base/mutex.hpp"
#include "persistence/records.hpp"
#include "providers/provider.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace parley {

/// How the HTTP layer calls off a generation whose client went away: the
/// conversation actor registers what to do, the HTTP layer triggers it.
/// Thread-safe; the handler runs at most once.
class cancellation {
 public:
  void cancel() {
    std::function<void()> run;
    {
      mutex_lock lock(mutex_);
      if (cancelled_) return;
      cancelled_ = true;
      run = std::move(handler_);
    }
    if (run) run();
  }
  /// Replaces the handler; runs it at once if cancel() came first.
  void on_cancel(std::function<void()> handler) {
    {
      mutex_lock lock(mutex_);
      if (!cancelled_) {
        handler_ = std::move(handler);
        return;
      }
    }
    handler();
  }

 private:
  mutex mutex_;
  bool cancelled_ GUARDED_BY(mutex_) = false;
  std::function<void()> handler_ GUARDED_BY(mutex_);
};

/// A message to add to a conversation, validated by the HTTP layer.
struct send_params {
  std::string role = "user";
  shared_text content;
  /// Messages stored before this one in the same transaction, oldest first,
  /// each the parent of the next (an input of several messages). Stored
  /// before the model is asked, like a live exchange's.
  std::vector<chat_message> preceding;
  /// The message to follow: absent, the active leaf; null, none (a new
  /// root); another message, a new branch from it.
  std::optional<std::optional<std::string>> parent_id;
  bool reply = true;
  std::optional<std::string> model;  ///< a known alias (checked before hand-off)
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_tokens;
  /// The system prompt of this exchange only, instead of the conversation's.
  std::optional<std::string> instructions;
  /// The id the reply is stored under, for a caller that names the reply
  /// before it exists (a streamed Responses call); by default a new one.
  std::optional<std::string> reply_id;
  /// The request's `on_disconnect`, when it gave one: true for "cancel".
  /// The HTTP layer sets `cancel` from it and streams.on_disconnect.
  std::optional<bool> cancel_on_disconnect;
  /// Set when the reply should stop if the client goes away.
  std::shared_ptr<cancellation> cancel;
  /// Set when the caller streams the exchange: it gets the stored message,
  /// the reply's deltas and the stored reply as they happen.
  std::shared_ptr<conversation_subscriber> stream;
};

struct new_conversation {
  std::string user_id;
  std::optional<std::string> title;
  std::string model;  ///< a known alias
  std::optional<std::string> system_prompt;
  std::string metadata_json = "{}";
  std::optional<std::string> context_strategy;  ///< "truncate" or "summarize"; none: the default
  std::optional<send_params> first_message;
};

/// Fields a PATCH changes. For the nullable ones, an inner nullopt clears the value.
struct conversation_patch {
  std::optional<std::optional<std::string>> title;
  std::optional<std::string> model;
  std::optional<std::optional<std::string>> system_prompt;
  std::optional<std::string> metadata_json;
  std::optional<std::optional<std::string>> context_strategy;
  /// Switches branches: the active leaf becomes the newest leaf under it.
  std::optional<std::string> active_message_id;
};

struct regenerate_params {
  std::optional<std::string> model;
  /// The assistant message to produce again; by default the active leaf's.
  std::optional<std::string> message_id;
  /// See send_params::cancel_on_disconnect.
  std::optional<bool> cancel_on_disconnect;
  /// Set when the reply should stop if the client goes away.
  std::shared_ptr<cancellation> cancel;
  /// Set when the caller streams the reply (see send_params::stream).
  std::shared_ptr<conversation_subscriber> stream;
};

struct history_query {
  std::int64_t after = 0;
  std::optional<std::int64_t> before;
  unsigned limit = 50;
  /// The branch to list, by its last message; by default the active one.
  std::optional<std::string> leaf_id;
  bool whole_tree = false;  ///< every message of every branch instead
};

/// A new conversation holding copies of the branch from the root to `message_id`.
struct fork_request {
  std::string message_id;
  std::optional<std::string> title;  ///< by default the source's
};

struct message_page {
  std::vector<message_record> data;
  bool has_more = false;
};

/// One conversation read from an import, ready to store: new ids, the
/// caller's, parents before children.
struct imported_conversation {
  std::string source;  ///< what identifies it where it came from; a second import skips it
  conversation_record row;
  std::vector<message_record> messages;  ///< in seq order
};

/// The conversations of an import, one per call, in order: the next one, or
/// why it cannot be imported; none once all have been read. Called from
/// one thread at a time, not the caller's.
using import_reader = std::function<std::optional<outcome<imported_conversation>>()>;

/// What an import did. `errors` names each conversation that failed by its
/// position in the body (0-based) and why.
struct import_summary {
  std::int64_t imported = 0;
  std::int64_t skipped = 0;
  std::vector<std::string> conversations;  ///< the new conversations' ids
  std::vector<std::pair<std::size_t, std::string>> errors;
};

/// A conversation as export gives it: its row and its messages (the whole
/// tree, or one branch), in seq order.
struct conversation_export {
  conversation_record conversation;
  std::vector<message_record> messages;
};

/// A completion outside the conversations' exchanges (the OpenAI-compatible
/// routes): the user's token quota applies, the model's fallbacks and the
/// providers' retries too, and nothing is stored but the usage, which is
/// committed before the answer.
struct stateless_request {
  std::string user_id;
  std::string model;  ///< a known alias
  /// Continue a stored branch without adding to it: the conversation and the
  /// message the branch ends at (its active leaf when none). The branch's
  /// newest messages that fit the model come before `messages`.
  struct branch_context {
    std::string conversation_id;
    std::optional<std::string> leaf_id;
  };
  std::optional<branch_context> context;
  /// The system prompt; with a context, by default the conversation's.
  std::optional<std::string> system;
  std::vector<chat_message> messages;  ///< oldest first
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_tokens;
  std::vector<std::string> stop;
  /// Set when the completion should stop if the client goes away.
  std::shared_ptr<cancellation> cancel;
  /// Set to receive the text as it is produced, with the alias of the model
  /// producing it: in order, from any thread,
  /// never concurrently, never after the answer. The text a client saw
  /// cannot be taken back, so no fallback model is tried after a piece.
  std::function<void(const std::string& model, std::string text)> on_delta;
  /// Called once the call is accepted (quota and context read), before the
  /// model is asked: a stream may begin. From any thread.
  std::function<void()> on_started;
  /// Kept until the call ends, its provider request included (the caller's
  /// generation slot).
  std::shared_ptr<void> hold;
};

struct stateless_result {
  std::string model;  ///< the alias that answered: the one asked, or a fallback
  std::string text;
  finish_reason reason = finish_reason::stop;
  completion_usage usage;
};

/// A stored message with the conversation that holds it.
struct located_message {
  conversation_record conversation;
  message_record message;
};

/// What an exchange's caller gets: what the exchange produced or, when its
/// Idempotency-Key was used before, what is stored for the key (and then the
/// exchange did not run).
struct exchange_answer : exchange_result {
  std::optional<idempotency_record> replayed;
};

/// The detail of the answer stored with a user message until its reply is
/// stored (a 502 naming the message): what a repeat gets after a crash. A
/// repeat that finds it while the reply may still come waits for the reply.
inline constexpr const char* reply_interrupted_detail =
    "the reply was interrupted before it was stored; regenerate to try again";

/// An Idempotency-Key claimed by a POST. The conversation looks the key up in
/// its turn; the outcome is stored in the same transaction as the operation's
/// own writes, so a repeat finds exactly it.
struct idempotency_claim {
  std::string key;
  std::string request_hash;  ///< tells a repeat from another request with the key
};

}  // namespace parley
