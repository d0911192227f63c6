#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

/// One HTTP POST to a provider.
struct upstream_request {
  using clock = std::chrono::steady_clock;
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  std::string body;
  /// Not sent before this (a retry's backoff).
  clock::time_point start_at = clock::time_point::min();
  /// The exchange is given up (timed_out) at this point, queued or not.
  clock::time_point deadline = clock::time_point::max();
  /// Longest wait from sending the request to the start of the answer (its
  /// status line) before the exchange is given up (timed_out); zero for none.
  std::chrono::milliseconds first_byte_timeout{0};
  /// Longest silence between body bytes once the answer has begun (stalled);
  /// zero for none.
  std::chrono::milliseconds stall_timeout{0};
};

/// How an exchange ended.
enum class upstream_ending {
  complete,        ///< a whole response arrived (any status)
  connect_failed,  ///< no connection: refused, unresolvable, connect timeout
  broken,          ///< the connection failed or closed mid-way
  timed_out,       ///< the deadline passed
  stalled,         ///< the answer began, then went silent past stall_timeout
  refused,         ///< cannot work as configured (bad URL, TLS verification)
  cancelled,
};

struct upstream_result {
  upstream_ending ending = upstream_ending::complete;
  std::string error;  ///< libcurl's explanation when not complete
};

/// Where an exchange reports. All three run on the client's I/O thread, one at
/// a time, in order; they must not block. They may call start() or cancel().
struct upstream_handlers {
  /// The status line and headers are in (final responses only, not 1xx).
  std::function<void(long status, std::optional<unsigned> retry_after_s)> on_response;
  /// The next piece of the body; return false to abort the exchange (broken).
  std::function<bool(std::string_view)> on_body;
  /// Exactly once, last.
  std::function<void(const upstream_result&)> on_end;
};

/// An HTTP client for one provider on libcurl's multi interface: one I/O
/// thread drives every exchange, so no caller ever blocks. Connections are
/// kept alive and reused; TLS verifies against the system's CA store; at most
/// `max_in_flight` exchanges run at once and the rest wait their turn.
/// start() and cancel() are thread-safe.
class upstream_client {
 public:
  struct options {
    unsigned max_in_flight = 1024;
    std::chrono::milliseconds connect_timeout{5000};
  };

  explicit upstream_client(options opts);
  /// Cancels every exchange still running (each gets on_end) and stops the thread.
  ~upstream_client();
  upstream_client(const upstream_client&) = delete;
  upstream_client& operator=(const upstream_client&) = delete;

  /// Queues an exchange; returns its id for cancel().
  std::uint64_t start(upstream_request request, upstream_handlers handlers);
  /// Ends the exchange at once (on_end with cancelled) and closes its
  /// connection if a response was under way. Unknown or ended ids are ignored.
  void cancel(std::uint64_t id);

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace parley
