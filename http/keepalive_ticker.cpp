#include "http/keepalive_ticker.hpp"

namespace parley {

keepalive_ticker::keepalive_ticker(clock::duration period)
    : period_(period), thread_([this] { run(); }) {}

keepalive_ticker::~keepalive_ticker() { stop(); }

void keepalive_ticker::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Dropped outside the lock: a task's captures may add() as they go.
  std::vector<task> dropped, dropped_added;
  {
    std::lock_guard lock(mutex_);
    dropped.swap(tasks_);
    dropped_added.swap(added_);
  }
}

void keepalive_ticker::add(task t) {
  std::lock_guard lock(mutex_);
  if (!stopping_) added_.push_back(std::move(t));
}

std::size_t keepalive_ticker::size() const {
  std::lock_guard lock(mutex_);
  return tasks_.size() + added_.size();
}

void keepalive_ticker::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (wake_.wait_for(lock, period_, [this] { return stopping_; })) return;
    for (auto& t : added_) tasks_.push_back(std::move(t));
    added_.clear();
    // The sweep runs without the lock, so add() never waits for it.
    auto sweeping = std::move(tasks_);
    tasks_.clear();
    lock.unlock();
    auto now = clock::now();
    std::vector<task> kept;
    kept.reserve(sweeping.size());
    for (auto& t : sweeping)
      if (t(now)) kept.push_back(std::move(t));
    lock.lock();
    tasks_ = std::move(kept);
  }
}

}  // namespace parley
