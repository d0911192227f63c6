#include "persistence/write_plan.hpp"

#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace parley {

namespace {

/// Appends each op of one set to its list in `plan`.
struct planner {
  write_plan& plan;
  std::unordered_map<std::string_view, std::size_t> update_of_conversation;
  std::unordered_map<std::string_view, std::size_t> edit_of_message;
  std::map<std::tuple<std::string_view, std::string_view, std::string_view>, std::size_t>
      usage_of_key;
  std::map<std::pair<std::string_view, std::string_view>, std::size_t> answer_of_key;

  void operator()(const write::insert_conversation& w) {
    plan.inserted_conversations.push_back(&w.row);
  }
  void operator()(const write::update_conversation& w) {
    auto [at, fresh] =
        update_of_conversation.try_emplace(w.row.id, plan.conversation_updates.size());
    if (fresh)
      plan.conversation_updates.push_back({&w.row, w.row.version - 1});
    else
      plan.conversation_updates[at->second].row = &w.row;
  }
  void operator()(const write::delete_conversation& w) { plan.deleted_conversations.push_back(&w); }
  void operator()(const write::insert_message& w) { plan.inserted_messages.push_back(&w.row); }
  void operator()(const write::update_message& w) {
    auto [at, fresh] = edit_of_message.try_emplace(w.id, plan.message_edits.size());
    if (fresh)
      plan.message_edits.push_back(&w);
    else
      plan.message_edits[at->second] = &w;
  }
  void operator()(const write::delete_message& w) { plan.deleted_messages.push_back(&w); }
  void operator()(const write::record_source& w) { plan.sources.push_back(&w); }
  void operator()(const write::insert_run& w) { plan.inserted_runs.push_back(&w.row); }
  void operator()(const write::delete_run& w) { plan.deleted_runs.push_back(&w.id); }
  void operator()(const write::insert_summary& w) { plan.inserted_summaries.push_back(&w.row); }
  void operator()(const write::add_usage& w) {
    auto [at, fresh] =
        usage_of_key.try_emplace({w.user_id, w.day, w.usage.model}, plan.usage.size());
    if (fresh) {
      plan.usage.push_back({&w.user_id, &w.day, w.usage});
      return;
    }
    auto& sum = plan.usage[at->second].sum;
    sum.requests += w.usage.requests;
    sum.prompt_tokens += w.usage.prompt_tokens;
    sum.completion_tokens += w.usage.completion_tokens;
    sum.cost_usd += w.usage.cost_usd;
  }
  void operator()(const write::put_idempotency& w) {
    if (!w.replace) {
      plan.idempotency_keys.push_back(&w.row);
      return;
    }
    auto [at, fresh] =
        answer_of_key.try_emplace({w.row.user_id, w.row.key}, plan.idempotency_answers.size());
    if (fresh)
      plan.idempotency_answers.push_back(&w.row);
    else
      plan.idempotency_answers[at->second] = &w.row;
  }
};

}  // namespace

write_plan make_write_plan(const std::vector<const write_set*>& sets) {
  write_plan plan;
  planner add{plan, {}, {}, {}, {}};
  for (auto set : sets)
    for (auto& op : *set) std::visit(add, op);
  return plan;
}

}  // namespace parley
