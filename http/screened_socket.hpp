#pragma once

// Internal to http/: includes Asio.

#include "http/inbound_screen.hpp"

#include <restinio/asio_include.hpp>
#include <restinio/tls_fwd.hpp>

#include <memory>
#include <optional>
#include <string>

namespace parley {

/// RESTinio's stream socket (the server traits' stream_socket_t): a TCP
/// socket whose every read passes through an inbound_screen before RESTinio
/// parses it. What the screen refuses never reaches RESTinio: the client gets
/// the refusal's answer (an HTTP problem or a WebSocket close frame), then
/// RESTinio's read ends as if the client had hung up, and RESTinio closes the
/// connection. This is how Parley answers requests RESTinio 0.6 would drop
/// unanswered, and refuses WebSocket frames whose announced size RESTinio
/// would allocate unchecked, without changing RESTinio.
///
/// An answer is written beside RESTinio's own writes: a response RESTinio is
/// writing at that moment (to an earlier pipelined request, or a WebSocket
/// frame) can be cut by it. Only a client already refused sees that.
class screened_socket {
 public:
  using executor_type = asio::ip::tcp::socket::executor_type;

  /// The limits of the sockets made from now on. RESTinio makes its sockets
  /// from an io_context alone, so they are set for the process, once, before
  /// the server starts.
  static void set_limits(const inbound_limits& limits);

  explicit screened_socket(asio::io_context& io);
  screened_socket(screened_socket&& other) noexcept;
  screened_socket& operator=(screened_socket&& other) noexcept;
  ~screened_socket();

  // The interface RESTinio's connections use (as of restinio/impl/tls_socket.hpp).

  asio::ip::tcp::socket& lowest_layer() { return state_->socket; }
  const asio::ip::tcp::socket& lowest_layer() const { return state_->socket; }
  executor_type get_executor() { return state_->socket.get_executor(); }
  auto remote_endpoint() const { return state_->socket.remote_endpoint(); }
  bool is_open() const { return state_->socket.is_open(); }

  template <class... Args>
  void cancel(Args&&... args) {
    state_->socket.cancel(std::forward<Args>(args)...);
  }
  template <class... Args>
  void shutdown(Args&&... args) {
    state_->socket.shutdown(std::forward<Args>(args)...);
  }
  template <class... Args>
  void close(Args&&... args) {
    state_->socket.close(std::forward<Args>(args)...);
  }
  template <class... Args>
  auto async_write_some(Args&&... args) {
    return state_->socket.async_write_some(std::forward<Args>(args)...);
  }

  /// Reads as the TCP socket does; the bytes are screened before `handler`
  /// sees them, and a refusal reaches it as end of stream once answered.
  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    // The state stays where it is while the socket moves (RESTinio moves it
    // into its WebSocket connection, never while a read is pending).
    auto* s = state_.get();
    auto executor = asio::get_associated_executor(handler, s->socket.get_executor());
    s->socket.async_read_some(
        buffers,
        asio::bind_executor(
            executor, [s, buffers, executor, handler = std::forward<Handler>(handler)](
                          const asio::error_code& ec, std::size_t size) mutable {
              std::optional<inbound_refusal> refused;
              if (!ec) refused = screen(*s, buffers, size);
              if (!refused) {
                handler(ec, size);
                return;
              }
              asio::async_write(
                  s->socket, asio::buffer(prepare_answer(*s, *refused)),
                  asio::bind_executor(executor, [handler = std::move(handler)](
                                                    const asio::error_code&, std::size_t) mutable {
                    handler(asio::error::make_error_code(asio::error::eof), 0);
                  }));
            }));
  }

 private:
  struct state {
    explicit state(asio::io_context& io);
    asio::ip::tcp::socket socket;
    inbound_screen screen;
    std::string answer;  ///< a refusal's bytes while they are written
  };

  template <class MutableBuffers>
  static std::optional<inbound_refusal> screen(state& s, const MutableBuffers& buffers,
                                               std::size_t size) {
    std::optional<inbound_refusal> refused;
    for (auto it = asio::buffer_sequence_begin(buffers);
         size > 0 && !refused && it != asio::buffer_sequence_end(buffers); ++it) {
      asio::const_buffer b(*it);
      auto part = std::min(size, b.size());
      refused = s.screen.take(static_cast<const char*>(b.data()), part);
      size -= part;
    }
    return refused;
  }

  /// Logs and counts the refusal; returns the bytes to answer it with.
  static const std::string& prepare_answer(state& s, const inbound_refusal& r);

  asio::io_context* io_;
  std::unique_ptr<state> state_;
};

// RESTinio's per-socket-type hooks, found by argument-dependent lookup: a
// plain connection starts reading at once (a TLS one shakes hands first) and
// tells its state listener it has no TLS socket.

template <class Connection, class Start_Read_CB, class Failed_CB>
void prepare_connection_and_start_read(screened_socket&, Connection&, Start_Read_CB start_read,
                                       Failed_CB) {
  start_read();
}

inline restinio::tls_socket_t* make_tls_socket_pointer_for_state_listener(
    screened_socket&) noexcept {
  return nullptr;
}

}  // namespace parley
