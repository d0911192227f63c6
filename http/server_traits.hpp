#pragma once

// Internal to http/: includes RESTinio. How RESTinio is set up for Parley:
// the router, the socket that screens what comes in, and the listener that
// tells the connection watch about closed connections.

#include "http/connection_watch.hpp"
#include "http/route_regex_engine.hpp"
#include "http/screened_socket.hpp"
#include "telemetry/metrics.hpp"

#include <restinio/all.hpp>

namespace parley {

// PCRE2 matches routes several times faster than std::regex.
using router_t = restinio::router::express_router_t<route_regex_engine>;
using route_params = restinio::router::route_params_t;

/// Tells the connection watch when a client connection closes, and keeps
/// count of the HTTP connections open (an upgraded one is a WebSocket then).
struct closed_connection_listener {
  explicit closed_connection_listener(std::shared_ptr<connection_watch> w) : watch(std::move(w)) {}
  std::shared_ptr<connection_watch> watch;
  metrics::gauge& open = metrics::default_registry().gauge_named(
      "parley_http_open_connections", "HTTP connections open now (WebSockets not counted).");
  metrics::counter& accepted = metrics::default_registry().counter_named(
      "parley_http_connections_accepted_total", "HTTP connections accepted.");

  void state_changed(const restinio::connection_state::notice_t& notice) noexcept {
    namespace state = restinio::connection_state;
    if (std::holds_alternative<state::accepted_t>(notice.cause())) {
      accepted.add();
      open.add(1);
    } else if (std::holds_alternative<state::closed_t>(notice.cause())) {
      open.add(-1);
      watch->closed(notice.connection_id());
    } else if (std::holds_alternative<state::upgraded_to_websocket_t>(notice.cause())) {
      open.add(-1);
    }
  }
};

/// An io_context whose pending handlers can be dropped while the server still
/// exists. RESTinio 0.6.16 keeps its connection limiter in the acceptor; a
/// keep-alive connection that ~io_context destroys after the server has gone
/// would write to the freed limiter (AddressSanitizer caught it).
class server_io_context : public asio::io_context {
 public:
  using asio::io_context::shutdown;  // protected in asio::execution_context
};

struct server_traits : restinio::default_traits_t {
  using request_handler_t = router_t;
  using connection_state_listener_t = closed_connection_listener;
  using stream_socket_t = screened_socket;
  static constexpr bool use_connection_count_limiter = true;
};

}  // namespace parley
