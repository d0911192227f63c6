#pragma once

#include <chrono>
#include <optional>

namespace parley {

/// When a failed provider request is tried again.
struct retry_policy {
  unsigned max_attempts = 3;
  std::chrono::milliseconds base_delay{250};
  std::chrono::milliseconds max_delay{8000};
};

/// The wait before retry number `retry` (1 for the first): exponential from
/// base_delay, capped at max_delay, with "equal jitter" (between half and all
/// of it, by `random01` in [0, 1)) so that clients failed together do not
/// return together. A provider's Retry-After is a floor.
std::chrono::milliseconds backoff_delay(const retry_policy& policy, unsigned retry,
                                        std::optional<std::chrono::milliseconds> retry_after,
                                        double random01);

/// Statuses worth another attempt: 408, 409 (a lock at the provider), 429 and
/// the 5xx family (529 is Anthropic's "overloaded").
bool is_retryable_status(long status);

}  // namespace parley
