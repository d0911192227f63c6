// parley-mock-upstream: a stand-in for an LLM provider, speaking OpenAI's
// /chat/completions and Anthropic's /v1/messages, whole or streamed (SSE),
// with latency and faults chosen per request. The integration tests drive
// every provider fault through it; bench/providers.sh loads Parley with it.
//
// Control API: POST /_mock/behaviors (a JSON array; each completion request
// takes the next, else the command line's default), DELETE /_mock/behaviors,
// GET/DELETE /_mock/requests (what the completion routes received),
// GET /_mock/stats ({"requests", "in_flight", "abandoned"}).

#include <restinio/all.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <deque>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace {

using nlohmann::json;
using restinio::request_handle_t;
using std::chrono::milliseconds;

/// How one completion request is answered.
struct behavior {
  unsigned ttft_ms = 0;
  unsigned itl_ms = 0;
  unsigned words = 0;  ///< 0: "Mock: <last user message>"
  std::optional<std::int64_t> prompt_tokens;
  int status = 200;
  std::optional<unsigned> retry_after;
  std::string fault = "none";
};

behavior behavior_from(const json& j, behavior b) {
  if (!j.is_object()) return b;
  b.ttft_ms = j.value("ttft_ms", b.ttft_ms);
  b.itl_ms = j.value("itl_ms", b.itl_ms);
  b.words = j.value("words", b.words);
  if (j.contains("prompt_tokens")) b.prompt_tokens = j["prompt_tokens"].get<std::int64_t>();
  b.status = j.value("status", b.status);
  if (j.contains("retry_after")) b.retry_after = j["retry_after"].get<unsigned>();
  b.fault = j.value("fault", b.fault);
  return b;
}

enum class protocol { openai, anthropic };

/// The pieces of a reply: each word with the white space before it.
std::vector<std::string> pieces_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto word = text.find_first_not_of(' ', pos);
    if (word == std::string::npos) break;
    auto end = text.find(' ', word);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

std::int64_t estimate_prompt(const json& body) {
  auto tokens = [](const std::string& s) {
    return static_cast<std::int64_t>(s.size() + 3) / 4 + 4;
  };
  std::int64_t n = 0;
  if (body.contains("system") && body["system"].is_string()) n += tokens(body["system"]);
  for (auto& m : body.value("messages", json::array()))
    if (m.is_object() && m.contains("content") && m["content"].is_string())
      n += tokens(m["content"]);
  return n;
}

std::string error_body(protocol p, int status, const std::string& message) {
  if (p == protocol::anthropic)
    return json{
        {"type", "error"},
        {"error",
         {{"type", status == 429 ? "rate_limit_error" : "api_error"}, {"message", message}}}}
        .dump();
  return json{{"error", {{"message", message}, {"type", "server_error"}, {"code", status}}}}.dump();
}

class mock_server;

/// One completion request being answered, step by step on its own strand.
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(mock_server& server, asio::io_context& io, request_handle_t req, protocol p, json body,
           behavior b);
  void start();
  /// The client's connection closed; stop answering.
  void abandon();
  bool finished() const { return finished_; }

 private:
  void after(unsigned ms, std::function<void()> step);
  void answer_whole();
  void answer_error();
  void stream_headers();
  void stream_next();
  void finish_stream();
  void cut_off();
  std::string event(const json& data, const char* name) const;
  std::string piece_event(const std::string& piece) const;
  std::vector<std::string> closing_events() const;
  json whole_answer() const;
  void done();

  mock_server& server_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  request_handle_t req_;
  std::uint64_t connection_id_;
  protocol protocol_;
  json body_;
  behavior behavior_;
  bool stream_ = false;
  std::vector<std::string> pieces_;
  std::string finish_ = "stop";
  std::int64_t prompt_tokens_ = 0;
  std::size_t next_ = 0;
  std::optional<restinio::response_builder_t<restinio::chunked_output_t>> chunked_;
  std::atomic<bool> finished_{false};
};

class mock_server {
 public:
  explicit mock_server(behavior defaults) : defaults_(defaults) {}

  restinio::request_handling_status_t handle(request_handle_t req, asio::io_context& io) {
    auto target = std::string(req->header().path());
    auto method = req->header().method();
    if (method == restinio::http_method_post() &&
        (target == "/v1/chat/completions" || target == "/chat/completions"))
      return completion(std::move(req), io, protocol::openai);
    if (method == restinio::http_method_post() && target == "/v1/messages")
      return completion(std::move(req), io, protocol::anthropic);
    if (target == "/_mock/behaviors" && method == restinio::http_method_post()) {
      auto list = json::parse(req->body(), nullptr, false);
      if (!list.is_array()) return reply(req, 400, json{{"error", "expected a JSON array"}});
      std::lock_guard lock(mutex_);
      for (auto& b : list) queued_.push_back(behavior_from(b, defaults_));
      return reply(req, 204, nullptr);
    }
    if (target == "/_mock/behaviors" && method == restinio::http_method_delete()) {
      std::lock_guard lock(mutex_);
      queued_.clear();
      return reply(req, 204, nullptr);
    }
    if (target == "/_mock/requests" && method == restinio::http_method_get()) {
      std::lock_guard lock(mutex_);
      return reply(req, 200, received_);
    }
    if (target == "/_mock/requests" && method == restinio::http_method_delete()) {
      std::lock_guard lock(mutex_);
      received_ = json::array();
      return reply(req, 204, nullptr);
    }
    if (target == "/_mock/stats" && method == restinio::http_method_get()) {
      std::lock_guard lock(mutex_);
      return reply(
          req, 200,
          json{{"requests", requests_}, {"in_flight", in_flight_}, {"abandoned", abandoned_}});
    }
    return reply(req, 404, json{{"error", "no such route"}});
  }

  void connection_closed(std::uint64_t connection_id) {
    std::vector<std::shared_ptr<exchange>> open;
    {
      std::lock_guard lock(mutex_);
      auto i = by_connection_.find(connection_id);
      if (i == by_connection_.end()) return;
      open = std::move(i->second);
      by_connection_.erase(i);
    }
    for (auto& e : open) e->abandon();
  }

  /// An exchange ended: answered in full (or cut) or abandoned by its client.
  void ended(const exchange* e, std::uint64_t connection_id, bool abandoned) {
    std::lock_guard lock(mutex_);
    --in_flight_;
    if (abandoned) ++abandoned_;
    if (auto i = by_connection_.find(connection_id); i != by_connection_.end())
      std::erase_if(i->second, [e](auto& held) { return held.get() == e; });
  }

 private:
  restinio::request_handling_status_t reply(const request_handle_t& req, int status,
                                            const json& body) {
    auto resp = req->create_response(restinio::http_status_line_t{
        restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, "Mock"});
    if (!body.is_null()) {
      resp.append_header(restinio::http_field::content_type, "application/json");
      resp.set_body(body.dump());
    }
    return resp.done();
  }

  restinio::request_handling_status_t completion(request_handle_t req, asio::io_context& io,
                                                 protocol p) {
    auto body = json::parse(req->body(), nullptr, false);
    json headers = json::object();
    for (auto name : {"authorization", "x-api-key", "anthropic-version", "content-type"})
      if (auto v = req->header().opt_value_of(name)) headers[name] = std::string(*v);
    behavior b = defaults_;
    {
      std::lock_guard lock(mutex_);
      received_.push_back({{"path", std::string(req->header().path())},
                           {"headers", headers},
                           {"body", body.is_discarded() ? json(req->body()) : body}});
      ++requests_;
      if (!queued_.empty()) {
        b = queued_.front();
        queued_.pop_front();
      }
    }
    if (body.is_discarded() || !body.is_object()) {
      auto resp = req->create_response(restinio::status_bad_request());
      resp.append_header(restinio::http_field::content_type, "application/json");
      resp.set_body(error_body(p, 400, "the body is not a JSON object"));
      return resp.done();
    }
    auto e = std::make_shared<exchange>(*this, io, req, p, std::move(body), b);
    {
      std::lock_guard lock(mutex_);
      ++in_flight_;
      by_connection_[req->connection_id()].push_back(e);
    }
    e->start();
    return restinio::request_accepted();
  }

  const behavior defaults_;
  std::mutex mutex_;
  std::deque<behavior> queued_;                                // guarded by mutex_
  json received_ = json::array();                              // guarded by mutex_
  std::int64_t requests_ = 0, in_flight_ = 0, abandoned_ = 0;  // guarded by mutex_
  // Holds every unfinished exchange, including those that never answer.
  std::unordered_map<std::uint64_t, std::vector<std::shared_ptr<exchange>>>
      by_connection_;  // guarded by mutex_
};

exchange::exchange(mock_server& server, asio::io_context& io, request_handle_t req, protocol p,
                   json body, behavior b)
    : server_(server),
      strand_(asio::make_strand(io)),
      timer_(strand_),
      req_(std::move(req)),
      connection_id_(req_->connection_id()),
      protocol_(p),
      body_(std::move(body)),
      behavior_(b) {
  stream_ = body_.value("stream", false);
  std::string text;
  if (behavior_.words > 0) {
    for (unsigned i = 1; i <= behavior_.words; ++i)
      text += (i > 1 ? " w" : "w") + std::to_string(i);
  } else {
    std::string last;
    for (auto& m : body_.value("messages", json::array()))
      if (m.is_object() && m.value("role", "") == "user" && m["content"].is_string())
        last = m["content"];
    text = "Mock: " + last;
  }
  pieces_ = pieces_of(text);
  auto max_tokens = body_.value("max_tokens", body_.value("max_completion_tokens", 0));
  if (max_tokens > 0 && pieces_.size() > static_cast<std::size_t>(max_tokens)) {
    pieces_.resize(static_cast<std::size_t>(max_tokens));
    finish_ = "length";
  }
  prompt_tokens_ = behavior_.prompt_tokens.value_or(estimate_prompt(body_));
}

void exchange::start() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    auto& b = self->behavior_;
    if (b.fault == "stall") return;  // never answers; the client has to give up
    if (b.status != 200) {
      self->after(b.ttft_ms, [self] { self->answer_error(); });
      return;
    }
    if (b.fault == "cut") {
      self->after(b.ttft_ms, [self] { self->cut_off(); });
      return;
    }
    if (!self->stream_) {
      auto total = b.ttft_ms + b.itl_ms * static_cast<unsigned>(
                                              self->pieces_.empty() ? 0 : self->pieces_.size() - 1);
      self->after(total, [self] { self->answer_whole(); });
      return;
    }
    self->stream_headers();
    self->after(b.ttft_ms, [self] { self->stream_next(); });
  });
}

void exchange::abandon() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->finished_.exchange(true)) return;
    self->timer_.cancel();
    self->server_.ended(self.get(), self->connection_id_, true);
  });
}

void exchange::after(unsigned ms, std::function<void()> step) {
  if (finished_) return;
  timer_.expires_after(milliseconds(ms));
  timer_.async_wait([self = shared_from_this(), step](const asio::error_code& ec) {
    if (!ec && !self->finished_) step();
  });
}

void exchange::done() {
  if (!finished_.exchange(true)) server_.ended(this, connection_id_, false);
}

json exchange::whole_answer() const {
  std::string text;
  for (auto& p : pieces_) text += p;
  auto completion = static_cast<std::int64_t>(pieces_.size());
  auto model = body_.value("model", "mock");
  if (protocol_ == protocol::anthropic)
    return {{"id", "msg_mock"},
            {"type", "message"},
            {"role", "assistant"},
            {"model", model},
            {"content", json::array({{{"type", "text"}, {"text", text}}})},
            {"stop_reason", finish_ == "length" ? "max_tokens" : "end_turn"},
            {"stop_sequence", nullptr},
            {"usage", {{"input_tokens", prompt_tokens_}, {"output_tokens", completion}}}};
  return {{"id", "chatcmpl-mock"},
          {"object", "chat.completion"},
          {"created", 1764000000},
          {"model", model},
          {"choices", json::array({{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", text}}},
                                    {"finish_reason", finish_}}})},
          {"usage",
           {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion},
            {"total_tokens", prompt_tokens_ + completion}}}};
}

void exchange::answer_whole() {
  auto resp = req_->create_response();
  resp.append_header(restinio::http_field::content_type, "application/json");
  resp.set_body(behavior_.fault == "malformed" ? std::string("{\"choices\": [{not json")
                                               : whole_answer().dump());
  resp.done();
  done();
}

void exchange::answer_error() {
  auto resp = req_->create_response(restinio::http_status_line_t{
      restinio::http_status_code_t{static_cast<std::uint16_t>(behavior_.status)}, "Mock Error"});
  resp.append_header(restinio::http_field::content_type, "application/json");
  if (behavior_.retry_after)
    resp.append_header("Retry-After", std::to_string(*behavior_.retry_after));
  resp.set_body(
      error_body(protocol_, behavior_.status, "mock failure " + std::to_string(behavior_.status)));
  resp.done();
  done();
}

std::string exchange::event(const json& data, const char* name) const {
  std::string out;
  if (name) out += std::string("event: ") + name + "\n";
  return out + "data: " + data.dump() + "\n\n";
}

std::string exchange::piece_event(const std::string& piece) const {
  if (protocol_ == protocol::anthropic)
    return event({{"type", "content_block_delta"},
                  {"index", 0},
                  {"delta", {{"type", "text_delta"}, {"text", piece}}}},
                 "content_block_delta");
  return event(
      {{"id", "chatcmpl-mock"},
       {"object", "chat.completion.chunk"},
       {"model", body_.value("model", "mock")},
       {"choices",
        json::array(
            {{{"index", 0}, {"delta", {{"content", piece}}}, {"finish_reason", nullptr}}})}},
      nullptr);
}

std::vector<std::string> exchange::closing_events() const {
  auto completion = static_cast<std::int64_t>(pieces_.size());
  if (protocol_ == protocol::anthropic)
    return {event({{"type", "content_block_stop"}, {"index", 0}}, "content_block_stop"),
            event({{"type", "message_delta"},
                   {"delta",
                    {{"stop_reason", finish_ == "length" ? "max_tokens" : "end_turn"},
                     {"stop_sequence", nullptr}}},
                   {"usage", {{"output_tokens", completion}}}},
                  "message_delta"),
            event({{"type", "message_stop"}}, "message_stop")};
  std::vector<std::string> out{event(
      {{"id", "chatcmpl-mock"},
       {"object", "chat.completion.chunk"},
       {"choices",
        json::array({{{"index", 0}, {"delta", json::object()}, {"finish_reason", finish_}}})}},
      nullptr)};
  if (body_.contains("stream_options") && body_["stream_options"].value("include_usage", false))
    out.push_back(event({{"id", "chatcmpl-mock"},
                         {"object", "chat.completion.chunk"},
                         {"choices", json::array()},
                         {"usage",
                          {{"prompt_tokens", prompt_tokens_},
                           {"completion_tokens", completion},
                           {"total_tokens", prompt_tokens_ + completion}}}},
                        nullptr));
  out.push_back("data: [DONE]\n\n");
  return out;
}

void exchange::stream_headers() {
  chunked_.emplace(req_->create_response<restinio::chunked_output_t>());
  chunked_->append_header(restinio::http_field::content_type, "text/event-stream");
  chunked_->append_header(restinio::http_field::cache_control, "no-cache");
  if (protocol_ == protocol::anthropic) {
    chunked_->append_chunk(
        event({{"type", "message_start"},
               {"message",
                {{"id", "msg_mock"},
                 {"type", "message"},
                 {"role", "assistant"},
                 {"model", body_.value("model", "mock")},
                 {"content", json::array()},
                 {"stop_reason", nullptr},
                 {"usage", {{"input_tokens", prompt_tokens_}, {"output_tokens", 1}}}}}},
              "message_start"));
    chunked_->append_chunk(event({{"type", "content_block_start"},
                                  {"index", 0},
                                  {"content_block", {{"type", "text"}, {"text", ""}}}},
                                 "content_block_start"));
    chunked_->append_chunk(event({{"type", "ping"}}, "ping"));
  }
  chunked_->flush();
}

void exchange::stream_next() {
  auto& b = behavior_;
  if (b.fault == "malformed") {
    chunked_->append_chunk(std::string("data: {not json\n\n"));
    finish_stream();
    return;
  }
  if (next_ < pieces_.size()) {
    chunked_->append_chunk(piece_event(pieces_[next_++]));
    chunked_->flush();
    if (b.fault == "stall_after_first") return;  // headers and one piece, then silence
    if (b.fault == "error_event") {
      chunked_->append_chunk(
          protocol_ == protocol::anthropic
              ? "event: error\ndata: " + error_body(protocol_, 529, "Overloaded") + "\n\n"
              : "data: " + error_body(protocol_, 500, "Overloaded") + "\n\n");
      finish_stream();
      return;
    }
    if (next_ < pieces_.size()) {
      after(b.itl_ms, [self = shared_from_this()] { self->stream_next(); });
      return;
    }
  }
  for (auto& e : closing_events()) chunked_->append_chunk(e);
  finish_stream();
}

void exchange::finish_stream() {
  chunked_->done();
  done();
}

void exchange::cut_off() {
  // Declare more than is sent, send about half, close: the client sees an
  // incomplete transfer.
  std::string half;
  if (stream_) {
    for (std::size_t i = 0; i < pieces_.size() / 2 + 1 && i < pieces_.size(); ++i)
      half += piece_event(pieces_[i]);
  } else {
    auto whole = whole_answer().dump();
    half = whole.substr(0, whole.size() / 2);
  }
  auto resp = req_->create_response<restinio::user_controlled_output_t>();
  resp.append_header(restinio::http_field::content_type,
                     stream_ ? "text/event-stream" : "application/json");
  resp.set_content_length(half.size() * 2 + 64);
  resp.append_body(half);
  resp.connection_close();
  resp.done();
  done();
}

/// Tells the server which connections close, so that waiting exchanges stop.
struct close_listener {
  mock_server* server = nullptr;
  void state_changed(const restinio::connection_state::notice_t& notice) noexcept {
    if (std::holds_alternative<restinio::connection_state::closed_t>(notice.cause()))
      server->connection_closed(notice.connection_id());
  }
};

struct mock_traits : restinio::default_traits_t {
  using connection_state_listener_t = close_listener;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A mock LLM provider (OpenAI and Anthropic protocols) for Parley's tests",
               "parley-mock-upstream"};
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  unsigned threads = 2;
  behavior defaults;
  app.add_option("--host", host, "address to listen on");
  app.add_option("--port", port, "port (0: a free one)");
  app.add_option("--threads", threads, "I/O threads")->check(CLI::Range(1u, 64u));
  app.add_option("--ttft-ms", defaults.ttft_ms, "default time to first piece");
  app.add_option("--itl-ms", defaults.itl_ms, "default time between pieces");
  app.add_option("--words", defaults.words, "default reply length in words (0: echo)");
  CLI11_PARSE(app, argc, argv);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  mock_server mock(defaults);
  std::atomic<std::uint16_t> bound{0};
  using server_t = restinio::http_server_t<mock_traits>;
  std::unique_ptr<server_t> server;
  server = std::make_unique<server_t>(restinio::own_io_context(), [&](auto& s) {
    s.address(host)
        .port(port)
        .max_pipelined_requests(2)  // keep reading, so a client hanging up is seen
        .connection_state_listener(std::make_shared<close_listener>(close_listener{&mock}))
        .request_handler(
            [&](request_handle_t req) { return mock.handle(std::move(req), server->io_context()); })
        .acceptor_post_bind_hook(
            [&](asio::ip::tcp::acceptor& acceptor) { bound = acceptor.local_endpoint().port(); })
        .handle_request_timeout(std::chrono::hours(24))
        .write_http_response_timelimit(std::chrono::hours(1));
  });
  std::promise<void> opened;
  asio::post(server->io_context(), [&] {
    try {
      server->open_sync();
      opened.set_value();
    } catch (...) {
      opened.set_exception(std::current_exception());
    }
  });
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back([&] { server->io_context().run(); });
  try {
    opened.get_future().get();
  } catch (const std::exception& e) {
    std::cerr << "parley-mock-upstream: " << e.what() << "\n";
    server->io_context().stop();
    for (auto& t : pool) t.join();
    return 1;
  }
  std::cout << "mock upstream listening on http://" << host << ":" << bound.load() << std::endl;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  server->io_context().stop();
  for (auto& t : pool) t.join();
  return 0;
}
