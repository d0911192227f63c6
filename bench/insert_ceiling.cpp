// The ceiling for persisted messages on a database: a plain SOCI loop that
// inserts message rows like Parley's (same table, same sizes) in large
// batches, one transaction per batch, for a set time. No engine, no HTTP.
//
//   parley-bench-insert-ceiling DATABASE_URL [seconds=5] [batch_rows=1000]
//
// The database must have Parley's schema (`parley migrate`). SQLite runs with
// Parley's pragmas and a prepared row-at-a-time statement (no round trips to
// save); PostgreSQL gets one multi-row INSERT of scalar binds per batch (SOCI
// sends it as one round trip; its vector binds go row by row).

#include "config/load_settings.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>

namespace {

/// The bound values of one row; a deque keeps their addresses stable.
struct row_values {
  std::string id, conversation_id, role, content, model;
  long long seq = 0, created_at = 0, prompt_tokens = 0, completion_tokens = 0;
};

constexpr const char* columns =
    "INSERT INTO messages (id, conversation_id, seq, role, content, created_at, model,"
    " prompt_tokens, completion_tokens) VALUES ";

void fill(row_values& r, long long n) {
  // Two rows per conversation, like an exchange: the user message and the reply.
  r.id = "ceiling-" + std::to_string(n);
  r.conversation_id = "ceiling-conversation-" + std::to_string(n / 2);
  r.seq = n % 2 + 1;
  r.role = n % 2 ? "assistant" : "user";
  r.content = n % 2 ? "Echo: hello world, how are you today?" : "hello world, how are you today?";
  r.created_at = 1790000000000 + n;
  r.model = "echo";
  r.prompt_tokens = 12;
  r.completion_tokens = 7;
}

void bind(soci::statement& st, row_values& r) {
  using soci::use;
  st.exchange(use(r.id));
  st.exchange(use(r.conversation_id));
  st.exchange(use(r.seq));
  st.exchange(use(r.role));
  st.exchange(use(r.content));
  st.exchange(use(r.created_at));
  st.exchange(use(r.model));
  st.exchange(use(r.prompt_tokens));
  st.exchange(use(r.completion_tokens));
}

std::string bind_markers(std::size_t row) {
  std::string out = "(";
  for (int c = 0; c < 9; ++c) out += (c ? ", :p" : ":p") + std::to_string(row * 9 + c);
  return out + ")";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DATABASE_URL [seconds=5] [batch_rows=1000]\n", argv[0]);
    return 2;
  }
  auto url = parley::parse_database_url(argv[1]);
  double seconds = argc > 2 ? std::stod(argv[2]) : 5;
  std::size_t batch_rows = argc > 3 ? std::stoul(argv[3]) : 1000;
  bool postgresql = url.kind == parley::database_url::backend::postgresql;

  soci::session session;
  if (postgresql) {
    // SOCI mangles a URL without a query string ("dbname=" gets appended).
    auto target = url.target;
    if (target.find('?') == std::string::npos) target += "?application_name=parley-bench";
    session.open(soci::postgresql, target);
  } else {
    session.open(soci::sqlite3, "db=" + url.target);
    session << "PRAGMA journal_mode=WAL";
    session << "PRAGMA synchronous=NORMAL";
  }

  std::deque<row_values> rows(postgresql ? batch_rows : 1);
  soci::statement insert(session);
  insert.alloc();
  if (postgresql) {
    std::string sql = columns;
    for (std::size_t i = 0; i < batch_rows; ++i) sql += (i ? ", " : "") + bind_markers(i);
    insert.prepare(sql);
    for (auto& r : rows) bind(insert, r);
  } else {
    insert.prepare(std::string(columns) + bind_markers(0));
    bind(insert, rows[0]);
  }
  insert.define_and_bind();

  long long n = 0;
  auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  while (elapsed() < seconds) {
    soci::transaction tx(session);
    if (postgresql) {
      for (auto& r : rows) fill(r, n++);
      insert.execute(true);
    } else {
      for (std::size_t i = 0; i < batch_rows; ++i) {
        fill(rows[0], n++);
        insert.execute(true);
      }
    }
    tx.commit();
  }
  auto took = elapsed();
  std::printf("%s ceiling: %lld rows in %.2f s = %.0f rows/s (batches of %zu rows)\n",
              postgresql ? "postgresql" : "sqlite", n, took, n / took, batch_rows);
}
