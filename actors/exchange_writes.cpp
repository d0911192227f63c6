#include "actors/exchange_writes.hpp"

#include "base/clock.hpp"

namespace parley {

namespace {

std::int64_t preceding_count(const exchange_facts& facts) {
  return facts.preceding ? static_cast<std::int64_t>(facts.preceding->size()) : 0;
}

/// The user message's insert, after those of the messages before it.
void insert_input(write_set& writes, const exchange_facts& facts) {
  if (facts.preceding)
    for (auto& m : *facts.preceding) writes.push_back(write::insert_message{m});
  writes.push_back(write::insert_message{*facts.user_message});
}

}  // namespace

write::add_usage usage_of_request(const std::string& user, unix_ms now, const model_info& model,
                                  const completion_usage& usage) {
  return {user, format_day(now),
          usage_row{model.id, 1, usage.prompt_tokens, usage.completion_tokens,
                    model.cost_usd(usage.prompt_tokens, usage.completion_tokens)}};
}

write_op next_version(conversation_record& meta) {
  ++meta.version;
  return write::update_conversation{meta};
}

exchange_commit commit_exchange(conversation_record meta, const exchange_facts& facts,
                                std::optional<message_record> reply, const completion_usage& usage,
                                const model_info& model, unix_ms now) {
  meta.updated_at = now;
  bool store_user = facts.user_message && !facts.user_stored;
  if (store_user) {
    meta.message_count += 1 + preceding_count(facts);
    meta.last_seq = facts.user_message->seq;
  }
  // The replaced reply stays in the tree, off the active branch.
  if (facts.replaces) meta.message_count -= 1;
  if (store_user) meta.active_leaf_id = facts.user_message->id;
  write_set writes;
  if (reply) {
    meta.message_count += 1;
    meta.last_seq = reply->seq;
    meta.active_leaf_id = reply->id;
    auto metered = usage_of_request(meta.user_id, now, model, usage);
    meta.usage.prompt_tokens += usage.prompt_tokens;
    meta.usage.completion_tokens += usage.completion_tokens;
    meta.usage.cost_usd += metered.usage.cost_usd;
    writes.push_back(std::move(metered));
  }
  // The row goes first when it is new: the messages refer to it.
  if (facts.create && !facts.user_stored)
    writes.insert(writes.begin(), write::insert_conversation{meta});
  else
    writes.push_back(next_version(meta));
  if (store_user) insert_input(writes, facts);
  if (reply) writes.push_back(write::insert_message{*reply});
  exchange_commit out;
  if (facts.create) out.result.conversation = meta;
  if (facts.user_message) out.result.message = *facts.user_message;
  out.result.reply = std::move(reply);
  out.meta = std::move(meta);
  out.writes = std::move(writes);
  return out;
}

conversation_commit commit_failed_exchange(conversation_record meta, const exchange_facts& facts,
                                           unix_ms now) {
  if (facts.user_message && !facts.user_stored)
    return commit_user_message(std::move(meta), facts, now);
  conversation_commit out;
  if (facts.create && !facts.user_stored) out.writes.push_back(write::insert_conversation{meta});
  out.meta = std::move(meta);
  return out;
}

conversation_commit commit_user_message(conversation_record meta, const exchange_facts& facts,
                                        unix_ms now) {
  auto& user_message = *facts.user_message;
  meta.updated_at = now;
  meta.message_count += 1 + preceding_count(facts);
  meta.last_seq = user_message.seq;
  meta.active_leaf_id = user_message.id;
  conversation_commit out;
  out.writes.push_back(facts.create ? write_op{write::insert_conversation{meta}}
                                    : next_version(meta));
  insert_input(out.writes, facts);
  out.meta = std::move(meta);
  return out;
}

}  // namespace parley
