#include "persistence/statement_watchdog.hpp"

#include <algorithm>

namespace parley {

// --- statement_watchdog ---------------------------------------------------------

statement_watchdog::~statement_watchdog() {
  {
    mutex_lock lock(mutex_);
    stopping_ = true;
  }
  timer_wake_.notify_all();
  cancel_wake_.notify_all();
  if (timer_.joinable()) timer_.join();
  if (canceller_.joinable()) canceller_.join();
}

statement_watchdog& statement_watchdog::shared() {
  // Leaked on purpose: its cancel thread may be blocked in a cancel that a
  // hung server never answers, and joining it would hang the exit.
  static auto* watchdog = new statement_watchdog;
  return *watchdog;
}

statement_watchdog::ticket statement_watchdog::arm(std::shared_ptr<interruptible> target,
                                                   clock::time_point cancel_at,
                                                   clock::time_point drop_at) {
  mutex_lock lock(mutex_);
  if (!started_) start();
  auto t = next_ticket_++;
  watches_.emplace(t, watch{std::move(target), cancel_at, std::max(cancel_at, drop_at)});
  armed_since_tick_ = true;
  // Calls mostly come with the same limit, so a new deadline is rarely the
  // nearest: the timer only needs waking when it sleeps past it.
  if (cancel_at < wake_at_) timer_wake_.notify_one();
  return t;
}

call_outcome statement_watchdog::disarm(ticket t) {
  mutex_lock lock(mutex_);
  auto it = watches_.find(t);
  if (it == watches_.end()) return call_outcome::finished;
  auto& w = it->second;
  if (w.stage == call_outcome::cancelled) {
    // A cancel not sent yet never will be. One under way is waited for: sent
    // after the call ended, it could stop the connection's next statement
    // (PostgreSQL ignores one that reaches an idle backend). Past the drop
    // deadline the connection is given up instead, so a late cancel can
    // only reach a connection that is no longer used.
    std::erase_if(cancels_, [t](auto& queued) { return queued.first == t; });
    while (cancelling_ == t && cancel_done_.wait_until(mutex_, w.drop_at)) {
    }
    if (cancelling_ == t && w.stage == call_outcome::cancelled) {
      w.stage = call_outcome::dropped;
      w.target->drop();
    }
  }
  auto outcome = w.stage;
  watches_.erase(it);
  return outcome;
}

void statement_watchdog::start() {
  started_ = true;
  timer_ = std::thread([this] { run_timer(); });
  canceller_ = std::thread([this] { run_canceller(); });
}

void statement_watchdog::run_timer() {
  mutex_lock lock(mutex_);
  while (!stopping_) {
    auto now = clock::now();
    auto next = clock::time_point::max();
    // A handful of calls are watched at once (the writer and the readers), so
    // a scan is cheaper than keeping them ordered.
    for (auto& [t, w] : watches_) {
      if (w.stage == call_outcome::finished) {
        if (now < w.cancel_at) {
          next = std::min(next, w.cancel_at);
          continue;
        }
        w.stage = call_outcome::cancelled;
        if (cancels_.size() < max_waiting_cancels) {
          cancels_.emplace_back(t, w.target);
          cancel_wake_.notify_one();
        }
      }
      if (w.stage == call_outcome::cancelled) {
        if (now < w.drop_at) {
          next = std::min(next, w.drop_at);
          continue;
        }
        w.stage = call_outcome::dropped;
        w.target->drop();
      }
    }
    if (next == clock::time_point::max() && armed_since_tick_) {
      // Nothing to watch right now, but calls are coming: look again soon
      // rather than have each arm() wake this thread. Once a tick passes
      // without a call, sleep until one comes.
      armed_since_tick_ = false;
      next = now + idle_tick;
    }
    wake_at_ = next;
    if (next == clock::time_point::max())
      timer_wake_.wait(mutex_);
    else
      timer_wake_.wait_until(mutex_, next);
  }
}

void statement_watchdog::run_canceller() {
  mutex_lock lock(mutex_);
  for (;;) {
    while (!stopping_ && cancels_.empty()) cancel_wake_.wait(mutex_);
    if (stopping_) return;
    auto [t, target] = std::move(cancels_.front());
    cancels_.pop_front();
    // A call that ended (or was dropped) meanwhile must not cancel whatever
    // its connection runs next.
    auto it = watches_.find(t);
    if (it == watches_.end() || it->second.stage != call_outcome::cancelled) continue;
    cancelling_ = t;
    lock.unlock();
    target->cancel();
    lock.lock();
    cancelling_ = 0;
    cancel_done_.notify_all();
  }
}

// --- statement_deadline ---------------------------------------------------------

statement_deadline::statement_deadline(statement_watchdog& watchdog,
                                       std::shared_ptr<interruptible> target,
                                       std::chrono::milliseconds limit) {
  if (!target || limit <= std::chrono::milliseconds::zero()) return;
  auto cancel_at = statement_watchdog::clock::now() + limit;
  ticket_ = watchdog.arm(std::move(target), cancel_at, cancel_at + grace(limit));
  watchdog_ = &watchdog;
}

statement_deadline::~statement_deadline() { finish(); }

call_outcome statement_deadline::finish() {
  if (watchdog_) {
    outcome_ = watchdog_->disarm(ticket_);
    watchdog_ = nullptr;
  }
  return outcome_;
}

std::chrono::milliseconds statement_deadline::grace(std::chrono::milliseconds limit) {
  constexpr auto longest = std::chrono::milliseconds(250);
  return std::min(limit / 2, longest);
}

}  // namespace parley
