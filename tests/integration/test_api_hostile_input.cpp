#define BOOST_TEST_MODULE api_hostile_input
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace parley::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t max_body_bytes = 1048576;

server_process& server() {
  static auto s = std::make_unique<server_process>(server_options{
      .config_toml = "[server]\nmax_body_bytes = " + std::to_string(max_body_bytes) + "\n"});
  return *s;
}

void write_all(int fd, const std::string& bytes) {
  BOOST_REQUIRE(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

/// The server's resident memory in KiB.
long resident_kib() {
  std::ifstream status("/proc/" + std::to_string(server().pid()) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  BOOST_FAIL("no VmRSS for the server");
  return 0;
}

/// Sends `bytes` on a fresh connection; what the server answered before it
/// closed the connection (which it must within 3 s).
std::string answer_to(const std::string& bytes) {
  int fd = raw_connect(server().port());
  write_all(fd, bytes);
  std::string answer;
  BOOST_TEST(closed_within(fd, 3s, &answer));
  close(fd);
  return answer;
}

/// The problem in a raw HTTP answer, after checking its status line.
json problem_in(const std::string& answer, int status) {
  BOOST_TEST(answer.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0, answer);
  BOOST_TEST(answer.find("Content-Type: application/problem+json") != std::string::npos);
  BOOST_TEST(answer.find("Connection: close") != std::string::npos);
  auto body_at = answer.find("\r\n\r\n");
  BOOST_REQUIRE(body_at != std::string::npos);
  auto problem = json::parse(answer.substr(body_at + 4), nullptr, false);
  BOOST_REQUIRE(problem.is_object());
  BOOST_TEST(problem["status"] == status);
  BOOST_TEST(problem["detail"].is_string());
  return problem;
}

/// A raw socket upgraded to a WebSocket on conversation `id`.
int raw_websocket(const std::string& id, const std::string& user) {
  int fd = raw_connect(server().port());
  write_all(fd, "GET /v1/conversations/" + id +
                    "/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "X-User-Id: " +
                    user + "\r\n\r\n");
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    BOOST_REQUIRE(poll(&p, 1, 3000) == 1);
    char c;
    BOOST_REQUIRE(read(fd, &c, 1) == 1);
    head += c;
  }
  BOOST_REQUIRE_MESSAGE(head.rfind("HTTP/1.1 101", 0) == 0, head);
  return fd;
}

/// A masked client text frame header announcing `length` bytes.
std::string frame_header(std::uint64_t length) {
  std::string h{'\x81', '\xff'};  // FIN + text; masked, 64-bit length
  for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>((length >> shift) & 0xff);
  return h + std::string("\x11\x22\x33\x44", 4);
}

/// The close code of the close frame that `received` starts with, or 0.
int close_code(const std::string& received) {
  if (received.size() < 4 || static_cast<unsigned char>(received[0]) != 0x88) return 0;
  return static_cast<unsigned char>(received[2]) << 8 | static_cast<unsigned char>(received[3]);
}

}  // namespace

BOOST_AUTO_TEST_CASE(http_garbage_gets_an_answer_before_the_connection_ends) {
  auto p = problem_in(answer_to("POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n"
                                "Content-Length: abc\r\n\r\n"),
                      400);
  BOOST_TEST(p["detail"].get<std::string>().find("content-length") != std::string::npos);
  // 16 GiB announced: refused at once, with nothing of the body sent.
  problem_in(answer_to("POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n"
                       "Content-Type: application/json\r\nContent-Length: 17179869184\r\n\r\n"),
             413);
  problem_in(answer_to("\x16\x03\x01 not http at all\r\n\r\n"), 400);
  problem_in(answer_to("GET /v1/conversations HTTP/1.1 extra\r\n\r\n"), 400);
  // A request line eight times past server.max_header_bytes (16 KiB by
  // default) is past http_parser's own 80 KiB for a head too: 431.
  problem_in(answer_to("GET /v1/conversations?pad=" + std::string(140000, 'q') +
                       " HTTP/1.1\r\nHost: x\r\n\r\n"),
             431);
  problem_in(answer_to("POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n"
                       "Transfer-Encoding: chunked\r\n\r\nnot-hex\r\n"),
             400);
  // A chunk announcing more than the server reads.
  problem_in(answer_to("POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n"
                       "Transfer-Encoding: chunked\r\n\r\nffffffffff\r\n"),
             413);

  http_client c(server().base_url(), "u");  // the user the refused requests named
  BOOST_TEST(c.get("/health").status == 200);
  BOOST_TEST(c.get("/v1/conversations").json()["data"].empty());  // nothing was created
  auto metrics = c.get("/metrics").body;
  BOOST_TEST(
      metrics.find("parley_http_refused_connections_total{protocol=\"http\",code=\"400\"}") !=
      std::string::npos);
  BOOST_TEST(
      metrics.find("parley_http_refused_connections_total{protocol=\"http\",code=\"413\"}") !=
      std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_client_still_sending_after_its_refusal_reads_the_answer) {
  // 16 GiB announced and 256 KiB of it sent at once: the server answers 413
  // after the head and reads on (dropping it) rather than resetting the
  // connection under the answer.
  int fd = raw_connect(server().port());
  write_all(fd,
            "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n"
            "Content-Type: application/json\r\nContent-Length: 17179869184\r\n\r\n");
  std::string body(256 * 1024, 'b');
  for (std::size_t sent = 0; sent < body.size();) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 2000) != 1) break;
    auto n = write(fd, body.data() + sent, body.size() - sent);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  BOOST_TEST(closed_within(fd, 5s, &answer));
  close(fd);
  problem_in(answer, 413);
}

BOOST_AUTO_TEST_CASE(whole_requests_before_garbage_in_one_read_are_answered_first) {
  auto both = answer_to("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n");
  auto second = both.find("HTTP/1.1 400 ");
  BOOST_TEST(both.rfind("HTTP/1.1 200 ", 0) == 0, both);
  BOOST_TEST(second != std::string::npos, both);
}

BOOST_AUTO_TEST_CASE(websocket_frames_announcing_gigabytes_are_refused_with_1009) {
  http_client c(server().base_url(), "ws-attacker");
  auto id = create_conversation(c);
  auto before = resident_kib();
  for (std::uint64_t gib : {1, 4, 16}) {
    int fd = raw_websocket(id, "ws-attacker");
    write_all(fd, frame_header(gib << 30) + std::string(1000, 'x'));
    std::string received;
    BOOST_TEST(closed_within(fd, 3s, &received));
    BOOST_TEST(close_code(received) == 1009, gib << " GiB: closed with " << close_code(received));
    close(fd);
  }
  BOOST_TEST(resident_kib() - before < 32 * 1024, "grew by " << resident_kib() - before << " KiB");
  // A frame within the limit is still a message like any other.
  int fd = raw_websocket(id, "ws-attacker");
  std::string text = R"({"type": "message", "content": "hi"})";
  std::string frame{'\x81', static_cast<char>(0x80 | text.size())};
  frame += std::string(4, '\0');  // a zero mask leaves the payload as it is
  write_all(fd, frame + text);
  BOOST_TEST(eventually([&] {
    auto stored = all_messages(c, id);
    return !stored.empty() && stored.front()["content"] == "hi";
  }));
  close(fd);
}

BOOST_AUTO_TEST_CASE(memory_under_hostile_sockets_is_bounded_by_their_limit) {
  http_client c(server().base_url(), "ws-crowd");
  auto id = create_conversation(c);
  auto before = resident_kib();
  // Each announces the most the server takes and sends 1,000 bytes of it
  // (RESTinio holds a whole frame's payload), or far more than it takes.
  constexpr int sockets = 32;
  std::vector<int> allowed, refused;
  for (int i = 0; i < sockets; ++i) {
    allowed.push_back(raw_websocket(id, "ws-crowd"));
    write_all(allowed.back(), frame_header(max_body_bytes) + std::string(1000, 'a'));
    refused.push_back(raw_websocket(id, "ws-crowd"));
    write_all(refused.back(), frame_header(std::uint64_t{8} << 30) + std::string(1000, 'r'));
  }
  for (int fd : refused) {
    std::string received;
    BOOST_TEST(closed_within(fd, 3s, &received));
    BOOST_TEST(close_code(received) == 1009);
    close(fd);
  }
  auto bound_kib = static_cast<long>(sockets * max_body_bytes / 1024) + 48 * 1024;
  auto grown = resident_kib() - before;
  BOOST_TEST(grown < bound_kib, "grew by " << grown << " KiB, bound " << bound_kib << " KiB");
  for (int fd : allowed) close(fd);
  BOOST_TEST(c.get("/health").status == 200);
}
