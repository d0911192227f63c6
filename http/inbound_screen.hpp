#pragma once

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace parley {

/// What a connection may bring in. The HTTP limits must be the server's own
/// RESTinio parser limits (incoming_http_msg_limits), so that whatever the
/// screen lets through RESTinio accepts as well; like RESTinio's, they are
/// unlimited unless set.
struct inbound_limits {
  static constexpr std::uint64_t unlimited = ~std::uint64_t{0};
  std::uint64_t max_url_bytes = unlimited;
  std::uint64_t max_field_name_bytes = unlimited;
  std::uint64_t max_field_value_bytes = unlimited;
  std::uint64_t max_field_count = unlimited;
  std::uint64_t max_body_bytes = unlimited;
  /// The one route whose POSTs may carry a larger body (the import), by its
  /// path, and that body's limit.
  std::string large_body_path;
  std::uint64_t max_large_body_bytes = unlimited;
  /// A WebSocket frame announcing a longer payload is refused (close 1009).
  std::uint64_t max_frame_bytes = unlimited;
};

/// Why a connection is ended, and the answer the client gets first.
struct inbound_refusal {
  bool websocket = false;  ///< a close frame, not an HTTP response
  int code = 400;          ///< the HTTP status, or the WebSocket close code
  std::string detail;
};

/// Reads a client connection's bytes in the order they arrive, alongside
/// RESTinio's parser and with the same http_parser, and spots what RESTinio
/// 0.6 would either drop without a word (a malformed request line, header or
/// chunk size, a Content-Length that is not a number, a request past its
/// parser limits) or allocate for unchecked (a WebSocket frame header
/// announcing gigabytes): these get an answer and the connection ends before
/// RESTinio sees them. Once the connection is upgraded it follows the
/// WebSocket frames. Holds no more than a frame header of the input.
///
/// Not thread-safe: one connection's reads come one at a time.
class inbound_screen {
 public:
  explicit inbound_screen(const inbound_limits& limits);
  inbound_screen(const inbound_screen&) = delete;
  inbound_screen& operator=(const inbound_screen&) = delete;

  /// The next bytes the client sent. A refusal means they must not be passed
  /// on, but for the first passable() of them; once refused, every later
  /// call refuses as well.
  std::optional<inbound_refusal> take(const char* data, std::size_t size);

  /// After a refusal: how many of the last bytes taken hold whole requests
  /// (or frames) before the refused one, which RESTinio may still handle.
  std::size_t passable() const { return passable_; }

  /// True after an upgrade request: RESTinio reads nothing more until it
  /// has answered it, and then either upgrades or goes on with HTTP.
  bool upgrade_requested() const { return upgrade_requested_; }

  /// The connection was upgraded: from now on the bytes are WebSocket frames.
  void follow_frames();

  /// True once the connection follows WebSocket frames.
  bool is_websocket() const { return websocket_; }

 private:
  void start_message();
  /// The body limit of the current request (its request line has been read).
  std::uint64_t body_limit() const;
  std::optional<inbound_refusal> take_http(const char* data, std::size_t size);
  std::optional<inbound_refusal> take_frames(const char* data, std::size_t size);
  void refuse(int code, std::string detail);

  // http_parser callbacks; `data` points at the screen.
  static int on_url(http_parser* p, const char* at, std::size_t n);
  static int on_header_field(http_parser* p, const char* at, std::size_t n);
  static int on_header_value(http_parser* p, const char* at, std::size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t n);
  static int on_chunk_header(http_parser* p);
  static int on_message_complete(http_parser* p);

  const inbound_limits limits_;
  http_parser parser_;
  http_parser_settings callbacks_;
  std::optional<inbound_refusal> refused_;
  std::size_t passable_ = 0;
  bool upgrade_requested_ = false;
  bool websocket_ = false;

  // The current request, counted as RESTinio counts it.
  std::uint64_t url_bytes_ = 0;
  std::uint64_t field_name_bytes_ = 0;
  std::uint64_t field_value_bytes_ = 0;
  std::uint64_t field_count_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::string path_head_;  ///< the request target's start, as far as body_limit() needs it
  bool last_was_value_ = true;
  bool message_complete_ = false;

  // The current WebSocket frame: its header as far as it came, then how much
  // of its payload is still to pass.
  unsigned char frame_header_[14] = {};
  std::size_t frame_header_size_ = 0;
  std::uint64_t payload_left_ = 0;
};

/// The bytes a refusal sends: an HTTP problem+json response that closes the
/// connection, or a WebSocket close frame.
std::string render_refusal(const inbound_refusal& r, const std::string& request_id);

}  // namespace parley
