// parley-mock-upstream: a stand-in for an LLM provider, speaking OpenAI's
// /chat/completions and Anthropic's /v1/messages, whole or streamed (SSE),
// with latency and faults chosen per request. The integration tests drive
// every provider fault through it; bench/providers.sh loads Parley with it.
//
// Completion routes: POST /v1/chat/completions and POST /chat/completions
// (OpenAI), POST /v1/messages (Anthropic). A body that is no such request
// (not JSON, no model or messages, a stream that is not a boolean, …) is
// answered 400 in the protocol's error shape; it still counts as a request
// and takes a behavior. Each word of a reply is a piece (a delta) and a token;
// max_tokens (or max_completion_tokens) cuts the reply, finishing "length" /
// "max_tokens". Prompt tokens: all message and system text in characters / 4,
// rounded up, plus 4 a message.
//
// Control API (JSON):
//   POST   /_mock/behaviors  a JSON array of behaviors, appended to a queue;
//                            each completion request takes the next one, or
//                            the command line's default when it is empty. 204;
//                            400 (nothing queued) when any entry is invalid.
//   DELETE /_mock/behaviors  empties the queue. 204
//   GET    /_mock/requests   every completion request since the start or the
//                            last DELETE: {"path", "headers", "body"}.
//   DELETE /_mock/requests   204
//   GET    /_mock/stats      {"requests", "in_flight", "abandoned"}
//
// A behavior (every field optional; missing ones take the command line's):
//   ttft_ms, itl_ms  wait before the first piece, and between pieces; a whole
//                    answer waits ttft_ms + itl_ms * (pieces - 1)
//   words            N > 0: the reply is "w1 … wN"; 0: "Mock: <last user text>"
//   word_bytes       N > 0: each of those words is padded with x to N bytes
//   prompt_tokens    reported instead of the estimate
//   status           400 to 599: answer that, with an error body in the
//                    protocol's shape (after ttft_ms), whatever the fault
//                    but "stall"
//   retry_after      seconds, sent as Retry-After
//   fault            "none", "malformed" (a body, or first event, that is not
//                    JSON), "cut" (Content-Length promises the whole answer,
//                    about half is sent and the connection closed), "stall"
//                    (nothing is ever sent), "stall_after_first" (headers and
//                    the first piece, or half of a whole body, then nothing),
//                    "error_event" (streams: an error event after the first
//                    piece; whole: status 200 with an error body)

#include "base/mutex.hpp"

#include <restinio/all.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <deque>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace {

using nlohmann::json;
using restinio::request_handle_t;

// --- behaviors -----------------------------------------------------------------

enum class fault { none, malformed, cut, stall, stall_after_first, error_event };

/// How one completion request is answered.
struct behavior {
  unsigned ttft_ms = 0;
  unsigned itl_ms = 0;
  unsigned words = 0;  ///< 0: "Mock: <last user message>"
  unsigned word_bytes = 0;
  std::optional<std::int64_t> prompt_tokens;
  int status = 200;
  std::optional<unsigned> retry_after;
  fault kind = fault::none;
};

unsigned count_field(const json& j, const char* name, unsigned fallback) {
  auto at = j.find(name);
  if (at == j.end()) return fallback;
  if (!at->is_number_unsigned() || at->get<std::uint64_t>() > 86'400'000)
    throw std::invalid_argument(std::string(name) + " must be an integer from 0 to 86400000");
  return at->get<unsigned>();
}

/// `j` over `defaults`; throws std::invalid_argument naming what is wrong.
behavior parse_behavior(const json& j, behavior defaults) {
  if (!j.is_object()) throw std::invalid_argument("a behavior must be a JSON object");
  static const std::vector<std::string> known{"ttft_ms",    "itl_ms",        "words",
                                              "word_bytes", "prompt_tokens", "retry_after",
                                              "status",     "fault"};
  for (auto& [key, value] : j.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw std::invalid_argument("unknown behavior field \"" + key + "\"");
  behavior b = defaults;
  b.ttft_ms = count_field(j, "ttft_ms", b.ttft_ms);
  b.itl_ms = count_field(j, "itl_ms", b.itl_ms);
  b.words = count_field(j, "words", b.words);
  b.word_bytes = count_field(j, "word_bytes", b.word_bytes);
  if (j.contains("prompt_tokens")) b.prompt_tokens = count_field(j, "prompt_tokens", 0);
  if (j.contains("retry_after")) b.retry_after = count_field(j, "retry_after", 0);
  b.status = static_cast<int>(count_field(j, "status", static_cast<unsigned>(b.status)));
  // Other statuses come with an error body, which 1xx, 2xx and 3xx answers
  // cannot all carry.
  if (b.status != 200 && (b.status < 400 || b.status > 599))
    throw std::invalid_argument("status must be 200 or from 400 to 599");
  if (auto f = j.find("fault"); f != j.end()) {
    static const std::vector<std::pair<std::string, fault>> names{
        {"none", fault::none},
        {"malformed", fault::malformed},
        {"cut", fault::cut},
        {"stall", fault::stall},
        {"stall_after_first", fault::stall_after_first},
        {"error_event", fault::error_event}};
    auto named = f->is_string() ? std::find_if(names.begin(), names.end(),
                                               [&](auto& n) { return n.first == *f; })
                                : names.end();
    if (named == names.end())
      throw std::invalid_argument(
          "fault must be one of none, malformed, cut, stall, stall_after_first, error_event");
    b.kind = named->second;
  }
  return b;
}

// --- completion requests ---------------------------------------------------------

enum class protocol { openai, anthropic };

/// What a completion request asks, as far as the mock cares.
struct completion_request {
  protocol proto = protocol::openai;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::optional<std::int64_t> max_tokens;
  std::string last_user_text;
  std::int64_t estimated_prompt_tokens = 0;
};

/// The text of a message's content: a string, or an array of text parts.
std::string text_of(const json& content, const char* what) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw std::invalid_argument(std::string(what) + " must be a string or an array of parts");
  std::string text;
  for (auto& part : content)
    if (part.is_object() && part.contains("text") && part["text"].is_string())
      text += part["text"].get<std::string>();
  return text;
}

std::size_t utf8_chars(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

/// Validates a completion body; throws std::invalid_argument naming what is wrong.
completion_request parse_completion(protocol p, const json& body) {
  if (!body.is_object()) throw std::invalid_argument("the body must be a JSON object");
  completion_request r;
  r.proto = p;
  auto model = body.find("model");
  if (model == body.end() || !model->is_string())
    throw std::invalid_argument("model must be a string");
  r.model = model->get<std::string>();
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array())
    throw std::invalid_argument("messages must be an array");
  if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
    if (!s->is_boolean()) throw std::invalid_argument("stream must be a boolean");
    r.stream = s->get<bool>();
  }
  if (auto o = body.find("stream_options"); o != body.end() && o->is_object()) {
    auto usage = o->find("include_usage");
    r.include_usage = usage != o->end() && usage->is_boolean() && usage->get<bool>();
  }
  for (auto name : {"max_tokens", "max_completion_tokens"}) {
    auto m = body.find(name);
    if (m == body.end() || m->is_null()) continue;
    if (!m->is_number_integer() || m->get<std::int64_t>() < 1)
      throw std::invalid_argument(std::string(name) + " must be a positive integer");
    r.max_tokens = m->get<std::int64_t>();
  }
  if (auto t = body.find("temperature"); t != body.end() && !t->is_null() && !t->is_number())
    throw std::invalid_argument("temperature must be a number");

  // About four characters a token, and a few tokens of framing per message.
  std::size_t chars = 0;
  if (auto s = body.find("system"); s != body.end() && !s->is_null())
    chars += utf8_chars(text_of(*s, "system"));
  for (auto& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
      throw std::invalid_argument("every message needs a string role and a content");
    auto text = text_of(m["content"], "content");
    chars += utf8_chars(text);
    if (m["role"] == "user") r.last_user_text = std::move(text);
  }
  r.estimated_prompt_tokens = static_cast<std::int64_t>((chars + 3) / 4 + 4 * messages->size());
  return r;
}

/// A reply cut into pieces: each word with the white space before it, so that
/// they concatenate to the text (trailing white space goes with the last).
std::vector<std::string> pieces_of(const std::string& text) {
  static const char* space = " \t\r\n";
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto word = text.find_first_not_of(space, pos);
    if (word == std::string::npos) break;
    auto end = std::min(text.find_first_of(space, word), text.size());
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  if (pos < text.size()) {
    if (out.empty()) out.emplace_back();
    out.back() += text.substr(pos);
  }
  return out;
}

// --- answers -----------------------------------------------------------------------

std::string reason_phrase(int status) {
  static const std::vector<std::pair<int, const char*>> phrases{{200, "OK"},
                                                                {204, "No Content"},
                                                                {400, "Bad Request"},
                                                                {401, "Unauthorized"},
                                                                {403, "Forbidden"},
                                                                {404, "Not Found"},
                                                                {408, "Request Timeout"},
                                                                {413, "Payload Too Large"},
                                                                {429, "Too Many Requests"},
                                                                {500, "Internal Server Error"},
                                                                {502, "Bad Gateway"},
                                                                {503, "Service Unavailable"},
                                                                {504, "Gateway Timeout"},
                                                                {529, "Overloaded"}};
  for (auto& [code, phrase] : phrases)
    if (code == status) return phrase;
  return "Mock Status";
}

/// An error body in the protocol's shape, with the type the real API gives `status`.
std::string error_body(protocol p, int status, const std::string& message) {
  if (p == protocol::anthropic) {
    const char* type = status == 400                    ? "invalid_request_error"
                       : status == 401                  ? "authentication_error"
                       : status == 403                  ? "permission_error"
                       : status == 404                  ? "not_found_error"
                       : status == 413                  ? "request_too_large"
                       : status == 429                  ? "rate_limit_error"
                       : status == 503 || status == 529 ? "overloaded_error"
                       : status >= 500                  ? "api_error"
                                                        : "invalid_request_error";
    return json{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}}.dump();
  }
  const char* type = status == 429   ? "requests"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  json code = status == 401   ? json("invalid_api_key")
              : status == 404 ? json("model_not_found")
              : status == 429 ? json("rate_limit_exceeded")
                              : json(nullptr);
  return json{{"error", {{"message", message}, {"type", type}, {"code", code}}}}.dump();
}

std::string sse(const json& data, const char* event_name = nullptr) {
  std::string out;
  if (event_name) out += std::string("event: ") + event_name + "\n";
  return out + "data: " + data.dump() + "\n\n";
}

/// Everything one exchange sends and when, decided up front from the request
/// and its behavior; the exchange only plays it.
struct answer_plan {
  enum class ending {
    complete,  ///< the response ends as declared
    cut,       ///< the connection closes before the declared length was sent
    hang,      ///< nothing more is ever sent
  };
  bool silent = false;           ///< "stall": not even headers
  bool headers_at_once = false;  ///< streams: headers before the first piece
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Chunked transfer (streams that end properly or hang); otherwise the
  /// body has a Content-Length of `declared_length`.
  bool chunked = false;
  std::size_t declared_length = 0;
  std::string with_headers;        ///< sent at once, with the headers
  std::vector<std::string> parts;  ///< the first after first_delay_ms, then one every gap_ms
  unsigned first_delay_ms = 0;
  unsigned gap_ms = 0;
  ending end = ending::complete;
};

/// Renders the answer to one completion request (`number`: its count since start).
class answer_renderer {
 public:
  answer_renderer(const completion_request& r, const behavior& b, std::int64_t number)
      : r_(r), b_(b), number_(number) {
    std::string text;
    if (b.words > 0) {
      for (unsigned i = 1; i <= b.words; ++i) {
        auto word = "w" + std::to_string(i);
        if (word.size() < b.word_bytes) word.resize(b.word_bytes, 'x');
        text += (i > 1 ? " " : "") + word;
      }
    } else {
      text = "Mock: " + r.last_user_text;
    }
    pieces_ = pieces_of(text);
    if (r.max_tokens && pieces_.size() > static_cast<std::size_t>(*r.max_tokens)) {
      pieces_.resize(static_cast<std::size_t>(*r.max_tokens));
      cut_by_length_ = true;
    }
    prompt_tokens_ = b.prompt_tokens.value_or(r.estimated_prompt_tokens);
  }

  answer_plan plan() const {
    answer_plan a;
    if (b_.kind == fault::stall) {
      a.silent = true;
      a.end = answer_plan::ending::hang;
      return a;
    }
    if (b_.retry_after) a.headers.emplace_back("Retry-After", std::to_string(*b_.retry_after));
    if (b_.status != 200) {
      a.status = b_.status;
      a.headers.emplace_back("Content-Type", "application/json");
      a.parts = {error_body(r_.proto, b_.status, "mock failure " + std::to_string(b_.status))};
      a.first_delay_ms = b_.ttft_ms;
      a.declared_length = a.parts[0].size();
      return a;
    }
    return r_.stream ? plan_stream(a) : plan_whole(a);
  }

 private:
  answer_plan plan_whole(answer_plan a) const {
    a.headers.emplace_back("Content-Type", "application/json");
    auto gaps = pieces_.empty() ? 0 : static_cast<unsigned>(pieces_.size() - 1);
    a.first_delay_ms = b_.ttft_ms + b_.itl_ms * gaps;
    auto body = whole_body();
    a.declared_length = body.size();
    switch (b_.kind) {
      case fault::malformed:
        body = "{\"choices\": [{not json";
        break;
      case fault::error_event:
        body = error_body(r_.proto, 500, "mock failure in the body");
        break;
      case fault::cut:
        body.resize(body.size() / 2);
        a.end = answer_plan::ending::cut;
        break;
      case fault::stall_after_first:
        body.resize(body.size() / 2);
        a.end = answer_plan::ending::hang;
        break;
      default:
        break;
    }
    if (a.end == answer_plan::ending::complete) a.declared_length = body.size();
    a.parts = {std::move(body)};
    return a;
  }

  answer_plan plan_stream(answer_plan a) const {
    a.headers.emplace_back("Content-Type", "text/event-stream");
    a.headers.emplace_back("Cache-Control", "no-cache");
    a.chunked = true;
    a.headers_at_once = true;
    a.first_delay_ms = b_.ttft_ms;
    a.gap_ms = b_.itl_ms;
    if (b_.kind == fault::malformed) {
      // The first event's data is not JSON (for Anthropic, in place of message_start).
      a.parts = {r_.proto == protocol::anthropic ? "event: message_start\ndata: {not json\n\n"
                                                 : "data: {not json\n\n"};
      return a;
    }
    a.with_headers = prelude();
    for (std::size_t i = 0; i < pieces_.size(); ++i) a.parts.push_back(piece_event(i));
    switch (b_.kind) {
      case fault::cut: {
        // Content-Length promises the whole stream; about half the pieces come.
        a.chunked = false;
        a.declared_length = a.with_headers.size() + closing().size();
        for (auto& p : a.parts) a.declared_length += p.size();
        a.parts.resize(std::max<std::size_t>(1, a.parts.size() / 2));
        a.end = answer_plan::ending::cut;
        break;
      }
      case fault::stall_after_first:
        a.parts.resize(1);
        a.end = answer_plan::ending::hang;
        break;
      case fault::error_event:
        a.parts.resize(1);
        a.parts.push_back(
            r_.proto == protocol::anthropic
                ? "event: error\ndata: " + error_body(r_.proto, 529, "Overloaded") + "\n\n"
                : "data: " + error_body(r_.proto, 500, "mock failure mid-stream") + "\n\n");
        break;
      default:
        a.parts.back() += closing();
        break;
    }
    return a;
  }

  std::string id() const {
    return (r_.proto == protocol::anthropic ? "msg_mock_" : "chatcmpl-mock-") +
           std::to_string(number_);
  }
  std::int64_t completion_tokens() const { return static_cast<std::int64_t>(pieces_.size()); }
  std::string openai_finish() const { return cut_by_length_ ? "length" : "stop"; }
  std::string anthropic_stop() const { return cut_by_length_ ? "max_tokens" : "end_turn"; }

  json openai_usage() const {
    return {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion_tokens()},
            {"total_tokens", prompt_tokens_ + completion_tokens()}};
  }

  std::string whole_body() const {
    std::string text;
    for (auto& p : pieces_) text += p;
    if (r_.proto == protocol::anthropic)
      return json{
          {"id", id()},
          {"type", "message"},
          {"role", "assistant"},
          {"model", r_.model},
          {"content", json::array({{{"type", "text"}, {"text", text}}})},
          {"stop_reason", anthropic_stop()},
          {"stop_sequence", nullptr},
          {"usage", {{"input_tokens", prompt_tokens_}, {"output_tokens", completion_tokens()}}}}
          .dump();
    return json{{"id", id()},
                {"object", "chat.completion"},
                {"created", std::time(nullptr)},
                {"model", r_.model},
                {"choices", json::array({{{"index", 0},
                                          {"message", {{"role", "assistant"}, {"content", text}}},
                                          {"finish_reason", openai_finish()}}})},
                {"usage", openai_usage()}}
        .dump();
  }

  json openai_chunk(json choices) const {
    return {{"id", id()},
            {"object", "chat.completion.chunk"},
            {"created", std::time(nullptr)},
            {"model", r_.model},
            {"choices", std::move(choices)}};
  }

  /// What a stream says before its first piece (nothing, for OpenAI).
  std::string prelude() const {
    if (r_.proto == protocol::openai) return {};
    return sse({{"type", "message_start"},
                {"message",
                 {{"id", id()},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", r_.model},
                  {"content", json::array()},
                  {"stop_reason", nullptr},
                  {"stop_sequence", nullptr},
                  {"usage", {{"input_tokens", prompt_tokens_}, {"output_tokens", 1}}}}}},
               "message_start") +
           sse({{"type", "content_block_start"},
                {"index", 0},
                {"content_block", {{"type", "text"}, {"text", ""}}}},
               "content_block_start") +
           sse({{"type", "ping"}}, "ping");
  }

  std::string piece_event(std::size_t i) const {
    if (r_.proto == protocol::anthropic)
      return sse({{"type", "content_block_delta"},
                  {"index", 0},
                  {"delta", {{"type", "text_delta"}, {"text", pieces_[i]}}}},
                 "content_block_delta");
    json delta{{"content", pieces_[i]}};
    if (i == 0) delta["role"] = "assistant";
    return sse(
        openai_chunk(json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}})));
  }

  /// What a stream says after its last piece.
  std::string closing() const {
    if (r_.proto == protocol::anthropic)
      return sse({{"type", "content_block_stop"}, {"index", 0}}, "content_block_stop") +
             sse({{"type", "message_delta"},
                  {"delta", {{"stop_reason", anthropic_stop()}, {"stop_sequence", nullptr}}},
                  {"usage", {{"output_tokens", completion_tokens()}}}},
                 "message_delta") +
             sse({{"type", "message_stop"}}, "message_stop");
    auto out = sse(openai_chunk(json::array(
        {{{"index", 0}, {"delta", json::object()}, {"finish_reason", openai_finish()}}})));
    if (r_.include_usage) {
      auto usage = openai_chunk(json::array());
      usage["usage"] = openai_usage();
      out += sse(usage);
    }
    return out + "data: [DONE]\n\n";
  }

  const completion_request& r_;
  const behavior& b_;
  std::int64_t number_;
  std::vector<std::string> pieces_;
  bool cut_by_length_ = false;
  std::int64_t prompt_tokens_ = 0;
};

// --- the server ----------------------------------------------------------------------

class mock_server;

/// Plays one answer_plan on its own strand, with a timer between parts, so
/// thousands of slow answers need no thread each. Stops when the client's
/// connection closes.
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(mock_server& server, asio::io_context& io, request_handle_t req, answer_plan plan)
      : server_(server),
        strand_(asio::make_strand(io)),
        timer_(strand_),
        req_(std::move(req)),
        connection_id_(req_->connection_id()),
        plan_(std::move(plan)) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->begin(); });
  }

  /// The client's connection closed, or a write to it failed: stop answering.
  void abandon() {
    asio::post(strand_, [self = shared_from_this()] { self->end(true); });
  }

 private:
  using chunked_builder = restinio::response_builder_t<restinio::chunked_output_t>;
  using sized_builder = restinio::response_builder_t<restinio::user_controlled_output_t>;

  void begin() {
    if (plan_.silent) return;  // the client has to give up; abandon() ends it
    if (plan_.headers_at_once) {
      // A stream's headers (and prelude) go at once; its pieces follow.
      open_response();
      if (!plan_.with_headers.empty()) write(plan_.with_headers);
      flush();
    }
    after(plan_.first_delay_ms);
  }

  void after(unsigned ms) {
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec && !self->finished_) self->next_part();
    });
  }

  void next_part() {
    if (std::holds_alternative<std::monostate>(response_)) open_response();
    write(plan_.parts[next_++]);
    if (next_ < plan_.parts.size()) {
      flush();
      after(plan_.gap_ms);
      return;
    }
    switch (plan_.end) {
      case answer_plan::ending::hang:
        flush();
        return;
      case answer_plan::ending::cut:  // open_response() asked to close after it
      case answer_plan::ending::complete:
        std::visit([](auto& r) { done_with(r); }, response_);
        end(false);
        return;
    }
  }

  void open_response() {
    restinio::http_status_line_t status{
        restinio::http_status_code_t{static_cast<std::uint16_t>(plan_.status)},
        reason_phrase(plan_.status)};
    auto add_headers = [this](auto& r) {
      for (auto& [name, value] : plan_.headers) r.append_header(name, value);
    };
    if (plan_.chunked) {
      add_headers(response_.emplace<chunked_builder>(
          req_->create_response<restinio::chunked_output_t>(std::move(status))));
    } else {
      auto& r = response_.emplace<sized_builder>(
          req_->create_response<restinio::user_controlled_output_t>(std::move(status)));
      add_headers(r);
      r.set_content_length(plan_.declared_length);
      // The connection closes once done() has sent less than declared. This
      // must be said before the headers go: RESTinio takes keep-alive from
      // the headers as sent, and a later connection_close() changes nothing.
      if (plan_.end == answer_plan::ending::cut) r.connection_close();
    }
  }

  void write(std::string data) {
    if (auto* c = std::get_if<chunked_builder>(&response_))
      c->append_chunk(std::move(data));
    else
      std::get<sized_builder>(response_).append_body(std::move(data));
  }

  /// Sends what was written; a failed write means the client is gone (the
  /// connection's close notice says so too, whichever comes first).
  void flush() {
    std::visit(
        [self = shared_from_this()](auto& r) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(r)>, std::monostate>)
            r.flush([self](const asio::error_code& ec) {
              if (ec) self->abandon();
            });
        },
        response_);
  }

  template <class Builder>
  static void done_with(Builder& r) {
    if constexpr (!std::is_same_v<Builder, std::monostate>) r.done();
  }

  void end(bool abandoned);

  mock_server& server_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // runs its handlers on strand_
  request_handle_t req_;
  std::uint64_t connection_id_;
  answer_plan plan_;
  // The rest is only touched on strand_.
  std::variant<std::monostate, chunked_builder, sized_builder> response_;
  std::size_t next_ = 0;
  bool finished_ = false;
};

/// The routes, the behavior queue, the request log and the counters. Called
/// from every I/O thread; shared state is guarded by one mutex.
class mock_server {
 public:
  mock_server(behavior defaults, bool keep_requests)
      : defaults_(defaults), keep_requests_(keep_requests) {}

  restinio::request_handling_status_t handle(request_handle_t req, asio::io_context& io) {
    auto path = std::string(req->header().path());
    auto method = req->header().method();
    bool post = method == restinio::http_method_post();
    bool get = method == restinio::http_method_get();
    bool del = method == restinio::http_method_delete();
    if (post && (path == "/v1/chat/completions" || path == "/chat/completions"))
      return completion(std::move(req), io, protocol::openai);
    if (post && path == "/v1/messages") return completion(std::move(req), io, protocol::anthropic);
    if (post && path == "/_mock/behaviors") return push_behaviors(req);
    if (del && path == "/_mock/behaviors") {
      parley::mutex_lock lock(mutex_);
      queued_.clear();
      return reply(req, 204, nullptr);
    }
    if (get && path == "/_mock/requests") {
      if (!keep_requests_)
        return reply(req, 409, {{"error", "requests are not kept (--no-request-log)"}});
      parley::mutex_lock lock(mutex_);
      return reply(req, 200, received_);
    }
    if (del && path == "/_mock/requests") {
      parley::mutex_lock lock(mutex_);
      received_ = json::array();
      return reply(req, 204, nullptr);
    }
    if (get && path == "/_mock/stats") {
      parley::mutex_lock lock(mutex_);
      return reply(req, 200,
                   {{"requests", requests_}, {"in_flight", in_flight_}, {"abandoned", abandoned_}});
    }
    return reply(req, 404, {{"error", "no route for " + std::string(method.c_str()) + " " + path}});
  }

  void connection_closed(std::uint64_t connection_id) {
    std::vector<std::shared_ptr<exchange>> open;
    {
      parley::mutex_lock lock(mutex_);
      auto i = open_.find(connection_id);
      if (i == open_.end()) return;
      open = std::move(i->second);
      open_.erase(i);
    }
    for (auto& e : open) e->abandon();
  }

  /// An exchange ended: answered (or cut) in full, or abandoned by its client.
  void ended(const exchange* e, std::uint64_t connection_id, bool abandoned) {
    parley::mutex_lock lock(mutex_);
    --in_flight_;
    if (abandoned) ++abandoned_;
    if (auto i = open_.find(connection_id); i != open_.end())
      std::erase_if(i->second, [e](auto& held) { return held.get() == e; });
  }

  /// Lets go of every unfinished exchange; called once the I/O threads have
  /// stopped, so that none outlives the io_context its timer belongs to.
  void forget_all() {
    parley::mutex_lock lock(mutex_);
    open_.clear();
  }

 private:
  static restinio::request_handling_status_t reply(const request_handle_t& req, int status,
                                                   const json& body) {
    auto resp = req->create_response(restinio::http_status_line_t{
        restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, reason_phrase(status)});
    if (!body.is_null()) {
      resp.append_header(restinio::http_field::content_type, "application/json");
      resp.set_body(body.dump());
    }
    return resp.done();
  }

  restinio::request_handling_status_t push_behaviors(const request_handle_t& req) {
    auto list = json::parse(req->body(), nullptr, false);
    if (!list.is_array()) return reply(req, 400, {{"error", "expected a JSON array of behaviors"}});
    std::vector<behavior> parsed;
    try {
      for (auto& b : list) parsed.push_back(parse_behavior(b, defaults_));
    } catch (const std::invalid_argument& e) {
      return reply(req, 400, {{"error", e.what()}});
    }
    parley::mutex_lock lock(mutex_);
    queued_.insert(queued_.end(), parsed.begin(), parsed.end());
    return reply(req, 204, nullptr);
  }

  restinio::request_handling_status_t completion(request_handle_t req, asio::io_context& io,
                                                 protocol p) {
    auto body = json::parse(req->body(), nullptr, false);
    json headers = json::object();
    if (keep_requests_)
      for (auto name : {"authorization", "x-api-key", "anthropic-version", "content-type"})
        if (auto v = req->header().opt_value_of(name)) headers[name] = std::string(*v);
    behavior b = defaults_;
    std::int64_t number = 0;
    {
      parley::mutex_lock lock(mutex_);
      if (keep_requests_)
        received_.push_back({{"path", std::string(req->header().path())},
                             {"headers", headers},
                             {"body", body.is_discarded() ? json(req->body()) : body}});
      number = ++requests_;
      if (!queued_.empty()) {
        b = queued_.front();
        queued_.pop_front();
      }
    }
    completion_request parsed;
    try {
      if (body.is_discarded()) throw std::invalid_argument("the body is not JSON");
      parsed = parse_completion(p, body);
    } catch (const std::invalid_argument& e) {
      auto resp = req->create_response(restinio::status_bad_request());
      resp.append_header(restinio::http_field::content_type, "application/json");
      resp.set_body(error_body(p, 400, e.what()));
      return resp.done();
    }
    auto e = std::make_shared<exchange>(*this, io, req, answer_renderer(parsed, b, number).plan());
    {
      parley::mutex_lock lock(mutex_);
      ++in_flight_;
      open_[req->connection_id()].push_back(e);
    }
    e->start();
    return restinio::request_accepted();
  }

  const behavior defaults_;
  /// Off for benchmarks: the log would grow by every request's body.
  const bool keep_requests_;
  parley::mutex mutex_;
  std::deque<behavior> queued_ GUARDED_BY(mutex_);
  json received_ GUARDED_BY(mutex_) = json::array();
  std::int64_t requests_ GUARDED_BY(mutex_) = 0;
  std::int64_t in_flight_ GUARDED_BY(mutex_) = 0;
  std::int64_t abandoned_ GUARDED_BY(mutex_) = 0;
  // Every unfinished exchange by connection, including those that never
  // answer (they have no timer to keep them alive).
  std::unordered_map<std::uint64_t, std::vector<std::shared_ptr<exchange>>> open_
      GUARDED_BY(mutex_);
};

void exchange::end(bool abandoned) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  server_.ended(this, connection_id_, abandoned);
}

/// Tells the server which connections close, so that their exchanges stop.
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
  bool no_request_log = false;
  app.add_option("--host", host, "address to listen on");
  app.add_option("--port", port, "port (0: a free one)");
  app.add_option("--threads", threads, "I/O threads")->check(CLI::Range(1u, 64u));
  app.add_option("--ttft-ms", defaults.ttft_ms, "default time to the first piece");
  app.add_option("--itl-ms", defaults.itl_ms, "default time between pieces");
  app.add_option("--words", defaults.words, "default reply length in words (0: echo)");
  app.add_flag("--no-request-log", no_request_log,
               "keep no log of the requests (GET /_mock/requests answers 409): for benchmarks");
  CLI11_PARSE(app, argc, argv);

  // Every thread started from here on inherits the blocked signals; this one
  // alone takes them, with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  mock_server mock(defaults, !no_request_log);
  std::atomic<std::uint16_t> bound{0};
  using server_t = restinio::http_server_t<mock_traits>;
  std::unique_ptr<server_t> server;
  server = std::make_unique<server_t>(restinio::own_io_context(), [&](auto& s) {
    s.address(host)
        .port(port)
        // With room for a second request RESTinio keeps reading while one is
        // answered, and so sees a client that hangs up (EOF).
        .max_pipelined_requests(2)
        // As real model servers do: without TCP_NODELAY each piece of a
        // stream after the first waits for the client's delayed ACK (~40 ms).
        .socket_options_setter([](restinio::socket_options_t& options) {
          options.set_option(asio::ip::tcp::no_delay{true});
        })
        .connection_state_listener(std::make_shared<close_listener>(close_listener{&mock}))
        .request_handler(
            [&](request_handle_t req) { return mock.handle(std::move(req), server->io_context()); })
        .acceptor_post_bind_hook(
            [&](asio::ip::tcp::acceptor& acceptor) { bound = acceptor.local_endpoint().port(); })
        // A stall lasts until the client gives up, however long that is.
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
  auto stop_io = [&] {
    server->io_context().stop();
    for (auto& t : pool) t.join();
    mock.forget_all();
  };
  try {
    opened.get_future().get();
  } catch (const std::exception& e) {
    std::cerr << "parley-mock-upstream: " << e.what() << "\n";
    stop_io();
    return 1;
  }
  std::cout << "mock upstream listening on http://" << host << ":" << bound.load() << std::endl;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  stop_io();
  return 0;
}
