#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
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
  /// Stops the thread; tasks still registered are dropped.
  ~keepalive_ticker();
  keepalive_ticker(const keepalive_ticker&) = delete;
  keepalive_ticker& operator=(const keepalive_ticker&) = delete;

  void add(task t);

  /// Tasks registered now (for tests).
  std::size_t size() const;

 private:
  void run();

  const clock::duration period_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<task> tasks_;  // guarded by mutex_
  std::vector<task> added_;  // guarded by mutex_: joins tasks_ on the next sweep
  bool stopping_ = false;    // guarded by mutex_
  std::thread thread_;
};

}  // namespace parley
