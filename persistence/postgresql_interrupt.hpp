#pragma once

#include "persistence/statement_watchdog.hpp"

#include <memory>

struct pg_conn;  // libpq's PGconn

namespace parley {

/// The way out of a call blocked on `conn`, for the statement watchdog:
/// cancel() sends libpq's cancel request (PQcancel, which libpq allows from
/// another thread while the connection is in use) so that the statement
/// fails and the connection stays usable; drop() shuts the connection's
/// socket down so that the blocked call fails at once, for when the server
/// does not act on the cancel (a stopped backend, a lost network). It keeps
/// its own copies (libpq's cancel object, a duplicate of the socket), so it
/// may outlive the connection; release it when the connection is replaced,
/// since the duplicate keeps the old socket open. Null when `conn` is not
/// connected.
std::shared_ptr<interruptible> make_postgresql_interrupt(pg_conn* conn);

}  // namespace parley
