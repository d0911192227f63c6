#pragma once

#include "persistence/records.hpp"

#include <string>
#include <vector>

namespace parley {

/// A batch of write sets rearranged into one list per kind of statement, so
/// that each kind can be sent as few statements as the dialect allows. The
/// kinds run in the order of the members below, which respects every
/// dependency a batch can hold (a row is inserted before it is updated or
/// deleted). Rows point into the write sets, which must outlive the plan.
struct write_plan {
  /// A conversation update coalesced over the batch: the last row wins, and
  /// the stored row must still be at the version the first update expected.
  struct conversation_update {
    const conversation_record* row;
    std::int64_t expected_version;
  };
  /// One user's usage of one model on one day, summed over the batch.
  struct usage_total {
    const std::string* user_id;
    const std::string* day;
    usage_row sum;
  };

  std::vector<const conversation_record*> inserted_conversations;
  std::vector<const message_record*> inserted_messages;
  std::vector<const write::update_message*> message_edits;     ///< the last per message
  std::vector<const write::delete_message*> deleted_messages;  ///< children re-parented first
  std::vector<conversation_update> conversation_updates;
  std::vector<const write::delete_conversation*> deleted_conversations;
  std::vector<const write::record_source*> sources;  ///< after the conversations they name
  std::vector<const run_record*> inserted_runs;
  std::vector<const summary_record*> inserted_summaries;
  std::vector<const std::string*> deleted_runs;  ///< after the inserts
  std::vector<usage_total> usage;
  std::vector<const idempotency_row*> idempotency_keys;
  /// Answers replacing those stored earlier, the last per key (after the inserts).
  std::vector<const idempotency_row*> idempotency_answers;
};

write_plan make_write_plan(const std::vector<const write_set*>& sets);

}  // namespace parley
