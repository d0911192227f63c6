#include "providers/token_estimator.hpp"

namespace parley {

namespace {
constexpr std::int64_t chars_per_token = 4;
constexpr std::int64_t message_overhead_tokens = 4;
}  // namespace

std::size_t count_code_points(std::string_view utf8) {
  std::size_t n = 0;
  for (unsigned char c : utf8)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::int64_t estimate_tokens(std::string_view text) {
  auto chars = static_cast<std::int64_t>(count_code_points(text));
  return (chars + chars_per_token - 1) / chars_per_token;
}

std::int64_t estimate_message_tokens(std::string_view content) {
  return estimate_tokens(content) + message_overhead_tokens;
}

}  // namespace parley
