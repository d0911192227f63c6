#include "providers/provider.hpp"

#include "providers/token_estimator.hpp"

#include <cassert>
#include <utility>

namespace parley {

const char* to_string(finish_reason r) {
  switch (r) {
    case finish_reason::stop:
      return "stop";
    case finish_reason::length:
      return "length";
    case finish_reason::cancelled:
      return "cancelled";
  }
  return "stop";
}

chat_message::chat_message(std::string role, shared_text content)
    : role(std::move(role)),
      content(std::move(content)),
      tokens(estimate_message_tokens(this->content)) {}

prompt::prompt(std::initializer_list<chat_message> messages)
    : shared_(std::make_shared<const history>(messages)), last_(messages.size()) {
  for (auto& m : messages) tokens_ += m.tokens;
}

prompt::prompt(std::optional<chat_message> system, std::shared_ptr<const history> shared,
               std::size_t first, std::size_t last, std::int64_t shared_tokens,
               std::optional<chat_message> pending)
    : system_(std::move(system)),
      shared_(std::move(shared)),
      first_(first),
      last_(last),
      pending_(std::move(pending)),
      tokens_(shared_tokens) {
  if (system_) tokens_ += system_->tokens;
  if (pending_) tokens_ += pending_->tokens;
}

void prompt::set_summary(chat_message m) {
  if (summary_) tokens_ -= summary_->tokens;
  tokens_ += m.tokens;
  summary_ = std::move(m);
}

prompt::prompt(prompt&& other) noexcept
    : system_(std::exchange(other.system_, std::nullopt)),
      summary_(std::exchange(other.summary_, std::nullopt)),
      shared_(std::move(other.shared_)),
      first_(std::exchange(other.first_, 0)),
      last_(std::exchange(other.last_, 0)),
      pending_(std::exchange(other.pending_, std::nullopt)),
      tokens_(std::exchange(other.tokens_, 0)) {}

prompt& prompt::operator=(prompt&& other) noexcept {
  if (this != &other) {
    system_ = std::exchange(other.system_, std::nullopt);
    summary_ = std::exchange(other.summary_, std::nullopt);
    shared_ = std::move(other.shared_);
    first_ = std::exchange(other.first_, 0);
    last_ = std::exchange(other.last_, 0);
    pending_ = std::exchange(other.pending_, std::nullopt);
    tokens_ = std::exchange(other.tokens_, 0);
  }
  return *this;
}

const chat_message& prompt::operator[](std::size_t i) const {
  assert(i < size());
  if (system_) {
    if (i == 0) return *system_;
    --i;
  }
  if (summary_) {
    if (i == 0) return *summary_;
    --i;
  }
  if (i < last_ - first_) return (*shared_)[first_ + i];
  return *pending_;
}

}  // namespace parley
