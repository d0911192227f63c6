#define BOOST_TEST_MODULE api_durability
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

using namespace parley::testing;
using nlohmann::json;

BOOST_AUTO_TEST_CASE(acknowledged_messages_survive_kill_9) {
  server_process server;
  http_client c(server.base_url(), "crash");
  auto id = create_conversation(c);
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 50; ++i) {
    auto r = c.post("/v1/conversations/" + id + "/messages",
                    {{"content", "message " + std::to_string(i)}, {"reply", i % 2 == 0}});
    BOOST_REQUIRE_EQUAL(r.status, 201);
    acknowledged.push_back(r.json()["message"]["id"]);
  }
  server.kill_hard();
  server.restart();
  http_client after(server.base_url(), "crash");
  auto stored = all_messages(after, id);
  std::set<std::string> ids;
  for (auto& m : stored) ids.insert(m["id"].get<std::string>());
  for (auto& a : acknowledged)
    BOOST_TEST(ids.count(a) == 1u, "acknowledged message " << a << " is missing");
  BOOST_TEST(stored.size() == 75u);  // 50 sent, 25 with a reply
  for (std::size_t i = 0; i < stored.size(); ++i)
    BOOST_TEST(stored[i]["seq"] == static_cast<int>(i + 1));
  // The conversation goes on where it stopped.
  auto next = after.post("/v1/conversations/" + id + "/messages", {{"content", "after"}});
  BOOST_TEST(next.json()["message"]["seq"] == 76);
}

BOOST_AUTO_TEST_CASE(sigterm_exits_zero_and_keeps_everything) {
  server_process server;
  http_client c(server.base_url(), "graceful");
  auto id = create_conversation(c, {{"message", "before stop"}});
  auto exit_code = server.stop();
  BOOST_TEST(exit_code == 0, "exit code " << exit_code << ", log:\n" << server.log());
  server.restart();
  http_client after(server.base_url(), "graceful");
  BOOST_TEST(after.get("/v1/conversations/" + id).json()["message_count"] == 2);
}

BOOST_AUTO_TEST_CASE(passivated_conversations_come_back) {
  server_process server({.config_toml = "[actors]\nidle_timeout_s = 1\n"});
  http_client c(server.base_url(), "sleepy");
  auto id = create_conversation(c, {{"message", "first"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "second"}});
  BOOST_REQUIRE_EQUAL(r.status, 201);
  BOOST_TEST(r.json()["message"]["seq"] == 3);
  BOOST_TEST(r.json()["reply"]["content"] == "Echo: second");
  BOOST_TEST(all_messages(c, id).size() == 4u);
}

BOOST_AUTO_TEST_CASE(twenty_concurrent_senders_get_gapless_seqs) {
  server_process server({.config_toml = "[limits]\nconversation_queue = 64\n"});
  http_client owner(server.base_url(), "crowd");
  auto id = create_conversation(owner);
  constexpr int senders = 20, per_sender = 5;
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      http_client c(server.base_url(), "crowd");
      for (int i = 0; i < per_sender; ++i) {
        auto r = c.post("/v1/conversations/" + id + "/messages",
                        {{"content", "t" + std::to_string(t) + "-" + std::to_string(i)}});
        if (r.status == 201) ++created;
      }
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(created.load() == senders * per_sender);
  auto stored = all_messages(owner, id);
  BOOST_REQUIRE_EQUAL(stored.size(), static_cast<std::size_t>(2 * senders * per_sender));
  for (std::size_t i = 0; i < stored.size(); ++i)
    BOOST_TEST(stored[i]["seq"] == static_cast<int>(i + 1));
  // Every reply follows its own message.
  for (std::size_t i = 0; i + 1 < stored.size(); i += 2)
    BOOST_TEST(stored[i + 1]["content"] == "Echo: " + stored[i]["content"].get<std::string>());
}

BOOST_AUTO_TEST_CASE(two_hundred_conversations_in_parallel) {
  server_process server;
  constexpr int threads_count = 16, per_thread = 13;  // 208 conversations
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_count; ++t)
    threads.emplace_back([&, t] {
      http_client c(server.base_url(), "parallel-" + std::to_string(t));
      for (int i = 0; i < per_thread; ++i) {
        auto tag = std::to_string(t) + "/" + std::to_string(i);
        auto r = c.post("/v1/conversations", {{"message", tag}});
        if (r.status != 201) continue;
        auto id = r.json()["id"].get<std::string>();
        auto s = c.post("/v1/conversations/" + id + "/messages", {{"content", tag + "b"}});
        auto messages = all_messages(c, id);
        if (s.status == 201 && messages.size() == 4 && messages[0]["content"] == tag &&
            messages[3]["content"] == "Echo: " + tag + "b")
          ++ok;
      }
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(ok.load() == threads_count * per_thread);
}

BOOST_AUTO_TEST_CASE(a_full_queue_answers_429_with_retry_after) {
  server_process server({.config_toml = "[limits]\nconversation_queue = 1\n"
                                        "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\n"
                                        "ttft_ms = 400\n"});
  http_client owner(server.base_url(), "queue");
  auto id = create_conversation(owner);
  std::atomic<int> created{0}, limited{0}, retry_after{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&] {
      http_client c(server.base_url(), "queue");
      auto r = c.post("/v1/conversations/" + id + "/messages", {{"content", "hi"}});
      if (r.status == 201) ++created;
      if (r.status == 429) {
        ++limited;
        if (!r.header("retry-after").empty() &&
            r.header("content-type") == "application/problem+json")
          ++retry_after;
      }
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(created + limited == 5);
  BOOST_TEST(limited.load() >= 1);
  BOOST_TEST(created.load() >= 2);  // the one running and the one waiting
  BOOST_TEST(retry_after.load() == limited.load());
}

BOOST_AUTO_TEST_CASE(command_line) {
  std::string out;
  BOOST_TEST(run_parley({"--version"}, out) == 0);
  BOOST_TEST(out.find("parley ") == 0u);

  temp_dir dir;
  {
    scratch_database db(dir.path());
    BOOST_TEST(run_parley({"migrate", "--database-url", db.url()}, out) == 0);
    BOOST_TEST(run_parley({"migrate", "--database-url", db.url()}, out) == 0);
  }

  BOOST_TEST(run_parley({"serve", "--database-url", "mysql://x/y"}, out) == 2);
  BOOST_TEST(out.find("database.url") != std::string::npos);

  auto bad_toml = dir.path() + "/bad.toml";
  std::ofstream(bad_toml) << "[server\nport = ";
  BOOST_TEST(run_parley({"serve", "--config", bad_toml}, out) == 2);
  auto bad_value = dir.path() + "/value.toml";
  std::ofstream(bad_value) << "[limits]\nmax_message_chars = -5\n";
  BOOST_TEST(run_parley({"serve", "--config", bad_value}, out) == 2);
  BOOST_TEST(out.find("limits.max_message_chars") != std::string::npos);
  BOOST_TEST(run_parley({"serve", "--config", dir.path() + "/missing.toml"}, out) == 2);
  BOOST_TEST(run_parley({"serve", "--port", "99999"}, out) == 2);

  // Environment and .env are read; the flag wins over both.
  std::ofstream(dir.path() + "/.env") << "PORT=notaport\n";
  BOOST_TEST(run_parley({"serve"}, out, {}, dir.path()) == 2);
  BOOST_TEST(out.find("PORT") != std::string::npos);
}
