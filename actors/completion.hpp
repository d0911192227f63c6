#pragma once

// A request's answer, given once from whichever thread finishes the request:
// no actor per request to receive it and no timer per request to bound it.
// No CAF here.

#include "actors/engine_clock.hpp"
#include "base/errors.hpp"
#include "base/mutex.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace parley {

/// Where an answer goes. Called exactly once, from any thread (an actor's, a
/// reader's, the sweeper's, or the caller's own when the request could not be
/// handed in): it must not block. What it throws is logged and dropped.
template <class T>
using reply_fn = std::function<void(outcome<T>)>;

class deadline_sweeper;

/// The failure of a request the engine can no longer serve: it is stopping.
failure shutting_down();

namespace detail {
void log_reply_exception(const char* what) noexcept;

/// Runs a reply so that what it throws cannot take down the thread that
/// answers (an actor's, a reader's, the sweeper's).
template <class F>
void call_reply(F&& reply) noexcept {
  try {
    reply();
  } catch (const std::exception& e) {
    log_reply_exception(e.what());
  } catch (...) {
    log_reply_exception("an unknown exception");
  }
}
}  // namespace detail

/// The answer a request waits for, given at most once. Thread-safe.
class pending_answer {
 public:
  explicit pending_answer(deadline_sweeper* sweeper) : sweeper_(sweeper) {}
  virtual ~pending_answer() = default;
  pending_answer(const pending_answer&) = delete;
  pending_answer& operator=(const pending_answer&) = delete;

  /// Answers with `why` unless the request was answered already.
  void fail(failure why) {
    if (claim()) deliver_failure(std::move(why));
  }
  bool answered() const { return answered_.load(std::memory_order_acquire); }
  /// Settles it without an answer (it is not needed any more): the sweeper
  /// lets go of it and will not fail it.
  void withdraw() { claim(); }

 protected:
  /// True for the one caller that may answer; it also takes the answer off the sweeper.
  bool claim();

 private:
  friend class deadline_sweeper;
  virtual void deliver_failure(failure why) = 0;

  std::atomic<bool> answered_{false};
  deadline_sweeper* const sweeper_;
  // Read and written only by the sweeper, with its mutex_ held. They are
  // another object's members, which the analysis cannot tie to that mutex,
  // so this comment is all that says so. While the answer waits on the
  // sweeper, `keep_` is the sweeper's reference to it.
  std::shared_ptr<pending_answer> keep_;
  pending_answer* prev_ = nullptr;
  pending_answer* next_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  std::size_t lane_ = 0;
  errc on_timeout_ = errc::overloaded;
};

template <class T>
class typed_answer final : public pending_answer {
 public:
  typed_answer(deadline_sweeper* sweeper, reply_fn<T> reply)
      : pending_answer(sweeper), reply_(std::move(reply)) {}

  void succeed(T value) {
    if (!claim()) return;
    auto reply = std::exchange(reply_, nullptr);
    detail::call_reply([&] { reply(std::move(value)); });
  }

 private:
  void deliver_failure(failure why) override {
    auto reply = std::exchange(reply_, nullptr);
    detail::call_reply([&] { reply(std::move(why)); });
  }

  reply_fn<T> reply_;
};

/// Fails every answer still pending when its deadline passes, from one thread
/// that sleeps until the earliest deadline. Answers with the same timeout sit
/// in one list in deadline order, so adding and removing one is O(1); those
/// with deadlines of their own share one list, kept in order by walking back
/// from its tail (O(1) while they come in deadline order).
class deadline_sweeper {
 public:
  using clock = std::chrono::steady_clock;

  /// Reads the time from `clock` (the engine's).
  explicit deadline_sweeper(std::shared_ptr<const engine_clock> clock = machine_clock());
  ~deadline_sweeper() { stop(); }
  deadline_sweeper(const deadline_sweeper&) = delete;
  deadline_sweeper& operator=(const deadline_sweeper&) = delete;

  /// Fails `answer` with `on_timeout` unless it is answered within `timeout`.
  /// After stop(), fails it at once.
  void add(const std::shared_ptr<pending_answer>& answer, clock::duration timeout, errc on_timeout);
  /// The same with a deadline of its own rather than a timeout shared with others.
  void add_at(const std::shared_ptr<pending_answer>& answer, clock::time_point deadline,
              errc on_timeout);

  /// Fails what is still pending (the process is stopping) and joins the
  /// thread, so that no answer is given once whoever it goes to has stopped.
  /// Idempotent.
  void stop();

  /// Answers waiting now (for tests).
  std::size_t pending() const;

 private:
  friend class pending_answer;
  struct lane {
    clock::duration timeout;  ///< unused on the lane of deadlines of their own
    bool own_deadlines = false;
    pending_answer* head = nullptr;
    pending_answer* tail = nullptr;
  };

  /// Puts `answer` on the lane of `timeout`, or with `at` on the lane of
  /// answers with deadlines of their own, in deadline order.
  void insert(const std::shared_ptr<pending_answer>& answer, clock::duration timeout,
              std::optional<clock::time_point> at, errc on_timeout);
  /// Takes `answer` off its lane if it is still on one.
  void remove(pending_answer& answer);
  /// Returns the sweeper's reference to `answer`.
  std::shared_ptr<pending_answer> unlink(pending_answer& answer) REQUIRES(mutex_);
  void run() EXCLUDES(mutex_);

  mutable mutex mutex_;
  condition wake_;
  std::vector<lane> lanes_ GUARDED_BY(mutex_);
  std::size_t pending_ GUARDED_BY(mutex_) = 0;
  clock::time_point wake_at_ GUARDED_BY(mutex_) = clock::time_point::max();
  bool stopping_ GUARDED_BY(mutex_) = false;
  const std::shared_ptr<const engine_clock> clock_;
  std::thread thread_;
};

/// A request's hold on its answer, carried inside the request's message and
/// copied into whatever continues the work. When the last copy goes away
/// unanswered, `on_dropped` decides: `accepted` tells whether the request
/// reached the code serving it (then it failed there) or was dropped before
/// (its actor had stopped, so it may be delivered again).
class reply_slot {
 public:
  using dropped_fn = std::function<void(const std::shared_ptr<pending_answer>&, bool accepted)>;

  reply_slot(std::shared_ptr<pending_answer> answer, dropped_fn on_dropped)
      : hold_(std::make_shared<hold>(std::move(answer), std::move(on_dropped))) {}

  void fail(failure why) const { hold_->answer->fail(std::move(why)); }
  /// Answered already: by the code serving it, or by its deadline.
  bool answered() const { return hold_->answer->answered(); }
  /// The request reached the code that serves it: dropping it from now on
  /// means it failed, not that it should be delivered again.
  void accept() const { hold_->accepted.store(true, std::memory_order_relaxed); }

 protected:
  struct hold {
    hold(std::shared_ptr<pending_answer> a, dropped_fn d)
        : answer(std::move(a)), on_dropped(std::move(d)) {}
    ~hold();
    std::shared_ptr<pending_answer> answer;
    dropped_fn on_dropped;
    std::atomic<bool> accepted{false};
  };
  std::shared_ptr<hold> hold_;
};

/// A reply_slot that can also be answered with a T.
template <class T>
class completion : public reply_slot {
 public:
  completion(std::shared_ptr<typed_answer<T>> answer, dropped_fn on_dropped)
      : reply_slot(std::move(answer), std::move(on_dropped)) {}

  void complete(T value) const {
    static_cast<typed_answer<T>&>(*hold_->answer).succeed(std::move(value));
  }
};

}  // namespace parley
