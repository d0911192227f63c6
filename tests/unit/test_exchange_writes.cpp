#define BOOST_TEST_MODULE exchange_writes
#include <boost/test/unit_test.hpp>

#include "actors/exchange_writes.hpp"

#include <cmath>

using namespace parley;

namespace {

constexpr unix_ms noon = 1'764'936'000'000;  // 2025-12-05T12:00:00Z

conversation_record row(std::int64_t messages, std::int64_t last_seq) {
  conversation_record r;
  r.id = "c1";
  r.user_id = "alice";
  r.model = "priced";
  r.message_count = messages;
  r.last_seq = last_seq;
  r.version = 7;
  r.usage = {100, 50, 0.25};
  return r;
}

message_record message(std::int64_t seq, const std::string& role, const std::string& text) {
  message_record m;
  m.id = role + "-" + std::to_string(seq);
  m.conversation_id = "c1";
  m.seq = seq;
  m.role = role;
  m.content = text;
  return m;
}

model_info priced_model() {
  model_info m;
  m.id = "priced";
  m.input_price_per_mtok = 3;
  m.output_price_per_mtok = 15;
  return m;
}

/// The kinds of a write set, in order, for comparing at a glance.
std::vector<std::string> kinds(const write_set& writes) {
  std::vector<std::string> out;
  for (auto& w : writes)
    out.push_back(std::visit(
        [](auto& op) -> std::string {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, write::insert_conversation>) return "insert_conversation";
          if constexpr (std::is_same_v<T, write::update_conversation>) return "update_conversation";
          if constexpr (std::is_same_v<T, write::delete_conversation>) return "delete_conversation";
          if constexpr (std::is_same_v<T, write::insert_message>) return "insert_message";
          if constexpr (std::is_same_v<T, write::update_message>) return "update_message";
          if constexpr (std::is_same_v<T, write::delete_message>) return "delete_message";
          if constexpr (std::is_same_v<T, write::add_usage>) return "add_usage";
          return "put_idempotency";
        },
        w));
  return out;
}

template <class T>
const T& op(const write_set& writes, std::size_t i) {
  return std::get<T>(writes.at(i));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_send_with_a_reply_adds_two_messages_and_prices_the_reply) {
  auto user = message(5, "user", "hi");
  auto reply = message(6, "assistant", "Echo: hi");
  exchange_facts facts;
  facts.user_message = &user;
  auto c = commit_exchange(row(4, 4), facts, reply, {1000, 500}, priced_model(), noon);
  BOOST_TEST(c.meta.message_count == 6);
  BOOST_TEST(c.meta.last_seq == 6);
  BOOST_TEST(*c.meta.active_leaf_id == reply.id);  // the branch now ends at the reply
  BOOST_TEST(c.meta.version == 8);
  BOOST_TEST(c.meta.updated_at == noon);
  // 1,000 prompt tokens at $3 and 500 completion tokens at $15 a million.
  BOOST_TEST(c.meta.usage.prompt_tokens == 1100);
  BOOST_TEST(c.meta.usage.completion_tokens == 550);
  BOOST_TEST(std::abs(c.meta.usage.cost_usd - (0.25 + 0.0105)) < 1e-12);
  std::vector<std::string> expected{"add_usage", "update_conversation", "insert_message",
                                    "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  auto& usage = op<write::add_usage>(c.writes, 0);
  BOOST_TEST(usage.user_id == "alice");
  BOOST_TEST(usage.day == "2025-12-05");
  BOOST_TEST(usage.usage.model == "priced");
  BOOST_TEST(usage.usage.requests == 1);
  BOOST_TEST(std::abs(usage.usage.cost_usd - 0.0105) < 1e-12);
  BOOST_TEST(op<write::update_conversation>(c.writes, 1).row.version == 8);
  BOOST_TEST(op<write::insert_message>(c.writes, 2).row.id == "user-5");
  BOOST_TEST(op<write::insert_message>(c.writes, 3).row.id == "assistant-6");
  BOOST_TEST(!c.result.conversation);
  BOOST_TEST(c.result.message->id == "user-5");
  BOOST_TEST(c.result.reply->id == "assistant-6");
}

BOOST_AUTO_TEST_CASE(a_send_without_a_reply_adds_one_message_and_no_usage) {
  auto user = message(3, "user", "note");
  exchange_facts facts;
  facts.user_message = &user;
  auto c = commit_exchange(row(2, 2), facts, std::nullopt, {}, priced_model(), noon);
  BOOST_TEST(c.meta.message_count == 3);
  BOOST_TEST(c.meta.last_seq == 3);
  BOOST_TEST(c.meta.usage.prompt_tokens == 100);
  std::vector<std::string> expected{"update_conversation", "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  BOOST_TEST(!c.result.reply);
}

BOOST_AUTO_TEST_CASE(a_new_conversation_is_inserted_first_as_it_ends_up) {
  auto row0 = row(0, 0);
  row0.usage = {};
  row0.version = 1;
  auto user = message(1, "user", "hello");
  auto reply = message(2, "assistant", "Echo: hello");
  exchange_facts facts;
  facts.create = true;
  facts.user_message = &user;
  auto c = commit_exchange(row0, facts, reply, {10, 2}, priced_model(), noon);
  std::vector<std::string> expected{"insert_conversation", "add_usage", "insert_message",
                                    "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  auto& inserted = op<write::insert_conversation>(c.writes, 0).row;
  BOOST_TEST(inserted.message_count == 2);
  BOOST_TEST(inserted.last_seq == 2);
  BOOST_TEST(inserted.version == 1);  // a new row is not a next version
  BOOST_TEST(inserted.usage.completion_tokens == 2);
  BOOST_REQUIRE(c.result.conversation.has_value());
  BOOST_TEST(c.result.conversation->message_count == 2);
}

BOOST_AUTO_TEST_CASE(a_regenerated_reply_takes_the_last_ones_place_on_the_branch) {
  auto reply = message(7, "assistant", "again");
  std::string replaced = "assistant-6";
  exchange_facts facts;
  facts.replaces = &replaced;
  auto c = commit_exchange(row(6, 6), facts, reply, {5, 5}, priced_model(), noon);
  BOOST_TEST(c.meta.message_count == 6);  // one off the branch, one on it
  BOOST_TEST(c.meta.last_seq == 7);       // seqs are never given out twice
  BOOST_TEST(*c.meta.active_leaf_id == reply.id);
  // The replaced reply stays, a sibling of the new one.
  std::vector<std::string> expected{"add_usage", "update_conversation", "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  BOOST_TEST(!c.result.message);
}

BOOST_AUTO_TEST_CASE(a_streamed_exchange_writes_only_its_reply_at_the_end) {
  auto user = message(5, "user", "hi");
  auto reply = message(6, "assistant", "Echo: hi");
  exchange_facts facts;
  facts.user_message = &user;
  facts.user_stored = true;
  // The row as committed with the user message.
  auto c = commit_exchange(row(5, 5), facts, reply, {1, 1}, priced_model(), noon);
  BOOST_TEST(c.meta.message_count == 6);
  BOOST_TEST(c.meta.last_seq == 6);
  std::vector<std::string> expected{"add_usage", "update_conversation", "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  BOOST_TEST(op<write::insert_message>(c.writes, 2).row.id == "assistant-6");
  BOOST_TEST(c.result.message->id == "user-5");
}

BOOST_AUTO_TEST_CASE(a_streamed_new_conversation_gets_its_reply_as_a_next_version) {
  // The row and the first message were committed before the model was asked.
  auto stored = row(1, 1);
  stored.usage = {};
  stored.version = 1;
  auto user = message(1, "user", "hello");
  auto reply = message(2, "assistant", "Echo: hello");
  exchange_facts facts;
  facts.create = true;
  facts.user_message = &user;
  facts.user_stored = true;
  auto c = commit_exchange(stored, facts, reply, {1, 1}, priced_model(), noon);
  std::vector<std::string> expected{"add_usage", "update_conversation", "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  BOOST_TEST(op<write::update_conversation>(c.writes, 1).row.version == 2);
  BOOST_REQUIRE(c.result.conversation.has_value());
  BOOST_TEST(c.result.conversation->version == 2);
  BOOST_TEST(c.result.conversation->message_count == 2);
}

BOOST_AUTO_TEST_CASE(a_streamed_user_message_is_committed_before_its_reply) {
  auto user = message(5, "user", "hi");
  exchange_facts facts;
  facts.user_message = &user;
  auto c = commit_user_message(row(4, 4), facts, noon);
  BOOST_TEST(c.meta.message_count == 5);
  BOOST_TEST(c.meta.last_seq == 5);
  BOOST_TEST(*c.meta.active_leaf_id == user.id);
  BOOST_TEST(c.meta.version == 8);
  std::vector<std::string> expected{"update_conversation", "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  auto first = message(1, "user", "first");
  exchange_facts create;
  create.create = true;
  create.user_message = &first;
  auto created = commit_user_message(row(0, 0), create, noon);
  std::vector<std::string> expected_new{"insert_conversation", "insert_message"};
  BOOST_TEST(kinds(created.writes) == expected_new, boost::test_tools::per_element());
  BOOST_TEST(op<write::insert_conversation>(created.writes, 0).row.message_count == 1);
}

BOOST_AUTO_TEST_CASE(messages_before_the_user_message_go_in_the_same_commit_first) {
  std::vector<message_record> before{message(5, "user", "a"), message(6, "assistant", "b")};
  auto user = message(7, "user", "c");
  exchange_facts facts;
  facts.user_message = &user;
  facts.preceding = &before;
  auto c = commit_user_message(row(4, 4), facts, noon);
  BOOST_TEST(c.meta.message_count == 7);
  BOOST_TEST(c.meta.last_seq == 7);
  BOOST_TEST(*c.meta.active_leaf_id == user.id);
  std::vector<std::string> expected{"update_conversation", "insert_message", "insert_message",
                                    "insert_message"};
  BOOST_TEST(kinds(c.writes) == expected, boost::test_tools::per_element());
  BOOST_TEST(op<write::insert_message>(c.writes, 1).row.id == before[0].id);
  BOOST_TEST(op<write::insert_message>(c.writes, 3).row.id == user.id);
  // And with the reply, when nothing was stored before it.
  auto reply = message(8, "assistant", "d");
  auto whole = commit_exchange(row(4, 4), facts, reply, {1, 1}, priced_model(), noon);
  BOOST_TEST(whole.meta.message_count == 8);
  BOOST_TEST(whole.meta.last_seq == 8);
}

BOOST_AUTO_TEST_CASE(a_failed_exchange_keeps_what_the_user_sent) {
  auto user = message(5, "user", "hi");
  exchange_facts facts;
  facts.user_message = &user;
  auto kept = commit_failed_exchange(row(4, 4), facts, noon);
  BOOST_TEST(kept.meta.message_count == 5);
  BOOST_TEST(kept.meta.usage.prompt_tokens == 100);  // no usage for a failure
  std::vector<std::string> expected{"update_conversation", "insert_message"};
  BOOST_TEST(kinds(kept.writes) == expected, boost::test_tools::per_element());

  // A new conversation whose first exchange failed still exists.
  exchange_facts create;
  create.create = true;
  auto made = commit_failed_exchange(row(0, 0), create, noon);
  std::vector<std::string> expected_new{"insert_conversation"};
  BOOST_TEST(kinds(made.writes) == expected_new, boost::test_tools::per_element());

  // Stored already (a streamed exchange, or a regenerate): nothing to write.
  facts.user_stored = true;
  BOOST_TEST(commit_failed_exchange(row(5, 5), facts, noon).writes.empty());
  BOOST_TEST(commit_failed_exchange(row(5, 5), exchange_facts{}, noon).writes.empty());
}
