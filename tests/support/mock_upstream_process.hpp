#pragma once

#include "support/server_process.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace parley::testing {

/// The mock upstream (tests/mock_upstream) as a child process on an ephemeral
/// port, and its control API. See mock_upstream.cpp for the behaviors.
class mock_upstream {
 public:
  /// Starts it (extra command-line `args`, e.g. {"--ttft-ms", "500"}) and
  /// waits for its listening line. Throws std::runtime_error when it fails.
  explicit mock_upstream(std::vector<std::string> args = {});
  /// SIGTERM, then SIGKILL if it does not exit.
  ~mock_upstream();
  mock_upstream(const mock_upstream&) = delete;
  mock_upstream& operator=(const mock_upstream&) = delete;

  /// http://127.0.0.1:PORT, the base URL of an `anthropic` provider.
  std::string base_url() const;
  /// base_url() + "/v1", the base URL of an `openai` provider.
  std::string openai_base_url() const { return base_url() + "/v1"; }

  /// Queues behaviors: each completion request takes the next one.
  void push_behaviors(const nlohmann::json& behaviors);
  void clear_behaviors();
  /// Every completion request received: {"path", "headers", "body"}.
  nlohmann::json requests();
  void clear_requests();
  /// {"requests", "in_flight", "abandoned"}.
  nlohmann::json stats();

 private:
  temp_dir dir_;
  int pid_ = -1;
  std::uint16_t port_ = 0;
};

/// The path of the mock upstream binary.
std::string mock_upstream_binary();

}  // namespace parley::testing
