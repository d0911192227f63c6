#include "persistence/limit_ledger.hpp"

#include "persistence/store.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstdlib>
#include <vector>

namespace parley {

namespace {

// $1 user, $2 want, $3 capacity, $4 tokens per second, $5 debt, $6 now (ms).
// One statement, so the row lock of the upsert makes it atomic: the refill,
// the debt and the grant are computed from the row as it is when locked.
constexpr const char* take_tokens_sql =
    "WITH v AS (SELECT $1::text AS user_id, $2::float8 AS want, $3::float8 AS cap,"
    " $4::float8 AS rate, $5::float8 AS debt, $6::bigint AS now)"
    " INSERT INTO rate_buckets AS b (user_id, tokens, last_taken, updated_ms)"
    " SELECT user_id, cap - debt - LEAST(want, GREATEST(0, FLOOR(cap - debt))),"
    " debt + LEAST(want, GREATEST(0, FLOOR(cap - debt))), now FROM v"
    " ON CONFLICT (user_id) DO UPDATE SET"
    " tokens = (SELECT avail - v.debt - LEAST(v.want, GREATEST(0, FLOOR(avail - v.debt)))"
    "   FROM v, LATERAL (SELECT LEAST(v.cap, b.tokens + GREATEST(0, v.now - b.updated_ms)"
    "   * v.rate / 1000.0) AS avail) a),"
    " last_taken = (SELECT v.debt + LEAST(v.want, GREATEST(0, FLOOR(avail - v.debt)))"
    "   FROM v, LATERAL (SELECT LEAST(v.cap, b.tokens + GREATEST(0, v.now - b.updated_ms)"
    "   * v.rate / 1000.0) AS avail) a),"
    " updated_ms = GREATEST(b.updated_ms, EXCLUDED.updated_ms)"
    " RETURNING last_taken, tokens";

// $1 user, $2 tokens, $3 capacity, $4 tokens per second, $5 now (ms).
constexpr const char* give_back_sql =
    "UPDATE rate_buckets SET tokens = LEAST($3::float8, tokens + GREATEST(0, $5::bigint -"
    " updated_ms) * $4::float8 / 1000.0 + $2::float8), updated_ms = GREATEST(updated_ms, $5)"
    " WHERE user_id = $1";

// $1 user, $2 instance, $3 wanted, $4 limit, $5 now (ms), $6 expires (ms). Run
// after an advisory lock on the user in the same transaction: two instances
// claiming at once would otherwise both see the other's old count.
constexpr const char* hold_slots_sql =
    "INSERT INTO generation_leases (user_id, instance_id, slots, expires_ms)"
    " SELECT $1, $2, LEAST($3::int, GREATEST(0, $4::int - COALESCE(SUM(slots), 0)))::int, $6"
    " FROM generation_leases WHERE user_id = $1 AND instance_id <> $2 AND expires_ms > $5"
    " ON CONFLICT (user_id, instance_id) DO UPDATE SET slots = EXCLUDED.slots,"
    " expires_ms = EXCLUDED.expires_ms RETURNING slots";

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

class postgresql_ledger final : public limit_ledger {
 public:
  explicit postgresql_ledger(const std::string& url)
      : connect_string_(postgresql_connect_string(url)) {}

  void prepare() override {
    try {
      connected();
    } catch (const store_error&) {
      // Said again by the first call that needs the connection.
    }
  }

  token_grant take_tokens(const std::string& user, double debt, double want, double capacity,
                          double per_second, std::int64_t now_ms) override {
    auto res = run(take_tokens_sql, {user, number(want), number(capacity), number(per_second),
                                     number(debt), std::to_string(now_ms)});
    return {std::strtod(PQgetvalue(res.get(), 0, 0), nullptr),
            std::strtod(PQgetvalue(res.get(), 0, 1), nullptr)};
  }

  void give_back(const std::string& user, double tokens, double capacity, double per_second,
                 std::int64_t now_ms) override {
    run(give_back_sql,
        {user, number(tokens), number(capacity), number(per_second), std::to_string(now_ms)});
  }

  unsigned hold_slots(const std::string& user, const std::string& instance, unsigned wanted,
                      unsigned limit, std::int64_t now_ms, std::int64_t expires_ms) override {
    run("BEGIN", {});
    try {
      run("SELECT pg_advisory_xact_lock(hashtext('parley.generation_leases:' || $1))", {user});
      // Every process start is a new instance id: expired leases go, so that
      // the sum below reads only live ones.
      run("DELETE FROM generation_leases WHERE user_id = $1 AND expires_ms <= $2::bigint",
          {user, std::to_string(now_ms)});
      auto res = run(hold_slots_sql, {user, instance, std::to_string(wanted), std::to_string(limit),
                                      std::to_string(now_ms), std::to_string(expires_ms)});
      auto held = static_cast<unsigned>(std::strtoul(PQgetvalue(res.get(), 0, 0), nullptr, 10));
      run("COMMIT", {});
      return held;
    } catch (...) {
      if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK)
        result_ptr(PQexec(conn_.get(), "ROLLBACK"), &PQclear);
      throw;
    }
  }

 private:
  static std::string number(double v) {
    char buf[32];
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    return std::string(buf, end);
  }

  /// Opens the connection unless it is open; throws store_error.
  void connected() {
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
      conn_.reset(PQconnectdb(connect_string_.c_str()));
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        std::string why = PQerrorMessage(conn_.get());
        conn_.reset();
        throw store_error(errc::db_unavailable, why);
      }
      // A lease is not worth a disk flush: a bucket update that a database
      // crash loses only lets a few more requests in. Nor worth waiting on
      // a hung database: leases held carry the requests meanwhile.
      result_ptr set(
          PQexec(conn_.get(), "SET synchronous_commit = off; SET statement_timeout = 2000"),
          &PQclear);
      if (PQresultStatus(set.get()) != PGRES_COMMAND_OK) {
        std::string why = PQerrorMessage(conn_.get());
        conn_.reset();
        throw store_error(errc::db_unavailable, why);
      }
    }
  }

  /// Runs `sql` with text parameters; throws store_error, dropping a broken connection.
  result_ptr run(const char* sql, const std::vector<std::string>& params) {
    connected();
    std::vector<const char*> values;
    for (auto& p : params) values.push_back(p.c_str());
    result_ptr res(PQexecParams(conn_.get(), sql, static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0),
                   &PQclear);
    auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      std::string why = PQerrorMessage(conn_.get());
      if (PQstatus(conn_.get()) != CONNECTION_OK) conn_.reset();
      throw store_error(errc::db_unavailable, why);
    }
    return res;
  }

  std::string connect_string_;
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_{nullptr, &PQfinish};
};

}  // namespace

std::unique_ptr<limit_ledger> make_postgresql_ledger(const std::string& url) {
  return std::make_unique<postgresql_ledger>(url);
}

}  // namespace parley
