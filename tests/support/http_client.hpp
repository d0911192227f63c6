#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
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

/// A libcurl CURLOPT_HEADERFUNCTION: adds each "Name: value" line to the
/// std::map<std::string, std::string> in `user` (names in lower case).
size_t collect_header(char* data, size_t size, size_t n, void* user);

/// A plain TCP connection to 127.0.0.1:`port`; the caller closes it.
/// `receive_buffer` > 0 sets SO_RCVBUF first (a small one makes a slow
/// reader). Throws on failure.
int raw_connect(std::uint16_t port, int receive_buffer = 0);

/// Connects to 127.0.0.1:`port` and sends a POST of JSON `body` as `user`
/// over a plain socket, as a client that controls its own reading would.
/// `receive_buffer` > 0 sets SO_RCVBUF first (a small one makes a slow
/// reader). Returns the socket; the caller closes it. Throws on failure.
int raw_post(std::uint16_t port, const std::string& path, const std::string& body,
             const std::string& user, int receive_buffer = 0);

/// Reads from `fd` until the peer closes, appending what came to `received`
/// when given; false when it is still open after `timeout`.
bool closed_within(int fd, std::chrono::milliseconds timeout, std::string* received = nullptr);

}  // namespace parley::testing
