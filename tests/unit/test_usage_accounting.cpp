#define BOOST_TEST_MODULE usage_accounting
#include <boost/test/unit_test.hpp>

#include "actors/usage_meter.hpp"
#include "config/load_settings.hpp"
#include "providers/model_registry.hpp"
#include "providers/token_estimator.hpp"

#include <thread>
#include <vector>

using namespace parley;

BOOST_AUTO_TEST_CASE(calibration_follows_reported_counts_in_steps) {
  token_calibration c;
  BOOST_TEST(c.factor() == 1.0);
  c.observe(100, 0);  // nothing reported: ignored
  c.observe(0, 100);
  BOOST_TEST(c.factor() == 1.0);
  for (int i = 0; i < 40; ++i) c.observe(100, 150);
  BOOST_TEST(c.factor() == 1.5);
  for (int i = 0; i < 60; ++i) c.observe(100, 10'000);  // clamped
  BOOST_TEST(c.factor() == 4.0);
  for (int i = 0; i < 60; ++i) c.observe(100, 1);
  BOOST_TEST(c.factor() == 0.25);
  token_calibration small_drift;
  small_drift.observe(100, 101);
  BOOST_TEST(small_drift.factor() == 1.0);  // under a step: budgets stay put
}

BOOST_AUTO_TEST_CASE(a_calibrated_model_has_a_budget_in_estimated_tokens) {
  settings s;
  apply_toml(s, R"(
[[models]]
id = "small"
provider = "builtin"
context_window = 1000
max_output_tokens = 200
)",
             "t.toml");
  auto registry = model_registry::build(s);
  auto& m = *registry->find("small");
  BOOST_TEST(m.context_budget() == 800);
  // The provider counts twice what the engine estimates: half as many estimated tokens fit.
  for (int i = 0; i < 60; ++i) m.calibration->observe(100, 200);
  BOOST_TEST(m.context_budget() == 400);
  BOOST_TEST(registry->find("echo")->context_budget() == 8192 - 512);  // models calibrate apart
}

BOOST_AUTO_TEST_CASE(meter_counts_per_user_and_day) {
  usage_meter meter;
  BOOST_TEST(!meter.used("alice", "2026-11-24"));
  meter.add("alice", "2026-11-24", 30);  // counted before the seed arrives
  BOOST_TEST(!meter.used("alice", "2026-11-24"));
  usage_meter::time_point at{};
  meter.seed("alice", "2026-11-24", 20, at);  // the database had not seen those 30 yet
  BOOST_TEST(*meter.used("alice", "2026-11-24") == 30);
  meter.add("alice", "2026-11-24", 5);
  BOOST_TEST(*meter.used("alice", "2026-11-24") == 35);
  BOOST_TEST(!meter.used("bob", "2026-11-24"));
  // A new day starts from a new seed.
  BOOST_TEST(!meter.used("alice", "2026-11-25"));
  meter.seed("alice", "2026-11-25", 0, at);
  BOOST_TEST(*meter.used("alice", "2026-11-25") == 0);
}

BOOST_AUTO_TEST_CASE(a_seed_is_read_again_once_it_is_old_by_one_caller) {
  usage_meter meter;
  usage_meter::time_point start{};
  BOOST_TEST(!meter.take_reread("alice", "d", start));  // never seeded: nothing to read again
  meter.seed("alice", "d", 10, start);
  BOOST_TEST(!meter.take_reread("alice", "d", start + std::chrono::milliseconds(999)));
  auto later = start + usage_meter::reread_after;
  BOOST_TEST(meter.take_reread("alice", "d", later));
  BOOST_TEST(!meter.take_reread("alice", "d", later));  // one read at a time
  // Another process used 50 meanwhile: the new total replaces the count.
  meter.seed("alice", "d", 60, later);
  BOOST_TEST(*meter.used("alice", "d") == 60);
  BOOST_TEST(!meter.take_reread("alice", "d", later + std::chrono::milliseconds(10)));
  BOOST_TEST(meter.take_reread("alice", "d", later + usage_meter::reread_after));
  BOOST_TEST(!meter.take_reread("alice", "other day", later + usage_meter::reread_after));
}

BOOST_AUTO_TEST_CASE(meter_is_safe_from_many_threads) {
  usage_meter meter;
  for (int u = 0; u < 8; ++u) meter.seed("user" + std::to_string(u), "d", 0, {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&meter] {
      for (int i = 0; i < 10000; ++i) meter.add("user" + std::to_string(i % 8), "d", 1);
    });
  for (auto& t : threads) t.join();
  for (int u = 0; u < 8; ++u) BOOST_TEST(*meter.used("user" + std::to_string(u), "d") == 10000);
}
