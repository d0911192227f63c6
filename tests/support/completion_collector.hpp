#pragma once

#include "base/mutex.hpp"
#include "providers/provider.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace parley::testing {

/// Collects one completion from a provider and lets a test wait for its end.
/// The callbacks may run on any thread; tests read a copy (seen()).
class completion_collector {
 public:
  struct collected {
    std::vector<std::string> deltas;
    std::optional<outcome<completion_result>> result;
    std::chrono::steady_clock::time_point first_delta;
    std::chrono::steady_clock::time_point finished;
  };

  completion_callbacks callbacks() {
    return {[this](std::string d) {
              mutex_lock g(mutex_);
              if (state_.deltas.empty()) state_.first_delta = std::chrono::steady_clock::now();
              state_.deltas.push_back(std::move(d));
              changed_.notify_all();
            },
            [this](outcome<completion_result> r) {
              mutex_lock g(mutex_);
              state_.finished = std::chrono::steady_clock::now();
              state_.result = std::move(r);
              changed_.notify_all();
            }};
  }
  /// Waits for the end; false if it did not come within `limit`.
  bool wait(std::chrono::milliseconds limit) {
    mutex_lock g(mutex_);
    auto until = std::chrono::steady_clock::now() + limit;
    while (!state_.result && changed_.wait_until(mutex_, until)) {
    }
    return state_.result.has_value();
  }
  /// Waits for the first delta; false if it did not come within `limit`.
  bool wait_for_delta(std::chrono::milliseconds limit) {
    mutex_lock g(mutex_);
    auto until = std::chrono::steady_clock::now() + limit;
    while (state_.deltas.empty() && changed_.wait_until(mutex_, until)) {
    }
    return !state_.deltas.empty();
  }
  /// What has been collected so far.
  collected seen() {
    mutex_lock g(mutex_);
    return state_;
  }
  std::string text() {
    mutex_lock g(mutex_);
    std::string t;
    for (auto& d : state_.deltas) t += d;
    return t;
  }

 private:
  parley::mutex mutex_;
  condition changed_;
  collected state_ GUARDED_BY(mutex_);
};

}  // namespace parley::testing
