#include "actors/context_window.hpp"

#include "providers/token_estimator.hpp"

#include <algorithm>
#include <atomic>

namespace parley {

namespace {

/// Trimmed messages are dropped from the front in bulk once there are at least
/// this many and at least as many as are kept.
constexpr std::size_t compact_after = 32;

/// Grows a full vector by a quarter rather than doubling it: a window grows a
/// message or two per turn, and doubling left a live conversation holding up
/// to as much slack as messages. Still geometric, so appends stay amortized O(1).
template <class Vector>
void make_room_for_one(Vector& v) {
  if (v.size() == v.capacity()) v.reserve(v.size() + v.size() / 4 + 2);
}

}  // namespace

std::int64_t message_budget(std::int64_t context_budget,
                            const std::optional<std::string>& system_prompt) {
  auto used = system_prompt ? estimate_message_tokens(*system_prompt) : 0;
  return std::max<std::int64_t>(0, context_budget - used);
}

window_entry context_window::at(std::size_t i) const {
  auto& k = keys_[first_ + i];
  return {k.id, k.seq, (*messages_)[first_ + i]};
}

prompt::history& context_window::own_messages() {
  if (messages_.use_count() > 1) {
    // A prompt in flight holds them: it keeps its copy, the window takes a new one.
    messages_ = std::make_shared<prompt::history>(messages_->begin() + first_, messages_->end());
    keys_.erase(keys_.begin(), keys_.begin() + first_);
    first_ = 0;
  } else {
    // The last prompt may have been released on a provider's thread; its
    // release (an acq_rel decrement in libstdc++) with this fence orders its
    // reads before our writes. Only the actor's thread makes prompts from the
    // window, so nothing can take a new hold on the vector meanwhile.
    std::atomic_thread_fence(std::memory_order_acquire);
  }
  return *messages_;
}

std::optional<std::size_t> context_window::find(const std::string& id) const {
  for (auto i = first_; i < keys_.size(); ++i)
    if (keys_[i].id == id) return i;
  return std::nullopt;
}

void context_window::push(const message_record& m) {
  auto& messages = own_messages();
  make_room_for_one(messages);
  messages.emplace_back(m.role, m.content);
  make_room_for_one(keys_);
  keys_.push_back({m.id, m.seq});
  tokens_ += messages_->back().tokens;
}

void context_window::reset(const std::vector<message_record>& recent, std::int64_t budget,
                           bool older_exist) {
  messages_ = std::make_shared<prompt::history>();
  messages_->reserve(recent.size());
  keys_.clear();
  keys_.reserve(recent.size());
  first_ = 0;
  tokens_ = 0;
  budget_ = budget;
  older_exist_ = older_exist;
  needs_refill_ = false;
  for (auto& m : recent) push(m);
  trim();
}

void context_window::append(const message_record& m) {
  push(m);
  trim();
}

bool context_window::edit(const std::string& id, const shared_text& content) {
  auto at = find(id);
  if (!at) return false;
  auto offset = *at - first_;
  auto& messages = own_messages();  // may move the window to the front of a new copy
  auto& m = messages[first_ + offset];
  auto tokens = estimate_message_tokens(content);
  tokens_ += tokens - m.tokens;
  m.content = content;
  m.tokens = tokens;
  trim();
  mark_refill_if_room();
  return true;
}

bool context_window::remove(const std::string& id) {
  auto at = find(id);
  if (!at) return false;
  auto offset = *at - first_;
  auto& messages = own_messages();
  auto i = first_ + offset;
  tokens_ -= messages[i].tokens;
  messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(i));
  keys_.erase(keys_.begin() + static_cast<std::ptrdiff_t>(i));
  mark_refill_if_room();
  return true;
}

void context_window::set_budget(std::int64_t budget) {
  budget_ = budget;
  trim();
  mark_refill_if_room();
}

prompt context_window::assemble(const std::optional<std::string>& system_prompt) const {
  return assemble_with(system_prompt, nullptr, nullptr, budget_);
}

prompt context_window::assemble_with(const std::optional<std::string>& system_prompt,
                                     const message_record* pending, const std::string* skip_id,
                                     std::int64_t budget, const summary_cover* summary) const {
  budget = std::min(budget, budget_);
  if (summary) budget = std::max<std::int64_t>(0, budget - summary->message.tokens);
  std::optional<chat_message> system;
  if (system_prompt) system = system_message(*system_prompt);
  std::optional<chat_message> next;
  if (pending) next.emplace(pending->role, pending->content);

  std::shared_ptr<const prompt::history> shared = messages_;
  auto first = first_, last = keys_.size();
  auto tokens = tokens_;
  // What the summary covers comes first: a child is numbered after its parent.
  while (summary && first < last && keys_[first].seq <= summary->through_seq) {
    tokens -= (*messages_)[first].tokens;
    ++first;
  }
  if (skip_id) {
    if (last > first && keys_[last - 1].id == *skip_id) {
      --last;  // the newest, as regenerate's reply to replace is
      tokens -= (*messages_)[last].tokens;
    } else if (auto at = find(*skip_id); at && *at >= first) {
      // Anywhere else: this prompt gets a copy of its own without it.
      auto copy = std::make_shared<prompt::history>(messages_->begin() + first, messages_->end());
      copy->erase(copy->begin() + static_cast<std::ptrdiff_t>(*at - first));
      tokens -= (*messages_)[*at].tokens;
      shared = std::move(copy);
      first = 0;
      last = shared->size();
    }
  }
  // The kept messages are the newest that fit (a suffix, as every estimate is
  // positive): leave out the oldest until the rest fits. Without a pending
  // message the newest is kept even when it alone is over the budget.
  auto used = tokens + (next ? next->tokens : 0);
  std::size_t keep_at_least = next ? 0 : 1;
  while (last - first > keep_at_least && used > budget) {
    used -= (*shared)[first].tokens;
    tokens -= (*shared)[first].tokens;
    ++first;
  }
  prompt out(std::move(system), std::move(shared), first, last, tokens, std::move(next));
  if (summary) out.set_summary(summary->message);
  return out;
}

const chat_message& context_window::system_message(const std::string& system_prompt) const {
  if (!system_ || system_->content != system_prompt) system_.emplace("system", system_prompt);
  return *system_;
}

void context_window::trim() {
  if (size() <= 1 || tokens_ <= budget_) return;
  // A trimmed message's text is let go now; the slot itself goes in bulk.
  auto& messages = own_messages();
  while (size() > 1 && tokens_ > budget_) {
    tokens_ -= messages[first_].tokens;
    messages[first_].content = {};
    ++first_;
    older_exist_ = true;
  }
  if (first_ >= compact_after && first_ * 2 >= keys_.size()) {
    messages.erase(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first_));
    keys_.erase(keys_.begin(), keys_.begin() + static_cast<std::ptrdiff_t>(first_));
    first_ = 0;
  }
}

void context_window::mark_refill_if_room() {
  // A removal can also expose an older message when the window is empty or
  // held only the newest, over-budget message.
  if (older_exist_ && (tokens_ < budget_ || empty())) needs_refill_ = true;
}

}  // namespace parley
