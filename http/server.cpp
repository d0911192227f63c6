#include "http/server.hpp"

#include "config/clock.hpp"
#include "config/metrics.hpp"
#include "config/uuid.hpp"
#include "http/api_docs.hpp"
#include "http/connection_watch.hpp"
#include "http/idempotency.hpp"
#include "http/json_mapping.hpp"
#include "http/jwt_verifier.hpp"
#include "http/keepalive_ticker.hpp"
#include "http/problem.hpp"
#include "http/request_guard.hpp"
#include "http/request_log.hpp"
#include "http/request_parsing.hpp"
#include "http/screened_socket.hpp"
#include "http/sse_stream.hpp"
#include "http/user_limits.hpp"
#include "http/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <restinio/all.hpp>
#include <restinio/router/pcre2_regex_engine.hpp>
#include <restinio/websocket/websocket.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <future>
#include <thread>

namespace parley {

namespace {

using restinio::request_handle_t;
using restinio::request_handling_status_t;
// PCRE2 matches routes several times faster than std::regex.
using router_t = restinio::router::express_router_t<restinio::router::pcre2_regex_engine_t<>>;
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

// --- responses ----------------------------------------------------------------

/// What every handler knows of its request once the prelude accepted it.
struct call_context {
  request_handle_t req;
  std::string request_id;
  std::string user_id;  ///< empty on the open routes (/health, /ready)
  header_list cors;     ///< for an Origin that server.cors_origins allows
  /// Logged and counted when the last copy of the context is gone.
  std::shared_ptr<request_record> record;
};

void send(const call_context& c, int status, std::string body, const char* content_type,
          const header_list& headers = {}) {
  auto resp = c.req->create_response(restinio::http_status_line_t{
      restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, reason_phrase(status)});
  resp.append_header("X-Request-Id", c.request_id);
  for (auto& [name, value] : c.cors) resp.append_header(name, value);
  for (auto& [name, value] : headers) resp.append_header(name, value);
  // RESTinio would hand a refused upgrade request to the handler again.
  if (c.req->header().connection() == restinio::http_connection_header_t::upgrade)
    resp.connection_close();
  if (status != 204) {
    resp.append_header(restinio::http_field::content_type, content_type);
    resp.set_body(std::move(body));
  }
  resp.done();
  c.record->answered(status);
}

void send_json(const call_context& c, int status, const nlohmann::json& body,
               const header_list& headers = {}) {
  send(c, status, dump(body), "application/json", headers);
}

void send_problem(const call_context& c, const problem& p) {
  auto headers = p.headers;
  if (p.retry_after_s) headers.emplace_back("Retry-After", std::to_string(*p.retry_after_s));
  if (p.status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  send(c, p.status, render_problem(p, c.request_id), "application/problem+json", headers);
}

void send_no_content(const call_context& c, const header_list& headers = {}) {
  send(c, 204, {}, "", headers);
}

std::string conversation_location(const std::string& id) { return "/v1/conversations/" + id; }

/// The answer to an exchange (create, send, regenerate) that succeeded; a
/// replay carries `headers` of its own.
void send_exchange(const call_context& c, const exchange_result& r, bool is_create,
                   header_list headers = {}) {
  if (is_create && r.conversation)
    headers.emplace_back("Location", conversation_location(r.conversation->id));
  send_json(c, 201, to_json(r), headers);
}

// --- the API ------------------------------------------------------------------------

/// Often enough for the shortest keep-alive interval, at most once a second.
keepalive_ticker::clock::duration ticker_period(const server_settings& s) {
  auto shortest = std::chrono::milliseconds(std::min(s.sse_keepalive_ms, s.ws_ping_interval_ms));
  return std::min<keepalive_ticker::clock::duration>(shortest / 4, std::chrono::seconds(1));
}

class http_api : public std::enable_shared_from_this<http_api> {
 public:
  http_api(const settings& cfg, engine& eng)
      : cfg_(cfg),
        engine_(eng),
        ticker_(ticker_period(cfg.server)),
        per_user_(std::make_shared<user_limits>(cfg.limits.requests_per_minute,
                                                cfg.limits.concurrent_generations)) {
    limits_.max_message_chars = cfg.limits.max_message_chars;
    limits_.models = &eng.models();
    if (cfg.auth.mode == "jwt") {
      jwt_ = std::make_unique<jwt_verifier>(cfg.auth);
      // RFC 7518 §3.2: an HS256 key should be at least as long as the hash.
      if (cfg.auth.jwt_public_key_file.empty() && cfg.auth.jwt_secret.size() < 32)
        spdlog::warn("auth.jwt_secret is shorter than 32 bytes, which makes tokens guessable");
      authenticator_ = authenticator(jwt_.get());
    }
  }

  std::unique_ptr<router_t> make_router() {
    auto router = std::make_unique<router_t>();
    for (auto& r : route_table()) route(*router, r.path, r.methods);
    router->non_matched_request_handler([self = shared_from_this()](request_handle_t req) {
      send_problem(self->context_of(req, "unmatched"),
                   make_problem(404, "no route for " + std::string(req->header().path())));
      return restinio::request_accepted();
    });
    return router;
  }

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
  static const std::vector<route_entry>& route_table() {
    using namespace restinio;
    static const std::vector<route_entry> table{
        {"/health", {{http_method_get(), &http_api::health}}},
        {"/ready", {{http_method_get(), &http_api::ready}}},
        {"/metrics", {{http_method_get(), &http_api::get_metrics}}},
        {"/openapi.json", {{http_method_get(), &http_api::get_openapi}}},
        {"/docs", {{http_method_get(), &http_api::get_swagger_ui}}},
        {"/redoc", {{http_method_get(), &http_api::get_redoc}}},
        {"/v1/models", {{http_method_get(), &http_api::list_models}}},
        {"/v1/usage", {{http_method_get(), &http_api::get_usage}}},
        {"/v1/conversations",
         {{http_method_get(), &http_api::list_conversations},
          {http_method_post(), &http_api::create_conversation}}},
        {"/v1/conversations/:id",
         {{http_method_get(), &http_api::get_conversation},
          {http_method_patch(), &http_api::update_conversation},
          {http_method_delete(), &http_api::delete_conversation}}},
        {"/v1/conversations/:id/messages",
         {{http_method_get(), &http_api::list_messages},
          {http_method_post(), &http_api::send_message}}},
        {"/v1/conversations/:id/messages/:message_id",
         {{http_method_patch(), &http_api::edit_message},
          {http_method_delete(), &http_api::delete_message}}},
        {"/v1/conversations/:id/regenerate", {{http_method_post(), &http_api::regenerate}}},
        {"/v1/conversations/:id/ws", {{http_method_get(), &http_api::open_websocket}}},
    };
    return table;
  }

  /// Requests accepted and not yet answered.
  int in_flight() const { return in_flight_->load(); }

  /// Ends the keep-alives and the waits of idempotent repeats, before the
  /// engine they would call stops; what they held is let go.
  void stop_ticking() { ticker_.stop(); }
  std::shared_ptr<connection_watch> connection_watch_ptr() const { return watch_; }

 private:
  void route(router_t& router, const char* path, const std::vector<method_route>& methods) {
    std::string allow;
    for (auto& m : methods) {
      allow += (allow.empty() ? "" : ", ") + std::string(m.method.c_str());
      router.add_handler(m.method, path,
                         [self = shared_from_this(), h = m.handler, path](request_handle_t req,
                                                                          route_params params) {
                           return self->dispatch(std::move(req), params, h, path);
                         });
    }
    router.add_handler(
        restinio::http_method_options(), path,
        [self = shared_from_this(), allow, path](request_handle_t req, route_params) {
          self->answer_options(req, allow, path);
          return restinio::request_accepted();
        });
    auto reject = [self = shared_from_this(), allow, path](request_handle_t req, route_params) {
      problem p =
          make_problem(405, std::string(req->header().method().c_str()) + " is not allowed here");
      p.headers.emplace_back("Allow", allow);
      send_problem(self->context_of(req, path), p);
      return restinio::request_accepted();
    };
    restinio::router::dynamic_none_of_methods_matcher_t others;
    for (auto& m : methods) others.add(m.method);
    others.add(restinio::http_method_options());
    router.add_handler(std::move(others), path, reject);
  }

  /// OPTIONS: a CORS preflight from an allowed origin gets the methods and
  /// headers it may use; any other OPTIONS just the Allow list.
  void answer_options(const request_handle_t& req, const std::string& allow, const char* route) {
    auto c = context_of(req, route);
    header_list headers{{"Allow", allow + ", OPTIONS"}};
    auto& h = req->header();
    if (cors_.allowed_origin(origin_of(*req)) && h.has_field("Access-Control-Request-Method")) {
      headers.emplace_back("Access-Control-Allow-Methods", allow);
      auto asked = h.opt_value_of("Access-Control-Request-Headers");
      headers.emplace_back("Access-Control-Allow-Headers",
                           asked && is_header_name_list(*asked)
                               ? std::string(*asked)
                               : "Authorization, Content-Type, Accept, Idempotency-Key, "
                                 "X-Request-Id, X-User-Id");
      headers.emplace_back("Access-Control-Max-Age", "600");
    }
    send_no_content(c, headers);
  }

  /// The request id and CORS headers every answer carries, and the record of
  /// the request on `route` (a template, so that metrics never see raw ids).
  call_context context_of(const request_handle_t& req, const char* route) const {
    auto id = request_id_from(req->header().opt_value_of("X-Request-Id"));
    auto record = std::make_shared<request_record>(req->header().method().c_str(), route,
                                                   std::string(req->header().path()), id);
    return call_context{req, std::move(id), {}, cors_.headers(origin_of(*req)), std::move(record)};
  }

  static std::optional<std::string_view> origin_of(const restinio::request_t& req) {
    return req.header().opt_value_of(restinio::http_field::origin);
  }

  /// The prelude every route shares: request id, header limits, identity and
  /// the caller's request rate (on /v1), body checks; then the handler.
  request_handling_status_t dispatch(request_handle_t req, const route_params& params,
                                     handler_fn handler, const char* route) {
    auto c = context_of(req, route);
    if (cfg_.log.content && !req->body().empty()) c.record->set_body(req->body());
    auto& h = req->header();
    if (auto p = oversized_header(h.request_target(), h.fields_count(), h,
                                  {cfg_.server.max_header_bytes, cfg_.server.max_header_count})) {
      send_problem(c, *p);
      return restinio::request_accepted();
    }
    if (req->header().path().starts_with("/v1/")) {
      auto caller = authenticator_.authenticate(
          {h.opt_value_of(restinio::http_field::authorization), h.opt_value_of("X-User-Id"),
           h.query()},
          handler == &http_api::open_websocket, std::chrono::system_clock::now());
      if (auto p = std::get_if<problem>(&caller)) {
        send_problem(c, *p);
        return restinio::request_accepted();
      }
      c.user_id = std::get<std::string>(std::move(caller));
      c.record->set_user(c.user_id);
      if (auto over = per_user_->take_request(c.user_id, user_limits::clock::now())) {
        send_problem(c, to_problem(*over));
        return restinio::request_accepted();
      }
    }
    if (auto p =
            body_problem(req->body().size(), h.opt_value_of(restinio::http_field::content_type),
                         cfg_.server.max_body_bytes)) {
      send_problem(c, *p);
      return restinio::request_accepted();
    }
    try {
      (this->*handler)(c, params);
    } catch (const std::exception& e) {
      // A bug, not the client's fault: logged, and answered rather than dropped.
      spdlog::error("request {} {}: {}", c.request_id, req->header().path(), e.what());
      try {
        send_problem(c, to_problem(failure{errc::internal, ""}));
      } catch (const std::exception&) {
        // The handler had answered already.
      }
    }
    return restinio::request_accepted();
  }

  /// Counts a request as in flight until the returned callback's last copy is gone.
  template <class T>
  reply_fn<T> tracked(reply_fn<T> fn) {
    return [fn = std::move(fn), token = hold_in_flight()](outcome<T> r) { fn(std::move(r)); };
  }

  /// Counts a request as in flight until the token's last copy is gone.
  std::shared_ptr<void> hold_in_flight() {
    in_flight_->fetch_add(1);
    return std::shared_ptr<void>(nullptr, [count = in_flight_](void*) { count->fetch_sub(1); });
  }

  /// Sends the JSON of a successful outcome with `status`, or its problem.
  template <class T, class Render>
  reply_fn<T> respond(const call_context& c, int status, Render render) {
    return tracked<T>([c, status, render](outcome<T> r) {
      if (!r)
        send_problem(c, to_problem(r.error()));
      else if (status == 204)
        send_no_content(c);
      else
        send_json(c, status, render(*r));
    });
  }

  std::optional<nlohmann::json> json_body(const call_context& c) {
    auto parsed_body = parse_json_object(c.req->body());
    if (auto p = std::get_if<problem>(&parsed_body)) {
      send_problem(c, *p);
      return std::nullopt;
    }
    return std::get<nlohmann::json>(std::move(parsed_body));
  }

  template <class T>
  std::optional<T> valid(const call_context& c, parsed<T> value) {
    if (auto p = std::get_if<problem>(&value)) {
      send_problem(c, *p);
      return std::nullopt;
    }
    return std::get<T>(std::move(value));
  }

  std::optional<query_params> query(const call_context& c) {
    auto q = restinio::try_parse_query<restinio::parse_query_traits::javascript_compatible>(
        c.req->header().query());
    if (!q) {
      send_problem(c, make_problem(400, "the query string is malformed"));
      return std::nullopt;
    }
    query_params out;
    for (auto& [k, v] : *q) out.emplace(std::string(k), std::string(v));
    return out;
  }

  /// The id in the path parameter `name`, or a 404 (a malformed id cannot exist).
  std::optional<std::string> path_id(const call_context& c, const route_params& params,
                                     const char* name, const char* noun) {
    auto id = std::string(params[name]);
    if (!is_canonical_uuid(id)) {
      send_problem(c, make_problem(404, std::string(noun) + " " + id + " not found"));
      return std::nullopt;
    }
    return id;
  }

  std::optional<std::string> conversation_id(const call_context& c, const route_params& params) {
    return path_id(c, params, "id", "conversation");
  }

  std::optional<std::string> message_id(const call_context& c, const route_params& params) {
    return path_id(c, params, "message_id", "message");
  }

  /// The SSE stream for the exchange when the client asked for one (`stream`
  /// in the body, or `Accept: text/event-stream`), kept alive by the ticker.
  std::shared_ptr<sse_stream> stream_if_wanted(const call_context& c, bool stream_field) {
    auto accept = c.req->header().opt_value_of(restinio::http_field::accept);
    if (!stream_field && !(accept && accept->find("text/event-stream") != std::string_view::npos))
      return nullptr;
    auto stream =
        std::make_shared<sse_stream>(c.req, c.request_id, cfg_.server.stream_queue_bytes, c.cors);
    c.record->set_status(200);
    auto idle = std::chrono::milliseconds(cfg_.server.sse_keepalive_ms);
    ticker_.add([weak = std::weak_ptr<sse_stream>(stream), idle](auto now) {
      auto s = weak.lock();
      return s && s->keep_alive(now, idle);
    });
    return stream;
  }

  // --- idempotent exchanges ----------------------------------------------------------

  /// A cancellation triggered when the client's connection closes, so that a
  /// generation nobody waits for stops and frees its provider connection.
  std::shared_ptr<cancellation> cancelled_when_gone(const call_context& c) {
    auto cancel = std::make_shared<cancellation>();
    watch_->watch(c.req->connection_id(), cancel);
    return cancel;
  }

  using exchange_starter =
      std::function<void(std::optional<idempotency_claim>, reply_fn<exchange_answer>)>;

  /// One of the caller's generation slots (limits.concurrent_generations),
  /// or nullopt after answering 429.
  std::optional<std::shared_ptr<void>> generation_slot(const call_context& c) {
    auto slot = per_user_->claim_generation(c.user_id);
    if (!slot) {
      send_problem(c, to_problem(slot.error()));
      return std::nullopt;
    }
    return *slot;
  }

  /// Runs an exchange, honouring Idempotency-Key: the conversation looks the
  /// key up in its turn, and a repeat gets the stored answer. `slot` (a
  /// generation slot, or null) is held until it is answered.
  void run_exchange(const call_context& c, const nlohmann::json& body, bool is_create,
                    const std::shared_ptr<sse_stream>& stream, std::shared_ptr<void> slot,
                    exchange_starter start) {
    auto key_header = c.req->header().opt_value_of("Idempotency-Key");
    auto finish = [c, is_create, stream, slot](const outcome<exchange_answer>& r) {
      if (stream && stream->finish(r)) return;
      if (!r) {
        send_problem(c, to_problem(r.error()));
        return;
      }
      send_exchange(c, *r, is_create);
    };
    if (!key_header) {
      start(std::nullopt, tracked<exchange_answer>(finish));
      return;
    }
    std::string key(*key_header);
    if (!is_valid_idempotency_key(key)) {
      send_problem(c,
                   invalid_field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
      return;
    }
    if (!locks_.try_lock(c.user_id, key)) {
      send_problem(c, make_problem(409, "a request with this Idempotency-Key is in progress"));
      return;
    }
    auto fingerprint =
        request_fingerprint(c.req->header().method().c_str(), c.req->header().path(), dump(body));
    // The key stays locked in this process until the exchange is answered.
    auto self = shared_from_this();
    start(idempotency_claim{key, fingerprint},
          tracked<exchange_answer>([self, c, key, fingerprint, is_create, stream,
                                    finish](const outcome<exchange_answer>& r) {
            self->locks_.unlock(c.user_id, key);
            if (r && r->replayed) {
              self->answer_stored(c, *r->replayed, key, fingerprint, is_create);
              return;
            }
            // Another process stored an answer for the key between the
            // lookup and our commit (which then conflicts), or the
            // conversation is gone since the first request: what is stored,
            // if anything, is the answer.
            bool may_be_stored =
                !r && (r.error().code == errc::conflict || r.error().code == errc::not_found);
            if (!may_be_stored) {
              finish(r);
              return;
            }
            // A stream that began has told its client already.
            if (stream && stream->finish(r)) return;
            self->replay_stored(c, key, fingerprint, is_create, [finish, r] { finish(r); });
          }));
  }

  /// Replays what is stored for `key`, or runs `absent` when nothing is.
  void replay_stored(const call_context& c, const std::string& key, const std::string& fingerprint,
                     bool is_create, std::function<void()> absent) {
    auto self = shared_from_this();
    engine_.find_idempotency(c.user_id, key,
                             tracked<std::optional<idempotency_record>>(
                                 [self, c, key, fingerprint, is_create,
                                  absent](outcome<std::optional<idempotency_record>> found) {
                                   if (found && !*found) {
                                     absent();
                                     return;
                                   }
                                   if (!found) {
                                     send_problem(c, to_problem(found.error()));
                                     return;
                                   }
                                   self->answer_stored(c, **found, key, fingerprint, is_create);
                                 }));
  }

  /// Replays `stored`; while it is the provisional answer of a reply that another
  /// request (in this process or another) may still store, looks again at
  /// the ticker's next sweep.
  void answer_stored(const call_context& c, const idempotency_record& stored,
                     const std::string& key, const std::string& fingerprint, bool is_create) {
    if (stored.request_hash != fingerprint || !reply_may_still_come(stored)) {
      replay(c, stored, fingerprint, is_create);
      return;
    }
    // Weak: a wait must not keep the API (and through it the engine) alive;
    // the token keeps the request counted while it waits.
    ticker_.add(
        [weak = weak_from_this(), held = hold_in_flight(), c, key, fingerprint, is_create](auto) {
          auto self = weak.lock();
          if (!self) return false;
          self->replay_stored(c, key, fingerprint, is_create, [c] {
            send_problem(c, make_problem(409,
                                         "the request with this Idempotency-Key ended without "
                                         "a stored answer; send it again"));
          });
          return false;
        });
  }

  /// True for the answer stored with a user message before its reply, while
  /// the reply can still come. One stored before this process started is
  /// taken as left by a crash (no process lives to replace it, when Parley
  /// runs alone) and replayed at once: waiting out its generation deadline
  /// would hold every retry after a restart for minutes.
  bool reply_may_still_come(const idempotency_record& stored) const {
    auto& answer = stored.answer;
    if (answer || answer.error().code != errc::provider_error ||
        answer.error().detail != reply_interrupted_detail || stored.created_at < started_at_)
      return false;
    auto longest = std::int64_t{cfg_.actors.generation_timeout_ms} + 2 * cfg_.database.timeout_ms;
    return now_ms() < stored.created_at + longest;
  }

  static void replay(const call_context& c, const idempotency_record& stored,
                     const std::string& fingerprint, bool is_create) {
    if (stored.request_hash != fingerprint) {
      send_problem(c,
                   invalid_field("Idempotency-Key", "was already used with a different request"));
      return;
    }
    header_list replayed{{"Idempotent-Replayed", "true"}};
    if (stored.answer) {
      send_exchange(c, *stored.answer, is_create, std::move(replayed));
      return;
    }
    auto p = to_problem(stored.answer.error());
    p.headers = std::move(replayed);
    send_problem(c, p);
  }

  // --- handlers -------------------------------------------------------------------------

  void health(const call_context& c, const route_params&) { send_json(c, 200, {{"status", "ok"}}); }

  void ready(const call_context& c, const route_params&) {
    engine_.check_ready(tracked<done>([c](outcome<done> r) {
      if (r) {
        send_json(c, 200, {{"status", "ready"}});
        return;
      }
      auto p = make_problem(503, "the database is not answering");
      p.retry_after_s = 1;
      send_problem(c, p);
    }));
  }

  void get_metrics(const call_context& c, const route_params&) {
    auto& r = metrics::default_registry();
    metrics::sample_process_metrics(r);
    r.gauge_named("parley_conversation_actors", "Conversation actors alive now.")
        .set(static_cast<double>(engine_.live_conversations()));
    r.gauge_named("parley_http_requests_in_flight", "Requests accepted and not yet answered.")
        .set(in_flight());
    send(c, 200, r.render(), "text/plain; version=0.0.4; charset=utf-8");
  }

  void get_openapi(const call_context& c, const route_params&) {
    send(c, 200, openapi_json(), "application/json");
  }

  void get_swagger_ui(const call_context& c, const route_params&) {
    send(c, 200, swagger_ui_page(), "text/html; charset=utf-8");
  }

  void get_redoc(const call_context& c, const route_params&) {
    send(c, 200, redoc_page(), "text/html; charset=utf-8");
  }

  void list_models(const call_context& c, const route_params&) {
    send_json(c, 200, to_json(engine_.models()));
  }

  void get_usage(const call_context& c, const route_params&) {
    auto q = query(c);
    if (!q) return;
    auto range = valid(c, parse_usage_query(*q));
    if (!range) return;
    auto user = c.user_id;
    auto from = range->from, to = range->to;
    engine_.usage(c.user_id, from, to,
                  respond<std::vector<usage_row>>(c, 200, [user, from, to](auto& rows) {
                    return usage_to_json(user, from, to, rows);
                  }));
  }

  void list_conversations(const call_context& c, const route_params&) {
    auto q = query(c);
    if (!q) return;
    auto page = valid(c, parse_list_query(*q));
    if (!page) return;
    engine_.list_conversations(
        c.user_id, page->limit, page->cursor,
        respond<conversation_page>(c, 200, [](auto& p) { return to_json(p); }));
  }

  void create_conversation(const call_context& c, const route_params&) {
    auto body = json_body(c);
    if (!body) return;
    auto request = valid(c, parse_create_conversation(*body, c.user_id, limits_));
    if (!request) return;
    std::shared_ptr<sse_stream> stream;
    std::shared_ptr<void> slot;
    if (auto& first = request->first_message) {
      if (first->reply) {
        auto claimed = generation_slot(c);
        if (!claimed) return;
        slot = *claimed;
      }
      bool stream_field = false;
      if (auto m = body->find("message"); m != body->end() && m->is_object())
        if (auto s = m->find("stream"); s != m->end() && s->is_boolean())
          stream_field = s->get<bool>();
      stream = stream_if_wanted(c, stream_field);
      first->stream = stream;
      if (first->reply) first->cancel = cancelled_when_gone(c);
    }
    run_exchange(c, *body, true, stream, slot, [this, request = *request](auto claim, auto reply) {
      engine_.create_conversation(request, std::move(claim), std::move(reply));
    });
  }

  void get_conversation(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    engine_.get_conversation(
        c.user_id, *id, respond<conversation_record>(c, 200, [](auto& r) { return to_json(r); }));
  }

  void update_conversation(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto body = json_body(c);
    if (!body) return;
    auto patch = valid(c, parse_conversation_patch(*body, limits_));
    if (!patch) return;
    engine_.update_conversation(
        c.user_id, *id, *patch,
        respond<conversation_record>(c, 200, [](auto& r) { return to_json(r); }));
  }

  void delete_conversation(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    engine_.delete_conversation(c.user_id, *id,
                                respond<done>(c, 204, [](auto&) { return nlohmann::json(); }));
  }

  void list_messages(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto q = query(c);
    if (!q) return;
    auto history = valid(c, parse_history_query(*q));
    if (!history) return;
    engine_.list_messages(c.user_id, *id, *history,
                          respond<message_page>(c, 200, [](auto& p) { return to_json(p); }));
  }

  void send_message(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto body = json_body(c);
    if (!body) return;
    bool stream = false;
    auto message = valid(c, parse_send_message(*body, limits_, stream));
    if (!message) return;
    std::shared_ptr<void> slot;
    if (message->reply) {
      auto claimed = generation_slot(c);
      if (!claimed) return;
      slot = *claimed;
    }
    auto sse = stream_if_wanted(c, stream);
    message->stream = sse;
    if (message->reply) message->cancel = cancelled_when_gone(c);
    run_exchange(c, *body, false, sse, slot,
                 [this, user = c.user_id, id = *id, p = *message](auto claim, auto reply) {
                   engine_.send_message(user, id, p, std::move(claim), std::move(reply));
                 });
  }

  void edit_message(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto mid = message_id(c, params);
    if (!mid) return;
    auto body = json_body(c);
    if (!body) return;
    auto content = valid(c, parse_message_edit(*body, limits_));
    if (!content) return;
    engine_.edit_message(c.user_id, *id, *mid, *content,
                         respond<message_record>(c, 200, [](auto& m) { return to_json(m); }));
  }

  void delete_message(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto mid = message_id(c, params);
    if (!mid) return;
    engine_.delete_message(c.user_id, *id, *mid,
                           respond<done>(c, 204, [](auto&) { return nlohmann::json(); }));
  }

  void regenerate(const call_context& c, const route_params& params) {
    auto id = conversation_id(c, params);
    if (!id) return;
    auto body = json_body(c);
    if (!body) return;
    bool stream = false;
    auto request = valid(c, parse_regenerate(*body, limits_, stream));
    if (!request) return;
    auto slot = generation_slot(c);
    if (!slot) return;
    auto sse = stream_if_wanted(c, stream);
    request->stream = sse;
    request->cancel = cancelled_when_gone(c);
    run_exchange(c, *body, false, sse, *slot,
                 [this, user = c.user_id, id = *id, p = *request](auto claim, auto reply) {
                   engine_.regenerate(user, id, p, std::move(claim), std::move(reply));
                 });
  }

  /// GET …/ws: after the ownership check (404 otherwise, as plain HTTP) the
  /// connection becomes a WebSocket that watches the conversation.
  void open_websocket(const call_context& c, const route_params& params) {
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
    auto session = std::make_shared<ws_session>(engine_, limits_, limits, per_user_, c.user_id, *id,
                                                c.request_id);
    auto self = shared_from_this();
    engine_.watch(c.user_id, *id, session,
                  tracked<done>([self, c, id = *id, session](outcome<done> r) {
                    if (!r) {
                      send_problem(c, to_problem(r.error()));
                      return;
                    }
                    namespace rws = restinio::websocket::basic;
                    try {
                      auto ws = rws::upgrade<server_traits>(
                          *c.req, rws::activation_t::delayed,
                          [session](rws::ws_handle_t, rws::message_handle_t frame) {
                            session->on_frame(frame);
                          });
                      // Closed meanwhile (the conversation was deleted): dropping it
                      // unread ends the connection.
                      if (!session->attach(ws)) return;
                      c.record->set_status(101);
                    } catch (const std::exception& e) {
                      spdlog::warn("WebSocket upgrade of conversation {} failed: {}", id, e.what());
                      self->engine_.unwatch(id, session);
                      return;
                    }
                    self->ticker_.add([weak = std::weak_ptr<ws_session>(session)](auto now) {
                      auto s = weak.lock();
                      return s && s->keep_alive(now);
                    });
                  }));
  }

  const settings& cfg_;
  engine& engine_;
  keepalive_ticker ticker_;
  std::shared_ptr<connection_watch> watch_ = std::make_shared<connection_watch>();
  parse_limits limits_;
  std::shared_ptr<user_limits> per_user_;
  std::unique_ptr<jwt_verifier> jwt_;  ///< null unless auth.mode is jwt
  authenticator authenticator_{nullptr};
  const cors_policy cors_{cfg_.server.cors_origins};
  idempotency_locks locks_;
  /// Shared with the tokens of hold_in_flight(), which may outlive the API.
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
  const unix_ms started_at_ = now_ms();
};

}  // namespace

std::vector<std::pair<std::string, std::string>> routed_operations() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& r : http_api::route_table()) {
    // RESTinio's ":name" parameters are OpenAPI's "{name}".
    std::string path;
    for (std::string_view rest = r.path; !rest.empty();) {
      auto colon = rest.find(':');
      path += rest.substr(0, colon);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
      auto end = rest.find('/');
      path.append("{").append(rest.substr(0, end)).append("}");
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    for (auto& m : r.methods) out.emplace_back(m.method.c_str(), path);
  }
  return out;
}

namespace {

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void block_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_server(const settings& cfg, engine& eng, std::function<void(std::uint16_t)> on_listening) {
  // Every thread started from here on inherits the blocked signals; this thread
  // alone takes them, with sigwait, so shutdown runs in ordinary code.
  block_stop_signals();
  auto stop_signals = stop_signal_set();

  auto api = std::make_shared<http_api>(cfg, eng);
  std::atomic<std::uint16_t> bound_port{0};
  // The engine answers every operation within its own deadlines; this only
  // stops RESTinio from cutting a long generation short.
  auto handling_timeout =
      std::chrono::milliseconds(cfg.actors.generation_timeout_ms) * 2 + std::chrono::seconds(30);
  inbound_limits parser_limits;
  parser_limits.max_url_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_name_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_value_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_count = std::uint64_t{cfg.server.max_header_count} * 8;
  parser_limits.max_body_bytes = cfg.server.max_body_bytes * 8 + 65536;
  parser_limits.max_frame_bytes = cfg.server.max_body_bytes;
  screened_socket::set_limits(parser_limits);
  server_io_context io;
  restinio::http_server_t<server_traits> server{
      restinio::external_io_context(io), [&](auto& s) {
        s.address(cfg.server.host)
            .port(cfg.server.port)
            .request_handler(api->make_router())
            .connection_state_listener(
                std::make_shared<closed_connection_listener>(api->connection_watch_ptr()))
            // With room for a second request RESTinio keeps reading while a
            // request is handled, and so sees a client that hangs up (EOF).
            .max_pipelined_requests(2)
            // Streams send many small writes: without TCP_NODELAY each one
            // after the first waits for the client's delayed ACK (~40 ms).
            .socket_options_setter([](restinio::socket_options_t& options) {
              options.set_option(asio::ip::tcp::no_delay{true});
            })
            .acceptor_post_bind_hook([&](asio::ip::tcp::acceptor& acceptor) {
              bound_port = acceptor.local_endpoint().port();
            })
            // Past the configured limits the handlers answer 413, 414 or 431;
            // eight times past them the screened socket answers before the
            // parser would end the connection unanswered.
            .incoming_http_msg_limits(restinio::incoming_http_msg_limits_t{}
                                          .max_url_size(parser_limits.max_url_bytes)
                                          .max_field_name_size(parser_limits.max_field_name_bytes)
                                          .max_field_value_size(parser_limits.max_field_value_bytes)
                                          .max_field_count(parser_limits.max_field_count)
                                          .max_body_size(parser_limits.max_body_bytes))
            .max_parallel_connections(cfg.server.max_connections)
            // A whole request, and an idle keep-alive, within read_timeout_ms:
            // a slow-loris client is cut off without holding a thread.
            .read_next_http_message_timelimit(std::chrono::milliseconds(cfg.server.read_timeout_ms))
            .write_http_response_timelimit(std::chrono::seconds(30))
            .handle_request_timeout(handling_timeout);
      }};

  std::promise<void> opened;
  asio::post(server.io_context(), [&] {
    try {
      server.open_sync();
      opened.set_value();
    } catch (...) {
      opened.set_exception(std::current_exception());
    }
  });
  std::vector<std::thread> io_threads;
  for (unsigned i = 0; i < cfg.server.threads; ++i)
    io_threads.emplace_back([&] { server.io_context().run(); });
  auto stop_io = [&] {
    server.io_context().stop();
    for (auto& t : io_threads) t.join();
  };
  try {
    opened.get_future().get();
  } catch (...) {
    stop_io();
    throw;
  }
  on_listening(bound_port.load());

  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("received signal {}, shutting down", signal);

  std::promise<void> closed;
  asio::post(server.io_context(), [&] {
    try {
      server.close_sync();
    } catch (...) {
    }
    closed.set_value();
  });
  closed.get_future().wait();
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.server.shutdown_grace_ms);
  while (api->in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (api->in_flight() > 0)
    spdlog::warn("{} requests still in flight after the grace period", api->in_flight());
  api->stop_ticking();
  eng.shutdown();
  stop_io();
  // Destroys the connections still open while the limiter they count in exists.
  io.shutdown();
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley
