#pragma once

// Records for unit tests that write to a store directly.

#include "persistence/records.hpp"

#include <string>

namespace parley::testing {

inline conversation_record sample_conversation(const std::string& id, const std::string& user = "u",
                                               unix_ms at = 1) {
  conversation_record c;
  c.id = id;
  c.user_id = user;
  c.model = "echo";
  c.created_at = at;
  c.updated_at = at;
  return c;
}

/// Message `seq` of `conversation`, id "<conversation>-m<seq>", odd seqs from
/// the user; each follows the one before (one branch in seq order).
inline message_record sample_message(const std::string& conversation, std::int64_t seq) {
  message_record m;
  m.id = conversation + "-m" + std::to_string(seq);
  m.conversation_id = conversation;
  m.seq = seq;
  m.role = seq % 2 ? "user" : "assistant";
  m.content = "message " + std::to_string(seq);
  m.created_at = 1000 + seq;
  if (seq > 1) m.parent_id = conversation + "-m" + std::to_string(seq - 1);
  return m;
}

}  // namespace parley::testing
