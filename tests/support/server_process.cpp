#include "support/server_process.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

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

namespace {

pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const std::string& cwd, const std::string& stdout_path, const std::string& stderr_path,
            std::uint64_t max_file_bytes = 0) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, 1);
    dup2(err, 2);
    for (auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (max_file_bytes) {
      // Writes past the limit fail with EFBIG, as on a full disk (instead of
      // the default SIGXFSZ, which would kill the process).
      signal(SIGXFSZ, SIG_IGN);
      rlimit limit{max_file_bytes, max_file_bytes};
      setrlimit(RLIMIT_FSIZE, &limit);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

int wait_exit(pid_t pid, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return -1;
}

}  // namespace

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
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  const std::string marker = "parley listening on http://127.0.0.1:";
  while (std::chrono::steady_clock::now() < deadline) {
    auto out = read_file(out_path);
    if (auto at = out.find(marker); at != std::string::npos) {
      auto end = out.find('\n', at);
      if (end != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(out.substr(at + marker.size())));
        return;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("parley exited during start-up: " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  throw std::runtime_error("parley did not start listening in time: " + log());
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
