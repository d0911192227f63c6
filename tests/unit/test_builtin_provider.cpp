#define BOOST_TEST_MODULE builtin_provider
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"
#include "providers/builtin_provider.hpp"
#include "providers/model_registry.hpp"
#include "providers/token_estimator.hpp"
#include "support/completion_collector.hpp"

#include <chrono>
#include <mutex>
#include <thread>

using namespace parley;

namespace {

using collector = testing::completion_collector;

completion_request ask(std::string text, std::uint32_t max_tokens = 512) {
  completion_request r;
  r.upstream_model = "echo";
  r.messages = {{"system", "be brief"},
                {"user", "old"},
                {"assistant", "Echo: old"},
                {"user", std::move(text)}};
  r.max_tokens = max_tokens;
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(echo_answers_the_last_user_message) {
  BOOST_TEST(echo_reply({{"user", "a"}, {"user", "b c"}}) == "Echo: b c");
  BOOST_TEST(echo_reply({{"system", "x"}}) == "Echo:");
}

BOOST_AUTO_TEST_CASE(words_concatenate_to_the_text) {
  auto words = split_words("Echo:  hello\nworld ");
  BOOST_REQUIRE(words.size() == 3u);
  BOOST_TEST(words[0] == "Echo:");
  BOOST_TEST(words[1] == "  hello");
  BOOST_TEST(words[2] == "\nworld ");
  BOOST_TEST(split_words("").empty());
}

BOOST_AUTO_TEST_CASE(zero_latency_answers_within_start) {
  auto p = make_builtin_provider(0, 0);
  collector c;
  p->start(ask("hello there"), c.callbacks());
  BOOST_REQUIRE(c.seen().result.has_value());
  BOOST_REQUIRE(bool(*c.seen().result));
  BOOST_TEST(c.text() == "Echo: hello there");
  BOOST_TEST(c.seen().deltas.size() == 3u);
  BOOST_TEST(((**c.seen().result).reason == finish_reason::stop));
  BOOST_TEST((**c.seen().result).usage.prompt_tokens > 0);
  BOOST_TEST((**c.seen().result).usage.completion_tokens == 5);  // 17 characters
}

BOOST_AUTO_TEST_CASE(max_tokens_cuts_with_length) {
  auto p = make_builtin_provider(0, 0);
  collector c;
  p->start(ask("one two three four five six seven eight", 3), c.callbacks());
  BOOST_REQUIRE(c.seen().result.has_value());
  BOOST_TEST(((**c.seen().result).reason == finish_reason::length));
  BOOST_TEST((**c.seen().result).usage.completion_tokens <= 3);
  BOOST_TEST(c.text().rfind("Echo:", 0) == 0u);
  // The longest run of whole words within 3 tokens (12 characters): one more is over.
  BOOST_TEST(c.text() == "Echo: one");
  BOOST_TEST(estimate_tokens("Echo: one two") > 3);
}

BOOST_AUTO_TEST_CASE(usage_is_the_engines_estimate_of_prompt_and_reply) {
  auto p = make_builtin_provider(0, 0);
  collector c;
  auto request = ask("héllo wörld, this is a longer message");
  auto prompt_tokens = estimate_message_tokens("be brief") + estimate_message_tokens("old") +
                       estimate_message_tokens("Echo: old") +
                       estimate_message_tokens("héllo wörld, this is a longer message");
  BOOST_TEST(request.messages.estimated_tokens() == prompt_tokens);
  p->start(std::move(request), c.callbacks());
  BOOST_REQUIRE(c.seen().result.has_value());
  BOOST_TEST((**c.seen().result).usage.prompt_tokens == prompt_tokens);
  BOOST_TEST((**c.seen().result).usage.completion_tokens == estimate_tokens(c.text()));
}

BOOST_AUTO_TEST_CASE(latency_uses_timers_and_streams_word_by_word) {
  auto p = make_builtin_provider(100, 20);
  collector c;
  auto start = std::chrono::steady_clock::now();
  p->start(ask("a b c d"), c.callbacks());
  BOOST_TEST(c.seen().deltas.empty());  // start returned before any word
  BOOST_REQUIRE(c.wait(std::chrono::seconds(5)));
  BOOST_TEST(c.text() == "Echo: a b c d");
  BOOST_TEST(c.seen().deltas.size() == 5u);
  BOOST_TEST((c.seen().first_delta - start) >= std::chrono::milliseconds(100));
}

BOOST_AUTO_TEST_CASE(cancel_finishes_with_cancelled_and_the_text_so_far) {
  auto p = make_builtin_provider(10, 200);
  collector c;
  auto handle = p->start(ask("one two three four five six"), c.callbacks());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  handle->cancel();
  BOOST_REQUIRE(c.wait(std::chrono::seconds(5)));
  BOOST_TEST(((**c.seen().result).reason == finish_reason::cancelled));
  BOOST_TEST(c.seen().deltas.size() < 7u);
  handle->cancel();  // a second cancel is harmless
}

BOOST_AUTO_TEST_CASE(registry_has_echo_by_default_and_checks_references) {
  settings s;
  auto r = model_registry::build(s);
  BOOST_REQUIRE(r->find("echo"));
  BOOST_TEST(r->default_model().id == "echo");
  BOOST_TEST(r->find("echo")->context_window == 8192u);
  BOOST_TEST(r->find("echo")->max_output_tokens == 512u);
  BOOST_TEST(!r->find("gpt-9"));

  settings bad_default;
  bad_default.default_model = "nope";
  BOOST_CHECK_THROW(model_registry::build(bad_default), config_error);

  settings unknown_provider;
  unknown_provider.models.push_back({"m", "nowhere"});
  BOOST_CHECK_THROW(model_registry::build(unknown_provider), config_error);

  settings priced;
  priced.models.push_back({"tiny", "builtin", "", 64, 16, 1.0, 2.0, "echo"});
  auto pr = model_registry::build(priced);
  BOOST_TEST(pr->find("tiny")->cost_usd(1000000, 500000) == 2.0);
  BOOST_TEST(pr->find("tiny")->context_budget() == 48);
}
