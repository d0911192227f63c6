#pragma once

// Internal to http/: includes RESTinio.

#include "actors/conversation_events.hpp"
#include "actors/engine.hpp"
#include "base/mutex.hpp"
#include "http/in_flight.hpp"
#include "http/request_parsing.hpp"
#include "http/user_limits.hpp"

#include <restinio/all.hpp>
#include <restinio/websocket/websocket.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace parley {

/// What a WebSocket session needs of the configuration.
struct ws_limits {
  std::uint64_t max_frame_bytes = 1048576;   ///< larger text frames close with 1009
  std::uint64_t max_queued_bytes = 1048576;  ///< a slower reader is closed with 1008
  std::chrono::milliseconds ping_interval{20000};
  /// streams.on_disconnect is "cancel": closing stops the replies the session asked for.
  bool cancel_on_disconnect = false;
};

/// One client's WebSocket on a conversation (`GET …/ws`). It watches the
/// conversation (every exchange's message, delta and done events) and sends
/// the client's messages to it; replies arrive through the watch.
///
/// Thread-safe: RESTinio's I/O thread hands in frames, the conversation actor
/// delivers events, the keep-alive ticker pings. Owned by the conversation
/// actor (as a watcher) and by RESTinio's message handler; close() releases
/// the WebSocket, which ends both.
class ws_session final : public conversation_subscriber,
                         public std::enable_shared_from_this<ws_session> {
 public:
  using clock = std::chrono::steady_clock;
  using status_code = restinio::websocket::basic::status_code_t;

  /// Each client message counts against `per_user` like an HTTP request,
  /// and is in flight (for the drain) until the engine answers it; once
  /// `draining`, client messages are refused with 503.
  ws_session(engine& eng, parse_limits parsing, ws_limits limits,
             std::shared_ptr<user_limits> per_user, std::string user_id,
             std::string conversation_id, std::string request_id, in_flight_counter in_flight,
             std::shared_ptr<const std::atomic<bool>> draining);
  ~ws_session() override;

  /// The WebSocket after the upgrade (not yet activated): starts reading it
  /// and sends the events delivered before. Returns false, leaving it
  /// inactive, when the session was closed meanwhile (the conversation was
  /// deleted): the caller then just drops it.
  bool attach(restinio::websocket::basic::ws_handle_t ws);

  /// A frame from the client (RESTinio's I/O thread).
  void on_frame(const restinio::websocket::basic::message_handle_t& frame);

  // conversation_subscriber overrides

  bool deliver(const conversation_event& e) override;

  /// Closes the WebSocket with 1012 (service restart): the server is going
  /// away, and the client should reconnect (to another instance).
  void close_for_restart();

  /// Pings the client; closes a client silent for two ping intervals.
  /// Returns false once the session has ended (the ticker then forgets it).
  bool keep_alive(clock::time_point now);

 private:
  /// A whole text message: refused when too big, else handled by on_text().
  void take_text(const std::string& message);
  void on_text(const std::string& payload);
  /// A `resume` frame: replays a run's events (see engine::resume).
  void resume(const nlohmann::json& frame);
  void send_json(const nlohmann::json& j) REQUIRES(mutex_);
  /// Queues a text frame (before attach(), until then).
  void send_text(std::string text) REQUIRES(mutex_);
  void send_error(const problem& p);
  /// Sends a close frame and lets go of the WebSocket; stops watching and
  /// calls off the generations its messages started.
  void close(status_code code, const std::string& reason) REQUIRES(mutex_);

  engine& engine_;
  const parse_limits parsing_;
  const ws_limits limits_;
  const std::shared_ptr<user_limits> per_user_;
  in_flight_counter in_flight_;
  const std::shared_ptr<const std::atomic<bool>> draining_;
  const std::string user_id_;
  const std::string conversation_id_;
  const std::string request_id_;
  // Recursive: on RESTinio's I/O thread a send can fail at once and hand a
  // close frame to on_frame() on the same thread, inside send_message().
  recursive_mutex mutex_;
  enum class phase { upgrading, open, closed };
  phase phase_ GUARDED_BY(mutex_) = phase::upgrading;
  std::vector<std::string> early_ GUARDED_BY(mutex_);              // frames before attach()
  restinio::websocket::basic::ws_handle_t ws_ GUARDED_BY(mutex_);  // set while open
  clock::time_point last_ping_ GUARDED_BY(mutex_);
  std::atomic<clock::rep> last_heard_;  ///< when the client last sent a frame
  // A fragmented message being put together; only on_frame (RESTinio's I/O
  // thread, one frame at a time) touches these.
  bool assembling_ = false;
  std::string fragments_;
  std::shared_ptr<std::atomic<std::uint64_t>> queued_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  /// Called off when the WebSocket closes: the generations its messages
  /// started that were to stop then (on_disconnect).
  std::shared_ptr<cancellation> cancel_ = std::make_shared<cancellation>();
};

}  // namespace parley
