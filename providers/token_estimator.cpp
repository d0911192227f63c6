#include "providers/token_estimator.hpp"

#include <algorithm>
#include <cmath>

namespace parley {

namespace {
constexpr std::int64_t chars_per_token = 4;
constexpr std::int64_t message_overhead_tokens = 4;
constexpr double min_ratio = 0.25, max_ratio = 4.0;
/// Weight of the newest observation in the moving average.
constexpr double newest_weight = 0.2;
constexpr double factor_steps = 16;
}  // namespace

std::size_t count_code_points(std::string_view utf8) {
  std::size_t n = 0;
  for (unsigned char c : utf8)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::int64_t tokens_of(std::size_t code_points) {
  auto chars = static_cast<std::int64_t>(code_points);
  return (chars + chars_per_token - 1) / chars_per_token;
}

std::int64_t estimate_tokens(std::string_view text) { return tokens_of(count_code_points(text)); }

std::int64_t estimate_message_tokens(std::string_view content) {
  return estimate_tokens(content) + message_overhead_tokens;
}

void token_calibration::observe(std::int64_t estimated, std::int64_t reported) {
  if (estimated <= 0 || reported <= 0) return;
  auto sample = std::clamp(static_cast<double>(reported) / static_cast<double>(estimated),
                           min_ratio, max_ratio);
  auto old = ratio_.load(std::memory_order_relaxed);
  while (!ratio_.compare_exchange_weak(old, old * (1 - newest_weight) + sample * newest_weight,
                                       std::memory_order_relaxed)) {
  }
}

double token_calibration::factor() const {
  auto r = ratio_.load(std::memory_order_relaxed);
  return std::clamp(std::round(r * factor_steps) / factor_steps, min_ratio, max_ratio);
}

}  // namespace parley
