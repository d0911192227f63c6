#define BOOST_TEST_MODULE sql_store
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"
#include "persistence/schema.hpp"
#include "persistence/store.hpp"
#include "persistence/stored_answer.hpp"
#include "support/sample_records.hpp"
#include "support/scratch_database.hpp"
#include "support/server_process.hpp"

#include <filesystem>
#include <thread>

using namespace parley;

namespace {

/// A store on a fresh database: SQLite, or PostgreSQL on the PostgreSQL run.
struct fresh_store {
  fresh_store() : scratch(dir.path()) {
    factory = make_store_factory(parse_database_url(scratch.url()));
    db = factory();
    db->migrate();
  }
  testing::temp_dir dir;
  testing::scratch_database scratch;
  store_factory factory;
  std::unique_ptr<store> db;
};

conversation_record conversation(const std::string& id, const std::string& user, unix_ms at) {
  return testing::sample_conversation(id, user, at);
}

message_record message(const std::string& conv, std::int64_t seq) {
  return testing::sample_message(conv, seq);
}

void commit(store& db, write_set set) { db.commit({&set}); }

/// Brings a new database to schema `version`, as an older release left it.
void migrate_to(testing::scratch_database& db, int version) {
  auto dialect = testing::testing_postgresql() ? sql_dialect::postgresql : sql_dialect::sqlite;
  db.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)");
  for (auto& m : migrations(dialect)) {
    if (m.version > version) break;
    for (auto& statement : m.statements) db.execute(statement);
    db.execute("INSERT INTO schema_version (version) VALUES (" + std::to_string(m.version) + ")");
  }
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(store, fresh_store)

BOOST_AUTO_TEST_CASE(migrating_again_keeps_the_rows_and_the_latest_schema) {
  commit(*db, {write::insert_conversation{conversation("kept", "alice", 1)},
               write::insert_message{message("kept", 1)}});
  db->migrate();
  factory()->migrate();  // another connection, as a second process would
  auto& all =
      migrations(testing::testing_postgresql() ? sql_dialect::postgresql : sql_dialect::sqlite);
  BOOST_TEST(scratch.query_int("SELECT MAX(version) FROM schema_version") == all.back().version);
  // Each migration ran once, none again.
  BOOST_TEST(scratch.query_int("SELECT COUNT(*) FROM schema_version") ==
             static_cast<long long>(all.size()));
  BOOST_TEST(db->find_conversation("kept").has_value());
  BOOST_TEST(db->list_messages("kept", 0, std::nullopt, 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(round_trips_every_column) {
  auto c = conversation("c1", "alice", 5);
  c.title = "Trip";
  c.system_prompt = "terse";
  c.metadata_json = "{\"k\":\"v\"}";
  c.usage = {10, 20, 0.25};
  c.active_leaf_id = "c1-m1";
  c.forked_from_conversation_id = "c0";
  c.forked_from_message_id = "c0-m9";
  c.context_strategy = "summarize";
  auto m = message("c1", 1);
  m.model = "echo";
  m.finish_reason = "stop";
  m.prompt_tokens = 3;
  m.completion_tokens = 4;
  commit(*db, {write::insert_conversation{c}, write::insert_message{m}});
  auto back = db->find_conversation("c1");
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(*back->title == "Trip");
  BOOST_TEST(*back->system_prompt == "terse");
  BOOST_TEST(back->metadata_json == "{\"k\":\"v\"}");
  BOOST_TEST(back->usage.completion_tokens == 20);
  BOOST_TEST(back->usage.cost_usd == 0.25);
  BOOST_TEST(*back->active_leaf_id == "c1-m1");
  BOOST_TEST(*back->forked_from_conversation_id == "c0");
  BOOST_TEST(*back->forked_from_message_id == "c0-m9");
  BOOST_TEST(*back->context_strategy == "summarize");
  auto msgs = db->list_messages("c1", 0, std::nullopt, 10);
  BOOST_REQUIRE(msgs.size() == 1u);
  BOOST_TEST(*msgs[0].model == "echo");
  BOOST_TEST(*msgs[0].completion_tokens == 4);
  BOOST_TEST(!msgs[0].edited_at.has_value());
  BOOST_TEST(db->find_message("c1", m.id).has_value());
  BOOST_TEST(!db->find_message("other", m.id).has_value());
  BOOST_TEST(db->find_message_by_id(m.id)->conversation_id == "c1");
  BOOST_TEST(!db->find_message_by_id("no-such-message").has_value());
  BOOST_TEST(!db->find_conversation("missing").has_value());
}

BOOST_AUTO_TEST_CASE(history_pages_after_and_before) {
  write_set set{write::insert_conversation{conversation("c1", "alice", 1)}};
  for (int seq = 1; seq <= 10; ++seq) set.push_back(write::insert_message{message("c1", seq)});
  commit(*db, set);
  auto after = db->list_messages("c1", 3, std::nullopt, 4);
  BOOST_REQUIRE(after.size() == 4u);
  BOOST_TEST(after.front().seq == 4);
  BOOST_TEST(after.back().seq == 7);
  auto before = db->list_messages("c1", 0, 8, 3);
  BOOST_REQUIRE(before.size() == 3u);
  BOOST_TEST(before.front().seq == 5);  // the three just below 8, ascending
  BOOST_TEST(before.back().seq == 7);
}

BOOST_AUTO_TEST_CASE(conversation_list_is_a_keyset_walk) {
  write_set set;
  for (int i = 0; i < 7; ++i)
    set.push_back(write::insert_conversation{
        conversation("c" + std::to_string(i), "alice", 100 + (i / 2))});  // ties on time
  set.push_back(write::insert_conversation{conversation("other", "bob", 500)});
  commit(*db, set);
  std::vector<std::string> seen;
  std::optional<conversation_cursor> cursor;
  do {
    auto page = db->list_conversations("alice", 3, cursor);
    for (auto& c : page.rows) seen.push_back(c.id);
    cursor = page.next;
  } while (cursor);
  BOOST_TEST(seen.size() == 7u);
  BOOST_TEST(seen.front() == "c6");  // most recently updated first
  std::sort(seen.begin(), seen.end());
  BOOST_TEST((std::adjacent_find(seen.begin(), seen.end()) == seen.end()));
}

BOOST_AUTO_TEST_CASE(updates_and_deletes) {
  auto c = conversation("c1", "alice", 1);
  commit(*db, {write::insert_conversation{c}, write::insert_message{message("c1", 1)},
               write::insert_message{message("c1", 2)}});
  c.title = "renamed";
  c.message_count = 2;
  c.last_seq = 2;
  c.version = 2;
  commit(*db, {write::update_conversation{c}, write::update_message{"c1-m1", "edited", 77}});
  BOOST_TEST(db->find_conversation("c1")->version == 2);
  BOOST_TEST(*db->find_conversation("c1")->title == "renamed");
  auto m1 = db->find_message("c1", "c1-m1");
  BOOST_TEST(m1->content == "edited");
  BOOST_TEST(*m1->edited_at == 77);
  commit(*db, {write::delete_message{"c1-m2", "c1", std::string("c1-m1")}});
  BOOST_TEST(db->list_messages("c1", 0, std::nullopt, 10).size() == 1u);
  commit(*db, {write::delete_conversation{"c1"}});
  BOOST_TEST(!db->find_conversation("c1").has_value());
  BOOST_TEST(db->list_messages("c1", 0, std::nullopt, 10).empty());
}

BOOST_AUTO_TEST_CASE(usage_accumulates_per_day_and_model) {
  commit(*db, {write::add_usage{"alice", "2026-11-21", {"echo", 1, 10, 5, 0.5}},
               write::add_usage{"alice", "2026-11-22", {"echo", 1, 10, 5, 0.5}},
               write::add_usage{"alice", "2026-11-22", {"echo", 1, 1, 1, 0}},
               write::add_usage{"alice", "2026-11-22", {"fast", 2, 7, 3, 1}},
               write::add_usage{"bob", "2026-11-22", {"echo", 9, 9, 9, 9}}});
  auto all = db->usage("alice", "0000-01-01", "9999-12-31");
  BOOST_REQUIRE(all.size() == 2u);
  BOOST_TEST(all[0].model == "echo");
  BOOST_TEST(all[0].requests == 3);
  BOOST_TEST(all[0].prompt_tokens == 21);
  BOOST_TEST(all[0].cost_usd == 1.0);
  auto one_day = db->usage("alice", "2026-11-21", "2026-11-21");
  BOOST_REQUIRE(one_day.size() == 1u);
  BOOST_TEST(one_day[0].requests == 1);
}

BOOST_AUTO_TEST_CASE(a_provisional_idempotency_answer_is_replaced) {
  failure interrupted{errc::provider_error, "interrupted"};
  interrupted.message_id = "m1";
  exchange_result sent;
  sent.message = message("c1", 1);
  sent.reply = message("c1", 2);
  commit(*db, {write::put_idempotency{{"alice", "p1", "h", encode_answer(interrupted), 100}}});
  auto found = db->find_idempotency("alice", "p1");
  BOOST_REQUIRE(found.has_value());
  BOOST_REQUIRE(!found->answer);
  BOOST_TEST(found->answer.error().message_id == "m1");
  commit(*db, {write::put_idempotency{{"alice", "p1", "h", encode_answer(sent), 200}, true}});
  found = db->find_idempotency("alice", "p1");
  BOOST_REQUIRE(found.has_value());
  BOOST_REQUIRE(bool(found->answer));
  BOOST_TEST(found->answer->message->id == sent.message->id);
  BOOST_TEST(found->answer->reply->content.view() == sent.reply->content.view());
  BOOST_TEST(!found->answer->conversation.has_value());
  BOOST_TEST(found->request_hash == "h");
  BOOST_TEST(found->created_at == 100);  // the key's age counts from its first use
  // Both in one batch: the insert goes first.
  commit(*db, {write::put_idempotency{{"alice", "p2", "h", encode_answer(interrupted), 100}},
               write::put_idempotency{{"alice", "p2", "h",
                                       encode_answer(failure{errc::provider_error, "failed"}), 200},
                                      true}});
  BOOST_TEST(db->find_idempotency("alice", "p2")->answer.error().detail == "failed");
  // A new key still refuses a duplicate.
  BOOST_CHECK_THROW(
      commit(*db, {write::put_idempotency{{"alice", "p1", "h", encode_answer(sent), 300}}}),
      store_error);
}

BOOST_AUTO_TEST_CASE(schema_4_keeps_the_answers_stored_before_it) {
  // A database at schema 3, with a key as the versions before stored it.
  testing::temp_dir old_dir;
  testing::scratch_database old(old_dir.path());
  migrate_to(old, 3);
  old.execute(
      "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, status, body, created_at)"
      " VALUES ('alice', 'old-key', 'h', 201, '{\"id\":\"c1\",\"title\":\"it''s\"}', 5)");
  auto upgraded = make_store_factory(parse_database_url(old.url()))();
  upgraded->migrate();
  auto found = upgraded->find_idempotency("alice", "old-key");
  BOOST_REQUIRE(found.has_value());
  BOOST_REQUIRE(found->legacy.has_value());
  BOOST_TEST(found->legacy->status == 201);
  BOOST_TEST(found->legacy->body == R"({"id":"c1","title":"it's"})");
  BOOST_TEST(found->request_hash == "h");
  BOOST_TEST(found->created_at == 5);
  // New keys go in the new form beside it.
  commit(*upgraded,
         {write::put_idempotency{{"alice", "new-key", "h", encode_answer(exchange_result{}), 6}}});
  auto added = upgraded->find_idempotency("alice", "new-key");
  BOOST_REQUIRE(added.has_value());
  BOOST_TEST(!added->legacy.has_value());
  BOOST_TEST(bool(added->answer));
}

BOOST_AUTO_TEST_CASE(schema_5_makes_each_conversation_one_branch) {
  // A database at schema 4 with messages stored before they had parents.
  testing::temp_dir old_dir;
  testing::scratch_database old(old_dir.path());
  migrate_to(old, 4);
  for (auto conv : {"a", "b"}) {
    old.execute(std::string("INSERT INTO conversations (id, user_id, model, created_at,"
                            " updated_at, message_count, last_seq) VALUES ('") +
                conv + "', 'u', 'echo', 1, 1, 3, 9)");
    // Seqs with gaps, as deletions leave them.
    for (auto seq : {2, 5, 9})
      old.execute(std::string("INSERT INTO messages (id, conversation_id, seq, role, content,"
                              " created_at) VALUES ('") +
                  conv + std::to_string(seq) + "', '" + conv + "', " + std::to_string(seq) +
                  ", 'user', 'x', 1)");
  }
  old.execute(
      "INSERT INTO conversations (id, user_id, model, created_at, updated_at)"
      " VALUES ('empty', 'u', 'echo', 1, 1)");
  auto upgraded = make_store_factory(parse_database_url(old.url()))();
  upgraded->migrate();
  for (std::string conv : {"a", "b"}) {
    BOOST_TEST(*upgraded->find_conversation(conv)->active_leaf_id == conv + "9");
    auto branch = upgraded->walk_branch(conv, conv + "9", 10);
    BOOST_REQUIRE_EQUAL(branch.size(), 3u);
    BOOST_TEST(*branch[0].parent_id == conv + "5");
    BOOST_TEST(*branch[1].parent_id == conv + "2");
    BOOST_TEST(!branch[2].parent_id.has_value());
  }
  BOOST_TEST(!upgraded->find_conversation("empty")->active_leaf_id.has_value());
}

/// c1's tree, by seq (each id "c1-m<seq>"):
///   1 ─ 2 ─ 3 ─ 4
///        └─ 5 ─ 6
///   7 (a second root)
/// and c2, one message whose id c1's walks must never reach.
struct tree_store : fresh_store {
  tree_store() {
    write_set set{write::insert_conversation{conversation("c1", "alice", 1)},
                  write::insert_conversation{conversation("c2", "alice", 1)},
                  write::insert_message{message("c2", 1)}};
    for (int seq = 1; seq <= 7; ++seq) {
      auto m = message("c1", seq);
      if (seq == 5) m.parent_id = "c1-m2";
      if (seq == 7) m.parent_id.reset();
      set.push_back(write::insert_message{m});
    }
    commit(*db, set);
  }
  std::vector<std::int64_t> seqs(const std::vector<message_record>& rows) {
    std::vector<std::int64_t> out;
    for (auto& r : rows) out.push_back(r.seq);
    return out;
  }
};

using seq_list = std::vector<std::int64_t>;

BOOST_FIXTURE_TEST_CASE(messages_know_their_place_among_siblings, tree_store) {
  auto place = [&](int seq) {
    auto m = db->find_message("c1", "c1-m" + std::to_string(seq));
    BOOST_REQUIRE(m.has_value());
    return std::pair{m->sibling_index, m->sibling_count};
  };
  BOOST_TEST((place(3) == std::pair<std::int64_t, std::int64_t>{1, 2}));
  BOOST_TEST((place(5) == std::pair<std::int64_t, std::int64_t>{2, 2}));
  BOOST_TEST((place(1) == std::pair<std::int64_t, std::int64_t>{1, 2}));  // roots are siblings
  BOOST_TEST((place(7) == std::pair<std::int64_t, std::int64_t>{2, 2}));
  BOOST_TEST((place(4) == std::pair<std::int64_t, std::int64_t>{1, 1}));
  auto all = db->list_messages("c1", 0, std::nullopt, 10);
  BOOST_TEST(all[4].sibling_index == 2);
  BOOST_TEST(db->child_count("c1", "c1-m2") == 2);
  BOOST_TEST(db->child_count("c1", std::nullopt) == 2);
  BOOST_TEST(db->child_count("c1", "c1-m4") == 0);
  BOOST_TEST(db->child_count("c2", std::nullopt) == 1);
}

BOOST_FIXTURE_TEST_CASE(branches_are_walked_from_their_end, tree_store) {
  BOOST_TEST(seqs(db->walk_branch("c1", "c1-m6", 2)) == (seq_list{6, 5}));
  BOOST_TEST(seqs(db->walk_branch("c1", "c1-m6", 10)) == (seq_list{6, 5, 2, 1}));
  BOOST_TEST(db->walk_branch("c2", "c1-m6", 10).empty());  // another conversation's
  BOOST_TEST(seqs(db->list_branch("c1", "c1-m4", 0, std::nullopt, 10)) == (seq_list{1, 2, 3, 4}));
  BOOST_TEST(seqs(db->list_branch("c1", "c1-m4", 2, std::nullopt, 10)) == (seq_list{3, 4}));
  BOOST_TEST(seqs(db->list_branch("c1", "c1-m6", 1, std::nullopt, 1)) == (seq_list{2}));
  BOOST_TEST(seqs(db->list_branch("c1", "c1-m6", 0, 6, 2)) == (seq_list{2, 5}));
  BOOST_TEST(seqs(db->list_branch("c1", "c1-m7", 0, std::nullopt, 10)) == (seq_list{7}));
  BOOST_TEST(db->branch_length("c1", "c1-m6") == 4);
  BOOST_TEST(db->branch_length("c1", "c1-m7") == 1);
  auto m2 = *db->find_message("c1", "c1-m2");
  auto m5 = *db->find_message("c1", "c1-m5");
  BOOST_TEST(db->branch_contains("c1", "c1-m4", m2));
  BOOST_TEST(!db->branch_contains("c1", "c1-m4", m5));
  BOOST_TEST(db->branch_contains("c1", "c1-m6", m5));
}

BOOST_FIXTURE_TEST_CASE(the_newest_leaf_follows_the_newest_child, tree_store) {
  BOOST_TEST(*db->newest_leaf("c1", "c1-m2", "") == "c1-m6");
  BOOST_TEST(*db->newest_leaf("c1", "c1-m2", "c1-m5") == "c1-m4");
  BOOST_TEST(*db->newest_leaf("c1", "c1-m4", "") == "c1-m4");
  BOOST_TEST(*db->newest_leaf("c1", std::nullopt, "") == "c1-m7");
  BOOST_TEST(*db->newest_leaf("c1", std::nullopt, "c1-m7") == "c1-m6");
  BOOST_TEST(!db->newest_leaf("c1", "c2-m1", "").has_value());
  BOOST_TEST(!db->newest_leaf("c2", std::nullopt, "c2-m1").has_value());
}

BOOST_FIXTURE_TEST_CASE(a_deleted_messages_children_take_its_parent, tree_store) {
  commit(*db, {write::delete_message{"c1-m2", "c1", std::string("c1-m1")}});
  BOOST_TEST(*db->find_message("c1", "c1-m3")->parent_id == "c1-m1");
  BOOST_TEST(*db->find_message("c1", "c1-m5")->parent_id == "c1-m1");
  BOOST_TEST(db->find_message("c1", "c1-m5")->sibling_count == 2);
  BOOST_TEST(seqs(db->walk_branch("c1", "c1-m6", 10)) == (seq_list{6, 5, 1}));
  // A root's children become roots.
  commit(*db, {write::delete_message{"c1-m1", "c1", std::nullopt}});
  BOOST_TEST(!db->find_message("c1", "c1-m3")->parent_id.has_value());
  BOOST_TEST(db->child_count("c1", std::nullopt) == 3);
  BOOST_TEST(db->find_message("c2", "c2-m1").has_value());
}

BOOST_AUTO_TEST_CASE(import_sources_are_one_per_user_and_go_with_their_conversation) {
  commit(*db, {write::insert_conversation{conversation("c1", "alice", 1)},
               write::record_source{"alice", "chatgpt:x", "c1"}});
  BOOST_TEST(*db->find_source("alice", "chatgpt:x") == "c1");
  BOOST_TEST(!db->find_source("bob", "chatgpt:x").has_value());
  // The same source twice for one user is a conflict; for another user it is not.
  write_set again{write::insert_conversation{conversation("c2", "alice", 1)},
                  write::record_source{"alice", "chatgpt:x", "c2"}};
  try {
    db->commit({&again});
    BOOST_FAIL("a second record of one source was committed");
  } catch (const store_error& e) {
    BOOST_TEST((e.code == errc::conflict));
  }
  BOOST_TEST(!db->find_conversation("c2").has_value());
  commit(*db, {write::insert_conversation{conversation("c3", "bob", 1)},
               write::record_source{"bob", "chatgpt:x", "c3"}});
  // Deleting the conversation forgets where it came from.
  commit(*db, {write::delete_conversation{"c1"}});
  BOOST_TEST(!db->find_source("alice", "chatgpt:x").has_value());
  BOOST_TEST(*db->find_source("bob", "chatgpt:x") == "c3");
}

BOOST_AUTO_TEST_CASE(runs_are_found_in_their_conversation_until_removed) {
  commit(*db, {write::insert_conversation{conversation("c1", "alice", 1)},
               write::insert_conversation{conversation("c2", "alice", 1)},
               write::insert_run{{"r1", "c1", "c1-m1", 1234}},
               write::insert_run{{"r2", "c1", "c1-m3", 5678}},
               write::insert_run{{"r3", "c2", "c2-m1", 9}}});
  auto found = db->find_run("c1", "r1");
  BOOST_REQUIRE(found.has_value());
  BOOST_TEST(found->message_id == "c1-m1");
  BOOST_TEST(found->started_at == 1234);
  BOOST_TEST(found->conversation_id == "c1");
  BOOST_TEST(!db->find_run("c2", "r1").has_value());  // another conversation's
  BOOST_TEST(!db->find_run("c1", "nope").has_value());
  commit(*db, {write::delete_run{"r1"}});
  BOOST_TEST(!db->find_run("c1", "r1").has_value());
  BOOST_TEST(db->find_run("c1", "r2").has_value());
  // Deleting the conversation removes its runs, and only its.
  commit(*db, {write::delete_conversation{"c1"}});
  BOOST_TEST(!db->find_run("c1", "r2").has_value());
  BOOST_TEST(db->find_run("c2", "r3").has_value());
}

BOOST_AUTO_TEST_CASE(summaries_are_listed_oldest_first_and_go_with_their_conversation) {
  auto summary = [](std::string id, std::string conversation, unix_ms at) {
    return summary_record{std::move(id),
                          std::move(conversation),
                          "m3",
                          3,
                          "text " + std::to_string(at),
                          "echo",
                          at,
                          120,
                          40};
  };
  commit(*db, {write::insert_conversation{conversation("c1", "alice", 1)},
               write::insert_conversation{conversation("c2", "alice", 1)},
               write::insert_summary{summary("s2", "c1", 20)},
               write::insert_summary{summary("s1", "c1", 10)},
               write::insert_summary{summary("s3", "c2", 5)}});
  auto listed = db->list_summaries("c1");
  BOOST_REQUIRE(listed.size() == 2u);
  BOOST_TEST(listed[0].id == "s1");
  BOOST_TEST(listed[1].id == "s2");
  auto& s = listed[1];
  BOOST_TEST(s.conversation_id == "c1");
  BOOST_TEST(s.covers_through_message_id == "m3");
  BOOST_TEST(s.covers_through_seq == 3);
  BOOST_TEST(s.content == "text 20");
  BOOST_TEST(s.model == "echo");
  BOOST_TEST(s.created_at == 20);
  BOOST_TEST(s.tokens_before == 120);
  BOOST_TEST(s.tokens_after == 40);
  commit(*db, {write::delete_conversation{"c1"}});
  BOOST_TEST(db->list_summaries("c1").empty());
  BOOST_TEST(db->list_summaries("c2").size() == 1u);
}

BOOST_AUTO_TEST_CASE(conversations_are_listed_by_id_for_export) {
  commit(*db, {write::insert_conversation{conversation("b", "alice", 9)},
               write::insert_conversation{conversation("a", "alice", 1)},
               write::insert_conversation{conversation("c", "alice", 5)},
               write::insert_conversation{conversation("aa", "bob", 5)}});
  auto ids = [&](const std::string& after, unsigned limit) {
    std::vector<std::string> out;
    for (auto& c : db->list_conversations_by_id("alice", after, limit)) out.push_back(c.id);
    return out;
  };
  BOOST_TEST(ids("", 10) == (std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST(ids("a", 1) == (std::vector<std::string>{"b"}));
  BOOST_TEST(ids("c", 10).empty());
}

BOOST_AUTO_TEST_CASE(idempotency_records_and_purge) {
  commit(*db,
         {write::put_idempotency{{"alice", "k1", "h", encode_answer(exchange_result{}), 100}},
          write::put_idempotency{{"alice", "k2", "h", encode_answer(exchange_result{}), 900}}});
  BOOST_TEST(bool(db->find_idempotency("alice", "k1")->answer));
  BOOST_TEST(!db->find_idempotency("bob", "k1").has_value());
  BOOST_TEST(db->purge_idempotency(500) == 1);
  BOOST_TEST(!db->find_idempotency("alice", "k1").has_value());
  BOOST_TEST(db->find_idempotency("alice", "k2").has_value());
}

BOOST_AUTO_TEST_CASE(a_failing_batch_commits_nothing) {
  commit(*db, {write::insert_conversation{conversation("c1", "alice", 1)},
               write::insert_message{message("c1", 1)}});
  write_set good{write::insert_message{message("c1", 2)}};
  write_set duplicate_seq{write::insert_message{[] {
    auto m = message("c1", 1);
    m.id = "another-id";
    return m;
  }()}};
  try {
    db->commit({&good, &duplicate_seq});
    BOOST_FAIL("a duplicate seq must be refused");
  } catch (const store_error& e) {
    BOOST_TEST((e.code == errc::conflict));
  }
  BOOST_TEST(db->list_messages("c1", 0, std::nullopt, 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_stale_version_is_a_conflict_and_commits_nothing) {
  auto c = conversation("c1", "alice", 1);
  commit(*db, {write::insert_conversation{c}});
  auto theirs = c;
  theirs.title = "theirs";
  theirs.version = 2;
  commit(*db, {write::update_conversation{theirs}});
  auto mine = c;  // still at version 1: written without seeing theirs
  mine.title = "mine";
  mine.message_count = 1;
  mine.version = 2;
  try {
    commit(*db, {write::insert_message{message("c1", 1)}, write::update_conversation{mine}});
    BOOST_FAIL("a write from a stale version must be refused");
  } catch (const store_error& e) {
    BOOST_TEST((e.code == errc::conflict));
  }
  BOOST_TEST(*db->find_conversation("c1")->title == "theirs");
  BOOST_TEST(db->list_messages("c1", 0, std::nullopt, 10).empty());
  // An update of a conversation deleted meanwhile is a conflict too.
  commit(*db, {write::delete_conversation{"c1"}});
  theirs.version = 3;
  BOOST_CHECK_THROW(commit(*db, {write::update_conversation{theirs}}), store_error);
}

BOOST_AUTO_TEST_CASE(big_batches_of_many_sets_commit_whole) {
  // More rows than one multi-row statement carries, from many requesters.
  constexpr int conversations = 1200;
  std::vector<write_set> sets;
  for (int i = 0; i < conversations; ++i) {
    auto id = "c" + std::to_string(i);
    auto c = conversation(id, "alice", 1);
    sets.push_back(
        {write::insert_conversation{c}, write::insert_message{message(id, 1)},
         write::insert_message{message(id, 2)},
         write::add_usage{"alice", "2026-11-22", {"echo", 1, 2, 3, 0.125}},
         write::put_idempotency{{"alice", id, "h", encode_answer(exchange_result{}), 5}}});
  }
  std::vector<const write_set*> batch;
  for (auto& s : sets) batch.push_back(&s);
  db->commit(batch);
  std::vector<write_set> updates;
  for (int i = 0; i < conversations; ++i) {
    auto c = conversation("c" + std::to_string(i), "alice", 2);
    c.message_count = 2;
    c.last_seq = 2;
    c.version = 2;
    updates.push_back({write::update_conversation{c},
                       write::delete_message{c.id + "-m1", c.id, std::nullopt},
                       write::update_message{c.id + "-m2", "edited", 9}});
  }
  batch.clear();
  for (auto& s : updates) batch.push_back(&s);
  db->commit(batch);
  for (int i : {0, 999, 1000, conversations - 1}) {
    auto id = "c" + std::to_string(i);
    auto back = db->find_conversation(id);
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST(back->version == 2);
    BOOST_TEST(back->message_count == 2);
    auto msgs = db->list_messages(id, 0, std::nullopt, 10);
    BOOST_REQUIRE(msgs.size() == 1u);
    BOOST_TEST(msgs[0].content == "edited");
    BOOST_TEST(db->find_idempotency("alice", id).has_value());
  }
  auto u = db->usage("alice", "2026-11-22", "2026-11-22");
  BOOST_REQUIRE(u.size() == 1u);
  BOOST_TEST(u[0].requests == conversations);
  BOOST_TEST(u[0].cost_usd == conversations * 0.125);
}

BOOST_AUTO_TEST_CASE(text_and_numbers_round_trip_exactly) {
  auto c = conversation("c1", "alice", 1);
  c.title = "it's \"quoted\" \\ $1 ü 😀 ?";
  c.system_prompt = std::nullopt;
  c.usage.cost_usd = 0.1 + 0.2;
  auto m = message("c1", 1);
  m.content = "line one\nline 'two' \t $2::text; DROP TABLE messages; --";
  commit(*db, {write::insert_conversation{c}, write::insert_message{m}});
  auto back = db->find_conversation("c1");
  BOOST_TEST(*back->title == *c.title);
  BOOST_TEST(!back->system_prompt.has_value());
  BOOST_TEST(back->usage.cost_usd == 0.1 + 0.2);
  BOOST_TEST(db->find_message("c1", m.id)->content == m.content);
}

BOOST_AUTO_TEST_CASE(readers_see_committed_writes) {
  auto reader = factory();
  commit(*db, {write::insert_conversation{conversation("c1", "alice", 1)}});
  BOOST_TEST(reader->find_conversation("c1").has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(memory_database_is_shared_by_all_stores) {
  auto factory = make_store_factory(parse_database_url("sqlite::memory:"));
  auto writer = factory();
  writer->migrate();
  auto reader = factory();
  write_set set{write::insert_conversation{conversation("c1", "alice", 1)}};
  writer->commit({&set});
  BOOST_TEST(reader->find_conversation("c1").has_value());
}

BOOST_AUTO_TEST_CASE(unreachable_database_is_a_store_error) {
  auto factory = make_store_factory(parse_database_url("sqlite:///nonexistent-dir/x/y.db"));
  BOOST_CHECK_THROW(factory(), store_error);
}

BOOST_AUTO_TEST_CASE(a_batch_writes_the_last_update_and_summed_usage) {
  fresh_store f;
  auto c = conversation("c1", "alice", 1);
  write_set create{write::insert_conversation{c}};
  f.db->commit({&create});
  auto first = c, second = c;
  first.title = "first";
  first.message_count = 1;
  first.version = 2;
  second.title = "second";
  second.message_count = 2;
  second.version = 3;
  write_set a{write::update_conversation{first},
              write::add_usage{"alice", "2026-11-22", {"echo", 1, 10, 5, 0.5}}};
  write_set b{write::update_conversation{second},
              write::add_usage{"alice", "2026-11-22", {"echo", 1, 20, 5, 0.5}}};
  f.db->commit({&a, &b});
  BOOST_TEST(*f.db->find_conversation("c1")->title == "second");
  BOOST_TEST(f.db->find_conversation("c1")->message_count == 2);
  BOOST_TEST(f.db->find_conversation("c1")->version == 3);
  auto u = f.db->usage("alice", "2026-11-22", "2026-11-22");
  BOOST_REQUIRE(u.size() == 1u);
  BOOST_TEST(u[0].requests == 2);
  BOOST_TEST(u[0].prompt_tokens == 30);
  BOOST_TEST(u[0].cost_usd == 1.0);
}

// SQLite has no connection to lose.
BOOST_AUTO_TEST_CASE(a_broken_connection_is_opened_again,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  fresh_store f;
  commit(*f.db, {write::insert_conversation{conversation("c1", "alice", 1)}});
  f.scratch.terminate_connections();
  // The first call finds the connection dead; a later one reconnects by itself.
  bool answered = false;
  for (int attempt = 0; attempt < 20 && !answered; ++attempt) {
    try {
      answered = f.db->find_conversation("c1").has_value();
    } catch (const store_error& e) {
      BOOST_TEST((e.code == errc::db_unavailable));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  BOOST_TEST(answered);
  commit(*f.db, {write::insert_message{message("c1", 1)}});
  BOOST_TEST(f.db->list_messages("c1", 0, std::nullopt, 10).size() == 1u);
}

// What /ready asks: after a server restart the first ping answers, without
// a failure for the connection it found closed.
BOOST_AUTO_TEST_CASE(a_ping_after_the_server_closed_the_connection_answers_at_once,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  fresh_store f;
  f.db->ping();
  f.scratch.terminate_connections();
  BOOST_CHECK_NO_THROW(f.db->ping());
  BOOST_CHECK_NO_THROW(f.db->ping());
  BOOST_TEST(!f.db->find_conversation("none").has_value());
}

// Each store waits a moment between its attempts on a database that is down;
// once one of them is back in, the others try at once (/ready would
// otherwise answer 503 from a connection whose last attempt came just
// before the restart).
BOOST_AUTO_TEST_CASE(one_stores_reconnect_lets_the_others_try_at_once,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  fresh_store f;
  auto other = f.factory();
  f.db->ping();
  other->ping();
  f.scratch.allow_connections(false);
  f.scratch.terminate_connections();
  BOOST_CHECK_THROW(f.db->ping(), store_error);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_CHECK_THROW(other->ping(), store_error);
  auto other_failed = std::chrono::steady_clock::now();
  f.scratch.allow_connections(true);
  BOOST_CHECK_NO_THROW(f.db->ping());
  // Past 250 ms the other would try again anyway, and the check prove nothing.
  BOOST_WARN_MESSAGE(
      std::chrono::steady_clock::now() - other_failed < std::chrono::milliseconds(250),
      "too slow to tell");
  BOOST_CHECK_NO_THROW(other->ping());
  BOOST_TEST(!other->find_conversation("none").has_value());
}

// What the read replica's connections are made with: a database that
// cannot be reached when they are made only fails their calls until it can.
BOOST_AUTO_TEST_CASE(a_connecting_store_is_made_without_its_database_and_connects_later) {
  testing::temp_dir dir;
  testing::scratch_database scratch(dir.path());
  auto missing_dir = dir.path() + "/not-yet";
  auto url = testing::testing_postgresql() ? scratch.url() : "sqlite://" + missing_dir + "/x.db";
  if (testing::testing_postgresql()) scratch.allow_connections(false);
  auto db = make_connecting_store_factory(parse_database_url(url))();
  db->set_call_timeout(std::chrono::milliseconds(1000));  // kept for the connection
  auto failure_of_ping = [&]() -> std::string {
    try {
      db->ping();
      return "none";
    } catch (const store_error& e) {
      BOOST_TEST((e.code == errc::db_unavailable));
      return e.what();
    }
  };
  auto first = failure_of_ping();
  BOOST_TEST(first != "none");
  BOOST_TEST(first.rfind("not connected", 0) != 0u, first);  // it tried
  // At once, without trying again: it says why it could not last time.
  BOOST_TEST(failure_of_ping() == "not connected: " + first);
  if (testing::testing_postgresql())
    scratch.allow_connections(true);
  else
    std::filesystem::create_directory(missing_dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_CHECK_NO_THROW(db->ping());
  db->migrate();
  BOOST_TEST(!db->find_conversation("none").has_value());
}

// libpq would quote the malformed part of the URL in its error: the password.
BOOST_AUTO_TEST_CASE(a_malformed_postgresql_url_is_refused_without_quoting_it) {
  BOOST_TEST(postgresql_url_parses("postgresql://parley:secret@127.0.0.1:5432/parley"));
  BOOST_TEST(!postgresql_url_parses("postgresql://parley:hunter2%zz@127.0.0.1:5432/parley"));
  BOOST_TEST(!postgresql_url_parses("postgresql://parley:hunter2%00@127.0.0.1:5432/parley"));
  try {
    make_store_factory(parse_database_url("postgresql://parley:hunter2%zz@127.0.0.1:1/parley"))();
    BOOST_ERROR("a malformed URL was taken");
  } catch (const store_error& e) {
    BOOST_TEST((e.code == errc::invalid_argument));
    BOOST_TEST(std::string(e.what()).find("hunter2") == std::string::npos, e.what());
  }
}

// SQLite stores U+0000 as it is.
BOOST_AUTO_TEST_CASE(a_refused_value_leaves_nothing_behind_for_the_next_batch,
                     *boost::unit_test::precondition(testing::only_on_postgresql)) {
  fresh_store f;
  auto refused = message("c1", 1);
  refused.content = std::string("a\0b", 3);  // PostgreSQL's text cannot hold U+0000
  try {
    commit(*f.db, {write::insert_conversation{conversation("c1", "alice", 1)},
                   write::insert_message{refused}});
    BOOST_FAIL("U+0000 must be refused, not cut short");
  } catch (const store_error& e) {
    BOOST_TEST((e.code == errc::internal));
  }
  commit(*f.db, {write::insert_conversation{conversation("c2", "alice", 1)}});
  BOOST_TEST(!f.db->find_conversation("c1").has_value());  // no half of the refused batch
  BOOST_TEST(f.db->find_conversation("c2").has_value());
}
