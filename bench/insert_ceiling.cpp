// The ceiling for persisted messages on a database: a plain SOCI loop that
// inserts message rows like Parley's (same table, same sizes) in large
// batches, one transaction per batch, for a set time. No engine, no HTTP.
//
//   parley-bench-insert-ceiling DATABASE_URL [seconds=5] [batch_rows=1000]
//
// The database must have Parley's schema (`parley migrate`). The statements
// are the store's own (persistence/sql_statements.hpp), so that the ceiling
// inserts what Parley inserts. SQLite runs with Parley's pragmas and its
// prepared row-at-a-time INSERT (no round trips to save); PostgreSQL gets the
// batch writer's multi-row INSERT, with scalar binds, once per batch (SOCI
// sends it as one round trip; its vector binds go row by row).

#include "config/load_settings.hpp"
#include "persistence/sql_statements.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <iterator>
#include <string>

namespace {

namespace sql = parley::sql;

/// The bound values of one row; a deque keeps their addresses stable.
/// edited_at, finish_reason and parent_id stay NULL.
struct row_values {
  std::string id, conversation_id, role, content, model, finish_reason, parent_id;
  long long seq = 0, created_at = 0, edited_at = 0, prompt_tokens = 0, completion_tokens = 0;
  soci::indicator null = soci::i_null;
};

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

/// Binds one row, in the order of sql::message_columns.
void bind(soci::statement& st, row_values& r) {
  using soci::use;
  st.exchange(use(r.id));
  st.exchange(use(r.conversation_id));
  st.exchange(use(r.seq));
  st.exchange(use(r.role));
  st.exchange(use(r.content));
  st.exchange(use(r.created_at));
  st.exchange(use(r.edited_at, r.null));
  st.exchange(use(r.model));
  st.exchange(use(r.finish_reason, r.null));
  st.exchange(use(r.prompt_tokens));
  st.exchange(use(r.completion_tokens));
  st.exchange(use(r.parent_id, r.null));
}

/// SOCI's markers for the `row`th row of a multi-row INSERT: `(:p0, :p1, ...)`.
std::string bind_markers(std::size_t row) {
  constexpr auto columns = std::size(sql::message_columns);
  std::string out = "(";
  for (std::size_t c = 0; c < columns; ++c)
    out += (c ? ", :p" : ":p") + std::to_string(row * columns + c);
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
    session << sql::sqlite::journal_mode_wal;
    session << sql::sqlite::synchronous_normal;
  }

  std::deque<row_values> rows(postgresql ? batch_rows : 1);
  soci::statement insert(session);
  insert.alloc();
  if (postgresql) {
    // The batch writer's head, with SOCI's markers where it sends `$n::type`.
    auto& statement = sql::postgresql::insert_messages;
    std::string text = statement.head;
    for (std::size_t i = 0; i < batch_rows; ++i) text += (i ? ", " : "") + bind_markers(i);
    insert.prepare(text + statement.tail);
    for (auto& r : rows) bind(insert, r);
  } else {
    insert.prepare(sql::insert_message);
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
