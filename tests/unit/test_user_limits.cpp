#define BOOST_TEST_MODULE user_limits
#include <boost/test/unit_test.hpp>

#include "http/user_limits.hpp"

#include <string>
#include <vector>

using namespace parley;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
const auto t0 = user_limits::clock::time_point(seconds(1000));
}

BOOST_AUTO_TEST_CASE(a_bucket_allows_a_minute_of_requests_at_once_then_refills) {
  local_limits limits(60, 0);
  for (int i = 0; i < 60; ++i) BOOST_TEST(bool(limits.take_request("alice", t0)));
  auto over = limits.take_request("alice", t0);
  BOOST_REQUIRE(!over);
  BOOST_TEST((over.error().code == errc::rate_limited));
  BOOST_TEST(over.error().retry_after_s.value() == 1u);
  BOOST_TEST(over.error().detail.find("60 requests per minute") != std::string::npos);
  // Another user has a bucket of their own.
  BOOST_TEST(bool(limits.take_request("bob", t0)));
  // One request per second comes back.
  BOOST_TEST(bool(limits.take_request("alice", t0 + seconds(1))));
  BOOST_TEST(!limits.take_request("alice", t0 + seconds(1)));
  BOOST_TEST(bool(limits.take_request("alice", t0 + milliseconds(2100))));
}

BOOST_AUTO_TEST_CASE(retry_after_is_when_the_next_request_is_allowed) {
  local_limits limits(2, 0);
  BOOST_TEST(bool(limits.take_request("alice", t0)));
  BOOST_TEST(bool(limits.take_request("alice", t0)));
  BOOST_TEST(limits.take_request("alice", t0).error().retry_after_s.value() == 30u);
  BOOST_TEST(limits.take_request("alice", t0 + seconds(20)).error().retry_after_s.value() == 10u);
  BOOST_TEST(bool(limits.take_request("alice", t0 + seconds(30))));
  // A clock that goes backwards takes nothing away and gives nothing.
  BOOST_TEST(!limits.take_request("alice", t0));
}

BOOST_AUTO_TEST_CASE(zero_turns_the_limits_off) {
  local_limits limits(0, 0);
  for (int i = 0; i < 10000; ++i) BOOST_TEST_REQUIRE(bool(limits.take_request("alice", t0)));
  std::vector<std::shared_ptr<void>> slots;
  for (int i = 0; i < 1000; ++i) {
    auto slot = limits.claim_generation("alice");
    BOOST_TEST_REQUIRE(bool(slot));
    slots.push_back(*slot);
  }
  BOOST_TEST(limits.tracked_users() == 0u);
}

BOOST_AUTO_TEST_CASE(generation_slots_are_capped_per_user_and_given_back) {
  local_limits limits(0, 2);
  auto first = limits.claim_generation("alice");
  auto second = limits.claim_generation("alice");
  BOOST_REQUIRE(first);
  BOOST_REQUIRE(second);
  BOOST_TEST(*first != nullptr);
  auto third = limits.claim_generation("alice");
  BOOST_REQUIRE(!third);
  BOOST_TEST((third.error().code == errc::rate_limited));
  BOOST_TEST(third.error().detail.find("2 replies in progress") != std::string::npos);
  BOOST_TEST(bool(limits.claim_generation("bob")));  // released at once
  {
    auto copy = *first;
    *first = nullptr;
    BOOST_TEST(!limits.claim_generation("alice"));  // a copy still holds it
  }
  BOOST_TEST(bool(limits.claim_generation("alice")));
  *second = nullptr;
  BOOST_TEST(limits.tracked_users() == 0u);
}

BOOST_AUTO_TEST_CASE(idle_users_are_forgotten_once_many_are_tracked) {
  local_limits limits(60, 0);
  for (int i = 0; i < 100000; ++i) limits.take_request("user" + std::to_string(i), t0);
  auto busy = limits.tracked_users();
  BOOST_TEST(busy == 100000u);
  // A minute later every bucket is full again: new users sweep the old away.
  for (int i = 0; i < 100000; ++i)
    limits.take_request("later" + std::to_string(i), t0 + seconds(61));
  BOOST_TEST(limits.tracked_users() < 150000u);
}
