#define BOOST_TEST_MODULE connection_watch
#include <boost/test/unit_test.hpp>

#include "http/connection_watch.hpp"

#include <atomic>

using namespace parley;

BOOST_AUTO_TEST_CASE(a_closed_connection_cancels_what_waits_on_it) {
  connection_watch watch;
  int cancelled = 0;
  auto first = std::make_shared<cancellation>();
  auto second = std::make_shared<cancellation>();
  auto elsewhere = std::make_shared<cancellation>();
  first->on_cancel([&] { ++cancelled; });
  second->on_cancel([&] { cancelled += 10; });
  elsewhere->on_cancel([&] { cancelled += 100; });
  watch.watch(1, first);
  watch.watch(1, second);
  watch.watch(2, elsewhere);
  watch.closed(1);
  BOOST_TEST(cancelled == 11);
  watch.closed(1);  // once only
  BOOST_TEST(cancelled == 11);
  BOOST_TEST(watch.size() == 1u);
}

BOOST_AUTO_TEST_CASE(finished_requests_are_forgotten) {
  connection_watch watch;
  bool ran = false;
  {
    auto done = std::make_shared<cancellation>();
    done->on_cancel([&] { ran = true; });
    watch.watch(7, done);
  }                                                  // the request finished and released it
  watch.watch(7, std::make_shared<cancellation>());  // prunes the expired one
  watch.closed(7);
  BOOST_TEST(!ran);
  BOOST_TEST(watch.size() == 0u);
}

BOOST_AUTO_TEST_CASE(a_cancel_before_the_handler_runs_it_on_arrival) {
  cancellation c;
  c.cancel();
  int runs = 0;
  c.on_cancel([&] { ++runs; });
  BOOST_TEST(runs == 1);
  c.cancel();
  BOOST_TEST(runs == 1);
}
