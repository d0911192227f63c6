#include "http/sse_stream.hpp"

#include "http/json_mapping.hpp"
#include "http/problem.hpp"

namespace parley {

std::string sse_event(const char* name, const std::string& json) {
  std::string out;
  out.reserve(json.size() + 24);
  out.append("event: ").append(name).append("\ndata: ").append(json).append("\n\n");
  return out;
}

sse_stream::sse_stream(restinio::request_handle_t req, std::string request_id,
                       std::uint64_t max_queued_bytes, header_list headers)
    : req_(std::move(req)),
      request_id_(std::move(request_id)),
      max_queued_bytes_(max_queued_bytes),
      headers_(std::move(headers)) {}

bool sse_stream::deliver(const conversation_event& e) {
  using kind = conversation_event::kind;
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::ended) return false;
  if (phase_ == phase::waiting) open();
  std::string bytes;
  switch (e.type) {
    case kind::started:
      break;  // the headers (sent by open()) are all it needs
    case kind::message:
      bytes = sse_event("message", message_json(*e.message));
      break;
    case kind::delta:
      bytes = sse_event("delta", dump(nlohmann::json{{"content", e.text}}));
      break;
    case kind::done:
      bytes = sse_event("done", message_json(*e.message));
      break;
    case kind::branch:
      bytes = sse_event("branch", dump(branch_json(e.active_leaf_id)));
      break;
    case kind::closed:
      end_with_error(render_problem(to_problem(*e.reason), request_id_));
      return false;
  }
  if (!bytes.empty()) {
    // Past the limit only while earlier events still wait: one large event
    // (a long reply's done) on an idle connection is no slow reader.
    if (flushing_bytes_ + unflushed_bytes_ > max_queued_bytes_) {
      end_with_error(render_problem(
          make_problem(503, "the client read the stream too slowly: more than " +
                                std::to_string(max_queued_bytes_) + " bytes were waiting"),
          request_id_));
      return false;
    }
    write(std::move(bytes));
  }
  return true;
}

bool sse_stream::finish(const outcome<exchange_answer>& r) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::waiting) {
    phase_ = phase::ended;
    return false;
  }
  if (phase_ == phase::ended) return true;
  if (!r) {
    end_with_error(render_problem(to_problem(r.error()), request_id_));
    return true;
  }
  phase_ = phase::ended;
  response_->done();
  return true;
}

bool sse_stream::keep_alive(clock::time_point now, clock::duration idle) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::ended) return false;
  if (phase_ == phase::open && now - last_write_ >= idle) write(": keep-alive\n\n");
  return true;
}

void sse_stream::open() {
  phase_ = phase::open;
  response_.emplace(req_->create_response<restinio::chunked_output_t>());
  response_->append_header("X-Request-Id", request_id_);
  for (auto& [name, value] : headers_) response_->append_header(name, value);
  response_->append_header(restinio::http_field::content_type, "text/event-stream");
  response_->append_header(restinio::http_field::cache_control, "no-cache");
  // Tells nginx-style proxies not to hold the events back.
  response_->append_header("X-Accel-Buffering", "no");
  // The headers go at once, before the first token.
  last_write_ = clock::now();
  start_flush();
}

void sse_stream::write(std::string bytes) {
  unflushed_bytes_ += bytes.size();
  last_write_ = clock::now();
  response_->append_chunk(std::move(bytes));
  if (!flushing_) start_flush();
}

void sse_stream::start_flush() {
  flushing_ = true;
  flushing_bytes_ = unflushed_bytes_;
  unflushed_bytes_ = 0;
  // The callback runs on the connection's I/O thread once the socket took the
  // bytes, or at once when the connection is gone.
  response_->flush([self = shared_from_this()](const asio::error_code&) { self->written(); });
}

void sse_stream::written() {
  recursive_mutex_lock lock(mutex_);
  flushing_ = false;
  flushing_bytes_ = 0;
  // After done() RESTinio sends what is left by itself.
  if (phase_ == phase::open && unflushed_bytes_ > 0) start_flush();
}

void sse_stream::end_with_error(const std::string& problem_json) {
  // The error event may go past the queue limit: it is small and the last.
  write(sse_event("error", problem_json));
  phase_ = phase::ended;
  // The connection stays open for the next request once the client has read
  // this far (RESTinio fixes keep-alive when the headers go); one that reads
  // nothing at all is closed by the server's write timeout.
  response_->done();
}

}  // namespace parley
