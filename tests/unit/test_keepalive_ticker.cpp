#define BOOST_TEST_MODULE keepalive_ticker
#include <boost/test/unit_test.hpp>

#include "http/keepalive_ticker.hpp"

#include <atomic>
#include <thread>

using namespace parley;
using std::chrono::milliseconds;

BOOST_AUTO_TEST_CASE(tasks_run_every_period_until_they_say_done) {
  keepalive_ticker ticker(milliseconds(10));
  std::atomic<int> forever{0}, three_times{0};
  ticker.add([&](auto) {
    ++forever;
    return true;
  });
  ticker.add([&](auto) { return ++three_times < 3; });
  std::this_thread::sleep_for(milliseconds(300));
  BOOST_TEST(forever.load() >= 5);
  BOOST_TEST(three_times.load() == 3);
  BOOST_TEST(ticker.size() == 1u);
}

BOOST_AUTO_TEST_CASE(tasks_see_the_time_of_their_sweep) {
  keepalive_ticker ticker(milliseconds(10));
  std::atomic<bool> in_order{true};
  keepalive_ticker::clock::time_point last{};
  std::atomic<int> calls{0};
  ticker.add([&](auto now) {
    if (now < last || now > keepalive_ticker::clock::now()) in_order = false;
    last = now;
    return ++calls < 5;
  });
  std::this_thread::sleep_for(milliseconds(200));
  BOOST_TEST(calls.load() == 5);
  BOOST_TEST(in_order.load());
}

BOOST_AUTO_TEST_CASE(stopping_drops_what_is_left) {
  std::atomic<int> calls{0};
  {
    keepalive_ticker ticker(milliseconds(5));
    ticker.add([&](auto) {
      ++calls;
      return true;
    });
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto after_stop = calls.load();
  std::this_thread::sleep_for(milliseconds(30));
  BOOST_TEST(calls.load() == after_stop);
}

BOOST_AUTO_TEST_CASE(sweep_now_runs_every_task_before_it_returns) {
  // A period far longer than the test: only sweep_now() can run the tasks.
  keepalive_ticker ticker(std::chrono::hours(1));
  std::atomic<bool> told{false};
  std::atomic<int> calls{0};
  for (int i = 0; i < 3; ++i)
    ticker.add([&](auto) {
      ++calls;
      return !told.load();
    });
  ticker.sweep_now();
  BOOST_TEST(calls.load() == 3);
  BOOST_TEST(ticker.size() == 3u);
  told = true;  // what a task reads is seen by the next sweep
  ticker.sweep_now();
  BOOST_TEST(calls.load() == 6);
  BOOST_TEST(ticker.size() == 0u);
  ticker.stop();
  ticker.sweep_now();  // stopped: returns at once
}
