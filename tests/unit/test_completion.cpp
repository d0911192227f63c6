#define BOOST_TEST_MODULE completion
#include <boost/test/unit_test.hpp>

#include "actors/completion.hpp"
#include "base/mutex.hpp"

#include <future>
#include <string>

using namespace parley;
using namespace std::chrono_literals;

namespace {

/// Records every answer a reply_fn gets.
struct recorder {
  parley::mutex mutex;
  std::vector<outcome<std::string>> answers GUARDED_BY(mutex);
  std::promise<void> first;
  std::shared_future<void> answered = first.get_future().share();

  reply_fn<std::string> fn() {
    return [this](outcome<std::string> r) {
      mutex_lock lock(mutex);
      answers.push_back(std::move(r));
      if (answers.size() == 1) first.set_value();
    };
  }
  bool wait(std::chrono::seconds limit = 10s) {
    return answered.wait_for(limit) == std::future_status::ready;
  }
  std::size_t count() {
    mutex_lock lock(mutex);
    return answers.size();
  }
  outcome<std::string> first_answer() {
    mutex_lock lock(mutex);
    BOOST_REQUIRE(!answers.empty());
    return answers.front();
  }
};

std::shared_ptr<typed_answer<std::string>> answer_for(deadline_sweeper* sweeper, recorder& r) {
  return std::make_shared<typed_answer<std::string>>(sweeper, r.fn());
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_completion_answers_once) {
  recorder r;
  completion<std::string> c(answer_for(nullptr, r), nullptr);
  auto copy = c;
  c.complete("first");
  copy.complete("second");
  copy.fail({errc::internal, "late"});
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST(bool(r.first_answer()));
  BOOST_TEST(*r.first_answer() == "first");
}

BOOST_AUTO_TEST_CASE(a_failure_first_wins_over_a_later_value) {
  recorder r;
  completion<std::string> c(answer_for(nullptr, r), nullptr);
  c.fail({errc::conflict, "no"});
  c.complete("too late");
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST(!r.first_answer());
  BOOST_TEST((r.first_answer().error().code == errc::conflict));
}

BOOST_AUTO_TEST_CASE(a_dropped_request_tells_whether_it_had_been_accepted) {
  for (bool accept : {false, true}) {
    recorder r;
    std::optional<bool> seen;
    {
      completion<std::string> c(answer_for(nullptr, r),
                                [&](const std::shared_ptr<pending_answer>& a, bool accepted) {
                                  seen = accepted;
                                  a->fail({errc::internal, "dropped"});
                                });
      auto copy = c;
      if (accept) copy.accept();
    }
    BOOST_REQUIRE(seen.has_value());
    BOOST_TEST(*seen == accept);
    BOOST_REQUIRE(r.count() == 1);
    BOOST_TEST((r.first_answer().error().code == errc::internal));
  }
}

BOOST_AUTO_TEST_CASE(a_dropped_request_can_be_handed_on_with_the_same_answer) {
  recorder r;
  std::optional<completion<std::string>> again;
  {
    completion<std::string> c(
        answer_for(nullptr, r), [&](const std::shared_ptr<pending_answer>& a, bool) {
          again.emplace(std::static_pointer_cast<typed_answer<std::string>>(a), nullptr);
        });
  }
  BOOST_TEST(r.count() == 0);
  BOOST_REQUIRE(again.has_value());
  again->complete("delivered the second time");
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST(*r.first_answer() == "delivered the second time");
}

BOOST_AUTO_TEST_CASE(an_answered_request_dropped_later_is_not_answered_again) {
  recorder r;
  bool dropped_called = false;
  {
    completion<std::string> c(answer_for(nullptr, r), [&](const std::shared_ptr<pending_answer>&,
                                                          bool) { dropped_called = true; });
    c.complete("done");
  }
  BOOST_TEST(!dropped_called);
  BOOST_TEST(r.count() == 1);
}

BOOST_AUTO_TEST_CASE(without_a_drop_handler_a_dropped_request_fails_as_internal) {
  recorder r;
  { completion<std::string> c(answer_for(nullptr, r), nullptr); }
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST((r.first_answer().error().code == errc::internal));
}

BOOST_AUTO_TEST_CASE(the_sweeper_fails_what_is_not_answered_in_time) {
  recorder r;
  deadline_sweeper sweeper;
  auto a = answer_for(&sweeper, r);
  sweeper.add(a, 50ms, errc::db_unavailable);
  BOOST_TEST(sweeper.pending() == 1);
  BOOST_REQUIRE(r.wait());
  BOOST_TEST(r.count() == 1);
  BOOST_TEST((r.first_answer().error().code == errc::db_unavailable));
  BOOST_TEST(r.first_answer().error().retry_after_s.value_or(0) == 1u);
  BOOST_TEST(sweeper.pending() == 0);
  // The caller's late answer goes nowhere.
  a->succeed("late");
  BOOST_TEST(r.count() == 1);
}

BOOST_AUTO_TEST_CASE(an_answer_in_time_leaves_the_sweeper_at_once) {
  recorder r;
  deadline_sweeper sweeper;
  auto a = answer_for(&sweeper, r);
  sweeper.add(a, 1h, errc::overloaded);
  BOOST_TEST(sweeper.pending() == 1);
  a->succeed("in time");
  BOOST_TEST(sweeper.pending() == 0);
  BOOST_TEST(a.use_count() == 1);  // the sweeper holds no reference any more
  BOOST_TEST(*r.first_answer() == "in time");
}

BOOST_AUTO_TEST_CASE(a_short_deadline_added_after_a_long_one_still_fires_first) {
  recorder slow, quick;  // outlive the sweeper, which answers `slow` as it stops
  deadline_sweeper sweeper;
  auto long_wait = answer_for(&sweeper, slow);
  sweeper.add(long_wait, 1h, errc::overloaded);
  // Let the sweeper go to sleep until the hour is up.
  std::this_thread::sleep_for(20ms);
  auto short_wait = answer_for(&sweeper, quick);
  sweeper.add(short_wait, 30ms, errc::db_unavailable);
  BOOST_REQUIRE(quick.wait());
  BOOST_TEST((quick.first_answer().error().code == errc::db_unavailable));
  BOOST_TEST(slow.count() == 0);
  BOOST_TEST(sweeper.pending() == 1);
}

BOOST_AUTO_TEST_CASE(answers_leave_a_lane_in_any_order) {
  std::vector<recorder> rs(6);
  recorder late;
  deadline_sweeper sweeper;
  std::vector<std::shared_ptr<typed_answer<std::string>>> as;
  for (auto& r : rs) {
    as.push_back(answer_for(&sweeper, r));
    sweeper.add(as.back(), 200ms, errc::db_unavailable);
  }
  // Middle, head, tail, then the new head and a middle one again.
  for (std::size_t i : {2u, 0u, 5u, 1u}) as[i]->succeed("answered");
  as[4]->fail({errc::conflict, "no"});
  BOOST_TEST(sweeper.pending() == 1);
  // The one left is still linked where the sweeper finds it: it expires.
  BOOST_REQUIRE(rs[3].wait());
  BOOST_TEST((rs[3].first_answer().error().code == errc::db_unavailable));
  BOOST_TEST(sweeper.pending() == 0);
  // And the emptied lane takes new answers.
  sweeper.add(answer_for(&sweeper, late), 20ms, errc::db_unavailable);
  BOOST_REQUIRE(late.wait());
  for (auto& r : rs) BOOST_TEST(r.count() == 1);
}

BOOST_AUTO_TEST_CASE(a_stopping_sweeper_fails_what_still_waits) {
  recorder r;
  {
    deadline_sweeper sweeper;
    sweeper.add(answer_for(&sweeper, r), 1h, errc::overloaded);
  }
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST((r.first_answer().error().code == errc::overloaded));
}

BOOST_AUTO_TEST_CASE(a_stopped_sweeper_fails_what_comes_after_at_once) {
  recorder r;
  deadline_sweeper sweeper;
  sweeper.stop();
  sweeper.stop();
  sweeper.add(answer_for(&sweeper, r), 1h, errc::overloaded);
  BOOST_REQUIRE(r.count() == 1);
  BOOST_TEST((r.first_answer().error().code == errc::overloaded));
  BOOST_TEST(sweeper.pending() == 0);
}

BOOST_AUTO_TEST_CASE(deadlines_of_their_own_fire_in_deadline_order_whatever_the_order_added) {
  using clock = deadline_sweeper::clock;
  // One recorder collects the order: each answer says which it is.
  std::mutex mutex;
  std::vector<std::string> fired;
  std::promise<void> all;
  auto answer = [&](std::string name) {
    return std::make_shared<typed_answer<std::string>>(nullptr, [&, name](outcome<std::string>) {
      std::lock_guard lock(mutex);
      fired.push_back(name);
      if (fired.size() == 3) all.set_value();
    });
  };
  recorder withdrawn;
  deadline_sweeper sweeper;
  auto now = clock::now();
  auto third = answer("third"), first = answer("first"), second = answer("second");
  sweeper.add_at(third, now + 150ms, errc::provider_timeout);
  sweeper.add_at(first, now + 30ms, errc::provider_timeout);   // before the head
  sweeper.add_at(second, now + 90ms, errc::provider_timeout);  // between the two
  auto gone = answer_for(&sweeper, withdrawn);
  sweeper.add_at(gone, now + 60ms, errc::provider_timeout);
  gone->withdraw();  // settled without an answer: never fired
  BOOST_TEST(sweeper.pending() == 3);
  BOOST_REQUIRE(all.get_future().wait_for(10s) == std::future_status::ready);
  BOOST_TEST(fired == (std::vector<std::string>{"first", "second", "third"}),
             boost::test_tools::per_element());
  BOOST_TEST(withdrawn.count() == 0);
  BOOST_TEST(sweeper.pending() == 0);
}

BOOST_AUTO_TEST_CASE(on_a_manual_clock_deadlines_pass_when_the_clock_is_moved) {
  recorder first, second;
  auto clock = std::make_shared<manual_clock>(0);
  deadline_sweeper sweeper(clock);
  auto a = answer_for(&sweeper, first);
  auto b = answer_for(&sweeper, second);
  sweeper.add(a, 50ms, errc::db_unavailable);
  sweeper.add_at(b, clock->now() + 80ms, errc::provider_timeout);
  clock->advance(49ms);
  // The sweeper keeps looking at the clock; a real second changes nothing.
  BOOST_TEST(!first.wait(1s));
  clock->advance(1ms);
  BOOST_REQUIRE(first.wait());
  BOOST_TEST((first.first_answer().error().code == errc::db_unavailable));
  BOOST_TEST(second.count() == 0);
  clock->advance(30ms);
  BOOST_REQUIRE(second.wait());
  BOOST_TEST((second.first_answer().error().code == errc::provider_timeout));
  BOOST_TEST(sweeper.pending() == 0);
}

BOOST_AUTO_TEST_CASE(a_manual_clocks_readings_move_together) {
  manual_clock clock(1772409540000);
  auto start = clock.now();
  clock.advance(61s);
  BOOST_TEST((clock.now() - start == 61s));
  BOOST_TEST(clock.wall_ms() == 1772409601000);
  BOOST_TEST(format_day(clock.wall_ms()) == "2026-03-02");
}
