#define BOOST_TEST_MODULE request_parsing
#include <boost/test/unit_test.hpp>

#include "http/idempotency.hpp"
#include "http/json_mapping.hpp"
#include "http/problem.hpp"
#include "http/request_parsing.hpp"

using namespace parley;
using nlohmann::json;

namespace {

std::shared_ptr<const model_registry> registry() {
  static auto r = model_registry::build(settings{});
  return r;
}

parse_limits limits(std::uint32_t max_chars = 10) { return {max_chars, registry().get()}; }

template <class T>
const problem& problem_of(const parsed<T>& p) {
  BOOST_REQUIRE(!p);
  return p.error();
}

/// The value of a parse that must succeed.
template <class T>
T value_of(parsed<T> p) {
  BOOST_REQUIRE(bool(p));
  return std::move(*p);
}

template <class T>
std::string first_field(const parsed<T>& p) {
  auto& pr = problem_of(p);
  BOOST_REQUIRE(!pr.errors.empty());
  return pr.errors.front().field;
}

}  // namespace

BOOST_AUTO_TEST_CASE(json_bodies) {
  BOOST_TEST(value_of(parse_json_object("")).is_object());
  BOOST_TEST(value_of(parse_json_object(" {\"a\":1} "))["a"] == 1);
  BOOST_TEST(problem_of(parse_json_object("{")).status == 400);
  BOOST_TEST(problem_of(parse_json_object("[1,2]")).status == 400);
  BOOST_TEST(problem_of(parse_json_object("\"text\"")).status == 400);
  BOOST_TEST(problem_of(parse_json_object(std::string(100000, '['))).status == 400);
  BOOST_TEST(problem_of(parse_json_object("{\"a\":\"\xff\xfe\"}")).status == 400);  // bad UTF-8
  // Brackets inside strings do not count as nesting.
  BOOST_TEST(value_of(parse_json_object("{\"a\":\"" + std::string(100, '[') + "\"}")).is_object());
}

BOOST_AUTO_TEST_CASE(send_message_fields) {
  auto ok = value_of(parse_send_message(
      {{"content", "héllo"}, {"temperature", 1.5}, {"max_tokens", 7}}, limits()));
  auto& p = ok.params;
  BOOST_TEST(p.content == "héllo");
  BOOST_TEST(p.role == "user");
  BOOST_TEST(p.reply);
  BOOST_TEST(!ok.stream);
  BOOST_TEST(*p.temperature == 1.5);
  BOOST_TEST(*p.max_tokens == 7u);

  auto system =
      value_of(parse_send_message({{"content", "x"}, {"role", "system"}}, limits())).params;
  BOOST_TEST(!system.reply);  // reply defaults to false for other roles

  BOOST_TEST(first_field(parse_send_message(json::object(), limits())) == "content");
  BOOST_TEST(problem_of(parse_send_message(json::object(), limits())).status == 422);
  BOOST_TEST(first_field(parse_send_message({{"content", ""}}, limits())) == "content");
  BOOST_TEST(first_field(parse_send_message({{"content", 5}}, limits())) == "content");
  // Exactly the limit in code points is fine, one more is not.
  BOOST_TEST(bool(parse_send_message({{"content", "ééééééééé\xc3\xa9"}}, limits(10))));
  BOOST_TEST(first_field(parse_send_message({{"content", "ééééééééééé"}}, limits(10))) ==
             "content");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"role", "robot"}}, limits())) ==
             "role");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"temperature", 2.5}}, limits())) ==
             "temperature");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"max_tokens", 0}}, limits())) ==
             "max_tokens");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"max_tokens", 1.5}}, limits())) ==
             "max_tokens");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"model", "gpt-9"}}, limits())) ==
             "model");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"reply", "yes"}}, limits())) ==
             "reply");
  BOOST_TEST(
      value_of(parse_send_message({{"content", "x"}, {"stream", true}, {"unknown", 1}}, limits()))
          .stream);
  // Every bad field is reported, not just the first.
  auto many = problem_of(parse_send_message({{"temperature", "hot"}}, limits()));
  BOOST_TEST(many.errors.size() == 2u);
}

BOOST_AUTO_TEST_CASE(create_conversation_fields) {
  auto c = value_of(parse_create_conversation(
      {{"title", "Trip"}, {"metadata", {{"k", "v"}}}, {"message", "hi"}}, "alice", limits()));
  BOOST_TEST(c.user_id == "alice");
  BOOST_TEST(*c.title == "Trip");
  BOOST_TEST(c.model == "echo");
  BOOST_TEST(c.metadata_json == "{\"k\":\"v\"}");
  BOOST_REQUIRE(c.first_message.has_value());
  BOOST_TEST(c.first_message->content == "hi");
  BOOST_TEST(c.first_message->reply);

  BOOST_TEST(first_field(parse_create_conversation({{"title", std::string(201, 't')}}, "a",
                                                   limits())) == "title");
  BOOST_TEST(first_field(parse_create_conversation({{"model", "nope"}}, "a", limits())) == "model");
  BOOST_TEST(first_field(parse_create_conversation({{"metadata", {{"k", 1}}}}, "a", limits())) ==
             "metadata.k");
  json big = json::object();
  for (int i = 0; i < 33; ++i) big["k" + std::to_string(i)] = "v";
  BOOST_TEST(first_field(parse_create_conversation({{"metadata", big}}, "a", limits())) ==
             "metadata");
  BOOST_TEST(first_field(parse_create_conversation({{"message", 3}}, "a", limits())) == "message");
  BOOST_TEST(first_field(parse_create_conversation({{"message", {{"content", ""}}}}, "a",
                                                   limits())) == "message.content");
}

BOOST_AUTO_TEST_CASE(patch_fields) {
  auto p = value_of(
      parse_conversation_patch({{"title", nullptr}, {"system_prompt", "terse"}}, limits()));
  BOOST_REQUIRE(p.title.has_value());
  BOOST_TEST(!p.title->has_value());  // null clears
  BOOST_TEST(**p.system_prompt == "terse");
  BOOST_TEST(!p.model.has_value());
  BOOST_TEST(first_field(parse_conversation_patch({{"model", nullptr}}, limits())) == "model");
  BOOST_TEST(first_field(parse_message_edit(json::object(), limits())) == "content");
}

BOOST_AUTO_TEST_CASE(on_disconnect_fields) {
  auto asked = [](const json& body) {
    return value_of(parse_send_message(body, limits())).params.cancel_on_disconnect;
  };
  BOOST_TEST(!asked({{"content", "x"}}).has_value());
  BOOST_TEST(*asked({{"content", "x"}, {"on_disconnect", "cancel"}}));
  BOOST_TEST(!*asked({{"content", "x"}, {"on_disconnect", "continue"}}));
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"on_disconnect", "stop"}},
                                            limits())) == "on_disconnect");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"on_disconnect", true}},
                                            limits())) == "on_disconnect");
  BOOST_TEST(*value_of(parse_regenerate({{"on_disconnect", "cancel"}}, limits()))
                  .params.cancel_on_disconnect);
  BOOST_TEST(first_field(parse_regenerate({{"on_disconnect", 1}}, limits())) == "on_disconnect");
  auto first = value_of(parse_create_conversation(
      {{"message", {{"content", "hi"}, {"on_disconnect", "cancel"}}}}, "u", limits()));
  BOOST_TEST(*first.first_message->cancel_on_disconnect);
  BOOST_TEST(
      *value_of(parse_ws_message(
                    {{"type", "message"}, {"content", "x"}, {"on_disconnect", "cancel"}}, limits()))
           .cancel_on_disconnect);
}

BOOST_AUTO_TEST_CASE(context_strategy_and_compact_fields) {
  auto created =
      value_of(parse_create_conversation({{"context_strategy", "summarize"}}, "u", limits()));
  BOOST_TEST(*created.context_strategy == "summarize");
  BOOST_TEST(!value_of(parse_create_conversation({{"context_strategy", nullptr}}, "u", limits()))
                  .context_strategy.has_value());
  BOOST_TEST(first_field(parse_create_conversation({{"context_strategy", "forget"}}, "u",
                                                   limits())) == "context_strategy");
  auto patched = value_of(parse_conversation_patch({{"context_strategy", nullptr}}, limits()));
  BOOST_REQUIRE(patched.context_strategy.has_value());
  BOOST_TEST(!patched.context_strategy->has_value());  // back to the default
  BOOST_TEST(!value_of(parse_conversation_patch(json::object(), limits())).context_strategy);
  BOOST_TEST(first_field(parse_conversation_patch({{"context_strategy", 1}}, limits())) ==
             "context_strategy");
  BOOST_TEST(!value_of(parse_compact(json::object(), limits())).has_value());
  BOOST_TEST(*value_of(parse_compact({{"model", "echo"}}, limits())) == "echo");
  BOOST_TEST(first_field(parse_compact({{"model", "gpt-9"}}, limits())) == "model");
}

BOOST_AUTO_TEST_CASE(resume_positions) {
  const std::string run = "0193a1b2-c3d6-7b12-8c3d-4e5f6a7b8c9d";
  auto none = value_of(parse_resume_position({}, std::nullopt));
  BOOST_TEST(!none.has_value());
  BOOST_TEST(!value_of(parse_resume_position({}, std::string_view())).has_value());
  auto from_header = value_of(parse_resume_position({}, run + ":7"));
  BOOST_TEST(from_header->run_id == run);
  BOOST_TEST(from_header->after == 7u);
  auto from_query = value_of(parse_resume_position({{"run_id", run}, {"after", "3"}}, run + ":9"));
  BOOST_TEST(from_query->after == 3u);  // the query wins over the header
  BOOST_TEST(value_of(parse_resume_position({{"run_id", run}}, std::nullopt))->after == 0u);
  for (std::string bad :
       std::vector<std::string>{"garbage", run, run + ":", run + ":x", run + ":-1", "nope:3",
                                run + ":3:4", run + ":99999999999999999999999"})
    BOOST_TEST(problem_of(parse_resume_position({}, bad)).status == 404, bad);
  BOOST_TEST(problem_of(parse_resume_position({{"run_id", "nope"}}, std::nullopt)).status == 404);
  BOOST_TEST(first_field(parse_resume_position({{"run_id", run}, {"after", "-1"}}, std::nullopt)) ==
             "after");
  BOOST_TEST(first_field(parse_resume_position({{"after", "1"}}, std::nullopt)) == "after");

  auto ws = value_of(parse_ws_resume({{"type", "resume"}, {"run_id", run}, {"after", 2}}));
  BOOST_TEST(ws->run_id == run);
  BOOST_TEST(ws->after == 2u);
  BOOST_TEST(!value_of(parse_ws_resume({{"type", "resume"}})).has_value());
  BOOST_TEST(value_of(parse_ws_resume({{"type", "resume"}, {"run_id", run}}))->after == 0u);
  BOOST_TEST(problem_of(parse_ws_resume({{"run_id", "x"}})).status == 404);
  BOOST_TEST(first_field(parse_ws_resume({{"run_id", 5}})) == "run_id");
  BOOST_TEST(first_field(parse_ws_resume({{"run_id", run}, {"after", -1}})) == "after");
  BOOST_TEST(first_field(parse_ws_resume({{"run_id", run}, {"after", 1.5}})) == "after");
  BOOST_TEST(first_field(parse_ws_resume({{"after", 1}})) == "after");
}

BOOST_AUTO_TEST_CASE(regenerate_fields) {
  auto plain = value_of(parse_regenerate(json::object(), limits()));
  BOOST_TEST(!plain.stream);
  BOOST_TEST(!plain.params.model.has_value());
  auto streamed = value_of(parse_regenerate({{"stream", true}, {"model", "echo"}}, limits()));
  BOOST_TEST(streamed.stream);
  BOOST_TEST(*streamed.params.model == "echo");
  BOOST_TEST(first_field(parse_regenerate({{"model", "gpt-9"}}, limits())) == "model");
  BOOST_TEST(first_field(parse_regenerate({{"stream", "yes"}}, limits())) == "stream");
  BOOST_TEST(first_field(parse_send_message({{"content", "x"}, {"stream", 1}}, limits())) ==
             "stream");
}

BOOST_AUTO_TEST_CASE(query_strings) {
  auto h = value_of(parse_history_query({{"limit", "5"}, {"before", "9"}}));
  BOOST_TEST(h.limit == 5u);
  BOOST_TEST(*h.before == 9);
  BOOST_TEST(value_of(parse_history_query({})).limit == 50u);
  BOOST_TEST(first_field(parse_history_query({{"limit", "0"}})) == "limit");
  BOOST_TEST(first_field(parse_history_query({{"limit", "201"}})) == "limit");
  BOOST_TEST(first_field(parse_history_query({{"limit", "ten"}})) == "limit");
  BOOST_TEST(first_field(parse_history_query({{"after", "-1"}})) == "after");
  BOOST_TEST(first_field(parse_history_query({{"after", "1"}, {"before", "5"}})) == "before");
  BOOST_TEST(first_field(parse_history_query({{"before", "0"}})) == "before");
  BOOST_TEST(first_field(parse_history_query({{"before", "abc"}})) == "before");

  BOOST_TEST(value_of(parse_list_query({})).limit == 20u);
  BOOST_TEST(first_field(parse_list_query({{"limit", "101"}})) == "limit");
  BOOST_TEST(first_field(parse_list_query({{"cursor", "garbage"}})) == "cursor");
  conversation_cursor c{1795352707123, "01a20421-86a4-75e1-b9c5-9c9695ddd071"};
  auto round = value_of(parse_list_query({{"cursor", encode_cursor(c)}}));
  BOOST_TEST(round.cursor->updated_at == c.updated_at);
  BOOST_TEST(round.cursor->id == c.id);

  BOOST_TEST(value_of(parse_usage_query({{"from", "2026-01-01"}})).to == "9999-12-31");
  BOOST_TEST(first_field(parse_usage_query({{"from", "2026-13-01"}})) == "from");
  BOOST_TEST(first_field(parse_usage_query({{"from", "2026-02-01"}, {"to", "2026-01-01"}})) ==
             "from");
}

BOOST_AUTO_TEST_CASE(user_ids) {
  BOOST_TEST(is_valid_user_id("alice@example.com"));
  BOOST_TEST(is_valid_user_id("org:team-1.user_2"));
  BOOST_TEST(!is_valid_user_id(""));
  BOOST_TEST(!is_valid_user_id("has space"));
  BOOST_TEST(!is_valid_user_id(std::string(129, 'a')));
  BOOST_TEST(is_valid_user_id(std::string(128, 'a')));
}

BOOST_AUTO_TEST_CASE(resources_render_as_the_contract_shows) {
  conversation_record c;
  c.id = "c1";
  c.user_id = "alice";
  c.model = "echo";
  c.metadata_json = "{\"k\":\"v\"}";
  c.created_at = 1795352707123;
  c.updated_at = 1795352707123;
  c.usage = {120, 48, 0.5};
  auto j = to_json(c);
  BOOST_TEST(j["title"].is_null());
  BOOST_TEST(j["metadata"]["k"] == "v");
  BOOST_TEST(j["created_at"] == "2026-11-22T13:05:07.123Z");
  BOOST_TEST(j["usage"]["total_tokens"] == 168);

  message_record m;
  m.id = "m1";
  m.role = "user";
  m.content = "hi";
  auto mj = nlohmann::json::parse(message_json(m));
  BOOST_TEST(mj["edited_at"].is_null());
  BOOST_TEST(!mj.contains("model"));  // only on provider replies
  m.model = "echo";
  m.finish_reason = "stop";
  m.prompt_tokens = 60;
  m.completion_tokens = 24;
  mj = nlohmann::json::parse(message_json(m));
  BOOST_TEST(mj["usage"]["completion_tokens"] == 24);
  BOOST_TEST(mj["finish_reason"] == "stop");

  auto models = to_json(*registry());
  BOOST_TEST(models["data"][0]["id"] == "echo");
  BOOST_TEST(models["data"][0]["provider"] == "builtin");
  BOOST_TEST(models["data"][0]["default"] == true);
}

BOOST_AUTO_TEST_CASE(failures_map_to_statuses_in_one_place) {
  BOOST_TEST(to_problem({errc::not_found, "x"}).status == 404);
  BOOST_TEST(to_problem({errc::conflict, "x"}).status == 409);
  auto q = to_problem({errc::queue_full, "x"});
  BOOST_TEST(q.status == 429);
  BOOST_TEST(q.retry_after_s.has_value());
  auto db = to_problem({errc::db_unavailable, "x"});
  BOOST_TEST(db.status == 503);
  BOOST_TEST(db.retry_after_s.has_value());
  failure provider{errc::provider_error, "upstream failed"};
  provider.message_id = "m1";
  BOOST_TEST(to_problem(provider).status == 502);
  BOOST_TEST(to_problem({errc::provider_timeout, "x"}).status == 504);
  BOOST_TEST(to_problem({errc::internal, ""}).status != 500);

  auto body = json::parse(render_problem(to_problem(provider), "req-1"));
  BOOST_TEST(body["title"] == "Bad Gateway");
  BOOST_TEST(body["status"] == 502);
  BOOST_TEST(body["message_id"] == "m1");
  BOOST_TEST(body["request_id"] == "req-1");
  auto invalid = json::parse(render_problem(invalid_field("content", "is required"), "r"));
  BOOST_TEST(invalid["errors"][0]["field"] == "content");
}

BOOST_AUTO_TEST_CASE(idempotency_keys_and_fingerprints) {
  BOOST_TEST(is_valid_idempotency_key("abc-123"));
  BOOST_TEST(!is_valid_idempotency_key(""));
  BOOST_TEST(!is_valid_idempotency_key(std::string(256, 'k')));
  BOOST_TEST(!is_valid_idempotency_key("has space"));
  auto a = request_fingerprint("POST", "/v1/conversations", "{\"a\":1}");
  BOOST_TEST(a == request_fingerprint("POST", "/v1/conversations", "{\"a\":1}"));
  BOOST_TEST(a != request_fingerprint("POST", "/v1/conversations", "{\"a\":2}"));
  BOOST_TEST(request_fingerprint("P", "ab", "c") != request_fingerprint("P", "a", "bc"));
  idempotency_locks locks;
  BOOST_TEST(locks.try_lock("u", "k"));
  BOOST_TEST(!locks.try_lock("u", "k"));
  BOOST_TEST(locks.try_lock("v", "k"));
  locks.unlock("u", "k");
  BOOST_TEST(locks.try_lock("u", "k"));
}

BOOST_AUTO_TEST_CASE(text_a_database_cannot_store_is_refused_by_field) {
  const std::string nul("a\0b", 3);  // PostgreSQL's text has no room for U+0000
  BOOST_TEST(first_field(parse_create_conversation({{"title", nul}}, "a", limits())) == "title");
  BOOST_TEST(first_field(parse_create_conversation({{"message", nul}}, "a", limits())) ==
             "message.content");
  BOOST_TEST(first_field(parse_conversation_patch({{"system_prompt", nul}}, limits())) ==
             "system_prompt");
  BOOST_TEST(first_field(parse_send_message({{"content", nul}}, limits())) == "content");
  BOOST_TEST(first_field(parse_message_edit({{"content", nul}}, limits())) == "content");
  // Metadata is stored as JSON text, where U+0000 is the escape \u0000.
  auto c = value_of(parse_create_conversation({{"metadata", {{"k", nul}}}}, "a", limits()));
  BOOST_TEST(c.metadata_json == "{\"k\":\"a\\u0000b\"}");
}

BOOST_AUTO_TEST_CASE(websocket_messages) {
  auto p = value_of(parse_ws_message(
      {{"type", "message"}, {"content", "hi"}, {"model", "echo"}, {"max_tokens", 5}}, limits()));
  BOOST_TEST(p.content == "hi");
  BOOST_TEST(*p.model == "echo");
  BOOST_TEST(*p.max_tokens == 5u);
  // Always a user message with a reply, whatever the frame says.
  auto forced = value_of(parse_ws_message(
      {{"type", "message"}, {"content", "x"}, {"role", "system"}, {"reply", false}}, limits()));
  BOOST_TEST(forced.role == "user");
  BOOST_TEST(forced.reply);
  BOOST_TEST(first_field(parse_ws_message({{"content", "x"}}, limits())) == "type");
  BOOST_TEST(first_field(parse_ws_message({{"type", "ping"}, {"content", "x"}}, limits())) ==
             "type");
  BOOST_TEST(first_field(parse_ws_message({{"type", 1}, {"content", "x"}}, limits())) == "type");
  BOOST_TEST(first_field(parse_ws_message({{"type", "message"}}, limits())) == "content");
  BOOST_TEST(first_field(parse_ws_message(
                 {{"type", "message"}, {"content", "x"}, {"model", "nope"}}, limits())) == "model");
}
