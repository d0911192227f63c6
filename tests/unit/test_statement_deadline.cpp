#define BOOST_TEST_MODULE statement_deadline
#include <boost/test/unit_test.hpp>

#include "base/mutex.hpp"
#include "config/load_settings.hpp"
#include "persistence/caf_errors.hpp"
#include "persistence/messages.hpp"
#include "persistence/persistence_actors.hpp"
#include "persistence/statement_watchdog.hpp"
#include "persistence/store.hpp"
#include "support/sample_records.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

using namespace parley;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// --- the watchdog, with calls made up ---------------------------------------------------

namespace {

/// A call that blocks like a statement on a hung database until the
/// watchdog's cancel or drop ends it. What its cancel does is up to the test.
class made_up_call final : public interruptible {
 public:
  enum class on_cancel {
    ends_the_call,  ///< a server that acts on the cancel
    is_ignored,     ///< a server that takes the cancel and does nothing (a stopped backend)
    never_returns,  ///< a server that does not even answer the cancel (a stopped postmaster)
  };

  explicit made_up_call(on_cancel behaviour) : behaviour_(behaviour) {}

  // interruptible overrides

  void cancel() override {
    ++cancels;
    mutex_lock lock(mutex_);
    if (behaviour_ == on_cancel::ends_the_call) {
      ended_ = true;
      changed_.notify_all();
    }
    if (behaviour_ == on_cancel::never_returns)
      while (!unblocked_) changed_.wait(mutex_);
    ++cancels_returned;
  }

  void drop() override {
    ++drops;
    mutex_lock lock(mutex_);
    ended_ = true;
    changed_.notify_all();
  }

  /// Blocks until the call is ended; false if it still runs after `at_most`.
  bool run(std::chrono::milliseconds at_most) {
    mutex_lock lock(mutex_);
    auto until = std::chrono::steady_clock::now() + at_most;
    while (!ended_ && changed_.wait_until(mutex_, until)) {
    }
    return ended_;
  }

  /// Lets a cancel that never returns return after all.
  void unblock() {
    mutex_lock lock(mutex_);
    unblocked_ = true;
    changed_.notify_all();
  }

  std::atomic<int> cancels{0};
  std::atomic<int> cancels_returned{0};
  std::atomic<int> drops{0};

 private:
  on_cancel behaviour_;
  parley::mutex mutex_;
  condition changed_;
  bool ended_ GUARDED_BY(mutex_) = false;
  bool unblocked_ GUARDED_BY(mutex_) = false;
};

using on_cancel = made_up_call::on_cancel;

std::chrono::milliseconds since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t);
}

/// How late past its deadline (and its grace) an interrupted call may end on
/// a loaded machine.
constexpr auto lateness = 1000ms;

}  // namespace

BOOST_AUTO_TEST_CASE(a_call_that_ends_in_time_is_left_alone) {
  statement_watchdog watchdog;
  auto call = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  {
    statement_deadline deadline(watchdog, call, 100ms);
    BOOST_TEST((deadline.finish() == call_outcome::finished));
  }
  std::this_thread::sleep_for(300ms);  // past where its deadline was
  BOOST_TEST(call->cancels == 0);
  BOOST_TEST(call->drops == 0);
  // Nothing to interrupt, or no limit: nothing is watched.
  statement_deadline no_target(watchdog, nullptr, 100ms);
  statement_deadline no_limit(watchdog, call, 0ms);
  std::this_thread::sleep_for(200ms);
  BOOST_TEST((no_target.finish() == call_outcome::finished));
  BOOST_TEST((no_limit.finish() == call_outcome::finished));
  BOOST_TEST(call->cancels == 0);
}

BOOST_AUTO_TEST_CASE(a_call_past_its_deadline_is_cancelled) {
  statement_watchdog watchdog;
  auto call = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  auto started = steady::now();
  statement_deadline deadline(watchdog, call, 200ms);
  BOOST_REQUIRE(call->run(5000ms));
  auto took = since(started);
  BOOST_TEST((deadline.finish() == call_outcome::cancelled));
  BOOST_TEST(took >= 200ms);
  BOOST_TEST(took < 200ms + lateness);
  BOOST_TEST(call->cancels == 1);
  BOOST_TEST(call->drops == 0);
}

BOOST_AUTO_TEST_CASE(a_call_the_cancel_does_not_end_is_dropped_after_the_grace) {
  statement_watchdog watchdog;
  auto call = std::make_shared<made_up_call>(on_cancel::is_ignored);
  auto started = steady::now();
  statement_deadline deadline(watchdog, call, 200ms);
  BOOST_REQUIRE(call->run(5000ms));
  auto took = since(started);
  BOOST_TEST((deadline.finish() == call_outcome::dropped));
  BOOST_TEST(took >= 200ms + statement_deadline::grace(200ms));
  BOOST_TEST(took < 200ms + statement_deadline::grace(200ms) + lateness);
  BOOST_TEST(call->cancels == 1);
  BOOST_TEST(call->drops == 1);
}

BOOST_AUTO_TEST_CASE(a_cancel_the_server_never_answers_holds_up_no_other_deadline) {
  statement_watchdog watchdog;
  auto stuck = std::make_shared<made_up_call>(on_cancel::never_returns);
  auto other = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  // Lets the stuck cancel return before the watchdog stops, however the test ends.
  struct unblock_at_exit {
    made_up_call& call;
    ~unblock_at_exit() { call.unblock(); }
  } unblock{*stuck};
  auto started = steady::now();
  statement_deadline stuck_deadline(watchdog, stuck, 100ms);
  statement_deadline other_deadline(watchdog, other, 300ms);
  // The first cancel blocks the cancel thread for good; both calls still end
  // on time, dropped by the timer thread.
  BOOST_REQUIRE(stuck->run(5000ms));
  BOOST_REQUIRE(other->run(5000ms));
  auto took = since(started);
  BOOST_TEST((stuck_deadline.finish() == call_outcome::dropped));
  BOOST_TEST((other_deadline.finish() == call_outcome::dropped));
  BOOST_TEST(took < 300ms + statement_deadline::grace(300ms) + lateness);
  BOOST_TEST(other->cancels == 0);  // its cancel waited behind the stuck one
}

BOOST_AUTO_TEST_CASE(a_call_that_ends_while_its_cancel_is_under_way_waits_for_it) {
  statement_watchdog watchdog;
  // A cancel that takes a while; the call gets its own answer meanwhile.
  auto call = std::make_shared<made_up_call>(on_cancel::never_returns);
  struct unblock_at_exit {
    made_up_call& call;
    ~unblock_at_exit() { call.unblock(); }
  } unblock{*call};
  statement_deadline deadline(watchdog, call, 600ms);  // dropped 250 ms past it
  auto sent = steady::now() + 5000ms;
  while (call->cancels == 0 && steady::now() < sent) std::this_thread::sleep_for(1ms);
  BOOST_REQUIRE(call->cancels == 1);
  std::thread server([&] {
    std::this_thread::sleep_for(10ms);
    call->unblock();
  });
  auto outcome = deadline.finish();
  // Not before the cancel returned: it cannot reach a later statement.
  BOOST_TEST(call->cancels_returned == 1);
  server.join();
  BOOST_TEST((outcome == call_outcome::cancelled));
  BOOST_TEST(call->drops == 0);
}

BOOST_AUTO_TEST_CASE(a_nearer_deadline_armed_later_is_kept) {
  statement_watchdog watchdog;
  auto slow = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  auto hung = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  statement_deadline slow_deadline(watchdog, slow, 10000ms);  // the timer sleeps towards this
  auto started = steady::now();
  statement_deadline hung_deadline(watchdog, hung, 100ms);
  BOOST_REQUIRE(hung->run(5000ms));
  BOOST_TEST(since(started) < 100ms + lateness);
  BOOST_TEST((hung_deadline.finish() == call_outcome::cancelled));
  BOOST_TEST((slow_deadline.finish() == call_outcome::finished));
  BOOST_TEST(slow->cancels == 0);
}

BOOST_AUTO_TEST_CASE(calls_one_after_another_are_each_watched) {
  // The timer is woken by the first call only; later ones it finds on its ticks.
  statement_watchdog watchdog;
  for (int i = 0; i < 20; ++i) {
    auto quick = std::make_shared<made_up_call>(on_cancel::ends_the_call);
    statement_deadline deadline(watchdog, quick, 100ms);
    std::this_thread::sleep_for(5ms);
    BOOST_TEST((deadline.finish() == call_outcome::finished));
  }
  auto hung = std::make_shared<made_up_call>(on_cancel::ends_the_call);
  auto started = steady::now();
  statement_deadline deadline(watchdog, hung, 100ms);
  BOOST_REQUIRE(hung->run(5000ms));
  BOOST_TEST(since(started) < 100ms + lateness);
  BOOST_TEST((deadline.finish() == call_outcome::cancelled));
}

// --- PostgreSQL that hangs ----------------------------------------------------------------

namespace {

/// database.timeout_ms of these tests.
constexpr auto limit = 500ms;
/// When the server ends a lock (or a stopped process runs again) by itself:
/// a statement nobody interrupts returns then, and the test fails instead of
/// hanging.
constexpr auto lock_at_most = std::chrono::seconds(10);

/// A migrated store on a fresh database whose calls are bounded by `limit`.
struct bounded_store {
  bounded_store() : scratch(dir.path()) {
    factory = make_store_factory(parse_database_url(scratch.url()));
    db = factory();
    db->migrate();
    db->set_call_timeout(limit);
  }
  testing::temp_dir dir;
  testing::scratch_database scratch;
  store_factory factory;
  std::unique_ptr<store> db;
};

conversation_record conversation(const std::string& id) { return testing::sample_conversation(id); }

message_record message(const std::string& conv, std::int64_t seq) {
  return testing::sample_message(conv, seq);
}

void commit(store& db, write_set set) { db.commit({&set}); }

/// The store_error `fn` throws, if any.
template <class Fn>
std::optional<store_error> failure_of(Fn fn) {
  try {
    fn();
    return std::nullopt;
  } catch (const store_error& e) {
    return e;
  }
}

bool says(const store_error& e, const std::string& what) {
  return std::string(e.what()).find(what) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_write_held_up_by_a_lock_fails_at_its_deadline_and_the_store_goes_on,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  bounded_store s;
  commit(*s.db, {write::insert_conversation{conversation("c1")}});
  {
    testing::postgresql_table_lock lock(s.scratch.url(), "messages", lock_at_most);
    auto started = steady::now();
    auto failed = failure_of([&] {
      commit(*s.db,
             {write::insert_message{message("c1", 1)}, write::insert_message{message("c1", 2)}});
    });
    auto took = since(started);
    // Without the watchdog the write waits for the lock and then commits.
    BOOST_REQUIRE_MESSAGE(failed.has_value(),
                          "the write was not cancelled (it took " << took.count() << " ms)");
    BOOST_TEST((failed->code == errc::db_unavailable));      // not a conflict: no retry set by set
    BOOST_TEST(says(*failed, "cancelled"), failed->what());  // the server acted on the cancel
    BOOST_TEST(took >= limit);
    BOOST_TEST(took < limit + lateness);
  }
  // The same store, on the same connection: nothing of the cancelled batch
  // was committed, and the next batch goes through.
  commit(*s.db, {write::insert_message{message("c1", 1)}});
  auto stored = s.db->list_messages("c1", 0, std::nullopt, 10);
  BOOST_REQUIRE(stored.size() == 1u);
  BOOST_TEST(stored[0].seq == 1);
}

BOOST_AUTO_TEST_CASE(a_read_held_up_by_a_lock_fails_at_its_deadline_and_the_store_goes_on,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  bounded_store s;
  commit(*s.db,
         {write::insert_conversation{conversation("c1")}, write::insert_message{message("c1", 1)}});
  auto reader = s.factory();
  reader->set_call_timeout(limit);
  {
    // ACCESS EXCLUSIVE holds up even a SELECT.
    testing::postgresql_table_lock lock(s.scratch.url(), "messages", lock_at_most);
    auto started = steady::now();
    auto failed = failure_of([&] { reader->list_messages("c1", 0, std::nullopt, 10); });
    auto took = since(started);
    BOOST_REQUIRE_MESSAGE(failed.has_value(),
                          "the read was not cancelled (it took " << took.count() << " ms)");
    BOOST_TEST((failed->code == errc::db_unavailable));
    BOOST_TEST(took >= limit);
    BOOST_TEST(took < limit + lateness);
    // What the lock does not touch still reads.
    BOOST_TEST(reader->find_conversation("c1").has_value());
  }
  BOOST_TEST(reader->list_messages("c1", 0, std::nullopt, 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_call_on_a_stopped_server_process_drops_the_connection_and_reconnects,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  bounded_store s;
  commit(*s.db, {write::insert_conversation{conversation("c1")}});
  std::optional<testing::postgresql_backend_pause> pause;
  try {
    // The store's connection is the only one named "parley" on this database.
    pause.emplace(s.scratch.url(), "parley", lock_at_most);
  } catch (const std::exception& e) {
    BOOST_TEST_MESSAGE("not run (the server is not ours to signal): " << e.what());
    return;
  }
  BOOST_REQUIRE(pause->stopped() == 1u);
  auto started = steady::now();
  auto failed = failure_of([&] { commit(*s.db, {write::insert_message{message("c1", 1)}}); });
  auto took = since(started);
  BOOST_REQUIRE_MESSAGE(failed.has_value(), "the write returned with its server process stopped");
  BOOST_TEST((failed->code == errc::db_unavailable));
  // The cancel reached the stopped process, which could not act on it.
  BOOST_TEST(says(*failed, "dropped"), failed->what());
  BOOST_TEST(took >= limit + statement_deadline::grace(limit));
  BOOST_TEST(took < limit + statement_deadline::grace(limit) + lateness);
  // The old server process is still stopped: the next call opens a new
  // connection by itself. (What the stopped process does with the batch when
  // it runs again is not for us to know; it was answered as not stored.)
  commit(*s.db, {write::insert_conversation{conversation("c2")}});
  BOOST_TEST(s.db->find_conversation("c2").has_value());
}

namespace {

/// Sends `args` to `target` from an actor of its own. The future gets
/// errc::none for an answer of type Reply, else the failure's code; CAF's own
/// timeout (30 s, never reached here) would be internal, so an answer that
/// comes is the actor's own.
template <class Reply, class... Ts>
std::future<errc> ask(caf::actor_system& sys, const caf::actor& target, Ts... args) {
  auto answered = std::make_shared<std::promise<errc>>();
  auto answer = answered->get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(target, std::chrono::seconds(30), args...)
        .then([=](const Reply&) { answered->set_value(errc::none); },
              [=](caf::error& e) { answered->set_value(to_failure(e, errc::internal).code); });
  });
  return answer;
}

std::future<errc> send_write(caf::actor_system& sys, const persistence_actors& db, write_set set) {
  return ask<ok_atom>(sys, db.writer, write_atom::value, std::move(set));
}

/// Reads the messages of `conv` on the reader pool; answers how many.
std::future<errc> read_messages(caf::actor_system& sys, const persistence_actors& db,
                                const std::string& conv) {
  read_job job = [conv](store& s) {
    return caf::make_message(s.list_messages(conv, 0, std::nullopt, 100).size());
  };
  return ask<std::size_t>(sys, db.readers, read_atom::value, std::move(job));
}

/// The answer, if it comes within `within`.
std::optional<errc> answer_within(std::future<errc>& f, std::chrono::milliseconds within) {
  if (f.wait_for(within) != std::future_status::ready) return std::nullopt;
  return f.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_writer_fails_a_hung_batch_at_the_deadline_and_stays_free,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  testing::temp_dir dir;
  testing::scratch_database scratch(dir.path());
  auto factory = make_store_factory(parse_database_url(scratch.url()));
  database_settings cfg;
  cfg.timeout_ms = static_cast<unsigned>(limit.count());
  cfg.batch_delay_ms = 50;  // both writes below land in one batch
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto db = spawn_persistence(sys, cfg, factory);
  // However the test ends: the actor system waits for the actors.
  struct stop_at_exit {
    persistence_actors& db;
    ~stop_at_exit() {
      caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
    }
  } stop{db};
  auto ok = std::optional<errc>(errc::none);
  auto created = send_write(sys, db, {write::insert_conversation{conversation("c1")}});
  BOOST_REQUIRE((answer_within(created, 5000ms) == ok));
  {
    testing::postgresql_table_lock lock(scratch.url(), "messages", lock_at_most);
    auto started = steady::now();
    auto first = send_write(sys, db, {write::insert_message{message("c1", 1)}});
    auto second = send_write(sys, db, {write::insert_message{message("c1", 2)}});
    auto bound = std::chrono::milliseconds(cfg.batch_delay_ms) + limit + lateness;
    // Every write of the hung batch is answered with the failure, by the writer.
    BOOST_TEST((answer_within(first, bound) == std::optional<errc>(errc::db_unavailable)));
    BOOST_TEST((answer_within(second, bound) == std::optional<errc>(errc::db_unavailable)));
    BOOST_TEST(since(started) < bound);
    // The database still hangs on messages, but the writer is free: a write
    // that does not touch them commits.
    auto other = send_write(sys, db, {write::insert_conversation{conversation("c2")}});
    BOOST_TEST((answer_within(other, 5000ms) == ok));
    // A reader held up the same way answers with the failure too.
    auto read = read_messages(sys, db, "c1");
    BOOST_TEST(
        (answer_within(read, limit + lateness) == std::optional<errc>(errc::db_unavailable)));
  }
  // The lock is gone: the same writer and readers go on, and nothing of the
  // failed batch was committed behind its requesters' backs.
  auto again = send_write(sys, db, {write::insert_message{message("c1", 1)}});
  BOOST_TEST((answer_within(again, 5000ms) == ok));
  auto read = read_messages(sys, db, "c1");
  BOOST_TEST((answer_within(read, 5000ms) == ok));
  auto checker = factory();
  auto stored = checker->list_messages("c1", 0, std::nullopt, 10);
  BOOST_REQUIRE(stored.size() == 1u);
  BOOST_TEST(stored[0].id == message("c1", 1).id);
  BOOST_TEST(checker->find_conversation("c2").has_value());
}
