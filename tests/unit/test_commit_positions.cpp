#define BOOST_TEST_MODULE commit_positions
#include <boost/test/unit_test.hpp>

#include "persistence/commit_positions.hpp"
#include "support/sample_records.hpp"

#include <limits>

using namespace parley;

BOOST_AUTO_TEST_CASE(wal_positions_are_read_as_postgresql_writes_them) {
  BOOST_TEST(parse_wal_position("0/0") == 0u);
  BOOST_TEST(parse_wal_position("0/E000000") == 0xE000000u);
  BOOST_TEST(parse_wal_position("16/B374D848") == ((wal_position{0x16} << 32) | 0xB374D848u));
  BOOST_TEST(parse_wal_position("FFFFFFFF/FFFFFFFF") == std::numeric_limits<wal_position>::max());
  for (const char* bad : {"", "/", "12", "1/", "/1", "1/2/3", "G/1", "1/ 2", "100000000/0"})
    BOOST_CHECK_THROW(parse_wal_position(bad), store_error);
}

namespace {

/// Positions as an instance has them once it listens for other instances' writes.
struct listening_positions : commit_positions {
  listening_positions() { listening(0); }
};

constexpr auto anyone = std::numeric_limits<wal_position>::max();

}  // namespace

BOOST_AUTO_TEST_CASE(a_user_needs_only_their_own_latest_write) {
  listening_positions positions;
  BOOST_TEST(positions.needed_by("alice") == 0u);
  positions.committed(100, std::vector<std::string>{"alice"});
  positions.committed(200, std::vector<std::string>{"bob", "alice"});
  positions.committed(150, std::vector<std::string>{"alice"});  // older, reported late
  BOOST_TEST(positions.needed_by("alice") == 200u);
  BOOST_TEST(positions.needed_by("bob") == 200u);
  BOOST_TEST(positions.needed_by("carol") == 0u);
  // A batch of nobody's writes (runs, keys) holds nobody back...
  positions.committed(250, std::vector<std::string>{});
  BOOST_TEST(positions.needed_by("carol") == 0u);
  // ...one of anyone's holds everybody back.
  positions.committed(300, std::nullopt);
  BOOST_TEST(positions.needed_by("carol") == 300u);
  BOOST_TEST(positions.needed_by("alice") == 300u);
  // Other instances' writes count the same.
  positions.heard(400, std::vector<std::string>{"carol"});
  BOOST_TEST(positions.needed_by("carol") == 400u);
  BOOST_TEST(positions.needed_by("alice") == 300u);
}

BOOST_AUTO_TEST_CASE(nobody_reads_the_replica_while_a_write_could_be_missed) {
  commit_positions positions;
  // Not yet listening for other instances' writes.
  BOOST_TEST(positions.needed_by("alice") == anyone);
  positions.listening(500);
  BOOST_TEST(positions.needed_by("alice") == 500u);
  positions.listening(std::nullopt);
  BOOST_TEST(positions.needed_by("alice") == anyone);
  positions.listening(600);
  BOOST_TEST(positions.needed_by("alice") == 600u);
  // A batch whose end is unknown holds everyone back until the next one's.
  positions.committed_somewhere();
  BOOST_TEST(positions.needed_by("bob") == anyone);
  positions.committed(700, std::vector<std::string>{"alice"});
  BOOST_TEST(positions.needed_by("bob") == 700u);
}

BOOST_AUTO_TEST_CASE(what_the_replica_has_replayed_only_grows_and_old_entries_go) {
  listening_positions positions;
  positions.replayed(50, 0);
  positions.replayed(40, 0);
  BOOST_TEST(positions.known_replayed() == 50u);
  for (int i = 0; i < 5000; ++i)
    positions.committed(100 + i, std::vector<std::string>{"user" + std::to_string(i)});
  BOOST_TEST(positions.users_kept() == 5000u);
  positions.replayed(100 + 4000, 0);
  // Swept: what was replayed needs nothing kept, what was not is kept.
  BOOST_TEST(positions.users_kept() == 999u);
  BOOST_TEST(positions.needed_by("user10") == 0u);
  BOOST_TEST(positions.needed_by("user4999") == 100u + 4999);
  // A replica lost and back may be behind where it was: asked again, and
  // nobody's reads go to it before it is back there.
  positions.replica_lost();
  BOOST_TEST(positions.known_replayed() == 0u);
  BOOST_TEST(positions.needed_by("user10") == 100u + 4000);
  BOOST_TEST(positions.needed_by("someone new") == 100u + 4000);
  // An answer asked for before the loss says nothing of the replica now.
  BOOST_TEST(positions.losses() == 1u);
  positions.replayed(100 + 4500, 0);
  BOOST_TEST(positions.known_replayed() == 0u);
  positions.replayed(100 + 3000, 1);
  BOOST_TEST(positions.known_replayed() == 100u + 3000);
}

BOOST_AUTO_TEST_CASE(whose_writes_a_write_set_holds) {
  write_set send{write::insert_message{testing::sample_message("c1", 1)},
                 write::update_conversation{testing::sample_conversation("c1", "alice")},
                 write::put_idempotency{{"alice", "k", "h", "{}", 1}},
                 write::add_usage{"alice", "2026-12-07", {}}};
  BOOST_TEST((users_written(send) == std::vector<std::string>{"alice"}));
  write_set deleted{write::delete_conversation{"c1", "bob"}};
  BOOST_TEST((users_written(deleted) == std::vector<std::string>{"bob"}));
  write_set run_only{write::delete_run{"r1"}};
  BOOST_TEST((users_written(run_only) == std::vector<std::string>{}));
  write_set unnamed{write::delete_message{"m1", "c1", std::nullopt}};
  BOOST_TEST(!users_written(unnamed).has_value());
  // A batch: every set's users, or anyone's when one set is.
  using batch = std::vector<const write_set*>;
  BOOST_TEST((users_written(batch{&send, &deleted, &run_only}) ==
              std::vector<std::string>{"alice", "bob"}));
  BOOST_TEST(!users_written(batch{&send, &unnamed}).has_value());
}
