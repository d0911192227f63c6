#pragma once

#include "providers/provider.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace parley::testing {

/// Collects one completion from a provider and lets a test wait for its end.
/// The callbacks may run on any thread.
struct completion_collector {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> deltas;
  std::optional<outcome<completion_result>> result;
  std::chrono::steady_clock::time_point first_delta;
  std::chrono::steady_clock::time_point finished;

  completion_callbacks callbacks() {
    return {[this](std::string d) {
              std::lock_guard<std::mutex> g(mutex);
              if (deltas.empty()) first_delta = std::chrono::steady_clock::now();
              deltas.push_back(std::move(d));
              cv.notify_all();
            },
            [this](outcome<completion_result> r) {
              std::lock_guard<std::mutex> g(mutex);
              finished = std::chrono::steady_clock::now();
              result = std::move(r);
              cv.notify_all();
            }};
  }
  /// Waits for the end; false if it did not come within `limit`.
  bool wait(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> g(mutex);
    return cv.wait_for(g, limit, [&] { return result.has_value(); });
  }
  /// Waits for the first delta; false if it did not come within `limit`.
  bool wait_for_delta(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> g(mutex);
    return cv.wait_for(g, limit, [&] { return !deltas.empty(); });
  }
  std::string text() {
    std::lock_guard<std::mutex> g(mutex);
    std::string t;
    for (auto& d : deltas) t += d;
    return t;
  }
};

}  // namespace parley::testing
