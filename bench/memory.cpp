// Resident memory of the engine holding N live conversations of 10 messages each.
// Usage: parley-bench-memory N [in_flight=256]
// Runs the same engine library as the server (without the HTTP layer, which
// keeps no per-conversation state) on a temporary SQLite file.

#include "actors/engine.hpp"
#include "base/mutex.hpp"
#include "config/load_settings.hpp"

#include <malloc.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

long resident_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/// Bytes malloc has handed out and not had back: what the process holds,
/// without the freed memory it keeps for reuse.
long heap_in_use() {
  auto info = mallinfo2();
  return static_cast<long>(info.uordblks + info.hblkhd);
}

/// Keeps at most `limit` operations in flight.
class throttle {
 public:
  explicit throttle(int limit) : free_(limit) {}
  void acquire() {
    parley::mutex_lock g(m_);
    while (free_ <= 0) cv_.wait(m_);
    --free_;
  }
  void release() {
    parley::mutex_lock g(m_);
    ++free_;
    cv_.notify_one();
  }
  void drain(int limit) {
    parley::mutex_lock g(m_);
    while (free_ != limit) cv_.wait(m_);
  }

 private:
  parley::mutex m_;
  parley::condition cv_;
  int free_ GUARDED_BY(m_);
};

}  // namespace

int main(int argc, char** argv) {
  using namespace parley;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s conversations [in_flight]\n", argv[0]);
    return 2;
  }
  const long n = std::stol(argv[1]);
  const int in_flight = argc > 2 ? std::stoi(argv[2]) : 256;
  char dir[] = "/tmp/parley-bench-XXXXXX";
  std::string path = mkdtemp(dir);

  settings cfg;
  cfg.database.url = parse_database_url("sqlite://" + path + "/bench.db");
  cfg.server.threads = 2;
  cfg.actors.max_live = static_cast<std::uint64_t>(n) * 2;  // keep every actor alive
  cfg.actors.idle_timeout_s = 86400;
  auto eng = engine::start(cfg, model_registry::build(cfg));
  long before = resident_kib();
  long heap_before = heap_in_use();
  auto started = std::chrono::steady_clock::now();

  throttle gate(in_flight);
  std::atomic<long> failures{0};
  // Each conversation: created with a first message (2 messages), then 4 more
  // exchanges (8 messages), one after another.
  std::function<void(std::string, int)> exchange = [&](std::string id, int left) {
    if (left == 0) {
      gate.release();
      return;
    }
    send_params p;
    p.content = "message number " + std::to_string(left) + " of a benchmark conversation";
    eng->send_message("bench", id, p, std::nullopt, [&, id, left](outcome<exchange_answer> r) {
      if (!r) ++failures;
      exchange(id, left - 1);
    });
  };
  for (long i = 0; i < n; ++i) {
    gate.acquire();
    new_conversation c;
    c.user_id = "bench";
    c.model = "echo";
    c.first_message = send_params{};
    c.first_message->content = "first message of a benchmark conversation";
    eng->create_conversation(c, std::nullopt, [&](outcome<exchange_answer> r) {
      if (!r) {
        ++failures;
        gate.release();
        return;
      }
      exchange(r->conversation->id, 4);
    });
  }
  gate.drain(in_flight);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  long after = resident_kib();
  long heap_after = heap_in_use();
  std::printf(
      "conversations=%ld live_actors=%zu failures=%ld seconds=%.1f exchanges_per_s=%.0f "
      "rss_before_mib=%.1f rss_after_mib=%.1f per_conversation_kib=%.2f "
      "heap_per_conversation_kib=%.2f\n",
      n, eng->live_conversations(), failures.load(), seconds, n * 5 / seconds, before / 1024.0,
      after / 1024.0, double(after - before) / n, double(heap_after - heap_before) / 1024.0 / n);
  eng->shutdown();
  eng.reset();
  std::filesystem::remove_all(path);
  return failures == 0 ? 0 : 1;
}
