#include "actors/engine_clock.hpp"

namespace parley {

namespace {

class machine final : public engine_clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  unix_ms wall_ms() const override { return now_ms(); }
  void wait_until(std::condition_variable& wake, std::unique_lock<std::mutex>& lock,
                  time_point at) const override {
    if (at == time_point::max())
      wake.wait(lock);
    else
      wake.wait_until(lock, at);
  }
};

}  // namespace

std::shared_ptr<const engine_clock> machine_clock() {
  static const auto clock = std::make_shared<const machine>();
  return clock;
}

void manual_clock::wait_until(std::condition_variable& wake, std::unique_lock<std::mutex>& lock,
                              time_point at) const {
  if (now() < at) wake.wait_for(lock, std::chrono::milliseconds(1));
}

}  // namespace parley
