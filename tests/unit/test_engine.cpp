#define BOOST_TEST_MODULE engine
#include <boost/test/unit_test.hpp>

#include "actors/engine.hpp"
#include "actors/engine_clock.hpp"
#include "base/mutex.hpp"
#include "config/load_settings.hpp"
#include "support/forwarding_store.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

using namespace parley;

namespace {

/// The built-in provider, replaced by one that waits `ttft_ms` before answering.
provider_settings slow_builtin(unsigned ttft_ms) {
  provider_settings p;
  p.name = "builtin";
  p.kind = "builtin";
  p.ttft_ms = ttft_ms;
  return p;
}

constexpr unix_ms day_ms = 86400000;

/// The coming midnight, UTC.
unix_ms next_midnight() { return (now_ms() / day_ms + 1) * day_ms; }

/// Waits for an engine callback.
template <class T>
struct waiter {
  std::promise<outcome<T>> promise;
  reply_fn<T> fn() {
    return [this](outcome<T> r) { promise.set_value(std::move(r)); };
  }
  outcome<T> get() {
    auto f = promise.get_future();
    BOOST_REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return f.get();
  }
};

struct engine_fixture {
  explicit engine_fixture(std::function<void(settings&)> tweak = {}) {
    char dir[] = "/tmp/parley-engine-XXXXXX";
    path = mkdtemp(dir);
    cfg.database.url = parse_database_url("sqlite://" + path + "/t.db");
    cfg.server.threads = 2;
    if (tweak) tweak(cfg);
    start();
  }
  ~engine_fixture() {
    eng.reset();
    std::filesystem::remove_all(path);
  }
  void start() { eng = engine::start(cfg, model_registry::build(cfg), stores, clock); }

  exchange_result create(const std::string& user, std::optional<std::string> first = {}) {
    new_conversation c;
    c.user_id = user;
    c.model = "echo";
    if (first) {
      c.first_message = send_params{};
      c.first_message->content = *first;
    }
    waiter<exchange_answer> w;
    eng->create_conversation(c, std::nullopt, w.fn());
    auto r = w.get();
    BOOST_REQUIRE(bool(r));
    return *r;
  }

  /// Sends `text`; with `stream`, streamed to it.
  outcome<exchange_answer> send(const std::string& user, const std::string& id,
                                const std::string& text,
                                std::shared_ptr<conversation_subscriber> stream = nullptr) {
    send_params p;
    p.content = text;
    p.stream = std::move(stream);
    waiter<exchange_answer> w;
    eng->send_message(user, id, p, std::nullopt, w.fn());
    return w.get();
  }

  message_page history(const std::string& user, const std::string& id) {
    waiter<message_page> w;
    eng->list_messages(user, id, history_query{0, std::nullopt, 200}, w.fn());
    auto r = w.get();
    BOOST_REQUIRE(bool(r));
    return *r;
  }

  std::string path;
  settings cfg;
  store_factory stores;  ///< empty: the database at cfg.database.url
  /// The engine's time, which moves only when a test moves it: deadlines and
  /// idleness need no waiting. It starts a minute before the coming UTC
  /// midnight, today: what still reads the machine's clock (the writer's
  /// purge of old idempotency keys, the time in a UUID v7) stays in step.
  std::shared_ptr<manual_clock> clock = std::make_shared<manual_clock>(next_midnight() - 60000);
  std::unique_ptr<engine> eng;
};

bool eventually(std::function<bool()> condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// Moves the engine's clock on in `step`s until `condition` holds, giving
/// the engine's threads up to a quarter of a second to act on each new time.
/// For when the test cannot know when an actor last saw a request. False if
/// it never holds within `steps`.
bool advance_until(engine_fixture& f, std::chrono::milliseconds step,
                   const std::function<bool()>& condition, int steps = 40) {
  for (int i = 0; i < steps; ++i) {
    f.clock->advance(step);
    for (int look = 0; look < 250; ++look) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return condition();
}

}  // namespace

BOOST_AUTO_TEST_CASE(idle_actors_passivate_and_come_back) {
  engine_fixture f([](settings& s) { s.actors.idle_timeout_s = 1; });
  auto id = f.create("alice", "first").conversation->id;
  BOOST_TEST(f.eng->live_conversations() == 1u);
  // Its first check (a quarter of the timeout after it began) finds it
  // quiet for longer than the timeout.
  f.clock->advance(std::chrono::milliseconds(1300));
  BOOST_TEST(eventually([&] { return f.eng->live_conversations() == 0; }));
  auto again = f.send("alice", id, "second");
  BOOST_REQUIRE(bool(again));
  BOOST_TEST(again->message->seq == 3);  // seq continues from the database
  BOOST_TEST(again->reply->content == "Echo: second");
  BOOST_TEST(f.history("alice", id).data.size() == 4u);
}

BOOST_AUTO_TEST_CASE(live_actors_are_capped_least_recently_used_first) {
  engine_fixture f([](settings& s) { s.actors.max_live = 32; });  // one per shard
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(f.create("alice").conversation->id);
  BOOST_TEST(eventually([&] { return f.eng->live_conversations() <= 64; }));
  // Every conversation still answers, reloaded on demand.
  for (auto& id : ids) {
    waiter<conversation_record> w;
    f.eng->get_conversation("alice", id, w.fn());
    BOOST_TEST(bool(w.get()));
  }
}

BOOST_AUTO_TEST_CASE(state_survives_an_engine_restart) {
  engine_fixture f;
  auto id = f.create("alice", "hello").conversation->id;
  f.eng->shutdown();
  f.start();
  auto r = f.send("alice", id, "again");
  BOOST_REQUIRE(bool(r));
  BOOST_TEST(r->message->seq == 3);
}

BOOST_AUTO_TEST_CASE(foreign_and_missing_conversations_are_not_found) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto foreign = f.send("bob", id, "hi");
  BOOST_REQUIRE(!foreign);
  BOOST_TEST((foreign.error().code == errc::not_found));
  auto missing = f.send("alice", "01a20421-86a4-75e1-b9c5-9c9695ddd071", "hi");
  BOOST_REQUIRE(!missing);
  BOOST_TEST((missing.error().code == errc::not_found), missing.error().detail);
  BOOST_TEST(f.history("alice", id).data.empty());
}

BOOST_AUTO_TEST_CASE(a_full_queue_answers_queue_full) {
  engine_fixture f([](settings& s) {
    s.limits.conversation_queue = 1;
    s.providers.push_back(slow_builtin(300));
  });
  auto id = f.create("alice").conversation->id;
  std::vector<std::unique_ptr<waiter<exchange_answer>>> waits;
  for (int i = 0; i < 4; ++i) {
    waits.push_back(std::make_unique<waiter<exchange_answer>>());
    send_params p;
    p.content = "m" + std::to_string(i);
    f.eng->send_message("alice", id, p, std::nullopt, waits.back()->fn());
  }
  int ok = 0, full = 0;
  for (auto& w : waits) {
    auto r = w->get();
    if (r)
      ++ok;
    else if (r.error().code == errc::queue_full)
      ++full;
  }
  BOOST_TEST(ok == 2);  // one running, one waiting
  BOOST_TEST(full == 2);
}

BOOST_AUTO_TEST_CASE(edits_and_deletes_are_reflected_in_the_next_reply) {
  engine_fixture f;
  auto created = f.create("alice", "original question");
  auto id = created.conversation->id;
  waiter<message_record> edit;
  f.eng->edit_message("alice", id, created.message->id, "edited question", edit.fn());
  auto edited = edit.get();
  BOOST_REQUIRE(bool(edited));
  BOOST_TEST(edited->edited_at.has_value());
  waiter<exchange_answer> regen;
  f.eng->regenerate("alice", id, {}, std::nullopt, regen.fn());
  auto r = regen.get();
  BOOST_REQUIRE(bool(r));
  BOOST_TEST(r->reply->content == "Echo: edited question");
  BOOST_TEST(r->reply->seq == 3);  // seq is never reused
  auto page = f.history("alice", id);
  BOOST_REQUIRE(page.data.size() == 2u);  // the old reply was replaced
  BOOST_TEST(page.data[1].id == r->reply->id);

  waiter<done> del;
  f.eng->delete_message("alice", id, r->reply->id, del.fn());
  BOOST_TEST(bool(del.get()));
  // The replaced reply, kept as a sibling, is the active leaf again.
  page = f.history("alice", id);
  BOOST_REQUIRE(page.data.size() == 2u);
  BOOST_TEST(page.data[1].id == created.reply->id);
  for (auto& m : page.data) {
    waiter<done> del_next;
    f.eng->delete_message("alice", id, m.id, del_next.fn());
    BOOST_TEST(bool(del_next.get()));
  }
  BOOST_TEST(f.history("alice", id).data.empty());
  waiter<exchange_answer> empty;
  f.eng->regenerate("alice", id, {}, std::nullopt, empty.fn());
  auto nothing = empty.get();
  BOOST_REQUIRE(!nothing);
  BOOST_TEST((nothing.error().code == errc::conflict));
}

BOOST_AUTO_TEST_CASE(context_leaves_out_old_messages_and_refills_after_deletes) {
  engine_fixture f([](settings& s) {
    s.models.push_back({"tiny", "builtin", "", 64, 16});  // 48 tokens for the context
  });
  new_conversation c;
  c.user_id = "alice";
  c.model = "tiny";
  waiter<exchange_answer> w;
  f.eng->create_conversation(c, std::nullopt, w.fn());
  auto id = (*w.get()).conversation->id;
  std::vector<std::int64_t> prompt_tokens;
  for (int i = 0; i < 8; ++i) {
    auto r = f.send("alice", id, "sixteen chars ok");  // 4 + 4 tokens per message
    BOOST_REQUIRE(bool(r));
    prompt_tokens.push_back(*r->reply->prompt_tokens);
  }
  BOOST_TEST(prompt_tokens.front() == 8);
  BOOST_TEST(prompt_tokens.back() <= 48);  // the window stops growing at its budget
  BOOST_TEST(prompt_tokens.back() == prompt_tokens[prompt_tokens.size() - 2]);
}

BOOST_AUTO_TEST_CASE(deleted_conversation_is_gone) {
  engine_fixture f;
  auto id = f.create("alice", "x").conversation->id;
  waiter<done> del;
  f.eng->delete_conversation("alice", id, del.fn());
  BOOST_TEST(bool(del.get()));
  waiter<conversation_record> get;
  f.eng->get_conversation("alice", id, get.fn());
  auto r = get.get();
  BOOST_REQUIRE(!r);
  BOOST_TEST((r.error().code == errc::not_found));
}

BOOST_AUTO_TEST_CASE(history_does_not_wait_behind_a_generation) {
  engine_fixture f([](settings& s) { s.providers.push_back(slow_builtin(1500)); });
  auto id = f.create("alice").conversation->id;
  send_params p;
  p.content = "slow";
  p.reply = false;
  waiter<exchange_answer> note;
  f.eng->send_message("alice", id, p, std::nullopt, note.fn());
  BOOST_REQUIRE(bool(note.get()));
  waiter<exchange_answer> slow;
  p.reply = true;
  f.eng->send_message("alice", id, p, std::nullopt, slow.fn());
  auto page = f.history("alice", id);  // answered while the reply is being generated
  BOOST_TEST(page.data.size() == 1u);
  auto pending = slow.promise.get_future();
  BOOST_TEST((pending.wait_for(std::chrono::seconds(0)) == std::future_status::timeout));
  BOOST_REQUIRE((pending.wait_for(std::chrono::seconds(30)) == std::future_status::ready));
  BOOST_TEST(bool(pending.get()));
  waiter<message_page> foreign;
  f.eng->list_messages("mallory", id, history_query{}, foreign.fn());
  auto denied = foreign.get();
  BOOST_REQUIRE(!denied);
  BOOST_TEST((denied.error().code == errc::not_found));
}

namespace {

/// A subscriber that records what it is told, as a WebSocket would.
struct recording_subscriber : conversation_subscriber {
  parley::mutex mutex;
  /// "message:<content>", "delta:<text>", "done:<content>", …
  std::vector<std::string> seen GUARDED_BY(mutex);
  bool accept GUARDED_BY(mutex) = true;  ///< false: it is gone, the actor should forget it

  bool deliver(const conversation_event& e) override {
    mutex_lock lock(mutex);
    using kind = conversation_event::kind;
    switch (e.type) {
      case kind::started:
        seen.push_back("started");
        break;
      case kind::message:
        seen.push_back("message:" + e.message->content.str());
        break;
      case kind::delta:
        seen.push_back("delta:" + e.text);
        break;
      case kind::done:
        seen.push_back("done:" + e.message->content.str());
        break;
      case kind::branch:
        seen.push_back("branch:" + e.active_leaf_id.value_or(""));
        break;
      case kind::closed:
        seen.push_back("closed:" + e.reason->detail);
        break;
      case kind::failed:
        seen.push_back("failed:" + e.reason->detail);
        break;
      case kind::compaction:
        seen.push_back("compaction:" + e.summary->content);
        break;
      case kind::edited:
        seen.push_back("edited:" + e.message->content.str());
        break;
      case kind::removed:
        seen.push_back("removed:" + e.text);
        break;
    }
    return accept;
  }
  std::vector<std::string> events() {
    mutex_lock lock(mutex);
    return seen;
  }
  void leave() {
    mutex_lock lock(mutex);
    accept = false;
  }
};

outcome<done> watch(engine_fixture& f, const std::string& user, const std::string& id,
                    const std::shared_ptr<conversation_subscriber>& s) {
  waiter<done> w;
  f.eng->watch(user, id, s, w.fn());
  return w.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(watchers_see_each_exchange_in_order) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto a = std::make_shared<recording_subscriber>();
  auto b = std::make_shared<recording_subscriber>();
  BOOST_REQUIRE(bool(watch(f, "alice", id, a)));
  BOOST_REQUIRE(bool(watch(f, "alice", id, b)));
  BOOST_REQUIRE(bool(f.send("alice", id, "hi there")));
  std::vector<std::string> expected{"message:hi there", "delta:Echo:", "delta: hi", "delta: there",
                                    "done:Echo: hi there"};
  BOOST_TEST(a->events() == expected, boost::test_tools::per_element());
  BOOST_TEST(b->events() == expected, boost::test_tools::per_element());
  // One that went away is forgotten; unwatch forgets the other.
  b->leave();
  BOOST_REQUIRE(bool(f.send("alice", id, "again")));
  auto b_count = b->events().size();
  f.eng->unwatch(id, a);
  BOOST_REQUIRE(bool(f.send("alice", id, "third")));
  BOOST_TEST(b->events().size() == b_count);
  BOOST_TEST(a->events().size() == expected.size() + 4);  // only "again"'s message, deltas, done
}

BOOST_AUTO_TEST_CASE(only_the_owner_may_watch) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto s = std::make_shared<recording_subscriber>();
  auto foreign = watch(f, "bob", id, s);
  BOOST_REQUIRE(!foreign);
  BOOST_TEST((foreign.error().code == errc::not_found));
  auto missing = watch(f, "alice", "01900000-0000-7000-8000-000000000000", s);
  BOOST_REQUIRE(!missing);
  BOOST_TEST((missing.error().code == errc::not_found), missing.error().detail);
}

BOOST_AUTO_TEST_CASE(a_streamed_exchange_stores_its_message_before_the_reply) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto stream = std::make_shared<recording_subscriber>();
  send_params p;
  p.content = "stream me";
  p.stream = stream;
  waiter<exchange_answer> w;
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  auto r = w.get();
  BOOST_REQUIRE(bool(r));
  auto events = stream->events();
  BOOST_REQUIRE(events.size() == 5u);
  BOOST_TEST(events.front() == "message:stream me");
  BOOST_TEST(events.back() == "done:Echo: stream me");
  BOOST_TEST(r->message->seq == 1);
  BOOST_TEST(r->reply->seq == 2);
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[0].id == r->message->id);
  BOOST_TEST(stored[1].id == r->reply->id);
  // A regenerated stream starts without a user message.
  auto regen_stream = std::make_shared<recording_subscriber>();
  regenerate_params rp;
  rp.stream = regen_stream;
  waiter<exchange_answer> rw;
  f.eng->regenerate("alice", id, rp, std::nullopt, rw.fn());
  BOOST_REQUIRE(bool(rw.get()));
  BOOST_TEST(regen_stream->events().front() == "started");
  BOOST_TEST(regen_stream->events().back() == "done:Echo: stream me");
  BOOST_TEST(f.history("alice", id).data.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_watched_actor_stays_live_and_deletion_closes_its_watchers) {
  engine_fixture f([](settings& s) { s.actors.idle_timeout_s = 1; });
  auto id = f.create("alice").conversation->id;
  f.create("alice");  // another, unwatched and as idle
  auto s = std::make_shared<recording_subscriber>();
  BOOST_REQUIRE(bool(watch(f, "alice", id, s)));
  // Both actors' checks come at the same times: once the unwatched one has
  // passivated, the watched one has been checked as idle too, and stayed.
  BOOST_REQUIRE(advance_until(f, std::chrono::milliseconds(250),
                              [&] { return f.eng->live_conversations() == 1u; }));
  for (int i = 0; i < 8; ++i) {  // two more timeouts' worth of checks
    f.clock->advance(std::chrono::milliseconds(250));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_TEST(f.eng->live_conversations() == 1u);
  waiter<done> w;
  f.eng->delete_conversation("alice", id, w.fn());
  BOOST_REQUIRE(bool(w.get()));
  BOOST_REQUIRE(!s->events().empty());
  BOOST_TEST(s->events().back().rfind("closed:", 0) == 0u);
  // Unwatched, the actor passivates as usual.
  auto other = f.create("alice").conversation->id;
  auto t = std::make_shared<recording_subscriber>();
  BOOST_REQUIRE(bool(watch(f, "alice", other, t)));
  f.eng->unwatch(other, t);
  BOOST_TEST(advance_until(f, std::chrono::milliseconds(250),
                           [&] { return f.eng->live_conversations() == 0; }));
}

namespace {

/// A stream whose client is cut off (too slow a reader) after the first delta.
struct cut_off_stream : recording_subscriber {
  bool deliver(const conversation_event& e) override {
    recording_subscriber::deliver(e);
    return e.type != conversation_event::kind::delta;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_stream_cut_off_that_cancels_on_disconnect_keeps_the_text_so_far) {
  // One word every 300 ms: without the cancel the whole reply would come.
  engine_fixture f([](settings& s) {
    auto slow = slow_builtin(10);
    slow.itl_ms = 300;
    s.providers.push_back(slow);
  });
  auto id = f.create("alice").conversation->id;
  auto stream = std::make_shared<cut_off_stream>();
  send_params p;
  p.content = "one two three four five six seven eight";
  p.stream = stream;
  // What the HTTP layer passes for on_disconnect = cancel.
  p.cancel = std::make_shared<cancellation>();
  waiter<exchange_answer> w;
  auto began = std::chrono::steady_clock::now();
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  auto r = w.get();
  BOOST_REQUIRE(bool(r));
  BOOST_TEST((std::chrono::steady_clock::now() - began < std::chrono::seconds(2)));
  BOOST_REQUIRE(r->reply.has_value());
  BOOST_TEST((r->reply->finish_reason == "cancelled"));
  BOOST_TEST(r->reply->content == "Echo:");
  // No delta after the refused one was offered to the stream; the reply is stored.
  auto events = stream->events();
  BOOST_TEST(std::count_if(events.begin(), events.end(),
                           [](auto& e) { return e.rfind("delta:", 0) == 0; }) == 1);
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1].id == r->reply->id);
  BOOST_TEST((stored[1].finish_reason == "cancelled"));
}

BOOST_AUTO_TEST_CASE(a_stream_cut_off_that_continues_on_disconnect_gets_the_whole_reply) {
  engine_fixture f([](settings& s) {
    auto slow = slow_builtin(10);
    slow.itl_ms = 20;
    s.providers.push_back(slow);
  });
  auto id = f.create("alice").conversation->id;
  auto r = f.send("alice", id, "one two three four", std::make_shared<cut_off_stream>());
  BOOST_REQUIRE(bool(r));
  BOOST_REQUIRE(r->reply.has_value());
  BOOST_TEST((r->reply->finish_reason == "stop"));
  BOOST_TEST(r->reply->content == "Echo: one two three four");
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1].content == "Echo: one two three four");
}

namespace {

/// Records each event as "<kind> <n> <text>" (n is 0 outside a run).
struct numbered_subscriber : conversation_subscriber {
  parley::mutex mutex;
  std::vector<std::string> seen GUARDED_BY(mutex);
  std::string run GUARDED_BY(mutex);  ///< of the latest event of a run

  bool deliver(const conversation_event& e) override {
    // In the order of conversation_event::kind.
    static const char* const names[] = {"started",    "message", "delta",  "done",   "failed",
                                        "compaction", "branch",  "closed", "edited", "removed"};
    mutex_lock lock(mutex);
    if (e.run_id) run = *e.run_id;
    auto text = e.type == conversation_event::kind::delta ? e.text
                : e.message                               ? e.message->content.str()
                : e.reason                                ? e.reason->detail
                                                          : std::string();
    seen.push_back(std::string(names[static_cast<int>(e.type)]) + " " + std::to_string(e.n) + " " +
                   text);
    return true;
  }
  std::vector<std::string> events() {
    mutex_lock lock(mutex);
    return seen;
  }
  std::string last_run() {
    mutex_lock lock(mutex);
    return run;
  }
};

outcome<resume_outcome> resume(engine_fixture& f, const std::string& user, const std::string& id,
                               std::optional<run_position> from,
                               const std::shared_ptr<conversation_subscriber>& s) {
  waiter<resume_outcome> w;
  f.eng->resume(user, id, std::move(from), s, true, w.fn());
  return w.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_run_is_numbered_and_replayed_after_a_position_its_deltas_as_one) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto own = std::make_shared<numbered_subscriber>();
  auto sent = f.send("alice", id, "a b c", own);
  BOOST_REQUIRE(bool(sent));
  auto run = sent->reply->id;
  auto events = own->events();
  // The message is stored (and opens the stream) first: message 1, deltas
  // 2…k, done k+1 = the number of events.
  BOOST_REQUIRE(events.size() >= 4u);
  BOOST_TEST(events[0] == "message 1 a b c");
  auto last = events.size();
  BOOST_TEST(events.back() == "done " + std::to_string(last) + " Echo: a b c");

  // After the first delta: the rest of the text as one delta, then done.
  auto replayed = std::make_shared<numbered_subscriber>();
  auto r = resume(f, "alice", id, run_position{run, 2}, replayed);
  BOOST_REQUIRE(bool(r));
  BOOST_TEST((*r == resume_outcome::streaming));
  std::string rest;
  for (std::size_t i = 2; i + 1 < last; ++i) rest += events[i].substr(events[i].find(' ', 6) + 1);
  auto got = replayed->events();
  BOOST_REQUIRE(got.size() == 2u);
  BOOST_TEST(got[0] == "delta " + std::to_string(last - 1) + " " + rest);
  BOOST_TEST(got[1] == events.back());

  // Nothing after the last event; nothing running and none named.
  BOOST_TEST((*resume(f, "alice", id, run_position{run, last}, replayed) == resume_outcome::idle));
  BOOST_TEST((*resume(f, "alice", id, std::nullopt, replayed) == resume_outcome::idle));
  // Another user's, or a run that never was.
  BOOST_TEST(
      (resume(f, "mallory", id, run_position{run, 0}, replayed).error().code == errc::not_found));
  BOOST_TEST(
      (resume(f, "alice", id, run_position{"01900000-0000-7000-8000-000000000000", 0}, replayed)
           .error()
           .code == errc::not_found));
  // Nothing runs: nothing to cancel.
  waiter<message_record> cancel;
  f.eng->cancel_exchange("alice", id, cancel.fn());
  BOOST_TEST((cancel.get().error().code == errc::conflict));
}

BOOST_AUTO_TEST_CASE(a_watcher_that_asks_for_a_failed_run_gets_its_failure) {
  // A provider nothing answers: the exchange fails at once.
  engine_fixture f([](settings& s) {
    provider_settings down;
    down.name = "down";
    down.kind = "openai";
    down.base_url = "http://127.0.0.1:9/v1";
    down.max_retries = 0;
    s.providers.push_back(down);
    model_settings broken;
    broken.id = "broken";
    broken.provider = "down";
    broken.upstream = "nothing";
    s.models.push_back(broken);
  });
  auto id = f.create("alice").conversation->id;
  auto watcher = std::make_shared<numbered_subscriber>();
  BOOST_REQUIRE(bool(watch(f, "alice", id, watcher)));
  send_params p;
  p.content = "to nobody";
  p.model = "broken";
  p.stream = std::make_shared<numbered_subscriber>();
  waiter<exchange_answer> w;
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  BOOST_REQUIRE(!w.get());
  // Live, the watcher heard the message and nothing of the failure.
  auto heard = watcher->events();
  BOOST_REQUIRE(heard.size() == 1u);
  BOOST_TEST(heard[0] == "message 1 to nobody");
  // Asking for the run after it (as a socket does) brings the failure.
  waiter<resume_outcome> r;
  f.eng->resume("alice", id, run_position{watcher->last_run(), 1}, watcher, false, r.fn());
  BOOST_REQUIRE(bool(r.get()));
  auto after = watcher->events();
  BOOST_REQUIRE(after.size() == 2u);
  BOOST_TEST(after[1].starts_with("failed 2 "));
  // A socket that began watching after the run ended is replayed all of it,
  // the failure once.
  auto late = std::make_shared<numbered_subscriber>();
  BOOST_REQUIRE(bool(watch(f, "alice", id, late)));
  waiter<resume_outcome> again;
  f.eng->resume("alice", id, run_position{watcher->last_run(), 0}, late, false, again.fn());
  BOOST_REQUIRE(bool(again.get()));
  auto replayed = late->events();
  BOOST_REQUIRE(replayed.size() == 2u);
  BOOST_TEST(replayed[0] == "message 1 to nobody");
  BOOST_TEST(replayed[1].starts_with("failed 2 "));
}

BOOST_AUTO_TEST_CASE(a_run_no_client_saw_is_not_kept) {
  engine_fixture f;
  auto id = f.create("alice").conversation->id;
  auto sent = f.send("alice", id, "unseen");
  BOOST_REQUIRE(bool(sent));
  // Not held in memory: the stored reply alone, as the database has it.
  auto replayed = std::make_shared<numbered_subscriber>();
  BOOST_REQUIRE(bool(resume(f, "alice", id, run_position{sent->reply->id, 0}, replayed)));
  auto got = replayed->events();
  BOOST_REQUIRE(got.size() == 1u);
  BOOST_TEST(got[0] == "done 1 Echo: unseen");
}

BOOST_AUTO_TEST_CASE(a_run_no_longer_held_is_answered_from_its_stored_reply) {
  engine_fixture f([](settings& s) { s.streams.retention_s = 0; });
  auto id = f.create("alice").conversation->id;
  auto sent = f.send("alice", id, "kept", std::make_shared<numbered_subscriber>());
  BOOST_REQUIRE(bool(sent));
  auto replayed = std::make_shared<numbered_subscriber>();
  auto r = resume(f, "alice", id, run_position{sent->reply->id, 1}, replayed);
  BOOST_REQUIRE(bool(r));
  BOOST_TEST((*r == resume_outcome::streaming));
  auto got = replayed->events();
  BOOST_REQUIRE(got.size() == 1u);
  BOOST_TEST(got[0] == "done 2 Echo: kept");
}

BOOST_AUTO_TEST_CASE(a_client_gone_from_a_reply_nobody_streams_keeps_the_text_so_far) {
  // One word every 300 ms, gathered in the provider's callbacks (no stream,
  // no watcher): the cancel must still bring the words that came.
  engine_fixture f([](settings& s) {
    auto slow = slow_builtin(10);
    slow.itl_ms = 300;
    s.providers.push_back(slow);
  });
  auto id = f.create("alice").conversation->id;
  send_params p;
  p.content = "one two three four five six seven eight";
  p.cancel = std::make_shared<cancellation>();
  waiter<exchange_answer> w;
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  std::this_thread::sleep_for(std::chrono::milliseconds(450));  // "Echo:" and " one" came
  p.cancel->cancel();
  auto r = w.get();
  BOOST_REQUIRE(bool(r));
  BOOST_REQUIRE(r->reply.has_value());
  BOOST_TEST((r->reply->finish_reason == "cancelled"));
  BOOST_TEST(r->reply->content.view().rfind("Echo:", 0) == 0u);
  BOOST_TEST(r->reply->content.size() < std::string("Echo: one two three").size());
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[1].content == r->reply->content);
}

BOOST_AUTO_TEST_CASE(requests_under_constant_passivation_are_all_answered) {
  // One live actor per directory shard: every new touch asks cold actors to
  // passivate, so most requests meet a conversation that must be loaded
  // again, and some an actor that is stopping (delivered again to its
  // successor). Each is answered as if the actor had stayed.
  engine_fixture f([](settings& s) { s.actors.max_live = 32; });
  constexpr int conversations = 48, senders = 4, sends = 60;
  std::vector<std::string> ids;
  for (int i = 0; i < conversations; ++i) ids.push_back(f.create("alice").conversation->id);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < sends; ++i)
        if (!f.send("alice", ids[(t * 11 + i * 7) % conversations], "hi")) ++failed;
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(failed.load() == 0);
  std::size_t stored = 0;
  for (auto& id : ids) {
    auto page = f.history("alice", id).data;
    for (std::size_t i = 0; i < page.size(); ++i) BOOST_TEST(page[i].seq == std::int64_t(i + 1));
    stored += page.size();
  }
  BOOST_TEST(stored == std::size_t(2 * senders * sends));
}

namespace {

/// What the faulty stores of one engine do; set by the test as it goes.
struct store_faults {
  std::atomic<bool> commit_throws{false};  ///< something other than a store_error
  std::atomic<bool> reads_throw{false};    ///< likewise, from find_conversation
  std::atomic<bool> reads_held{false};     ///< find_conversation waits while set
};

class faulty_store final : public testing::forwarding_store {
 public:
  faulty_store(std::unique_ptr<store> inner, store_faults& faults)
      : forwarding_store(std::move(inner)), faults_(faults) {}
  wal_position commit(const std::vector<const write_set*>& sets) override {
    if (faults_.commit_throws) throw std::logic_error("a bug in the store");
    return forwarding_store::commit(sets);
  }
  std::optional<conversation_record> find_conversation(const std::string& id) override {
    if (faults_.reads_throw) throw std::logic_error("a bug in the store");
    // Bounded, so that a test failing while it holds reads ends rather than
    // leaving a reader (and the engine's shutdown) waiting for ever.
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (faults_.reads_held && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    return forwarding_store::find_conversation(id);
  }

 private:
  store_faults& faults_;
};

struct with_faults {
  store_faults faults;
};

/// An engine whose stores fail as `faults` say. The faults come first, as a
/// base: the engine_fixture base starts the engine, whose stores use them.
struct faulty_engine : with_faults, engine_fixture {
  explicit faulty_engine(std::function<void(settings&)> tweak = {})
      : engine_fixture([&](settings& s) {
          if (tweak) tweak(s);
          stores = [real = make_store_factory(s.database.url), this] {
            return std::make_unique<faulty_store>(real(), faults);
          };
        }) {}
};

outcome<conversation_record> get(engine_fixture& f, const std::string& id) {
  waiter<conversation_record> w;
  f.eng->get_conversation("alice", id, w.fn());
  return w.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_writer_that_throws_answers_503_and_the_conversation_recovers) {
  faulty_engine f;
  auto id = f.create("alice").conversation->id;
  f.faults.commit_throws = true;
  auto failed = f.send("alice", id, "lost");
  BOOST_REQUIRE(!failed);
  BOOST_TEST((failed.error().code == errc::internal));  // answered 503, never a 500
  f.faults.commit_throws = false;
  // The actor gave its state up; the next request reads the truth back.
  auto sent = f.send("alice", id, "kept");
  BOOST_REQUIRE(bool(sent));
  BOOST_TEST(sent->message->seq == 1);
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[0].content == "kept");
}

BOOST_AUTO_TEST_CASE(a_reader_that_throws_answers_503_and_keeps_serving) {
  faulty_engine f;
  auto id = f.create("alice").conversation->id;
  f.faults.reads_throw = true;
  auto failed = get(f, id);
  BOOST_REQUIRE(!failed);
  BOOST_TEST((failed.error().code == errc::internal));
  f.faults.reads_throw = false;
  BOOST_TEST(bool(get(f, id)));
}

BOOST_AUTO_TEST_CASE(a_read_stuck_past_its_deadline_is_answered_by_the_sweeper) {
  faulty_engine f([](settings& s) { s.database.timeout_ms = 100; });
  auto id = f.create("alice").conversation->id;
  f.faults.reads_held = true;
  waiter<conversation_record> w;
  f.eng->get_conversation("alice", id, w.fn());
  f.clock->advance(std::chrono::milliseconds(101));
  auto stuck = w.get();  // while the store still holds the read
  BOOST_REQUIRE(!stuck);
  BOOST_TEST((stuck.error().code == errc::db_unavailable));
  f.faults.reads_held = false;
}

BOOST_AUTO_TEST_CASE(an_operation_stuck_past_its_deadline_is_answered_by_the_sweeper) {
  // The operation deadline: (generation + twice the database timeout) for
  // each place in the queue and the operation itself, here (100 + 100) * 2.
  faulty_engine f([](settings& s) {
    s.actors.generation_timeout_ms = 100;
    s.database.timeout_ms = 50;
    s.limits.conversation_queue = 1;
  });
  auto id = f.create("alice").conversation->id;
  // A new engine on the same database: the conversation must be loaded.
  f.eng.reset();
  f.start();
  f.faults.reads_held = true;
  send_params p;
  p.content = "hello";
  waiter<exchange_answer> w;
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  f.clock->advance(std::chrono::milliseconds(401));
  auto stuck = w.get();  // while the store still holds the load
  BOOST_REQUIRE(!stuck);
  BOOST_TEST((stuck.error().code == errc::overloaded));  // answered 503 with Retry-After
  f.faults.reads_held = false;
  // Once the load ends the conversation serves again, and the request that
  // was answered 503 did not run after all: a retry must not store it twice.
  BOOST_TEST(eventually([&] { return bool(f.send("alice", id, "again")); }));
  auto stored = f.history("alice", id).data;
  BOOST_REQUIRE(stored.size() == 2u);
  BOOST_TEST(stored[0].content == "again");
}

BOOST_AUTO_TEST_CASE(a_repeated_key_is_answered_from_the_store_in_the_operations_turn) {
  engine_fixture f;
  auto create = [&](const std::string& key) {
    new_conversation c;
    c.user_id = "alice";
    c.model = "echo";
    c.first_message = send_params{};
    c.first_message->content = "once";
    waiter<exchange_answer> w;
    f.eng->create_conversation(c, idempotency_claim{key, "hash-1"}, w.fn());
    return w.get();
  };
  auto first = create("create-key");
  BOOST_REQUIRE(bool(first));
  BOOST_TEST(!first->replayed.has_value());
  auto again = create("create-key");
  BOOST_REQUIRE(bool(again));
  // Nothing ran: no conversation was made, the stored outcome came back.
  BOOST_REQUIRE(again->replayed.has_value());
  BOOST_TEST(!again->conversation.has_value());
  auto& stored = again->replayed->answer;
  BOOST_REQUIRE(bool(stored));
  BOOST_TEST(stored->conversation->id == first->conversation->id);
  BOOST_TEST(stored->reply->id == first->reply->id);
  BOOST_TEST(again->replayed->request_hash == "hash-1");
  waiter<conversation_page> listed;
  f.eng->list_conversations("alice", 10, std::nullopt, listed.fn());
  BOOST_TEST(listed.get()->rows.size() == 1u);

  auto id = first->conversation->id;
  auto send = [&](const std::string& text) {
    send_params p;
    p.content = text;
    waiter<exchange_answer> w;
    f.eng->send_message("alice", id, p, idempotency_claim{"send-key", "hash-2"}, w.fn());
    return w.get();
  };
  auto sent = send("pay");
  BOOST_REQUIRE(bool(sent));
  // Another body with the key: the stored answer comes back with its own
  // fingerprint, for the caller to refuse.
  auto other = send("something else");
  BOOST_REQUIRE(bool(other));
  BOOST_REQUIRE(other->replayed.has_value());
  BOOST_TEST(other->replayed->answer->message->id == sent->message->id);
  BOOST_TEST(f.history("alice", id).data.size() == 4u);
}

BOOST_AUTO_TEST_CASE(a_model_past_the_generation_deadline_is_given_up_on) {
  // The built-in model keeps no deadline of its own: the conversation's does.
  engine_fixture f([](settings& s) {
    s.providers.push_back(slow_builtin(5000));
    s.actors.generation_timeout_ms = 200;
  });
  auto id = f.create("alice").conversation->id;
  send_params p;
  p.content = "hello?";
  waiter<exchange_answer> w;
  f.eng->send_message("alice", id, p, std::nullopt, w.fn());
  // The deadline is set when the model is asked, which the test cannot see:
  // time moves on in steps until the answer comes, long before the model's.
  auto answered = w.promise.get_future();
  for (int step = 0; step < 100; ++step) {
    if (answered.wait_for(std::chrono::milliseconds(10)) == std::future_status::ready) break;
    f.clock->advance(std::chrono::milliseconds(50));
  }
  BOOST_REQUIRE(answered.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  auto late = answered.get();
  BOOST_REQUIRE(!late);
  BOOST_TEST((late.error().code == errc::provider_timeout));
  // The user message is kept, as after any provider failure, and the
  // conversation goes on.
  BOOST_TEST(late.error().message_id.size() > 0u);
  BOOST_TEST(f.history("alice", id).data.size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_daily_token_allowance_renews_at_midnight_utc) {
  engine_fixture f([](settings& s) { s.limits.tokens_per_day = 1; });  // one exchange a day
  auto id = f.create("alice").conversation->id;
  BOOST_REQUIRE(bool(f.send("alice", id, "today")));
  auto refused = f.send("alice", id, "again");
  BOOST_REQUIRE(!refused);
  BOOST_TEST((refused.error().code == errc::rate_limited));
  BOOST_REQUIRE(refused.error().retry_after_s.has_value());
  BOOST_TEST(*refused.error().retry_after_s == 60u);  // the clock reads 23:59:00 UTC
  f.clock->advance(std::chrono::seconds(59));
  BOOST_TEST(!f.send("alice", id, "still today"));
  f.clock->advance(std::chrono::seconds(1));
  auto tomorrow = f.send("alice", id, "tomorrow");
  BOOST_REQUIRE(bool(tomorrow));
  BOOST_TEST(tomorrow->message->created_at == f.clock->wall_ms());
  BOOST_TEST(f.clock->wall_ms() % day_ms == 0);  // midnight
}
