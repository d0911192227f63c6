#define BOOST_TEST_MODULE leased_limits
#include <boost/test/unit_test.hpp>

#include "base/clock.hpp"
#include "base/mutex.hpp"
#include "config/load_settings.hpp"
#include "http/leased_limits.hpp"
#include "persistence/store.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <algorithm>
#include <cmath>
#include <map>

using namespace parley;
using std::chrono::milliseconds;
namespace utf = boost::unit_test;

namespace {

/// The ledger's rules in memory (the SQL of limit_ledger.cpp does the same,
/// checked against PostgreSQL below), shared by several leased_limits as
/// the database is by several instances. `failing` makes every call throw.
class memory_ledger final : public limit_ledger {
 public:
  struct state {
    parley::mutex mutex;
    std::map<std::string, std::pair<double, std::int64_t>> buckets GUARDED_BY(mutex);
    std::map<std::pair<std::string, std::string>, std::pair<unsigned, std::int64_t>> slots
        GUARDED_BY(mutex);
    bool failing GUARDED_BY(mutex) = false;
  };
  explicit memory_ledger(std::shared_ptr<state> s) : s_(std::move(s)) {}

  token_grant take_tokens(const std::string& user, double debt, double want, double capacity,
                          double per_second, std::int64_t now_ms) override {
    mutex_lock lock(s_->mutex);
    fail_if_asked();
    auto [at, fresh] = s_->buckets.try_emplace(user, capacity, now_ms);
    auto& [tokens, updated] = at->second;
    auto available = std::min(
        capacity, tokens + std::max<std::int64_t>(0, now_ms - updated) * per_second / 1000.0);
    auto taken = debt + std::min(want, std::max(0.0, std::floor(available - debt)));
    tokens = available - taken;
    updated = std::max(updated, now_ms);
    return {taken, tokens};
  }
  void give_back(const std::string& user, double tokens, double capacity, double per_second,
                 std::int64_t now_ms) override {
    mutex_lock lock(s_->mutex);
    fail_if_asked();
    auto& [held, updated] = s_->buckets.at(user);
    held =
        std::min(capacity,
                 held + std::max<std::int64_t>(0, now_ms - updated) * per_second / 1000.0 + tokens);
    updated = std::max(updated, now_ms);
  }
  unsigned hold_slots(const std::string& user, const std::string& instance, unsigned wanted,
                      unsigned limit, std::int64_t now_ms, std::int64_t expires_ms) override {
    mutex_lock lock(s_->mutex);
    fail_if_asked();
    unsigned others = 0;
    for (auto& [key, lease] : s_->slots)
      if (key.first == user && key.second != instance && lease.second > now_ms)
        others += lease.first;
    auto held = std::min(wanted, limit > others ? limit - others : 0u);
    s_->slots[{user, instance}] = {held, expires_ms};
    return held;
  }

 private:
  void fail_if_asked() REQUIRES(s_->mutex) {
    if (s_->failing) throw store_error(errc::db_unavailable, "the ledger is down");
  }
  std::shared_ptr<state> s_;
};

/// A timing without the background thread: the tests call reconcile().
leased_limits::timing manual_timing() {
  leased_limits::timing t;
  t.background = false;
  return t;
}

struct two_instances {
  std::shared_ptr<memory_ledger::state> shared = std::make_shared<memory_ledger::state>();
  std::unique_ptr<leased_limits> make(const std::string& name, std::uint32_t rpm,
                                      std::uint32_t generations,
                                      leased_limits::timing t = manual_timing()) {
    return std::make_unique<leased_limits>(std::make_unique<memory_ledger>(shared), name, rpm,
                                           generations, t);
  }
};

int admitted(leased_limits& l, const std::string& user, int tries) {
  int n = 0;
  for (int i = 0; i < tries; ++i)
    n += static_cast<bool>(l.take_request(user, leased_limits::clock::now()));
  return n;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(two_instances_share_one_bucket_within_the_credit_each_may_give,
                        two_instances) {
  auto a = make("a", 30, 0), b = make("b", 30, 0);
  // 30 a minute: leases of 3, and 3 on credit before the first lease.
  int total = 0;
  for (int round = 0; round < 20; ++round) {
    total += admitted(*a, "alice", 3) + admitted(*b, "alice", 3);
    a->reconcile();
    b->reconcile();
  }
  // The bucket's 30, plus what refilled during the test (well under one),
  // plus at most one credit of 3 per instance.
  BOOST_TEST(total >= 30);
  BOOST_TEST(total <= 36);
  auto refused = a->take_request("alice", leased_limits::clock::now());
  BOOST_REQUIRE(!refused);
  BOOST_TEST((refused.error().code == errc::rate_limited));
  BOOST_TEST(refused.error().retry_after_s.value_or(0) >= 1u);
  BOOST_TEST(refused.error().retry_after_s.value_or(0) <= 2u);
  // Another user has a bucket of its own.
  BOOST_TEST(admitted(*b, "bob", 3) == 3);
}

BOOST_FIXTURE_TEST_CASE(one_instance_alone_admits_exactly_the_capacity, two_instances) {
  auto a = make("a", 20, 0);
  int total = 0;
  for (int round = 0; round < 20; ++round) {
    total += admitted(*a, "carol", 2);
    a->reconcile();
  }
  // The credit is paid back from the same bucket, so nothing is overshot.
  BOOST_TEST(total == 20);
}

BOOST_FIXTURE_TEST_CASE(a_lease_left_unused_goes_back_to_the_other_instance, two_instances) {
  leased_limits::timing quick = manual_timing();
  quick.idle_return = milliseconds(50);
  quick.reread_after = milliseconds(50);
  auto a = make("a", 10, 0, quick), b = make("b", 10, 0, quick);
  BOOST_TEST(admitted(*a, "dave", 1) == 1);  // on credit; the take leases 1 more
  a->reconcile();
  int on_b = 0;
  for (int i = 0; i < 10; ++i) {
    on_b += admitted(*b, "dave", 1);
    b->reconcile();
  }
  BOOST_TEST(on_b == 8);  // the rest of the 10
  // A holds an unused token: B finds it once A has given it back.
  std::this_thread::sleep_for(milliseconds(60));
  a->reconcile();
  BOOST_TEST(admitted(*b, "dave", 1) == 0);  // refused, and B reads the bucket again
  b->reconcile();
  BOOST_TEST(admitted(*b, "dave", 1) == 1);
  b->reconcile();
  BOOST_TEST(admitted(*b, "dave", 1) == 0);
}

BOOST_FIXTURE_TEST_CASE(generation_slots_are_shared_with_one_on_credit_per_instance,
                        two_instances) {
  auto a = make("a", 0, 2), b = make("b", 0, 2);
  auto first = a->claim_generation("erin");  // on credit
  BOOST_REQUIRE(first);
  a->reconcile();                             // holds 2: the one running and a spare
  auto second = b->claim_generation("erin");  // on credit: B has not asked yet
  BOOST_REQUIRE(second);
  b->reconcile();  // the ledger has none left for B
  auto third = b->claim_generation("erin");
  BOOST_REQUIRE(!third);  // refused: the ledger just said no
  BOOST_TEST(third.error().retry_after_s.value_or(0) == 1u);
  auto on_a = a->claim_generation("erin");  // A's spare
  BOOST_REQUIRE(on_a);
  BOOST_TEST(!a->claim_generation("erin"));  // two on A: the limit, locally too
  // Slots come back when replies end.
  on_a->reset();
  first->reset();
  second->reset();
  a->reconcile();
  b->reconcile();
  BOOST_TEST(static_cast<bool>(b->claim_generation("erin")));
}

BOOST_FIXTURE_TEST_CASE(replies_started_before_the_ledger_answers_get_up_to_the_limit,
                        two_instances) {
  auto a = make("a", 0, 3);
  std::vector<outcome<std::shared_ptr<void>>> started;
  for (int i = 0; i < 3; ++i) started.push_back(a->claim_generation("ivy"));
  for (auto& s : started) BOOST_TEST(static_cast<bool>(s));
  BOOST_TEST(!a->claim_generation("ivy"));  // never past the limit on one instance
  a->reconcile();
  BOOST_TEST(!a->claim_generation("ivy"));
}

BOOST_FIXTURE_TEST_CASE(slots_of_an_instance_that_stops_renewing_expire, two_instances) {
  leased_limits::timing short_lived = manual_timing();
  short_lived.slot_ttl = milliseconds(100);
  auto b = make("b", 0, 1, short_lived);
  {
    memory_ledger dead(shared);  // an instance that died holding the only slot
    auto now = now_ms();
    dead.hold_slots("frank", "dead", 1, 1, now, now + 100);
  }
  auto credit = b->claim_generation("frank");
  BOOST_REQUIRE(credit);
  b->reconcile();
  credit->reset();
  b->reconcile();
  BOOST_TEST(!b->claim_generation("frank"));  // refused by the ledger: the dead one holds it
  std::this_thread::sleep_for(milliseconds(150));
  b->reconcile();  // the dead one's lease expired: the slot is B's
  BOOST_TEST(static_cast<bool>(b->claim_generation("frank")));
}

BOOST_FIXTURE_TEST_CASE(a_failing_ledger_leaves_the_leases_held_and_no_more, two_instances) {
  auto a = make("a", 10, 0);
  BOOST_TEST(admitted(*a, "gina", 1) == 1);
  a->reconcile();  // holds 1 leased token
  {
    mutex_lock lock(shared->mutex);
    shared->failing = true;
  }
  // The leased token, then the credit (one lease's worth), then nothing.
  BOOST_TEST(admitted(*a, "gina", 10) == 2);
  a->reconcile();
  BOOST_TEST(admitted(*a, "gina", 1) == 0);
  {
    mutex_lock lock(shared->mutex);
    shared->failing = false;
  }
  a->reconcile();  // the take asked for while failing is made now
  BOOST_TEST(admitted(*a, "gina", 1) == 1);
}

BOOST_AUTO_TEST_CASE(the_background_pass_runs_by_itself) {
  auto shared = std::make_shared<memory_ledger::state>();
  leased_limits::timing t;
  t.tick = milliseconds(10);
  leased_limits a(std::make_unique<memory_ledger>(shared), "a", 60, 0, t);
  int total = 0;
  for (int i = 0; i < 50; ++i) {
    total += static_cast<bool>(a.take_request("hal", leased_limits::clock::now()));
    std::this_thread::sleep_for(milliseconds(5));
  }
  BOOST_TEST(total == 50);  // 60 a minute: the leases keep up without a refusal
}

// --- the SQL, on PostgreSQL ---------------------------------------------------------

namespace {

struct postgresql_ledger_fixture {
  postgresql_ledger_fixture() : scratch(dir.path()) {
    auto url = parse_database_url(scratch.url());
    make_store_factory(url)()->migrate();
    a = make_postgresql_ledger(url.target);
    b = make_postgresql_ledger(url.target);
  }
  testing::temp_dir dir;
  testing::scratch_database scratch;
  std::unique_ptr<limit_ledger> a, b;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(the_postgresql_bucket_refills_lends_and_takes_debts,
                        postgresql_ledger_fixture,
                        *utf::precondition(testing::only_on_postgresql)) {
  // A new bucket is full: 10, of which 3 are taken.
  auto first = a->take_tokens("u", 0, 3, 10, 1, 1000000);
  BOOST_TEST(first.taken == 3);
  BOOST_TEST(first.left == 7);
  // A debt of 2 and as many as are left of 9 wanted.
  auto second = b->take_tokens("u", 2, 9, 10, 1, 1000000);
  BOOST_TEST(second.taken == 7);
  BOOST_TEST(second.left == 0);
  // A debt is taken even from an empty bucket, which goes below zero.
  auto third = a->take_tokens("u", 1, 5, 10, 1, 1000000);
  BOOST_TEST(third.taken == 1);
  BOOST_TEST(third.left == -1);
  // Three seconds at one a second: two whole tokens.
  auto fourth = a->take_tokens("u", 0, 5, 10, 1, 1003000);
  BOOST_TEST(fourth.taken == 2);
  BOOST_TEST(fourth.left == 0);
  // A clock behind the last update refills nothing.
  BOOST_TEST(b->take_tokens("u", 0, 5, 10, 1, 999000).taken == 0);
  a->give_back("u", 4, 10, 1, 1003000);
  BOOST_TEST(b->take_tokens("u", 0, 9, 10, 1, 1003000).taken == 4);
}

BOOST_FIXTURE_TEST_CASE(postgresql_slots_are_shared_and_expire, postgresql_ledger_fixture,
                        *utf::precondition(testing::only_on_postgresql)) {
  BOOST_TEST(a->hold_slots("u", "a", 2, 3, 1000, 2000) == 2u);
  BOOST_TEST(b->hold_slots("u", "b", 2, 3, 1000, 2000) == 1u);  // 3 in all
  BOOST_TEST(b->hold_slots("v", "b", 3, 3, 1000, 2000) == 3u);  // another user's own
  BOOST_TEST(a->hold_slots("u", "a", 0, 3, 1500, 2500) == 0u);  // given back
  BOOST_TEST(b->hold_slots("u", "b", 3, 3, 1500, 2500) == 3u);
  // A's lease expired at 2500: B's expire at 2500 too, so at 3000 A gets them all.
  BOOST_TEST(a->hold_slots("u", "a", 3, 3, 3000, 4000) == 3u);
}
