#define BOOST_TEST_MODULE http_provider
#include <boost/test/unit_test.hpp>

// The HTTP providers against the mock upstream over real sockets: both
// protocols, whole and streamed answers, and every fault the mock can play.

#include "providers/http_provider.hpp"
#include "support/completion_collector.hpp"
#include "support/mock_upstream_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

using namespace parley;
using namespace parley::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

enum class protocol { openai, anthropic };

struct fixture {
  mock_upstream mock;

  provider_settings settings(protocol kind) {
    provider_settings p;
    p.name = "mock";
    p.kind = kind == protocol::openai ? "openai" : "anthropic";
    p.base_url = kind == protocol::openai ? mock.openai_base_url() : mock.base_url();
    p.api_key = "test-key-123";
    p.timeout_ms = 10000;
    return p;
  }

  std::shared_ptr<provider> make(protocol kind,
                                 std::function<void(provider_settings&)> tweak = {}) {
    auto p = settings(kind);
    if (tweak) tweak(p);
    return make_http_provider(
        p, kind == protocol::openai ? make_openai_protocol() : make_anthropic_protocol());
  }

  std::size_t request_count() { return mock.requests().size(); }
};

completion_request ask(std::string text, bool stream = false) {
  completion_request r;
  r.upstream_model = "up-model";
  r.messages = {{"system", "Be terse."}, {"user", std::move(text)}};
  r.max_tokens = 100;
  r.stream = stream;
  return r;
}

/// Runs one completion to its end (at most 20 s).
completion_collector& run(provider& p, completion_request r, completion_collector& c) {
  p.start(std::move(r), c.callbacks());
  BOOST_REQUIRE(c.wait(std::chrono::seconds(20)));
  return c;
}

failure failed(completion_collector& c) {
  if (*c.seen().result)
    BOOST_FAIL("the completion succeeded (" + std::string(to_string((**c.seen().result).reason)) +
               "): " + c.text());
  return c.seen().result->error();
}

completion_result succeeded(completion_collector& c) {
  if (!*c.seen().result) BOOST_FAIL("the completion failed: " + c.seen().result->error().detail);
  return **c.seen().result;
}

/// A loopback port nothing listens on.
std::uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(http_provider, fixture)

BOOST_AUTO_TEST_CASE(whole_answers_in_both_protocols) {
  for (auto kind : {protocol::openai, protocol::anthropic}) {
    mock.clear_requests();
    auto p = make(kind);
    completion_collector c;
    auto r = succeeded(run(*p, ask("hello there"), c));
    BOOST_TEST(c.text() == "Mock: hello there");
    BOOST_TEST(c.seen().deltas.size() == 1u);  // a whole answer arrives at once
    BOOST_TEST((r.reason == finish_reason::stop));
    BOOST_TEST(r.usage_reported);
    BOOST_TEST(r.usage.prompt_tokens > 0);
    BOOST_TEST(r.usage.completion_tokens == 3);

    auto seen = mock.requests();
    BOOST_REQUIRE(seen.size() == 1u);
    auto& body = seen[0]["body"];
    BOOST_TEST(body["model"] == "up-model");
    BOOST_TEST(!body.contains("stream"));
    if (kind == protocol::openai) {
      BOOST_TEST(seen[0]["path"] == "/v1/chat/completions");
      BOOST_TEST(seen[0]["headers"]["authorization"] == "Bearer test-key-123");
      BOOST_TEST(body["messages"][0]["role"] == "system");
    } else {
      BOOST_TEST(seen[0]["path"] == "/v1/messages");
      BOOST_TEST(seen[0]["headers"]["x-api-key"] == "test-key-123");
      BOOST_TEST(seen[0]["headers"]["anthropic-version"] == "2023-06-01");
      BOOST_TEST(body["system"] == "Be terse.");
      BOOST_TEST(body["messages"].size() == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(streamed_answers_arrive_piece_by_piece) {
  for (auto kind : {protocol::openai, protocol::anthropic}) {
    mock.push_behaviors(json::array({{{"words", 6}, {"itl_ms", 150}}}));
    auto p = make(kind);
    completion_collector c;
    auto start = clock_type::now();
    p->start(ask("x", true), c.callbacks());
    BOOST_REQUIRE(c.wait(std::chrono::seconds(20)));
    auto r = succeeded(c);
    BOOST_TEST(c.text() == "w1 w2 w3 w4 w5 w6");
    BOOST_TEST(c.seen().deltas.size() == 6u);
    // The first piece came well before the last (5 gaps of 150 ms).
    BOOST_TEST(((c.seen().finished - c.seen().first_delta) >= milliseconds(500)));
    BOOST_TEST((c.seen().first_delta - start) < (c.seen().finished - start));
    BOOST_TEST(r.usage_reported);
    BOOST_TEST(r.usage.completion_tokens == 6);
    auto body = mock.requests().back()["body"];
    BOOST_TEST(body["stream"] == true);
  }
}

BOOST_AUTO_TEST_CASE(max_tokens_cut_is_length) {
  mock.push_behaviors(json::array({{{"words", 50}}}));
  auto p = make(protocol::anthropic);
  auto request = ask("x");
  request.max_tokens = 4;
  completion_collector c;
  auto r = succeeded(run(*p, request, c));
  BOOST_TEST((r.reason == finish_reason::length));
  BOOST_TEST(c.text() == "w1 w2 w3 w4");
}

BOOST_AUTO_TEST_CASE(server_errors_and_429_are_retried) {
  for (auto kind : {protocol::openai, protocol::anthropic}) {
    mock.clear_requests();
    mock.push_behaviors(json::array({{{"status", 500}}, {{"status", 503}}, json::object()}));
    auto p = make(kind);
    completion_collector c;
    succeeded(run(*p, ask("again"), c));
    BOOST_TEST(c.text() == "Mock: again");
    BOOST_TEST(request_count() == 3u);
  }
  mock.clear_requests();
  mock.push_behaviors(json::array({{{"status", 429}, {"retry_after", 1}}, json::object()}));
  auto p = make(protocol::openai);
  completion_collector c;
  auto start = clock_type::now();
  succeeded(run(*p, ask("later"), c));
  BOOST_TEST(((c.seen().finished - start) >= milliseconds(1000)));  // Retry-After honoured
  BOOST_TEST(request_count() == 2u);
}

BOOST_AUTO_TEST_CASE(retries_are_bounded) {
  mock.push_behaviors(json::array({{{"status", 503}}, {{"status", 503}}, {{"status", 503}}}));
  auto p = make(protocol::openai);
  completion_collector c;
  auto f = failed(run(*p, ask("x"), c));
  BOOST_TEST((f.code == errc::provider_error));
  BOOST_TEST(f.detail.find("503") != std::string::npos);
  BOOST_TEST(f.detail.find("3 attempts") != std::string::npos);
  BOOST_TEST(request_count() == 3u);

  // A Retry-After beyond the deadline ends it at once, and is passed on.
  mock.clear_requests();
  mock.push_behaviors(json::array({{{"status", 429}, {"retry_after", 30}}}));
  auto quick = make(protocol::openai, [](provider_settings& s) { s.timeout_ms = 2000; });
  completion_collector c2;
  auto limited = failed(run(*quick, ask("x"), c2));
  BOOST_TEST((limited.code == errc::provider_error));
  BOOST_TEST(limited.retry_after_s.value_or(0) == 30u);
  BOOST_TEST(request_count() == 1u);
}

BOOST_AUTO_TEST_CASE(client_errors_are_not_retried) {
  mock.push_behaviors(json::array({{{"status", 401}}}));
  auto p = make(protocol::anthropic);
  completion_collector c;
  auto f = failed(run(*p, ask("x"), c));
  BOOST_TEST((f.code == errc::provider_error));
  BOOST_TEST(f.detail.find("401") != std::string::npos);
  BOOST_TEST(f.detail.find("test-key-123") == std::string::npos);  // never the key
  BOOST_TEST(request_count() == 1u);
}

BOOST_AUTO_TEST_CASE(malformed_answers_fail) {
  for (bool stream : {false, true}) {
    mock.clear_requests();
    mock.push_behaviors(json::array({{{"fault", "malformed"}}}));
    auto p = make(protocol::openai);
    completion_collector c;
    auto f = failed(run(*p, ask("x", stream), c));
    BOOST_TEST((f.code == errc::provider_error));
    BOOST_TEST(f.detail.find("not JSON") != std::string::npos);
    BOOST_TEST(request_count() == 1u);
  }
}

BOOST_AUTO_TEST_CASE(a_cut_answer_is_retried_unless_text_was_streamed) {
  mock.push_behaviors(json::array({{{"fault", "cut"}, {"words", 40}}, {{"words", 3}}}));
  auto p = make(protocol::openai);
  completion_collector whole;
  succeeded(run(*p, ask("x"), whole));
  BOOST_TEST(whole.text() == "w1 w2 w3");
  BOOST_TEST(request_count() == 2u);

  for (auto kind : {protocol::openai, protocol::anthropic}) {
    mock.clear_requests();
    mock.clear_behaviors();  // the "words 3" left over, unused
    mock.push_behaviors(json::array({{{"fault", "cut"}, {"words", 40}}, {{"words", 3}}}));
    auto sp = make(kind);
    completion_collector streamed;
    auto f = failed(run(*sp, ask("x", true), streamed));
    BOOST_TEST((f.code == errc::provider_error));
    BOOST_TEST(!streamed.seen().deltas.empty());  // the caller saw text: no second attempt
    BOOST_TEST(request_count() == 1u);
  }
}

BOOST_AUTO_TEST_CASE(an_error_event_mid_stream_fails) {
  for (auto kind : {protocol::openai, protocol::anthropic}) {
    mock.push_behaviors(json::array({{{"fault", "error_event"}, {"words", 5}}}));
    auto p = make(kind);
    completion_collector c;
    auto f = failed(run(*p, ask("x", true), c));
    BOOST_TEST((f.code == errc::provider_error));
    BOOST_TEST(f.detail.find("reported an error") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(stalls_and_deadlines_time_out_and_free_the_upstream) {
  mock.push_behaviors(json::array({{{"fault", "stall_after_first"}, {"words", 5}}}));
  auto p = make(protocol::anthropic, [](provider_settings& s) { s.stall_timeout_ms = 300; });
  completion_collector stalled;
  auto start = clock_type::now();
  auto f = failed(run(*p, ask("x", true), stalled));
  BOOST_TEST((f.code == errc::provider_timeout));
  BOOST_TEST(f.detail.find("stalled") != std::string::npos);
  BOOST_TEST(((stalled.seen().finished - start) < milliseconds(3000)));

  mock.push_behaviors(json::array({{{"fault", "stall"}}}));
  auto q = make(protocol::openai, [](provider_settings& s) { s.timeout_ms = 500; });
  completion_collector silent;
  start = clock_type::now();
  auto t = failed(run(*q, ask("x"), silent));
  BOOST_TEST((t.code == errc::provider_timeout));
  BOOST_TEST(((silent.seen().finished - start) >= milliseconds(450)));
  BOOST_TEST(((silent.seen().finished - start) < milliseconds(3000)));

  // Both connections were closed: the mock sees the requests abandoned.
  for (int i = 0; i < 100 && mock.stats()["in_flight"] != 0; ++i)
    std::this_thread::sleep_for(milliseconds(20));
  BOOST_TEST(mock.stats()["in_flight"] == 0);
  BOOST_TEST(mock.stats()["abandoned"] == 2);
}

BOOST_AUTO_TEST_CASE(a_slow_trickle_is_cut_at_the_deadline) {
  // Steady but slow: never silent long enough to count as a stall.
  mock.push_behaviors(json::array({{{"words", 100}, {"itl_ms", 100}}}));
  auto p = make(protocol::openai, [](provider_settings& s) {
    s.timeout_ms = 800;
    s.stall_timeout_ms = 500;
  });
  completion_collector c;
  auto start = clock_type::now();
  auto f = failed(run(*p, ask("x", true), c));
  BOOST_TEST((f.code == errc::provider_timeout));
  BOOST_TEST(!c.seen().deltas.empty());
  BOOST_TEST(((c.seen().finished - start) < milliseconds(3000)));
}

BOOST_AUTO_TEST_CASE(a_late_first_byte_times_out) {
  mock.push_behaviors(json::array({{{"ttft_ms", 3000}}}));
  auto p = make(protocol::anthropic, [](provider_settings& s) { s.first_byte_timeout_ms = 300; });
  completion_collector c;
  auto start = clock_type::now();
  auto f = failed(run(*p, ask("x"), c));
  BOOST_TEST((f.code == errc::provider_timeout));
  BOOST_TEST(f.detail.find("no answer began") != std::string::npos);
  BOOST_TEST(((c.seen().finished - start) < milliseconds(2000)));
}

BOOST_AUTO_TEST_CASE(the_key_is_redacted_from_what_the_provider_says) {
  auto p = make(protocol::openai, [](provider_settings& s) { s.api_key = "401"; });
  mock.push_behaviors(json::array({{{"status", 401}}}));  // its error text says "mock failure 401"
  completion_collector c;
  auto f = failed(run(*p, ask("x"), c));
  BOOST_TEST(f.detail.find("401") == std::string::npos);
  BOOST_TEST(f.detail.find("[redacted]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_request_deadline_bounds_the_provider) {
  mock.push_behaviors(json::array({{{"ttft_ms", 5000}}}));
  auto p = make(protocol::openai);
  auto request = ask("x");
  request.deadline = clock_type::now() + milliseconds(400);
  completion_collector c;
  auto f = failed(run(*p, request, c));
  BOOST_TEST((f.code == errc::provider_timeout));
}

BOOST_AUTO_TEST_CASE(cancel_ends_with_the_text_so_far_and_frees_the_upstream) {
  mock.push_behaviors(json::array({{{"words", 50}, {"itl_ms", 100}}}));
  auto p = make(protocol::openai);
  completion_collector c;
  auto handle = p->start(ask("x", true), c.callbacks());
  BOOST_REQUIRE(c.wait_for_delta(std::chrono::seconds(10)));
  handle->cancel();
  BOOST_REQUIRE(c.wait(std::chrono::seconds(10)));
  auto r = succeeded(c);
  BOOST_TEST((r.reason == finish_reason::cancelled));
  BOOST_TEST(r.usage.completion_tokens > 0);
  BOOST_TEST(c.seen().deltas.size() < 50u);
  for (int i = 0; i < 100 && mock.stats()["abandoned"] != 1; ++i)
    std::this_thread::sleep_for(milliseconds(20));
  BOOST_TEST(mock.stats()["abandoned"] == 1);
  BOOST_TEST(mock.stats()["in_flight"] == 0);
  handle->cancel();  // a second cancel is harmless
}

BOOST_AUTO_TEST_CASE(an_unreachable_provider_fails_after_its_retries) {
  provider_settings s = settings(protocol::openai);
  s.base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1";
  auto p = make_http_provider(s, make_openai_protocol());
  completion_collector c;
  auto f = failed(run(*p, ask("x"), c));
  BOOST_TEST((f.code == errc::provider_error));
  BOOST_TEST(f.detail.find("could not reach the provider") != std::string::npos);
  BOOST_TEST(f.detail.find("3 attempts") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(in_flight_requests_are_capped_per_provider) {
  std::vector<json> slow(6, json{{"ttft_ms", 300}});
  mock.push_behaviors(slow);
  auto p = make(protocol::openai, [](provider_settings& s) { s.max_in_flight = 2; });
  std::vector<std::unique_ptr<completion_collector>> all;
  for (int i = 0; i < 6; ++i) {
    all.push_back(std::make_unique<completion_collector>());
    p->start(ask("x"), all.back()->callbacks());
  }
  int most = 0;
  for (int i = 0; i < 60; ++i) {
    most = std::max(most, mock.stats()["in_flight"].get<int>());
    std::this_thread::sleep_for(milliseconds(20));
  }
  for (auto& c : all) {
    BOOST_REQUIRE(c->wait(std::chrono::seconds(10)));
    succeeded(*c);
  }
  BOOST_TEST(most == 2);
}

BOOST_AUTO_TEST_SUITE_END()
