#pragma once

#include "actors/completion.hpp"

#include <atomic>
#include <memory>

namespace parley {

/// Counts the requests accepted and not yet answered, so that shutdown can
/// wait for them. Copies share one count; a token may outlive the API.
class in_flight_counter {
 public:
  int count() const { return count_->load(); }

  /// Counts a request as in flight until the token's last copy is gone.
  std::shared_ptr<void> hold() {
    count_->fetch_add(1);
    return std::shared_ptr<void>(nullptr, [count = count_](void*) { count->fetch_sub(1); });
  }

  /// Counts a request as in flight until the returned callback's last copy is gone.
  template <class T>
  reply_fn<T> tracked(reply_fn<T> fn) {
    return [fn = std::move(fn), token = hold()](outcome<T> r) { fn(std::move(r)); };
  }

 private:
  std::shared_ptr<std::atomic<int>> count_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace parley
