#pragma once

#include "persistence/write_plan.hpp"

struct pg_conn;  // libpq's PGconn

namespace parley {

/// Runs `plan` on `conn` inside the transaction the caller has begun, as a few
/// multi-row statements per kind of write: one network round trip per
/// statement instead of one per row. (SOCI 4.0.3's PostgreSQL backend sends a
/// vector bind row by row and re-sends stale rows on re-execution, so the
/// statements go through libpq directly.) Throws store_error: conflict when a
/// constraint, a deadlock or a stale conversation version rejects the batch,
/// db_unavailable otherwise.
void execute_on_postgresql(pg_conn* conn, const write_plan& plan);

}  // namespace parley
