// parley-load: a load generator for any Parley deployment.
//
// Virtual users each own conversations (created at the start over the API)
// and send messages to them: whole replies (`message`), streamed replies
// (`stream`, SSE, with time to first delta), or `GET /health` (`health`, the
// HTTP ceiling). Closed loop (--concurrency N: N users, each sends, waits for
// the answer and its think time, sends again) or open loop (--rate R: a
// request every 1/R s whatever the answers do; latency counts from when a
// request was due, so a slow server cannot hide it by slowing the sender).
// One thread, epoll, plain HTTP/1.1 keep-alive sockets.
//
// Reports requests/s, errors by kind, and latency percentiles (p50, p90, p99,
// p99.9, max) of the whole answer and of the first delta, as a table and as
// JSON (--json FILE); a progress line on stderr every second.
//
// --mix crash (with --journal FILE) and --verify-journal FILE are the crash
// drill's load and check instead (load/crash_mix.hpp).

#include "bench/load/crash_mix.hpp"
#include "bench/load/histogram.hpp"
#include "support/jwt_signer.hpp"

#include <curl/curl.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using parley::load::histogram;

struct options {
  std::string base_url = "http://127.0.0.1:8000";
  std::string route = "message";   ///< message, stream, health
  std::size_t concurrency = 16;    ///< closed loop: users (one connection each)
  double rate = 0;                 ///< open loop when > 0: requests per second
  std::size_t connections = 1024;  ///< open loop: the most sockets at once
  std::size_t users = 0;           ///< 0: as many as connections (closed) or 64 (open)
  std::size_t conversations_per_user = 1;
  double seconds = 10;
  double think_ms = 0;
  double timeout_s = 60;
  std::string content = "hello world, how are you today?";
  /// When > 0, each message adds `words_per_message` words drawn from this
  /// many ("t0", "t1", …; log-uniform, so a few are common and most rare), and
  /// --route search asks for two of them: text worth indexing and searching.
  std::size_t vocabulary = 0;
  std::size_t words_per_message = 8;
  std::string model;
  std::vector<std::string> headers;  ///< "Name: value", sent with every request
  std::string jwt_secret;            ///< sign each user an HS256 token instead of X-User-Id
  std::string json_path;
  std::string ready_path;    ///< created once set-up is done, just before the load
  std::size_t requests = 0;  ///< stop after this many answers (0: only --seconds)
  bool series = false;       ///< keep every answer's latency, in order, in the JSON
  bool verify = false;       ///< check at the end that every acknowledged message is stored
  bool quiet = false;
};

// --- set-up over libcurl ---------------------------------------------------------

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// The header line that says who `user` is: X-User-Id, or with --jwt-secret
/// a bearer token (HS256, a day long) whose `sub` is the user.
std::string identity_header(const options& o, const std::string& user) {
  if (o.jwt_secret.empty()) return "X-User-Id: " + user;
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  nlohmann::json claims{{"sub", user}, {"iat", now}, {"exp", now + 86400}};
  return "Authorization: Bearer " + parley::testing::jwt_hs256(claims, o.jwt_secret);
}

/// The host of a base URL ("http://HOST:PORT/…"), an IPv6 one in brackets.
std::string url_host(const std::string& url) {
  auto scheme = url.find("://");
  auto rest = url.substr(scheme == std::string::npos ? 0 : scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest[0] == '[') return rest.substr(0, rest.find(']') + 1);
  return rest.substr(0, rest.find(':'));
}

/// Creates `count` conversations for `user`; returns their ids.
std::vector<std::string> create_conversations(CURL* curl, const options& o, const std::string& user,
                                              std::size_t count) {
  std::vector<std::string> ids;
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Content-Type: application/json");
  list = curl_slist_append(list, identity_header(o, user).c_str());
  for (auto& h : o.headers) list = curl_slist_append(list, h.c_str());
  auto url = o.base_url + "/v1/conversations";
  nlohmann::json body = nlohmann::json::object();
  if (!o.model.empty()) body["model"] = o.model;
  auto text = body.dump();
  for (std::size_t i = 0; i < count; ++i) {
    std::string answer;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    auto rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    auto j = nlohmann::json::parse(answer, nullptr, false);
    if (rc != CURLE_OK || status != 201 || !j.is_object() || !j["id"].is_string()) {
      curl_slist_free_all(list);
      throw std::runtime_error("creating a conversation failed: HTTP " + std::to_string(status) +
                               " " + answer.substr(0, 200));
    }
    ids.push_back(j["id"].get<std::string>());
  }
  curl_slist_free_all(list);
  return ids;
}

// --- the load ------------------------------------------------------------------------

struct conversation {
  std::string user;
  std::string id;
  std::string identity;  ///< identity_header() of the user, made once
  bool busy = false;
};

/// One request due at `due` (open loop: its arrival; closed loop: when sent).
struct job {
  std::size_t conversation = 0;
  clock_type::time_point due;
};

struct connection {
  int fd = -1;
  bool connected = false;
  std::optional<job> current;
  clock_type::time_point sent_at;
  std::size_t user_slot = 0;  ///< closed loop: the user this connection is
  std::size_t next_conversation = 0;
  std::string pending;
  bool in_headers = true;
  int status = 0;
  bool chunked = false;
  std::size_t body_left = 0;
  bool first_delta_seen = false;
  bool error_event = false;
  bool upgrading = false;  ///< route ws: the upgrade was sent, its answer is awaited
  bool websocket = false;  ///< route ws: upgraded; answers are frames
  std::string body;        ///< with --verify: a whole answer's body
  std::string last_event;  ///< with --verify: the SSE event whose data comes next
};

struct results {
  histogram whole, first_delta;
  std::vector<double> series_ms;  ///< with --series: every answer's latency, in order
  std::size_t ok = 0;
  std::map<std::string, std::size_t> errors;
  std::size_t deltas = 0;
  /// With --verify: every message an answer reported stored, by conversation.
  std::vector<std::pair<std::size_t, std::string>> acknowledged;
};

class load_run {
 public:
  load_run(const options& o, std::vector<conversation> conversations, std::string host,
           std::uint16_t port)
      : o_(o), conversations_(std::move(conversations)), host_(std::move(host)), port_(port) {
    ep_ = epoll_create1(0);
  }

  results run() {
    auto start = clock_type::now();
    auto stop = start + std::chrono::duration_cast<clock_type::duration>(
                            std::chrono::duration<double>(o_.seconds));
    bool open_loop = o_.rate > 0;
    auto interval = open_loop ? std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(1.0 / o_.rate))
                              : clock_type::duration::zero();
    auto next_arrival = start;
    if (!open_loop) {
      conns_.resize(o_.concurrency);
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        conns_[i].user_slot = i % users();
        wake(i, start);
      }
    }
    auto last_progress = start, last_expiry = start;
    std::vector<epoll_event> events(1024);
    for (;;) {
      auto now = clock_type::now();
      bool sending = now < stop && (o_.requests == 0 || r_.ok + errors() < o_.requests);
      if (open_loop && sending)
        for (; next_arrival <= now && next_arrival < stop; next_arrival += interval)
          backlog_.push_back(job{0, next_arrival});  // its conversation is chosen when sent
      dispatch(now, sending);
      if (!o_.quiet && now - last_progress >= std::chrono::seconds(1)) {
        last_progress = now;
        progress(now - start);
      }
      if (!sending && (in_flight_ == 0 || now - stop > std::chrono::duration<double>(o_.timeout_s)))
        break;
      int n =
          epoll_wait(ep_, events.data(), static_cast<int>(events.size()), wait_ms(now, open_loop));
      for (int i = 0; i < n; ++i) handle(events[i].data.u64, events[i].events);
      if (now - last_expiry >= std::chrono::milliseconds(100)) {
        last_expiry = now;
        expire(clock_type::now());
      }
    }
    for (auto& c : conns_)
      if (c.current) fail(c, "unfinished at the end");
    if (!o_.quiet) std::cerr << "\n";
    elapsed_ = std::chrono::duration<double>(clock_type::now() - start).count();
    return std::move(r_);
  }

  double elapsed() const { return elapsed_; }

 private:
  std::size_t users() const {
    return std::max<std::size_t>(1, conversations_.size() / o_.conversations_per_user);
  }

  /// Hands due work to connections.
  void dispatch(clock_type::time_point now, bool sending) {
    if (o_.rate > 0) {
      while (!backlog_.empty()) {
        auto conv = free_conversation();
        if (!conv) break;
        auto slot = idle_connection();
        if (!slot) break;
        backlog_.front().conversation = *conv;
        send(*slot, backlog_.front());
        backlog_.pop_front();
      }
      return;
    }
    if (!sending) return;
    // New connections 250 at a time, so that the server's listen backlog
    // does not overflow (a dropped SYN costs a second).
    std::size_t opened = 0;
    while (!wake_.empty() && wake_.begin()->first <= now) {
      auto i = wake_.begin()->second;
      auto& c = conns_[i];
      if (c.fd < 0 && opened == 250) break;  // the rest on the next round
      wake_.erase(wake_.begin());
      if (c.fd < 0) {
        ++opened;
        open(i);  // it wakes again once connected
        continue;
      }
      if (!c.connected || c.current || c.upgrading) continue;
      // A user's conversations, in turn.
      auto first = c.user_slot * o_.conversations_per_user;
      auto conv = first + c.next_conversation++ % o_.conversations_per_user;
      send(i, job{conv, now});
    }
  }

  /// Connection `i` acts (opens, or sends its next request) at `at` (closed
  /// loop); in an open loop a closed one is reopened when a request needs it.
  void wake(std::size_t i, clock_type::time_point at) {
    if (o_.rate == 0)
      wake_.emplace(at, i);
    else if (conns_[i].fd < 0)
      closed_.push_back(i);
  }

  /// How long epoll may wait: until the next wake-up, at most 10 ms (1 ms in
  /// an open loop, whose arrivals are due all the time).
  int wait_ms(clock_type::time_point now, bool open_loop) const {
    if (open_loop) return 1;
    if (wake_.empty()) return 10;
    auto until = wake_.begin()->first - now;
    if (until <= clock_type::duration::zero()) return 0;
    return static_cast<int>(std::min<std::int64_t>(
        10, std::chrono::duration_cast<std::chrono::milliseconds>(until).count() + 1));
  }

  std::optional<std::size_t> free_conversation() {
    for (std::size_t tried = 0; tried < conversations_.size(); ++tried) {
      auto i = next_free_++ % conversations_.size();
      if (!conversations_[i].busy) return i;
    }
    return std::nullopt;
  }

  std::optional<std::size_t> idle_connection() {
    while (!idle_.empty()) {
      auto i = idle_.front();
      idle_.pop_front();
      if (conns_[i].fd >= 0 && conns_[i].connected && !conns_[i].current) return i;
    }
    if (!closed_.empty()) {
      auto i = closed_.front();
      closed_.pop_front();
      open(i);
    } else if (conns_.size() < o_.connections) {
      conns_.emplace_back();
      open(conns_.size() - 1);
    }
    return std::nullopt;  // a new connection takes work once it is connected
  }

  void open(std::size_t i) {
    auto& c = conns_[i];
    c = connection{.user_slot = c.user_slot, .next_conversation = c.next_conversation};
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 &&
        errno != EINPROGRESS) {
      ++r_.errors["connect"];
      close(c.fd);
      c.fd = -1;
      wake(i, clock_type::now() + std::chrono::milliseconds(100));  // retry later
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  /// A word of the vocabulary, rare ones more likely than not: index
  /// vocabulary^u for u uniform in [0, 1).
  std::string vocabulary_word() const {
    text_state_ ^= text_state_ << 13;
    text_state_ ^= text_state_ >> 7;
    text_state_ ^= text_state_ << 17;
    double u = static_cast<double>(text_state_ % 1000003) / 1000003.0;
    auto index = static_cast<std::size_t>(std::pow(static_cast<double>(o_.vocabulary), u)) - 1;
    return "t" + std::to_string(index);
  }

  /// The next message's text: --content, and words of the vocabulary if asked.
  std::string message_text() const {
    if (o_.vocabulary == 0) return o_.content;
    auto text = o_.content;
    for (std::size_t i = 0; i < o_.words_per_message; ++i) text += " " + vocabulary_word();
    return text;
  }

  std::string request_for(const conversation& conv) const {
    std::string head;
    std::string body;
    if (o_.route == "health") {
      head = "GET /health HTTP/1.1\r\n";
    } else if (o_.route == "search") {
      auto words = o_.vocabulary ? vocabulary_word() + "%20" + vocabulary_word() : "hello";
      head = "GET /v1/search?limit=20&q=" + words + " HTTP/1.1\r\n";
    } else if (o_.route == "create") {
      nlohmann::json b{{"message", message_text()}};
      if (!o_.model.empty()) b["model"] = o_.model;
      body = b.dump();
      head =
          "POST /v1/conversations HTTP/1.1\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n";
    } else {
      nlohmann::json b{{"content", message_text()}};
      if (o_.route == "stream") b["stream"] = true;
      body = b.dump();
      head = "POST /v1/conversations/" + conv.id +
             "/messages HTTP/1.1\r\n"
             "Content-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n";
    }
    head += "Host: " + host_ + "\r\n" + conv.identity + "\r\n";
    for (auto& h : o_.headers) head += h + "\r\n";
    return head + "\r\n" + body;
  }

  void send(std::size_t i, job j) {
    auto& c = conns_[i];
    auto& conv = conversations_[j.conversation];
    // One request at a time per conversation (health requests have none).
    conv.busy = o_.route == "message" || o_.route == "stream";
    c.current = j;
    ++in_flight_;
    c.sent_at = clock_type::now();
    c.in_headers = true;
    c.status = 0;
    c.chunked = false;
    c.body_left = 0;
    c.first_delta_seen = false;
    c.error_event = false;
    auto request = o_.route == "ws" ? ws_frame(0x1, dump_message()) : request_for(conv);
    // Requests are small: one write takes them whole on an idle connection.
    if (write(c.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size()))
      broken(i, "write");
  }

  void handle(std::size_t i, std::uint32_t ev) {
    auto& c = conns_[i];
    if (c.fd < 0) return;
    if (!c.connected && (ev & EPOLLOUT)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        ++r_.errors["connect"];
        close(c.fd);
        c.fd = -1;
        wake(i, clock_type::now() + std::chrono::milliseconds(100));  // retry later
        return;
      }
      c.connected = true;
      epoll_event mod{};
      mod.events = EPOLLIN | EPOLLRDHUP;
      mod.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &mod);
      if (o_.route == "ws")
        upgrade(i);  // it wakes once upgraded
      else if (o_.rate > 0)
        idle_.push_back(i);
      else
        wake(i, clock_type::now());
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable(i);
  }

  void readable(std::size_t i) {
    auto& c = conns_[i];
    char buf[65536];
    for (;;) {
      auto n = read(c.fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        broken(i, "connection closed");
        return;
      }
      if (n < 0) return;
      c.pending.append(buf, static_cast<std::size_t>(n));
      parse(i);
      if (c.fd < 0) return;
    }
  }

  /// Takes what it can of the answer out of `pending`.
  void parse(std::size_t i) {
    auto& c = conns_[i];
    if (c.upgrading && !upgraded(i)) return;
    if (c.websocket) {
      frames(i);
      return;
    }
    std::size_t at = 0;
    while (c.current) {
      if (!c.in_headers && !c.chunked) {
        auto take = std::min(c.body_left, c.pending.size() - at);
        if (o_.verify) c.body.append(c.pending, at, take);
        c.body_left -= take;
        at += take;
        if (c.body_left > 0) break;
        complete(i);
        continue;
      }
      auto nl = c.pending.find('\n', at);
      if (nl == std::string::npos) break;
      std::string_view line(c.pending.data() + at, nl - at);
      at = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (c.in_headers) {
        if (c.status == 0) {
          if (line.empty()) continue;  // the blank line ending the last answer's last chunk
          c.status = line.size() > 12 ? std::atoi(std::string(line.substr(9, 3)).c_str()) : -1;
        } else if (line.empty()) {
          c.in_headers = false;
          if (!c.chunked && c.body_left == 0) complete(i);
        } else if (strncasecmp(line.data(), "content-length:", 15) == 0) {
          c.body_left = std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
        } else if (strncasecmp(line.data(), "transfer-encoding:", 18) == 0) {
          c.chunked = line.find("chunked") != std::string_view::npos;
        }
        continue;
      }
      // A chunked answer: SSE lines, chunk sizes, and "0" at the end (SSE
      // data is JSON on `data:` lines, so a bare "0" is only the last chunk).
      if (line == "event: delta") {
        ++r_.deltas;
        if (!c.first_delta_seen) {
          c.first_delta_seen = true;
          r_.first_delta.record(micros_since(c.current->due));
        }
      } else if (line == "event: error") {
        c.error_event = true;
      } else if (line == "0") {
        complete(i);
      } else if (o_.verify && line.rfind("event: ", 0) == 0) {
        c.last_event = std::string(line.substr(7));
      } else if (o_.verify && line.rfind("data: ", 0) == 0 &&
                 (c.last_event == "message" || c.last_event == "done")) {
        // `message` and `done` report a stored message.
        acknowledge(c, nlohmann::json::parse(line.substr(6), nullptr, false));
      }
    }
    c.pending.erase(0, at);
  }

  static std::uint64_t micros_since(clock_type::time_point t) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t).count());
  }

  // --- WebSocket (route ws) ---

  /// Sends the upgrade of the connection's conversation (its user's first).
  void upgrade(std::size_t i) {
    auto& c = conns_[i];
    auto& conv = conversations_[c.user_slot * o_.conversations_per_user];
    std::string request = "GET /v1/conversations/" + conv.id + "/ws HTTP/1.1\r\nHost: " + host_ +
                          "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                          "dGhlIHNhbXBsZSBub25jZQ==\r\n" +
                          conv.identity + "\r\n";
    for (auto& h : o_.headers) request += h + "\r\n";
    request += "\r\n";
    c.upgrading = true;
    c.status = 0;
    if (write(c.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size()))
      broken(i, "write");
  }

  /// Reads the upgrade's answer; true once the socket is a WebSocket.
  bool upgraded(std::size_t i) {
    auto& c = conns_[i];
    for (;;) {
      auto nl = c.pending.find('\n');
      if (nl == std::string::npos) return false;
      auto line = c.pending.substr(0, nl);
      c.pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (c.status == 0) {
        c.status = line.size() > 12 ? std::atoi(line.substr(9, 3).c_str()) : -1;
      } else if (line.empty()) {
        if (c.status != 101) {
          ++r_.errors["upgrade refused: HTTP " + std::to_string(c.status)];
          broken(i, "upgrade refused");
          return false;
        }
        c.upgrading = false;
        c.websocket = true;
        wake(i, clock_type::now());
        return true;
      }
    }
  }

  std::string dump_message() const {
    return nlohmann::json{{"type", "message"}, {"content", message_text()}}.dump();
  }

  /// A client frame: final, masked.
  static std::string ws_frame(std::uint8_t opcode, std::string_view payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    auto n = payload.size();
    if (n < 126) {
      f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(n >> 8));
      f.push_back(static_cast<char>(n & 0xff));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int shift = 56; shift >= 0; shift -= 8)
        f.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    char key[4];
    for (auto& k : key) k = static_cast<char>(std::rand());
    f.append(key, 4);
    for (std::size_t j = 0; j < n; ++j) f.push_back(static_cast<char>(payload[j] ^ key[j % 4]));
    return f;
  }

  /// Takes the server's (unmasked) frames out of `pending`.
  void frames(std::size_t i) {
    auto& c = conns_[i];
    std::size_t at = 0;
    for (;;) {
      auto avail = c.pending.size() - at;
      if (avail < 2) break;
      auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(c.pending[at + k]); };
      std::uint64_t length = byte(1) & 0x7f;
      std::size_t header = 2;
      if (length == 126) {
        if (avail < 4) break;
        length = (std::uint64_t{byte(2)} << 8) | byte(3);
        header = 4;
      } else if (length == 127) {
        if (avail < 10) break;
        length = 0;
        for (std::size_t k = 2; k < 10; ++k) length = (length << 8) | byte(k);
        header = 10;
      }
      if (avail < header + length) break;
      auto opcode = byte(0) & 0x0f;
      std::string_view payload(c.pending.data() + at + header, length);
      at += header + length;
      if (opcode == 0x8) {
        broken(i, "closed by the server");
        return;
      }
      if (opcode == 0x9) {
        auto pong = ws_frame(0xA, payload);
        if (write(c.fd, pong.data(), pong.size()) != static_cast<ssize_t>(pong.size())) {
          broken(i, "write");
          return;
        }
      }
      if (opcode == 0x1) ws_event(i, payload);
    }
    c.pending.erase(0, at);
  }

  void ws_event(std::size_t i, std::string_view text) {
    auto& c = conns_[i];
    auto event = nlohmann::json::parse(text, nullptr, false);
    if (!event.is_object() || !c.current) return;
    auto type = event.value("type", "");
    if (type == "delta") {
      ++r_.deltas;
      if (!c.first_delta_seen) {
        c.first_delta_seen = true;
        r_.first_delta.record(micros_since(c.current->due));
      }
    } else if (type == "done" || type == "error") {
      c.status = 200;
      c.error_event = type == "error";
      complete(i);
    }
  }

  void acknowledge(const connection& c, const nlohmann::json& message) {
    if (message.is_object() && message.contains("id") && message["id"].is_string())
      r_.acknowledged.emplace_back(c.current->conversation, message["id"].get<std::string>());
  }

  void complete(std::size_t i) {
    auto& c = conns_[i];
    bool good = (c.status == 200 || c.status == 201) && !c.error_event;
    if (good && o_.verify && !c.chunked) {
      // A whole answer reports {"message": …, "reply": …}, each stored.
      auto answer = nlohmann::json::parse(c.body, nullptr, false);
      if (answer.is_object())
        for (auto name : {"message", "reply"})
          if (answer.contains(name)) acknowledge(c, answer[name]);
    }
    c.body.clear();
    c.last_event.clear();
    if (good) {
      ++r_.ok;
      auto us = micros_since(c.current->due);
      r_.whole.record(us);
      if (o_.series) r_.series_ms.push_back(static_cast<double>(us) / 1000.0);
    } else {
      ++r_.errors[c.error_event ? "stream error event" : "HTTP " + std::to_string(c.status)];
    }
    finish(i);
    c.in_headers = true;
    c.status = 0;
  }

  void fail(connection& c, const std::string& kind) {
    ++r_.errors[kind];
    if (c.current) {
      conversations_[c.current->conversation].busy = false;
      --in_flight_;
    }
    c.current.reset();
  }

  void finish(std::size_t i) {
    auto& c = conns_[i];
    conversations_[c.current->conversation].busy = false;
    c.current.reset();
    --in_flight_;
    if (o_.rate > 0)
      idle_.push_back(i);
    else
      wake(i, clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                      std::chrono::duration<double, std::milli>(o_.think_ms)));
  }

  void broken(std::size_t i, const std::string& why) {
    auto& c = conns_[i];
    if (c.current) fail(c, "broken: " + why);
    close(c.fd);
    c.fd = -1;
    c.connected = false;
    wake(i, clock_type::now() + std::chrono::milliseconds(100));  // reconnect
  }

  /// Gives up on answers older than the timeout (the connection is closed).
  void expire(clock_type::time_point now) {
    auto limit = std::chrono::duration<double>(o_.timeout_s);
    for (std::size_t i = 0; i < conns_.size(); ++i)
      if (conns_[i].current && now - conns_[i].sent_at > limit) {
        fail(conns_[i], "timeout");
        close(conns_[i].fd);
        conns_[i].fd = -1;
        conns_[i].connected = false;
        wake(i, now);  // reconnect
      }
  }

  std::size_t errors() const {
    std::size_t n = 0;
    for (auto& [kind, count] : r_.errors) n += count;
    return n;
  }

  void progress(clock_type::duration elapsed) {
    auto s = std::chrono::duration<double>(elapsed).count();
    std::size_t errors = 0;
    for (auto& [k, n] : r_.errors) errors += n;
    std::fprintf(stderr,
                 "\r%6.1f s  %9zu ok  %8.1f req/s  %6zu errors  p99 %8.1f ms  backlog %zu   ", s,
                 r_.ok, static_cast<double>(r_.ok) / s, errors,
                 static_cast<double>(r_.whole.quantile(0.99)) / 1000.0, backlog_.size());
    std::fflush(stderr);
  }

  const options& o_;
  /// The vocabulary's random state (xorshift): one sequence per run, so
  /// runs with the same options write the same text.
  mutable std::uint64_t text_state_ = 88172645463325252ull;
  std::vector<conversation> conversations_;
  std::string host_;
  std::uint16_t port_;
  int ep_ = -1;
  std::vector<connection> conns_;
  std::deque<std::size_t> idle_;  ///< open loop: connections that may be idle
  std::deque<job> backlog_;       ///< open loop: requests due and not yet sent
  std::multimap<clock_type::time_point, std::size_t> wake_;  ///< closed loop: who acts when
  std::deque<std::size_t> closed_;                           ///< open loop: connections to reopen
  std::size_t in_flight_ = 0;
  std::size_t next_free_ = 0;
  results r_;
  double elapsed_ = 0;
};

/// Reads every conversation that has acknowledged messages back from the
/// server and counts which of them are stored.
nlohmann::json verify_stored(const options& o, const std::vector<conversation>& conversations,
                             const std::vector<std::pair<std::size_t, std::string>>& acknowledged) {
  std::map<std::size_t, std::vector<std::string>> by_conversation;
  for (auto& [conv, id] : acknowledged) by_conversation[conv].push_back(id);
  auto curl = curl_easy_init();
  std::uint64_t stored = 0, missing = 0;
  nlohmann::json examples = nlohmann::json::array();
  for (auto& [conv, ids] : by_conversation) {
    auto& c = conversations[conv];
    std::set<std::string> present;
    std::int64_t after = 0;
    for (bool more = true; more;) {
      std::string answer;
      auto url = o.base_url + "/v1/conversations/" + c.id +
                 "/messages?limit=200&after=" + std::to_string(after);
      curl_slist* list = curl_slist_append(nullptr, c.identity.c_str());
      for (auto& h : o.headers) list = curl_slist_append(list, h.c_str());
      curl_easy_reset(curl);
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
      curl_easy_perform(curl);
      curl_slist_free_all(list);
      auto page = nlohmann::json::parse(answer, nullptr, false);
      if (!page.is_object() || !page["data"].is_array()) break;
      for (auto& m : page["data"]) {
        present.insert(m["id"].get<std::string>());
        after = m["seq"].get<std::int64_t>();
      }
      more = page["has_more"] == true;
    }
    for (auto& id : ids) {
      if (present.count(id)) {
        ++stored;
      } else {
        ++missing;
        if (examples.size() < 10) examples.push_back({{"conversation", c.id}, {"message", id}});
      }
    }
  }
  curl_easy_cleanup(curl);
  return {{"stored", stored}, {"missing", missing}, {"missing_examples", examples}};
}

nlohmann::json latency_json(const histogram& h) {
  auto ms = [](std::uint64_t us) { return static_cast<double>(us) / 1000.0; };
  return {{"count", h.count()},
          {"p50_ms", ms(h.quantile(0.50))},
          {"p90_ms", ms(h.quantile(0.90))},
          {"p99_ms", ms(h.quantile(0.99))},
          {"p999_ms", ms(h.quantile(0.999))},
          {"max_ms", ms(h.max())},
          {"mean_ms", h.mean() / 1000.0}};
}

void print_table(const nlohmann::json& out) {
  std::printf("%-22s %10s %10s %10s %10s %10s %10s\n", "latency (ms)", "count", "p50", "p90", "p99",
              "p99.9", "max");
  for (auto name : {"whole", "first_delta"}) {
    auto& l = out["latency"][name];
    if (l["count"] == 0) continue;
    std::printf("%-22s %10llu %10.2f %10.2f %10.2f %10.2f %10.2f\n", name,
                static_cast<unsigned long long>(l["count"].get<std::uint64_t>()),
                l["p50_ms"].get<double>(), l["p90_ms"].get<double>(), l["p99_ms"].get<double>(),
                l["p999_ms"].get<double>(), l["max_ms"].get<double>());
  }
  std::printf("requests ok: %llu in %.1f s = %.1f req/s; deltas/s %.1f\n",
              static_cast<unsigned long long>(out["ok"].get<std::uint64_t>()),
              out["seconds"].get<double>(), out["requests_per_s"].get<double>(),
              out["deltas_per_s"].get<double>());
  for (auto& [kind, n] : out["errors"].items())
    std::printf("error: %s × %llu\n", kind.c_str(),
                static_cast<unsigned long long>(n.get<std::uint64_t>()));
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"A load generator for Parley: virtual users sending messages over HTTP or SSE",
               "parley-load"};
  app.add_option("--url", o.base_url, "the deployment's base URL (http://HOST:PORT)");
  app.add_option("--route", o.route,
                 "message (whole replies), stream (SSE), ws (WebSocket: one socket per user, "
                 "replies as frames), health, create (a new conversation with a first "
                 "message, each request), or search (GET /v1/search of the user's messages)")
      ->check(CLI::IsMember({"message", "stream", "health", "create", "ws", "search"}));
  app.add_option("--concurrency", o.concurrency, "closed loop: users sending at once");
  app.add_option("--rate", o.rate, "open loop: requests per second (overrides --concurrency)");
  app.add_option("--connections", o.connections, "open loop: the most connections at once");
  app.add_option("--users", o.users,
                 "users owning the conversations (default: concurrency, or 64)");
  app.add_option("--conversations-per-user", o.conversations_per_user);
  app.add_option("--seconds", o.seconds, "how long to send");
  app.add_option("--think-ms", o.think_ms, "closed loop: pause after each answer");
  app.add_option("--timeout-s", o.timeout_s, "an answer slower than this is an error");
  app.add_option("--content", o.content, "the message text");
  app.add_option("--vocabulary", o.vocabulary,
                 "add words drawn from this many to each message; search for two of them");
  app.add_option("--words-per-message", o.words_per_message, "with --vocabulary");
  app.add_option("--model", o.model, "the conversations' model (default: the server's)");
  app.add_option("--header", o.headers, "an extra header, \"Name: value\" (e.g. Authorization)");
  app.add_option("--jwt-secret", o.jwt_secret,
                 "for auth.mode = jwt: sign each user an HS256 token (sub = the user) with "
                 "this secret, sent instead of X-User-Id");
  app.add_option("--json", o.json_path, "also write the results as JSON to this file");
  app.add_option("--ready-file", o.ready_path,
                 "create this file when the conversations exist and the load begins");
  app.add_option("--requests", o.requests, "stop sending after this many answers");
  app.add_flag("--series", o.series, "record every answer's latency in order (JSON: series_ms)");
  app.add_flag("--verify", o.verify,
               "at the end, read every conversation back and check that each message an "
               "answer reported is stored (exit 3 if not)");
  app.add_flag("--quiet", o.quiet, "no progress line");
  std::string mix, journal, verify_journal;
  std::uint64_t seed = 0;
  app.add_option("--mix", mix,
                 "crash: the crash drill's mixed writes (sends with and without "
                 "Idempotency-Key, SSE, WebSocket, edits, deletes, regenerates), one thread "
                 "per --users, every acknowledgement appended to --journal; a local server "
                 "only (--url on 127.0.0.1, localhost or [::1]: the WebSocket sends always "
                 "go to 127.0.0.1)")
      ->check(CLI::IsMember({"crash"}));
  app.add_option("--journal", journal, "--mix crash: the journal (JSON lines) to append to");
  app.add_option("--verify-journal", verify_journal,
                 "check the server against a crash-mix journal: idempotent retries replayed, "
                 "every acknowledged write read back (exit 3 on a loss or violation)");
  app.add_option("--seed", seed, "--mix crash: the random seed (default: random)");
  CLI11_PARSE(app, argc, argv);

  if (!mix.empty() || !verify_journal.empty()) {
    parley::load::crash_options c;
    c.base_url = o.base_url;
    c.journal_path = verify_journal.empty() ? journal : verify_journal;
    c.users = o.users == 0 ? 8 : o.users;
    c.conversations_per_user = o.conversations_per_user;
    c.seconds = o.seconds;
    c.think_ms = o.think_ms;
    c.seed = seed;
    c.json_path = o.json_path;
    c.ready_path = o.ready_path;
    c.quiet = o.quiet;
    c.identity = [&o](const std::string& user) { return identity_header(o, user); };
    if (c.journal_path.empty()) {
      std::cerr << "parley-load: --mix crash needs --journal FILE\n";
      return 2;
    }
    // tests/support/ws_client connects to 127.0.0.1 whatever --url says: a
    // remote --url would send the WebSocket part of the mix elsewhere.
    auto host = url_host(o.base_url);
    if (!mix.empty() && host != "127.0.0.1" && host != "localhost" && host != "[::1]") {
      std::cerr << "parley-load: --mix crash drills a local server only (--url on 127.0.0.1, "
                   "localhost or [::1]; got "
                << host << "): its WebSocket sends always go to 127.0.0.1\n";
      return 2;
    }
    return verify_journal.empty() ? parley::load::run_crash_mix(c)
                                  : parley::load::verify_crash_journal(c);
  }

  auto rest = o.base_url.substr(
      o.base_url.find("://") == std::string::npos ? 0 : o.base_url.find("://") + 3);
  auto colon = rest.find(':');
  auto host = rest.substr(0, colon);
  std::uint16_t port = colon == std::string::npos
                           ? 80
                           : static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)));
  if (host == "localhost") host = "127.0.0.1";
  in_addr probe{};
  if (inet_pton(AF_INET, host.c_str(), &probe) != 1) {
    std::cerr << "parley-load: --url needs an IPv4 address (got " << host << ")\n";
    return 2;
  }
  if (o.users == 0) o.users = o.rate > 0 ? 64 : o.concurrency;
  if (o.verify && o.route != "message" && o.route != "stream") {
    std::cerr << "parley-load: --verify goes with --route message or stream\n";
    return 2;
  }

  std::vector<conversation> conversations;
  if (o.route == "ws" && (o.rate > 0 || o.conversations_per_user != 1 || o.verify)) {
    std::cerr << "parley-load: --route ws is closed loop, one conversation per user, no --verify\n";
    return 2;
  }
  if (o.route == "message" || o.route == "stream" || o.route == "ws") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    auto curl = curl_easy_init();
    try {
      for (std::size_t u = 0; u < o.users; ++u) {
        auto user = "load-" + std::to_string(u);
        for (auto& id : create_conversations(curl, o, user, o.conversations_per_user))
          conversations.push_back({user, id, identity_header(o, user)});
      }
    } catch (const std::exception& e) {
      std::cerr << "parley-load: " << e.what() << "\n";
      return 1;
    }
    curl_easy_cleanup(curl);
  } else {
    // health and create use no existing conversation: only their users.
    for (std::size_t u = 0; u < o.users * o.conversations_per_user; ++u) {
      auto user = "load-" + std::to_string(u / o.conversations_per_user);
      conversations.push_back({user, "", identity_header(o, user)});
    }
  }

  if (!o.ready_path.empty()) std::ofstream(o.ready_path) << "ready\n";
  auto owners = conversations;  // the run takes them; verification needs them after
  load_run run(o, std::move(conversations), host, port);
  auto r = run.run();
  std::optional<nlohmann::json> verification;
  if (o.verify) verification = verify_stored(o, owners, r.acknowledged);
  nlohmann::json out{
      {"route", o.route},
      {"mode", o.rate > 0 ? "open" : "closed"},
      {"concurrency", o.rate > 0 ? 0 : o.concurrency},
      {"rate", o.rate},
      {"users", o.users},
      {"seconds", run.elapsed()},
      {"ok", r.ok},
      {"requests_per_s", static_cast<double>(r.ok) / run.elapsed()},
      {"deltas_per_s", static_cast<double>(r.deltas) / run.elapsed()},
      {"errors", r.errors},
      {"series_ms", r.series_ms},
      {"latency",
       {{"whole", latency_json(r.whole)}, {"first_delta", latency_json(r.first_delta)}}}};
  if (verification) out["verification"] = *verification;
  print_table(out);
  if (verification)
    std::printf("verified: %llu acknowledged messages stored, %llu missing\n",
                static_cast<unsigned long long>((*verification)["stored"].get<std::uint64_t>()),
                static_cast<unsigned long long>((*verification)["missing"].get<std::uint64_t>()));
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  return verification && (*verification)["missing"] != 0 ? 3 : 0;
}
