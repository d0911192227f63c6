#include "actors/context_window.hpp"

#include "providers/token_estimator.hpp"

#include <algorithm>

namespace parley {

namespace {

window_entry to_entry(const message_record& m) {
  return {m.id, m.seq, m.role, m.content, estimate_message_tokens(m.content)};
}

}  // namespace

std::int64_t message_budget(std::int64_t context_budget,
                            const std::optional<std::string>& system_prompt) {
  auto used = system_prompt ? estimate_message_tokens(*system_prompt) : 0;
  return std::max<std::int64_t>(0, context_budget - used);
}

void context_window::reset(const std::vector<message_record>& recent, std::int64_t budget,
                           bool older_exist) {
  entries_.clear();
  tokens_ = 0;
  budget_ = budget;
  older_exist_ = older_exist;
  needs_refill_ = false;
  for (auto& m : recent) {
    entries_.push_back(to_entry(m));
    tokens_ += entries_.back().tokens;
  }
  trim();
}

void context_window::append(const message_record& m) {
  entries_.push_back(to_entry(m));
  tokens_ += entries_.back().tokens;
  trim();
}

bool context_window::edit(const std::string& id, const shared_text& content) {
  auto i = std::find_if(entries_.begin(), entries_.end(), [&](auto& e) { return e.id == id; });
  if (i == entries_.end()) return false;
  auto tokens = estimate_message_tokens(content);
  tokens_ += tokens - i->tokens;
  i->content = content;
  i->tokens = tokens;
  trim();
  mark_refill_if_room();
  return true;
}

bool context_window::remove(const std::string& id) {
  auto i = std::find_if(entries_.begin(), entries_.end(), [&](auto& e) { return e.id == id; });
  if (i == entries_.end()) return false;
  tokens_ -= i->tokens;
  entries_.erase(i);
  mark_refill_if_room();
  return true;
}

void context_window::set_budget(std::int64_t budget) {
  budget_ = budget;
  trim();
  mark_refill_if_room();
}

std::vector<chat_message> context_window::assemble(
    const std::optional<std::string>& system_prompt) const {
  std::vector<chat_message> out;
  out.reserve(entries_.size() + 1);
  if (system_prompt) out.push_back(system_message(*system_prompt));
  for (auto& e : entries_) out.emplace_back(e.role, e.content, e.tokens);
  return out;
}

std::vector<chat_message> context_window::assemble_with(
    const std::optional<std::string>& system_prompt, const message_record* pending,
    const std::string* skip_id, std::int64_t budget) const {
  budget = std::min(budget, budget_);
  // Walk from the newest back to the oldest that still fits (the newest always does).
  auto pending_tokens = pending ? estimate_message_tokens(pending->content) : 0;
  std::int64_t used = pending_tokens;
  bool any = pending != nullptr;
  auto first = entries_.end();
  for (auto i = entries_.end(); i != entries_.begin();) {
    --i;
    if (skip_id && i->id == *skip_id) continue;
    if (any && used + i->tokens > budget) break;
    used += i->tokens;
    any = true;
    first = i;
  }
  std::vector<chat_message> out;
  out.reserve(static_cast<std::size_t>(entries_.end() - first) + 2);
  if (system_prompt) out.push_back(system_message(*system_prompt));
  for (auto i = first; i != entries_.end(); ++i)
    if (!(skip_id && i->id == *skip_id)) out.emplace_back(i->role, i->content, i->tokens);
  if (pending) out.emplace_back(pending->role, pending->content, pending_tokens);
  return out;
}

const chat_message& context_window::system_message(const std::string& system_prompt) const {
  if (!system_ || system_->content != system_prompt) system_.emplace("system", system_prompt);
  return *system_;
}

void context_window::trim() {
  while (entries_.size() > 1 && tokens_ > budget_) {
    tokens_ -= entries_.front().tokens;
    entries_.pop_front();
    older_exist_ = true;
  }
}

void context_window::mark_refill_if_room() {
  // A removal can also expose an older message when the window is empty or
  // held only the newest, over-budget message.
  if (older_exist_ && (tokens_ < budget_ || entries_.empty())) needs_refill_ = true;
}

}  // namespace parley
