#include "http/http_api.hpp"

#include "http/server.hpp"

#include <spdlog/spdlog.h>

namespace parley {

namespace {

using restinio::request_handle_t;
using restinio::request_handling_status_t;

std::optional<std::string_view> origin_of(const restinio::request_t& req) {
  return req.header().opt_value_of(restinio::http_field::origin);
}

}  // namespace

std::unique_ptr<router_t> http_api::make_router() {
  auto router = std::make_unique<router_t>();
  for (auto& r : route_table()) route(*router, r.path, r.methods);
  router->non_matched_request_handler([self = shared_from_this()](request_handle_t req) {
    send_problem(self->context_of(req, "unmatched"),
                 make_problem(404, "no route for " + std::string(req->header().path())));
    return restinio::request_accepted();
  });
  return router;
}

const std::vector<http_api::route_entry>& http_api::route_table() {
  using namespace restinio;
  static const std::vector<route_entry> table{
      {"/health", {{http_method_get(), &http_api::health}}},
      {"/ready", {{http_method_get(), &http_api::ready}}},
      {"/metrics", {{http_method_get(), &http_api::get_metrics}}},
      {"/openapi.json", {{http_method_get(), &http_api::get_openapi}}},
      {"/docs", {{http_method_get(), &http_api::get_swagger_ui}}},
      {"/redoc", {{http_method_get(), &http_api::get_redoc}}},
      {"/docs/assets/:name", {{http_method_get(), &http_api::get_viewer_asset}}},
      {"/", {{http_method_get(), &http_api::get_playground}}},
      {"/playground", {{http_method_get(), &http_api::get_playground}}},
      {"/playground/assets/:name", {{http_method_get(), &http_api::get_playground_asset}}},
      {"/v1/models", {{http_method_get(), &http_api::list_models}}},
      {"/v1/usage", {{http_method_get(), &http_api::get_usage}}},
      {"/v1/search", {{http_method_get(), &http_api::search}}},
      {"/v1/export", {{http_method_get(), &http_api::export_all}}},
      {import_path, {{http_method_post(), &http_api::import_conversations}}},
      {"/v1/chat/completions", {{http_method_post(), &http_api::chat_completions}}},
      {"/v1/responses", {{http_method_post(), &http_api::create_response}}},
      {"/v1/responses/:id", {{http_method_get(), &http_api::get_response}}},
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
      {"/v1/conversations/:id/fork", {{http_method_post(), &http_api::fork_conversation}}},
      {"/v1/conversations/:id/export", {{http_method_get(), &http_api::export_conversation}}},
      {"/v1/conversations/:id/ws", {{http_method_get(), &http_api::open_websocket}}},
      {"/v1/conversations/:id/stream", {{http_method_get(), &http_api::resume_stream}}},
      {"/v1/conversations/:id/cancel", {{http_method_post(), &http_api::cancel_exchange}}},
      {"/v1/conversations/:id/summaries", {{http_method_get(), &http_api::list_summaries}}},
      {"/v1/conversations/:id/compact", {{http_method_post(), &http_api::compact_conversation}}},
  };
  return table;
}

void http_api::route(router_t& router, const char* path, const std::vector<method_route>& methods) {
  std::string allow;
  for (auto& m : methods) {
    allow += (allow.empty() ? "" : ", ") + std::string(m.method.c_str());
    router.add_handler(m.method, path,
                       [self = shared_from_this(), h = m.handler, path](request_handle_t req,
                                                                        route_params params) {
                         return self->dispatch(std::move(req), params, h, path);
                       });
  }
  router.add_handler(restinio::http_method_options(), path,
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

void http_api::answer_options(const request_handle_t& req, const std::string& allow,
                              const char* route) {
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

call_context http_api::context_of(const request_handle_t& req, const char* route) const {
  auto id = request_id_from(req->header().opt_value_of("X-Request-Id"));
  auto record = std::make_shared<request_record>(req->header().method().c_str(), route,
                                                 std::string(req->header().path()), id);
  std::string_view path = route;
  bool openai = path.starts_with("/v1/chat/") || path.starts_with("/v1/responses");
  return call_context{req,    std::move(id), {}, cors_.headers(origin_of(*req)), std::move(record),
                      openai, draining_};
}

request_handling_status_t http_api::dispatch(request_handle_t req, const route_params& params,
                                             handler_fn handler, const char* route) {
  auto c = context_of(req, route);
  if (cfg_.log.content && !req->body().empty()) c.record->set_body(req->body());
  auto& h = req->header();
  if (auto head = check_header_size(h.request_target(), h.fields_count(), h,
                                    {cfg_.server.max_header_bytes, cfg_.server.max_header_count});
      !head) {
    send_problem(c, head.error());
    return restinio::request_accepted();
  }
  if (req->header().path().starts_with("/v1/")) {
    bool websocket = handler == &http_api::open_websocket;
    std::optional<std::string_view> protocols;
    if (websocket) {
      auto origin = origin_of(*req);
      auto host = h.opt_value_of(restinio::http_field::host);
      if (!origin || (host && is_same_origin(*origin, *host)) || cors_.allowed_origin(origin))
        protocols = h.opt_value_of(restinio::http_field::sec_websocket_protocol);
    }
    auto caller = authenticator_.authenticate({h.opt_value_of(restinio::http_field::authorization),
                                               h.opt_value_of("X-User-Id"), h.query(), protocols},
                                              websocket, std::chrono::system_clock::now());
    if (!caller) {
      send_problem(c, caller.error());
      return restinio::request_accepted();
    }
    c.user_id = std::move(*caller);
    c.record->set_user(c.user_id);
    if (auto taken = per_user_->take_request(c.user_id, user_limits::clock::now()); !taken) {
      send_problem(c, to_problem(taken.error()));
      return restinio::request_accepted();
    }
  }
  // The import reads larger bodies, and NDJSON besides JSON.
  bool import = handler == &http_api::import_conversations;
  auto body =
      import
          ? check_body(req->body().size(), h.opt_value_of(restinio::http_field::content_type),
                       cfg_.limits.max_import_bytes, {"application/json", "application/x-ndjson"})
          : check_body(req->body().size(), h.opt_value_of(restinio::http_field::content_type),
                       cfg_.server.max_body_bytes);
  if (!body) {
    send_problem(c, body.error());
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

}  // namespace parley
