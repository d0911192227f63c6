#include "support/scratch_database.hpp"

#include <libpq-fe.h>
#include <signal.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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

using pg_result = std::unique_ptr<PGresult, decltype(&PQclear)>;

/// Runs `sql` on the PostgreSQL database at `url`, on a connection of its
/// own; throws unless the result has status `expected`.
pg_result run_on_postgresql(const std::string& url, const std::string& sql,
                            ExecStatusType expected) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw std::runtime_error("cannot reach " + url + ": " + PQerrorMessage(conn.get()));
  pg_result res(PQexec(conn.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(res.get()) != expected)
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(res.get()));
  return res;
}

/// Runs one statement on the server's maintenance database.
void admin(const std::string& sql) {
  run_on_postgresql(postgresql_server() + "/postgres", sql, PGRES_COMMAND_OK);
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

namespace {

/// SOCI's connect string for the SQLite database at `url`.
std::string sqlite_connect_string(const std::string& url) {
  return "db=" + url.substr(std::string("sqlite://").size());
}

}  // namespace

long long scratch_database::query_int(const std::string& sql) const {
  if (postgresql_name_.empty()) {
    soci::session session(soci::sqlite3, sqlite_connect_string(url_));
    long long value = 0;
    soci::indicator ind = soci::i_null;
    session << sql, soci::into(value, ind);
    if (ind != soci::i_ok) throw std::runtime_error(sql + ": no value");
    return value;
  }
  auto res = run_on_postgresql(url_, sql, PGRES_TUPLES_OK);
  if (PQntuples(res.get()) < 1 || PQgetisnull(res.get(), 0, 0))
    throw std::runtime_error(sql + ": no value");
  return std::stoll(PQgetvalue(res.get(), 0, 0));
}

void scratch_database::execute(const std::string& sql) const {
  if (postgresql_name_.empty()) {
    soci::session session(soci::sqlite3, sqlite_connect_string(url_));
    session << sql;
    return;
  }
  run_on_postgresql(url_, sql, PGRES_COMMAND_OK);
}

void scratch_database::terminate_connections() {
  if (postgresql_name_.empty()) throw std::logic_error("not a PostgreSQL database");
  run_on_postgresql(postgresql_server() + "/postgres",
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                        postgresql_name_ + "'",
                    PGRES_TUPLES_OK);
}

void scratch_database::allow_connections(bool allowed) {
  if (postgresql_name_.empty()) throw std::logic_error("not a PostgreSQL database");
  run_on_postgresql(postgresql_server() + "/postgres",
                    "ALTER DATABASE " + postgresql_name_ + " WITH ALLOW_CONNECTIONS " +
                        (allowed ? "true" : "false"),
                    PGRES_COMMAND_OK);
}

sqlite_write_lock::sqlite_write_lock(const std::string& path, std::chrono::seconds hold) {
  // sqlite3 touches the marker once BEGIN EXCLUSIVE has taken the lock; it
  // waits for the lock if the server holds it, and stops at an error.
  auto marker = path + ".locked";
  std::error_code ignored;
  std::filesystem::remove(marker, ignored);
  holder_ = std::thread([this, path, marker, hold] {
    // All of it at once, the wait inside sqlite3: the command ends when it does.
    auto cmd = "printf '.bail on\\n.timeout 5000\\nBEGIN EXCLUSIVE;\\n.system touch " + marker +
               "\\n.system sleep " + std::to_string(hold.count()) + "\\nCOMMIT;\\n' | sqlite3 '" +
               path + "'";
    exit_code_ = std::system(cmd.c_str());
    exited_ = true;
  });
  auto locked = [&] { return std::filesystem::exists(marker, ignored); };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!locked() && !exited_ && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!locked()) {
    holder_.join();
    throw std::runtime_error("sqlite3 did not take the write lock of " + path);
  }
}

sqlite_write_lock::~sqlite_write_lock() {
  if (holder_.joinable()) holder_.join();
}

bool sqlite_write_lock::released() {
  if (holder_.joinable()) holder_.join();
  return exit_code_ == 0;
}

postgresql_table_lock::postgresql_table_lock(const std::string& database_url,
                                             const std::string& table,
                                             std::chrono::seconds at_most) {
  // Nothing else can reach the lock yet; held so that every use of conn_ is.
  mutex_lock lock(mutex_);
  conn_ = PQconnectdb(database_url.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn_);
    PQfinish(conn_);
    throw std::runtime_error("cannot reach the test PostgreSQL: " + why);
  }
  const std::string statements[] = {
      "SET idle_in_transaction_session_timeout = " +
          std::to_string(std::chrono::milliseconds(at_most).count()),
      "SET lock_timeout = 5000",  // it waits for transactions under way, but not for long
      "BEGIN",
      "LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE",
  };
  for (auto& sql : statements) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn_, sql.c_str()), &PQclear);
    if (PQresultStatus(res.get()) == PGRES_COMMAND_OK) continue;
    std::string why = PQresultErrorMessage(res.get());
    PQfinish(conn_);
    conn_ = nullptr;
    throw std::runtime_error(sql + ": " + why);
  }
}

postgresql_table_lock::~postgresql_table_lock() { release(); }

void postgresql_table_lock::release() {
  mutex_lock lock(mutex_);
  if (!conn_) return;
  // Rolled back before it returns, so the next statement finds no lock
  // (it fails harmlessly when the server ended the session at `at_most`).
  PQclear(PQexec(conn_, "ROLLBACK"));
  PQfinish(conn_);
  conn_ = nullptr;
}

postgresql_backend_pause::postgresql_backend_pause(const std::string& database_url,
                                                   const std::string& application_name,
                                                   std::chrono::seconds at_most) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(database_url.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw std::runtime_error("cannot reach the test PostgreSQL: " +
                             std::string(PQerrorMessage(conn.get())));
  const char* sql =
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
      " AND application_name = $1 AND pid <> pg_backend_pid()";
  const char* params[] = {application_name.c_str()};
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexecParams(conn.get(), sql, 1, nullptr, params, nullptr, nullptr, 0), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK)
    throw std::runtime_error(std::string(sql) + ": " + PQresultErrorMessage(res.get()));
  for (int row = 0; row < PQntuples(res.get()); ++row) {
    int pid = std::atoi(PQgetvalue(res.get(), row, 0));
    if (::kill(pid, SIGSTOP) != 0) {
      std::string why = std::strerror(errno);
      for (int stopped : pids_) ::kill(stopped, SIGCONT);
      throw std::runtime_error("cannot stop PostgreSQL process " + std::to_string(pid) + ": " +
                               why);
    }
    pids_.push_back(pid);
  }
  resumer_ = std::thread([this, at_most] {
    mutex_lock lock(mutex_);
    auto until = std::chrono::steady_clock::now() + at_most;
    while (!ended_ && ended_changed_.wait_until(mutex_, until)) {
    }
    for (int pid : pids_) ::kill(pid, SIGCONT);
  });
}

postgresql_backend_pause::~postgresql_backend_pause() {
  {
    mutex_lock lock(mutex_);
    ended_ = true;
  }
  ended_changed_.notify_all();
  resumer_.join();
}

bool control_postgresql(const std::string& action) {
  auto command = std::getenv("PARLEY_TEST_PG_CONTROL");
  if (!command || !*command) return false;
  return std::system((std::string(command) + " " + action + " >/dev/null").c_str()) == 0;
}

std::string on_replica(const std::string& database_url) {
  auto command = std::getenv("PARLEY_TEST_PG_CONTROL");
  auto server = postgresql_server();
  if (!command || !*command || database_url.rfind(server + "/", 0) != 0)
    throw std::runtime_error("no replica: PARLEY_TEST_PG_CONTROL is not set or " + database_url +
                             " is not on " + server);
  std::unique_ptr<FILE, decltype(&pclose)> out(
      popen((std::string(command) + " replica").c_str(), "r"), &pclose);
  if (!out) throw std::runtime_error("cannot run " + std::string(command));
  std::string replica;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, out.get())) replica += buffer;
  if (pclose(out.release()) != 0 || replica.empty())
    throw std::runtime_error("the replica did not start: " + replica);
  replica.erase(replica.find_last_not_of("\n") + 1);
  auto url = replica + database_url.substr(server.size());
  // The database was just created on the primary: there once the standby
  // has replayed that far. A paused replay (a test that stopped midway) goes on.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    try {
      query_postgresql(replica + "/postgres?connect_timeout=5", "SELECT pg_wal_replay_resume()");
      query_postgresql(url + "?connect_timeout=5", "SELECT 1");
      return url;
    } catch (const std::runtime_error&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

void query_postgresql(const std::string& url, const std::string& sql) {
  run_on_postgresql(url, sql, PGRES_TUPLES_OK);
}

}  // namespace parley::testing
