#pragma once

#include <string>

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

  /// PostgreSQL only: ends every other connection to this database, as a
  /// server restart or a network failure would.
  void terminate_connections();

 private:
  std::string url_;
  std::string postgresql_name_;  ///< empty for SQLite
};

/// Runs the shell command PARLEY_TEST_PG_CONTROL names with `action` (start or
/// stop) to take the test PostgreSQL cluster down or bring it back; returns
/// false when there is no such command or it fails.
bool control_postgresql(const std::string& action);

}  // namespace parley::testing
