#pragma once

// What an exchange writes, as pure functions of the conversation's row and
// the exchange's outcome: no actor, no clock, no database. The conversation
// actor commits what they return and keeps the row they leave.

#include "actors/requests.hpp"
#include "persistence/records.hpp"
#include "providers/model_registry.hpp"

#include <optional>
#include <string>

namespace parley {

/// The update that commits `meta` as the conversation's next version.
write_op next_version(conversation_record& meta);

/// One request to `model` with `usage`, priced and counted for `user` on the day of `now`.
write::add_usage usage_of_request(const std::string& user, unix_ms now, const model_info& model,
                                  const completion_usage& usage);

/// What an exchange brings to its commit besides the conversation's row.
struct exchange_facts {
  bool create = false;                           ///< the conversation is new
  const message_record* user_message = nullptr;  ///< the message sent, if any
  /// Messages stored with it, before it, in the same transaction (an input
  /// of several messages); their seqs are below its.
  const std::vector<message_record>* preceding = nullptr;
  bool user_stored = false;  ///< it (and a new conversation) is committed already
  /// regenerate: the assistant message that leaves the active branch
  const std::string* replaces = nullptr;
};

/// A commit: the row it leaves and its writes, in order.
struct conversation_commit {
  conversation_record meta;
  write_set writes;
};

/// The commit of a finished exchange and its answer. `reply` is the model's
/// message (none when no reply was asked), its `usage` priced by `model` and
/// counted for the day of `now`, which also stamps the row.
struct exchange_commit : conversation_commit {
  exchange_result result;
};
exchange_commit commit_exchange(conversation_record meta, const exchange_facts& facts,
                                std::optional<message_record> reply, const completion_usage& usage,
                                const model_info& model, unix_ms now);

/// The commit of an exchange whose model failed: the user message and a new
/// conversation are kept; nothing to write (empty `writes`) when both are
/// stored already.
conversation_commit commit_failed_exchange(conversation_record meta, const exchange_facts& facts,
                                           unix_ms now);

/// The commit of an exchange's user message (and the messages before it, and
/// a new conversation), made before the model is asked.
conversation_commit commit_user_message(conversation_record meta, const exchange_facts& facts,
                                        unix_ms now);

}  // namespace parley
