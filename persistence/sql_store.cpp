#include "base/mutex.hpp"
#include "persistence/commit_positions.hpp"
#include "persistence/postgresql_batch.hpp"
#include "persistence/postgresql_interrupt.hpp"
#include "persistence/schema.hpp"
#include "persistence/sql_statements.hpp"
#include "persistence/statement_watchdog.hpp"
#include "persistence/store.hpp"
#include "persistence/stored_answer.hpp"
#include "persistence/write_plan.hpp"

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace parley {

namespace {

// --- row access that works whatever type the backend reports ------------------

std::int64_t get_int(const soci::row& r, std::size_t i) {
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_integer:
      return r.get<int>(i);
    case soci::dt_long_long:
      return r.get<long long>(i);
    case soci::dt_unsigned_long_long:
      return static_cast<std::int64_t>(r.get<unsigned long long>(i));
    case soci::dt_double:
      return static_cast<std::int64_t>(r.get<double>(i));
    case soci::dt_string:
      return std::stoll(r.get<std::string>(i));
    default:
      throw store_error(errc::internal, "unexpected column type");
  }
}

double get_double(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) return 0;
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_double:
      return r.get<double>(i);
    case soci::dt_string:
      return std::stod(r.get<std::string>(i));
    default:
      return static_cast<double>(get_int(r, i));
  }
}

std::optional<std::int64_t> get_opt_int(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) return std::nullopt;
  return get_int(r, i);
}

std::optional<std::string> get_opt_string(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) return std::nullopt;
  return r.get<std::string>(i);
}

conversation_record to_conversation(const soci::row& r) {
  conversation_record c;
  c.id = r.get<std::string>(0);
  c.user_id = r.get<std::string>(1);
  c.title = get_opt_string(r, 2);
  c.model = r.get<std::string>(3);
  c.system_prompt = get_opt_string(r, 4);
  c.metadata_json = r.get<std::string>(5);
  c.created_at = get_int(r, 6);
  c.updated_at = get_int(r, 7);
  c.message_count = get_int(r, 8);
  c.last_seq = get_int(r, 9);
  c.usage.prompt_tokens = get_int(r, 10);
  c.usage.completion_tokens = get_int(r, 11);
  c.usage.cost_usd = get_double(r, 12);
  c.version = get_int(r, 13);
  c.active_leaf_id = get_opt_string(r, 14);
  c.forked_from_conversation_id = get_opt_string(r, 15);
  c.forked_from_message_id = get_opt_string(r, 16);
  c.context_strategy = get_opt_string(r, 17);
  return c;
}

message_record to_message(const soci::row& r) {
  message_record m;
  m.id = r.get<std::string>(0);
  m.conversation_id = r.get<std::string>(1);
  m.seq = get_int(r, 2);
  m.role = r.get<std::string>(3);
  m.content = r.get<std::string>(4);
  m.created_at = get_int(r, 5);
  m.edited_at = get_opt_int(r, 6);
  m.model = get_opt_string(r, 7);
  m.finish_reason = get_opt_string(r, 8);
  m.prompt_tokens = get_opt_int(r, 9);
  m.completion_tokens = get_opt_int(r, 10);
  m.parent_id = get_opt_string(r, 11);
  m.sibling_index = get_int(r, 12);
  m.sibling_count = get_int(r, 13);
  return m;
}

// --- search -------------------------------------------------------------------

/// The token a user's rows carry in SQLite's search index: 'u' and the id in
/// hex, as schema.cpp's triggers write it (hex() is upper case).
std::string owner_token(const std::string& user_id) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out = "u";
  for (unsigned char c : user_id) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

/// The part of an FTS5 match that keeps to one owner's rows.
std::string owner_match(const std::string& token) { return "owner : \"" + token + "\" AND "; }

/// A ts_headline snippet with the '<' and '>' that sql::postgresql::search
/// hid from it put back, with the spaces that came with them (a fragment's
/// edge may have cut one).
std::string postgresql_snippet_text(std::string text) {
  for (auto [hidden, shown] : {std::pair<std::string_view, char>{" \xEE\x80\x82 ", '<'},
                               {" \xEE\x80\x83 ", '>'},
                               {"\xEE\x80\x82", '<'},
                               {"\xEE\x80\x83", '>'}})
    for (auto at = text.find(hidden); at != std::string::npos; at = text.find(hidden, at + 1))
      text.replace(at, hidden.size(), 1, shown);
  return text;
}

// --- errors -------------------------------------------------------------------

[[noreturn]] void rethrow_as_store_error(const soci::soci_error& e) {
  if (auto sq = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
    auto primary = sq->result() & 0xff;
    if (primary == SQLITE_CONSTRAINT) throw store_error(errc::conflict, e.get_error_message());
    throw store_error(errc::db_unavailable, e.get_error_message());
  }
  if (e.get_error_category() == soci::soci_error::constraint_violation)
    throw store_error(errc::conflict, e.get_error_message());
  throw store_error(errc::db_unavailable, e.get_error_message());
}

/// How often a store whose connection broke tries to connect again; between
/// tries it fails at once, so a dead database costs requests no waiting.
constexpr auto reconnect_interval = std::chrono::milliseconds(250);

/// How many times the stores of one factory (one database) opened a broken
/// connection again. A store whose last attempt failed before another's
/// success tries again at once: the database is back, and waiting out the
/// interval would answer 503 for nothing (/ready would flap).
using reconnect_count = std::atomic<std::uint64_t>;

/// When one store may try to open its connection: at most every
/// reconnect_interval, unless another store of its factory got in since its
/// last try.
class reconnect_gate {
 public:
  explicit reconnect_gate(std::shared_ptr<reconnect_count> count) : count_(std::move(count)) {}

  /// Whether to try now; if so, the try is counted as begun.
  bool may_try() {
    auto now = std::chrono::steady_clock::now();
    auto seen = count_->load();
    if (now - last_try_ < reconnect_interval && seen == seen_at_last_try_) return false;
    last_try_ = now;
    seen_at_last_try_ = seen;
    return true;
  }
  /// The try got in: the factory's other stores may try at once.
  void got_in() { seen_at_last_try_ = ++*count_; }
  /// The next may_try() says yes whenever the last try was.
  void open_at_once() { last_try_ = {}; }

 private:
  std::shared_ptr<reconnect_count> count_;  ///< shared by the factory's stores
  std::chrono::steady_clock::time_point last_try_{};
  std::uint64_t seen_at_last_try_ = 0;  ///< *count_ at the last try
};

// --- the store ----------------------------------------------------------------

class sql_store final : public store {
 public:
  sql_store(const database_url& url, std::shared_ptr<reconnect_count> reconnects)
      : dialect_(url.kind == database_url::backend::sqlite ? sql_dialect::sqlite
                                                           : sql_dialect::postgresql),
        reconnect_gate_(std::move(reconnects)) {
    translate_errors([&] {
      if (dialect_ == sql_dialect::sqlite) {
        // timeout: how long a statement waits for a lock held by another
        // connection, until set_call_timeout sets database.timeout_ms.
        session_.open(soci::sqlite3, "db=" + url.target + " timeout=5");
        if (url.target != ":memory:") {
          // WAL lets readers run beside the writer; with synchronous=NORMAL a
          // committed batch survives a crash of the process (a power cut may
          // take the last ones; the README says so).
          session_ << sql::sqlite::journal_mode_wal;
          session_ << sql::sqlite::synchronous_normal;
        }
      } else {
        // libpq's error would quote the malformed part, which may be the password.
        if (!postgresql_url_parses(url.target))
          throw store_error(errc::invalid_argument,
                            "not a valid PostgreSQL URL (check its percent-encoding)");
        session_.open(soci::postgresql, postgresql_connect_string(url.target));
        quiet_notices();
        interrupt_ = make_postgresql_interrupt(native_postgresql());
      }
    });
  }

  // store overrides

  void migrate() override {
    // Unbounded: it may wait its turn behind another process's migration.
    guarded(call_bound::none, [&] {
      // Parley processes starting together on one PostgreSQL database take
      // turns (SQLite's write lock does the same for it).
      if (dialect_ == sql_dialect::postgresql) session_ << sql::postgresql::lock_migrations;
      session_ << sql::create_schema_version;
      long long current = 0;
      soci::indicator ind = soci::i_null;
      session_ << sql::select_schema_version, soci::into(current, ind);
      if (ind == soci::i_null) current = 0;
      for (auto& m : migrations(dialect_)) {
        if (m.version <= current) continue;
        soci::transaction tx(session_);
        for (auto& statement : m.statements) session_ << statement;
        int version = m.version;
        session_ << sql::insert_schema_version, soci::use(version);
        tx.commit();
      }
      if (dialect_ == sql_dialect::postgresql) session_ << sql::postgresql::unlock_migrations;
    });
  }

  wal_position commit(const std::vector<const write_set*>& sets) override {
    return guarded([&]() -> wal_position {
      auto plan = make_write_plan(sets);
      // The one place the dialects write differently: SQLite runs in-process,
      // so a prepared statement per row costs no round trip; PostgreSQL gets
      // a few multi-row statements per batch, pipelined as one transaction.
      if (dialect_ == sql_dialect::postgresql) {
        if (!track_positions_) return execute_on_postgresql(native_postgresql(), plan, nullptr);
        auto whose = users_written(sets);
        return execute_on_postgresql(native_postgresql(), plan, &whose);
      }
      // IMMEDIATE: the write lock is taken (waiting the busy timeout for it)
      // before the first statement. A deferred transaction whose first write
      // reaches the FTS5 index can instead fail at once with "database is
      // locked" while another process commits.
      session_ << sql::sqlite::begin_immediate;
      try {
        execute_row_by_row(plan);
        session_ << sql::sqlite::commit;
        return 0;
      } catch (...) {
        try {
          session_ << sql::sqlite::rollback;
        } catch (const soci::soci_error&) {
          // SQLite rolled the transaction back itself (a full disk, say).
        }
        throw;
      }
    });
  }

  std::optional<conversation_record> find_conversation(const std::string& id) override {
    return guarded([&]() -> std::optional<conversation_record> {
      soci::rowset<soci::row> rows = (session_.prepare << sql::select_conversation, soci::use(id));
      for (auto& r : rows) return to_conversation(r);
      return std::nullopt;
    });
  }

  std::vector<conversation_record> list_conversations_by_id(const std::string& user_id,
                                                            const std::string& after,
                                                            unsigned limit) override {
    return guarded([&] {
      std::vector<conversation_record> out;
      long long n = limit;
      soci::rowset<soci::row> rows = (session_.prepare << sql::list_conversations_by_id,
                                      soci::use(user_id), soci::use(after), soci::use(n));
      for (auto& r : rows) out.push_back(to_conversation(r));
      return out;
    });
  }

  std::optional<std::string> find_source(const std::string& user_id,
                                         const std::string& source) override {
    return guarded([&]() -> std::optional<std::string> {
      std::string id;
      soci::indicator ind = soci::i_null;
      session_ << sql::select_source, soci::use(user_id), soci::use(source), soci::into(id, ind);
      if (!session_.got_data() || ind == soci::i_null) return std::nullopt;
      return id;
    });
  }

  std::vector<summary_record> list_summaries(const std::string& conversation_id) override {
    return guarded([&] {
      std::vector<summary_record> out;
      soci::rowset<soci::row> rows =
          (session_.prepare << sql::select_summaries, soci::use(conversation_id));
      for (auto& r : rows) {
        summary_record s;
        s.id = r.get<std::string>(0);
        s.conversation_id = r.get<std::string>(1);
        s.covers_through_message_id = r.get<std::string>(2);
        s.covers_through_seq = get_int(r, 3);
        s.content = r.get<std::string>(4);
        s.model = r.get<std::string>(5);
        s.created_at = get_int(r, 6);
        s.tokens_before = get_int(r, 7);
        s.tokens_after = get_int(r, 8);
        out.push_back(std::move(s));
      }
      return out;
    });
  }

  std::optional<run_record> find_run(const std::string& conversation_id,
                                     const std::string& run_id) override {
    return guarded([&]() -> std::optional<run_record> {
      run_record run{run_id, conversation_id, {}, 0};
      long long started_at = 0;
      session_ << sql::select_run, soci::use(run_id), soci::use(conversation_id),
          soci::into(run.message_id), soci::into(started_at);
      if (!session_.got_data()) return std::nullopt;
      run.started_at = started_at;
      return run;
    });
  }

  conversation_page list_conversations(const std::string& user_id, unsigned limit,
                                       const std::optional<conversation_cursor>& after) override {
    return guarded([&] {
      conversation_page page;
      long long fetch = limit + 1;
      auto collect = [&](soci::rowset<soci::row>& rows) {
        for (auto& r : rows) page.rows.push_back(to_conversation(r));
      };
      if (after) {
        long long at = after->updated_at;
        soci::rowset<soci::row> rows =
            (session_.prepare << sql::list_conversations_after, soci::use(user_id), soci::use(at),
             soci::use(after->id), soci::use(fetch));
        collect(rows);
      } else {
        soci::rowset<soci::row> rows =
            (session_.prepare << sql::list_conversations, soci::use(user_id), soci::use(fetch));
        collect(rows);
      }
      if (page.rows.size() > limit) {
        page.rows.pop_back();
        page.next = conversation_cursor{page.rows.back().updated_at, page.rows.back().id};
      }
      return page;
    });
  }

  std::vector<message_record> list_messages(const std::string& conversation_id,
                                            std::int64_t after_seq,
                                            std::optional<std::int64_t> before_seq,
                                            unsigned limit) override {
    return guarded([&] {
      long long n = limit;
      if (!before_seq)
        return select_messages(sql::select_messages_after, conversation_id,
                               static_cast<long long>(after_seq), n);
      auto out = select_messages(sql::select_messages_before, conversation_id,
                                 static_cast<long long>(*before_seq), n);
      std::reverse(out.begin(), out.end());
      return out;
    });
  }

  std::optional<message_record> find_message(const std::string& conversation_id,
                                             const std::string& message_id) override {
    return guarded([&]() -> std::optional<message_record> {
      soci::rowset<soci::row> rows = (session_.prepare << sql::select_message,
                                      soci::use(message_id), soci::use(conversation_id));
      for (auto& r : rows) return to_message(r);
      return std::nullopt;
    });
  }

  std::optional<message_record> find_message_by_id(const std::string& message_id) override {
    return guarded([&]() -> std::optional<message_record> {
      soci::rowset<soci::row> rows =
          (session_.prepare << sql::select_message_by_id, soci::use(message_id));
      for (auto& r : rows) return to_message(r);
      return std::nullopt;
    });
  }

  std::vector<message_record> walk_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, unsigned limit) override {
    return guarded([&] {
      return select_messages(sql::walk_branch, leaf_id, conversation_id,
                             static_cast<long long>(limit));
    });
  }

  std::vector<message_record> list_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, std::int64_t after_seq,
                                          std::optional<std::int64_t> before_seq,
                                          unsigned limit) override {
    return guarded([&] {
      long long n = limit, after = after_seq;
      if (!before_seq)
        return select_messages(sql::select_branch_after, leaf_id, conversation_id, after, after, n);
      auto out = select_messages(sql::select_branch_before, leaf_id, conversation_id,
                                 static_cast<long long>(*before_seq), n);
      std::reverse(out.begin(), out.end());
      return out;
    });
  }

  std::int64_t branch_length(const std::string& conversation_id,
                             const std::string& leaf_id) override {
    return guarded([&] {
      long long n = 0;
      session_ << sql::count_branch, soci::use(leaf_id), soci::use(conversation_id), soci::into(n);
      return static_cast<std::int64_t>(n);
    });
  }

  bool branch_contains(const std::string& conversation_id, const std::string& leaf_id,
                       const message_record& message) override {
    return guarded([&] {
      long long n = 0, seq = message.seq;
      session_ << sql::branch_contains, soci::use(leaf_id), soci::use(conversation_id),
          soci::use(seq), soci::use(message.id), soci::into(n);
      return n > 0;
    });
  }

  std::optional<std::string> newest_leaf(const std::string& conversation_id,
                                         const std::optional<std::string>& from,
                                         const std::string& excluded) override {
    return guarded([&]() -> std::optional<std::string> {
      std::string start, leaf;
      soci::indicator ind = soci::i_null;
      if (from) {
        start = *from;
      } else {
        session_ << sql::newest_root, soci::use(conversation_id), soci::use(excluded),
            soci::into(start, ind);
        if (!session_.got_data() || ind == soci::i_null) return std::nullopt;
      }
      ind = soci::i_null;
      session_ << sql::newest_leaf, soci::use(start), soci::use(conversation_id),
          soci::use(conversation_id), soci::use(excluded), soci::into(leaf, ind);
      if (!session_.got_data() || ind == soci::i_null) return std::nullopt;
      return leaf;
    });
  }

  std::int64_t child_count(const std::string& conversation_id,
                           const std::optional<std::string>& parent_id) override {
    return guarded([&] {
      long long n = 0;
      if (parent_id)
        session_ << sql::count_children, soci::use(conversation_id), soci::use(*parent_id),
            soci::into(n);
      else
        session_ << sql::count_roots, soci::use(conversation_id), soci::into(n);
      return static_cast<std::int64_t>(n);
    });
  }

  search_page search(const search_request& request) override {
    if (request.expression.empty()) return {};
    return guarded([&] {
      search_page page;
      // Every filter is bound, as a value or as "any", so each dialect has one statement.
      auto owner = owner_token(request.user_id);
      int every_conversation = request.conversation_id ? 0 : 1;
      int every_role = request.role ? 0 : 1;
      int titles = request.role ? 0 : 1;
      auto conversation = request.conversation_id.value_or("");
      auto role = request.role.value_or("");
      long long from = request.from, until = request.until, n = request.limit + 1;
      // Before the first page: past every score.
      auto after = request.after.value_or(
          search_cursor{std::numeric_limits<std::int64_t>::max(), std::string()});
      long long score = after.score;
      std::vector<long long> rids;
      auto read_hit = [&](const soci::row& r) {
        search_hit hit;
        hit.position = {get_int(r, 1), r.get<std::string>(0)};
        hit.conversation_id = r.get<std::string>(2);
        hit.conversation_title = get_opt_string(r, 3);
        hit.message_id = get_opt_string(r, 4);
        hit.title = !hit.message_id;
        hit.seq = get_opt_int(r, 5);
        hit.role = get_opt_string(r, 6);
        hit.created_at = get_int(r, 7);
        return hit;
      };
      if (dialect_ == sql_dialect::postgresql) {
        auto text = websearch_text(request.expression);
        soci::rowset<soci::row> rows =
            (session_.prepare << sql::postgresql::search, soci::use(text),
             soci::use(request.user_id), soci::use(every_conversation), soci::use(conversation),
             soci::use(every_role), soci::use(role), soci::use(from), soci::use(until),
             soci::use(request.user_id), soci::use(titles), soci::use(every_conversation),
             soci::use(conversation), soci::use(from), soci::use(until), soci::use(score),
             soci::use(score), soci::use(after.key), soci::use(n));
        for (auto& r : rows) {
          page.hits.push_back(read_hit(r));
          page.hits.back().snippet = postgresql_snippet_text(get_opt_string(r, 8).value_or(""));
        }
      } else {
        auto in_messages = owner_match(owner) + fts5_match(request.expression, "content");
        auto in_titles = owner_match(owner) + fts5_match(request.expression, "title");
        soci::rowset<soci::row> rows =
            (session_.prepare << sql::sqlite::search, soci::use(in_messages),
             soci::use(request.user_id), soci::use(every_conversation), soci::use(conversation),
             soci::use(every_role), soci::use(role), soci::use(from), soci::use(until),
             soci::use(in_titles), soci::use(request.user_id), soci::use(titles),
             soci::use(every_conversation), soci::use(conversation), soci::use(from),
             soci::use(until), soci::use(score), soci::use(score), soci::use(after.key),
             soci::use(n));
        for (auto& r : rows) {
          page.hits.push_back(read_hit(r));
          rids.push_back(get_int(r, 8));
        }
        // Snippets for the page's rows only, not for every match ranked.
        for (std::size_t i = 0; i < page.hits.size() && i < request.limit; ++i) {
          auto& hit = page.hits[i];
          std::string snippet;
          soci::indicator ind = soci::i_null;
          session_ << (hit.title ? sql::sqlite::title_snippet : sql::sqlite::message_snippet),
              soci::use(hit.title ? in_titles : in_messages), soci::use(rids[i]),
              soci::into(snippet, ind);
          if (ind == soci::i_ok) hit.snippet = std::move(snippet);
        }
      }
      if (page.hits.size() > request.limit) {
        page.hits.pop_back();
        page.next = page.hits.back().position;
      }
      return page;
    });
  }

  std::optional<idempotency_record> find_idempotency(const std::string& user_id,
                                                     const std::string& key) override {
    return guarded([&]() -> std::optional<idempotency_record> {
      soci::rowset<soci::row> rows =
          (session_.prepare << sql::select_idempotency, soci::use(user_id), soci::use(key));
      for (auto& r : rows) {
        auto stored = decode_answer(r.get<std::string>(3));
        return idempotency_record{r.get<std::string>(0), r.get<std::string>(1),
                                  r.get<std::string>(2), std::move(stored.answer),
                                  get_int(r, 4),         std::move(stored.legacy)};
      }
      return std::nullopt;
    });
  }

  std::int64_t purge_idempotency(unix_ms cutoff) override {
    return guarded([&] {
      long long c = cutoff;
      soci::statement st = (session_.prepare << sql::purge_idempotency, soci::use(c));
      st.execute(true);
      return static_cast<std::int64_t>(st.get_affected_rows());
    });
  }

  std::vector<usage_row> usage(const std::string& user_id, const std::string& from_day,
                               const std::string& to_day) override {
    return guarded([&] {
      std::vector<usage_row> out;
      soci::rowset<soci::row> rows = (session_.prepare << sql::select_usage, soci::use(user_id),
                                      soci::use(from_day), soci::use(to_day));
      for (auto& r : rows)
        out.push_back(usage_row{r.get<std::string>(0), get_int(r, 1), get_int(r, 2), get_int(r, 3),
                                get_double(r, 4)});
      return out;
    });
  }

  void ping() override {
    auto ask = [&] {
      guarded([&] {
        int one = 0;
        session_ << sql::ping, soci::into(one);
      });
    };
    bool known_broken = suspect_;
    try {
      ask();
    } catch (const store_error& e) {
      // A connection this very ping found closed (the server restarted) is
      // opened again at once and asked again: /ready must not answer 503
      // after the database is back only because this reader had not used
      // its connection since. A hung server keeps its connections open.
      if (known_broken || e.code != errc::db_unavailable || dialect_ != sql_dialect::postgresql ||
          PQstatus(native_postgresql()) == CONNECTION_OK)
        throw;
      reconnect_gate_.open_at_once();
      ask();
    }
  }

  void track_commit_positions() override { track_positions_ = true; }

  std::optional<wal_position> replayed_position() override {
    if (dialect_ != sql_dialect::postgresql) return std::nullopt;
    return guarded([&]() -> std::optional<wal_position> {
      soci::indicator known = soci::i_ok;
      std::string position;
      session_ << sql::postgresql::replayed_position, soci::into(position, known);
      if (known != soci::i_ok) return std::nullopt;
      return parse_wal_position(position);
    });
  }

  void set_call_timeout(std::chrono::milliseconds timeout) override {
    call_timeout_ = timeout;
    // SQLite's one long wait is for a lock another connection holds: it is
    // bounded the same, so that a caller waiting for this store need not
    // keep a timer of its own.
    if (dialect_ == sql_dialect::sqlite && timeout.count() > 0)
      translate_errors([&] { session_ << sql::sqlite::busy_timeout(timeout.count()); });
  }

 private:
  /// Every SQLite write statement, prepared once and bound to the variables
  /// below: a batch then costs one sqlite3_step per row, no parsing.
  /// Created on first use, after migrate() has made the tables.
  struct prepared_writes {
    explicit prepared_writes(soci::session& s)
        : insert_conversation(s),
          update_conversation(s),
          delete_conversation_messages(s),
          delete_conversation(s),
          delete_conversation_sources(s),
          delete_conversation_runs(s),
          delete_conversation_summaries(s),
          insert_summary(s),
          insert_source(s),
          insert_run(s),
          delete_run(s),
          insert_message(s),
          update_message(s),
          delete_message(s),
          reparent_children(s),
          add_usage(s),
          put_idempotency(s),
          replace_idempotency(s) {
      using soci::use;
      auto& c = conversation;
      insert_conversation.alloc();
      insert_conversation.prepare(sql::insert_conversation);
      for (auto* u : {&c.id, &c.user_id}) insert_conversation.exchange(use(*u));
      insert_conversation.exchange(use(c.title, c.title_ind));
      insert_conversation.exchange(use(c.model));
      insert_conversation.exchange(use(c.system_prompt, c.system_prompt_ind));
      insert_conversation.exchange(use(c.metadata));
      for (auto* v : {&c.created_at, &c.updated_at, &c.message_count, &c.last_seq, &c.prompt_tokens,
                      &c.completion_tokens})
        insert_conversation.exchange(use(*v));
      insert_conversation.exchange(use(c.cost_usd));
      insert_conversation.exchange(use(c.version));
      insert_conversation.exchange(use(c.active_leaf_id, c.active_leaf_id_ind));
      insert_conversation.exchange(
          use(c.forked_from_conversation_id, c.forked_from_conversation_ind));
      insert_conversation.exchange(use(c.forked_from_message_id, c.forked_from_message_ind));
      insert_conversation.exchange(use(c.context_strategy, c.context_strategy_ind));
      insert_conversation.define_and_bind();

      update_conversation.alloc();
      update_conversation.prepare(sql::update_conversation);
      update_conversation.exchange(use(c.title, c.title_ind));
      update_conversation.exchange(use(c.model));
      update_conversation.exchange(use(c.system_prompt, c.system_prompt_ind));
      update_conversation.exchange(use(c.metadata));
      for (auto* v :
           {&c.updated_at, &c.message_count, &c.last_seq, &c.prompt_tokens, &c.completion_tokens})
        update_conversation.exchange(use(*v));
      update_conversation.exchange(use(c.cost_usd));
      update_conversation.exchange(use(c.version));
      update_conversation.exchange(use(c.active_leaf_id, c.active_leaf_id_ind));
      update_conversation.exchange(use(c.context_strategy, c.context_strategy_ind));
      update_conversation.exchange(use(c.id));
      update_conversation.exchange(use(c.expected));
      update_conversation.define_and_bind();

      bind_one(delete_conversation_messages, sql::delete_conversation_messages, id);
      bind_one(delete_conversation, sql::delete_conversation, id);
      bind_one(delete_conversation_sources, sql::delete_conversation_sources, id);
      bind_one(delete_conversation_runs, sql::delete_conversation_runs, id);
      bind_one(delete_conversation_summaries, sql::delete_conversation_summaries, id);

      insert_summary.alloc();
      insert_summary.prepare(sql::insert_summary);
      for (auto* v : {&summary.id, &summary.conversation_id, &summary.covers_through_message_id})
        insert_summary.exchange(use(*v));
      insert_summary.exchange(use(summary.covers_through_seq));
      for (auto* v : {&summary.content, &summary.model}) insert_summary.exchange(use(*v));
      for (auto* v : {&summary.created_at, &summary.tokens_before, &summary.tokens_after})
        insert_summary.exchange(use(*v));
      insert_summary.define_and_bind();
      bind_one(delete_run, sql::delete_run, id);

      insert_run.alloc();
      insert_run.prepare(sql::insert_run);
      for (auto* v : {&run.id, &run.conversation_id, &run.message_id}) insert_run.exchange(use(*v));
      insert_run.exchange(use(run.started_at));
      insert_run.define_and_bind();

      insert_source.alloc();
      insert_source.prepare(sql::insert_source);
      for (auto* v : {&source.user_id, &source.source, &source.conversation_id})
        insert_source.exchange(use(*v));
      insert_source.define_and_bind();

      auto& m = message;
      insert_message.alloc();
      insert_message.prepare(sql::insert_message);
      insert_message.exchange(use(m.id));
      insert_message.exchange(use(m.conversation_id));
      insert_message.exchange(use(m.seq));
      insert_message.exchange(use(m.role));
      insert_message.exchange(use(m.content));
      insert_message.exchange(use(m.created_at));
      insert_message.exchange(use(m.edited_at, m.edited_at_ind));
      insert_message.exchange(use(m.model, m.model_ind));
      insert_message.exchange(use(m.finish_reason, m.finish_reason_ind));
      insert_message.exchange(use(m.prompt_tokens, m.prompt_tokens_ind));
      insert_message.exchange(use(m.completion_tokens, m.completion_tokens_ind));
      insert_message.exchange(use(m.parent_id, m.parent_id_ind));
      insert_message.define_and_bind();

      update_message.alloc();
      update_message.prepare(sql::update_message);
      update_message.exchange(use(m.content));
      update_message.exchange(use(m.edited_at));
      update_message.exchange(use(m.id));
      update_message.define_and_bind();

      bind_one(delete_message, sql::delete_message, id);

      reparent_children.alloc();
      reparent_children.prepare(std::string(sql::reparent_children));
      reparent_children.exchange(use(m.parent_id, m.parent_id_ind));
      reparent_children.exchange(use(m.conversation_id));
      reparent_children.exchange(use(id));
      reparent_children.define_and_bind();

      add_usage.alloc();
      add_usage.prepare(sql::add_usage);
      for (auto* v : {&usage.user_id, &usage.day, &usage.model}) add_usage.exchange(use(*v));
      for (auto* v : {&usage.requests, &usage.prompt_tokens, &usage.completion_tokens})
        add_usage.exchange(use(*v));
      add_usage.exchange(use(usage.cost_usd));
      add_usage.define_and_bind();

      auto& k = idempotency;
      put_idempotency.alloc();
      put_idempotency.prepare(sql::insert_idempotency);
      for (auto* v : {&k.user_id, &k.key, &k.request_hash}) put_idempotency.exchange(use(*v));
      put_idempotency.exchange(use(k.answer));
      put_idempotency.exchange(use(k.created_at));
      put_idempotency.define_and_bind();

      replace_idempotency.alloc();
      replace_idempotency.prepare(sql::replace_idempotency_answer);
      replace_idempotency.exchange(use(k.answer));
      replace_idempotency.exchange(use(k.user_id));
      replace_idempotency.exchange(use(k.key));
      replace_idempotency.define_and_bind();
    }

    static void bind_one(soci::statement& st, std::string_view sql, std::string& value) {
      st.alloc();
      st.prepare(std::string(sql));
      st.exchange(soci::use(value));
      st.define_and_bind();
    }

    // The bound variables.
    struct {
      std::string id, user_id, title, model, system_prompt, metadata, active_leaf_id,
          forked_from_conversation_id, forked_from_message_id, context_strategy;
      soci::indicator title_ind = soci::i_ok, system_prompt_ind = soci::i_ok,
                      active_leaf_id_ind = soci::i_ok, forked_from_conversation_ind = soci::i_ok,
                      forked_from_message_ind = soci::i_ok, context_strategy_ind = soci::i_ok;
      long long created_at = 0, updated_at = 0, message_count = 0, last_seq = 0, prompt_tokens = 0,
                completion_tokens = 0, version = 0, expected = 0;
      double cost_usd = 0;
    } conversation;
    struct {
      std::string id, conversation_id, role, content, model, finish_reason, parent_id;
      long long seq = 0, created_at = 0, edited_at = 0, prompt_tokens = 0, completion_tokens = 0;
      soci::indicator edited_at_ind = soci::i_ok, model_ind = soci::i_ok,
                      finish_reason_ind = soci::i_ok, prompt_tokens_ind = soci::i_ok,
                      completion_tokens_ind = soci::i_ok, parent_id_ind = soci::i_ok;
    } message;
    struct {
      std::string user_id, day, model;
      long long requests = 0, prompt_tokens = 0, completion_tokens = 0;
      double cost_usd = 0;
    } usage;
    struct {
      std::string user_id, key, request_hash, answer;
      long long created_at = 0;
    } idempotency;
    struct {
      std::string user_id, source, conversation_id;
    } source;
    struct {
      std::string id, conversation_id, message_id;
      long long started_at = 0;
    } run;
    struct {
      std::string id, conversation_id, covers_through_message_id, content, model;
      long long covers_through_seq = 0, created_at = 0, tokens_before = 0, tokens_after = 0;
    } summary;
    std::string id;

    soci::statement insert_conversation, update_conversation, delete_conversation_messages,
        delete_conversation, delete_conversation_sources, delete_conversation_runs,
        delete_conversation_summaries, insert_summary, insert_source, insert_run, delete_run,
        insert_message, update_message, delete_message, reparent_children, add_usage,
        put_idempotency, replace_idempotency;
  };

  prepared_writes& writes() {
    if (!writes_) writes_ = std::make_unique<prepared_writes>(session_);
    return *writes_;
  }

  template <class T>
  static void set(T& target, soci::indicator& ind, const std::optional<T>& value) {
    ind = value ? soci::i_ok : soci::i_null;
    target = value.value_or(T{});
  }

  void bind_conversation(const conversation_record& c) {
    auto& b = writes().conversation;
    b.id = c.id;
    b.user_id = c.user_id;
    set(b.title, b.title_ind, c.title);
    b.model = c.model;
    set(b.system_prompt, b.system_prompt_ind, c.system_prompt);
    b.metadata = c.metadata_json;
    b.created_at = c.created_at;
    b.updated_at = c.updated_at;
    b.message_count = c.message_count;
    b.last_seq = c.last_seq;
    b.prompt_tokens = c.usage.prompt_tokens;
    b.completion_tokens = c.usage.completion_tokens;
    b.cost_usd = c.usage.cost_usd;
    b.version = c.version;
    set(b.active_leaf_id, b.active_leaf_id_ind, c.active_leaf_id);
    set(b.forked_from_conversation_id, b.forked_from_conversation_ind,
        c.forked_from_conversation_id);
    set(b.forked_from_message_id, b.forked_from_message_ind, c.forked_from_message_id);
    set(b.context_strategy, b.context_strategy_ind, c.context_strategy);
  }

  /// Runs `plan` a row at a time through the prepared statements; each binds
  /// every value, never splices it.
  void execute_row_by_row(const write_plan& plan) {
    auto& w = writes();
    for (auto c : plan.inserted_conversations) {
      bind_conversation(*c);
      w.insert_conversation.execute(true);
    }
    for (auto m : plan.inserted_messages) {
      bind_message(*m);
      w.insert_message.execute(true);
    }
    for (auto e : plan.message_edits) {
      w.message.content = e->content;
      w.message.edited_at = e->edited_at;
      w.message.id = e->id;
      w.update_message.execute(true);
    }
    for (auto d : plan.deleted_messages) {
      w.id = d->id;
      w.message.conversation_id = d->conversation_id;
      set(w.message.parent_id, w.message.parent_id_ind, d->parent_id);
      w.reparent_children.execute(true);
      w.delete_message.execute(true);
    }
    for (auto& u : plan.conversation_updates) {
      bind_conversation(*u.row);
      w.conversation.expected = u.expected_version;
      w.update_conversation.execute(true);
      if (w.update_conversation.get_affected_rows() != 1)
        throw store_error(errc::conflict,
                          "conversation " + u.row->id + " was changed or deleted meanwhile");
    }
    for (auto d : plan.deleted_conversations) {
      w.id = d->id;
      w.delete_conversation_messages.execute(true);
      w.delete_conversation_sources.execute(true);
      w.delete_conversation_runs.execute(true);
      w.delete_conversation_summaries.execute(true);
      w.delete_conversation.execute(true);
    }
    for (auto s : plan.sources) {
      w.source = {s->user_id, s->source, s->conversation_id};
      w.insert_source.execute(true);
    }
    for (auto r : plan.inserted_runs) {
      w.run = {r->id, r->conversation_id, r->message_id, r->started_at};
      w.insert_run.execute(true);
    }
    for (auto id : plan.deleted_runs) {
      w.id = *id;
      w.delete_run.execute(true);
    }
    for (auto s : plan.inserted_summaries) {
      w.summary = {s->id,         s->conversation_id, s->covers_through_message_id,
                   s->content,    s->model,           s->covers_through_seq,
                   s->created_at, s->tokens_before,   s->tokens_after};
      w.insert_summary.execute(true);
    }
    for (auto& u : plan.usage) {
      auto& b = w.usage;
      b.user_id = *u.user_id;
      b.day = *u.day;
      b.model = u.sum.model;
      b.requests = u.sum.requests;
      b.prompt_tokens = u.sum.prompt_tokens;
      b.completion_tokens = u.sum.completion_tokens;
      b.cost_usd = u.sum.cost_usd;
      w.add_usage.execute(true);
    }
    for (auto k : plan.idempotency_keys) {
      auto& b = w.idempotency;
      b.user_id = k->user_id;
      b.key = k->key;
      b.request_hash = k->request_hash;
      b.answer = k->answer;
      b.created_at = k->created_at;
      w.put_idempotency.execute(true);
    }
    for (auto k : plan.idempotency_answers) {
      auto& b = w.idempotency;
      b.user_id = k->user_id;
      b.key = k->key;
      b.answer = k->answer;
      w.replace_idempotency.execute(true);
    }
  }

  void bind_message(const message_record& m) {
    auto& b = writes().message;
    b.id = m.id;
    b.conversation_id = m.conversation_id;
    b.seq = m.seq;
    b.role = m.role;
    b.content = m.content;
    b.created_at = m.created_at;
    std::optional<long long> edited, prompt, completion;
    if (m.edited_at) edited = *m.edited_at;
    if (m.prompt_tokens) prompt = *m.prompt_tokens;
    if (m.completion_tokens) completion = *m.completion_tokens;
    set(b.edited_at, b.edited_at_ind, edited);
    set(b.model, b.model_ind, m.model);
    set(b.finish_reason, b.finish_reason_ind, m.finish_reason);
    set(b.prompt_tokens, b.prompt_tokens_ind, prompt);
    set(b.completion_tokens, b.completion_tokens_ind, completion);
    set(b.parent_id, b.parent_id_ind, m.parent_id);
  }

  /// The messages `statement` selects, its markers bound to `values` in order.
  template <class... Values>
  std::vector<message_record> select_messages(const std::string& statement,
                                              const Values&... values) {
    std::vector<message_record> out;
    soci::rowset<soci::row> rows = ((session_.prepare << statement), ..., soci::use(values));
    for (auto& r : rows) out.push_back(to_message(r));
    return out;
  }

  /// The libpq connection, or null while a reconnect has failed (SOCI then
  /// holds no backend).
  PGconn* native_postgresql() {
    auto backend = session_.get_backend();
    return backend ? static_cast<soci::postgresql_session_backend*>(backend)->conn_ : nullptr;
  }

  /// PostgreSQL's notices ("relation already exists, skipping" and the like)
  /// would go to stderr unformatted; they carry nothing an operator needs.
  void quiet_notices() {
    PQsetNoticeProcessor(
        native_postgresql(), [](void*, const char*) {}, nullptr);
  }

  /// Whether a call is bounded by the call timeout.
  enum class call_bound { timeout, none };

  /// Runs `fn` with database errors turned into store_error. A connection
  /// that failed is checked first and, if it broke, opened again (at most
  /// every reconnect_interval; in between the call fails at once).
  template <class Fn>
  auto guarded(Fn&& fn) -> decltype(fn()) {
    return guarded(call_bound::timeout, std::forward<Fn>(fn));
  }

  /// The same; on PostgreSQL a `timeout` bound call still running at
  /// call_timeout_ is cancelled by the statement watchdog. A cancelled
  /// statement fails (and with it the batch's transaction, which the server
  /// rolls back), and that failure is db_unavailable whatever it says: a
  /// batch that timed out must not be retried set by set as a conflict would be.
  template <class Fn>
  auto guarded(call_bound bound, Fn&& fn) -> decltype(fn()) {
    if (suspect_) reconnect_if_broken();
    // The watchdog (and its threads) only comes into play with a connection
    // to interrupt: never for SQLite.
    auto target = bound == call_bound::timeout ? interrupt_ : nullptr;
    std::optional<statement_deadline> deadline;
    if (target && call_timeout_.count() > 0)
      deadline.emplace(statement_watchdog::shared(), std::move(target), call_timeout_);
    auto finish = [&] {
      auto outcome = deadline ? deadline->finish() : call_outcome::finished;
      if (outcome != call_outcome::finished) suspect_ = true;
      // The socket is shut down even if the call got its answer first.
      if (outcome == call_outcome::dropped) dropped_ = true;
      return outcome;
    };
    try {
      if constexpr (std::is_void_v<decltype(fn())>) {
        translate_errors(fn);
        finish();
      } else {
        auto result = translate_errors(fn);
        finish();
        return result;
      }
    } catch (const store_error& e) {
      if (auto outcome = finish(); outcome != call_outcome::finished)
        throw store_error(errc::db_unavailable,
                          "no answer from the database within " +
                              std::to_string(call_timeout_.count()) + " ms; " +
                              (outcome == call_outcome::cancelled
                                   ? "the statement was cancelled"
                                   : "the cancel did not take, the connection was dropped") +
                              " (" + e.what() + ")");
      if (e.code == errc::db_unavailable) suspect_ = true;
      throw;
    } catch (...) {
      finish();
      throw;
    }
  }

  template <class Fn>
  static auto translate_errors(Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const soci::soci_error& e) {
      rethrow_as_store_error(e);
    } catch (const std::bad_cast&) {
      throw store_error(errc::internal, "unexpected column type in a result row");
    }
  }

  void reconnect_if_broken() {
    // SQLite errors (locked, full) leave the connection usable.
    // A connection left in pipeline mode failed half way through a batch;
    // one the watchdog dropped may not know it yet.
    if (dialect_ != sql_dialect::postgresql ||
        (!dropped_ && PQstatus(native_postgresql()) == CONNECTION_OK &&
         PQpipelineStatus(native_postgresql()) == PQ_PIPELINE_OFF)) {
      suspect_ = false;
      return;
    }
    if (!reconnect_gate_.may_try())
      throw store_error(errc::db_unavailable, "the database connection is down");
    writes_.reset();     // its statements belong to the old connection
    interrupt_.reset();  // its copy of the socket would keep the old connection open
    translate_errors([&] { session_.reconnect(); });
    reconnect_gate_.got_in();
    quiet_notices();
    interrupt_ = make_postgresql_interrupt(native_postgresql());
    dropped_ = false;
    suspect_ = false;
  }

  sql_dialect dialect_;
  soci::session session_;
  std::unique_ptr<prepared_writes> writes_;  // after session_: destroyed first
  bool suspect_ = false;                     ///< the last call failed for want of the database
  bool track_positions_ = false;             ///< track_commit_positions() was called
  reconnect_gate reconnect_gate_;
  /// How long a call may take; zero: no bound (set_call_timeout).
  std::chrono::milliseconds call_timeout_{0};
  /// What the watchdog stops a call on this connection with; PostgreSQL
  /// only, and null while there is no connection.
  std::shared_ptr<interruptible> interrupt_;
  bool dropped_ = false;  ///< the watchdog gave the connection up: open a new one
};

/// One store that several users share, one call at a time.
struct shared_store {
  explicit shared_store(const database_url& url) : db(url, std::make_shared<reconnect_count>(0)) {}
  parley::mutex mutex;
  sql_store db GUARDED_BY(mutex);
};

/// A store that hands every call to another one, which `Derived::with(fn)`
/// gives to `fn`: the one place that lists the calls.
template <class Derived>
class forwarding_store : public store {
 private:
  Derived& self() { return static_cast<Derived&>(*this); }

 public:
  // store overrides

  void migrate() override {
    self().with([](store& s) { s.migrate(); });
  }
  wal_position commit(const std::vector<const write_set*>& sets) override {
    return self().with([&](store& s) { return s.commit(sets); });
  }
  std::optional<conversation_record> find_conversation(const std::string& id) override {
    return self().with([&](store& s) { return s.find_conversation(id); });
  }
  conversation_page list_conversations(const std::string& user_id, unsigned limit,
                                       const std::optional<conversation_cursor>& after) override {
    return self().with([&](store& s) { return s.list_conversations(user_id, limit, after); });
  }
  std::vector<message_record> list_messages(const std::string& conversation_id,
                                            std::int64_t after_seq,
                                            std::optional<std::int64_t> before_seq,
                                            unsigned limit) override {
    return self().with(
        [&](store& s) { return s.list_messages(conversation_id, after_seq, before_seq, limit); });
  }
  std::optional<message_record> find_message(const std::string& conversation_id,
                                             const std::string& message_id) override {
    return self().with([&](store& s) { return s.find_message(conversation_id, message_id); });
  }
  std::vector<summary_record> list_summaries(const std::string& conversation_id) override {
    return self().with([&](store& s) { return s.list_summaries(conversation_id); });
  }
  std::optional<run_record> find_run(const std::string& conversation_id,
                                     const std::string& run_id) override {
    return self().with([&](store& s) { return s.find_run(conversation_id, run_id); });
  }
  std::optional<message_record> find_message_by_id(const std::string& message_id) override {
    return self().with([&](store& s) { return s.find_message_by_id(message_id); });
  }
  std::vector<message_record> walk_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, unsigned limit) override {
    return self().with([&](store& s) { return s.walk_branch(conversation_id, leaf_id, limit); });
  }
  std::vector<message_record> list_branch(const std::string& conversation_id,
                                          const std::string& leaf_id, std::int64_t after_seq,
                                          std::optional<std::int64_t> before_seq,
                                          unsigned limit) override {
    return self().with([&](store& s) {
      return s.list_branch(conversation_id, leaf_id, after_seq, before_seq, limit);
    });
  }
  std::int64_t branch_length(const std::string& conversation_id,
                             const std::string& leaf_id) override {
    return self().with([&](store& s) { return s.branch_length(conversation_id, leaf_id); });
  }
  bool branch_contains(const std::string& conversation_id, const std::string& leaf_id,
                       const message_record& message) override {
    return self().with(
        [&](store& s) { return s.branch_contains(conversation_id, leaf_id, message); });
  }
  std::optional<std::string> newest_leaf(const std::string& conversation_id,
                                         const std::optional<std::string>& from,
                                         const std::string& excluded) override {
    return self().with([&](store& s) { return s.newest_leaf(conversation_id, from, excluded); });
  }
  std::int64_t child_count(const std::string& conversation_id,
                           const std::optional<std::string>& parent_id) override {
    return self().with([&](store& s) { return s.child_count(conversation_id, parent_id); });
  }
  search_page search(const search_request& request) override {
    return self().with([&](store& s) { return s.search(request); });
  }
  std::vector<conversation_record> list_conversations_by_id(const std::string& user_id,
                                                            const std::string& after,
                                                            unsigned limit) override {
    return self().with([&](store& s) { return s.list_conversations_by_id(user_id, after, limit); });
  }
  std::optional<std::string> find_source(const std::string& user_id,
                                         const std::string& source) override {
    return self().with([&](store& s) { return s.find_source(user_id, source); });
  }
  std::optional<idempotency_record> find_idempotency(const std::string& user_id,
                                                     const std::string& key) override {
    return self().with([&](store& s) { return s.find_idempotency(user_id, key); });
  }
  std::int64_t purge_idempotency(unix_ms cutoff) override {
    return self().with([&](store& s) { return s.purge_idempotency(cutoff); });
  }
  std::vector<usage_row> usage(const std::string& user_id, const std::string& from_day,
                               const std::string& to_day) override {
    return self().with([&](store& s) { return s.usage(user_id, from_day, to_day); });
  }
  void ping() override {
    self().with([](store& s) { s.ping(); });
  }
  void track_commit_positions() override {
    self().with([](store& s) { s.track_commit_positions(); });
  }
  std::optional<wal_position> replayed_position() override {
    return self().with([](store& s) { return s.replayed_position(); });
  }
  void set_call_timeout(std::chrono::milliseconds timeout) override {
    self().with([&](store& s) { s.set_call_timeout(timeout); });
  }
};

/// Serializes access to one shared store (the in-memory SQLite database).
class locked_store final : public forwarding_store<locked_store> {
 public:
  explicit locked_store(std::shared_ptr<shared_store> shared) : shared_(std::move(shared)) {}

  template <class Fn>
  auto with(Fn&& fn) {
    mutex_lock guard(shared_->mutex);
    return fn(shared_->db);
  }

 private:
  std::shared_ptr<shared_store> shared_;
};

/// A store that connects on its first call, and on later ones (at most every
/// reconnect_interval) while it cannot: until then every call fails with
/// db_unavailable. Once connected, the store it made reconnects by itself.
class connecting_store final : public forwarding_store<connecting_store> {
 public:
  connecting_store(store_factory open, std::shared_ptr<reconnect_count> connects)
      : open_(std::move(open)), connect_gate_(std::move(connects)) {}

  template <class Fn>
  auto with(Fn&& fn) {
    return fn(connected());
  }

  // Kept until there is a connection to bound.
  void set_call_timeout(std::chrono::milliseconds timeout) override {
    call_timeout_ = timeout;
    if (db_) db_->set_call_timeout(timeout);
  }

 private:
  store& connected() {
    if (db_) return *db_;
    if (!connect_gate_.may_try())
      throw store_error(errc::db_unavailable, "not connected: " + last_failure_);
    try {
      auto opened = open_();
      opened->set_call_timeout(call_timeout_);
      db_ = std::move(opened);
      connect_gate_.got_in();
    } catch (const std::exception& e) {
      // Whatever stopped it (down, refused, a wrong password), the database
      // is unavailable to this store's callers until it connects.
      last_failure_ = e.what();
      throw store_error(errc::db_unavailable, last_failure_);
    }
    return *db_;
  }

  store_factory open_;
  std::unique_ptr<store> db_;  ///< null until connected
  std::chrono::milliseconds call_timeout_{0};
  reconnect_gate connect_gate_;
  std::string last_failure_;
};

}  // namespace

bool postgresql_url_parses(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(postgresql_connect_string(url).c_str(), &error);
  if (error) PQfreemem(error);  // it may quote the password
  if (!options) return false;
  PQconninfoFree(options);
  return true;
}

std::string postgresql_connect_string(const std::string& url) {
  std::string out = url;
  auto add = [&](const std::string& key, const std::string& value) {
    if (url.find(key + "=") != std::string::npos) return;
    out += (out.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
  };
  add("connect_timeout", "2");
  add("keepalives_idle", "5");
  add("keepalives_interval", "1");
  add("keepalives_count", "3");
  add("application_name", "parley");
  return out;
}

namespace {

/// Stores on their own connections to `url`, sharing `reconnects`.
store_factory sql_store_factory(const database_url& url,
                                std::shared_ptr<reconnect_count> reconnects) {
  return [url, reconnects] { return std::make_unique<sql_store>(url, reconnects); };
}

}  // namespace

store_factory make_store_factory(const database_url& url) {
  if (url.kind == database_url::backend::sqlite && url.target == ":memory:") {
    // Every copy of the factory must hand out the same connection.
    struct shared_memory_db {
      std::once_flag opened;
      std::shared_ptr<shared_store> db;
    };
    auto state = std::make_shared<shared_memory_db>();
    return [url, state]() -> std::unique_ptr<store> {
      std::call_once(state->opened, [&] { state->db = std::make_shared<shared_store>(url); });
      return std::make_unique<locked_store>(state->db);
    };
  }
  return sql_store_factory(url, std::make_shared<reconnect_count>(0));
}

store_factory make_connecting_store_factory(const database_url& url) {
  // One count for the first connects and the reconnects after: the
  // database is back as soon as any of them gets in.
  auto connects = std::make_shared<reconnect_count>(0);
  auto open = url.kind == database_url::backend::sqlite && url.target == ":memory:"
                  ? make_store_factory(url)
                  : sql_store_factory(url, connects);
  return [open, connects]() -> std::unique_ptr<store> {
    return std::make_unique<connecting_store>(open, connects);
  };
}

}  // namespace parley
