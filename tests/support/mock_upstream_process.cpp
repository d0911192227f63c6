#include "support/mock_upstream_process.hpp"

#include "support/child_process.hpp"
#include "support/http_client.hpp"

#include <csignal>
#include <stdexcept>

#ifndef PARLEY_MOCK_UPSTREAM_PATH
#error "PARLEY_MOCK_UPSTREAM_PATH must name the mock upstream binary"
#endif

namespace parley::testing {

std::string mock_upstream_binary() { return PARLEY_MOCK_UPSTREAM_PATH; }

mock_upstream::mock_upstream(std::vector<std::string> args) {
  args.insert(args.begin(), {mock_upstream_binary(), "--host", "127.0.0.1", "--port", "0"});
  auto out = dir_.path() + "/stdout.log";
  auto err = dir_.path() + "/stderr.log";
  pid_ = spawn(args, {}, dir_.path(), out, err);
  port_ = wait_for_port(pid_, out, "mock upstream listening on http://127.0.0.1:", [err] {
    return "mock upstream: " + read_file(err);
  });
}

mock_upstream::~mock_upstream() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  wait_exit(pid_, std::chrono::seconds(10));
}

std::string mock_upstream::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

namespace {

http_response checked(http_response r, const char* what) {
  if (r.status < 200 || r.status >= 300)
    throw std::runtime_error(std::string("mock upstream: ") + what + " answered " +
                             std::to_string(r.status) + ": " + r.body);
  return r;
}

}  // namespace

void mock_upstream::push_behaviors(const nlohmann::json& behaviors) {
  http_client c(base_url());
  checked(c.post("/_mock/behaviors", behaviors), "POST /_mock/behaviors");
}

void mock_upstream::clear_behaviors() {
  http_client c(base_url());
  checked(c.del("/_mock/behaviors"), "DELETE /_mock/behaviors");
}

nlohmann::json mock_upstream::requests() {
  http_client c(base_url());
  return checked(c.get("/_mock/requests"), "GET /_mock/requests").json();
}

void mock_upstream::clear_requests() {
  http_client c(base_url());
  checked(c.del("/_mock/requests"), "DELETE /_mock/requests");
}

nlohmann::json mock_upstream::stats() {
  http_client c(base_url());
  return checked(c.get("/_mock/stats"), "GET /_mock/stats").json();
}

}  // namespace parley::testing
