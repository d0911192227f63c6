#pragma once

#include "base/clock.hpp"
#include "base/mutex.hpp"

#include <atomic>
#include <chrono>
#include <memory>

namespace parley {

/// The engine's time, given to it: how long things take (deadlines, idleness)
/// and what time it is (the timestamps it stores, the day usage counts in).
/// The engine reads the time only from here, so tests can move it at will.
/// (Below and around it the machine's clock still rules: the providers'
/// timeouts, the writer's purge of day-old idempotency keys, the time inside
/// a UUID v7, the HTTP layer's limits.)
class engine_clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~engine_clock() = default;
  /// Monotonic time.
  virtual time_point now() const = 0;
  /// Milliseconds since the Unix epoch.
  virtual unix_ms wall_ms() const = 0;
  /// Waits on `wake` (with `m` held) until `at` has passed by this clock or
  /// `wake` is notified. May return early: callers check again.
  virtual void wait_until(condition& wake, mutex& m, time_point at) const REQUIRES(m) = 0;
};

/// The machine's clocks.
std::shared_ptr<const engine_clock> machine_clock();

/// A clock that moves only when told to (tests): both readings move together.
class manual_clock final : public engine_clock {
 public:
  explicit manual_clock(unix_ms wall_start) : wall_start_(wall_start) {}

  time_point now() const override { return time_point{} + elapsed(); }
  unix_ms wall_ms() const override {
    return wall_start_ + std::chrono::duration_cast<std::chrono::milliseconds>(elapsed()).count();
  }
  /// Checks again every millisecond of real time: nothing tells a waiter that
  /// the clock moved, and tests need no more.
  void wait_until(condition& wake, mutex& m, time_point at) const REQUIRES(m) override;

  void advance(std::chrono::steady_clock::duration by) { elapsed_ns_ += by.count(); }

 private:
  std::chrono::steady_clock::duration elapsed() const {
    return std::chrono::steady_clock::duration{elapsed_ns_.load()};
  }

  unix_ms wall_start_;
  std::atomic<std::chrono::steady_clock::rep> elapsed_ns_{0};
};

}  // namespace parley
