#include "http/inbound_screen.hpp"

#include "http/problem.hpp"

#include <algorithm>
#include <climits>

namespace parley {

namespace {

inbound_screen& screen_of(http_parser* p) { return *static_cast<inbound_screen*>(p->data); }

std::string bytes(std::uint64_t n) { return std::to_string(n) + " bytes"; }

}  // namespace

inbound_screen::inbound_screen(const inbound_limits& limits) : limits_(limits) {
  http_parser_settings_init(&callbacks_);
  callbacks_.on_url = &inbound_screen::on_url;
  callbacks_.on_header_field = &inbound_screen::on_header_field;
  callbacks_.on_header_value = &inbound_screen::on_header_value;
  callbacks_.on_headers_complete = &inbound_screen::on_headers_complete;
  callbacks_.on_body = &inbound_screen::on_body;
  callbacks_.on_chunk_header = &inbound_screen::on_chunk_header;
  callbacks_.on_message_complete = &inbound_screen::on_message_complete;
  start_message();
}

void inbound_screen::start_message() {
  // RESTinio starts a fresh parser for every request on a connection.
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  url_bytes_ = field_name_bytes_ = field_value_bytes_ = field_count_ = body_bytes_ = 0;
  path_head_.clear();
  last_was_value_ = true;
  message_complete_ = false;
}

std::optional<inbound_refusal> inbound_screen::take(const char* data, std::size_t size) {
  if (refused_) {
    passable_ = 0;
    return refused_;
  }
  return websocket_ ? take_frames(data, size) : take_http(data, size);
}

void inbound_screen::follow_frames() {
  websocket_ = true;
  upgrade_requested_ = false;
  frame_header_size_ = 0;
  payload_left_ = 0;
}

std::uint64_t inbound_screen::body_limit() const {
  auto& path = limits_.large_body_path;
  bool large = !path.empty() && parser_.method == HTTP_POST && path_head_.starts_with(path) &&
               (path_head_.size() == path.size() || path_head_[path.size()] == '?');
  return large ? limits_.max_large_body_bytes : limits_.max_body_bytes;
}

void inbound_screen::refuse(int code, std::string detail) {
  refused_ = inbound_refusal{websocket_, code, std::move(detail)};
}

// --- HTTP -----------------------------------------------------------------------------

std::optional<inbound_refusal> inbound_screen::take_http(const char* data, std::size_t size) {
  // Where the current request began in these bytes (0 when in earlier ones,
  // already passed on).
  std::size_t taken = 0, request_began = 0;
  upgrade_requested_ = false;  // read again: RESTinio answered it without upgrading
  while (taken < size) {
    auto parsed = http_parser_execute(&parser_, &callbacks_, data + taken, size - taken);
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (!refused_ && err != HPE_OK && err != HPE_PAUSED) {
      if (err == HPE_HEADER_OVERFLOW)
        refuse(431, "the request's header section is too large");
      else
        refuse(400, std::string("malformed request: ") + http_errno_description(err));
    }
    if (refused_) {
      passable_ = request_began;
      return refused_;
    }
    if (!message_complete_) return std::nullopt;  // all of it taken; the request goes on
    taken += parsed;
    bool upgrade = parser_.upgrade != 0;
    start_message();
    request_began = taken;
    if (upgrade) {
      // RESTinio reads nothing more until it has answered the upgrade
      // request, and drops what came with it if it upgrades.
      upgrade_requested_ = true;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// The limits are checked as RESTinio's parser callbacks check them
// (restinio/impl/parser_callbacks.ipp), never more strictly.

int inbound_screen::on_url(http_parser* p, const char* at, std::size_t n) {
  auto& s = screen_of(p);
  s.url_bytes_ += n;
  // Enough of the target to tell the large-body path from any other.
  auto wanted = s.limits_.large_body_path.size() + 1;
  if (s.path_head_.size() < wanted)
    s.path_head_.append(at, std::min(n, wanted - s.path_head_.size()));
  if (s.url_bytes_ > s.limits_.max_url_bytes) {
    s.refuse(414, "the request target is longer than " + bytes(s.limits_.max_url_bytes));
    return -1;
  }
  return 0;
}

int inbound_screen::on_header_field(http_parser* p, const char* at, std::size_t n) {
  auto& s = screen_of(p);
  if (s.last_was_value_) {
    if (s.field_count_ == s.limits_.max_field_count) {
      s.refuse(431, "the request has more than " + std::to_string(s.limits_.max_field_count) +
                        " header fields");
      return -1;
    }
    s.field_name_bytes_ = 0;
    s.last_was_value_ = false;
  }
  s.field_name_bytes_ += n;
  if (s.field_name_bytes_ > s.limits_.max_field_name_bytes) {
    s.refuse(431, "a header field name is longer than " + bytes(s.limits_.max_field_name_bytes));
    return -1;
  }
  return 0;
}

int inbound_screen::on_header_value(http_parser* p, const char* at, std::size_t n) {
  auto& s = screen_of(p);
  if (!s.last_was_value_) {
    s.field_value_bytes_ = 0;
    s.last_was_value_ = true;
    ++s.field_count_;
  }
  s.field_value_bytes_ += n;
  if (s.field_value_bytes_ >= s.limits_.max_field_value_bytes) {
    s.refuse(431,
             "a header field value is " + bytes(s.limits_.max_field_value_bytes) + " or longer");
    return -1;
  }
  return 0;
}

int inbound_screen::on_headers_complete(http_parser* p) {
  auto& s = screen_of(p);
  if (p->content_length != ULLONG_MAX && p->content_length > s.body_limit()) {
    s.refuse(413, "the request declares a body of " + bytes(p->content_length) + "; at most " +
                      bytes(s.body_limit()) + " are read");
    return -1;
  }
  return 0;
}

int inbound_screen::on_body(http_parser* p, const char* at, std::size_t n) {
  auto& s = screen_of(p);
  s.body_bytes_ += n;
  if (s.body_bytes_ > s.body_limit()) {
    s.refuse(413, "the request body is longer than " + bytes(s.body_limit()));
    return -1;
  }
  return 0;
}

int inbound_screen::on_chunk_header(http_parser* p) {
  // content_length is the size of the chunk that follows: refused before it
  // is read rather than when its bytes run over.
  auto& s = screen_of(p);
  if (p->content_length > s.body_limit() - s.body_bytes_) {
    s.refuse(413, "the chunked request body is longer than " + bytes(s.body_limit()));
    return -1;
  }
  return 0;
}

int inbound_screen::on_message_complete(http_parser* p) {
  auto& s = screen_of(p);
  s.message_complete_ = true;
  // One request at a time, as RESTinio takes them.
  http_parser_pause(p, 1);
  return 0;
}

// --- WebSocket frames ------------------------------------------------------------------

std::optional<inbound_refusal> inbound_screen::take_frames(const char* data, std::size_t size) {
  // Where the current frame began in these bytes (0 when in earlier ones).
  std::size_t taken = 0, frame_began = 0;
  while (taken < size) {
    if (payload_left_ > 0) {
      auto skipped = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size - taken));
      payload_left_ -= skipped;
      taken += skipped;
      continue;
    }
    if (frame_header_size_ == 0) frame_began = taken;
    frame_header_[frame_header_size_++] = static_cast<unsigned char>(data[taken++]);
    if (frame_header_size_ < 2) continue;
    unsigned length7 = frame_header_[1] & 0x7f;
    bool masked = (frame_header_[1] & 0x80) != 0;
    std::size_t needed = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (frame_header_size_ < needed) continue;
    std::uint64_t length = length7;
    if (length7 >= 126) {
      std::size_t extended = length7 == 126 ? 2 : 8;
      length = 0;
      for (std::size_t i = 0; i < extended; ++i) length = (length << 8) | frame_header_[2 + i];
    }
    frame_header_size_ = 0;
    if (length > limits_.max_frame_bytes) {
      refuse(1009, "messages are limited to " + bytes(limits_.max_frame_bytes));
      passable_ = frame_began;
      return refused_;
    }
    payload_left_ = length;
  }
  return std::nullopt;
}

// --- answers -------------------------------------------------------------------------------

std::string render_refusal(const inbound_refusal& r, const std::string& request_id) {
  if (r.websocket) {
    // A close frame's payload: the code, then at most 123 bytes of reason.
    std::string payload;
    payload += static_cast<char>((r.code >> 8) & 0xff);
    payload += static_cast<char>(r.code & 0xff);
    payload += r.detail.substr(0, 123);
    std::string frame;
    frame += static_cast<char>(0x88);  // FIN, close
    frame += static_cast<char>(payload.size());
    return frame + payload;
  }
  auto body = render_problem(make_problem(r.code, r.detail), request_id);
  std::string head = "HTTP/1.1 " + std::to_string(r.code) + " " + reason_phrase(r.code) + "\r\n";
  head += "Content-Type: application/problem+json\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  head += "X-Request-Id: " + request_id + "\r\n";
  head += "Connection: close\r\n\r\n";
  return head + body;
}

}  // namespace parley
