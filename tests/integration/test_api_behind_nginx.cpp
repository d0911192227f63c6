#define BOOST_TEST_MODULE api_behind_nginx
#include <boost/test/unit_test.hpp>

// Two Parley instances on one database behind Debian's nginx, configured by
// deploy/nginx.conf (scripts/local-nginx.sh only moves its files and ports):
// watchers hear the other instance, a kill -9 loses nothing acknowledged,
// and SIGTERM sends clients to the other instance (docs/deployment.md).

#include "support/api.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/prometheus_text.hpp"
#include "support/server_process.hpp"
#include "support/ws_client.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <future>
#include <set>
#include <string>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
namespace utf = boost::unit_test;

namespace {

/// A port nothing listens on now.
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

/// The status of GET `path`; 0 when nothing answers.
long answered(http_client& c, const std::string& path) {
  try {
    return c.get(path).status;
  } catch (const std::runtime_error&) {
    return 0;
  }
}

/// nginx in front of `instances`, until destroyed.
class nginx_process {
 public:
  explicit nginx_process(const std::vector<const server_process*>& instances) : port_(free_port()) {
    std::vector<std::string> args{std::string(PARLEY_SOURCE_DIR) + "/scripts/local-nginx.sh",
                                  dir_.path(), std::to_string(port_)};
    for (auto* s : instances) args.push_back(std::to_string(s->port()));
    pid_ = spawn(args, {}, dir_.path(), dir_.path() + "/stdout", dir_.path() + "/stderr");
    http_client probe(base_url());
    if (!eventually([&] { return answered(probe, "/health") == 200; }, std::chrono::seconds(10)))
      throw std::runtime_error("nginx did not come up: " + read_file(dir_.path() + "/error.log") +
                               read_file(dir_.path() + "/stderr"));
  }
  ~nginx_process() {
    ::kill(pid_, SIGQUIT);  // nginx's graceful stop
    wait_exit(pid_, std::chrono::seconds(10));
  }
  nginx_process(const nginx_process&) = delete;
  nginx_process& operator=(const nginx_process&) = delete;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }

 private:
  temp_dir dir_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

std::string ws_path(const std::string& id) { return conversation_path(id, "/ws"); }

json next_done(ws_client& ws) {
  for (;;) {
    auto frame = ws.read_json();
    if (frame["type"] == "done" || frame["type"] == "error") return frame;
  }
}

/// What a client that retries with its Idempotency-Key gets in the end: the
/// exchange stored once, however many times it had to ask. A 502 replayed
/// for the key is an exchange whose instance died after storing the user
/// message: it regenerates the reply (under a key of its own).
struct retrying_client {
  http_client http;
  int retries = 0;
  int replayed = 0;

  /// POST `path` with `body` and the key; status 0 when the connection failed.
  http_response post(const std::string& path, const json& body, const std::string& key) {
    try {
      return http.post(path, body, {"Idempotency-Key: " + key});
    } catch (const std::runtime_error& e) {
      http_response failed;
      failed.body = e.what();
      return failed;
    }
  }

  json send(const std::string& id, const std::string& key, const std::string& content) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      auto r = post(conversation_path(id, "/messages"), {{"content", content}}, key);
      if (r.status == 201) {
        replayed += r.header("idempotent-replayed") == "true";
        return r.json();
      }
      if (r.status == 502 && r.header("idempotent-replayed") == "true" &&
          r.json().contains("message_id")) {
        ++replayed;
        auto again = regenerate(id, "regen-" + key);
        return {{"message", {{"id", r.json()["message_id"]}}}, {"reply", again["reply"]}};
      }
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                            "no answer for " << key << ": " << r.status << " " << r.body);
      ++retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  json regenerate(const std::string& id, const std::string& key) {
    for (;;) {
      auto r = post(conversation_path(id, "/regenerate"), json::object(), key);
      if (r.status == 201) return r.json();
      ++retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};

const std::string slow_echo =
    "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 20\nitl_ms = 5\n";

}  // namespace

BOOST_AUTO_TEST_CASE(under_load_a_watcher_on_b_sees_every_done_of_exchanges_on_a,
                     *utf::precondition(only_on_postgresql)) {
  server_process a({.config_toml = slow_echo});
  server_process b({.database_url = a.database_url(), .config_toml = slow_echo});
  nginx_process nginx({&a, &b});
  http_client via_nginx(nginx.base_url(), "mixed");
  auto watched = create_conversation(via_nginx);
  ws_client watcher(b.port(), ws_path(watched), "mixed");

  // Mixed load through nginx on other conversations while A runs exchanges
  // of the watched one.
  std::atomic<bool> stop{false};
  std::atomic<int> background_sent{0};
  auto background = std::async(std::launch::async, [&] {
    http_client c(nginx.base_url(), "mixed");
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(create_conversation(c));
    for (int i = 0; !stop; ++i) {
      auto& id = ids[i % ids.size()];
      if (i % 5 == 4)
        BOOST_TEST(c.get(conversation_path(id, "/messages")).status == 200);
      else if (c.post(conversation_path(id, "/messages"), {{"content", "bg"}}).status == 201)
        ++background_sent;
    }
  });
  http_client on_a(a.base_url(), "mixed");
  std::vector<std::string> replies;
  for (int i = 0; i < 30; ++i)
    replies.push_back(
        send_message(on_a, watched, {{"content", "on a " + std::to_string(i)}})["reply"]["id"]
            .get<std::string>());
  for (auto& reply : replies) {
    auto done = next_done(watcher);
    BOOST_REQUIRE(done["type"] == "done");
    BOOST_TEST(done["reply"]["id"] == reply);
  }
  stop = true;
  background.get();
  BOOST_TEST(background_sent.load() > 0);
}

BOOST_AUTO_TEST_CASE(kill_9_of_an_instance_mid_load_loses_nothing_acknowledged) {
  // Replies slow to start (200 ms), so that the instance killed has one in
  // hand when it dies, not only between two: nginx hides a refused connect.
  const std::string slow_start =
      "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 200\nitl_ms = 5\n";
  server_process a({.config_toml = slow_start});
  server_process b({.database_url = a.database_url(), .config_toml = slow_start});
  nginx_process nginx({&a, &b});
  constexpr int clients = 4, per_client = 40;
  std::atomic<int> acknowledged{0};
  struct outcome {
    std::string user;
    std::string conversation;
    std::vector<json> answers;
    int retries = 0;
    int replayed = 0;
  };
  std::vector<std::future<outcome>> running;
  for (int n = 0; n < clients; ++n)
    running.push_back(std::async(std::launch::async, [&, n] {
      outcome out;
      out.user = "failover-" + std::to_string(n);
      retrying_client client{http_client(nginx.base_url(), out.user)};
      out.conversation = create_conversation(client.http);
      for (int i = 0; i < per_client; ++i) {
        auto key = "key-" + std::to_string(n) + "-" + std::to_string(i);
        out.answers.push_back(client.send(out.conversation, key, "message " + std::to_string(i)));
        ++acknowledged;
      }
      out.retries = client.retries;
      out.replayed = client.replayed;
      return out;
    }));
  BOOST_REQUIRE(eventually([&] { return acknowledged.load() >= clients * per_client / 4; },
                           std::chrono::seconds(60)));
  // The instance serving more of the conversations (the hash spreads them) dies.
  auto actors = [](const server_process& s) {
    http_client c(s.base_url());
    return prometheus_scrape::parse(c.get("/metrics").body)
        .value("parley_conversation_actors")
        .value_or(0);
  };
  auto& victim = actors(a) >= actors(b) ? a : b;
  auto& survivor = &victim == &a ? b : a;
  // ...while it has an exchange in hand (the scrape itself is one request).
  eventually([&] {
    http_client c(victim.base_url());
    return prometheus_scrape::parse(c.get("/metrics").body)
               .value("parley_http_requests_in_flight")
               .value_or(0) >= 2;
  });
  victim.kill_hard();
  int retries = 0, replayed = 0;
  for (auto& r : running) {
    auto out = r.get();
    retries += out.retries;
    replayed += out.replayed;
    // Every acknowledged exchange is stored, once, in order; no seq twice.
    http_client reader(survivor.base_url(), out.user);
    auto stored = all_messages(reader, out.conversation);
    BOOST_REQUIRE_EQUAL(stored.size(), 2u * per_client);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < stored.size(); ++i) {
      BOOST_TEST(stored[i]["seq"] == i + 1);
      ids.insert(stored[i]["id"].get<std::string>());
    }
    for (auto& answer : out.answers) {
      BOOST_TEST(ids.count(answer["message"]["id"].get<std::string>()) == 1u);
      BOOST_TEST(ids.count(answer["reply"]["id"].get<std::string>()) == 1u);
    }
  }
  BOOST_TEST_MESSAGE("after kill -9: " << retries << " retries, " << replayed << " replayed");
  // The instance that died had work when it died: some request had to be retried.
  BOOST_TEST(retries + replayed > 0);
}

BOOST_AUTO_TEST_CASE(sigterm_sends_clients_through_nginx_to_the_other_instance) {
  const std::string drain = slow_echo + "[server]\ndrain_delay_ms = 500\n";
  server_process a({.config_toml = drain});
  server_process b({.database_url = a.database_url(), .config_toml = drain});
  nginx_process nginx({&a, &b});
  http_client via_nginx(nginx.base_url(), "moving");
  auto id = create_conversation(via_nginx);
  send_message(via_nginx, id, {{"content", "before"}});

  ws_client direct_a(a.port(), ws_path(id), "moving");
  ::kill(a.pid(), SIGTERM);
  http_client on_a(a.base_url());
  BOOST_TEST(eventually([&] { return answered(on_a, "/ready") == 503; }, std::chrono::seconds(1)));
  BOOST_TEST(direct_a.read_until_closed().code == 1012);
  BOOST_TEST(a.stop() == 0);

  // The client reconnects through nginx and lands on B, which serves and
  // tells it about the conversation from then on.
  ws_client again(nginx.port(), ws_path(id), "moving");
  auto answer = send_message(via_nginx, id, {{"content", "after"}});
  BOOST_TEST(answer["message"]["seq"] == 3);
  // (On SQLite, B may first tell it of A's earlier exchange, which a stale
  // copy of B's had not seen: instances there hear each other only through
  // a conflict's reload.)
  json heard;
  do heard = next_done(again);
  while (heard["type"] == "done" && heard["reply"]["id"] != answer["reply"]["id"]);
  BOOST_TEST(heard["reply"]["id"] == answer["reply"]["id"], heard.dump());
  BOOST_TEST(all_messages(via_nginx, id).size() == 4u);
}

BOOST_AUTO_TEST_CASE(a_users_rate_limit_holds_for_requests_nginx_spreads_over_both,
                     *utf::precondition(only_on_postgresql)) {
  // Lists are routed by nginx's own request id: spread over both instances.
  const std::string limited = "[limits]\nrequests_per_minute = 30\n";
  server_process a({.config_toml = limited});
  server_process b({.database_url = a.database_url(), .config_toml = limited});
  nginx_process nginx({&a, &b});
  http_client c(nginx.base_url(), "spread");
  int accepted = 0;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 80; ++i) accepted += c.get("/v1/conversations").status == 200;
  auto refilled =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / 2;
  BOOST_TEST_MESSAGE(accepted << " of 80 accepted through nginx");
  // The bucket's 30, what refilled meanwhile, and at most a lease (3) on
  // credit per instance.
  BOOST_TEST(accepted >= 30);
  BOOST_TEST(accepted <= 30 + 2 * 3 + static_cast<int>(refilled) + 1);
  auto on_a = http_client(a.base_url(), "spread").get("/v1/conversations");
  auto on_b = http_client(b.base_url(), "spread").get("/v1/conversations");
  BOOST_TEST(on_a.status == 429);
  BOOST_TEST(on_b.status == 429);
}
