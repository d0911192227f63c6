#pragma once

#include "base/thread_annotations.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace parley {

/// A std::mutex or std::recursive_mutex as a lock the compiler's
/// thread-safety analysis knows: the members it protects say GUARDED_BY(its
/// name), and clang checks every access (base/thread_annotations.hpp).
template <class Native>
class CAPABILITY("mutex") basic_mutex {
 public:
  basic_mutex() = default;
  basic_mutex(const basic_mutex&) = delete;
  basic_mutex& operator=(const basic_mutex&) = delete;

  void lock() ACQUIRE() { native_.lock(); }
  void unlock() RELEASE() { native_.unlock(); }

 private:
  friend class condition;
  Native native_;
};

using mutex = basic_mutex<std::mutex>;
/// For an object whose callbacks may come back into it on the same thread
/// (the analysis itself does not follow such calls).
using recursive_mutex = basic_mutex<std::recursive_mutex>;

/// Holds a mutex for its scope, as std::lock_guard does; unlock() and lock()
/// let go of it and take it again inside the scope, as std::unique_lock's do.
template <class Mutex>
class SCOPED_CAPABILITY scoped_lock {
 public:
  explicit scoped_lock(Mutex& m) ACQUIRE(m) : mutex_(m) { mutex_.lock(); }
  ~scoped_lock() RELEASE() {
    if (held_) mutex_.unlock();
  }
  scoped_lock(const scoped_lock&) = delete;
  scoped_lock& operator=(const scoped_lock&) = delete;

  void unlock() RELEASE() {
    mutex_.unlock();
    held_ = false;
  }
  void lock() ACQUIRE() {
    mutex_.lock();
    held_ = true;
  }

 private:
  Mutex& mutex_;
  bool held_ = true;
};
using mutex_lock = scoped_lock<mutex>;
using recursive_mutex_lock = scoped_lock<recursive_mutex>;

/// A condition variable, waited on with the mutex that guards its condition
/// held (checked by the analysis). Waits may end early: callers test their
/// condition in a loop, in their own function, where the analysis sees it.
class condition {
 public:
  void wait(mutex& m) REQUIRES(m) {
    std::unique_lock<std::mutex> lock(m.native_, std::adopt_lock);
    wake_.wait(lock);
    lock.release();
  }
  /// False once `at` has passed.
  template <class Clock, class Duration>
  bool wait_until(mutex& m, std::chrono::time_point<Clock, Duration> at) REQUIRES(m) {
    std::unique_lock<std::mutex> lock(m.native_, std::adopt_lock);
    bool notified = wake_.wait_until(lock, at) == std::cv_status::no_timeout;
    lock.release();
    return notified;
  }
  /// False once `d` has passed.
  template <class Rep, class Period>
  bool wait_for(mutex& m, std::chrono::duration<Rep, Period> d) REQUIRES(m) {
    return wait_until(m, std::chrono::steady_clock::now() + d);
  }
  void notify_one() { wake_.notify_one(); }
  void notify_all() { wake_.notify_all(); }

 private:
  std::condition_variable wake_;
};

}  // namespace parley
