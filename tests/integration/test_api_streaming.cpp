#define BOOST_TEST_MODULE api_streaming
#include <boost/test/unit_test.hpp>

// Streaming against the real server over real sockets: SSE read
// incrementally by libcurl, WebSockets by Boost.Beast, fan-out between them,
// clients that go away or read too slowly, keep-alives and idle clients.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/mock_upstream_process.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <memory>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using clock_type = std::chrono::steady_clock;

namespace {

mock_upstream& mock() {
  static auto m = std::make_unique<mock_upstream>();
  return *m;
}

/// `echo` writes a word every 60 ms after 100 ms; "upstream" is the mock.
/// `ping_ms`: the WebSocket ping interval (a client silent for two is closed).
std::string streaming_toml(int ping_ms = 1000) {
  return "[server]\nsse_keepalive_ms = 200\nws_ping_interval_ms = " + std::to_string(ping_ms) +
         "\n"
         "max_body_bytes = 4096\nstream_queue_bytes = 16384\n"
         "[limits]\nmax_message_chars = 32768\n"
         "[actors]\nidle_timeout_s = 1\n"
         "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 100\nitl_ms = 60\n"
         "[[providers]]\nname = \"oai\"\nkind = \"openai\"\nbase_url = \"" +
         mock().openai_base_url() +
         "\"\nmax_retries = 0\ntimeout_ms = 5000\n"
         "[[models]]\nid = \"upstream\"\nprovider = \"oai\"\nupstream = \"mock-model\"\n"
         "context_window = 200000\nmax_output_tokens = 50000\n";
}

server_process& server() {
  static auto s = std::make_unique<server_process>(server_options{.config_toml = streaming_toml()});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

std::string messages_path(const std::string& id) { return "/v1/conversations/" + id + "/messages"; }
std::string ws_path(const std::string& id) { return "/v1/conversations/" + id + "/ws"; }

std::vector<std::string> names_of(const sse_result& r) {
  std::vector<std::string> out;
  for (auto& e : r.events) out.push_back(e.name);
  return out;
}

/// The events of one exchange as a WebSocket watcher reads them: the
/// message, every delta, the done. Returns the frames in order.
std::vector<json> read_exchange(ws_client& ws) {
  std::vector<json> frames;
  for (;;) {
    frames.push_back(ws.read_json());
    if (frames.back()["type"] == "done" || frames.back()["type"] == "error") return frames;
  }
}

std::string text_of_deltas(const std::vector<json>& frames) {
  std::string text;
  for (auto& f : frames)
    if (f["type"] == "delta") text += f["content"].get<std::string>();
  return text;
}

}  // namespace

// --- SSE ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sse_sends_each_piece_as_the_model_writes_it) {
  auto c = client("sse-user");
  auto id = create_conversation(c);
  auto r = sse_post(server().base_url(), messages_path(id),
                    {{"content", "one two three four five"}, {"stream", true}}, "sse-user");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.headers["content-type"] == "text/event-stream");
  BOOST_TEST(!r.headers["x-request-id"].empty());
  auto names = names_of(r);
  BOOST_REQUIRE(names.size() == 8u);  // message, 6 deltas ("Echo:" and five words), done
  BOOST_TEST(names.front() == "message");
  BOOST_TEST(names.back() == "done");
  std::string text;
  for (std::size_t i = 1; i + 1 < names.size(); ++i) {
    BOOST_TEST(names[i] == "delta");
    text += r.events[i].data["content"].get<std::string>();
  }
  BOOST_TEST(text == "Echo: one two three four five");
  // The first piece came while the model was still writing: the other five
  // follow it 60 ms apart.
  BOOST_TEST(((r.events.back().at - r.events[1].at) >= milliseconds(250)));
  auto& message = r.events.front().data;
  auto& done = r.events.back().data;
  BOOST_TEST(message["role"] == "user");
  BOOST_TEST(message["seq"] == 1);
  BOOST_TEST(done["role"] == "assistant");
  BOOST_TEST(done["content"] == text);
  BOOST_TEST(done["finish_reason"] == "stop");
  BOOST_TEST(done["usage"]["completion_tokens"].get<int>() > 0);
  // What the stream reported is what was stored.
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[0]["id"] == message["id"]);
  BOOST_TEST(stored[1] == done);
}

BOOST_AUTO_TEST_CASE(accept_event_stream_streams_too_and_so_do_create_and_regenerate) {
  auto c = client("accept-user");
  auto id = create_conversation(c);
  auto by_accept = sse_post(server().base_url(), messages_path(id), {{"content", "hi"}},
                            "accept-user", {}, {"Accept: text/event-stream"});
  BOOST_TEST(by_accept.status == 200);
  BOOST_TEST(names_of(by_accept).back() == "done");

  // Regenerate: no user message, the new reply's deltas and done.
  auto regen = sse_post(server().base_url(), "/v1/conversations/" + id + "/regenerate",
                        {{"stream", true}}, "accept-user");
  BOOST_TEST(regen.status == 200);
  auto names = names_of(regen);
  BOOST_REQUIRE(names.size() >= 2u);
  BOOST_TEST(names.front() == "delta");
  BOOST_TEST(names.back() == "done");
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1]["id"] == regen.events.back().data["id"]);

  // Create with a streamed first message.
  auto created = sse_post(server().base_url(), "/v1/conversations",
                          {{"message", {{"content", "first"}, {"stream", true}}}}, "accept-user");
  BOOST_TEST(created.status == 200);
  auto created_names = names_of(created);
  BOOST_REQUIRE(!created_names.empty());
  BOOST_TEST(created_names.front() == "message");
  BOOST_TEST(created_names.back() == "done");
  auto new_id = created.events.front().data["conversation_id"].get<std::string>();
  BOOST_TEST(all_messages(c, new_id).size() == 2u);
}

BOOST_AUTO_TEST_CASE(errors_before_the_stream_are_plain_problems) {
  auto c = client("plain-errors");
  auto id = create_conversation(c);
  auto missing =
      sse_post(server().base_url(), messages_path("01900000-0000-7000-8000-000000000000"),
               {{"content", "x"}, {"stream", true}}, "plain-errors");
  BOOST_TEST(missing.status == 404);
  BOOST_TEST(missing.headers["content-type"] == "application/problem+json");
  BOOST_TEST(missing.events.empty());
  auto foreign = sse_post(server().base_url(), messages_path(id),
                          {{"content", "x"}, {"stream", true}}, "someone-else");
  BOOST_TEST(foreign.status == 404);
  auto invalid = sse_post(server().base_url(), messages_path(id),
                          {{"content", 5}, {"stream", true}}, "plain-errors");
  BOOST_TEST(invalid.status == 422);
  BOOST_TEST(json::parse(invalid.body)["errors"][0]["field"] == "content");
  // Regenerate with nothing to reply to: 409 before any stream.
  auto empty = create_conversation(c);
  auto nothing = sse_post(server().base_url(), "/v1/conversations/" + empty + "/regenerate",
                          {{"stream", true}}, "plain-errors");
  BOOST_TEST(nothing.status == 409);
  BOOST_TEST(nothing.headers["content-type"] == "application/problem+json");
}

BOOST_AUTO_TEST_CASE(a_provider_failure_mid_stream_is_an_error_event) {
  auto c = client("sse-fail");
  auto id = create_conversation(c, {{"model", "upstream"}});
  mock().push_behaviors(json::array({{{"status", 500}}}));
  auto r = sse_post(server().base_url(), messages_path(id),
                    {{"content", "doomed"}, {"stream", true}}, "sse-fail");
  BOOST_TEST(r.status == 200);
  auto names = names_of(r);
  BOOST_REQUIRE(names.size() == 2u);
  BOOST_TEST(names[0] == "message");
  BOOST_TEST(names[1] == "error");
  auto& problem = r.events[1].data;
  BOOST_TEST(problem["status"] == 502);
  BOOST_TEST(problem["message_id"] == r.events[0].data["id"]);
  // The user message is kept, no assistant message is stored.
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 1u);
  BOOST_TEST(stored[0]["id"] == r.events[0].data["id"]);
}

BOOST_AUTO_TEST_CASE(a_quiet_stream_gets_keep_alive_comments) {
  // The mock waits 900 ms before its first token; keep-alives every 200 ms.
  mock().push_behaviors(json::array({{{"ttft_ms", 900}, {"words", 2}}}));
  auto c = client("keepalive");
  auto id = create_conversation(c, {{"model", "upstream"}});
  auto r = sse_post(server().base_url(), messages_path(id), {{"content", "wait"}, {"stream", true}},
                    "keepalive");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(names_of(r).back() == "done");
  BOOST_TEST(r.comments >= 2);
  auto first_comment = r.body.find(": keep-alive");
  BOOST_REQUIRE(first_comment != std::string::npos);
  BOOST_TEST(first_comment < r.body.find("event: delta"));
}

BOOST_AUTO_TEST_CASE(a_stream_client_that_leaves_asking_to_cancel_stops_the_upstream) {
  auto c = client("sse-leaver");
  auto id = create_conversation(c, {{"model", "upstream"}});
  auto abandoned_before = mock().stats()["abandoned"].get<int>();
  // 40 words, 50 ms apart: the client leaves after the third delta.
  mock().push_behaviors(json::array({{{"ttft_ms", 50}, {"itl_ms", 50}, {"words", 40}}}));
  auto r = sse_post(server().base_url(), messages_path(id),
                    {{"content", "go"}, {"stream", true}, {"on_disconnect", "cancel"}},
                    "sse-leaver", [](const sse_result& so_far) {
                      int deltas = 0;
                      for (auto& e : so_far.events) deltas += e.name == "delta";
                      return deltas < 3;
                    });
  BOOST_TEST(r.aborted);
  BOOST_TEST(eventually([&] { return mock().stats()["abandoned"].get<int>() > abandoned_before; }));
  BOOST_TEST(mock().stats()["in_flight"] == 0);
  BOOST_REQUIRE(eventually([&] { return all_messages(c, id).size() == 2u; }));
  auto reply = all_messages(c, id)[1];
  BOOST_TEST(reply["finish_reason"] == "cancelled");
  auto text = reply["content"].get<std::string>();
  BOOST_TEST(text.rfind("w1 w2 w3", 0) == 0u);
  BOOST_TEST(text.size() < std::string("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12").size());
}

/// Sends a streamed POST from a socket with a tiny receive buffer and does not
/// read for `pause`; then reads to the end. Returns all it read.
std::string post_and_read_slowly(const std::string& path, const std::string& body,
                                 const std::string& user, milliseconds pause) {
  int fd = raw_post(server().port(), path, body, user, 2048);
  std::this_thread::sleep_for(pause);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[65536];
  for (;;) {
    auto n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return got;
}

BOOST_AUTO_TEST_CASE(a_slow_reader_is_cut_off_while_the_others_carry_on) {
  auto c = client("slow-reader");
  auto flooded = create_conversation(c, {{"model", "upstream"}});
  auto calm = create_conversation(c);
  // Meanwhile another conversation streams as usual.
  auto other = std::async(std::launch::async, [&] {
    return sse_post(server().base_url(), messages_path(calm),
                    {{"content", "a b c d e f g h"}, {"stream", true}}, "slow-reader");
  });
  // 6,000 words of 1,000 bytes at once: far more than 16 KiB of queue and
  // the socket buffers (up to 4 MiB, as the kernel tunes them) hold.
  mock().push_behaviors(
      json::array({{{"ttft_ms", 0}, {"itl_ms", 0}, {"words", 6000}, {"word_bytes", 1000}}}));
  auto got = post_and_read_slowly(
      messages_path(flooded),
      json{{"content", "flood me"}, {"stream", true}, {"on_disconnect", "cancel"}}.dump(),
      "slow-reader", milliseconds(2500));
  // The slow client got the start of the stream, then an error, then the end.
  BOOST_TEST(got.find("200 OK") != std::string::npos);
  auto error_at = got.rfind("event: error");
  BOOST_REQUIRE(error_at != std::string::npos);
  BOOST_TEST(got.find("too slowly", error_at) != std::string::npos);
  BOOST_TEST(got.find("event: done") == std::string::npos);
  BOOST_TEST(got.size() < 5'000'000u);  // far less than the whole reply
  auto calm_stream = other.get();
  BOOST_TEST(names_of(calm_stream).size() == 11u);  // message, 9 deltas, done
  BOOST_TEST(names_of(calm_stream).back() == "done");
  // What was generated for the slow client is stored: the cut-off calls its
  // generation off (unless the model finished first), and the text so far is
  // kept, however long the provider would have taken; the server carries on.
  BOOST_REQUIRE_MESSAGE(
      eventually([&] { return all_messages(c, flooded).size() == 2u; }, seconds(30)),
      "the flooded reply is not stored; server log:\n"
          << server().log());
  BOOST_TEST(all_messages(c, flooded)[1]["content"].get<std::string>().rfind("w1xx", 0) == 0u);
  BOOST_TEST(c.post(messages_path(flooded), {{"content", "still here"}}).status == 201);
}

// --- WebSocket -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(websocket_messages_get_message_deltas_and_done) {
  auto c = client("ws-user");
  auto id = create_conversation(c);
  ws_client ws(server().port(), ws_path(id), "ws-user");
  ws.send_json({{"type", "message"}, {"content", "over the socket"}, {"max_tokens", 100}});
  auto frames = read_exchange(ws);
  BOOST_REQUIRE(frames.size() >= 3u);
  BOOST_TEST(frames.front()["type"] == "message");
  BOOST_TEST(frames.front()["message"]["content"] == "over the socket");
  BOOST_TEST(frames.back()["type"] == "done");
  BOOST_TEST(text_of_deltas(frames) == "Echo: over the socket");
  BOOST_TEST(frames.back()["reply"]["content"] == "Echo: over the socket");
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1] == frames.back()["reply"]);
}

BOOST_AUTO_TEST_CASE(bad_text_frames_get_error_events_and_the_socket_stays_open) {
  auto c = client("ws-bad");
  auto id = create_conversation(c);
  ws_client ws(server().port(), ws_path(id), "ws-bad");
  ws.send_text("{not json");
  auto e1 = ws.read_json();
  BOOST_TEST(e1["type"] == "error");
  BOOST_TEST(e1["error"]["status"] == 400);
  ws.send_json({{"type", "message"}});
  auto e2 = ws.read_json();
  BOOST_TEST(e2["error"]["status"] == 422);
  BOOST_TEST(e2["error"]["errors"][0]["field"] == "content");
  ws.send_json({{"type", "shout"}, {"content", "x"}});
  auto e3 = ws.read_json();
  BOOST_TEST(e3["error"]["status"] == 422);
  BOOST_TEST(e3["error"]["errors"][0]["field"] == "type");
  ws.send_json({{"type", "message"}, {"content", "x"}, {"model", "no-such-model"}});
  BOOST_TEST(ws.read_json()["error"]["errors"][0]["field"] == "model");
  // Still open: a good message is answered.
  ws.send_json({{"type", "message"}, {"content", "fine"}});
  BOOST_TEST(read_exchange(ws).back()["type"] == "done");
}

BOOST_AUTO_TEST_CASE(binary_and_oversized_frames_close_the_socket) {
  auto c = client("ws-close");
  auto id = create_conversation(c);
  {
    ws_client ws(server().port(), ws_path(id), "ws-close");
    ws.send_binary("\x01\x02");
    BOOST_TEST(ws.read_until_closed().code == 1003);
  }
  {
    ws_client ws(server().port(), ws_path(id), "ws-close");
    ws.send_json({{"type", "message"}, {"content", std::string(5000, 'a')}});  // over 4096 bytes
    BOOST_TEST(ws.read_until_closed().code == 1009);
  }
  // Neither stored anything.
  BOOST_TEST(all_messages(c, id).empty());
}

BOOST_AUTO_TEST_CASE(upgrades_are_refused_for_missing_and_foreign_conversations) {
  auto c = client("ws-owner");
  auto id = create_conversation(c);
  std::string body;
  BOOST_TEST(upgrade_status(server().port(), ws_path(id), "ws-intruder", &body) == 404);
  BOOST_TEST(json::parse(body, nullptr, false)["status"] == 404);
  BOOST_TEST(upgrade_status(server().port(), ws_path("01900000-0000-7000-8000-000000000000"),
                            "ws-owner") == 404);
  BOOST_TEST(upgrade_status(server().port(), ws_path("not-a-uuid"), "ws-owner") == 404);
  BOOST_TEST(upgrade_status(server().port(), ws_path(id), "ws-owner") == 101);
  // A plain GET is told to upgrade.
  auto plain = c.get(ws_path(id));
  BOOST_TEST(plain.status == 426);
  BOOST_TEST(plain.header("upgrade") == "websocket");
  BOOST_TEST(plain.header("content-type") == "application/problem+json");
}

BOOST_AUTO_TEST_CASE(every_watcher_sees_every_exchange_whoever_starts_it) {
  auto c = client("fan-user");
  auto id = create_conversation(c);
  ws_client phone(server().port(), ws_path(id), "fan-user");
  ws_client laptop(server().port(), ws_path(id), "fan-user");
  // An ordinary HTTP send: both sockets see it live.
  auto sent = c.post(messages_path(id), {{"content", "from http"}});
  BOOST_REQUIRE_EQUAL(sent.status, 201);
  for (auto* ws : {&phone, &laptop}) {
    auto frames = read_exchange(*ws);
    BOOST_TEST(frames.front()["message"]["id"] == sent.json()["message"]["id"]);
    BOOST_TEST(text_of_deltas(frames) == "Echo: from http");
    BOOST_TEST(frames.back()["reply"]["id"] == sent.json()["reply"]["id"]);
  }
  // One socket sends: the other sees it, and so does a streamed HTTP request's client.
  phone.send_json({{"type", "message"}, {"content", "from the phone"}});
  auto on_phone = read_exchange(phone);
  auto on_laptop = read_exchange(laptop);
  BOOST_TEST(on_laptop.front()["message"]["content"] == "from the phone");
  BOOST_TEST(on_laptop.back()["reply"] == on_phone.back()["reply"]);
  auto streamed = sse_post(server().base_url(), messages_path(id),
                           {{"content", "from sse"}, {"stream", true}}, "fan-user");
  auto seen = read_exchange(laptop);
  BOOST_TEST(seen.back()["reply"] == streamed.events.back().data);
  BOOST_TEST(read_exchange(phone).back()["reply"] == streamed.events.back().data);
  BOOST_TEST(all_messages(c, id).size() == 6u);
}

BOOST_AUTO_TEST_CASE(a_watched_conversation_is_not_passivated) {
  auto c = client("watched");
  auto id = create_conversation(c);
  ws_client ws(server().port(), ws_path(id), "watched");
  // Past the 1 s idle timeout, an HTTP send still reaches the socket (a
  // passivated actor's successor would not know it). The client's own pings
  // keep the socket from being closed as silent.
  for (int i = 0; i < 10; ++i) {
    ws.ping();
    std::this_thread::sleep_for(milliseconds(250));
  }
  BOOST_REQUIRE_EQUAL(c.post(messages_path(id), {{"content", "later"}}).status, 201);
  BOOST_TEST(read_exchange(ws).back()["reply"]["content"] == "Echo: later");
}

BOOST_AUTO_TEST_CASE(deleting_the_conversation_closes_its_sockets) {
  auto c = client("ws-delete");
  auto id = create_conversation(c);
  ws_client ws(server().port(), ws_path(id), "ws-delete");
  BOOST_REQUIRE_EQUAL(c.del("/v1/conversations/" + id).status, 204);
  auto e = ws.read_json();
  BOOST_TEST(e["type"] == "error");
  BOOST_TEST(e["error"]["status"] == 404);
  BOOST_TEST(ws.read_until_closed().code == 1000);
}

BOOST_AUTO_TEST_CASE(a_client_that_answers_no_pings_is_closed) {
  server_process quick(server_options{.config_toml = streaming_toml(200)});
  http_client c(quick.base_url(), "ws-idle");
  auto id = create_conversation(c);
  ws_client silent(quick.port(), ws_path(id), "ws-idle");
  ws_client lively(quick.port(), ws_path(id), "ws-idle");
  // Pings every 200 ms. `silent` sends nothing and reads nothing (so answers
  // no ping) for 1.5 s; `lively` reads, and so answers the pings.
  auto start = clock_type::now();
  while (clock_type::now() - start < milliseconds(1500)) {
    lively.send_json({{"type", "message"}, {"content", "alive"}});
    BOOST_REQUIRE(read_exchange(lively).back()["type"] == "done");
  }
  auto closed = silent.read_until_closed();
  BOOST_TEST(closed.code == 1008);
  BOOST_TEST(closed.reason.find("pong") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_socket_that_leaves_mid_reply_asking_to_cancel_stops_its_generation) {
  auto c = client("ws-leaver");
  auto id = create_conversation(c, {{"model", "upstream"}});
  mock().push_behaviors(json::array({{{"ttft_ms", 50}, {"itl_ms", 50}, {"words", 40}}}));
  auto abandoned_before = mock().stats()["abandoned"].get<int>();
  {
    ws_client ws(server().port(), ws_path(id), "ws-leaver");
    ws.send_json({{"type", "message"}, {"content", "go"}, {"on_disconnect", "cancel"}});
    BOOST_TEST(ws.read_json()["type"] == "message");
    BOOST_TEST(ws.read_json()["type"] == "delta");
  }  // the socket closes
  BOOST_TEST(eventually([&] { return mock().stats()["abandoned"].get<int>() > abandoned_before; }));
  BOOST_REQUIRE(eventually([&] { return all_messages(c, id).size() == 2u; }));
  BOOST_TEST(all_messages(c, id)[1]["finish_reason"] == "cancelled");
}

BOOST_AUTO_TEST_CASE(a_repeated_streamed_request_never_stores_its_message_twice) {
  auto c = client("idem-stream");
  auto id = create_conversation(c);
  auto first =
      sse_post(server().base_url(), messages_path(id), {{"content", "once only"}, {"stream", true}},
               "idem-stream", {}, {"Idempotency-Key: stream-1"});
  BOOST_REQUIRE(names_of(first).back() == "done");
  auto again = c.post(messages_path(id), {{"content", "once only"}, {"stream", true}},
                      {"Idempotency-Key: stream-1"});
  BOOST_TEST(again.status == 201);
  BOOST_TEST(again.header("idempotent-replayed") == "true");
  BOOST_TEST(again.json()["message"]["id"] == first.events.front().data["id"]);
  BOOST_TEST(again.json()["reply"]["id"] == first.events.back().data["id"]);
  BOOST_TEST(all_messages(c, id).size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_crash_mid_stream_leaves_one_message_and_a_replayable_failure) {
  server_process crashing(server_options{.config_toml = streaming_toml()});
  http_client c(crashing.base_url(), "crash-user");
  auto id = create_conversation(c);
  // `echo` needs about 1.3 s for this reply; the server dies after the first delta.
  std::string words;
  for (int i = 0; i < 20; ++i) words += " word";
  auto cut = sse_post(crashing.base_url(), messages_path(id),
                      {{"content", words}, {"stream", true}}, "crash-user",
                      [&](const sse_result& so_far) {
                        if (so_far.events.back().name != "delta") return true;
                        crashing.kill_hard();
                        return false;
                      },
                      {"Idempotency-Key: crash-1"});
  BOOST_REQUIRE(!cut.events.empty());
  auto stored_id = cut.events.front().data["id"];
  crashing.restart();
  http_client after(crashing.base_url(), "crash-user");
  // The message the stream reported survived; the reply did not exist yet.
  auto stored = all_messages(after, id);
  BOOST_REQUIRE(stored.size() == 1u);
  BOOST_TEST(stored[0]["id"] == stored_id);
  // The client's retry gets the failure, naming that message, and adds nothing.
  auto retry = after.post(messages_path(id), {{"content", words}, {"stream", true}},
                          {"Idempotency-Key: crash-1"});
  BOOST_TEST(retry.status == 502);
  BOOST_TEST(retry.json()["message_id"] == stored_id);
  BOOST_TEST(all_messages(after, id).size() == 1u);
  // Regenerate answers it.
  BOOST_TEST(after.post("/v1/conversations/" + id + "/regenerate", json::object()).status == 201);
  BOOST_TEST(all_messages(after, id).size() == 2u);
}
