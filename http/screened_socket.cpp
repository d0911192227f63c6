#include "http/screened_socket.hpp"

#include "base/uuid.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

namespace parley {

namespace {

// Written once by set_limits() before the server makes any socket.
inbound_limits the_limits;

metrics::family<metrics::counter>& refusals() {
  static auto& f = metrics::default_registry().counters(
      "parley_http_refused_connections_total",
      "Connections ended by the inbound screen, by what they were answered with: an HTTP "
      "status, or a WebSocket close code.",
      {"protocol", "code"});
  return f;
}

}  // namespace

void screened_socket::set_limits(const inbound_limits& limits) { the_limits = limits; }

screened_socket::state::state(asio::io_context& io) : socket(io), screen(the_limits) {}

screened_socket::screened_socket(asio::io_context& io)
    : io_(&io), state_(std::make_unique<state>(io)) {}

// RESTinio moves a socket out of its accept slot and accepts the next
// connection on the slot again, so a moved-from socket is a fresh one. It
// moves a connection's socket only to upgrade it: a socket that carried an
// upgrade request and moves is a WebSocket from then on.
screened_socket::screened_socket(screened_socket&& other)
    : io_(other.io_), state_(std::move(other.state_)) {
  other.state_ = std::make_unique<state>(*io_);
  if (state_->screen.upgrade_requested()) state_->screen.follow_frames();
}

screened_socket& screened_socket::operator=(screened_socket&& other) {
  if (this != &other) {
    io_ = other.io_;
    state_ = std::move(other.state_);
    other.state_ = std::make_unique<state>(*io_);
    if (state_->screen.upgrade_requested()) state_->screen.follow_frames();
  }
  return *this;
}

screened_socket::~screened_socket() = default;

const std::string& screened_socket::prepare_answer(state& s, const inbound_refusal& r) {
  auto request_id = make_uuid_v7();
  // At most one line a second: a hostile client must not flood the log (the
  // counter below counts every refusal).
  static std::atomic<std::int64_t> last_logged_s{0};
  static std::atomic<std::uint64_t> unlogged{0};
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
                   .count();
  auto last = last_logged_s.load();
  if (now_s != last && last_logged_s.compare_exchange_strong(last, now_s)) {
    std::error_code ignored;
    auto peer = s.socket.remote_endpoint(ignored);
    spdlog::warn("refused {} from {}:{} with {}: {} (request {}; {} more refused unlogged)",
                 r.websocket ? "a WebSocket frame" : "a request", peer.address().to_string(),
                 peer.port(), r.code, r.detail, request_id, unlogged.exchange(0));
  } else {
    unlogged.fetch_add(1);
  }
  refusals().with({r.websocket ? "websocket" : "http", std::to_string(r.code)}).add();
  s.answer = render_refusal(r, request_id);
  return s.answer;
}

}  // namespace parley
