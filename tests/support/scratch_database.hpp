#pragma once

#include "base/mutex.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

struct pg_conn;  // libpq's PGconn

namespace parley::testing {

/// True when this test run targets PostgreSQL (PARLEY_TEST_BACKEND=postgresql).
/// Such a test exits with code 77 (ctest: skipped) when no server is given.
bool testing_postgresql();

/// Boost.Test preconditions for a test case that only makes sense on one backend:
/// `BOOST_AUTO_TEST_CASE(name, *boost::unit_test::precondition(only_on_postgresql))`.
struct backend_precondition {
  bool postgresql;
  bool operator()(unsigned long) const { return testing_postgresql() == postgresql; }
};
inline constexpr backend_precondition only_on_postgresql{true};
inline constexpr backend_precondition only_on_sqlite{false};

/// A database of its own for one test: a SQLite file under `dir`, or, on the
/// PostgreSQL run, a new database on the server PARLEY_TEST_PG_SERVER names
/// (postgresql://user@host:port, no database), dropped with the object.
class scratch_database {
 public:
  explicit scratch_database(const std::string& dir);
  ~scratch_database();
  scratch_database(const scratch_database&) = delete;
  scratch_database& operator=(const scratch_database&) = delete;

  /// The database.url to give Parley.
  const std::string& url() const { return url_; }

  /// Runs one SQL statement on the database, outside Parley (to set up a
  /// state Parley would not make, such as an older schema). Throws on error.
  void execute(const std::string& sql) const;

  /// Runs one query on the database, outside Parley, and returns its first
  /// row's first column, an integer. Throws on error or an empty result.
  long long query_int(const std::string& sql) const;

  /// PostgreSQL only: ends every other connection to this database, as a
  /// server restart or a network failure would.
  void terminate_connections();

  /// PostgreSQL only: whether the server lets new connections into this
  /// database, as a server that is down or starting up would not.
  void allow_connections(bool allowed);

 private:
  std::string url_;
  std::string postgresql_name_;  ///< empty for SQLite
};

/// SQLite only: another process (sqlite3) holding the write lock of the
/// database file at `path` for `hold`, as a backup tool or a stray client
/// would. Returns once the lock is held; throws std::runtime_error when it
/// is not within 10 s.
class sqlite_write_lock {
 public:
  sqlite_write_lock(const std::string& path, std::chrono::seconds hold);
  ~sqlite_write_lock();
  sqlite_write_lock(const sqlite_write_lock&) = delete;
  sqlite_write_lock& operator=(const sqlite_write_lock&) = delete;

  /// Waits until the process has let go; true when it committed and exited 0.
  bool released();

 private:
  std::thread holder_;
  std::atomic<bool> exited_{false};  ///< the shell has returned
  int exit_code_ = -1;               ///< its wait status, once holder_ is joined
};

/// PostgreSQL only: a database that hangs without going down. Holds
/// `LOCK TABLE table IN ACCESS EXCLUSIVE MODE` in an open transaction on a
/// connection of its own, so every statement that touches the table (even a
/// SELECT) waits while the server answers everything else. The server ends
/// the lock itself after `at_most` (idle_in_transaction_session_timeout), so
/// a test whose statement is never cancelled fails instead of hanging.
class postgresql_table_lock {
 public:
  /// Returns once the lock is held; throws std::runtime_error otherwise.
  postgresql_table_lock(const std::string& database_url, const std::string& table,
                        std::chrono::seconds at_most);
  ~postgresql_table_lock();
  postgresql_table_lock(const postgresql_table_lock&) = delete;
  postgresql_table_lock& operator=(const postgresql_table_lock&) = delete;

  /// Lets go of the lock (once; thread-safe).
  void release();

 private:
  parley::mutex mutex_;
  pg_conn* conn_ GUARDED_BY(mutex_) = nullptr;  ///< owned; null once released
};

/// PostgreSQL only, with the server on this machine and ours to signal: a
/// database that hangs on one connection. Stops (SIGSTOP) the server process
/// of every connection to the database of `database_url` whose
/// application_name is `application_name`, and lets them go on (SIGCONT)
/// when destroyed or after `at_most`, whichever comes first (so a test whose
/// statement is never interrupted fails instead of hanging). Their statements
/// wait, and a cancel request reaches them but is not acted on, while the
/// server answers everything else.
class postgresql_backend_pause {
 public:
  /// Throws std::runtime_error when a process cannot be signalled.
  postgresql_backend_pause(const std::string& database_url, const std::string& application_name,
                           std::chrono::seconds at_most);
  ~postgresql_backend_pause();
  postgresql_backend_pause(const postgresql_backend_pause&) = delete;
  postgresql_backend_pause& operator=(const postgresql_backend_pause&) = delete;

  std::size_t stopped() const { return pids_.size(); }

 private:
  std::vector<int> pids_;
  parley::mutex mutex_;
  condition ended_changed_;
  bool ended_ GUARDED_BY(mutex_) = false;
  std::thread resumer_;  ///< sends the SIGCONTs
};

/// Runs the shell command PARLEY_TEST_PG_CONTROL names with `action` (start or
/// stop; replica-stop or replica-start) to take the test PostgreSQL cluster
/// (or its replica) down or bring it back; returns false when there is no
/// such command or it fails.
bool control_postgresql(const std::string& action);

/// PostgreSQL only: the URL of the database `database_url` names on a
/// streaming standby of the test cluster, which PARLEY_TEST_PG_CONTROL makes
/// (once) and starts. Throws std::runtime_error when it cannot.
std::string on_replica(const std::string& database_url);

/// PostgreSQL only: runs the query `sql` on the database at `url` (a
/// replica, say), on a connection of its own. Throws std::runtime_error on failure.
void query_postgresql(const std::string& url, const std::string& sql);

}  // namespace parley::testing
