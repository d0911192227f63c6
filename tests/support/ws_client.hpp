#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace parley::testing {

/// How the server closed a WebSocket.
struct ws_close {
  int code = 0;
  std::string reason;
};

/// A blocking WebSocket client (Boost.Beast) for one connection. Control
/// frames are answered only while it reads: a client that never reads never
/// answers the server's pings. Not thread-safe.
class ws_client {
 public:
  /// Connects to 127.0.0.1:`port` and upgrades `path`, offering the
  /// subprotocols `protocols` (Sec-WebSocket-Protocol) when not empty. Throws
  /// std::runtime_error when the upgrade is refused (see upgrade_status()).
  ws_client(std::uint16_t port, const std::string& path, const std::string& user_id = "",
            const std::string& protocols = "");
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  /// The subprotocol the server accepted ("" for none).
  const std::string& accepted_protocol() const;

  void send_json(const nlohmann::json& j);
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  /// Sends a ping (the answering pong is taken by a later read).
  void ping();

  /// The next text frame as JSON (discarded if not JSON). Throws
  /// std::runtime_error on timeout or when the server closes.
  nlohmann::json read_json(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  /// Reads (and drops) frames until the server closes; its close frame.
  /// Throws std::runtime_error on timeout.
  ws_close read_until_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The HTTP status the server answers an upgrade of `path` (offering the
/// subprotocols `protocols`, sent from the page of `origin` when not empty)
/// with (101 when it accepts), and its body in `body`.
long upgrade_status(std::uint16_t port, const std::string& path, const std::string& user_id,
                    std::string* body = nullptr, const std::string& protocols = "",
                    const std::string& origin = "");

}  // namespace parley::testing
