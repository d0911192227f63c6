#pragma once

#include "persistence/commit_positions.hpp"
#include "persistence/write_plan.hpp"

#include <optional>

struct pg_conn;    // libpq's PGconn
struct pg_result;  // libpq's PGresult

namespace parley {

/// Commits `plan` on `conn` as one transaction of a few multi-row statements
/// per kind of write, sent together in libpq's pipeline mode: one network
/// round trip for the whole batch instead of one per row. (SOCI 4.0.3's
/// PostgreSQL backend sends a vector bind row by row and re-sends stale rows
/// on re-execution, so the statements, sql::postgresql's in sql_statements.hpp,
/// go through libpq directly.) Returns once committed. With `announce` (a
/// read replica is in use), the transaction also tells other instances whose
/// writes it holds, and the WAL position past the commit is returned (0 when
/// it could not be read: the batch is committed all the same); without, 0.
/// Throws store_error:
/// conflict when a constraint, a deadlock or a stale conversation version
/// rejects the batch (nothing is committed), internal when a value is
/// refused, db_unavailable otherwise.
wal_position execute_on_postgresql(pg_conn* conn, const write_plan& plan,
                                   const whose_writes* announce);

/// The position in `res`, the answer to sql::postgresql::wal_insert_position;
/// none when it is a failure or holds no position.
std::optional<wal_position> wal_position_in(const pg_result* res);

}  // namespace parley
