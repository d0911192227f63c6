#include "support/scratch_database.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>

namespace parley::testing {

namespace {

constexpr int skipped_exit_code = 77;

std::string postgresql_server() {
  auto server = std::getenv("PARLEY_TEST_PG_SERVER");
  if (!server || !*server) {
    std::cerr << "PARLEY_TEST_BACKEND=postgresql but PARLEY_TEST_PG_SERVER is not set; "
                 "scripts/test.sh starts a PostgreSQL server for the tests. Skipping.\n";
    std::exit(skipped_exit_code);
  }
  return server;
}

/// Runs one statement on the server's maintenance database.
void admin(const std::string& sql) {
  auto url = postgresql_server() + "/postgres";
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw std::runtime_error("cannot reach the test PostgreSQL: " +
                             std::string(PQerrorMessage(conn.get())));
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(res.get()));
}

}  // namespace

bool testing_postgresql() {
  auto backend = std::getenv("PARLEY_TEST_BACKEND");
  return backend && std::string(backend) == "postgresql";
}

scratch_database::scratch_database(const std::string& dir) {
  if (!testing_postgresql()) {
    url_ = "sqlite://" + dir + "/parley.db";
    return;
  }
  static std::atomic<int> counter{0};
  postgresql_name_ = "parley_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  admin("CREATE DATABASE " + postgresql_name_);
  url_ = postgresql_server() + "/" + postgresql_name_;
}

scratch_database::~scratch_database() {
  if (postgresql_name_.empty()) return;
  try {
    admin("DROP DATABASE IF EXISTS " + postgresql_name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::cerr << "leaving test database " << postgresql_name_ << ": " << e.what() << "\n";
  }
}

void scratch_database::terminate_connections() {
  if (postgresql_name_.empty()) throw std::logic_error("not a PostgreSQL database");
  auto url = postgresql_server() + "/postgres";
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(url.c_str()), &PQfinish);
  auto sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
             postgresql_name_ + "'";
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK)
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(res.get()));
}

bool control_postgresql(const std::string& action) {
  auto command = std::getenv("PARLEY_TEST_PG_CONTROL");
  if (!command || !*command) return false;
  return std::system((std::string(command) + " " + action + " >/dev/null").c_str()) == 0;
}

}  // namespace parley::testing
