#include "actors/completion.hpp"

#include <spdlog/spdlog.h>

namespace parley {

failure shutting_down() { return {errc::overloaded, "the server is shutting down", {}, {}, 1}; }

void detail::log_reply_exception(const char* what) noexcept {
  try {
    spdlog::error("answering a request failed: {}", what);
  } catch (...) {
    // Nowhere left to say it.
  }
}

bool pending_answer::claim() {
  if (answered_.exchange(true, std::memory_order_acq_rel)) return false;
  if (sweeper_) sweeper_->remove(*this);
  return true;
}

reply_slot::hold::~hold() {
  if (answer->answered()) return;
  failure dropped{errc::internal, "the request was dropped before it was answered"};
  if (!on_dropped) {
    answer->fail(std::move(dropped));
    return;
  }
  // Delivering again spawns and sends: what that throws must not leave a
  // destructor, and the request is answered all the same.
  try {
    on_dropped(answer, accepted.load(std::memory_order_relaxed));
  } catch (const std::exception& e) {
    detail::log_reply_exception(e.what());
    answer->fail(std::move(dropped));
  } catch (...) {
    detail::log_reply_exception("an unknown exception");
    answer->fail(std::move(dropped));
  }
}

deadline_sweeper::deadline_sweeper(std::shared_ptr<const engine_clock> clock)
    : clock_(std::move(clock)), thread_([this] { run(); }) {}

void deadline_sweeper::stop() {
  std::vector<std::shared_ptr<pending_answer>> left;
  {
    mutex_lock lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& l : lanes_)
      while (l.head) left.push_back(unlink(*l.head));
  }
  wake_.notify_one();
  thread_.join();
  for (auto& answer : left) answer->fail(shutting_down());
}

void deadline_sweeper::add(const std::shared_ptr<pending_answer>& answer, clock::duration timeout,
                           errc on_timeout) {
  insert(answer, timeout, std::nullopt, on_timeout);
}

void deadline_sweeper::add_at(const std::shared_ptr<pending_answer>& answer,
                              clock::time_point deadline, errc on_timeout) {
  insert(answer, {}, deadline, on_timeout);
}

void deadline_sweeper::insert(const std::shared_ptr<pending_answer>& answer,
                              clock::duration timeout, std::optional<clock::time_point> at,
                              errc on_timeout) {
  bool earlier;
  {
    mutex_lock lock(mutex_);
    if (stopping_) {
      lock.unlock();
      answer->fail(shutting_down());
      return;
    }
    // Settled already (withdrawn before it was added): nothing to keep.
    if (answer->answered()) return;
    bool own = at.has_value();
    std::size_t i = 0;
    while (i < lanes_.size() &&
           (lanes_[i].own_deadlines != own || (!own && lanes_[i].timeout != timeout)))
      ++i;
    if (i == lanes_.size()) lanes_.push_back({timeout, own});
    auto& l = lanes_[i];
    auto& a = *answer;
    // Taken under the lock, so that a lane of one timeout stays in deadline order.
    a.deadline_ = own ? *at : clock_->now() + timeout;
    a.on_timeout_ = on_timeout;
    a.lane_ = i;
    a.keep_ = answer;
    auto* after = l.tail;
    while (after && after->deadline_ > a.deadline_) after = after->prev_;
    a.prev_ = after;
    a.next_ = after ? after->next_ : l.head;
    (a.next_ ? a.next_->prev_ : l.tail) = &a;
    (after ? after->next_ : l.head) = &a;
    ++pending_;
    earlier = a.deadline_ < wake_at_;
    if (earlier) wake_at_ = a.deadline_;
  }
  // Under steady load every lane has a head, so this is rare.
  if (earlier) wake_.notify_one();
}

std::size_t deadline_sweeper::pending() const {
  mutex_lock lock(mutex_);
  return pending_;
}

void deadline_sweeper::remove(pending_answer& answer) {
  std::shared_ptr<pending_answer> released;
  mutex_lock lock(mutex_);
  released = unlink(answer);
}

std::shared_ptr<pending_answer> deadline_sweeper::unlink(pending_answer& a) {
  if (!a.keep_) return nullptr;
  auto& l = lanes_[a.lane_];
  (a.prev_ ? a.prev_->next_ : l.head) = a.next_;
  (a.next_ ? a.next_->prev_ : l.tail) = a.prev_;
  a.prev_ = a.next_ = nullptr;
  --pending_;
  return std::move(a.keep_);
}

void deadline_sweeper::run() {
  mutex_lock lock(mutex_);
  std::vector<std::shared_ptr<pending_answer>> expired;
  while (!stopping_) {
    auto now = clock_->now();
    auto next = clock::time_point::max();
    for (auto& l : lanes_) {
      while (l.head && l.head->deadline_ <= now) expired.push_back(unlink(*l.head));
      if (l.head) next = std::min(next, l.head->deadline_);
    }
    wake_at_ = next;
    if (!expired.empty()) {
      lock.unlock();
      for (auto& answer : expired) answer->fail(timed_out(answer->on_timeout_));
      expired.clear();
      lock.lock();
      continue;
    }
    clock_->wait_until(wake_, mutex_, next);
  }
}

}  // namespace parley
