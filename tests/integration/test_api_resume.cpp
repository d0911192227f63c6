#define BOOST_TEST_MODULE api_resume
#include <boost/test/unit_test.hpp>

// Runs against the real server: clients that lose their stream and pick it
// up again (Last-Event-ID, ?run_id&after, a WebSocket's resume), after the
// run ended and after a crash; the disconnect rule (continue by default,
// cancel when asked) and POST …/cancel.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <future>
#include <map>
#include <memory>
#include <set>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

/// `echo` writes a word every 60 ms after 100 ms.
const std::string resume_toml =
    "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nttft_ms = 100\nitl_ms = 60\n";

server_process& server() {
  static auto s = std::make_unique<server_process>(server_options{.config_toml = resume_toml});
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

std::string messages_path(const std::string& id) { return conversation_path(id, "/messages"); }
std::string stream_path(const std::string& id, const std::string& query = "") {
  return conversation_path(id, "/stream") + query;
}

/// Keeps reading until `deltas` delta events came, then hangs up.
std::function<bool(const sse_result&)> hang_up_after(int deltas) {
  return [deltas](const sse_result& so_far) {
    int seen = 0;
    for (auto& e : so_far.events) seen += e.name == "delta";
    return seen < deltas;
  };
}

/// The run id and the number of an `id:` line.
std::pair<std::string, std::uint64_t> split_id(const std::string& id) {
  auto colon = id.rfind(':');
  BOOST_REQUIRE(colon != std::string::npos);
  return {id.substr(0, colon), std::stoull(id.substr(colon + 1))};
}

std::string text_of_deltas(const std::vector<sse_event_read>& events) {
  std::string text;
  for (auto& e : events)
    if (e.name == "delta") text += e.data["content"].get<std::string>();
  return text;
}

/// Every event numbered in its run, one after the other from `first`.
void expect_numbered(const std::vector<sse_event_read>& events, const std::string& run,
                     std::uint64_t first) {
  auto expected = first;
  for (auto& e : events) {
    auto [id, n] = split_id(e.id);
    BOOST_TEST(id == run);
    // Deltas replayed as one carry the number of the last of them.
    BOOST_TEST(n >= expected);
    expected = n + 1;
  }
}

json problem_of(const sse_result& r) { return json::parse(r.body, nullptr, false); }

/// The conversation's `running` field: its run in progress, or null.
json running_of(http_client& c, const std::string& id) {
  return c.get(conversation_path(id)).json()["running"];
}

/// Waits until the conversation shows a run in progress and returns it.
json wait_for_run(http_client& c, const std::string& id) {
  json running;
  BOOST_REQUIRE(eventually([&] {
    running = running_of(c, id);
    return !running.is_null();
  }));
  return running;
}

/// `content` sent as a streamed message by `user`, read to its end in the background.
std::future<sse_result> stream_in_background(const std::string& id, const std::string& content,
                                             const std::string& user) {
  return std::async(std::launch::async, [id, content, user] {
    return sse_post(server().base_url(), messages_path(id),
                    {{"content", content}, {"stream", true}}, user);
  });
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_that_drops_resumes_with_last_event_id_and_misses_nothing) {
  auto c = client("resumer");
  auto id = create_conversation(c);
  auto words = std::string("one two three four five six seven eight nine ten");
  auto first = sse_post(server().base_url(), messages_path(id),
                        {{"content", words}, {"stream", true}}, "resumer", hang_up_after(3));
  BOOST_REQUIRE(first.aborted);
  auto run = first.headers["x-run-id"];
  BOOST_REQUIRE(!run.empty());
  expect_numbered(first.events, run, 1);
  BOOST_TEST(first.events.front().id == run + ":1");  // the stored user message
  auto last_seen = first.events.back().id;

  auto rest = sse_get(server().base_url(), stream_path(id), "resumer", {},
                      {"Accept: text/event-stream", "Last-Event-ID: " + last_seen});
  BOOST_TEST(rest.status == 200);
  BOOST_TEST(rest.headers["content-type"] == "text/event-stream");
  BOOST_TEST(rest.headers["x-run-id"] == run);
  BOOST_REQUIRE(!rest.events.empty());
  BOOST_TEST(rest.events.back().name == "done");
  for (std::size_t i = 0; i + 1 < rest.events.size(); ++i)
    BOOST_TEST(rest.events[i].name == "delta");
  // Exactly the remaining events: numbered on from the last one seen.
  expect_numbered(rest.events, run, split_id(last_seen).second + 1);
  auto whole = text_of_deltas(first.events) + text_of_deltas(rest.events);
  BOOST_TEST(whole == "Echo: " + words);
  auto& done = rest.events.back().data;
  BOOST_TEST(done["id"] == run);  // a run is named after its reply
  BOOST_TEST(done["content"] == whole);
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1]["content"] == whole);
  BOOST_TEST(stored[1]["finish_reason"] == "stop");
}

BOOST_AUTO_TEST_CASE(a_dropped_client_with_continue_gets_the_whole_reply_stored_and_resumes_later) {
  auto c = client("late-resumer");
  auto id = create_conversation(c);
  auto first =
      sse_post(server().base_url(), messages_path(id),
               {{"content", "a b c d e f"}, {"stream", true}}, "late-resumer", hang_up_after(2));
  BOOST_REQUIRE(first.aborted);
  auto run = first.headers["x-run-id"];
  // The default (continue): the reply is finished and stored without its client.
  BOOST_REQUIRE(eventually([&] { return all_messages(c, id).size() == 2u; }));
  auto reply = all_messages(c, id)[1];
  BOOST_TEST(reply["content"] == "Echo: a b c d e f");
  BOOST_TEST(reply["finish_reason"] == "stop");
  BOOST_TEST(eventually([&] { return running_of(c, id).is_null(); }));

  auto [_, seen] = split_id(first.events.back().id);
  auto rest =
      sse_get(server().base_url(),
              stream_path(id, "?run_id=" + run + "&after=" + std::to_string(seen)), "late-resumer");
  BOOST_TEST(rest.status == 200);
  BOOST_REQUIRE(rest.events.size() == 2u);  // the deltas left, as one, then done
  BOOST_TEST(rest.events[0].name == "delta");
  BOOST_TEST(rest.events[1].name == "done");
  BOOST_TEST(text_of_deltas(first.events) + text_of_deltas(rest.events) == "Echo: a b c d e f");
  BOOST_TEST(rest.events[1].data == reply);
  // From the very start: the whole run again.
  auto all = sse_get(server().base_url(), stream_path(id, "?run_id=" + run), "late-resumer");
  BOOST_TEST(all.events.front().name == "message");
  BOOST_TEST(all.events.front().id == run + ":1");
  BOOST_TEST(text_of_deltas(all.events) == "Echo: a b c d e f");
  // Nothing after the last event: 204, which also stops a browser's EventSource.
  auto after_done = sse_get(server().base_url(), stream_path(id), "late-resumer", {},
                            {"Last-Event-ID: " + rest.events[1].id});
  BOOST_TEST(after_done.status == 204);
  BOOST_TEST(after_done.body.empty());
}

BOOST_AUTO_TEST_CASE(the_running_exchange_is_shown_and_can_be_joined_from_its_start) {
  auto c = client("joiner");
  auto id = create_conversation(c);
  BOOST_TEST(running_of(c, id).is_null());
  // Nothing runs and no run is named.
  BOOST_TEST(sse_get(server().base_url(), stream_path(id), "joiner").status == 204);
  // 40 words at 60 ms: the reply still runs while the test looks and joins.
  auto words = std::string(
      "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 "
      "w25 w26 w27 w28 w29 w30 w31 w32 w33 w34 w35 w36 w37 w38 w39 w40");
  auto sender = stream_in_background(id, words, "joiner");
  auto running = wait_for_run(c, id);
  BOOST_TEST(running["started_at"].is_string());
  auto run = running["run_id"].get<std::string>();
  // The listing shows it too.
  auto listed = c.get("/v1/conversations").json()["data"];
  BOOST_REQUIRE(!listed.empty());
  BOOST_TEST(listed[0]["running"]["run_id"] == run);

  auto joined = sse_get(server().base_url(), stream_path(id), "joiner");
  auto sent = sender.get();
  BOOST_TEST(joined.status == 200);
  BOOST_TEST(joined.headers["x-run-id"] == run);
  BOOST_TEST(sent.headers["x-run-id"] == run);
  BOOST_REQUIRE(joined.events.size() >= 3u);
  BOOST_TEST(joined.events.front().name == "message");
  BOOST_TEST(joined.events.front().id == run + ":1");
  BOOST_TEST(joined.events.back().name == "done");
  BOOST_TEST(text_of_deltas(joined.events) == "Echo: " + words);
  BOOST_TEST(joined.events.back().data == sent.events.back().data);
  BOOST_TEST(joined.events.back().id == sent.events.back().id);
  BOOST_TEST(eventually([&] { return running_of(c, id).is_null(); }));
}

BOOST_AUTO_TEST_CASE(unknown_foreign_and_malformed_runs_are_refused) {
  auto c = client("run-owner");
  auto id = create_conversation(c);
  auto other = create_conversation(c);
  auto r = sse_post(server().base_url(), messages_path(id), {{"content", "hi"}, {"stream", true}},
                    "run-owner");
  auto run = r.headers["x-run-id"];
  BOOST_REQUIRE(!run.empty());
  auto expect_404 = [&](const std::string& path, std::vector<std::string> headers,
                        const std::string& user = "run-owner") {
    auto got = sse_get(server().base_url(), path, user, {}, std::move(headers));
    BOOST_TEST(got.status == 404, path);
    BOOST_TEST(problem_of(got)["status"] == 404);
  };
  expect_404(stream_path(id, "?run_id=01900000-0000-7000-8000-000000000000"), {});
  expect_404(stream_path(other, "?run_id=" + run), {});  // another conversation's
  expect_404(stream_path(id, "?run_id=" + run), {}, "someone-else");
  expect_404(stream_path(id), {"Last-Event-ID: not-a-run"});
  expect_404(stream_path(id), {"Last-Event-ID: " + run + ":x"});
  expect_404(stream_path(id, "?run_id=nope"), {});
  expect_404(stream_path("01900000-0000-7000-8000-000000000001"), {});
  auto bad_after =
      sse_get(server().base_url(), stream_path(id, "?run_id=" + run + "&after=-1"), "run-owner");
  BOOST_TEST(bad_after.status == 422);
  BOOST_TEST(problem_of(bad_after)["errors"][0]["field"] == "after");
  auto after_alone = sse_get(server().base_url(), stream_path(id, "?after=2"), "run-owner");
  BOOST_TEST(after_alone.status == 422);
  BOOST_TEST(c.post(stream_path(id), json::object()).status == 405);
}

BOOST_AUTO_TEST_CASE(a_websocket_resumes_a_run_it_missed) {
  auto c = client("ws-resumer");
  auto id = create_conversation(c);
  auto first = sse_post(server().base_url(), messages_path(id),
                        {{"content", "x y z"}, {"stream", true}}, "ws-resumer", hang_up_after(1));
  auto run = first.headers["x-run-id"];
  auto [_, seen] = split_id(first.events.back().id);
  BOOST_REQUIRE(eventually([&] { return all_messages(c, id).size() == 2u; }));
  ws_client ws(server().port(), conversation_path(id, "/ws"), "ws-resumer");
  ws.send_json({{"type", "resume"}, {"run_id", run}, {"after", seen}});
  auto delta = ws.read_json();
  BOOST_TEST(delta["type"] == "delta");
  BOOST_TEST(delta["run_id"] == run);
  BOOST_TEST(delta["n"].get<std::uint64_t>() > seen);
  auto done = ws.read_json();
  BOOST_TEST(done["type"] == "done");
  BOOST_TEST(done["run_id"] == run);
  BOOST_TEST(text_of_deltas(first.events) + delta["content"].get<std::string>() == "Echo: x y z");
  BOOST_TEST(done["reply"]["content"] == "Echo: x y z");
  // An unknown run is an error event; the socket stays open for more.
  ws.send_json({{"type", "resume"}, {"run_id", "01900000-0000-7000-8000-000000000000"}});
  auto refused = ws.read_json();
  BOOST_TEST(refused["type"] == "error");
  BOOST_TEST(refused["error"]["status"] == 404);
  ws.send_json({{"type", "resume"}, {"run_id", run}, {"after", "two"}});
  BOOST_TEST(ws.read_json()["error"]["status"] == 422);
  // Live exchanges started on the socket are numbered too.
  ws.send_json({{"type", "message"}, {"content", "live"}});
  auto message = ws.read_json();
  BOOST_TEST(message["type"] == "message");
  BOOST_TEST(message["n"] == 1);
  BOOST_TEST(message["run_id"].is_string());
}

BOOST_AUTO_TEST_CASE(a_websocket_that_resumes_mid_run_gets_each_event_once) {
  auto c = client("ws-mid-run");
  auto id = create_conversation(c);
  std::string words;
  for (int i = 1; i <= 16; ++i) words += (i > 1 ? " w" : "w") + std::to_string(i);
  auto sender = stream_in_background(id, words, "ws-mid-run");
  auto running = wait_for_run(c, id);
  std::this_thread::sleep_for(milliseconds(300));  // a few deltas go by before it connects
  ws_client ws(server().port(), conversation_path(id, "/ws"), "ws-mid-run");
  // It watches from here; it asks for the run from its start.
  ws.send_json({{"type", "resume"}, {"run_id", running["run_id"]}, {"after", 0}});
  std::map<std::uint64_t, json> by_number;
  for (;;) {
    auto frame = ws.read_json();
    BOOST_REQUIRE(frame["type"] != "error");
    auto n = frame["n"].get<std::uint64_t>();
    BOOST_TEST(by_number.count(n) == 0u, "event " << n << " twice");
    by_number[n] = frame;
    if (frame["type"] == "done") break;
  }
  auto sent = sender.get();
  // In the order of their numbers, the frames make the whole reply.
  std::string text;
  for (auto& [n, frame] : by_number)
    if (frame["type"] == "delta") text += frame["content"].get<std::string>();
  BOOST_TEST(text == "Echo: " + words);
  BOOST_TEST(by_number.begin()->second["type"] == "message");
  BOOST_TEST(by_number.rbegin()->second["reply"] == sent.events.back().data);
  // A socket that watched the whole run is replayed nothing it already has.
  ws.send_json({{"type", "message"}, {"content", "again"}});
  auto frames = std::vector<json>{ws.read_json()};
  auto run = frames[0]["run_id"];
  ws.send_json({{"type", "resume"}, {"run_id", run}, {"after", 0}});
  for (;;) {
    frames.push_back(ws.read_json());
    if (frames.back()["type"] == "done") break;
  }
  std::set<std::uint64_t> numbers;
  for (auto& f : frames) BOOST_TEST(numbers.insert(f["n"].get<std::uint64_t>()).second);
}

BOOST_AUTO_TEST_CASE(cancel_stores_the_partial_reply_and_ends_the_stream) {
  auto c = client("canceller");
  auto id = create_conversation(c);
  // Nothing runs yet.
  auto idle = c.post(conversation_path(id, "/cancel"), json::object());
  expect_problem(idle, 409);
  std::string words;
  for (int i = 1; i <= 40; ++i) words += (i > 1 ? " w" : "w") + std::to_string(i);
  auto sender = stream_in_background(id, words, "canceller");
  wait_for_run(c, id);
  std::this_thread::sleep_for(milliseconds(300));
  // Another user cannot.
  expect_problem(http_client(server().base_url(), "not-owner")
                     .post(conversation_path(id, "/cancel"), json::object()),
                 404);
  auto cancelled = c.post(conversation_path(id, "/cancel"), json::object());
  BOOST_REQUIRE(cancelled.status == 200);
  auto reply = cancelled.json();
  BOOST_TEST(reply["role"] == "assistant");
  BOOST_TEST(reply["finish_reason"] == "cancelled");
  auto text = reply["content"].get<std::string>();
  BOOST_TEST(text.rfind("Echo:", 0) == 0u);
  BOOST_TEST(text.size() < ("Echo: " + words).size());
  // The streaming client saw the same reply as its done.
  auto streamed = sender.get();
  BOOST_TEST(streamed.events.back().name == "done");
  BOOST_TEST(streamed.events.back().data == reply);
  BOOST_TEST(text_of_deltas(streamed.events) == text);
  auto stored = all_messages(c, id);
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1] == reply);
  expect_problem(c.post(conversation_path(id, "/cancel"), json::object()), 409);
  // The conversation goes on.
  BOOST_TEST(send_message(c, id, {{"content", "again"}})["reply"]["content"] == "Echo: again");
}

BOOST_AUTO_TEST_CASE(cancel_stops_a_reply_nobody_streams) {
  auto c = client("quiet-canceller");
  auto id = create_conversation(c);
  auto sender = std::async(std::launch::async, [&] {
    return c.post(messages_path(id), {{"content",
                                       "a b c d e f g h i j k l m n o p q r s t u v w x y z "
                                       "a b c d e f g h i j k l m n o p q r s t u v w x y z"}});
  });
  http_client other(server().base_url(), "quiet-canceller");
  wait_for_run(other, id);
  auto cancelled = other.post(conversation_path(id, "/cancel"), json::object());
  BOOST_REQUIRE(cancelled.status == 200);
  BOOST_TEST(cancelled.json()["finish_reason"] == "cancelled");
  auto sent = sender.get();
  BOOST_TEST(sent.status == 201);
  BOOST_TEST(sent.json()["reply"] == cancelled.json());
}

BOOST_AUTO_TEST_CASE(on_disconnect_is_checked) {
  auto c = client("bad-disconnect");
  auto id = create_conversation(c);
  auto r = c.post(messages_path(id), {{"content", "x"}, {"on_disconnect", "explode"}});
  auto p = expect_problem(r, 422);
  BOOST_TEST(p["errors"][0]["field"] == "on_disconnect");
  expect_problem(c.post(conversation_path(id, "/regenerate"), {{"on_disconnect", 1}}), 422);
  BOOST_TEST(all_messages(c, id).empty());
}

BOOST_AUTO_TEST_CASE(after_a_crash_a_resume_gets_the_stored_reply_or_an_error_naming_the_input) {
  // A server of its own, killed with SIGKILL mid-run and started again.
  server_process crashing(server_options{
      .config_toml = "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nitl_ms = 100\n"});
  http_client c(crashing.base_url(), "crash-user");
  auto id = create_conversation(c);
  auto finished = sse_post(crashing.base_url(), messages_path(id),
                           {{"content", "done before"}, {"stream", true}}, "crash-user");
  auto finished_run = finished.headers["x-run-id"];
  auto mid = std::async(std::launch::async, [&] {
    return sse_post(crashing.base_url(), messages_path(id),
                    {{"content", "a b c d e f g h i j k l m n o p q r s t"}, {"stream", true}},
                    "crash-user", hang_up_after(2));
  });
  auto cut = mid.get();
  auto run = cut.headers["x-run-id"];
  auto user_message = cut.events.front().data;
  BOOST_REQUIRE(user_message["role"] == "user");
  crashing.kill_hard();
  crashing.restart();
  http_client after(crashing.base_url(), "crash-user");
  auto resumed = sse_get(crashing.base_url(), stream_path(id), "crash-user", {},
                         {"Last-Event-ID: " + cut.events.back().id});
  BOOST_TEST(resumed.status == 200);
  BOOST_REQUIRE(resumed.events.size() == 1u);
  BOOST_TEST(resumed.events[0].name == "error");
  BOOST_TEST(resumed.events[0].data["status"] == 502);
  BOOST_TEST(resumed.events[0].data["message_id"] == user_message["id"]);
  BOOST_TEST(split_id(resumed.events[0].id).first == run);
  // The run that had finished: its stored reply, as done.
  auto done = sse_get(crashing.base_url(), stream_path(id, "?run_id=" + finished_run + "&after=1"),
                      "crash-user");
  BOOST_REQUIRE(done.events.size() == 1u);
  BOOST_TEST(done.events[0].name == "done");
  BOOST_TEST(done.events[0].data == finished.events.back().data);
  // Still another user's runs are not found.
  BOOST_TEST(sse_get(crashing.base_url(), stream_path(id, "?run_id=" + run), "stranger").status ==
             404);
  // Regenerate answers the message the crash left without a reply.
  auto again = after.post(conversation_path(id, "/regenerate"), json::object());
  BOOST_TEST(again.status == 201);
  BOOST_TEST(again.json()["reply"]["parent_id"] == user_message["id"]);
}
