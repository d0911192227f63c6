#include "persistence/postgresql_batch.hpp"

#include "base/uuid.hpp"
#include "persistence/change_feed.hpp"
#include "persistence/sql_statements.hpp"
#include "persistence/store.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parley {

namespace {

/// libpq caps a statement at 65,535 parameters; past about a thousand rows a
/// bigger statement no longer saves anything measurable.
constexpr std::size_t max_params = 65535;
constexpr std::size_t max_rows = 1000;

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

[[noreturn]] void throw_failure(PGconn* conn, const PGresult* res) {
  std::string message = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  // Class 23: integrity constraint violation; 40001/40P01: serialization
  // failure and deadlock, which a retry of the sets one at a time resolves.
  if (sqlstate.rfind("23", 0) == 0 || sqlstate == "40001" || sqlstate == "40P01")
    throw store_error(errc::conflict, message);
  // Class 22: a value the database refused (validation should have caught it).
  if (sqlstate.rfind("22", 0) == 0) throw store_error(errc::internal, message);
  throw store_error(errc::db_unavailable, message);
}

/// Text parameters of one statement, each a value or NULL.
class parameters {
 public:
  void text(const std::string& v) { add(v); }
  void text(std::string_view v) { add(std::string(v)); }  // a message's shared text, copied once
  void text(const std::optional<std::string>& v) { v ? add(*v) : null(); }
  void number(std::int64_t v) { add(std::to_string(v)); }
  void number(const std::optional<std::int64_t>& v) { v ? number(*v) : null(); }
  void number(double v) {
    char buf[32];
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;  // shortest exact form
    add(std::string(buf, end));
  }

  std::size_t size() const { return values_.size(); }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  void add(std::string v) {
    // libpq takes text parameters as C strings: U+0000 would silently cut the
    // value short, and PostgreSQL's text cannot hold it anyway.
    if (v.find('\0') != std::string::npos)
      throw store_error(errc::internal, "text containing U+0000 cannot be stored in PostgreSQL");
    values_.emplace_back(std::move(v));
  }
  void null() { values_.emplace_back(std::nullopt); }
  std::vector<std::optional<std::string>> values_;
};

/// The statements of one batch, sent in libpq's pipeline mode so that the
/// whole batch costs one round trip. Everything up to the pipeline's sync is
/// one implicit transaction (extended query protocol): it commits at the
/// sync, and an error in any statement rolls back all of them. Statements are
/// only queued until commit(): a value refused while the batch is built then
/// leaves nothing on the connection for the next batch to carry along.
class pipeline {
 public:
  void add(std::string sql, parameters params) {
    statements_.push_back({std::move(sql), std::move(params)});
  }

  /// Sends every statement and the sync, and reads every result; throws the
  /// first failure. Returns only once the transaction has committed: with
  /// `ask_position`, with the WAL position past its commit record, asked for
  /// after the sync in the same round trip (0 when that fails); else 0.
  wal_position commit(PGconn* conn, bool ask_position) {
    if (!conn || PQenterPipelineMode(conn) != 1) throw_failure(conn, nullptr);
    // Leaving pipeline mode fails while results are unread: the store then
    // finds the connection still in pipeline mode and opens a new one.
    struct leave_pipeline {
      PGconn* conn;
      ~leave_pipeline() { PQexitPipelineMode(conn); }
    } leave{conn};
    for (auto& [sql, params] : statements_) {
      auto values = params.pointers();
      if (PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0) != 1)
        throw_failure(conn, nullptr);
    }
    if (PQpipelineSync(conn) != 1) throw_failure(conn, nullptr);
    if (ask_position && (PQsendQueryParams(conn, sql::postgresql::wal_insert_position, 0, nullptr,
                                           nullptr, nullptr, nullptr, 0) != 1 ||
                         PQpipelineSync(conn) != 1))
      throw_failure(conn, nullptr);
    std::optional<store_error> failed;
    for (std::size_t i = 0; i < statements_.size(); ++i) {
      result_ptr res(PQgetResult(conn), &PQclear);
      if (!res) throw_failure(conn, nullptr);  // the connection broke
      auto status = PQresultStatus(res.get());
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && !failed) {
        try {
          throw_failure(conn, status == PGRES_PIPELINE_ABORTED ? nullptr : res.get());
        } catch (const store_error& e) {
          failed = e;
        }
      }
      result_ptr end(PQgetResult(conn), &PQclear);  // each statement's results end with null
    }
    result_ptr sync(PQgetResult(conn), &PQclear);
    if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) throw_failure(conn, nullptr);
    // Read either way, so that the connection leaves pipeline mode clean.
    auto position = ask_position ? read_position(conn) : 0;
    if (failed) throw *failed;
    return position;
  }

 private:
  /// The position query's answer. It never throws: the batch before it has
  /// committed, whatever becomes of the query.
  static wal_position read_position(PGconn* conn) noexcept {
    result_ptr position(PQgetResult(conn), &PQclear);
    if (!position) return 0;
    result_ptr end(PQgetResult(conn), &PQclear);
    result_ptr sync(PQgetResult(conn), &PQclear);
    if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) return 0;
    return wal_position_in(position.get()).value_or(0);
  }

  struct statement {
    std::string sql;
    parameters params;
  };
  std::vector<statement> statements_;
};

/// Sends `statement` for `rows`, in chunks; each row's values are text
/// parameters cast to the types of `statement.row`. `bind` adds one row's
/// parameters, in the order of `statement.row`.
template <class Row, class Bind>
void send_rows(pipeline& out, const sql::postgresql::multi_row& statement,
               const std::vector<Row>& rows, Bind bind) {
  auto& columns = statement.row;
  auto per_statement = std::min(max_rows, max_params / columns.size());
  for (std::size_t first = 0; first < rows.size(); first += per_statement) {
    auto last = std::min(rows.size(), first + per_statement);
    std::string sql = statement.head;
    parameters params;
    for (auto i = first; i < last; ++i) {
      sql += i == first ? "(" : ", (";
      for (std::size_t c = 0; c < columns.size(); ++c) {
        if (c) sql += ", ";
        sql += '$';
        sql += std::to_string(params.size() + c + 1);
        sql += "::";
        sql += columns[c].pg_type;
      }
      sql += ")";
      bind(params, rows[i]);
    }
    sql += statement.tail;
    out.add(std::move(sql), std::move(params));
  }
}

/// Binds sql::conversation_columns.
void bind_conversation(parameters& p, const conversation_record& c) {
  p.text(c.id);
  p.text(c.user_id);
  p.text(c.title);
  p.text(c.model);
  p.text(c.system_prompt);
  p.text(c.metadata_json);
  p.number(c.created_at);
  p.number(c.updated_at);
  p.number(c.message_count);
  p.number(c.last_seq);
  p.number(c.usage.prompt_tokens);
  p.number(c.usage.completion_tokens);
  p.number(c.usage.cost_usd);
  p.number(c.version);
  p.text(c.active_leaf_id);
  p.text(c.forked_from_conversation_id);
  p.text(c.forked_from_message_id);
  p.text(c.context_strategy);
}

/// Binds sql::id_column.
void bind_id(parameters& p, const std::string* id) { p.text(*id); }

}  // namespace

std::optional<wal_position> wal_position_in(const PGresult* res) {
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
    return std::nullopt;
  try {
    return parse_wal_position(PQgetvalue(res, 0, 0));
  } catch (const store_error&) {
    return std::nullopt;
  }
}

wal_position execute_on_postgresql(PGconn* conn, const write_plan& plan,
                                   const whose_writes* announce) {
  // Each bind adds a row's values in the order of its statement's `row`.
  namespace statements = sql::postgresql;
  pipeline out;
  send_rows(out, statements::insert_conversations, plan.inserted_conversations,
            [](parameters& p, const conversation_record* c) { bind_conversation(p, *c); });

  send_rows(out, statements::insert_messages, plan.inserted_messages,
            [](parameters& p, const message_record* m) {
              p.text(m->id);
              p.text(m->conversation_id);
              p.number(m->seq);
              p.text(m->role);
              p.text(m->content);
              p.number(m->created_at);
              p.number(m->edited_at);
              p.text(m->model);
              p.text(m->finish_reason);
              p.number(m->prompt_tokens);
              p.number(m->completion_tokens);
              p.text(m->parent_id);
            });

  send_rows(out, statements::update_messages, plan.message_edits,
            [](parameters& p, const write::update_message* e) {
              p.text(e->id);
              p.text(e->content);
              p.number(e->edited_at);
            });

  send_rows(out, statements::reparent_children, plan.deleted_messages,
            [](parameters& p, const write::delete_message* d) {
              p.text(d->conversation_id);
              p.text(d->id);
              p.text(d->parent_id);
            });
  send_rows(out, statements::delete_messages, plan.deleted_messages,
            [](parameters& p, const write::delete_message* d) { p.text(d->id); });

  // A stale version fails the whole transaction (see update_conversations).
  send_rows(out, statements::update_conversations, plan.conversation_updates,
            [](parameters& p, const write_plan::conversation_update& u) {
              bind_conversation(p, *u.row);
              p.number(u.expected_version);
            });

  auto bind_deleted = [](parameters& p, const write::delete_conversation* d) { p.text(d->id); };
  send_rows(out, statements::delete_conversation_messages, plan.deleted_conversations,
            bind_deleted);
  send_rows(out, statements::delete_conversation_sources, plan.deleted_conversations, bind_deleted);
  send_rows(out, statements::delete_conversation_runs, plan.deleted_conversations, bind_deleted);
  send_rows(out, statements::delete_conversation_summaries, plan.deleted_conversations,
            bind_deleted);
  send_rows(out, statements::delete_conversations, plan.deleted_conversations, bind_deleted);

  send_rows(out, statements::insert_sources, plan.sources,
            [](parameters& p, const write::record_source* s) {
              p.text(s->user_id);
              p.text(s->source);
              p.text(s->conversation_id);
            });

  send_rows(out, statements::insert_runs, plan.inserted_runs,
            [](parameters& p, const run_record* r) {
              p.text(r->id);
              p.text(r->conversation_id);
              p.text(r->message_id);
              p.number(r->started_at);
            });
  send_rows(out, statements::delete_runs, plan.deleted_runs, bind_id);
  send_rows(out, statements::insert_summaries, plan.inserted_summaries,
            [](parameters& p, const summary_record* s) {
              p.text(s->id);
              p.text(s->conversation_id);
              p.text(s->covers_through_message_id);
              p.number(s->covers_through_seq);
              p.text(s->content);
              p.text(s->model);
              p.number(s->created_at);
              p.number(s->tokens_before);
              p.number(s->tokens_after);
            });

  send_rows(out, statements::add_usage, plan.usage,
            [](parameters& p, const write_plan::usage_total& u) {
              p.text(*u.user_id);
              p.text(*u.day);
              p.text(u.sum.model);
              p.number(u.sum.requests);
              p.number(u.sum.prompt_tokens);
              p.number(u.sum.completion_tokens);
              p.number(u.sum.cost_usd);
            });

  send_rows(out, statements::insert_idempotency, plan.idempotency_keys,
            [](parameters& p, const idempotency_row* k) {
              p.text(k->user_id);
              p.text(k->key);
              p.text(k->request_hash);
              p.text(k->answer);
              p.number(k->created_at);
            });

  send_rows(out, statements::replace_idempotency_answers, plan.idempotency_answers,
            [](parameters& p, const idempotency_row* k) {
              p.text(k->user_id);
              p.text(k->key);
              p.text(k->answer);
            });

  // Other instances holding these conversations learn of the change as it
  // commits: a NOTIFY inside the transaction is sent only if it commits.
  std::vector<std::string> notices;
  notices.reserve(plan.conversation_updates.size() + plan.deleted_conversations.size());
  for (auto& u : plan.conversation_updates)
    notices.push_back(encode_change({instance_id(), u.row->id, u.row->version}));
  for (auto* d : plan.deleted_conversations)
    notices.push_back(encode_change({instance_id(), d->id, std::nullopt}));
  send_rows(out, statements::notify_changes, notices,
            [](parameters& p, const std::string& notice) { p.text(notice); });
  // Instances reading from a replica hold back the reads of these users.
  if (announce)
    send_rows(out, statements::notify_writes, encode_writes({instance_id(), *announce}),
              [](parameters& p, const std::string& notice) { p.text(notice); });
  return out.commit(conn, announce != nullptr);
}

}  // namespace parley
