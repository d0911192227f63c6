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

namespace {

/// What a listener heard, for the test to wait on.
struct heard {
  parley::mutex mutex;
  std::vector<conversation_change> changes GUARDED_BY(mutex);
  std::atomic<int> resumed{0};

  std::vector<conversation_change> seen() {
    mutex_lock lock(mutex);
    return changes;
  }
  change_listener::handlers handlers() {
    return {[this](const conversation_change& c) {
              mutex_lock lock(mutex);
              changes.push_back(c);
            },
            [this] { ++resumed; }};
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_committed_batch_is_heard_and_a_rejected_one_is_not,
                     *utf::precondition(testing::only_on_postgresql)) {
  testing::temp_dir dir;
  testing::scratch_database scratch(dir.path());
  auto url = parse_database_url(scratch.url());
  auto db = make_store_factory(url)();
  db->migrate();
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
