#include "http/request_log.hpp"

#include "telemetry/logging.hpp"
#include "telemetry/metrics.hpp"

namespace parley {

namespace {

constexpr std::size_t logged_body_limit = 8192;
// Targets up to 8 x server.max_header_bytes reach a handler (which answers
// 414); a log line needs no more than the start of one.
constexpr std::size_t logged_path_limit = 1024;

struct http_instruments {
  metrics::family<metrics::counter>& requests;
  metrics::family<metrics::histogram>& duration;
};

http_instruments& recorded_http_metrics() {
  static auto& r = metrics::default_registry();
  static http_instruments m{
      r.counters("parley_http_requests_total", "HTTP requests answered, by route template.",
                 {"method", "route", "status"}),
      r.histograms("parley_http_request_duration_seconds",
                   "Time from reading a request to sending its answer (streams: to their end).",
                   {"method", "route"}, metrics::latency_buckets()),
  };
  return m;
}

}  // namespace

request_record::request_record(std::string method, std::string route, std::string path,
                               std::string request_id)
    : method_(std::move(method)),
      route_(std::move(route)),
      path_(std::move(path)),
      request_id_(std::move(request_id)) {
  if (path_.size() > logged_path_limit) path_.resize(logged_path_limit);
}

void request_record::set_body(std::string_view body) {
  // Only what is logged is copied: a body may be megabytes.
  body_truncated_ = body.size() > logged_body_limit;
  body_ = std::string(body.substr(0, logged_body_limit));
}

void request_record::answered(int status) {
  status_.store(status);
  clock::rep unset = -1;
  answered_after_.compare_exchange_strong(unset, (clock::now() - started_).count());
}

request_record::~request_record() {
  auto after = answered_after_.load();
  auto latency = after >= 0 ? clock::duration(after) : clock::now() - started_;
  auto seconds = std::chrono::duration<double>(latency).count();
  auto status = std::to_string(status_.load());
  auto& m = recorded_http_metrics();
  m.requests.with({method_, route_, status}).add();
  m.duration.with({method_, route_}).observe(seconds);

  std::string line = "{\"msg\":\"request\",\"request_id\":" + json_quoted(request_id_) +
                     ",\"method\":" + json_quoted(method_) + ",\"route\":" + json_quoted(route_) +
                     ",\"path\":" + json_quoted(path_) + ",\"user\":" + json_quoted(user_) +
                     ",\"status\":" + status +
                     ",\"latency_ms\":" + metrics::format_value(seconds * 1000);
  if (body_) {
    line += ",\"body\":" + json_quoted(*body_);
    if (body_truncated_) line += ",\"body_truncated\":true";
  }
  line += "}";
  log_event(line);
}

}  // namespace parley
