#define BOOST_TEST_MODULE stored_answer
#include <boost/test/unit_test.hpp>

#include "persistence/store.hpp"
#include "persistence/stored_answer.hpp"

using namespace parley;

namespace {

conversation_record full_conversation() {
  conversation_record c;
  c.id = "c1";
  c.user_id = "alice";
  c.title = "Ünïcode \"quoted\"";
  c.model = "echo";
  c.system_prompt = "be brief";
  c.metadata_json = R"({"team":"blue"})";
  c.created_at = 1;
  c.updated_at = 2;
  c.message_count = 2;
  c.last_seq = 5;
  c.usage = {10, 20, 0.125};
  c.version = 7;
  c.active_leaf_id = "m2";
  c.forked_from_conversation_id = "c0";
  c.forked_from_message_id = "m0";
  return c;
}

message_record full_reply() {
  message_record m;
  m.id = "m2";
  m.conversation_id = "c1";
  m.seq = 5;
  m.role = "assistant";
  m.content = "line one\nline two \xF0\x9F\x99\x82";
  m.created_at = 3;
  m.edited_at = 4;
  m.model = "echo";
  m.finish_reason = "stop";
  m.prompt_tokens = 11;
  m.completion_tokens = 12;
  m.parent_id = "m1";
  m.sibling_index = 2;
  m.sibling_count = 3;
  return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_result_comes_back_field_for_field) {
  exchange_result r;
  r.conversation = full_conversation();
  message_record user;
  user.id = "m1";
  user.conversation_id = "c1";
  user.seq = 4;
  user.role = "user";
  user.content = "hi";
  r.message = user;
  r.reply = full_reply();
  auto back = decode_answer(encode_answer(r)).answer;
  BOOST_REQUIRE(bool(back));
  auto& c = *back->conversation;
  auto want = full_conversation();
  BOOST_TEST(c.id == want.id);
  BOOST_TEST(c.user_id == want.user_id);
  BOOST_TEST(*c.title == *want.title);
  BOOST_TEST(c.model == want.model);
  BOOST_TEST(*c.system_prompt == *want.system_prompt);
  BOOST_TEST(c.metadata_json == want.metadata_json);
  BOOST_TEST(c.created_at == 1);
  BOOST_TEST(c.updated_at == 2);
  BOOST_TEST(c.message_count == 2);
  BOOST_TEST(c.last_seq == 5);
  BOOST_TEST(c.usage.prompt_tokens == 10);
  BOOST_TEST(c.usage.completion_tokens == 20);
  BOOST_TEST(c.usage.cost_usd == 0.125);
  BOOST_TEST(c.version == 7);
  BOOST_TEST(*c.active_leaf_id == "m2");
  BOOST_TEST(*c.forked_from_conversation_id == "c0");
  BOOST_TEST(*c.forked_from_message_id == "m0");
  // Unset optionals stay unset.
  BOOST_TEST(!back->message->edited_at.has_value());
  BOOST_TEST(!back->message->parent_id.has_value());
  BOOST_TEST(back->message->sibling_index == 1);
  BOOST_TEST(!back->message->model.has_value());
  BOOST_TEST(back->message->content.view() == "hi");
  auto& m = *back->reply;
  auto reply = full_reply();
  BOOST_TEST(m.id == reply.id);
  BOOST_TEST(m.conversation_id == "c1");
  BOOST_TEST(m.seq == 5);
  BOOST_TEST(m.role == "assistant");
  BOOST_TEST(m.content.view() == reply.content.view());
  BOOST_TEST(m.created_at == 3);
  BOOST_TEST(*m.edited_at == 4);
  BOOST_TEST(*m.model == "echo");
  BOOST_TEST(*m.finish_reason == "stop");
  BOOST_TEST(*m.prompt_tokens == 11);
  BOOST_TEST(*m.completion_tokens == 12);
  BOOST_TEST(*m.parent_id == "m1");
  BOOST_TEST(m.sibling_index == 2);
  BOOST_TEST(m.sibling_count == 3);
}

BOOST_AUTO_TEST_CASE(an_empty_result_stays_empty) {
  auto back = decode_answer(encode_answer(exchange_result{})).answer;
  BOOST_REQUIRE(bool(back));
  BOOST_TEST(!back->conversation.has_value());
  BOOST_TEST(!back->message.has_value());
  BOOST_TEST(!back->reply.has_value());
}

BOOST_AUTO_TEST_CASE(a_failure_comes_back_with_its_context) {
  failure f{errc::provider_timeout, "the model took too long"};
  f.message_id = "m1";
  auto back = decode_answer(encode_answer(f)).answer;
  BOOST_REQUIRE(!back);
  BOOST_TEST((back.error().code == errc::provider_timeout));
  BOOST_TEST(back.error().detail == f.detail);
  BOOST_TEST(back.error().message_id == "m1");
  BOOST_TEST(back.error().field.empty());
  BOOST_TEST(!back.error().retry_after_s.has_value());

  failure limited{errc::rate_limited, "slow down"};
  limited.retry_after_s = 30;
  limited.field = "content";
  back = decode_answer(encode_answer(limited)).answer;
  BOOST_TEST((back.error().code == errc::rate_limited));
  BOOST_TEST(*back.error().retry_after_s == 30u);
  BOOST_TEST(back.error().field == "content");
}

BOOST_AUTO_TEST_CASE(every_error_code_keeps_its_name) {
  // Every code up to internal, the last (errors.hpp).
  for (auto c = 0; c <= static_cast<int>(errc::internal); ++c) {
    auto code = static_cast<errc>(c);
    auto back = decode_answer(encode_answer(failure{code, "x"})).answer;
    BOOST_TEST((back.error().code == code), "code " << c);
  }
}

BOOST_AUTO_TEST_CASE(text_that_is_not_utf8_is_stored_not_thrown) {
  exchange_result r;
  r.reply = full_reply();
  r.reply->content = "bad \xFF byte";
  auto back = decode_answer(encode_answer(r)).answer;
  BOOST_REQUIRE(bool(back));
  BOOST_TEST(back->reply->content.view() == "bad \xEF\xBF\xBD byte");  // U+FFFD
}

BOOST_AUTO_TEST_CASE(an_answer_stored_before_schema_4_comes_back_as_it_was_sent) {
  auto back = decode_answer(R"({"legacy": {"status": 502, "body": "{\"status\":502}"}})");
  BOOST_REQUIRE(back.legacy.has_value());
  BOOST_TEST(back.legacy->status == 502);
  BOOST_TEST(back.legacy->body == R"({"status":502})");
  BOOST_TEST(!decode_answer(encode_answer(exchange_result{})).legacy.has_value());
}

BOOST_AUTO_TEST_CASE(text_it_did_not_write_is_a_store_error) {
  for (auto text :
       {"", "not json", "{}", R"({"result": 3})", R"({"failure": {"code": "nope", "detail": "x"}})",
        R"({"failure": {"detail": "x"}})", R"({"result": {"message": {"id": 1}}})",
        R"({"legacy": {"status": "x"}})"})
    BOOST_CHECK_THROW(decode_answer(text), store_error);
}
