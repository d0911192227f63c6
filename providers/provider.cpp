#include "providers/provider.hpp"

#include "providers/token_estimator.hpp"

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

std::int64_t estimate_prompt_tokens(const std::vector<chat_message>& messages) {
  std::int64_t total = 0;
  for (auto& m : messages) total += m.tokens;
  return total;
}

}  // namespace parley
