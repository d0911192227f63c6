#define BOOST_TEST_MODULE api_replica
#include <boost/test/unit_test.hpp>

// A read replica (database.read_url): a real streaming standby of the test
// cluster. Lists, history, search and usage are read there once it has
// replayed the user's acknowledged writes; a user whose writes it has not
// replayed yet reads them from the primary, and a replica that is down costs
// the primary the reads, not the clients their answers.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/prometheus_text.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <optional>
#include <set>
#include <string>

using namespace parley::testing;
using nlohmann::json;
namespace utf = boost::unit_test;

namespace {

/// parley_replica_reads_total{outcome} as the server counts it now.
double replica_reads(const server_process& s, const std::string& outcome) {
  http_client c(s.base_url());
  return prometheus_scrape::parse(c.get("/metrics").body)
      .value("parley_replica_reads_total", {{"outcome", outcome}})
      .value_or(0);
}

/// A server on the test cluster reading from its replica.
struct replicated_server {
  replicated_server()
      : primary(temp.path()),
        replica_url(on_replica(primary.url())),
        server({.database_url = primary.url(),
                .config_toml = "[database]\nread_url = \"" + replica_url + "\"\n"}) {}
  temp_dir temp;
  scratch_database primary;
  std::string replica_url;
  server_process server;
};

/// Replay on the replica stays paused while this lives (other tests share it).
struct paused_replay {
  explicit paused_replay(std::string url) : url_(std::move(url)) {
    query_postgresql(url_, "SELECT pg_wal_replay_pause()");
  }
  ~paused_replay() {
    try {
      query_postgresql(url_, "SELECT pg_wal_replay_resume()");
    } catch (const std::runtime_error& e) {
      // on_replica() resumes it before the next test uses it.
      BOOST_TEST_MESSAGE("replay not resumed: " << e.what());
    }
  }
  std::string url_;
};

/// The replica is down while this lives.
struct stopped_replica {
  stopped_replica() { BOOST_REQUIRE(control_postgresql("replica-stop")); }
  ~stopped_replica() { control_postgresql("replica-start"); }
};

/// The replica hangs (its processes stopped, as on a lost host) while this lives.
struct hung_replica {
  hung_replica() { BOOST_REQUIRE(control_postgresql("replica-hang")); }
  ~hung_replica() { control_postgresql("replica-unhang"); }
};

std::set<std::string> listed_ids(http_client& c) {
  auto r = c.get("/v1/conversations?limit=100");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  std::set<std::string> ids;
  auto page = r.json();
  for (auto& row : page["data"]) ids.insert(row["id"].get<std::string>());
  return ids;
}

/// Until a read of `c`'s user is served by the replica (it has caught up).
void wait_for_the_replica(const server_process& s, http_client& c) {
  BOOST_REQUIRE(eventually(
      [&] {
        auto before = replica_reads(s, "replica");
        listed_ids(c);
        return replica_reads(s, "replica") > before;
      },
      std::chrono::seconds(20)));
}

/// A conversation of `c`'s user saying "still here", once the replica has it.
std::string replicated_conversation(const server_process& s, http_client& c) {
  auto id = create_conversation(c, {{"message", "still here"}});
  wait_for_the_replica(s, c);
  return id;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_read_replica_needs_postgresql, *utf::precondition(only_on_sqlite)) {
  std::string out;
  BOOST_TEST(run_parley({"serve", "--port", "0", "--database-url", "sqlite::memory:"}, out,
                        {{"DATABASE_READ_URL", "postgresql://parley@127.0.0.1:1/parley"}}) == 2);
  BOOST_TEST(out.find("database.read_url") != std::string::npos, out);
  BOOST_TEST(run_parley({"serve", "--port", "0", "--database-url", "sqlite::memory:"}, out,
                        {{"DATABASE_READ_URL", "mysql://replica/parley"}}) == 2);
  BOOST_TEST(out.find("database.read_url: unknown scheme") != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(an_unreachable_replica_is_logged_without_its_password_and_not_used,
                     *utf::precondition(only_on_postgresql)) {
  temp_dir temp;
  scratch_database primary(temp.path());
  server_process server({.database_url = primary.url(),
                         .config_toml =
                             "[database]\nread_url = "
                             "\"postgresql://parley:hunter2-in-url@127.0.0.1:1/parley\"\n"});
  http_client alice(server.base_url(), "unreachable-alice");
  auto id = create_conversation(alice, {{"message", "primary only"}});
  BOOST_TEST(listed_ids(alice).count(id) == 1u);
  BOOST_TEST(all_messages(alice, id).size() == 2u);
  BOOST_TEST(alice.get("/ready").status == 200);
  BOOST_TEST(replica_reads(server, "replica") == 0);
  BOOST_TEST(replica_reads(server, "unavailable") >= 2);
  auto log = server.log();
  BOOST_TEST(log.find("database.read_url") != std::string::npos, log);
  BOOST_TEST(log.find("hunter2-in-url") == std::string::npos, log);
}

BOOST_AUTO_TEST_CASE(a_malformed_replica_url_stops_the_start_without_its_password,
                     *utf::precondition(only_on_postgresql)) {
  temp_dir temp;
  scratch_database primary(temp.path());
  std::string out;
  BOOST_TEST(run_parley({"serve", "--port", "0", "--database-url", primary.url()}, out,
                        {{"DATABASE_READ_URL",
                          "postgresql://parley:hunter2-in-url%zz@127.0.0.1:1/parley"}}) == 2);
  BOOST_TEST(out.find("database.read_url") != std::string::npos, out);
  BOOST_TEST(out.find("hunter2-in-url") == std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(a_replica_down_at_start_is_read_from_once_it_answers,
                     *utf::precondition(only_on_postgresql)) {
  temp_dir temp;
  scratch_database primary(temp.path());
  auto replica_url = on_replica(primary.url());
  std::optional<stopped_replica> down;
  down.emplace();
  server_process server({.database_url = primary.url(),
                         .config_toml = "[database]\nread_url = \"" + replica_url + "\"\n"});
  http_client alice(server.base_url(), "late-alice");
  auto id = create_conversation(alice, {{"message", "before the replica"}});
  BOOST_TEST(all_messages(alice, id).size() == 2u);
  BOOST_TEST(replica_reads(server, "unavailable") >= 1);
  BOOST_TEST(replica_reads(server, "replica") == 0);
  down.reset();
  // The prober finds it, and the reads go there by themselves.
  wait_for_the_replica(server, alice);
  BOOST_TEST(all_messages(alice, id).size() == 2u);
}

BOOST_AUTO_TEST_CASE(reads_go_to_a_replica_that_has_caught_up,
                     *utf::precondition(only_on_postgresql)) {
  replicated_server r;
  http_client alice(r.server.base_url(), "replica-alice");
  auto id = create_conversation(alice, {{"message", "hello replica"}});
  wait_for_the_replica(r.server, alice);

  // Every kind of read it may serve, served there and right.
  auto served = replica_reads(r.server, "replica");
  BOOST_TEST(listed_ids(alice).count(id) == 1u);
  auto history = all_messages(alice, id);
  BOOST_REQUIRE_EQUAL(history.size(), 2u);
  BOOST_TEST(history[0]["content"] == "hello replica");
  auto found = alice.get("/v1/search?q=replica");
  BOOST_REQUIRE_EQUAL(found.status, 200);
  BOOST_TEST(found.json()["data"].size() >= 1u);
  BOOST_TEST(alice.get("/v1/usage").status == 200);
  BOOST_TEST(alice.get(conversation_path(id, "/export")).status == 200);
  BOOST_TEST(replica_reads(r.server, "replica") >= served + 5);
  BOOST_TEST(replica_reads(r.server, "unavailable") == 0);
}

BOOST_AUTO_TEST_CASE(a_user_reads_their_own_writes_while_the_replica_lags,
                     *utf::precondition(only_on_postgresql)) {
  replicated_server r;
  http_client alice(r.server.base_url(), "lag-alice");
  http_client bob(r.server.base_url(), "lag-bob");
  auto id = create_conversation(alice, {{"message", "before the pause"}});
  create_conversation(bob, {{"message", "bob's"}});
  wait_for_the_replica(r.server, alice);
  wait_for_the_replica(r.server, bob);

  paused_replay pause(r.replica_url);
  // Alice writes while the replica replays nothing: a message, a new
  // conversation, a title, a deletion. Each read straight after shows it.
  send_message(alice, id, {{"content", "after the pause"}});
  auto history = all_messages(alice, id);
  BOOST_REQUIRE_EQUAL(history.size(), 4u);
  BOOST_TEST(history[2]["content"] == "after the pause");
  auto second_id = create_conversation(alice, {{"message", "new while paused"}});
  BOOST_TEST(listed_ids(alice).count(second_id) == 1u);
  BOOST_REQUIRE_EQUAL(
      alice.patch(conversation_path(second_id), json{{"title", "renamed while paused"}}).status,
      200);
  auto listed = alice.get("/v1/conversations?limit=100").json()["data"];
  BOOST_REQUIRE(!listed.empty());
  BOOST_TEST(listed[0]["title"] == "renamed while paused");
  BOOST_REQUIRE_EQUAL(alice.del(conversation_path(id)).status, 204);
  BOOST_TEST(listed_ids(alice).count(id) == 0u);
  BOOST_TEST(alice.get("/v1/search?q=paused").json()["data"].size() >= 1u);
  BOOST_TEST(replica_reads(r.server, "behind") >= 5);

  // Bob wrote nothing since: his reads still go to the replica.
  auto served = replica_reads(r.server, "replica");
  BOOST_TEST(listed_ids(bob).size() == 1u);
  BOOST_TEST(replica_reads(r.server, "replica") == served + 1);
}

BOOST_AUTO_TEST_CASE(a_replica_that_goes_down_costs_the_primary_the_reads_not_the_clients,
                     *utf::precondition(only_on_postgresql)) {
  replicated_server r;
  http_client alice(r.server.base_url(), "down-alice");
  auto id = replicated_conversation(r.server, alice);
  {
    stopped_replica down;
    for (int i = 0; i < 5; ++i) {
      BOOST_TEST(listed_ids(alice).count(id) == 1u);
      BOOST_TEST(all_messages(alice, id).size() == 2u);
    }
    BOOST_TEST(replica_reads(r.server, "unavailable") >= 1);
    BOOST_TEST(alice.get("/ready").status == 200);
  }
  // Back: reads return to it by themselves.
  wait_for_the_replica(r.server, alice);
}

BOOST_AUTO_TEST_CASE(writes_through_another_instance_hold_reads_here_back_once_heard,
                     *utf::precondition(only_on_postgresql)) {
  replicated_server a;
  server_process b({.database_url = a.primary.url(),
                    .config_toml = "[database]\nread_url = \"" + a.replica_url + "\"\n"});
  http_client alice_on_a(a.server.base_url(), "spread-alice");
  http_client alice_on_b(b.base_url(), "spread-alice");
  create_conversation(alice_on_a, {{"message", "first"}});
  wait_for_the_replica(b, alice_on_b);

  paused_replay pause(a.replica_url);
  auto id = create_conversation(alice_on_a, {{"message", "through a"}});
  // The replica will not have it while paused: B lists it only by reading
  // the primary, once its listener has heard A's notice.
  BOOST_TEST(
      eventually([&] { return listed_ids(alice_on_b).count(id) == 1; }, std::chrono::seconds(2)));
  BOOST_TEST(replica_reads(b, "behind") >= 1);
}

BOOST_AUTO_TEST_CASE(a_replica_that_hangs_costs_only_the_reads_that_reached_it,
                     *utf::precondition(only_on_postgresql)) {
  replicated_server r;
  http_client alice(r.server.base_url(), "hang-alice");
  auto id = replicated_conversation(r.server, alice);
  {
    hung_replica hung;
    // The reads that reach it before the first gives up on it (at most one
    // per replica connection, database.read_pool_size = 2) get 503 at their
    // deadline (database.timeout_ms); the prober then keeps the others off it.
    int unanswered = 0;
    auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) {
      auto listed = alice.get("/v1/conversations?limit=100");
      if (listed.status == 503) {
        ++unanswered;
        BOOST_TEST(listed.header("retry-after") == "1");
        continue;
      }
      BOOST_REQUIRE_EQUAL(listed.status, 200);
      BOOST_TEST(listed.json()["data"][0]["id"] == id);
    }
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    BOOST_TEST(unanswered <= 2);
    BOOST_TEST(took.count() < 5000);  // each read waiting its deadline would take 10 s
    BOOST_TEST(replica_reads(r.server, "unavailable") >= 9);
  }
  wait_for_the_replica(r.server, alice);
}
