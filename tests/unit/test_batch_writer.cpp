#define BOOST_TEST_MODULE batch_writer
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"
#include "persistence/caf_errors.hpp"
#include "persistence/commit_positions.hpp"
#include "persistence/messages.hpp"
#include "persistence/persistence_actors.hpp"
#include "support/forwarding_store.hpp"
#include "support/sample_records.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

using namespace parley;

namespace {

/// Counts batches by wrapping the real store.
class counting_store final : public testing::forwarding_store {
 public:
  counting_store(std::unique_ptr<store> inner, std::atomic<int>& batches)
      : forwarding_store(std::move(inner)), batches_(batches) {}
  wal_position commit(const std::vector<const write_set*>& sets) override {
    ++batches_;
    return forwarding_store::commit(sets);
  }

 private:
  std::atomic<int>& batches_;
};

/// Commits through the real store, then reports what the test says: the
/// position it sets, or a failure after the commit (a connection that broke
/// before the answer came).
class scripted_position_store final : public testing::forwarding_store {
 public:
  scripted_position_store(std::unique_ptr<store> inner, const std::atomic<wal_position>& position,
                          const std::atomic<bool>& fail_after_commit)
      : forwarding_store(std::move(inner)),
        position_(position),
        fail_after_commit_(fail_after_commit) {}
  wal_position commit(const std::vector<const write_set*>& sets) override {
    forwarding_store::commit(sets);
    if (fail_after_commit_) throw store_error(errc::db_unavailable, "the answer was lost");
    return position_;
  }

 private:
  const std::atomic<wal_position>& position_;
  const std::atomic<bool>& fail_after_commit_;
};

struct writer_fixture {
  writer_fixture() : scratch(dir.path()) {
    auto real = make_store_factory(parse_database_url(scratch.url()));
    factory = [real, this]() -> std::unique_ptr<store> {
      return std::make_unique<counting_store>(real(), batches);
    };
    checker = real();
    cfg.batch_max_requests = 64;
    cfg.batch_delay_ms = 5;
  }

  testing::temp_dir dir;
  testing::scratch_database scratch;
  std::atomic<int> batches{0};
  store_factory factory;
  std::unique_ptr<store> checker;
  database_settings cfg;
};

conversation_record conversation(const std::string& id) { return testing::sample_conversation(id); }

message_record message(const std::string& conv, std::int64_t seq) {
  return testing::sample_message(conv, seq);
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(many_concurrent_writers_each_answered_after_commit, writer_fixture) {
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto db = spawn_persistence(sys, cfg, factory);
  constexpr int writers = 40, per_writer = 25;
  std::atomic<int> answered{0}, visible_when_answered{0};
  std::mutex check_mutex;
  // Each writer is one conversation that writes its messages strictly in order,
  // like a conversation actor: the next write only after the previous commit.
  for (int w = 0; w < writers; ++w) {
    sys.spawn([&, w, db](caf::event_based_actor* self) {
      auto conv = "c" + std::to_string(w);
      auto step = std::make_shared<std::function<void(int)>>();
      *step = [&, self, conv, step, db](int seq) {
        write_set set;
        if (seq == 1) set.push_back(write::insert_conversation{conversation(conv)});
        set.push_back(write::insert_message{message(conv, seq)});
        self->request(db.writer, std::chrono::seconds(30), write_atom::value, std::move(set))
            .then([&, conv, seq, step](ok_atom) {
              {
                // Answered means committed: a separate connection sees it now.
                std::lock_guard<std::mutex> g(check_mutex);
                if (checker->find_message(conv, message(conv, seq).id)) ++visible_when_answered;
              }
              ++answered;  // only now: the test's thread uses `checker` once all are in
              if (seq < per_writer)
                (*step)(seq + 1);
              else
                *step = nullptr;  // the closure refers to itself: break the cycle
            });
      };
      (*step)(1);
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (answered < writers * per_writer && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  BOOST_TEST(answered.load() == writers * per_writer);
  BOOST_TEST(visible_when_answered.load() == writers * per_writer);
  // Group commit: far fewer transactions than writes.
  BOOST_TEST(batches.load() < writers * per_writer / 4);
  BOOST_TEST_MESSAGE("batches: " << batches.load() << " for " << writers * per_writer << " writes");
  for (int w = 0; w < writers; ++w) {
    auto rows = checker->list_messages("c" + std::to_string(w), 0, std::nullopt, 1000);
    BOOST_REQUIRE(rows.size() == static_cast<std::size_t>(per_writer));
    for (int i = 0; i < per_writer; ++i) BOOST_TEST(rows[i].seq == i + 1);
  }
  caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
}

namespace {

/// What the writer answered to write sets sent at the same moment.
struct outcomes {
  int ok = 0, conflicts = 0, other = 0;
};

/// Sends each of `sets` from its own actor at once (with a batch delay they
/// land in one batch) and waits for every answer.
outcomes send_together(caf::actor_system& sys, const caf::actor& writer,
                       const std::vector<write_set>& sets) {
  std::atomic<int> ok{0}, conflicts{0}, other{0};
  for (auto& set : sets)
    sys.spawn([&, set, writer](caf::event_based_actor* s) {
      s->request(writer, std::chrono::seconds(10), write_atom::value, set)
          .then([&](ok_atom) { ++ok; },
                [&](caf::error& e) {
                  if (to_failure(e, errc::db_unavailable).code == errc::conflict)
                    ++conflicts;
                  else
                    ++other;
                });
    });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ok + conflicts + other < static_cast<int>(sets.size()) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return {ok, conflicts, other};
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(one_bad_request_fails_alone, writer_fixture) {
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  cfg.batch_delay_ms = 50;  // so that all three land in one batch
  auto db = spawn_persistence(sys, cfg, factory);
  caf::scoped_actor self{sys};
  self->request(db.writer, std::chrono::seconds(10), write_atom::value,
                write_set{write::insert_conversation{conversation("c")},
                          write::insert_message{message("c", 1)}})
      .receive([](ok_atom) {}, [](caf::error& e) { BOOST_FAIL("setup write failed"); });
  auto duplicate = message("c", 1);
  duplicate.id = "other";
  auto refused = message("c", 4);
  refused.content = std::string("a\0b", 3);  // PostgreSQL's text cannot hold U+0000
  auto answers = send_together(sys, db.writer,
                               {{write::insert_message{message("c", 2)}},
                                {write::insert_message{duplicate}},
                                {write::insert_message{refused}},
                                {write::insert_message{message("c", 3)}}});
  BOOST_TEST(answers.conflicts == 1);
  // SQLite stores the value as it is; PostgreSQL refuses it, and only it.
  int refusals = testing::testing_postgresql() ? 1 : 0;
  BOOST_TEST(answers.other == refusals);
  BOOST_TEST(answers.ok == 3 - refusals);
  BOOST_TEST(checker->list_messages("c", 0, std::nullopt, 10).size() == 4u - refusals);
  caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(a_full_batch_commits_at_once_and_answers_every_write, writer_fixture) {
  cfg.batch_delay_ms = 60000;  // only a full batch flushes
  cfg.batch_max_requests = 4;
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto db = spawn_persistence(sys, cfg, factory);
  caf::scoped_actor self{sys};
  constexpr int writes = 8;  // two full batches
  for (int i = 0; i < writes; ++i)
    self->send(db.writer, write_atom::value,
               write_set{write::insert_conversation{conversation("full-" + std::to_string(i))}});
  int answered = 0;
  self->receive_for(answered, writes)(
      [](ok_atom) {}, [](caf::error&) { BOOST_FAIL("a write of a full batch failed"); },
      caf::after(std::chrono::seconds(10)) >> [] { BOOST_FAIL("a full batch was not answered"); });
  BOOST_TEST(answered == writes);
  BOOST_TEST(batches.load() == 2);
  BOOST_TEST(checker->find_conversation("full-7").has_value());
  caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(shutdown_commits_what_is_pending, writer_fixture) {
  cfg.batch_delay_ms = 60000;  // nothing would flush on its own for a minute
  cfg.batch_max_requests = 1000;
  {
    caf::actor_system_config sys_cfg;
    caf::actor_system sys{sys_cfg};
    auto db = spawn_persistence(sys, cfg, factory);
    caf::anon_send(db.writer, write_atom::value,
                   write_set{write::insert_conversation{conversation("pending")}});
    caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
  }
  BOOST_TEST(checker->find_conversation("pending").has_value());
}

BOOST_FIXTURE_TEST_CASE(reads_run_on_the_pool, writer_fixture) {
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto db = spawn_persistence(sys, cfg, factory);
  caf::scoped_actor self{sys};
  read_job job = [](store& s) {
    return caf::make_message(s.find_conversation("none").has_value());
  };
  self->request(db.readers, std::chrono::seconds(10), read_atom::value, job)
      .receive([](bool found) { BOOST_TEST(!found); },
               [](caf::error&) { BOOST_FAIL("read failed"); });
  read_job failing = [](store&) -> caf::message {
    throw store_error(errc::db_unavailable, "gone");
  };
  self->request(db.readers, std::chrono::seconds(10), read_atom::value, failing)
      .receive([](bool) { BOOST_FAIL("expected an error"); },
               [](caf::error& e) {
                 BOOST_TEST((to_failure(e, errc::internal).code == errc::db_unavailable));
               });
  caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
}

BOOST_FIXTURE_TEST_CASE(with_a_replica_each_users_commit_position_is_noted_before_the_answer,
                        writer_fixture) {
  std::atomic<wal_position> position{0};
  std::atomic<bool> fail_after_commit{false};
  auto real = make_store_factory(parse_database_url(scratch.url()));
  // Any database does as the replica here: only the writer's bookkeeping is looked at.
  cfg.read_url = parse_database_url(scratch.url());
  cfg.batch_delay_ms = 50;  // so that writes sent together share a batch
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto db = spawn_persistence(sys, cfg, [&]() -> std::unique_ptr<store> {
    return std::make_unique<scripted_position_store>(real(), position, fail_after_commit);
  });
  BOOST_REQUIRE(db.positions);
  db.positions->listening(0);
  auto write = [&](const std::string& user, const std::string& id) {
    caf::scoped_actor self{sys};
    bool ok = false;
    self->request(db.writer, std::chrono::seconds(10), write_atom::value,
                  write_set{write::insert_conversation{testing::sample_conversation(id, user)}})
        .receive([&](ok_atom) { ok = true; }, [](caf::error&) {});
    return ok;
  };
  position = 100;
  BOOST_REQUIRE(write("alice", "w1"));
  BOOST_TEST(db.positions->needed_by("alice") == 100u);
  BOOST_TEST(db.positions->needed_by("bob") == 0u);
  // A batch whose position could not be read: no one reads the replica
  // until the next batch's is known.
  position = 0;
  BOOST_REQUIRE(write("alice", "w2"));
  BOOST_TEST(db.positions->needed_by("bob") == commit_positions::nobody_yet);
  position = 200;
  BOOST_REQUIRE(write("bob", "w3"));
  BOOST_TEST(db.positions->needed_by("carol") == 200u);
  // A batch that failed but may have committed: the same.
  fail_after_commit = true;
  BOOST_TEST(!write("alice", "w4"));
  BOOST_TEST(db.positions->needed_by("carol") == commit_positions::nobody_yet);
  fail_after_commit = false;
  position = 300;
  BOOST_REQUIRE(write("carol", "w5"));
  BOOST_TEST(db.positions->needed_by("alice") == 300u);
  // A batch one set of which conflicts is committed set by set: each
  // committed set's user is noted.
  position = 400;
  auto answers =
      send_together(sys, db.writer,
                    {{write::insert_conversation{testing::sample_conversation("w6", "dave")}},
                     {write::insert_conversation{testing::sample_conversation("w1", "erin")}}});
  BOOST_TEST(answers.ok == 1);
  BOOST_TEST(answers.conflicts == 1);
  BOOST_TEST(db.positions->needed_by("dave") == 400u);
  BOOST_TEST(db.positions->needed_by("erin") == 300u);
  caf::anon_send_exit(db.replica_readers, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(db.readers, caf::exit_reason::user_shutdown);
}
