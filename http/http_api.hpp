#pragma once

// Internal to http/: includes RESTinio. The API as RESTinio sees it: the route
// table and the prelude every request passes (routes.cpp), the handlers that
// parse a request, make one engine call and render its answer (handlers.cpp),
// and the WebSocket upgrade (websocket_route.cpp).

#include "actors/engine.hpp"
#include "config/settings.hpp"
#include "http/connection_watch.hpp"
#include "http/idempotent_exchanges.hpp"
#include "http/in_flight.hpp"
#include "http/json_mapping.hpp"
#include "http/jwt_verifier.hpp"
#include "http/keepalive_ticker.hpp"
#include "http/openai_mapping.hpp"
#include "http/request_guard.hpp"
#include "http/request_parsing.hpp"
#include "http/responses.hpp"
#include "http/server_traits.hpp"
#include "http/sse_stream.hpp"
#include "http/user_limits.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace parley {

class http_api : public std::enable_shared_from_this<http_api> {
 public:
  http_api(const settings& cfg, engine& eng);

  std::unique_ptr<router_t> make_router();

  using handler_fn = void (http_api::*)(const call_context&, const route_params&);
  struct method_route {
    restinio::http_method_id_t method;
    handler_fn handler;
  };
  struct route_entry {
    const char* path;
    std::vector<method_route> methods;
  };

  /// Each route template with its methods; every other method gets 405.
  static const std::vector<route_entry>& route_table();

  /// The one route that reads bodies up to limits.max_import_bytes (the
  /// server's inbound screen knows it by this path too).
  static constexpr const char* import_path = "/v1/import";

  /// Requests accepted and not yet answered.
  int in_flight() const { return in_flight_.count(); }

  /// The instance is going away (SIGTERM): /ready answers 503 from now on,
  /// so that balancers stop sending; everything else is still served, each
  /// answer closing its connection.
  void begin_drain() { draining_->store(true); }
  /// The listener is about to close: a message sent on an open WebSocket is
  /// refused (503) from now on, to be sent again once the client has reconnected.
  void refuse_socket_messages() { refusing_messages_->store(true); }
  /// Closes every WebSocket with 1012 (service restart) and ends every SSE
  /// stream still open with a `restart` event, so that their clients
  /// reconnect, through the balancer, to another instance. Blocks until done.
  void send_clients_elsewhere() {
    restarting_->store(true);
    ticker_->sweep_now();
  }

  /// Ends the keep-alives and the waits of idempotent repeats, before the
  /// engine they would call stops; what they held is let go.
  void stop_ticking() { ticker_->stop(); }
  std::shared_ptr<connection_watch> connection_watch_ptr() const { return watch_; }

 private:
  // --- routing and the prelude (routes.cpp) ---
  void route(router_t& router, const char* path, const std::vector<method_route>& methods);
  /// OPTIONS: a CORS preflight from an allowed origin gets the methods and
  /// headers it may use; any other OPTIONS just the Allow list.
  void answer_options(const restinio::request_handle_t& req, const std::string& allow,
                      const char* route);
  /// The request id and CORS headers every answer carries, and the record of
  /// the request on `route` (a template, so that metrics never see raw ids).
  call_context context_of(const restinio::request_handle_t& req, const char* route) const;
  /// The prelude every route shares: request id, header limits, identity and
  /// the caller's request rate (on /v1), body checks; then the handler.
  restinio::request_handling_status_t dispatch(restinio::request_handle_t req,
                                               const route_params& params, handler_fn handler,
                                               const char* route);

  // --- what handlers share (handlers.cpp) ---
  template <class T>
  reply_fn<T> tracked(reply_fn<T> fn) {
    return in_flight_.tracked<T>(std::move(fn));
  }

  /// Sends the JSON of a successful outcome with `status` (`render` gives a
  /// json tree, or rendered_json to send as it is), or its problem.
  template <class T, class Render>
  reply_fn<T> respond(const call_context& c, int status, Render render) {
    return tracked<T>([c, status, render](outcome<T> r) {
      if (!r)
        send_problem(c, to_problem(r.error()));
      else if (status == 204)
        send_no_content(c);
      else if constexpr (std::is_same_v<std::remove_cvref_t<decltype(render(*r))>, rendered_json>)
        send(c, status, render(*r).text, "application/json");
      else
        send_json(c, status, render(*r));
    });
  }

  /// The parsed value, or nullopt after answering its problem.
  template <class T>
  std::optional<T> valid(const call_context& c, parsed<T> value) {
    if (!value) {
      send_problem(c, value.error());
      return std::nullopt;
    }
    return std::move(*value);
  }

  std::optional<nlohmann::json> json_body(const call_context& c);
  std::optional<query_params> query(const call_context& c);
  /// The id in the path parameter `name`, or a 404 (a malformed id cannot exist).
  std::optional<std::string> path_id(const call_context& c, const route_params& params,
                                     const char* name, const char* noun);
  std::optional<std::string> conversation_id(const call_context& c, const route_params& params);
  std::optional<std::string> message_id(const call_context& c, const route_params& params);
  /// The SSE stream for the exchange when the client asked for one (`stream`
  /// in the body, or `Accept: text/event-stream`), kept alive by the ticker.
  std::shared_ptr<sse_stream> stream_if_wanted(const call_context& c, bool stream_field);
  /// An SSE answer in `format`, kept alive by the ticker.
  std::shared_ptr<sse_stream> open_stream(const call_context& c,
                                          std::unique_ptr<sse_format> format);
  /// A cancellation triggered when the client's connection closes, so that a
  /// generation nobody waits for stops and frees its provider connection.
  std::shared_ptr<cancellation> cancelled_when_gone(const call_context& c);
  /// For a stored exchange: cancelled_when_gone when the request's
  /// `on_disconnect` (else streams.on_disconnect) says cancel, else none:
  /// the reply is finished and stored for the client to resume.
  std::shared_ptr<cancellation> cancel_on_disconnect(const call_context& c,
                                                     std::optional<bool> asked);
  /// One of the caller's generation slots (limits.concurrent_generations),
  /// or nullopt after answering 429.
  std::optional<std::shared_ptr<void>> generation_slot(const call_context& c);

  // --- the handlers (handlers.cpp) ---
  void health(const call_context& c, const route_params&);
  void ready(const call_context& c, const route_params&);
  void get_metrics(const call_context& c, const route_params&);
  void get_openapi(const call_context& c, const route_params&);
  void get_swagger_ui(const call_context& c, const route_params&);
  void get_redoc(const call_context& c, const route_params&);
  void get_viewer_asset(const call_context& c, const route_params& params);
  /// GET / and /playground, and the files the page loads.
  void get_playground(const call_context& c, const route_params&);
  void get_playground_asset(const call_context& c, const route_params& params);
  void list_models(const call_context& c, const route_params&);
  void get_usage(const call_context& c, const route_params&);
  void list_conversations(const call_context& c, const route_params&);
  void create_conversation(const call_context& c, const route_params&);
  void get_conversation(const call_context& c, const route_params& params);
  void update_conversation(const call_context& c, const route_params& params);
  void delete_conversation(const call_context& c, const route_params& params);
  void list_messages(const call_context& c, const route_params& params);
  void send_message(const call_context& c, const route_params& params);
  void edit_message(const call_context& c, const route_params& params);
  void delete_message(const call_context& c, const route_params& params);
  void regenerate(const call_context& c, const route_params& params);
  void fork_conversation(const call_context& c, const route_params& params);
  /// GET …/stream: a run's events from where the client lost them.
  void resume_stream(const call_context& c, const route_params& params);
  /// GET …/summaries and POST …/compact (context compaction).
  void list_summaries(const call_context& c, const route_params& params);
  void compact_conversation(const call_context& c, const route_params& params);
  /// POST …/cancel: stops the running exchange.
  void cancel_exchange(const call_context& c, const route_params& params);
  void search(const call_context& c, const route_params& params);
  void export_conversation(const call_context& c, const route_params& params);
  void export_all(const call_context& c, const route_params& params);
  void import_conversations(const call_context& c, const route_params& params);
  // --- the OpenAI-compatible routes (openai_routes.cpp) ---
  void chat_completions(const call_context& c, const route_params&);
  void create_response(const call_context& c, const route_params&);
  void get_response(const call_context& c, const route_params& params);
  /// A Responses call with store:false, on the stateless path; `view` holds
  /// what it asked and the conversation read as its context, if any.
  void run_unstored_response(const call_context& c, response_call call, response_view view,
                             std::shared_ptr<void> slot);
  /// A stored Responses call: one exchange (with Idempotency-Key) onto the
  /// conversation `view` names or continues, or a new one.
  void run_stored_response(const call_context& c, const nlohmann::json& body, response_call call,
                           response_view view, std::shared_ptr<void> slot);

  /// GET …/ws: after the ownership check (404 otherwise, as plain HTTP) the
  /// connection becomes a WebSocket that watches the conversation
  /// (websocket_route.cpp).
  void open_websocket(const call_context& c, const route_params& params);

  const settings& cfg_;
  engine& engine_;
  in_flight_counter in_flight_;
  std::shared_ptr<keepalive_ticker> ticker_;
  /// Set by begin_drain(), refuse_socket_messages() and
  /// send_clients_elsewhere(), in that order: answers read the first, the
  /// WebSockets the second, the keep-alive tasks of streams and sockets the third.
  std::shared_ptr<std::atomic<bool>> draining_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> refusing_messages_ =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> restarting_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<connection_watch> watch_ = std::make_shared<connection_watch>();
  parse_limits limits_;
  std::shared_ptr<user_limits> per_user_;
  std::unique_ptr<jwt_verifier> jwt_;  ///< null unless auth.mode is jwt
  authenticator authenticator_{nullptr};
  const cors_policy cors_{cfg_.server.cors_origins};
  std::shared_ptr<idempotent_exchanges> exchanges_;
  const std::string playground_page_;  ///< for this auth.mode
};

}  // namespace parley
