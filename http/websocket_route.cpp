#include "http/http_api.hpp"

#include "http/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <restinio/websocket/websocket.hpp>

namespace parley {

namespace {

/// Sec-WebSocket-Accept for the request's key (RFC 6455 §4.2.2), as RESTinio
/// computes it when no subprotocol is answered.
std::string websocket_accept(const restinio::request_t& req) {
  namespace utils = restinio::utils;
  auto key = req.header().get_field(restinio::http_field::sec_websocket_key) +
             "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  return utils::base64::encode(utils::sha1::to_string(utils::sha1::make_digest(key)));
}

}  // namespace

void http_api::open_websocket(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto upgrade = c.req->header().opt_value_of(restinio::http_field::upgrade);
  bool is_upgrade = c.req->header().connection() == restinio::http_connection_header_t::upgrade;
  if (!is_upgrade || !upgrade || !equals_ignoring_case(*upgrade, "websocket") ||
      !c.req->header().has_field(restinio::http_field::sec_websocket_key)) {
    auto p = make_problem(426, "this route is a WebSocket: send an Upgrade: websocket request");
    p.headers.emplace_back("Upgrade", "websocket");
    send_problem(c, p);
    return;
  }
  ws_limits limits;
  limits.max_frame_bytes = cfg_.server.max_body_bytes;
  limits.max_queued_bytes = cfg_.server.stream_queue_bytes;
  limits.ping_interval = std::chrono::milliseconds(cfg_.server.ws_ping_interval_ms);
  limits.cancel_on_disconnect = cfg_.streams.on_disconnect == "cancel";
  auto session = std::make_shared<ws_session>(engine_, limits_, limits, per_user_, c.user_id, *id,
                                              c.request_id, in_flight_, refusing_messages_);
  auto self = shared_from_this();
  engine_.watch(
      c.user_id, *id, session, tracked<done>([self, c, id = *id, session](outcome<done> r) {
        if (!r) {
          send_problem(c, to_problem(r.error()));
          return;
        }
        namespace rws = restinio::websocket::basic;
        try {
          auto on_frame = [session](rws::ws_handle_t, rws::message_handle_t frame) {
            session->on_frame(frame);
          };
          // A browser that offered subprotocols (its credentials among them)
          // refuses an upgrade that accepts none.
          auto offered = c.req->header().opt_value_of(restinio::http_field::sec_websocket_protocol);
          auto ws = offered && offers_parley_protocol(*offered)
                        ? rws::upgrade<server_traits>(*c.req, rws::activation_t::delayed,
                                                      websocket_accept(*c.req),
                                                      std::string(websocket_protocol), on_frame)
                        : rws::upgrade<server_traits>(*c.req, rws::activation_t::delayed, on_frame);
          // Closed meanwhile (the conversation was deleted): dropping it
          // unread ends the connection.
          if (!session->attach(ws)) return;
          c.record->set_status(101);
        } catch (const std::exception& e) {
          spdlog::warn("WebSocket upgrade of conversation {} failed: {}", id, e.what());
          self->engine_.unwatch(id, session);
          return;
        }
        self->ticker_->add(
            [weak = std::weak_ptr<ws_session>(session), restarting = self->restarting_](auto now) {
              auto s = weak.lock();
              if (s && restarting->load()) {
                s->close_for_restart();
                return false;
              }
              return s && s->keep_alive(now);
            });
      }));
}

}  // namespace parley
