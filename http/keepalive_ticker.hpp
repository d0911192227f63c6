#pragma once

#include "base/mutex.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace parley {

/// One thread that calls every registered task each `period`, for the
/// keep-alives of open streams and WebSockets (a timer each would cost more
/// than one sweep), and for idempotent repeats that wait for another
/// request's reply. A task returns false when it is done and is then dropped.
/// Thread-safe; tasks must not block. A task may add() others (the sweep runs
/// without the lock): they run from the next sweep on.
class keepalive_ticker {
 public:
  using clock = std::chrono::steady_clock;
  using task = std::function<bool(clock::time_point now)>;

  explicit keepalive_ticker(clock::duration period);
  /// Stops, as stop() does.
  ~keepalive_ticker();
  keepalive_ticker(const keepalive_ticker&) = delete;
  keepalive_ticker& operator=(const keepalive_ticker&) = delete;

  /// Registers `t` for the next sweeps; dropped once stopped.
  void add(task t);

  /// Waits for a sweep under way, ends the thread and drops every task
  /// (and what they hold). Not from a task; later calls do nothing.
  void stop();

  /// Sweeps at once, and returns once a sweep begun after the call has
  /// ended (at once when stopped). Not from a task.
  void sweep_now();

  /// Tasks registered now (for tests).
  std::size_t size() const;

 private:
  void run();

  const clock::duration period_;
  mutable mutex mutex_;
  condition wake_;
  std::vector<task> tasks_ GUARDED_BY(mutex_);
  std::vector<task> added_ GUARDED_BY(mutex_);  // joins tasks_ on the next sweep
  bool stopping_ GUARDED_BY(mutex_) = false;
  bool hurry_ GUARDED_BY(mutex_) = false;        // sweep_now() waits: sweep without waiting
  bool sweeping_ GUARDED_BY(mutex_) = false;     // a sweep is under way
  std::uint64_t sweeps_ GUARDED_BY(mutex_) = 0;  // sweeps ended
  condition swept_;
  std::thread thread_;
};

}  // namespace parley
