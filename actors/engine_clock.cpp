#include "actors/engine_clock.hpp"

namespace parley {

namespace {

class machine final : public engine_clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  unix_ms wall_ms() const override { return now_ms(); }
  void wait_until(condition& wake, mutex& m, time_point at) const REQUIRES(m) override {
    if (at == time_point::max())
      wake.wait(m);
    else
      wake.wait_until(m, at);
  }
};

}  // namespace

std::shared_ptr<const engine_clock> machine_clock() {
  static const auto clock = std::make_shared<const machine>();
  return clock;
}

void manual_clock::wait_until(condition& wake, mutex& m, time_point at) const {
  if (now() < at) wake.wait_for(m, std::chrono::milliseconds(1));
}

}  // namespace parley
