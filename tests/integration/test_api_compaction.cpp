#define BOOST_TEST_MODULE api_compaction
#include <boost/test/unit_test.hpp>

// Context compaction against the real server and two mock upstreams: one
// answers the replies (a model with a small window), the other writes the
// summaries, so each one's request log is what it was asked. What the
// summary request carries, what the next prompt is made of, a failing
// summary, how often summaries come, branches and forks, the manual route.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/mock_upstream_process.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"

#include <memory>

using namespace parley::testing;
using nlohmann::json;

namespace {

mock_upstream& replies() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

mock_upstream& summaries() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

/// "small" answers on one mock with a window of 400 tokens (300 for the
/// messages), "medium" with 1300; "summarizer" writes summaries on the other.
std::string compaction_toml() {
  return "[context]\nsummary_model = \"summarizer\"\nkeep_recent_tokens = 60\n"
         "[[providers]]\nname = \"replies\"\nkind = \"openai\"\nbase_url = \"" +
         replies().openai_base_url() +
         "\"\nmax_retries = 0\n"
         "[[providers]]\nname = \"summaries\"\nkind = \"openai\"\nbase_url = \"" +
         summaries().openai_base_url() +
         "\"\nmax_retries = 0\n"
         "[[models]]\nid = \"small\"\nprovider = \"replies\"\nupstream = \"small-up\"\n"
         "context_window = 400\nmax_output_tokens = 100\n"
         "[[models]]\nid = \"medium\"\nprovider = \"replies\"\nupstream = \"medium-up\"\n"
         "context_window = 1300\nmax_output_tokens = 100\n"
         "[[models]]\nid = \"summarizer\"\nprovider = \"summaries\"\nupstream = \"sum-up\"\n"
         "context_window = 100000\nmax_output_tokens = 1000\n";
}

server_process& server() {
  static auto s =
      std::make_unique<server_process>(server_options{.config_toml = compaction_toml()});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

/// A user message of about 30 tokens, numbered.
std::string turn_text(int i) {
  return "turn " + std::to_string(i) + " " + std::string(100, 'a' + i % 26);
}

json send(http_client& c, const std::string& id, const json& body) {
  auto r = c.post(conversation_path(id, "/messages"), body);
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body);
  return r.json();
}

json summaries_of(http_client& c, const std::string& id) {
  auto r = c.get(conversation_path(id, "/summaries"));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  return r.json()["data"];
}

/// The messages of a request a mock received.
json messages_of(const json& request) { return request["body"]["messages"]; }

bool mentions(const json& messages, const std::string& text) {
  for (auto& m : messages)
    if (m["content"].is_string() && m["content"].get<std::string>().find(text) != std::string::npos)
      return true;
  return false;
}

bool starts_with_summary(const json& message) {
  return message["role"] == "system" && message["content"].get<std::string>().rfind(
                                            "Summary of the earlier conversation:", 0) == 0;
}

/// Sends turns to the conversation until the summaries mock was asked once
/// more than `asked_before`; returns the number of the turn that did it.
int send_until_summarized(http_client& c, const std::string& id, int from,
                          std::size_t asked_before) {
  for (int i = from; i < from + 40; ++i) {
    send(c, id, {{"content", turn_text(i)}});
    if (summaries().requests().size() > asked_before) return i;
  }
  BOOST_FAIL("no summary was asked for in 40 turns");
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_summary_carries_the_oldest_messages_and_the_next_prompt_starts_with_it) {
  auto c = client("summarized");
  auto id = create_conversation(
      c,
      {{"model", "small"}, {"system_prompt", "You are terse."}, {"context_strategy", "summarize"}});
  BOOST_TEST(c.get(conversation_path(id)).json()["context_strategy"] == "summarize");
  summaries().clear_requests();
  replies().clear_requests();
  auto at = send_until_summarized(c, id, 1, 0);
  BOOST_TEST(at > 2);  // not before the prompt nears the budget

  // The summary request: the instruction, the oldest messages, the ask.
  auto asked = messages_of(summaries().requests().at(0));
  BOOST_TEST(asked.front()["role"] == "system");
  BOOST_TEST(mentions(asked, turn_text(1)));
  BOOST_TEST(!mentions(asked, turn_text(at)));  // the message being answered stays verbatim
  BOOST_TEST(asked.back()["role"] == "user");
  BOOST_TEST(summaries().requests().at(0)["body"]["model"] == "sum-up");

  // The reply's prompt: the system prompt, the summary, then the newer messages.
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(prompt[0]["content"] == "You are terse.");
  BOOST_TEST(starts_with_summary(prompt[1]));
  BOOST_TEST(prompt[1]["content"].get<std::string>().find("Mock: Summarize") != std::string::npos);
  BOOST_TEST(!mentions(prompt, turn_text(1)));
  BOOST_TEST(prompt.back()["content"] == turn_text(at));

  auto stored = summaries_of(c, id);
  BOOST_REQUIRE(stored.size() == 1u);
  auto& s = stored[0];
  BOOST_TEST(s["model"] == "summarizer");
  BOOST_TEST(s["tokens_before"].get<int>() > s["tokens_after"].get<int>());
  BOOST_TEST(s["content"].get<std::string>().rfind("Mock:", 0) == 0u);
  // It covers a stored message of the conversation; none is deleted.
  auto messages = all_messages(c, id);
  BOOST_TEST(messages.size() == static_cast<std::size_t>(2 * at));
  bool covered_is_stored = false;
  for (auto& m : messages) covered_is_stored |= m["id"] == s["covers_through_message_id"];
  BOOST_TEST(covered_is_stored);

  // The next turn keeps using it and does not summarize again.
  send(c, id, {{"content", turn_text(at + 1)}});
  BOOST_TEST(summaries().requests().size() == 1u);
  BOOST_TEST(starts_with_summary(messages_of(replies().requests().back())[1]));
  // The summary is metered to the user like any request.
  auto usage = c.get("/v1/usage").json();
  bool metered = false;
  for (auto& m : usage["by_model"]) metered |= m["model"] == "summarizer";
  BOOST_TEST(metered);
}

BOOST_AUTO_TEST_CASE(a_failed_summary_falls_back_to_truncation_and_is_tried_again_next_turn) {
  auto c = client("failing-summary");
  auto id = create_conversation(c, {{"model", "small"}, {"context_strategy", "summarize"}});
  summaries().clear_requests();
  summaries().push_behaviors(json::array({{{"status", 500}}}));
  auto at = send_until_summarized(c, id, 1, 0);
  // The turn was answered anyway, without a summary; none is stored.
  BOOST_TEST(summaries_of(c, id).empty());
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(!starts_with_summary(prompt[0]));
  BOOST_TEST(prompt.back()["content"] == turn_text(at));
  // The next turn asks again, and this time the summary is used.
  send(c, id, {{"content", turn_text(at + 1)}});
  BOOST_TEST(summaries().requests().size() == 2u);
  BOOST_TEST(summaries_of(c, id).size() == 1u);
  BOOST_TEST(starts_with_summary(messages_of(replies().requests().back())[0]));
}

BOOST_AUTO_TEST_CASE(summaries_come_with_the_tokens_written_not_with_every_turn) {
  auto c = client("many-turns");
  auto count_summaries = [&](const std::string& model) {
    auto id = create_conversation(c, {{"model", model}, {"context_strategy", "summarize"}});
    summaries().clear_requests();
    int previous_turn = -10, closest = 1000;
    for (int i = 1; i <= 200; ++i) {
      auto before = summaries().requests().size();
      send(c, id, {{"content", turn_text(i)}});
      if (summaries().requests().size() > before) {
        closest = std::min(closest, i - previous_turn);
        previous_turn = i;
      }
    }
    // Never two turns in a row: a summary makes room for several.
    BOOST_TEST(closest >= 2, model << ": summaries " << closest << " turn(s) apart");
    return summaries().requests().size();
  };
  auto small = count_summaries("small");
  auto medium = count_summaries("medium");
  BOOST_TEST_MESSAGE("200 turns: " << small << " summaries with 300 tokens, " << medium
                                   << " with 1200");
  BOOST_TEST(small >= 10u);
  BOOST_TEST(small < 100u);  // far fewer than turns
  // Four times the budget: about a quarter as many summaries.
  BOOST_TEST(medium * 3 < small);
  BOOST_TEST(medium >= 2u);
}

BOOST_AUTO_TEST_CASE(a_plain_conversation_is_truncated_not_summarized) {
  auto c = client("truncated");
  auto id = create_conversation(c, {{"model", "small"}});
  BOOST_TEST(c.get(conversation_path(id)).json()["context_strategy"].is_null());
  summaries().clear_requests();
  for (int i = 1; i <= 12; ++i) send(c, id, {{"content", turn_text(i)}});
  BOOST_TEST(summaries().requests().empty());
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(!mentions(prompt, turn_text(1)));  // left out
  // Switched on by PATCH, and off again with null.
  auto patched = c.patch(conversation_path(id), {{"context_strategy", "summarize"}});
  BOOST_TEST(patched.json()["context_strategy"] == "summarize");
  send(c, id, {{"content", turn_text(13)}});
  BOOST_TEST(summaries().requests().size() == 1u);
  BOOST_TEST(c.patch(conversation_path(id), {{"context_strategy", nullptr}})
                 .json()["context_strategy"]
                 .is_null());
  expect_problem(c.patch(conversation_path(id), {{"context_strategy", "forget"}}), 422);
  expect_problem(c.post("/v1/conversations", {{"context_strategy", 3}}), 422);
}

BOOST_AUTO_TEST_CASE(branches_and_forks_use_the_summary_of_their_own_messages) {
  auto c = client("branchy");
  auto id = create_conversation(c, {{"model", "small"}, {"context_strategy", "summarize"}});
  summaries().clear_requests();
  auto first = send(c, id, {{"content", turn_text(1)}});
  auto at = send_until_summarized(c, id, 2, 0);
  auto summary = summaries_of(c, id).at(0);
  auto leaf = c.get(conversation_path(id)).json()["active_leaf_id"].get<std::string>();

  // A new branch from the first reply: the summary covers messages it does not have.
  send(c, id, {{"content", "another way"}, {"parent_id", first["reply"]["id"]}});
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(!starts_with_summary(prompt[0]));
  BOOST_TEST(mentions(prompt, turn_text(1)));
  BOOST_TEST(!mentions(prompt, turn_text(2)));
  // Back to the summarized branch: its summary again.
  BOOST_TEST(c.patch(conversation_path(id), {{"active_message_id", leaf}}).status == 200);
  send(c, id, {{"content", turn_text(at + 1)}});
  BOOST_TEST(starts_with_summary(messages_of(replies().requests().back())[0]));

  // A fork of the summarized branch takes the summary along, through its copy.
  auto fork = c.post(conversation_path(id, "/fork"), {{"message_id", leaf}});
  BOOST_REQUIRE(fork.status == 201);
  auto fork_id = fork.json()["id"].get<std::string>();
  BOOST_TEST(fork.json()["context_strategy"] == "summarize");
  auto copied = summaries_of(c, fork_id);
  BOOST_REQUIRE(copied.size() == 1u);
  BOOST_TEST(copied[0]["content"] == summary["content"]);
  BOOST_TEST(copied[0]["id"] != summary["id"]);
  bool through_a_copy = false;
  for (auto& m : all_messages(c, fork_id))
    through_a_copy |= m["id"] == copied[0]["covers_through_message_id"];
  BOOST_TEST(through_a_copy);
  send(c, fork_id, {{"content", "in the fork"}});
  auto fork_prompt = messages_of(replies().requests().back());
  BOOST_TEST(starts_with_summary(fork_prompt[0]));
  BOOST_TEST(!mentions(fork_prompt, turn_text(1)));
  // A fork from before the summary's message has none.
  auto early = c.post(conversation_path(id, "/fork"), {{"message_id", first["reply"]["id"]}});
  BOOST_TEST(summaries_of(c, early.json()["id"].get<std::string>()).empty());
}

BOOST_AUTO_TEST_CASE(the_message_being_answered_counts_and_is_never_folded) {
  auto c = client("big-message");
  auto id = create_conversation(c, {{"model", "small"}, {"context_strategy", "summarize"}});
  for (int i = 1; i <= 2; ++i) send(c, id, {{"content", turn_text(i)}});
  summaries().clear_requests();
  // Well under the threshold so far; this one alone brings the prompt past it.
  auto big = "big " + std::string(700, 'z');
  send(c, id, {{"content", big}});
  BOOST_REQUIRE(summaries().requests().size() == 1u);
  auto asked = messages_of(summaries().requests().at(0));
  BOOST_TEST(mentions(asked, turn_text(1)));
  BOOST_TEST(!mentions(asked, big));
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(starts_with_summary(prompt[0]));
  BOOST_TEST(prompt.back()["content"] == big);
}

BOOST_AUTO_TEST_CASE(regenerate_compacts_without_folding_what_it_answers) {
  auto c = client("regenerating");
  // Long enough, unsummarized: it was truncated so far.
  auto id = create_conversation(c, {{"model", "small"}});
  int last = 8;
  for (int i = 1; i <= last; ++i) send(c, id, {{"content", turn_text(i)}});
  BOOST_REQUIRE(c.patch(conversation_path(id), {{"context_strategy", "summarize"}}).status == 200);
  summaries().clear_requests();
  auto r = c.post(conversation_path(id, "/regenerate"), json::object());
  BOOST_REQUIRE(r.status == 201);
  BOOST_REQUIRE(summaries().requests().size() == 1u);
  auto asked = messages_of(summaries().requests().at(0));
  BOOST_TEST(!mentions(asked, turn_text(last)));  // the message the reply answers
  auto prompt = messages_of(replies().requests().back());
  BOOST_TEST(starts_with_summary(prompt[0]));
  BOOST_TEST(prompt.back()["role"] == "user");
  BOOST_TEST(prompt.back()["content"] == turn_text(last));
}

BOOST_AUTO_TEST_CASE(a_streamed_exchange_that_compacts_says_so_first) {
  auto c = client("streamed-compaction");
  auto id = create_conversation(c, {{"model", "small"}, {"context_strategy", "summarize"}});
  summaries().clear_requests();
  int i = 1;
  for (;; ++i) {
    BOOST_REQUIRE(i < 40);
    auto r = sse_post(server().base_url(), conversation_path(id, "/messages"),
                      {{"content", turn_text(i)}, {"stream", true}}, "streamed-compaction");
    BOOST_REQUIRE(r.status == 200);
    std::vector<std::string> names;
    for (auto& e : r.events) names.push_back(e.name);
    auto at = std::find(names.begin(), names.end(), "compaction");
    if (at == names.end()) continue;
    BOOST_TEST(names.front() == "message");
    BOOST_TEST((at == names.begin() + 1));  // before any delta
    BOOST_TEST(names.back() == "done");
    auto& event = r.events[static_cast<std::size_t>(at - names.begin())];
    BOOST_TEST(event.data == summaries_of(c, id).back());
    BOOST_TEST(!event.id.empty());  // numbered in the run like the rest
    break;
  }
}

BOOST_AUTO_TEST_CASE(compact_summarizes_on_request) {
  auto c = client("manual");
  auto id = create_conversation(c, {{"model", "small"}});
  // One message: nothing to fold.
  send(c, id, {{"content", "only"}});
  expect_problem(c.post(conversation_path(id, "/compact"), json::object()), 409);
  for (int i = 1; i <= 3; ++i) send(c, id, {{"content", turn_text(i)}});
  summaries().clear_requests();
  auto made = c.post(conversation_path(id, "/compact"), json::object());
  BOOST_REQUIRE(made.status == 201);
  auto s = made.json();
  BOOST_TEST(s["model"] == "summarizer");
  BOOST_TEST(s["id"].is_string());
  BOOST_TEST(s["created_at"].is_string());
  BOOST_TEST(summaries().requests().size() == 1u);
  BOOST_TEST(mentions(messages_of(summaries().requests().at(0)), "only"));
  BOOST_TEST(summaries_of(c, id).back() == s);
  // A summary made by hand is used even where the strategy is truncate.
  send(c, id, {{"content", "after"}});
  BOOST_TEST(starts_with_summary(messages_of(replies().requests().back())[0]));
  // Another model by name; unknown ones, bad bodies, others' conversations.
  BOOST_TEST(c.post(conversation_path(id, "/compact"), {{"model", "medium"}}).status != 422);
  expect_problem(c.post(conversation_path(id, "/compact"), {{"model", "nope"}}), 422);
  expect_problem(c.post(conversation_path(id, "/compact"), {{"model", 5}}), 422);
  expect_problem(client("stranger").post(conversation_path(id, "/compact"), json::object()), 404);
  expect_problem(client("stranger").get(conversation_path(id, "/summaries")), 404);
  // A failing summarizer is a provider error; nothing is stored.
  auto before = summaries_of(c, id).size();
  send(c, id, {{"content", turn_text(7)}});
  send(c, id, {{"content", turn_text(8)}});
  summaries().push_behaviors(json::array({{{"status", 500}}}));
  auto failed = c.post(conversation_path(id, "/compact"), json::object());
  BOOST_TEST(failed.status == 502);
  BOOST_TEST(summaries_of(c, id).size() == before);
}

BOOST_AUTO_TEST_CASE(compact_is_refused_once_the_daily_tokens_are_spent) {
  server_process quota(server_options{.config_toml = "[limits]\ntokens_per_day = 60\n"});
  http_client c(quota.base_url(), "spent");
  auto id = create_conversation(c);
  // One exchange with `echo` spends more than the day's 60 tokens.
  send(c, id, {{"content", turn_text(1)}});
  expect_problem(c.post(conversation_path(id, "/messages"), {{"content", "more"}}), 429);
  auto refused = c.post(conversation_path(id, "/compact"), json::object());
  expect_problem(refused, 429);
  BOOST_TEST(!refused.header("retry-after").empty());
  BOOST_TEST(c.get(conversation_path(id, "/summaries")).json()["data"].empty());
}
