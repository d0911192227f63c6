#define BOOST_TEST_MODULE api_idempotency_processes
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <chrono>
#include <future>
#include <string>

using namespace parley::testing;
using nlohmann::json;

namespace {

// A model slow enough that a repeat comes while the first reply is written.
const std::string slow_echo =
    "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 150\nitl_ms = 10\n";

std::string messages_path(const std::string& id) { return "/v1/conversations/" + id + "/messages"; }

/// The same idempotent send to both servers at once.
std::pair<http_response, http_response> send_to_both(const server_process& a,
                                                     const server_process& b, const std::string& id,
                                                     const std::string& key,
                                                     const std::string& content) {
  auto send = [&](const server_process* s) {
    http_client c(s->base_url(), "twin");
    return c.post(messages_path(id), {{"content", content}}, {"Idempotency-Key: " + key});
  };
  auto on_b = std::async(std::launch::async, send, &b);
  auto on_a = send(&a);
  return {on_a, on_b.get()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_key_on_two_processes_at_once_is_one_exchange_replayed) {
  server_process a({.config_toml = slow_echo});
  server_process b({.database_url = a.database_url(), .config_toml = slow_echo});
  http_client c(a.base_url(), "twin");
  auto id = create_conversation(c);
  constexpr int rounds = 12;
  int replayed = 0;
  for (int i = 0; i < rounds; ++i) {
    auto key = "twin-key-" + std::to_string(i);
    auto content = "twice " + std::to_string(i);
    auto [first, second] = send_to_both(a, b, id, key, content);
    // Both answers are the one stored exchange: never a 409, never a second copy.
    BOOST_TEST(first.status == 201, "round " << i << ": " << first.body);
    BOOST_TEST(second.status == 201, "round " << i << ": " << second.body);
    BOOST_TEST(first.json() == second.json(), "round " << i);
    replayed += (first.header("idempotent-replayed") == "true") +
                (second.header("idempotent-replayed") == "true");
  }
  BOOST_TEST(replayed == rounds);  // exactly one of each pair ran
  auto stored = all_messages(c, id);
  BOOST_TEST(stored.size() == 2u * rounds);
  for (std::size_t i = 0; i < stored.size(); ++i)
    BOOST_TEST(stored[i]["seq"].get<std::size_t>() == i + 1);
}

BOOST_AUTO_TEST_CASE(a_repeat_while_the_first_reply_is_written_waits_for_it) {
  // The reply's first word comes 3 s after the user message is stored.
  const std::string slower =
      "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 3000\n";
  server_process a({.config_toml = slower});
  server_process b({.database_url = a.database_url(), .config_toml = slower});
  http_client on_a(a.base_url(), "waiter"), on_b(b.base_url(), "waiter");
  auto id = create_conversation(on_a);
  // A streamed send stores its user message (and a provisional answer for
  // its key) before the reply; a repeat on B meanwhile must get the reply,
  // not the provisional 502.
  auto first = std::async(std::launch::async, [&] {
    http_client c(a.base_url(), "waiter");
    return c.post(messages_path(id), {{"content", "slowly"}, {"stream", true}},
                  {"Idempotency-Key: stream-key"});
  });
  BOOST_REQUIRE(eventually([&] { return all_messages(on_b, id).size() == 1; }));
  auto asked = std::chrono::steady_clock::now();
  auto repeat = on_b.post(messages_path(id), {{"content", "slowly"}, {"stream", true}},
                          {"Idempotency-Key: stream-key"});
  // It waited for the reply (stored about 3 s after the message).
  BOOST_TEST((std::chrono::steady_clock::now() - asked > std::chrono::seconds(1)));
  BOOST_TEST(first.get().status == 200);
  BOOST_TEST(repeat.status == 201, repeat.body);
  BOOST_TEST(repeat.header("idempotent-replayed") == "true");
  BOOST_TEST(repeat.json()["reply"]["content"] == "Echo: slowly");
  BOOST_TEST(all_messages(on_a, id).size() == 2u);
}
