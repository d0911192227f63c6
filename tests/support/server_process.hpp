#pragma once

#include "support/scratch_database.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace parley::testing {

/// A fresh directory under $TMPDIR, removed with the object.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct server_options {
  /// Empty: a scratch_database of the server's own (SQLite, or PostgreSQL
  /// on the PostgreSQL run), removed with the server.
  std::string database_url;
  /// Written to a file and passed with --config when not empty.
  std::string config_toml;
  std::map<std::string, std::string> env;
  std::vector<std::string> extra_args;
  /// When not 0, no file the server writes may grow past this size (a full
  /// disk, as far as a SQLite database is concerned).
  std::uint64_t max_file_bytes = 0;
};

/// The real `parley serve` binary as a child process on an ephemeral port.
class server_process {
 public:
  /// Starts the server and waits (up to 15 s) for its listening line.
  /// Throws std::runtime_error when it does not come up.
  explicit server_process(server_options options = {});
  /// Stops the server with SIGTERM (SIGKILL if it does not exit in 15 s).
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  std::string base_url() const;
  std::uint16_t port() const { return port_; }
  const std::string& database_url() const { return database_url_; }
  const std::string& work_dir() const { return dir_.path(); }
  /// The server's process id (its memory can be read from /proc).
  int pid() const { return pid_; }

  /// SIGTERM, then waits; returns the exit code (-1 if killed by a signal).
  int stop();
  /// SIGKILL, as a crash would.
  void kill_hard();
  /// Starts the same server again (same database, config and environment).
  void restart();
  /// What the server wrote to stderr so far.
  std::string log() const;

 private:
  void launch();

  temp_dir dir_;
  std::unique_ptr<scratch_database> own_database_;
  server_options options_;
  std::string database_url_;
  std::string config_path_;
  int pid_ = -1;
  std::uint16_t port_ = 0;
};

/// The path of the parley binary under test.
std::string parley_binary();

/// Runs `parley ARGS…` to completion; returns its exit code, output in `out`.
int run_parley(const std::vector<std::string>& args, std::string& out,
               const std::map<std::string, std::string>& env = {}, const std::string& cwd = "");

}  // namespace parley::testing
