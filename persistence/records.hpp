#pragma once

#include "base/clock.hpp"
#include "base/errors.hpp"
#include "base/shared_text.hpp"
#include "persistence/search_query.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace parley {

/// Token and cost totals of a conversation.
struct usage_totals {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  double cost_usd = 0;
};

/// A reply being produced in a conversation now. Not stored: the engine
/// sets it on a conversation it answers with (conversation_record::running).
struct running_run {
  std::string run_id;
  unix_ms started_at = 0;
};

/// One row of `conversations`.
struct conversation_record {
  std::string id;
  std::string user_id;
  std::optional<std::string> title;
  std::string model;
  std::optional<std::string> system_prompt;
  std::string metadata_json = "{}";  ///< a JSON object of string values
  unix_ms created_at = 0;
  unix_ms updated_at = 0;
  std::int64_t message_count = 0;
  std::int64_t last_seq = 0;  ///< highest seq ever given out; never goes down
  usage_totals usage;
  /// Goes up by one with every committed change: a writer holding an older
  /// version (another process changed the row meanwhile) gets a conflict.
  std::int64_t version = 1;
  /// The last message of the branch shown and continued; none while empty.
  /// Always a leaf: every operation that moves it moves it to one.
  std::optional<std::string> active_leaf_id;
  /// Set on a conversation made by a fork: where it was forked from.
  std::optional<std::string> forked_from_conversation_id;
  std::optional<std::string> forked_from_message_id;
  /// How the context is made to fit the model, "truncate" or "summarize";
  /// none: context.strategy.
  std::optional<std::string> context_strategy;
  /// Not a column: the run in progress, set by the engine where it knows it.
  std::optional<running_run> running;
};

/// One row of `messages`.
struct message_record {
  std::string id;
  std::string conversation_id;
  std::int64_t seq = 0;
  std::string role;  ///< user, assistant, system
  shared_text content;
  unix_ms created_at = 0;
  std::optional<unix_ms> edited_at;
  // Set on assistant messages produced by a provider.
  std::optional<std::string> model;
  std::optional<std::string> finish_reason;
  std::optional<std::int64_t> prompt_tokens;
  std::optional<std::int64_t> completion_tokens;
  /// The message this one follows in the tree; none for a root.
  std::optional<std::string> parent_id;
  // Where the message stands among its parent's children (seq order), as
  // read from the database or decided when it was made: not columns.
  std::int64_t sibling_index = 1;  ///< 1-based
  std::int64_t sibling_count = 1;
};

/// What a POST that adds messages produced. Each operation fills what it
/// made: create fills conversation (and message/reply when a first message
/// was sent), send fills message (and reply), regenerate fills reply.
struct exchange_result {
  std::optional<conversation_record> conversation;
  std::optional<message_record> message;
  std::optional<message_record> reply;
};

/// An answer stored before schema 4, as it was sent then; replayed as it is.
/// None is left a day after the upgrade, when the last such key has expired.
struct legacy_answer {
  int status = 0;
  std::string body;
};

/// The first answer to an idempotent request, replayed for repeats: the
/// outcome itself, not a rendering of it (http/ renders it each time).
struct idempotency_record {
  std::string user_id;
  std::string key;
  std::string request_hash;
  outcome<exchange_result> answer = failure{};
  unix_ms created_at = 0;
  std::optional<legacy_answer> legacy;  ///< set instead of `answer` for a key stored before
};

/// An idempotency key and its encoded answer, as a write stores them.
struct idempotency_row {
  std::string user_id;
  std::string key;
  std::string request_hash;
  std::string answer;  ///< encode_answer's text
  unix_ms created_at = 0;
};

/// One user's usage of one model on one UTC day.
struct usage_row {
  std::string model;
  std::int64_t requests = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  double cost_usd = 0;
};

/// A keyset position in a user's conversation list (most recently updated first).
struct conversation_cursor {
  unix_ms updated_at = 0;
  std::string id;
};

struct conversation_page {
  std::vector<conversation_record> rows;
  std::optional<conversation_cursor> next;
};

/// Where a snippet's matched terms begin and end: private-use characters,
/// which http/ turns into <mark> and </mark> after escaping the rest.
inline constexpr std::string_view search_mark_open = "\xEE\x80\x80";   // U+E000
inline constexpr std::string_view search_mark_close = "\xEE\x80\x81";  // U+E001

/// A keyset position in search results: best first, ties in key order.
struct search_cursor {
  std::int64_t score = 0;  ///< the database's rank, scaled to an integer
  std::string key;
};

/// A search of one user's messages and conversation titles.
struct search_request {
  std::string user_id;
  search_expression expression;
  std::optional<std::string> conversation_id;           ///< only this conversation
  std::optional<std::string> role;                      ///< only messages of this role (no titles)
  unix_ms from = 0;                                     ///< created at or after
  unix_ms until = std::numeric_limits<unix_ms>::max();  ///< created before
  unsigned limit = 20;
  std::optional<search_cursor> after;
};

/// One match: a message, or a conversation's title.
struct search_hit {
  bool title = false;
  std::string conversation_id;
  std::optional<std::string> conversation_title;
  std::optional<std::string> message_id;  ///< the rest: none for a title
  std::optional<std::int64_t> seq;
  std::optional<std::string> role;
  unix_ms created_at = 0;
  /// The text around the match, each matched term between search_mark_open
  /// and search_mark_close; not escaped.
  std::string snippet;
  search_cursor position;
};

struct search_page {
  std::vector<search_hit> hits;
  std::optional<search_cursor> next;
};

/// A streamed reply whose input is committed and whose reply is not yet:
/// what tells a client resuming the run after a restart that the reply
/// never came. `id` is the run's, which is also the id its reply is stored
/// under; `message_id` the message the reply answers.
struct run_record {
  std::string id;
  std::string conversation_id;
  std::string message_id;
  unix_ms started_at = 0;
};

/// One row of `summaries`: what a model wrote of a conversation's messages
/// from its root through `covers_through_message_id`, sent instead of them.
/// Valid on every branch that passes through that message.
struct summary_record {
  std::string id;
  std::string conversation_id;
  std::string covers_through_message_id;
  std::int64_t covers_through_seq = 0;
  std::string content;
  std::string model;
  unix_ms created_at = 0;
  std::int64_t tokens_before = 0;  ///< the prompt's estimated tokens without it
  std::int64_t tokens_after = 0;   ///< with it instead of what it covers
};

/// The writes one requester needs committed together.
namespace write {
struct insert_conversation {
  conversation_record row;
};
/// Rewrites every mutable column of the conversation from `row`, provided the
/// stored row is at `row.version - 1`; otherwise the write is a conflict.
struct update_conversation {
  conversation_record row;
};
/// Removes the conversation, all of its messages and the record of where it
/// was imported from.
struct delete_conversation {
  std::string id;
  /// Whose it was, so that their reads stop going to a replica that still
  /// holds it (commit_positions); empty stands for anyone's.
  std::string user_id;
};
struct insert_message {
  message_record row;
};
struct update_message {
  std::string id;
  shared_text content;
  unix_ms edited_at = 0;
};
/// Removes a message; its children take its parent (`parent_id`) as theirs.
struct delete_message {
  std::string id;
  std::string conversation_id;
  std::optional<std::string> parent_id;
};
struct add_usage {
  std::string user_id;
  std::string day;
  usage_row usage;
};
/// Remembers that the user imported conversation `conversation_id` from
/// `source` (an id the exporting system gave it), so that importing the same
/// source again is skipped. A second record for (user, source) is a conflict.
struct record_source {
  std::string user_id;
  std::string source;
  std::string conversation_id;
};
/// Stores an idempotency key with its answer, already encoded (encode_answer
/// in stored_answer.hpp, on the requester's thread): a write stays small, and
/// the writer only binds text.
/// Remembers a run (see run_record) with the input it answers.
struct insert_run {
  run_record row;
};
struct insert_summary {
  summary_record row;
};
/// Forgets a run whose reply is stored.
struct delete_run {
  std::string id;
};
struct put_idempotency {
  idempotency_row row;
  /// Replaces the answer stored for the key earlier (a provisional one, by
  /// the same exchange) instead of adding the key.
  bool replace = false;
};
}  // namespace write

using write_op =
    std::variant<write::insert_conversation, write::update_conversation, write::delete_conversation,
                 write::insert_message, write::update_message, write::delete_message,
                 write::add_usage, write::put_idempotency, write::record_source, write::insert_run,
                 write::delete_run, write::insert_summary>;

/// All or nothing: a write set is committed whole in one transaction or not at all.
using write_set = std::vector<write_op>;

}  // namespace parley
