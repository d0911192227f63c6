#include "support/server_process.hpp"

#include "support/child_process.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#ifndef PARLEY_BINARY_PATH
#error "PARLEY_BINARY_PATH must name the parley binary"
#endif

namespace parley::testing {

namespace fs = std::filesystem;

temp_dir::temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "parley-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string parley_binary() {
  if (auto env = std::getenv("PARLEY_BIN")) return env;
  return PARLEY_BINARY_PATH;
}

server_process::server_process(server_options options) : options_(std::move(options)) {
  database_url_ = options_.database_url;
  if (database_url_.empty()) {
    own_database_ = std::make_unique<scratch_database>(dir_.path());
    database_url_ = own_database_->url();
  }
  if (!options_.config_toml.empty()) {
    config_path_ = dir_.path() + "/parley.toml";
    std::ofstream(config_path_) << options_.config_toml;
  }
  launch();
}

server_process::~server_process() {
  if (pid_ > 0) stop();
}

void server_process::launch() {
  std::vector<std::string> args{parley_binary(), "serve", "--host",         "127.0.0.1",
                                "--port",        "0",     "--database-url", database_url_};
  if (!config_path_.empty()) {
    args.push_back("--config");
    args.push_back(config_path_);
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  auto out_path = dir_.path() + "/stdout.log";
  // A restart must not read the previous run's listening line.
  std::remove(out_path.c_str());
  pid_ = spawn(args, options_.env, dir_.path(), out_path, dir_.path() + "/stderr.log",
               options_.max_file_bytes);
  port_ = wait_for_port(pid_, out_path, "parley listening on http://127.0.0.1:", [this] {
    return "parley: " + log();
  });
}

std::string server_process::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

int server_process::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int code = wait_exit(pid_, std::chrono::seconds(15));
  pid_ = -1;
  return code;
}

void server_process::kill_hard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void server_process::restart() {
  if (pid_ > 0) stop();
  launch();
}

std::string server_process::log() const { return read_file(dir_.path() + "/stderr.log"); }

int run_parley(const std::vector<std::string>& args, std::string& out,
               const std::map<std::string, std::string>& env, const std::string& cwd) {
  temp_dir scratch;
  std::vector<std::string> argv{parley_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto path = scratch.path() + "/out.log";
  auto pid = spawn(argv, env, cwd.empty() ? scratch.path() : cwd, path, path);
  int code = wait_exit(pid, std::chrono::seconds(30));
  out = read_file(path);
  return code;
}

}  // namespace parley::testing
