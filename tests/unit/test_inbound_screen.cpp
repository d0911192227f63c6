#define BOOST_TEST_MODULE inbound_screen
#include <boost/test/unit_test.hpp>

#include "http/inbound_screen.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

using parley::inbound_limits;
using parley::inbound_refusal;
using parley::inbound_screen;

namespace {

inbound_limits small_limits() {
  inbound_limits l;
  l.max_url_bytes = 64;
  l.max_field_name_bytes = 32;
  l.max_field_value_bytes = 64;
  l.max_field_count = 4;
  l.max_body_bytes = 100;
  l.max_frame_bytes = 1000;
  return l;
}

/// Feeds `bytes` whole, then again a byte at a time into a second screen:
/// both must agree, whatever the reads' boundaries.
std::optional<inbound_refusal> screened(const std::string& bytes,
                                        const inbound_limits& limits = small_limits()) {
  inbound_screen whole(limits);
  auto at_once = whole.take(bytes.data(), bytes.size());
  inbound_screen bytewise(limits);
  std::optional<inbound_refusal> one_by_one;
  for (char c : bytes)
    if ((one_by_one = bytewise.take(&c, 1))) break;
  BOOST_TEST(at_once.has_value() == one_by_one.has_value());
  if (at_once && one_by_one) BOOST_TEST(at_once->code == one_by_one->code);
  return at_once;
}

int refused_with(const std::string& bytes, const inbound_limits& limits = small_limits()) {
  auto r = screened(bytes, limits);
  return r ? r->code : 0;
}

const std::string get = "GET /v1/conversations HTTP/1.1\r\nHost: x\r\n\r\n";

std::string post_with_length(const std::string& length) {
  return "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + "\r\n\r\n";
}

/// A client's (masked) frame header announcing `length` payload bytes.
std::string frame_header(std::uint64_t length, unsigned char opcode = 0x1) {
  std::string h;
  h += static_cast<char>(0x80 | opcode);
  if (length < 126) {
    h += static_cast<char>(0x80 | length);
  } else if (length <= 0xffff) {
    h += static_cast<char>(0x80 | 126);
    for (int shift = 8; shift >= 0; shift -= 8) h += static_cast<char>((length >> shift) & 0xff);
  } else {
    h += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>((length >> shift) & 0xff);
  }
  return h + std::string("\x01\x02\x03\x04", 4);  // the mask
}

const std::string upgrade =
    "GET /v1/conversations/c/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/// Limits with room for an upgrade request's headers.
inbound_limits websocket_limits() {
  auto l = small_limits();
  l.max_field_count = 10;
  return l;
}

}  // namespace

BOOST_AUTO_TEST_CASE(well_formed_requests_pass_one_after_another) {
  auto body = std::string(100, 'b');
  auto post = post_with_length("100") + body;
  auto chunked = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" +
                 std::string(50, 'c') + "\r\n32\r\n" + std::string(50, 'c') + "\r\n0\r\n\r\n";
  BOOST_TEST(refused_with(get + post + chunked + get) == 0);
  // A Connection: close request followed by more bytes: RESTinio starts a
  // fresh parser for each request, and so does the screen.
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + get) == 0);
}

BOOST_AUTO_TEST_CASE(garbage_gets_a_400_naming_what_is_wrong) {
  auto r = screened(post_with_length("abc"));
  BOOST_REQUIRE(r);
  BOOST_TEST(r->code == 400);
  BOOST_TEST(!r->websocket);
  BOOST_TEST(r->detail.find("content-length") != std::string::npos, r->detail);
  BOOST_TEST(refused_with(post_with_length("-5")) == 400);
  BOOST_TEST(refused_with("HELLO THERE\r\n\r\n") == 400);
  BOOST_TEST(refused_with("GET /a b c HTTP/1.1\r\n\r\n") == 400);
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\nBad Header\r\n\r\n") == 400);
  BOOST_TEST(refused_with("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == 400);
  // Whole requests before the garbage may still be handled: they are passable.
  inbound_screen s(small_limits());
  auto mixed = get + get + "\x01\x02\x03";
  auto refused = s.take(mixed.data(), mixed.size());
  BOOST_REQUIRE(refused);
  BOOST_TEST(refused->code == 400);
  BOOST_TEST(s.passable() == 2 * get.size());
  // A request begun in an earlier read was passed on already: nothing is passable.
  inbound_screen split(small_limits());
  BOOST_TEST(!split.take(get.data(), 10));
  auto rest = get.substr(10, 5) + "\x01";
  BOOST_TEST(split.take(rest.data(), rest.size()).has_value());
  BOOST_TEST(split.passable() == 0u);
}

BOOST_AUTO_TEST_CASE(a_declared_body_past_the_limit_is_refused_before_it_is_read) {
  BOOST_TEST(refused_with(post_with_length("100")) == 0);
  BOOST_TEST(refused_with(post_with_length("101")) == 413);
  auto r = screened(post_with_length("17179869184"));  // 16 GiB
  BOOST_REQUIRE(r);
  BOOST_TEST(r->code == 413);
  BOOST_TEST(r->detail.find("17179869184") != std::string::npos, r->detail);
  // Past what 64 bits hold: http_parser's overflow check.
  BOOST_TEST(refused_with(post_with_length("99999999999999999999999")) == 400);
  // Chunked: a chunk announcing more than the limit, or chunks adding up past it.
  BOOST_TEST(refused_with("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "400000000\r\n") == 413);
  BOOST_TEST(refused_with("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" +
                          std::string(50, 'c') + "\r\n33\r\n") == 413);
}

BOOST_AUTO_TEST_CASE(the_import_route_alone_takes_larger_bodies) {
  auto limits = small_limits();
  limits.large_body_path = "/v1/import";
  limits.max_large_body_bytes = 1000;
  auto to = [](const std::string& method, const std::string& target, const std::string& length) {
    return method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + "\r\n\r\n";
  };
  BOOST_TEST(refused_with(to("POST", "/v1/import", "1000"), limits) == 0);
  BOOST_TEST(refused_with(to("POST", "/v1/import?x=1", "1000"), limits) == 0);
  BOOST_TEST(refused_with(to("POST", "/v1/import", "1001"), limits) == 413);
  // Only that path, and only for a POST.
  BOOST_TEST(refused_with(to("PUT", "/v1/import", "1000"), limits) == 413);
  BOOST_TEST(refused_with(to("POST", "/v1/imports", "1000"), limits) == 413);
  BOOST_TEST(refused_with(to("POST", "/v1/impor", "1000"), limits) == 413);
  BOOST_TEST(refused_with(to("POST", "/v1/conversations", "101"), limits) == 413);
  // A large request followed by an ordinary one: each has its own limit.
  BOOST_TEST(refused_with(to("POST", "/v1/import", "500") + std::string(500, 'b') +
                              to("POST", "/v1/conversations", "101"),
                          limits) == 413);
}

BOOST_AUTO_TEST_CASE(header_limits_are_restinios_own_to_the_byte) {
  // Target: at most max_url_bytes.
  BOOST_TEST(refused_with("GET /" + std::string(63, 'u') + " HTTP/1.1\r\n\r\n") == 0);
  BOOST_TEST(refused_with("GET /" + std::string(64, 'u') + " HTTP/1.1\r\n\r\n") == 414);
  // Field names: at most max_field_name_bytes; values: fewer than max_field_value_bytes.
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\n" + std::string(32, 'n') + ": v\r\n\r\n") == 0);
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\n" + std::string(33, 'n') + ": v\r\n\r\n") == 431);
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\nX: " + std::string(63, 'v') + "\r\n\r\n") == 0);
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\nX: " + std::string(64, 'v') + "\r\n\r\n") == 431);
  // Count: at most max_field_count.
  std::string four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n";
  BOOST_TEST(refused_with(four + "\r\n") == 0);
  BOOST_TEST(refused_with(four + "E: 5\r\n\r\n") == 431);
  // A header section past http_parser's own maximum (80 KiB).
  auto roomy = small_limits();
  roomy.max_field_value_bytes = roomy.max_url_bytes = 1 << 20;
  BOOST_TEST(refused_with("GET / HTTP/1.1\r\nX: " + std::string(90000, 'v') + "\r\n\r\n", roomy) ==
             431);
}

BOOST_AUTO_TEST_CASE(once_refused_always_refused) {
  inbound_screen s(small_limits());
  auto bad = post_with_length("abc");
  BOOST_TEST(s.take(bad.data(), bad.size()).has_value());
  BOOST_TEST(s.take(get.data(), get.size()).has_value());
}

BOOST_AUTO_TEST_CASE(after_an_upgrade_frames_are_followed) {
  inbound_screen s(websocket_limits());
  // What comes with the upgrade request is dropped, as RESTinio drops it.
  auto with_junk = upgrade + std::string(5, '\xff');
  BOOST_TEST(!s.take(with_junk.data(), with_junk.size()));
  BOOST_TEST(s.upgrade_requested());
  BOOST_TEST(!s.is_websocket());
  s.follow_frames();  // RESTinio upgraded the connection
  BOOST_TEST(s.is_websocket());
  // Frames up to the limit pass, with 7-, 16- and 64-bit lengths, however split.
  std::string frames = frame_header(5) + "hello" + frame_header(1000) + std::string(1000, 'p') +
                       frame_header(0, 0x9) + frame_header(300) + std::string(300, 'q');
  for (char c : frames) BOOST_TEST(!s.take(&c, 1));
  BOOST_TEST(!s.take(frames.data(), frames.size()));
  // One byte too many is refused from the header alone, with 1009; the
  // frame before it in the same read may still be handled.
  auto big = frame_header(5) + "hello" + frame_header(1001);
  auto r = s.take(big.data(), big.size());
  BOOST_REQUIRE(r);
  BOOST_TEST(r->websocket);
  BOOST_TEST(r->code == 1009);
  BOOST_TEST(s.passable() == frame_header(5).size() + 5);
}

BOOST_AUTO_TEST_CASE(an_upgrade_answered_without_upgrading_goes_on_as_http) {
  inbound_screen s(websocket_limits());
  BOOST_TEST(!s.take(upgrade.data(), upgrade.size()));
  BOOST_TEST(s.upgrade_requested());
  // RESTinio answered 404 and reads on: the bytes are HTTP, not frames.
  BOOST_TEST(!s.take(get.data(), get.size()));
  BOOST_TEST(!s.upgrade_requested());
  auto garbage = post_with_length("abc");
  auto r = s.take(garbage.data(), garbage.size());
  BOOST_REQUIRE(r);
  BOOST_TEST(!r->websocket);
  BOOST_TEST(r->code == 400);
}

BOOST_AUTO_TEST_CASE(gigabyte_frames_are_refused_from_their_header) {
  for (std::uint64_t announced : {1ull << 30, 4ull << 30, 16ull << 30, ~0ull}) {
    inbound_screen s(websocket_limits());
    BOOST_TEST(!s.take(upgrade.data(), upgrade.size()));
    s.follow_frames();
    auto h = frame_header(announced);
    auto r = s.take(h.data(), h.size());
    BOOST_REQUIRE(r);
    BOOST_TEST(r->code == 1009);
  }
}

BOOST_AUTO_TEST_CASE(refusals_render_as_a_response_or_a_close_frame) {
  auto http = parley::render_refusal({false, 413, "too big"}, "req-1");
  BOOST_TEST(http.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0, http);
  BOOST_TEST(http.find("Connection: close\r\n") != std::string::npos);
  BOOST_TEST(http.find("Content-Type: application/problem+json\r\n") != std::string::npos);
  BOOST_TEST(http.find("X-Request-Id: req-1\r\n") != std::string::npos);
  auto body = http.substr(http.find("\r\n\r\n") + 4);
  BOOST_TEST(http.find("Content-Length: " + std::to_string(body.size()) + "\r\n") !=
             std::string::npos);
  auto problem = nlohmann::json::parse(body);
  BOOST_TEST(problem["status"] == 413);
  BOOST_TEST(problem["detail"] == "too big");

  auto frame = parley::render_refusal({true, 1009, std::string(200, 'r')}, "req-2");
  BOOST_REQUIRE(frame.size() == 2 + 2 + 123);  // the reason is cut to fit a control frame
  BOOST_TEST(static_cast<unsigned char>(frame[0]) == 0x88);
  BOOST_TEST(static_cast<unsigned char>(frame[1]) == 125);
  BOOST_TEST((static_cast<unsigned char>(frame[2]) << 8 | static_cast<unsigned char>(frame[3])) ==
             1009);
}
