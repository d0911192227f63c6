// Micro-benchmarks (Google Benchmark) of the hot paths of one exchange:
// parsing and validating a send-message body, rendering a message as JSON,
// assembling a context window into a prompt, one actor round trip on the
// scheduler Parley configures, and one batch commit on SQLite.
// Run: build/bench/parley-bench-micro [--benchmark_filter=...]

#include "actors/context_window.hpp"
#include "config/load_settings.hpp"
#include "http/json_mapping.hpp"
#include "http/request_parsing.hpp"
#include "persistence/store.hpp"
#include "providers/model_registry.hpp"

#include <benchmark/benchmark.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <unistd.h>
#include <filesystem>

namespace {

using namespace parley;

message_record a_message(std::int64_t seq, std::size_t chars = 400) {
  message_record m;
  m.id = "0193a1b2-c3d4-7e5f-8a9b-" + std::to_string(100000000000 + seq);
  m.conversation_id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  m.seq = seq;
  m.role = seq % 2 ? "user" : "assistant";
  m.content = std::string(chars, 'x');
  m.created_at = 1764000000000 + seq;
  if (m.role == "assistant") {
    m.model = "echo";
    m.finish_reason = "stop";
    m.prompt_tokens = 120;
    m.completion_tokens = 48;
  }
  return m;
}

void parse_and_validate_send(benchmark::State& state) {
  settings cfg;
  auto models = model_registry::build(cfg);
  parse_limits limits;
  limits.models = models.get();
  std::string body =
      R"({"content": "Where should we eat tonight? Somewhere near the river, not too loud.",)"
      R"( "model": "echo", "temperature": 0.7, "max_tokens": 256})";
  for (auto _ : state) {
    auto j = parse_json_object(body);
    auto p = parse_send_message(*j, limits);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(parse_and_validate_send);

void render_message(benchmark::State& state) {
  auto m = a_message(3);
  for (auto _ : state) {
    auto text = message_json(m);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(render_message);

void assemble_window(benchmark::State& state) {
  std::vector<message_record> history;
  for (std::int64_t i = 1; i <= state.range(0); ++i) history.push_back(a_message(i));
  context_window w;
  w.reset(history, 1'000'000, false);
  auto pending = a_message(state.range(0) + 1);
  std::optional<std::string> system = std::string("You are terse.");
  for (auto _ : state) {
    auto prompt = w.assemble_with(system, &pending, nullptr, 1'000'000);
    benchmark::DoNotOptimize(prompt);
  }
}
BENCHMARK(assemble_window)->Arg(10)->Arg(100)->Arg(1000);

void actor_round_trip(benchmark::State& state) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("sharing"));  // as the engine runs it
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
  caf::scoped_actor self{sys};
  for (auto _ : state) {
    self->request(echo, caf::infinite, 1)
        .receive([](int x) { benchmark::DoNotOptimize(x); }, [](caf::error&) {});
  }
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}
BENCHMARK(actor_round_trip)->UseRealTime();

void batch_commit_sqlite(benchmark::State& state) {
  char dir[] = "/tmp/parley-micro-XXXXXX";
  std::string path = mkdtemp(dir);
  auto db = make_store_factory(parse_database_url("sqlite://" + path + "/micro.db"))();
  db->migrate();
  conversation_record c;
  c.id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  c.user_id = "u";
  c.model = "echo";
  c.metadata_json = "{}";
  write_set create{write::insert_conversation{c}};
  db->commit({&create});
  std::int64_t seq = 0;
  auto per_batch = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    std::vector<write_set> sets(per_batch);
    std::vector<const write_set*> batch;
    for (auto& s : sets) {
      s.push_back(write::insert_message{a_message(++seq, 100)});
      batch.push_back(&s);
    }
    db->commit(batch);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  db.reset();
  std::filesystem::remove_all(path);
}
BENCHMARK(batch_commit_sqlite)->Arg(1)->Arg(256)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
