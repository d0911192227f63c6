#include "http/keepalive_ticker.hpp"

namespace parley {

keepalive_ticker::keepalive_ticker(clock::duration period)
    : period_(period), thread_([this] { run(); }) {}

keepalive_ticker::~keepalive_ticker() { stop(); }

void keepalive_ticker::stop() {
  {
    mutex_lock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  swept_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Dropped outside the lock: a task's captures may add() as they go.
  std::vector<task> dropped, dropped_added;
  {
    mutex_lock lock(mutex_);
    dropped.swap(tasks_);
    dropped_added.swap(added_);
  }
}

void keepalive_ticker::add(task t) {
  mutex_lock lock(mutex_);
  if (!stopping_) added_.push_back(std::move(t));
}

void keepalive_ticker::sweep_now() {
  mutex_lock lock(mutex_);
  // A sweep under way may have passed the tasks that matter already.
  auto target = sweeps_ + (sweeping_ ? 2 : 1);
  hurry_ = true;
  wake_.notify_all();
  while (!stopping_ && sweeps_ < target) swept_.wait(mutex_);
}

std::size_t keepalive_ticker::size() const {
  mutex_lock lock(mutex_);
  return tasks_.size() + added_.size();
}

void keepalive_ticker::run() {
  mutex_lock lock(mutex_);
  for (;;) {
    auto until = clock::now() + period_;
    while (!stopping_ && !hurry_ && wake_.wait_until(mutex_, until)) {
    }
    if (stopping_) return;
    hurry_ = false;
    sweeping_ = true;
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
    sweeping_ = false;
    ++sweeps_;
    swept_.notify_all();
  }
}

}  // namespace parley
