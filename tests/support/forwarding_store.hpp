#pragma once

#include "persistence/store.hpp"

#include <memory>

namespace parley::testing {

/// A store that passes every call to a real one: tests derive from it and
/// override the calls they want to count, slow down or break.
class forwarding_store : public store {
 public:
  explicit forwarding_store(std::unique_ptr<store> inner) : inner_(std::move(inner)) {}

  void migrate() override { inner_->migrate(); }
  wal_position commit(const std::vector<const write_set*>& sets) override {
    return inner_->commit(sets);
  }
  std::optional<conversation_record> find_conversation(const std::string& id) override {
    return inner_->find_conversation(id);
  }
  conversation_page list_conversations(const std::string& user_id, unsigned limit,
                                       const std::optional<conversation_cursor>& after) override {
    return inner_->list_conversations(user_id, limit, after);
  }
  std::vector<message_record> list_messages(const std::string& conversation_id,
                                            std::int64_t after_seq,
                                            std::optional<std::int64_t> before_seq,
                                            unsigned limit) override {
    return inner_->list_messages(conversation_id, after_seq, before_seq, limit);
  }
  std::optional<message_record> find_message(const std::string& conversation_id,
                                             const std::string& message_id) override {
    return inner_->find_message(conversation_id, message_id);
  }
  std::optional<message_record> find_message_by_id(const std::string& message_id) override {
    return inner_->find_message_by_id(message_id);
  }
  std::vector<message_record> walk_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, unsigned limit) override {
    return inner_->walk_branch(conversation_id, leaf_id, limit);
  }
  std::vector<message_record> list_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, std::int64_t after_seq,
                                          std::optional<std::int64_t> before_seq,
                                          unsigned limit) override {
    return inner_->list_branch(conversation_id, leaf_id, after_seq, before_seq, limit);
  }
  std::int64_t branch_length(const std::string& conversation_id,
                             const std::string& leaf_id) override {
    return inner_->branch_length(conversation_id, leaf_id);
  }
  bool branch_contains(const std::string& conversation_id, const std::string& leaf_id,
                       const message_record& message) override {
    return inner_->branch_contains(conversation_id, leaf_id, message);
  }
  std::optional<std::string> newest_leaf(const std::string& conversation_id,
                                         const std::optional<std::string>& from,
                                         const std::string& excluded) override {
    return inner_->newest_leaf(conversation_id, from, excluded);
  }
  std::int64_t child_count(const std::string& conversation_id,
                           const std::optional<std::string>& parent_id) override {
    return inner_->child_count(conversation_id, parent_id);
  }
  search_page search(const search_request& request) override { return inner_->search(request); }
  std::vector<conversation_record> list_conversations_by_id(const std::string& user_id,
                                                            const std::string& after,
                                                            unsigned limit) override {
    return inner_->list_conversations_by_id(user_id, after, limit);
  }
  std::vector<summary_record> list_summaries(const std::string& conversation_id) override {
    return inner_->list_summaries(conversation_id);
  }
  std::optional<run_record> find_run(const std::string& conversation_id,
                                     const std::string& run_id) override {
    return inner_->find_run(conversation_id, run_id);
  }
  std::optional<std::string> find_source(const std::string& user_id,
                                         const std::string& source) override {
    return inner_->find_source(user_id, source);
  }
  std::optional<idempotency_record> find_idempotency(const std::string& user_id,
                                                     const std::string& key) override {
    return inner_->find_idempotency(user_id, key);
  }
  std::int64_t purge_idempotency(unix_ms cutoff) override {
    return inner_->purge_idempotency(cutoff);
  }
  std::vector<usage_row> usage(const std::string& user_id, const std::string& from_day,
                               const std::string& to_day) override {
    return inner_->usage(user_id, from_day, to_day);
  }
  void ping() override { inner_->ping(); }
  void track_commit_positions() override { inner_->track_commit_positions(); }
  std::optional<wal_position> replayed_position() override { return inner_->replayed_position(); }
  void set_call_timeout(std::chrono::milliseconds timeout) override {
    inner_->set_call_timeout(timeout);
  }

 private:
  std::unique_ptr<store> inner_;
};

}  // namespace parley::testing
