// libFuzzer target: a client connection's bytes through the inbound screen
// (http/inbound_screen.hpp), as HTTP requests or, after a valid upgrade
// request, as WebSocket frames, each read whole, a byte at a time and in
// reads whose sizes the input chooses. Besides crashes and sanitizer reports
// it traps when:
//  - the verdict depends on where the reads split the bytes (refused or not,
//    and the code);
//  - a screen that refused once lets a later read through, or refuses it
//    differently;
//  - a refusal is not one the screen documents (400, 413, 414 or 431 over
//    HTTP, 1009 on a WebSocket);
//  - render_refusal gives anything but a complete HTTP response whose
//    Content-Length matches its problem+json body, or a close frame whose
//    payload fits 125 bytes.
//
// Input: byte 0 picks the mode (even: HTTP, odd: WebSocket frames after an
// upgrade request), bytes 1 and 2 the sizes of alternate reads (1 + the byte);
// the rest is what the client sends.

#include "http/inbound_screen.hpp"

#include <http_parser.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using parley::inbound_limits;
using parley::inbound_refusal;
using parley::inbound_screen;

void check(bool holds) {
  if (!holds) __builtin_trap();
}

/// Small, so that short inputs reach every limit.
const inbound_limits& limits() {
  static const inbound_limits l = [] {
    inbound_limits s;
    s.max_url_bytes = 256;
    s.max_field_name_bytes = 64;
    s.max_field_value_bytes = 384;
    s.max_field_count = 16;
    s.max_body_bytes = 1024;
    s.max_frame_bytes = 512;
    return s;
  }();
  return l;
}

/// What a browser sends to open a conversation's WebSocket.
constexpr std::string_view upgrade_request =
    "GET /v1/conversations/0190f3c2-6b1e-7cc0-8a4e-3f2b1d0c9e8a/ws HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://localhost:3000\r\n\r\n";

/// The server passes a fresh UUID.
const std::string request_id = "0190f3c2-6b1e-7cc0-8a4e-3f2b1d0c9e8a";

bool same(const inbound_refusal& a, const inbound_refusal& b) {
  return a.websocket == b.websocket && a.code == b.code && a.detail == b.detail;
}

/// An HTTP response as http_parser reads it.
struct parsed_response {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool complete = false;

  static parsed_response& of(http_parser* p) { return *static_cast<parsed_response*>(p->data); }
};

void check_http_response(const inbound_refusal& r, const std::string& bytes) {
  check(bytes.rfind("HTTP/1.1 " + std::to_string(r.code) + " ", 0) == 0);
  http_parser_settings callbacks;
  http_parser_settings_init(&callbacks);
  callbacks.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
    parsed_response::of(p).headers.emplace_back(std::string(at, n), std::string());
    return 0;
  };
  callbacks.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
    parsed_response::of(p).headers.back().second.append(at, n);
    return 0;
  };
  callbacks.on_body = [](http_parser* p, const char* at, std::size_t n) {
    parsed_response::of(p).body.append(at, n);
    return 0;
  };
  callbacks.on_message_complete = [](http_parser* p) {
    parsed_response::of(p).complete = true;
    return 0;
  };
  parsed_response seen;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &seen;
  auto parsed = http_parser_execute(&parser, &callbacks, bytes.data(), bytes.size());
  check(HTTP_PARSER_ERRNO(&parser) == HPE_OK && parsed == bytes.size() && seen.complete);
  check(parser.status_code == static_cast<unsigned>(r.code));
  check(!http_should_keep_alive(&parser));
  int content_lengths = 0;
  for (auto& [name, value] : seen.headers) {
    // Nothing in a header that a client would read as the end of it.
    check(name.find_first_of("\r\n") == std::string::npos);
    check(value.find_first_of("\r\n") == std::string::npos);
    if (name == "Content-Length") {
      ++content_lengths;
      check(value == std::to_string(seen.body.size()));
    }
  }
  check(content_lengths == 1);
  auto problem = nlohmann::json::parse(seen.body, nullptr, false);
  check(problem.is_object() && problem.value("status", 0) == r.code &&
        problem.value("request_id", "") == request_id);
}

void check_rendering(const inbound_refusal& r) {
  if (r.websocket)
    check(r.code == 1009);
  else
    check(r.code == 400 || r.code == 413 || r.code == 414 || r.code == 431);
  auto bytes = parley::render_refusal(r, request_id);
  if (!r.websocket) {
    check_http_response(r, bytes);
    return;
  }
  // An unmasked final close frame: 7-bit length, the code, then the reason.
  check(bytes.size() >= 4 && bytes.size() <= 2 + 125);
  check(static_cast<unsigned char>(bytes[0]) == 0x88);
  check(std::size_t{static_cast<unsigned char>(bytes[1])} == bytes.size() - 2);
  check((static_cast<unsigned char>(bytes[2]) << 8 | static_cast<unsigned char>(bytes[3])) ==
        r.code);
}

/// How one screen ended.
struct verdict {
  std::optional<inbound_refusal> refusal;
  bool upgrade_seen = false;  ///< an upgrade request came (over HTTP)
};

/// `bytes` through a fresh screen (after the upgrade request when
/// `websocket`), in reads of the sizes `sizes` cycles through.
verdict screen(std::string_view bytes, bool websocket, const std::vector<std::size_t>& sizes) {
  inbound_screen s(limits());
  if (websocket) {
    // Its own read: what came with the upgrade request would be dropped.
    check(!s.take(upgrade_request.data(), upgrade_request.size()));
    check(s.upgrade_requested());
    s.follow_frames();  // as RESTinio's move of the socket into its WebSocket does
  }
  verdict v;
  for (std::size_t at = 0, i = 0; at < bytes.size(); ++i) {
    auto n = std::min(sizes[i % sizes.size()], bytes.size() - at);
    bool was_websocket = s.is_websocket();
    auto r = s.take(bytes.data() + at, n);
    v.upgrade_seen = v.upgrade_seen || s.upgrade_requested();
    check(!r || s.passable() <= n);
    at += n;
    if (v.refusal) {
      check(r && same(*r, *v.refusal));  // once refused, always refused
    } else if (r) {
      check(r->websocket == was_websocket);
      check_rendering(*r);
      v.refusal = std::move(r);
    }
  }
  if (v.refusal) {
    auto again = s.take("\r\n", 2);
    check(again && same(*again, *v.refusal));
  }
  return v;
}

/// The code of an HTTP refusal; 0 for none.
int http_code(const verdict& v) { return v.refusal && !v.refusal->websocket ? v.refusal->code : 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  bool websocket = (data[0] & 1) != 0;
  std::vector<std::size_t> chosen{std::size_t{data[1]} + 1, std::size_t{data[2]} + 1};
  std::string_view bytes(reinterpret_cast<const char*>(data) + 3, size - 3);

  auto whole = screen(bytes, websocket, {std::max<std::size_t>(bytes.size(), 1)});
  auto bytewise = screen(bytes, websocket, {1});
  auto split = screen(bytes, websocket, chosen);

  if (websocket) {
    for (auto* other : {&bytewise, &split}) {
      check(whole.refusal.has_value() == other->refusal.has_value());
      if (whole.refusal) check(whole.refusal->code == other->refusal->code);
    }
    return 0;
  }
  // Over HTTP, what comes in the same read as an upgrade request is passed
  // on unscreened (RESTinio drops it if it upgrades), so past an upgrade
  // request the verdict depends on the reads; without one, whether the bytes
  // are refused must not. Which answer they get may: http_parser reports a
  // token's bytes when the read or the token ends, so a name both too long
  // and holding a bad byte is 431 read byte by byte and 400 read whole (as
  // RESTinio's own parser would see it).
  if (whole.upgrade_seen || bytewise.upgrade_seen || split.upgrade_seen) return 0;
  for (auto* other : {&bytewise, &split})
    check((http_code(whole) == 0) == (http_code(*other) == 0));
  return 0;
}
