#include "persistence/change_feed.hpp"

#include "persistence/store.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <system_error>

namespace parley {

namespace {

constexpr std::string_view notice_version = "1";
constexpr std::string_view deleted_word = "deleted";
constexpr auto reconnect_interval_ms = 1000;

/// Splits off the text up to the next space (or the end).
std::string_view next_word(std::string_view& rest) {
  auto space = rest.find(' ');
  auto word = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  return word;
}

using connection_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;

}  // namespace

std::string encode_change(const conversation_change& change) {
  std::string out(notice_version);
  out += ' ';
  out += change.instance;
  out += ' ';
  out += change.conversation_id;
  out += ' ';
  out += change.version ? std::to_string(*change.version) : std::string(deleted_word);
  return out;
}

std::optional<conversation_change> decode_change(std::string_view payload) {
  if (next_word(payload) != notice_version) return std::nullopt;
  conversation_change out;
  out.instance = next_word(payload);
  out.conversation_id = next_word(payload);
  auto version = next_word(payload);
  if (out.instance.empty() || out.conversation_id.empty() || version.empty() || !payload.empty())
    return std::nullopt;
  if (version != deleted_word) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc{} || end != version.data() + version.size() || v < 1) return std::nullopt;
    out.version = v;
  }
  return out;
}

change_listener::change_listener(std::string url, handlers on)
    : connect_string_(postgresql_connect_string(url)), on_(std::move(on)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { run(); });
}

change_listener::~change_listener() {
  stop();
  ::close(wake_fd_);
}

void change_listener::stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void change_listener::run() {
  bool warned = false;
  bool listened_before = false;
  // Waits for `fd` to be readable (or only for the time, with -1); false once stopping.
  auto wait = [this](int fd, int timeout_ms) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
    ::poll(fds, fd < 0 ? 1 : 2, timeout_ms);
    return !stopping_.load();
  };
  while (!stopping_.load()) {
    connection_ptr conn(PQconnectdb(connect_string_.c_str()), &PQfinish);
    if (PQstatus(conn.get()) == CONNECTION_OK) {
      std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), "LISTEN parley_changes"),
                                                        &PQclear);
      if (PQresultStatus(res.get()) == PGRES_COMMAND_OK) {
        if (warned) spdlog::info("database: listening for other instances' changes again");
        warned = false;
        // Changes committed between two LISTENs were not heard. (The engine
        // waits for the first before it serves, so none come before it.)
        if (listened_before && on_.resumed) on_.resumed();
        listened_before = true;
        listening_ = true;
        int fd = PQsocket(conn.get());
        while (wait(fd, -1)) {
          if (PQconsumeInput(conn.get()) != 1) break;  // the connection broke
          while (PGnotify* n = PQnotifies(conn.get())) {
            std::unique_ptr<PGnotify, decltype(&PQfreemem)> notice(n, &PQfreemem);
            if (auto change = decode_change(notice->extra))
              on_.changed(*change);
            else
              spdlog::warn("database: ignoring a change notice it cannot read: {}", notice->extra);
          }
        }
        listening_ = false;
      }
    }
    if (stopping_.load()) break;
    if (!warned)
      spdlog::warn("database: not listening for other instances' changes ({}); retrying",
                   PQerrorMessage(conn.get()));
    warned = true;
    conn.reset();
    wait(-1, reconnect_interval_ms);
  }
}

}  // namespace parley
