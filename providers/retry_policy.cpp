#include "providers/retry_policy.hpp"

#include <algorithm>

namespace parley {

std::chrono::milliseconds backoff_delay(const retry_policy& policy, unsigned retry,
                                        std::optional<std::chrono::milliseconds> retry_after,
                                        double random01) {
  auto ceiling = policy.base_delay.count();
  for (unsigned i = 1; i < retry && ceiling < policy.max_delay.count(); ++i) ceiling *= 2;
  ceiling = std::min(ceiling, policy.max_delay.count());
  auto jittered =
      ceiling / 2 + static_cast<long long>(random01 * static_cast<double>(ceiling - ceiling / 2));
  auto delay = std::chrono::milliseconds(jittered);
  if (retry_after) delay = std::max(delay, *retry_after);
  return delay;
}

bool is_retryable_status(long status) {
  return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

}  // namespace parley
