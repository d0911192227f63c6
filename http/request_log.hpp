#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace parley {

/// One request as the operator sees it. When the last holder lets go (the
/// answer is sent, or the stream or WebSocket upgrade is over) it is counted
/// into the HTTP metrics (by method, route template and status) and written
/// as one JSON log line with request id, user, route, status and latency.
/// Never holds credentials; holds the body only when log.content allows it.
/// Status 0 means the connection ended with no answer (a WebSocket upgrade
/// that failed, a request still waiting at shutdown).
/// Filled in by the thread that accepted the request; answered() may be
/// called from any thread.
class request_record {
 public:
  request_record(std::string method, std::string route, std::string path, std::string request_id);
  ~request_record();
  request_record(const request_record&) = delete;
  request_record& operator=(const request_record&) = delete;

  void set_user(std::string user) { user_ = std::move(user); }
  /// The request body, logged as "body" (at most 8 KiB of it).
  void set_body(std::string_view body);
  /// The status of the answer sent; the first call stops the latency clock.
  void answered(int status);
  /// The status of an answer that goes on (a stream, an upgrade), unless a
  /// later answered() says otherwise; the clock runs on until the end.
  void set_status(int status) { status_.store(status); }

 private:
  using clock = std::chrono::steady_clock;
  std::string method_, route_, path_, request_id_, user_;
  std::optional<std::string> body_;
  bool body_truncated_ = false;
  clock::time_point started_ = clock::now();
  std::atomic<int> status_{0};
  std::atomic<clock::rep> answered_after_{-1};  ///< ticks since started_, -1 until answered
};

}  // namespace parley
