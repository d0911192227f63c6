#include "http/http_api.hpp"

#include "base/uuid.hpp"
#include "http/api_docs.hpp"
#include "http/embedded_files.hpp"
#include "http/export_formats.hpp"
#include "http/export_stream.hpp"
#include "http/import_formats.hpp"
#include "http/json_mapping.hpp"
#include "http/leased_limits.hpp"
#include "http/playground.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>

namespace parley {

namespace {

/// Bytes that live as long as the process (the API documents and their
/// viewers), sent without a copy.
restinio::const_buffer_t static_body(std::string_view bytes) {
  return restinio::const_buffer(bytes.data(), bytes.size());
}

const header_list viewer_page_headers{{"Content-Security-Policy", viewer_page_policy}};
// The files change only with the binary: a day in caches is safe.
const header_list viewer_asset_headers{{"Cache-Control", "public, max-age=86400"},
                                       {"X-Content-Type-Options", "nosniff"}};
// The playground's page and files are asked for again on every load (they
// keep their names across versions); the page sends no Referer anywhere.
const header_list playground_page_headers{{"Content-Security-Policy", playground_page_policy},
                                          {"Cache-Control", "no-cache"},
                                          {"Referrer-Policy", "no-referrer"},
                                          {"X-Content-Type-Options", "nosniff"}};
const header_list playground_asset_headers{{"Cache-Control", "no-cache"},
                                           {"X-Content-Type-Options", "nosniff"}};

/// Often enough for the shortest keep-alive interval, at most once a second.
keepalive_ticker::clock::duration ticker_period(const server_settings& s) {
  auto shortest = std::chrono::milliseconds(std::min(s.sse_keepalive_ms, s.ws_ping_interval_ms));
  return std::min<keepalive_ticker::clock::duration>(shortest / 4, std::chrono::seconds(1));
}

/// On PostgreSQL the limits hold across every instance on the database;
/// otherwise (SQLite: one machine) per process.
std::shared_ptr<user_limits> make_user_limits(const settings& cfg) {
  auto& l = cfg.limits;
  if (cfg.database.url.kind == database_url::backend::postgresql &&
      (l.requests_per_minute > 0 || l.concurrent_generations > 0))
    return std::make_shared<leased_limits>(make_postgresql_ledger(cfg.database.url.target),
                                           instance_id(), l.requests_per_minute,
                                           l.concurrent_generations, leased_limits::timing{});
  return std::make_shared<local_limits>(l.requests_per_minute, l.concurrent_generations);
}

}  // namespace

http_api::http_api(const settings& cfg, engine& eng)
    : cfg_(cfg),
      engine_(eng),
      ticker_(std::make_shared<keepalive_ticker>(ticker_period(cfg.server))),
      per_user_(make_user_limits(cfg)),
      exchanges_(std::make_shared<idempotent_exchanges>(cfg, eng, ticker_, in_flight_)),
      playground_page_(playground_page(cfg.auth.mode)) {
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

std::optional<nlohmann::json> http_api::json_body(const call_context& c) {
  auto parsed_body = parse_json_object(c.req->body());
  if (!parsed_body) {
    send_problem(c, parsed_body.error());
    return std::nullopt;
  }
  return std::move(*parsed_body);
}

std::optional<query_params> http_api::query(const call_context& c) {
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

std::optional<std::string> http_api::path_id(const call_context& c, const route_params& params,
                                             const char* name, const char* noun) {
  auto id = std::string(params[name]);
  if (!is_canonical_uuid(id)) {
    send_problem(c, make_problem(404, std::string(noun) + " " + id + " not found"));
    return std::nullopt;
  }
  return id;
}

std::optional<std::string> http_api::conversation_id(const call_context& c,
                                                     const route_params& params) {
  return path_id(c, params, "id", "conversation");
}

std::optional<std::string> http_api::message_id(const call_context& c, const route_params& params) {
  return path_id(c, params, "message_id", "message");
}

std::shared_ptr<sse_stream> http_api::stream_if_wanted(const call_context& c, bool stream_field) {
  auto accept = c.req->header().opt_value_of(restinio::http_field::accept);
  if (!stream_field && !(accept && accept->find("text/event-stream") != std::string_view::npos))
    return nullptr;
  return open_stream(c, parley_sse_format());
}

std::shared_ptr<sse_stream> http_api::open_stream(const call_context& c,
                                                  std::unique_ptr<sse_format> format) {
  auto stream = std::make_shared<sse_stream>(c.req, c.request_id, cfg_.server.stream_queue_bytes,
                                             c.cors, std::move(format));
  c.record->set_status(200);
  auto idle = std::chrono::milliseconds(cfg_.server.sse_keepalive_ms);
  ticker_->add(
      [weak = std::weak_ptr<sse_stream>(stream), idle, restarting = restarting_](auto now) {
        auto s = weak.lock();
        if (s && restarting->load()) {
          s->end_for_restart();
          return false;
        }
        return s && s->keep_alive(now, idle);
      });
  return stream;
}

std::shared_ptr<cancellation> http_api::cancelled_when_gone(const call_context& c) {
  auto cancel = std::make_shared<cancellation>();
  watch_->watch(c.req->connection_id(), cancel);
  return cancel;
}

std::shared_ptr<cancellation> http_api::cancel_on_disconnect(const call_context& c,
                                                             std::optional<bool> asked) {
  if (!asked.value_or(cfg_.streams.on_disconnect == "cancel")) return nullptr;
  return cancelled_when_gone(c);
}

std::optional<std::shared_ptr<void>> http_api::generation_slot(const call_context& c) {
  auto slot = per_user_->claim_generation(c.user_id);
  if (!slot) {
    send_problem(c, to_problem(slot.error()));
    return std::nullopt;
  }
  return *slot;
}

void http_api::health(const call_context& c, const route_params&) {
  send_json(c, 200, {{"status", "ok"}});
}

void http_api::ready(const call_context& c, const route_params&) {
  if (draining_->load()) {
    auto p = make_problem(503, "this instance is shutting down; use another");
    p.retry_after_s = 1;
    send_problem(c, p);
    return;
  }
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

void http_api::get_metrics(const call_context& c, const route_params&) {
  auto& r = metrics::default_registry();
  metrics::sample_process_metrics(r);
  r.gauge_named("parley_conversation_actors", "Conversation actors alive now.")
      .set(static_cast<double>(engine_.live_conversations()));
  r.gauge_named("parley_http_requests_in_flight", "Requests accepted and not yet answered.")
      .set(in_flight());
  send(c, 200, r.render(), "text/plain; version=0.0.4; charset=utf-8");
}

void http_api::get_openapi(const call_context& c, const route_params&) {
  send(c, 200, static_body(openapi_json()), "application/json");
}

void http_api::get_swagger_ui(const call_context& c, const route_params&) {
  send(c, 200, static_body(swagger_ui_page()), "text/html; charset=utf-8", viewer_page_headers);
}

void http_api::get_redoc(const call_context& c, const route_params&) {
  send(c, 200, static_body(redoc_page()), "text/html; charset=utf-8", viewer_page_headers);
}

void http_api::get_viewer_asset(const call_context& c, const route_params& params) {
  auto name = params["name"];
  auto* asset = find_embedded(viewer_assets(), name);
  if (!asset) {
    send_problem(c, make_problem(404, "no viewer file named " + std::string(name)));
    return;
  }
  send(c, 200, static_body(asset->bytes), asset->content_type, viewer_asset_headers);
}

void http_api::get_playground(const call_context& c, const route_params&) {
  if (!cfg_.server.playground) {
    send_problem(c, make_problem(404, "the playground is turned off (server.playground)"));
    return;
  }
  send(c, 200, static_body(playground_page_), "text/html; charset=utf-8", playground_page_headers);
}

void http_api::get_playground_asset(const call_context& c, const route_params& params) {
  auto name = params["name"];
  auto* asset = cfg_.server.playground ? find_embedded(playground_assets(), name) : nullptr;
  if (!asset) {
    send_problem(c, make_problem(404, "no playground file named " + std::string(name)));
    return;
  }
  send(c, 200, static_body(asset->bytes), asset->content_type, playground_asset_headers);
}

void http_api::list_models(const call_context& c, const route_params&) {
  send_json(c, 200, to_json(engine_.models()));
}

void http_api::get_usage(const call_context& c, const route_params&) {
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

void http_api::search(const call_context& c, const route_params&) {
  auto q = query(c);
  if (!q) return;
  auto request = valid(c, parse_search_query(*q));
  if (!request) return;
  request->user_id = c.user_id;
  engine_.search(std::move(*request),
                 respond<search_page>(c, 200, [](auto& page) { return to_json(page); }));
}

void http_api::export_conversation(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto q = query(c);
  if (!q) return;
  auto format = q->count("format") ? q->at("format") : std::string("json");
  if (format != "json" && format != "markdown") {
    send_problem(c, invalid_field("format", "must be json or markdown"));
    return;
  }
  bool markdown = format == "markdown";
  // Markdown is the transcript of the branch shown; JSON carries the whole tree.
  engine_.export_conversation(c.user_id, *id, !markdown,
                              tracked<conversation_export>([c, markdown](auto r) {
                                if (!r) {
                                  send_problem(c, to_problem(r.error()));
                                  return;
                                }
                                if (markdown)
                                  send(c, 200, export_markdown(*r), "text/markdown; charset=utf-8");
                                else
                                  send(c, 200, export_json(*r), "application/json");
                              }));
}

void http_api::export_all(const call_context& c, const route_params&) {
  constexpr unsigned page_size = 16;
  std::make_shared<export_stream>(c, engine_, page_size)->start();
}

void http_api::import_conversations(const call_context& c, const route_params&) {
  auto media = c.req->header().opt_value_of(restinio::http_field::content_type);
  bool ndjson = media && media->find("ndjson") != std::string_view::npos;
  import_context ctx{c.user_id, now_ms(), &engine_.models()};
  // The reader runs on the engine's import actor; the request (and with it
  // the body the reader reads) lives as long as the reader.
  auto reader = read_import(c.req->body(), ndjson, ctx);
  import_reader keeping_body = [reader, req = c.req] { return reader(); };
  engine_.import_conversations(
      c.user_id, std::move(keeping_body),
      respond<import_summary>(c, 200, [](auto& summary) { return to_json(summary); }));
}

void http_api::list_conversations(const call_context& c, const route_params&) {
  auto q = query(c);
  if (!q) return;
  auto page = valid(c, parse_list_query(*q));
  if (!page) return;
  engine_.list_conversations(
      c.user_id, page->limit, page->cursor,
      respond<conversation_page>(c, 200, [](auto& p) { return to_json(p); }));
}

void http_api::create_conversation(const call_context& c, const route_params&) {
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
    if (first->reply) first->cancel = cancel_on_disconnect(c, first->cancel_on_disconnect);
  }
  exchanges_->run(c, *body, {.is_create = true}, stream, slot,
                  [this, request = *request](auto claim, auto reply) {
                    engine_.create_conversation(request, std::move(claim), std::move(reply));
                  });
}

void http_api::get_conversation(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  engine_.get_conversation(
      c.user_id, *id, respond<conversation_record>(c, 200, [](auto& r) { return to_json(r); }));
}

void http_api::update_conversation(const call_context& c, const route_params& params) {
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

void http_api::delete_conversation(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  engine_.delete_conversation(c.user_id, *id,
                              respond<done>(c, 204, [](auto&) { return nlohmann::json(); }));
}

void http_api::list_messages(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto q = query(c);
  if (!q) return;
  auto history = valid(c, parse_history_query(*q));
  if (!history) return;
  engine_.list_messages(c.user_id, *id, *history, respond<message_page>(c, 200, [](auto& p) {
                          return rendered_json{page_json(p)};
                        }));
}

void http_api::send_message(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto body = json_body(c);
  if (!body) return;
  auto request = valid(c, parse_send_message(*body, limits_));
  if (!request) return;
  auto& message = request->params;
  std::shared_ptr<void> slot;
  if (message.reply) {
    auto claimed = generation_slot(c);
    if (!claimed) return;
    slot = *claimed;
  }
  auto sse = stream_if_wanted(c, request->stream);
  message.stream = sse;
  if (message.reply) message.cancel = cancel_on_disconnect(c, message.cancel_on_disconnect);
  exchanges_->run(c, *body, {}, sse, slot,
                  [this, user = c.user_id, id = *id, p = message](auto claim, auto reply) {
                    engine_.send_message(user, id, p, std::move(claim), std::move(reply));
                  });
}

void http_api::edit_message(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto mid = message_id(c, params);
  if (!mid) return;
  auto body = json_body(c);
  if (!body) return;
  auto content = valid(c, parse_message_edit(*body, limits_));
  if (!content) return;
  engine_.edit_message(c.user_id, *id, *mid, *content, respond<message_record>(c, 200, [](auto& m) {
                         return rendered_json{message_json(m)};
                       }));
}

void http_api::delete_message(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto mid = message_id(c, params);
  if (!mid) return;
  engine_.delete_message(c.user_id, *id, *mid,
                         respond<done>(c, 204, [](auto&) { return nlohmann::json(); }));
}

void http_api::regenerate(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto body = json_body(c);
  if (!body) return;
  auto request = valid(c, parse_regenerate(*body, limits_));
  if (!request) return;
  auto slot = generation_slot(c);
  if (!slot) return;
  auto sse = stream_if_wanted(c, request->stream);
  auto& asked = request->params;
  asked.stream = sse;
  asked.cancel = cancel_on_disconnect(c, asked.cancel_on_disconnect);
  exchanges_->run(c, *body, {}, sse, *slot,
                  [this, user = c.user_id, id = *id, p = asked](auto claim, auto reply) {
                    engine_.regenerate(user, id, p, std::move(claim), std::move(reply));
                  });
}

void http_api::resume_stream(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto q = query(c);
  if (!q) return;
  auto last_event_id = c.req->header().opt_value_of("Last-Event-ID");
  auto from = valid(
      c, parse_resume_position(
             *q, last_event_id ? std::optional<std::string_view>(*last_event_id) : std::nullopt));
  if (!from) return;
  auto sse = open_stream(c, parley_sse_format());
  sse->end_after_run();
  engine_.resume(c.user_id, *id, *from, sse, true,
                 tracked<resume_outcome>([c, sse](outcome<resume_outcome> r) {
                   // A stream that began carries everything, its end included.
                   if (r && *r == resume_outcome::streaming) return;
                   if (!r) {
                     // An unknown run is refused before any stream begins.
                     if (!sse->fail(to_problem(r.error()))) send_problem(c, to_problem(r.error()));
                     return;
                   }
                   // Nothing to deliver; 204 also tells an EventSource to stop.
                   if (!sse->close_with({})) send_no_content(c);
                 }));
}

void http_api::cancel_exchange(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  engine_.cancel_exchange(c.user_id, *id, respond<message_record>(c, 200, [](auto& m) {
                            return rendered_json{message_json(m)};
                          }));
}

void http_api::list_summaries(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  engine_.list_summaries(c.user_id, *id, respond<std::vector<summary_record>>(c, 200, [](auto& s) {
                           return to_json(s);
                         }));
}

void http_api::compact_conversation(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto body = json_body(c);
  if (!body) return;
  auto model = valid(c, parse_compact(*body, limits_));
  if (!model) return;
  // Held until the answer: a summary takes a generation slot like a reply.
  auto slot = generation_slot(c);
  if (!slot) return;
  engine_.compact(c.user_id, *id, *model,
                  respond<summary_record>(c, 201, [slot = *slot](auto& s) { return to_json(s); }));
}

void http_api::fork_conversation(const call_context& c, const route_params& params) {
  auto id = conversation_id(c, params);
  if (!id) return;
  auto body = json_body(c);
  if (!body) return;
  auto request = valid(c, parse_fork(*body, limits_));
  if (!request) return;
  exchanges_->run(c, *body, {.is_create = true}, nullptr, nullptr,
                  [this, user = c.user_id, id = *id, r = *request](auto claim, auto reply) {
                    engine_.fork_conversation(user, id, r, std::move(claim), std::move(reply));
                  });
}

}  // namespace parley
