#define BOOST_TEST_MODULE change_feed
#include <boost/test/unit_test.hpp>

#include "base/mutex.hpp"
#include "base/uuid.hpp"
#include "config/load_settings.hpp"
#include "persistence/change_feed.hpp"
#include "persistence/store.hpp"
#include "support/api.hpp"
#include "support/sample_records.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <atomic>
#include <vector>

using namespace parley;
namespace utf = boost::unit_test;

BOOST_AUTO_TEST_CASE(a_change_survives_its_notice) {
  conversation_change updated{"instance-1", "conversation-1", 42};
  BOOST_TEST(encode_change(updated) == "1 instance-1 conversation-1 42");
  BOOST_TEST((decode_change(encode_change(updated)) == updated));
  conversation_change deleted{"instance-1", "conversation-1", std::nullopt};
  BOOST_TEST(encode_change(deleted) == "1 instance-1 conversation-1 deleted");
  BOOST_TEST((decode_change(encode_change(deleted)) == deleted));
}

BOOST_AUTO_TEST_CASE(a_notice_it_cannot_read_is_none) {
  for (const char* bad : {"", "1", "1 a b", "2 a b 3", "1 a b 3 extra", "1 a b 0", "1 a b -4",
                          "1 a b 3x", "1 a b deleted!", "1  b 3", "1 a b 99999999999999999999"})
    BOOST_TEST(!decode_change(bad).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(whose_writes_survive_their_notices) {
  batch_writes named{"instance-1", std::vector<std::string>{"alice", "a token's sub: 5:x"}};
  auto notices = encode_writes(named);
  BOOST_REQUIRE_EQUAL(notices.size(), 1u);
  BOOST_TEST(notices[0] == "1 instance-1 5:alice 18:a token's sub: 5:x");
  BOOST_TEST((decode_writes(notices[0]) == named));
  batch_writes anyones{"instance-1", std::nullopt};
  BOOST_TEST((encode_writes(anyones) == std::vector<std::string>{"1 instance-1 *"}));
  BOOST_TEST((decode_writes("1 instance-1 *") == anyones));
  // Nobody's writes need no notice.
  BOOST_TEST(encode_writes({"instance-1", std::vector<std::string>{}}).empty());
  // Many users (a full batch of long JWT subjects) spread over notices, each
  // under PostgreSQL's 8000 bytes, together naming everyone once.
  batch_writes many{"i", std::vector<std::string>{}};
  for (int n = 0; n < 256; ++n) many.whose->push_back(std::string(250, 'a') + std::to_string(n));
  std::vector<std::string> named_back;
  for (auto& notice : encode_writes(many)) {
    BOOST_TEST(notice.size() < 8000u);
    auto decoded = decode_writes(notice);
    BOOST_REQUIRE(decoded && decoded->whose);
    named_back.insert(named_back.end(), decoded->whose->begin(), decoded->whose->end());
  }
  BOOST_TEST((named_back == *many.whose));
  for (const char* bad : {"", "1", "1 i", "2 i *", "1 i 5:alic", "1 i 0:", "1 i x:a", "1 i 1:a ",
                          "1 i 1:ab", "1 i 1:a  1:b", "1 i 99999999999999999999999:a"})
    BOOST_TEST(!decode_writes(bad).has_value(), bad);
}

namespace {

/// What a listener heard, for the test to wait on.
struct heard {
  parley::mutex mutex;
  std::vector<conversation_change> changes GUARDED_BY(mutex);
  /// What written_elsewhere and listening_from were told, in order: a
  /// position and whose writes, or a position (none: stopped) and "listening".
  std::vector<std::pair<std::optional<std::uint64_t>, std::optional<std::vector<std::string>>>> told
      GUARDED_BY(mutex);
  std::atomic<int> resumed{0};

  std::vector<conversation_change> seen() {
    mutex_lock lock(mutex);
    return changes;
  }
  auto replica_news() {
    mutex_lock lock(mutex);
    return told;
  }
  change_listener::handlers handlers() {
    return {[this](const conversation_change& c) {
              mutex_lock lock(mutex);
              changes.push_back(c);
            },
            [this] { ++resumed; }};
  }
  /// The same, for an instance with a read replica.
  change_listener::handlers replica_handlers() {
    auto on = handlers();
    on.written_elsewhere = [this](wal_position at, const whose_writes& whose) {
      mutex_lock lock(mutex);
      told.emplace_back(at, whose);
    };
    on.listening_from = [this](std::optional<wal_position> at) {
      mutex_lock lock(mutex);
      told.emplace_back(at, std::vector<std::string>{"listening"});
    };
    return on;
  }
};

/// A scratch database with Parley's schema, and a store on it.
struct migrated_database {
  migrated_database() : scratch(dir.path()), url(parse_database_url(scratch.url())) {
    db = make_store_factory(url)();
    db->migrate();
  }
  testing::temp_dir dir;
  testing::scratch_database scratch;
  database_url url;
  std::unique_ptr<store> db;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_committed_batch_is_heard_and_a_rejected_one_is_not, migrated_database,
                        *utf::precondition(testing::only_on_postgresql)) {
  heard h;
  change_listener listener(url.target, h.handlers());
  BOOST_REQUIRE(testing::eventually([&] { return listener.listening(); }));
  BOOST_TEST(h.resumed.load() == 0);

  auto row = testing::sample_conversation("c1", "alice", 1);
  write_set created{write::insert_conversation{row}};
  db->commit({&created});
  row.version = 2;
  write_set updated{write::update_conversation{row}};
  db->commit({&updated});
  // The same version again is stale: rejected, so never announced.
  write_set stale{write::update_conversation{row}};
  BOOST_CHECK_THROW(db->commit({&stale}), store_error);
  write_set deleted{write::delete_conversation{"c1"}};
  db->commit({&deleted});

  BOOST_REQUIRE(testing::eventually([&] { return h.seen().size() >= 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing else comes
  auto seen = h.seen();
  BOOST_REQUIRE_EQUAL(seen.size(), 2u);
  BOOST_TEST((seen[0] == conversation_change{instance_id(), "c1", 2}));
  BOOST_TEST((seen[1] == conversation_change{instance_id(), "c1", std::nullopt}));

  // A break in the connection is healed, and said, since changes may have been missed.
  scratch.terminate_connections();
  BOOST_REQUIRE(testing::eventually([&] { return h.resumed.load() == 1 && listener.listening(); },
                                    std::chrono::seconds(10)));
  auto again = testing::sample_conversation("c2", "alice", 1);
  again.version = 2;
  write_set second{write::insert_conversation{testing::sample_conversation("c2", "alice", 1)}};
  write_set third{write::update_conversation{again}};
  auto db2 = make_store_factory(url)();  // the first lost its connection too
  db2->commit({&second, &third});
  BOOST_TEST(testing::eventually([&] { return h.seen().size() == 3; }));
  listener.stop();
}

BOOST_FIXTURE_TEST_CASE(with_a_replica_other_instances_writes_are_told_with_a_position,
                        migrated_database, *utf::precondition(testing::only_on_postgresql)) {
  db->track_commit_positions();
  heard h;
  change_listener listener(url.target, h.replica_handlers());
  BOOST_REQUIRE(testing::eventually([&] { return listener.listening(); }));
  auto position_now = [&] {
    return static_cast<std::uint64_t>(
        scratch.query_int("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"));
  };
  // Listening begins at a position: what came before was not heard.
  auto news = h.replica_news();
  BOOST_REQUIRE_EQUAL(news.size(), 1u);
  BOOST_TEST((news[0].second == std::vector<std::string>{"listening"}));
  BOOST_REQUIRE(news[0].first);
  BOOST_TEST(*news[0].first <= position_now());

  // This instance's own batch names its user but is no news here; its
  // commit returns where it ended.
  auto before = position_now();
  write_set created{write::insert_conversation{testing::sample_conversation("c1", "alice", 1)}};
  auto at = db->commit({&created});
  BOOST_TEST(at > before);
  BOOST_TEST(at <= position_now());

  // Another instance's writes are told, with a position past them.
  before = position_now();
  scratch.query_int("SELECT 1 FROM (SELECT pg_notify('parley_writes', '1 other 3:bob')) n");
  // Heard before the next is sent: both in one round would be told as one.
  BOOST_REQUIRE(testing::eventually([&] { return h.replica_news().size() == 2; }));
  scratch.query_int("SELECT 1 FROM (SELECT pg_notify('parley_writes', '1 other *')) n");
  BOOST_REQUIRE(testing::eventually([&] { return h.replica_news().size() == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing else comes
  news = h.replica_news();
  BOOST_REQUIRE_EQUAL(news.size(), 3u);
  BOOST_TEST(*news[1].first >= before);
  BOOST_TEST((news[1].second == std::vector<std::string>{"bob"}));
  BOOST_TEST(!news[2].second.has_value());  // anyone's

  // A break: not listening, then listening again from a later position.
  scratch.terminate_connections();
  BOOST_REQUIRE(
      testing::eventually([&] { return h.replica_news().size() == 5; }, std::chrono::seconds(10)));
  news = h.replica_news();
  BOOST_TEST(!news[3].first.has_value());
  BOOST_TEST((news[4].second == std::vector<std::string>{"listening"}));
  BOOST_TEST(*news[4].first >= *news[1].first);
  listener.stop();
}
