#pragma once

#include "persistence/write_plan.hpp"

struct pg_conn;  // libpq's PGconn

namespace parley {

/// Commits `plan` on `conn` as one transaction of a few multi-row statements
/// per kind of write, sent together in libpq's pipeline mode: one network
/// round trip for the whole batch instead of one per row. (SOCI 4.0.3's
/// PostgreSQL backend sends a vector bind row by row and re-sends stale rows
/// on re-execution, so the statements, sql::postgresql's in sql_statements.hpp,
/// go through libpq directly.) Returns once committed. Throws store_error:
/// conflict when a constraint, a deadlock or a stale conversation version
/// rejects the batch (nothing is committed), internal when a value is
/// refused, db_unavailable otherwise.
void execute_on_postgresql(pg_conn* conn, const write_plan& plan);

}  // namespace parley
