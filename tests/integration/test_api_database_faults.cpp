#define BOOST_TEST_MODULE api_database_faults
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/prometheus_text.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

std::string messages_path(const std::string& id) { return "/v1/conversations/" + id + "/messages"; }

/// Asserts that the stored seqs are exactly 1..expected.
void expect_seqs_one_to(const std::vector<json>& stored, std::size_t expected) {
  BOOST_TEST(stored.size() == expected);
  for (std::size_t i = 0; i < stored.size(); ++i)
    BOOST_TEST(stored[i]["seq"].get<std::size_t>() == i + 1);
}

}  // namespace

// --- several Parley processes on one database ----------------------------------------

BOOST_AUTO_TEST_CASE(a_conversation_changed_by_another_process_is_reloaded_not_forked) {
  server_process a;
  server_process b({.database_url = a.database_url()});
  http_client on_a(a.base_url(), "shared"), on_b(b.base_url(), "shared");
  // A's actor now holds the conversation (seqs 1, 2) in memory.
  auto id = create_conversation(on_a, {{"message", "one"}});
  BOOST_REQUIRE_EQUAL(on_b.post(messages_path(id), {{"content", "two"}}).status, 201);  // 3, 4
  // A's copy is stale: its write is refused, it reloads and runs the send again.
  auto r = on_a.post(messages_path(id), {{"content", "three"}});
  BOOST_REQUIRE_EQUAL(r.status, 201);
  BOOST_TEST(r.json()["message"]["seq"] == 5);
  BOOST_TEST(r.json()["reply"]["seq"] == 6);
  BOOST_TEST(r.json()["reply"]["content"] == "Echo: three");
  // B's copy is stale now: a rename there must not roll A's counters back.
  auto renamed = on_b.patch("/v1/conversations/" + id, {{"title", "renamed on B"}});
  BOOST_REQUIRE_EQUAL(renamed.status, 200);
  BOOST_TEST(renamed.json()["message_count"] == 6);
  for (auto* c : {&on_a, &on_b}) {
    auto got = c->get("/v1/conversations/" + id).json();
    BOOST_TEST(got["title"] == "renamed on B");
    BOOST_TEST(got["message_count"] == 6);
    expect_seqs_one_to(all_messages(*c, id), 6);
  }
  // A deletion on one process is seen by the other, which does not resurrect it.
  BOOST_REQUIRE_EQUAL(on_b.del("/v1/conversations/" + id).status, 204);
  BOOST_TEST(on_a.post(messages_path(id), {{"content", "late"}}).status == 404);
  BOOST_TEST(on_a.get("/v1/conversations/" + id).status == 404);
}

BOOST_AUTO_TEST_CASE(two_processes_sending_at_once_keep_one_gapless_history) {
  server_process a;
  server_process b({.database_url = a.database_url()});
  std::string id;
  {
    http_client c(a.base_url(), "racer");
    id = create_conversation(c);
  }
  constexpr int per_server = 15;
  std::mutex seen_mutex;
  std::set<std::string> acknowledged;  // ids of stored messages the servers reported
  std::atomic<int> conflicts{0}, other{0};
  auto sender = [&](const server_process* s, const std::string& tag) {
    http_client c(s->base_url(), "racer");
    for (int i = 0; i < per_server; ++i) {
      auto r = c.post(messages_path(id), {{"content", tag + std::to_string(i)}});
      if (r.status == 201) {
        std::lock_guard<std::mutex> lock(seen_mutex);
        acknowledged.insert(r.json()["message"]["id"].get<std::string>());
        acknowledged.insert(r.json()["reply"]["id"].get<std::string>());
      } else if (r.status == 409) {
        ++conflicts;  // retries exhausted: allowed, but nothing of it may be stored
      } else {
        ++other;
      }
    }
  };
  std::thread on_a(sender, &a, "a"), on_b(sender, &b, "b");
  on_a.join();
  on_b.join();
  BOOST_TEST(other.load() == 0);
  BOOST_TEST(conflicts.load() < per_server);  // retried conflicts mostly succeed
  http_client c(b.base_url(), "racer");
  auto stored = all_messages(c, id);
  expect_seqs_one_to(stored, acknowledged.size());
  for (auto& m : stored) BOOST_TEST(acknowledged.count(m["id"].get<std::string>()) == 1u);
  // Every user message is followed by the echo of itself: no reply was built
  // on a history it did not see.
  for (std::size_t i = 0; i + 1 < stored.size(); i += 2) {
    BOOST_TEST(stored[i]["role"] == "user");
    BOOST_TEST(stored[i + 1]["content"] == "Echo: " + stored[i]["content"].get<std::string>());
  }
  BOOST_TEST(c.get("/v1/conversations/" + id).json()["message_count"] == stored.size());
}

// --- the database failing ------------------------------------------------------------------

// The PostgreSQL run stops its server instead, below.
BOOST_AUTO_TEST_CASE(a_locked_sqlite_database_answers_503_then_recovers,
                     *boost::unit_test::precondition(only_on_sqlite)) {
  server_process server;
  http_client c(server.base_url(), "locked");
  auto id = create_conversation(c, {{"message", "before"}});
  auto db = server.database_url().substr(std::string("sqlite://").size());
  // Another process holds the write lock for 3 s.
  sqlite_write_lock locker(db, std::chrono::seconds(3));
  auto started = steady::now();
  auto r = c.post(messages_path(id), {{"content", "during"}});
  auto waited = steady::now() - started;
  BOOST_TEST(locker.released());
  BOOST_TEST(r.status == 503);
  BOOST_TEST(!r.header("retry-after").empty());
  BOOST_TEST(r.header("content-type") == "application/problem+json");
  BOOST_TEST((waited < std::chrono::seconds(2)));
  // Once the lock is gone the conversation goes on with consistent seqs.
  auto after = c.post(messages_path(id), {{"content", "after"}});
  BOOST_REQUIRE_EQUAL(after.status, 201);
  auto stored = all_messages(c, id);
  expect_seqs_one_to(stored, stored.size());
  BOOST_TEST(stored.back()["content"] == "Echo: after");
}

// The SQLite run locks its file instead, above.
BOOST_AUTO_TEST_CASE(a_hung_postgresql_statement_is_cancelled_at_the_deadline,
                     *boost::unit_test::precondition(only_on_postgresql)) {
  constexpr auto timeout = std::chrono::milliseconds(1000);  // database.timeout_ms
  server_process server({.config_toml = "[database]\ntimeout_ms = 1000\n"});
  http_client c(server.base_url(), "hung");
  auto id = create_conversation(c, {{"message", "before"}});
  {
    // Every statement on messages waits now, while the server answers the
    // rest: a database that hangs, not one that is down. The server ends
    // the lock itself after 15 s, so a statement nobody cancels commits then.
    postgresql_table_lock lock(server.database_url(), "messages", std::chrono::seconds(15));
    auto started = steady::now();
    auto r = c.post(messages_path(id), {{"content", "during"}});
    auto waited = steady::now() - started;
    expect_problem(r, 503);
    BOOST_TEST(!r.header("retry-after").empty());
    BOOST_TEST((waited < timeout + std::chrono::seconds(1)));
    // The statement was cancelled, so the writer is free again while the
    // database still hangs on messages: a write that does not touch them
    // goes through (without the cancel it would queue behind the hung one).
    started = steady::now();
    auto other = c.post("/v1/conversations", json::object());
    BOOST_TEST(other.status == 201);
    BOOST_TEST((steady::now() - started < timeout + std::chrono::seconds(1)));
  }
  // Once the lock is gone the conversation goes on, and nothing of the
  // cancelled send was committed behind the 503.
  auto after = c.post(messages_path(id), {{"content", "after"}});
  BOOST_REQUIRE_EQUAL(after.status, 201);
  auto stored = all_messages(c, id);
  expect_seqs_one_to(stored, 4);
  for (auto& m : stored)
    BOOST_TEST(m["content"].get<std::string>().find("during") == std::string::npos);
  BOOST_TEST(stored.back()["content"] == "Echo: after");
}

BOOST_AUTO_TEST_CASE(a_full_sqlite_disk_answers_503_and_keeps_what_it_acknowledged,
                     *boost::unit_test::precondition(only_on_sqlite)) {
  server_process server({.max_file_bytes = 3 * 1024 * 1024});
  http_client c(server.base_url(), "full");
  auto id = create_conversation(c);
  std::string big(30000, 'x');
  std::vector<std::string> acknowledged;
  http_response r;
  for (int i = 0; i < 400; ++i) {
    r = c.post(messages_path(id), {{"content", big}});
    if (r.status != 201) break;
    acknowledged.push_back(r.json()["message"]["id"].get<std::string>());
  }
  BOOST_REQUIRE(!acknowledged.empty());
  BOOST_TEST(r.status == 503);  // the disk filled up before 400 sends
  BOOST_TEST(!r.header("retry-after").empty());
  BOOST_TEST(r.header("content-type") == "application/problem+json");
  // Still running, still reading; everything acknowledged is there.
  BOOST_TEST(c.get("/health").status == 200);
  // What an operator sees of it.
  auto metrics = prometheus_scrape::parse(c.get("/metrics").body);
  BOOST_TEST(metrics.value("parley_persistence_failed_batches_total").value_or(0) >= 1);
  BOOST_TEST(eventually([&] {
    return prometheus_scrape::parse(c.get("/metrics").body)
               .value("parley_http_requests_total",
                      {{"route", "/v1/conversations/:id/messages"}, {"status", "503"}})
               .value_or(0) >= 1;
  }));
  auto stored = all_messages(c, id);
  std::set<std::string> stored_ids;
  for (auto& m : stored) stored_ids.insert(m["id"].get<std::string>());
  for (auto& m : acknowledged) BOOST_TEST(stored_ids.count(m) == 1u);
  expect_seqs_one_to(stored, stored.size());
}

// The SQLite run locks its file instead, above.
BOOST_AUTO_TEST_CASE(stopping_postgresql_under_load_loses_nothing_acknowledged,
                     *boost::unit_test::precondition(only_on_postgresql)) {
  server_process server;
  constexpr int senders = 8;
  std::vector<std::string> ids;
  {
    http_client c(server.base_url(), "load");
    for (int i = 0; i < senders; ++i) ids.push_back(create_conversation(c));
  }
  std::atomic<bool> running{true};
  std::atomic<int> ok{0}, unavailable{0}, without_retry_after{0}, other{0};
  std::atomic<long> slowest_ms{0};
  std::mutex acked_mutex;
  std::vector<std::set<std::string>> acked(senders);
  std::vector<std::thread> threads;
  for (int t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      http_client c(server.base_url(), "load");
      for (int i = 0; running; ++i) {
        auto started = steady::now();
        http_response r;
        try {
          r = c.post(messages_path(ids[t]), {{"content", "m" + std::to_string(i)}});
        } catch (const std::exception& e) {  // the server went away: fail, don't abort
          ++other;
          BOOST_TEST_MESSAGE(e.what());
          return;
        }
        long ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
        for (long seen = slowest_ms; ms > seen && !slowest_ms.compare_exchange_weak(seen, ms);) {
        }
        if (r.status == 201) {
          ++ok;
          std::lock_guard<std::mutex> lock(acked_mutex);
          acked[t].insert(r.json()["message"]["id"].get<std::string>());
          acked[t].insert(r.json()["reply"]["id"].get<std::string>());
        } else if (r.status == 503) {
          ++unavailable;
          if (r.header("retry-after").empty()) ++without_retry_after;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        } else {
          ++other;
        }
      }
    });
  http_client probe(server.base_url());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  int before_stop = ok;
  BOOST_REQUIRE(control_postgresql("stop"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto ready_started = steady::now();
  auto ready = probe.get("/ready");
  BOOST_TEST(ready.status == 503);
  BOOST_TEST((steady::now() - ready_started < std::chrono::seconds(2)));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  int while_down = ok;
  BOOST_REQUIRE(control_postgresql("start"));
  // The engine reconnects by itself.
  auto deadline = steady::now() + std::chrono::seconds(15);
  while (probe.get("/ready").status != 200 && steady::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  BOOST_TEST(probe.get("/ready").status == 200);
  int back = ok;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  running = false;
  for (auto& t : threads) t.join();

  BOOST_TEST(before_stop > 0);
  BOOST_TEST(unavailable.load() > 0);
  BOOST_TEST(without_retry_after.load() == 0);
  BOOST_TEST(other.load() == 0);
  BOOST_TEST(ok.load() > back);          // sends succeed again after the restart
  BOOST_TEST(slowest_ms.load() < 2000);  // no request hung past the deadline
  BOOST_TEST_MESSAGE("201 before stop " << before_stop << ", by restart " << while_down
                                        << ", total " << ok << "; 503: " << unavailable
                                        << "; slowest " << slowest_ms << " ms");
  http_client c(server.base_url(), "load");
  for (int t = 0; t < senders; ++t) {
    auto stored = all_messages(c, ids[t]);
    std::set<std::string> stored_ids;
    for (auto& m : stored) stored_ids.insert(m["id"].get<std::string>());
    for (auto& id : acked[t]) BOOST_TEST(stored_ids.count(id) == 1u, "acknowledged " << id);
    for (std::size_t i = 0; i < stored.size(); ++i)
      BOOST_TEST(stored[i]["seq"].get<std::size_t>() >
                 (i ? stored[i - 1]["seq"].get<std::size_t>() : 0));
  }
}
