#define BOOST_TEST_MODULE write_plan
#include <boost/test/unit_test.hpp>

#include "persistence/write_plan.hpp"
#include "support/sample_records.hpp"

using namespace parley;

namespace {

conversation_record at_version(const std::string& id, std::int64_t version, std::string title) {
  auto c = testing::sample_conversation(id);
  c.version = version;
  c.title = std::move(title);
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(each_kind_gets_its_own_list_in_arrival_order) {
  write_set a{write::insert_conversation{testing::sample_conversation("c1")},
              write::insert_message{testing::sample_message("c1", 1)},
              write::put_idempotency{{"u", "k1", "h", "{}", 1}}};
  write_set b{write::insert_message{testing::sample_message("c2", 7)},
              write::delete_message{"c2-m3"},
              write::delete_conversation{"c3"},
              write::record_source{"u", "chatgpt:x", "c1"},
              write::insert_run{{"r1", "c1", "m", 5}},
              write::delete_run{"r0"}};
  auto plan = make_write_plan({&a, &b});
  BOOST_REQUIRE(plan.inserted_conversations.size() == 1u);
  BOOST_REQUIRE(plan.inserted_messages.size() == 2u);
  BOOST_TEST(plan.inserted_messages[0]->id == "c1-m1");
  BOOST_TEST(plan.inserted_messages[1]->id == "c2-m7");
  BOOST_TEST(plan.deleted_messages.at(0)->id == "c2-m3");
  BOOST_TEST(plan.deleted_conversations.at(0)->id == "c3");
  BOOST_TEST(plan.sources.at(0)->source == "chatgpt:x");
  BOOST_TEST(plan.inserted_runs.at(0)->id == "r1");
  BOOST_TEST(*plan.deleted_runs.at(0) == "r0");
  BOOST_TEST(plan.idempotency_keys.at(0)->key == "k1");
  BOOST_TEST(plan.conversation_updates.empty());
}

BOOST_AUTO_TEST_CASE(updates_of_one_conversation_coalesce_keeping_the_first_expectation) {
  auto v2 = at_version("c1", 2, "second"), v3 = at_version("c1", 3, "third");
  auto other = at_version("c2", 5, "other");
  write_set a{write::update_conversation{v2}}, b{write::update_conversation{other}},
      c{write::update_conversation{v3}};
  auto plan = make_write_plan({&a, &b, &c});
  BOOST_REQUIRE(plan.conversation_updates.size() == 2u);
  BOOST_TEST(plan.conversation_updates[0].row->version == 3);  // the last row is written...
  BOOST_TEST(*plan.conversation_updates[0].row->title == "third");
  BOOST_TEST(plan.conversation_updates[0].expected_version == 1);  // ...over what the first saw
  BOOST_TEST(plan.conversation_updates[1].expected_version == 4);
}

BOOST_AUTO_TEST_CASE(edits_keep_the_last_and_usage_adds_up_per_user_day_and_model) {
  write_set a{write::update_message{"m1", "first", 1},
              write::add_usage{"u", "2026-11-24", {"echo", 1, 10, 20, 0.5}}};
  write_set b{write::update_message{"m1", "last", 2}, write::update_message{"m2", "other", 3},
              write::add_usage{"u", "2026-11-24", {"echo", 1, 1, 2, 0.25}},
              write::add_usage{"u", "2026-11-25", {"echo", 1, 1, 1, 0}},
              write::add_usage{"v", "2026-11-24", {"echo", 1, 1, 1, 0}}};
  auto plan = make_write_plan({&a, &b});
  BOOST_REQUIRE(plan.message_edits.size() == 2u);
  BOOST_TEST(plan.message_edits[0]->content == "last");
  BOOST_TEST(plan.message_edits[1]->id == "m2");
  BOOST_REQUIRE(plan.usage.size() == 3u);
  auto& sum = plan.usage[0].sum;
  BOOST_TEST(sum.model == "echo");
  BOOST_TEST(sum.requests == 2);
  BOOST_TEST(sum.prompt_tokens == 11);
  BOOST_TEST(sum.completion_tokens == 22);
  BOOST_TEST(sum.cost_usd == 0.75);
}

BOOST_AUTO_TEST_CASE(replaced_answers_come_apart_from_new_keys_the_last_per_key) {
  // Told apart by their answers.
  auto answer = [](const char* user, const char* text, unix_ms at) {
    return idempotency_row{user, "k1", "h", text, at};
  };
  auto answer_of = [](const idempotency_row* r) { return r->answer; };
  write_set provisional{write::put_idempotency{answer("u", "interrupted", 1)}};
  write_set first{write::put_idempotency{answer("u", "failed", 2), true}};
  write_set second{write::put_idempotency{answer("u", "answer", 3), true},
                   write::put_idempotency{answer("v", "other user", 3), true}};
  auto plan = make_write_plan({&provisional, &first, &second});
  BOOST_REQUIRE(plan.idempotency_keys.size() == 1u);
  BOOST_TEST(answer_of(plan.idempotency_keys[0]) == "interrupted");
  BOOST_REQUIRE(plan.idempotency_answers.size() == 2u);
  BOOST_TEST(answer_of(plan.idempotency_answers[0]) == "answer");
  BOOST_TEST(answer_of(plan.idempotency_answers[1]) == "other user");
}
