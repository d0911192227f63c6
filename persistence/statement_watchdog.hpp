#pragma once

#include "base/mutex.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace parley {

/// A blocking database call's way out, used from another thread than the
/// one blocked in the call. Implementations hold what they need on their own
/// (copies, not the connection), so they may outlive the connection.
class interruptible {
 public:
  virtual ~interruptible() = default;
  /// Asks the server to give up the statement it runs. May block (a server
  /// that hangs may not answer this either); runs on the watchdog's cancel
  /// thread.
  virtual void cancel() = 0;
  /// Makes the blocked call fail at once, giving the connection up. Must not
  /// block: runs on the watchdog's timer thread, under the watchdog's lock.
  virtual void drop() = 0;
};

/// What the watchdog did to a call.
enum class call_outcome {
  finished,   ///< nothing: the call ended before its deadline
  cancelled,  ///< the deadline passed and a cancel was asked for
  dropped,    ///< the cancel did not end the call in time: the connection was given up
};

/// Stops database calls that outlive their deadline. At a call's deadline it
/// asks for a cancel; a call still running `grace` later has its connection
/// dropped. One timer thread serves every watched call of the process,
/// sleeping until the nearest deadline; a second thread sends the cancels,
/// so that a server that does not answer a cancel delays no other deadline.
/// The threads start with the first watched call. Thread-safe.
class statement_watchdog {
 public:
  using clock = std::chrono::steady_clock;
  using ticket = std::uint64_t;

  statement_watchdog() = default;
  /// Stops the threads; waits for a cancel() under way to return.
  ~statement_watchdog();
  statement_watchdog(const statement_watchdog&) = delete;
  statement_watchdog& operator=(const statement_watchdog&) = delete;

  /// The process's watchdog. Never destroyed: a cancel blocked on a hung
  /// server must not hold up the exit.
  static statement_watchdog& shared();

  /// Watches a call on `target`: at `cancel_at` its cancel() is asked for,
  /// at `drop_at` its drop() runs, unless disarm() came first.
  ticket arm(std::shared_ptr<interruptible> target, clock::time_point cancel_at,
             clock::time_point drop_at);

  /// Ends the watch and says what was done. Once it returns, neither drop()
  /// nor cancel() runs for the call any more: a cancel under way is waited
  /// for (until the drop deadline, when the connection is dropped instead),
  /// so that it cannot reach the connection's next statement.
  call_outcome disarm(ticket t);

 private:
  struct watch {
    std::shared_ptr<interruptible> target;
    clock::time_point cancel_at;
    clock::time_point drop_at;
    call_outcome stage = call_outcome::finished;
  };

  /// Cancels waiting for the cancel thread; past this many (the server does
  /// not answer them) a call is left to be dropped.
  static constexpr std::size_t max_waiting_cancels = 16;
  /// While calls keep coming, the timer looks again this often instead of
  /// being woken by every arm(): a wakeup per call would cost more.
  static constexpr auto idle_tick = std::chrono::milliseconds(50);

  void start() REQUIRES(mutex_);
  void run_timer() EXCLUDES(mutex_);
  void run_canceller() EXCLUDES(mutex_);

  mutex mutex_;
  condition timer_wake_;   // the nearest deadline moved closer, or stop
  condition cancel_wake_;  // a cancel to send, or stop
  condition cancel_done_;  // the cancel under way returned
  std::map<ticket, watch> watches_ GUARDED_BY(mutex_);
  std::deque<std::pair<ticket, std::shared_ptr<interruptible>>> cancels_ GUARDED_BY(mutex_);
  ticket next_ticket_ GUARDED_BY(mutex_) = 1;
  ticket cancelling_ GUARDED_BY(mutex_) = 0;  // the call whose cancel() runs now, or 0
  clock::time_point wake_at_ GUARDED_BY(mutex_) = clock::time_point::max();
  bool armed_since_tick_ GUARDED_BY(mutex_) = false;
  bool started_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread timer_;
  std::thread canceller_;
};

/// Watches one call for as long as it lives: arms the watchdog on
/// construction, disarms it on finish() or destruction. Used by one thread.
class statement_deadline {
 public:
  /// Watches a call on `target` that may take `limit`. A null target or a
  /// zero limit watches nothing (finish() then says finished).
  statement_deadline(statement_watchdog& watchdog, std::shared_ptr<interruptible> target,
                     std::chrono::milliseconds limit);
  ~statement_deadline();
  statement_deadline(const statement_deadline&) = delete;
  statement_deadline& operator=(const statement_deadline&) = delete;

  /// Ends the watch; later calls give the same answer.
  call_outcome finish();

  /// How long after its deadline a call the cancel did not end is dropped:
  /// a cancelled statement normally ends within milliseconds.
  static std::chrono::milliseconds grace(std::chrono::milliseconds limit);

 private:
  statement_watchdog* watchdog_ = nullptr;  // null: nothing armed, or already finished
  statement_watchdog::ticket ticket_ = 0;
  call_outcome outcome_ = call_outcome::finished;
};

}  // namespace parley
