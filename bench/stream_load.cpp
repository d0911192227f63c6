// Holds N server-sent-event streams open against a Parley server at once:
// each connection streams a reply in its own conversation, and as soon as one
// reply is done it asks for the next on the same (kept-alive) connection, so
// N streams are open all the time. One thread, epoll, non-blocking sockets.
//
// Prints one JSON object: replies done, delta events per second, the time to
// the first delta (from sending the request) at p50/p99, how many streams
// were open (sampled every 100 ms) and every error.
//
// Usage: parley-bench-streams --port P --ids FILE --connections N --seconds S
//        [--content TEXT]

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

/// One client connection and the reply it is reading.
struct connection {
  int fd = -1;
  std::string conversation;
  std::string request;
  std::string pending;  ///< bytes not yet split into lines
  bool connected = false;
  bool waiting = false;  ///< a request was sent and its answer is not complete
  bool in_headers = true;
  bool streaming = false;  ///< 200 text/event-stream, headers in
  int status = 0;
  std::size_t body_left = 0;  ///< a non-stream answer's Content-Length
  bool first_delta_seen = false;
  clock_type::time_point sent_at;
};

struct totals {
  std::size_t replies = 0, deltas = 0, error_events = 0, refused = 0, broken = 0;
  std::vector<double> first_delta_ms;
  std::vector<std::size_t> open_samples;
};

int connect_to(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

void send_request(connection& c) {
  c.in_headers = true;
  c.streaming = false;
  c.status = 0;
  c.body_left = 0;
  c.first_delta_seen = false;
  c.waiting = true;
  c.sent_at = clock_type::now();
  // Requests are small: one write takes them whole on a fresh or idle connection.
  if (write(c.fd, c.request.data(), c.request.size()) != static_cast<ssize_t>(c.request.size()))
    c.waiting = false;
}

/// One line of the answer (without "\n"). Returns true when the answer is complete.
bool take_line(connection& c, const std::string& line, totals& t) {
  if (c.in_headers) {
    if (c.status == 0) {
      if (line == "\r") return false;  // the blank line that ends the last answer's last chunk
      c.status = line.size() > 12 ? std::atoi(line.c_str() + 9) : -1;
      return false;
    }
    if (line == "\r") {
      c.in_headers = false;
      c.streaming = c.status == 200;
      return !c.streaming && c.body_left == 0;
    }
    if (strncasecmp(line.c_str(), "content-length:", 15) == 0)
      c.body_left = std::strtoul(line.c_str() + 15, nullptr, 10);
    return false;
  }
  if (line == "event: delta") {
    ++t.deltas;
    if (!c.first_delta_seen) {
      c.first_delta_seen = true;
      t.first_delta_ms.push_back(
          std::chrono::duration<double, std::milli>(clock_type::now() - c.sent_at).count());
    }
  } else if (line == "event: done") {
    ++t.replies;
  } else if (line == "event: error") {
    ++t.error_events;
  } else if (line == "0\r") {
    return true;  // the last chunk: SSE data never holds a bare "0"
  }
  return false;
}

/// Reads what arrived; returns false when the connection broke.
bool on_readable(connection& c, totals& t, bool keep_going) {
  char buf[65536];
  for (;;) {
    auto n = read(c.fd, buf, sizeof buf);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    c.pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (;;) {
      if (!c.in_headers && !c.streaming) {
        // A plain answer (a refusal): skip its body.
        auto take = std::min(c.body_left, c.pending.size() - start);
        c.body_left -= take;
        start += take;
        if (c.body_left > 0) break;
        ++t.refused;
        c.waiting = false;
        c.in_headers = true;
        if (keep_going) send_request(c);
        continue;
      }
      auto nl = c.pending.find('\n', start);
      if (nl == std::string::npos) break;
      auto line = c.pending.substr(start, nl - start);
      start = nl + 1;
      if (take_line(c, line, t) && c.streaming) {
        c.waiting = false;
        if (keep_going) send_request(c);
      }
    }
    c.pending.erase(0, start);
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Holds N SSE streams open against Parley", "parley-bench-streams"};
  std::uint16_t port = 0;
  std::string ids_file;
  std::size_t connections = 1000;
  double seconds = 20;
  std::string content;
  for (int i = 1; i < 50; ++i) content += (i > 1 ? " w" : "w") + std::to_string(i);
  app.add_option("--port", port)->required();
  app.add_option("--ids", ids_file, "conversation ids, one a line")->required();
  app.add_option("--connections", connections);
  app.add_option("--seconds", seconds);
  app.add_option("--content", content);
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> ids;
  std::ifstream in(ids_file);
  for (std::string id; std::getline(in, id);)
    if (!id.empty()) ids.push_back(id);
  if (ids.size() < connections) {
    std::cerr << "need one conversation per connection: " << ids.size() << " ids\n";
    return 2;
  }
  auto body = nlohmann::json{{"content", content}, {"stream", true}}.dump();

  int ep = epoll_create1(0);
  std::vector<connection> conns(connections);
  totals t;
  auto start = clock_type::now();
  auto stop_sending = start + std::chrono::duration<double>(seconds);
  std::size_t next_to_open = 0;
  auto last_sample = start;
  std::vector<epoll_event> events(4096);
  for (;;) {
    auto now = clock_type::now();
    bool keep_going = now < stop_sending;
    // Open connections 250 at a time, so the listen backlog never overflows.
    for (std::size_t opened = 0; keep_going && next_to_open < conns.size() && opened < 250;
         ++opened, ++next_to_open) {
      auto& c = conns[next_to_open];
      c.conversation = ids[next_to_open];
      c.request = "POST /v1/conversations/" + c.conversation +
                  "/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body;
      c.fd = connect_to(port);
      if (c.fd < 0) {
        ++t.broken;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
      ev.data.u64 = next_to_open;
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    }
    if (now - last_sample >= std::chrono::milliseconds(100)) {
      last_sample = now;
      std::size_t open = 0;
      for (auto& c : conns) open += c.waiting && c.streaming;
      if (keep_going) t.open_samples.push_back(open);
    }
    std::size_t waiting = 0;
    for (auto& c : conns) waiting += c.waiting;
    if (!keep_going && (waiting == 0 || now - stop_sending > std::chrono::seconds(15))) break;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10);
    for (int i = 0; i < n; ++i) {
      auto& c = conns[events[i].data.u64];
      if (c.fd < 0) continue;
      if (!c.connected && (events[i].events & EPOLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          ++t.broken;
          close(c.fd);
          c.fd = -1;
          continue;
        }
        c.connected = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = events[i].data.u64;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        send_request(c);
      }
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (!on_readable(c, t, keep_going)) {
          if (c.waiting) ++t.broken;
          c.waiting = false;
          close(c.fd);
          c.fd = -1;
        }
      }
    }
  }
  auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::size_t open_min = 0, open_sum = 0;
  if (!t.open_samples.empty()) {
    // The first second is the ramp-up; its samples are left out.
    auto steady = std::vector<std::size_t>(
        t.open_samples.begin() + std::min<std::size_t>(10, t.open_samples.size() - 1),
        t.open_samples.end());
    open_min = *std::min_element(steady.begin(), steady.end());
    for (auto s : steady) open_sum += s;
    open_sum /= steady.size();
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto cpu_s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  nlohmann::json out{{"connections", connections},
                     {"client_cpu_s", cpu_s(usage.ru_utime) + cpu_s(usage.ru_stime)},
                     {"seconds", elapsed},
                     {"replies", t.replies},
                     {"deltas", t.deltas},
                     {"deltas_per_s", static_cast<double>(t.deltas) / elapsed},
                     {"first_delta_p50_ms", percentile(t.first_delta_ms, 0.50)},
                     {"first_delta_p99_ms", percentile(t.first_delta_ms, 0.99)},
                     {"open_streams_mean", open_sum},
                     {"open_streams_min", open_min},
                     {"error_events", t.error_events},
                     {"refused", t.refused},
                     {"broken", t.broken}};
  std::cout << out.dump() << std::endl;
  for (auto& c : conns)
    if (c.fd >= 0) close(c.fd);
  return 0;
}
