#define BOOST_TEST_MODULE api_instances
#include <boost/test/unit_test.hpp>

// Several Parley processes on one database: what one commits reaches the
// watchers of the others (PostgreSQL's LISTEN/NOTIFY), and an instance told
// to stop drains as docs/deployment.md says.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <future>
#include <set>
#include <string>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
namespace utf = boost::unit_test;

namespace {

std::string ws_path(const std::string& id) { return conversation_path(id, "/ws"); }

/// The next frame that is not a delta (a watcher on another instance gets
/// none, but one on the writing instance does).
json next_event(ws_client& ws) {
  for (;;) {
    auto frame = ws.read_json();
    if (frame["type"] != "delta") return frame;
  }
}

/// A model that writes a word every `itl_ms`.
std::string slow_echo(unsigned itl_ms) {
  return "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 50\nitl_ms = " +
         std::to_string(itl_ms) + "\n";
}

/// A text of `words` words, which the slow echo takes as many steps to write.
std::string words_of(int words) {
  std::string text;
  for (int i = 0; i < words; ++i) text += "word" + std::to_string(i) + " ";
  return text;
}

/// Sends `content` to conversation `id` on `s` as `user`, streamed, in the
/// background: the stream, once it has ended.
std::future<sse_result> streamed_send(const server_process& s, const std::string& id,
                                      const std::string& content, const std::string& user) {
  return std::async(std::launch::async, [&s, id, content, user] {
    return sse_post(s.base_url(), conversation_path(id, "/messages"),
                    {{"content", content}, {"stream", true}}, user);
  });
}

/// Whether conversation `id` reports an exchange running, within a few seconds.
bool comes_to_run(http_client& c, const std::string& id) {
  return eventually([&] { return c.get(conversation_path(id)).json()["running"].is_object(); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_watcher_on_one_instance_sees_what_another_commits,
                     *utf::precondition(only_on_postgresql)) {
  server_process a;
  server_process b({.database_url = a.database_url()});
  http_client on_a(a.base_url(), "shared");
  http_client on_b(b.base_url(), "shared");
  auto id = create_conversation(on_a);
  ws_client watcher(b.port(), ws_path(id), "shared");

  // Every exchange run on A: its message, then its reply's done, in order.
  std::vector<json> answers;
  for (int i = 0; i < 8; ++i)
    answers.push_back(send_message(on_a, id, {{"content", "round " + std::to_string(i)}}));
  for (auto& answer : answers) {
    auto message = next_event(watcher);
    BOOST_TEST(message["type"] == "message");
    BOOST_TEST(message["message"]["id"] == answer["message"]["id"]);
    BOOST_TEST(message["message"]["content"] == answer["message"]["content"]);
    auto done = next_event(watcher);
    BOOST_TEST(done["type"] == "done");
    BOOST_TEST(done["reply"] == answer["reply"]);
  }

  // An exchange B runs afterwards builds on what A wrote: its seq follows.
  auto from_b = send_message(on_b, id, {{"content", "from b"}});
  BOOST_TEST(from_b["message"]["seq"].get<int>() == 17);

  // An edit and a deletion on A reach B's watcher too.
  auto message_a = answers.back()["message"];
  auto edited = on_a.patch(conversation_path(id, "/messages/" + message_a["id"].get<std::string>()),
                           {{"content", "round 7, edited"}});
  BOOST_REQUIRE_EQUAL(edited.status, 200);
  // B's own exchange reached the watcher live first.
  BOOST_TEST(next_event(watcher)["type"] == "message");
  BOOST_TEST(next_event(watcher)["type"] == "done");
  auto edit_event = next_event(watcher);
  BOOST_TEST(edit_event["type"] == "edited");
  BOOST_TEST(edit_event["message"]["content"] == "round 7, edited");

  auto reply_b = from_b["reply"]["id"].get<std::string>();
  BOOST_REQUIRE_EQUAL(on_a.del(conversation_path(id, "/messages/" + reply_b)).status, 204);
  auto removed = next_event(watcher);
  BOOST_TEST(removed["type"] == "deleted");
  BOOST_TEST(removed["message_id"] == reply_b);
  // It was the active leaf: its parent is now, as on the instance that deleted it.
  auto branch = next_event(watcher);
  BOOST_TEST(branch["type"] == "branch");
  BOOST_TEST(branch["active_leaf_id"] == from_b["message"]["id"]);

  // Deleting the conversation on A ends the watch on B.
  BOOST_REQUIRE_EQUAL(on_a.del(conversation_path(id)).status, 204);
  auto gone = next_event(watcher);
  BOOST_TEST(gone["type"] == "error");
  BOOST_TEST(gone["error"]["status"] == 404);
  BOOST_TEST(watcher.read_until_closed().code == 1000);
  BOOST_TEST(on_b.get(conversation_path(id)).status == 404);
}

BOOST_AUTO_TEST_CASE(a_watcher_sees_edits_and_deletions_on_its_own_instance) {
  server_process s;
  http_client c(s.base_url(), "one");
  auto id = create_conversation(c);
  auto first = send_message(c, id, {{"content", "first"}});
  auto second = send_message(c, id, {{"content", "second"}});
  ws_client watcher(s.port(), ws_path(id), "one");
  auto first_id = first["message"]["id"].get<std::string>();
  BOOST_REQUIRE_EQUAL(
      c.patch(conversation_path(id, "/messages/" + first_id), {{"content", "first, edited"}})
          .status,
      200);
  auto edited = next_event(watcher);
  BOOST_TEST(edited["type"] == "edited");
  BOOST_TEST(edited["message"]["id"] == first_id);
  BOOST_TEST(edited["message"]["content"] == "first, edited");
  BOOST_TEST(edited["message"]["edited_at"].is_string());
  // Not the leaf: the branch stays, without the message.
  auto reply_id = first["reply"]["id"].get<std::string>();
  BOOST_REQUIRE_EQUAL(c.del(conversation_path(id, "/messages/" + reply_id)).status, 204);
  auto removed = next_event(watcher);
  BOOST_TEST(removed["type"] == "deleted");
  BOOST_TEST(removed["message_id"] == reply_id);
  BOOST_TEST(all_messages(c, id).size() == 3u);
}

BOOST_AUTO_TEST_CASE(two_instances_taking_turns_on_one_conversation_lose_nothing,
                     *utf::precondition(only_on_postgresql)) {
  server_process a;
  server_process b({.database_url = a.database_url()});
  http_client on_a(a.base_url(), "turns");
  http_client on_b(b.base_url(), "turns");
  auto id = create_conversation(on_a);
  constexpr int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    auto& client = i % 2 ? on_b : on_a;
    auto answer = send_message(client, id, {{"content", "turn " + std::to_string(i)}});
    // Each instance's window holds the other's turns: the seqs run on.
    BOOST_TEST(answer["message"]["seq"].get<int>() == 2 * i + 1);
  }
  auto stored = all_messages(on_a, id);
  BOOST_REQUIRE_EQUAL(stored.size(), 2u * rounds);
  for (std::size_t i = 0; i < stored.size(); ++i) BOOST_TEST(stored[i]["seq"] == i + 1);
}

BOOST_AUTO_TEST_CASE(sigterm_drains_ready_first_then_finishes_the_reply_then_sends_clients_away) {
  // 160 words at 25 ms: four seconds of reply, well past the drain delay.
  server_process s({.config_toml = slow_echo(25) + "[server]\ndrain_delay_ms = 800\n"});
  http_client c(s.base_url(), "drain");
  auto id = create_conversation(c);
  ws_client watcher(s.port(), ws_path(id), "drain");
  auto stream = streamed_send(s, id, words_of(160), "drain");
  BOOST_REQUIRE(comes_to_run(c, id));
  ::kill(s.pid(), SIGTERM);

  // /ready turns 503 at once, while the API still answers.
  BOOST_TEST(eventually([&] { return c.get("/ready").status == 503; }, std::chrono::seconds(1)));
  auto ready = c.get("/ready");
  BOOST_TEST(ready.status == 503);
  BOOST_TEST(ready.header("content-type") == "application/problem+json");
  // Every answer closes its connection, so that the next goes elsewhere.
  BOOST_TEST(ready.header("connection") == "close");
  BOOST_TEST(c.get(conversation_path(id)).status == 200);

  // Once the listener is closed, a new message on the open socket is refused.
  BOOST_REQUIRE(eventually(
      [&] {
        try {
          ::close(raw_connect(s.port()));
          return false;
        } catch (const std::runtime_error&) {
          return true;
        }
      },
      std::chrono::seconds(3)));
  watcher.send_json({{"type", "message"}, {"content", "too late"}});
  // The reply in flight is finished and stored, on the stream and for the watcher.
  auto streamed = stream.get();
  BOOST_REQUIRE(!streamed.events.empty());
  BOOST_TEST(streamed.events.back().name == "done");
  BOOST_TEST(streamed.events.back().data["finish_reason"] == "stop");
  BOOST_TEST(next_event(watcher)["type"] == "message");
  json done, refusal;
  while (done.is_null() || refusal.is_null()) {
    auto frame = next_event(watcher);
    (frame["type"] == "done" ? done : refusal) = frame;
  }
  BOOST_TEST(done["reply"]["finish_reason"] == "stop");
  BOOST_TEST(refusal["type"] == "error");
  BOOST_TEST(refusal["error"]["status"] == 503);
  // Then the WebSocket is closed with 1012 (service restart), and the process exits 0.
  auto closed = watcher.read_until_closed();
  BOOST_TEST(closed.code == 1012);
  BOOST_TEST(s.stop() == 0);
}

BOOST_AUTO_TEST_CASE(a_reply_longer_than_the_grace_period_is_stored_cancelled) {
  // 200 words at 30 ms: six seconds, against a grace period of half a second.
  server_process s({.config_toml = slow_echo(30) + "[server]\nshutdown_grace_ms = 500\n"});
  http_client c(s.base_url(), "grace");
  auto id = create_conversation(c);
  auto stream = streamed_send(s, id, words_of(200), "grace");
  BOOST_REQUIRE(comes_to_run(c, id));
  ::kill(s.pid(), SIGTERM);
  auto streamed = stream.get();
  BOOST_REQUIRE(!streamed.events.empty());
  BOOST_TEST(streamed.events.back().name == "done");
  auto reply = streamed.events.back().data;
  BOOST_TEST(reply["finish_reason"] == "cancelled");
  BOOST_TEST(s.stop() == 0);

  // What the stream was told is what was stored.
  s.restart();
  http_client again(s.base_url(), "grace");
  auto stored = all_messages(again, id);
  BOOST_REQUIRE_EQUAL(stored.size(), 2u);
  BOOST_TEST(stored[1]["finish_reason"] == "cancelled");
  BOOST_TEST(stored[1]["content"] == reply["content"]);
}

BOOST_AUTO_TEST_CASE(a_users_request_rate_holds_across_instances,
                     *utf::precondition(only_on_postgresql)) {
  // 20 a minute: leases of 2, so at most 2 on credit per instance beyond the bucket.
  const std::string limited = "[limits]\nrequests_per_minute = 20\n";
  server_process a({.config_toml = limited});
  server_process b({.database_url = a.database_url(), .config_toml = limited});
  http_client on_a(a.base_url(), "both"), on_b(b.base_url(), "both");
  int accepted = 0;
  http_response refusal;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 60; ++i) {
    auto r = (i % 2 ? on_b : on_a).get("/v1/conversations");
    if (r.status == 200) ++accepted;
    if (r.status == 429) refusal = r;
  }
  auto refilled =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / 3;
  BOOST_TEST_MESSAGE(accepted << " of 60 accepted across two instances");
  BOOST_TEST(accepted >= 20);
  BOOST_TEST(accepted <= 20 + 2 * 2 + static_cast<int>(refilled) + 1);
  expect_problem(refusal, 429);
  BOOST_TEST(!refusal.header("retry-after").empty());
}

BOOST_AUTO_TEST_CASE(a_users_replies_in_progress_are_counted_across_instances,
                     *utf::precondition(only_on_postgresql)) {
  const std::string two_at_a_time =
      "[limits]\nconcurrent_generations = 2\n[[providers]]\nname = \"builtin\"\n"
      "kind = \"builtin\"\nttft_ms = 3000\n";
  server_process a({.config_toml = two_at_a_time});
  server_process b({.database_url = a.database_url(), .config_toml = two_at_a_time});
  http_client on_a(a.base_url(), "busy"), on_b(b.base_url(), "busy");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(create_conversation(on_a));
  // A runs the user's two replies and holds both slots in the ledger.
  auto first = streamed_send(a, ids[0], "slowly", "busy");
  auto second = streamed_send(a, ids[1], "slowly", "busy");
  BOOST_REQUIRE(comes_to_run(on_a, ids[0]));
  BOOST_REQUIRE(comes_to_run(on_a, ids[1]));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // B has not asked the ledger yet: one reply on credit (the documented
  // overshoot, one per instance)...
  auto on_credit = streamed_send(b, ids[2], "slowly", "busy");
  BOOST_REQUIRE(comes_to_run(on_b, ids[2]));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // ...and then none, though B itself runs only one of the two allowed.
  auto refused = on_b.post(conversation_path(ids[2], "/messages"), {{"content", "no"}});
  expect_problem(refused, 429);
  BOOST_TEST(refused.header("retry-after") == "1");
  for (auto* reply : {&first, &second, &on_credit})
    BOOST_TEST(reply->get().events.back().name == "done");
}
