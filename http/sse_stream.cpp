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

namespace {

class parley_events final : public sse_format {
 public:
  std::string event(const conversation_event& e) override {
    using kind = conversation_event::kind;
    switch (e.type) {
      case kind::started:
      case kind::closed:
      case kind::failed:
      case kind::edited:
      case kind::removed:
        break;  // the headers are all `started` needs; the others are failures or not
                // an exchange's (a stream follows one exchange)
      case kind::message:
        return sse_event("message", message_json(*e.message));
      case kind::delta:
        return sse_event("delta", dump(nlohmann::json{{"content", e.text}}));
      case kind::done:
        return sse_event("done", message_json(*e.message));
      case kind::branch:
        return sse_event("branch", dump(branch_json(e.active_leaf_id)));
      case kind::compaction:
        return sse_event("compaction", dump(to_json(*e.summary)));
    }
    return {};
  }
  std::string failure(const problem& p, const std::string& request_id) override {
    return sse_event("error", render_problem(p, request_id));
  }
  std::string restart(const problem& p, const std::string& request_id) override {
    return sse_event("restart", render_problem(p, request_id));
  }
  bool numbered() const override { return true; }
};

/// `bytes` (one event) with the id of run event `e` first, for a numbered format.
std::string with_id(const conversation_event& e, std::string bytes) {
  if (!e.run_id || bytes.empty()) return bytes;
  std::string out;
  out.reserve(bytes.size() + e.run_id->size() + 28);
  out.append("id: ").append(*e.run_id).append(":").append(std::to_string(e.n)).append("\n");
  return out.append(bytes);
}

}  // namespace

std::unique_ptr<sse_format> parley_sse_format() { return std::make_unique<parley_events>(); }

sse_stream::sse_stream(restinio::request_handle_t req, std::string request_id,
                       std::uint64_t max_queued_bytes, header_list headers,
                       std::unique_ptr<sse_format> format)
    : req_(std::move(req)),
      request_id_(std::move(request_id)),
      max_queued_bytes_(max_queued_bytes),
      headers_(std::move(headers)),
      format_(std::move(format)) {}

bool sse_stream::deliver(const conversation_event& e) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::ended || phase_ == phase::declined) return false;
  if (phase_ == phase::waiting) open(e.run_id);
  using kind = conversation_event::kind;
  auto numbered = [&](std::string bytes) {
    return format_->numbered() ? with_id(e, std::move(bytes)) : bytes;
  };
  if (e.type == kind::closed || e.type == kind::failed) {
    end_with(numbered(format_->failure(to_problem(*e.reason), request_id_)));
    return false;
  }
  auto bytes = numbered(format_->event(e));
  if (!bytes.empty()) {
    // Past the limit only while earlier events still wait: one large event
    // (a long reply's done) on an idle connection is no slow reader.
    if (flushing_bytes_ + unflushed_bytes_ > max_queued_bytes_) {
      end_with(format_->failure(
          make_problem(503, "the client read the stream too slowly: more than " +
                                std::to_string(max_queued_bytes_) + " bytes were waiting"),
          request_id_));
      return false;
    }
    write(std::move(bytes));
  }
  if (e.type == kind::done && ends_after_run_) {
    end_with({});
    return false;
  }
  return true;
}

void sse_stream::end_after_run() {
  recursive_mutex_lock lock(mutex_);
  ends_after_run_ = true;
}

bool sse_stream::began() {
  if (phase_ == phase::waiting) phase_ = phase::declined;
  return phase_ != phase::declined;
}

bool sse_stream::finish(const outcome<exchange_answer>& r) {
  recursive_mutex_lock lock(mutex_);
  if (!began()) return false;
  if (phase_ == phase::ended) return true;
  // A success has said everything with its events (`done`).
  end_with(r ? std::string() : format_->failure(to_problem(r.error()), request_id_));
  return true;
}

bool sse_stream::close_with(std::string last) {
  recursive_mutex_lock lock(mutex_);
  if (!began()) return false;
  if (phase_ != phase::ended) end_with(std::move(last));
  return true;
}

bool sse_stream::fail(const problem& p) {
  recursive_mutex_lock lock(mutex_);
  if (!began()) return false;
  if (phase_ != phase::ended) end_with(format_->failure(p, request_id_));
  return true;
}

void sse_stream::end_for_restart() {
  recursive_mutex_lock lock(mutex_);
  if (phase_ != phase::open) return;  // one not begun is answered plainly as the engine stops
  auto p = make_problem(503, "the server is restarting; reconnect and resume from the last event");
  p.retry_after_s = 1;
  end_with(format_->restart(p, request_id_));
}

bool sse_stream::keep_alive(clock::time_point now, clock::duration idle) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::ended || phase_ == phase::declined) return false;
  if (phase_ == phase::open && now - last_write_ >= idle) write(": keep-alive\n\n");
  return true;
}

void sse_stream::open(const std::string* run_id) {
  phase_ = phase::open;
  response_.emplace(req_->create_response<restinio::chunked_output_t>());
  response_->append_header("X-Request-Id", request_id_);
  if (run_id) response_->append_header("X-Run-Id", *run_id);
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

void sse_stream::end_with(std::string last) {
  // The last bytes may go past the queue limit: they are few and the last.
  if (!last.empty()) write(std::move(last));
  phase_ = phase::ended;
  // The connection stays open for the next request once the client has read
  // this far (RESTinio fixes keep-alive when the headers go); one that reads
  // nothing at all is closed by the server's write timeout.
  response_->done();
}

}  // namespace parley
