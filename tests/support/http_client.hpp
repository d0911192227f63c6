#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace parley::testing {

struct http_response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  ///< names in lower case

  /// The body as JSON (a discarded value when it is not JSON).
  nlohmann::json json() const;
  /// A header's value, or "" when absent.
  std::string header(const std::string& lower_case_name) const;
};

/// A blocking libcurl client for one server. Not thread-safe: one per thread.
class http_client {
 public:
  explicit http_client(std::string base_url, std::string user_id = "");
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Any request. `headers` are "Name: value" lines; X-User-Id is added when
  /// the client has a user and `headers` has none.
  http_response request(const std::string& method, const std::string& path,
                        const std::string& body = "", std::vector<std::string> headers = {});

  http_response get(const std::string& path, std::vector<std::string> headers = {});
  http_response del(const std::string& path, std::vector<std::string> headers = {});
  http_response post(const std::string& path, const nlohmann::json& body,
                     std::vector<std::string> headers = {});
  http_response patch(const std::string& path, const nlohmann::json& body,
                      std::vector<std::string> headers = {});

 private:
  std::string base_url_;
  std::string user_id_;
  void* curl_;
};

}  // namespace parley::testing
