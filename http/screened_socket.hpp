#pragma once

// Internal to http/: includes Asio.

#include "http/inbound_screen.hpp"

#include <restinio/asio_include.hpp>
#include <restinio/tls_fwd.hpp>

#include <algorithm>
#include <array>
#include <chrono>
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
/// Whole requests that came before the refused bytes still go to RESTinio,
/// and the refusal is answered at its next read. That answer is written
/// beside RESTinio's own writes, though: an answer to an earlier pipelined
/// request that RESTinio has not written yet comes after it, or not at all,
/// and one it is writing can be cut. Only a client that pipelines garbage
/// behind its requests sees that.
class screened_socket {
 public:
  using executor_type = asio::ip::tcp::socket::executor_type;

  /// The limits of the sockets made from now on. RESTinio makes its sockets
  /// from an io_context alone, so they are set for the process, once, before
  /// the server starts.
  static void set_limits(const inbound_limits& limits);

  explicit screened_socket(asio::io_context& io);
  screened_socket(screened_socket&& other);
  screened_socket& operator=(screened_socket&& other);
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
  /// Whole requests (or frames) that came before the refused one in the same
  /// read are handed on first, and the refusal answered at the next read.
  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    // The state stays where it is while the socket moves (RESTinio moves it
    // into its WebSocket connection, never while a read is pending).
    auto* s = state_.get();
    auto executor = asio::get_associated_executor(handler, s->socket.get_executor());
    if (s->deferred) {
      auto refusal = std::move(*s->deferred);
      s->deferred.reset();
      answer_and_end(s, refusal, executor, std::forward<Handler>(handler));
      return;
    }
    s->socket.async_read_some(
        buffers, asio::bind_executor(
                     executor, [s, buffers, executor, handler = std::forward<Handler>(handler)](
                                   const asio::error_code& ec, std::size_t size) mutable {
                       std::optional<inbound_refusal> refused;
                       std::size_t passable = 0;
                       if (!ec) refused = screen(*s, buffers, size, passable);
                       if (!refused) {
                         handler(ec, size);
                       } else if (passable > 0) {
                         s->deferred = std::move(refused);
                         handler(ec, passable);
                       } else {
                         answer_and_end(s, *refused, executor, std::move(handler));
                       }
                     }));
  }

 private:
  struct state {
    explicit state(asio::io_context& io);
    asio::ip::tcp::socket socket;
    inbound_screen screen;
    std::string answer;  ///< a refusal's bytes while they are written
    /// Refused after bytes that went on to RESTinio: answered at its next read.
    std::optional<inbound_refusal> deferred;
  };

  /// How long, and how much, a refused client's further input is read and
  /// dropped before the connection ends (see linger()).
  static constexpr auto linger_time = std::chrono::seconds(1);
  static constexpr std::size_t linger_bytes = 65536;

  /// The screen's verdict on the first `size` bytes of `buffers`; on a
  /// refusal, `passable` says how many of them may still go on.
  template <class MutableBuffers>
  static std::optional<inbound_refusal> screen(state& s, const MutableBuffers& buffers,
                                               std::size_t size, std::size_t& passable) {
    std::size_t before = 0;
    for (auto it = asio::buffer_sequence_begin(buffers);
         size > 0 && it != asio::buffer_sequence_end(buffers); ++it) {
      asio::const_buffer b(*it);
      auto part = std::min(size, b.size());
      if (auto refused = s.screen.take(static_cast<const char*>(b.data()), part)) {
        passable = before + s.screen.passable();
        return refused;
      }
      before += part;
      size -= part;
    }
    return std::nullopt;
  }

  /// Writes the refusal's answer, lingers, then tells `handler` the stream ended.
  template <class Executor, class Handler>
  static void answer_and_end(state* s, const inbound_refusal& r, const Executor& executor,
                             Handler&& handler) {
    asio::async_write(
        s->socket, asio::buffer(prepare_answer(*s, r)),
        asio::bind_executor(executor, [s, executor, handler = std::move(handler)](
                                          const asio::error_code& ec, std::size_t) mutable {
          if (ec)
            handler(asio::error::make_error_code(asio::error::eof), 0);
          else
            linger(s, executor, std::move(handler));
        }));
  }

  /// Reads and drops what the client still sends, for linger_time or
  /// linger_bytes, before the end: closing a socket with unread input resets
  /// the connection, and a reset can destroy the answer before the client
  /// has read it (a client still sending a body it announced, for one).
  template <class Executor, class Handler>
  static void linger(state* s, const Executor& executor, Handler&& handler) {
    asio::error_code ignored;
    s->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    auto drain = std::make_shared<draining>(s->socket.get_executor());
    drain->timer.expires_after(linger_time);
    drain->timer.async_wait(asio::bind_executor(executor, [s, drain](const asio::error_code& ec) {
      asio::error_code ignored;
      if (!ec && !drain->done) s->socket.cancel(ignored);
    }));
    drain_step<Executor, std::decay_t<Handler>>{s, executor, std::move(handler), drain}({}, 0);
  }

  /// What a lingering close keeps between its reads.
  struct draining {
    explicit draining(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::array<char, 4096> scratch;
    std::size_t dropped = 0;
    bool done = false;  ///< the handler was told: the timer must not touch the socket
  };

  template <class Executor, class Handler>
  struct drain_step {
    state* s;
    Executor executor;
    Handler handler;
    std::shared_ptr<draining> drain;

    void operator()(const asio::error_code& ec, std::size_t size) {
      drain->dropped += size;
      if (!ec && drain->dropped < linger_bytes) {
        auto& socket = s->socket;
        auto buffer = asio::buffer(drain->scratch);
        auto ex = executor;
        socket.async_read_some(buffer, asio::bind_executor(ex, std::move(*this)));
        return;
      }
      drain->done = true;
      drain->timer.cancel();
      handler(asio::error::make_error_code(asio::error::eof), 0);
    }
  };

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
