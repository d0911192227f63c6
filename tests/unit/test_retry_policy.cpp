#define BOOST_TEST_MODULE retry_policy
#include <boost/test/unit_test.hpp>

#include "providers/retry_policy.hpp"

using namespace parley;
using std::chrono::milliseconds;

BOOST_AUTO_TEST_CASE(backoff_doubles_with_jitter_and_a_cap) {
  retry_policy p;
  p.base_delay = milliseconds(100);
  p.max_delay = milliseconds(1000);
  // Lowest jitter: half the ceiling; highest: (almost) all of it.
  BOOST_TEST(backoff_delay(p, 1, std::nullopt, 0.0).count() == 50);
  BOOST_TEST(backoff_delay(p, 1, std::nullopt, 0.999).count() == 99);
  BOOST_TEST(backoff_delay(p, 2, std::nullopt, 0.0).count() == 100);
  BOOST_TEST(backoff_delay(p, 3, std::nullopt, 0.0).count() == 200);
  BOOST_TEST(backoff_delay(p, 4, std::nullopt, 0.5).count() == 600);
  BOOST_TEST(backoff_delay(p, 5, std::nullopt, 0.0).count() == 500);   // capped at 1000
  BOOST_TEST(backoff_delay(p, 40, std::nullopt, 0.0).count() == 500);  // no overflow
}

BOOST_AUTO_TEST_CASE(retry_after_is_a_floor) {
  retry_policy p;
  p.base_delay = milliseconds(100);
  BOOST_TEST(backoff_delay(p, 1, milliseconds(2000), 0.5).count() == 2000);
  BOOST_TEST(backoff_delay(p, 1, milliseconds(10), 0.0).count() == 50);
}

BOOST_AUTO_TEST_CASE(which_statuses_are_retried) {
  for (long s : {408L, 409L, 429L, 500L, 502L, 503L, 504L, 529L})
    BOOST_TEST(is_retryable_status(s));
  for (long s : {200L, 400L, 401L, 403L, 404L, 422L}) BOOST_TEST(!is_retryable_status(s));
}
