#include "persistence/change_feed.hpp"

#include "base/uuid.hpp"
#include "persistence/postgresql_batch.hpp"
#include "persistence/sql_statements.hpp"
#include "persistence/store.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <memory>
#include <set>
#include <system_error>

namespace parley {

namespace {

constexpr std::string_view notice_version = "1";
constexpr std::string_view deleted_word = "deleted";
constexpr auto reconnect_interval_ms = 1000;
/// How long the listener waits for the primary's WAL position before it
/// gives the connection up as hung.
constexpr auto position_timeout = std::chrono::seconds(5);

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

std::vector<std::string> encode_writes(const batch_writes& writes) {
  std::string head = std::string(notice_version) + ' ' + writes.instance;
  if (!writes.whose) return {head + " *"};
  if (writes.whose->empty()) return {};  // nobody's: nothing to tell
  // Well under 8000 bytes, whatever the last user added.
  constexpr std::size_t full = 7000;
  std::vector<std::string> out{head};
  for (auto& user : *writes.whose) {
    if (out.back().size() > full) out.push_back(head);
    out.back() += ' ' + std::to_string(user.size()) + ':' + user;
  }
  return out;
}

std::optional<batch_writes> decode_writes(std::string_view payload) {
  if (next_word(payload) != notice_version) return std::nullopt;
  batch_writes out;
  out.instance = next_word(payload);
  if (out.instance.empty() || payload.empty()) return std::nullopt;
  if (payload == "*") return out;
  out.whose.emplace();
  while (!payload.empty()) {
    std::size_t length = 0;
    auto colon = payload.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto [end, ec] = std::from_chars(payload.data(), payload.data() + colon, length);
    if (ec != std::errc{} || end != payload.data() + colon || length == 0 ||
        payload.size() - colon - 1 < length)
      return std::nullopt;
    out.whose->emplace_back(payload.substr(colon + 1, length));
    payload.remove_prefix(colon + 1 + length);
    if (!payload.empty()) {
      if (payload.front() != ' ') return std::nullopt;
      payload.remove_prefix(1);
      if (payload.empty()) return std::nullopt;
    }
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

bool change_listener::wait_for(int fd, int timeout_ms) {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
  ::poll(fds, fd < 0 ? 1 : 2, timeout_ms);
  return !stopping_.load();
}

std::optional<wal_position> change_listener::position_now(pg_conn* conn) {
  // Not PQexec: a primary that hangs must not keep stop() waiting.
  if (PQsendQuery(conn, sql::postgresql::wal_insert_position) != 1) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + position_timeout;
  std::optional<wal_position> position;
  for (;;) {
    while (PQisBusy(conn)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      // Given up on, the connection is left busy: the caller drops it.
      if (left <= 0 || !wait_for(PQsocket(conn), static_cast<int>(left)) ||
          PQconsumeInput(conn) != 1)
        return std::nullopt;
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQgetResult(conn), &PQclear);
    if (!res) return position;
    if (!position) position = wal_position_in(res.get());
  }
}

bool change_listener::hand_on(pg_conn* conn) {
  // The position query reads in the notices that come meanwhile: they are
  // handed on in the next round, before the listener waits again.
  while (!stopping_.load()) {
    std::set<std::string> users;
    bool heard_writes = false, anyones = false;
    std::vector<conversation_change> changes;
    while (PGnotify* n = PQnotifies(conn)) {
      std::unique_ptr<PGnotify, decltype(&PQfreemem)> notice(n, &PQfreemem);
      if (std::string_view(notice->relname) == "parley_writes") {
        auto writes = decode_writes(notice->extra);
        if (!writes) {
          spdlog::warn("database: ignoring a write notice it cannot read: {}", notice->extra);
        } else if (writes->instance != instance_id()) {
          heard_writes = true;
          if (writes->whose)
            users.insert(writes->whose->begin(), writes->whose->end());
          else
            anyones = true;
        }
      } else if (auto change = decode_change(notice->extra)) {
        changes.push_back(std::move(*change));
      } else {
        spdlog::warn("database: ignoring a change notice it cannot read: {}", notice->extra);
      }
    }
    if (heard_writes) {
      // Asked after the notices arrived, so past every commit they announce;
      // told before the changes are handed on, so that a watcher told of
      // another instance's message reads it where it is.
      auto position = position_now(conn);
      if (!position) return false;
      on_.written_elsewhere(
          *position, anyones ? whose_writes{}
                             : whose_writes{std::vector<std::string>(users.begin(), users.end())});
    }
    for (auto& change : changes) on_.changed(change);
    if (!heard_writes) return true;
  }
  return true;
}

void change_listener::hear(pg_conn* conn) {
  int fd = PQsocket(conn);
  while (wait_for(fd, -1)) {
    if (PQconsumeInput(conn) != 1 || !hand_on(conn)) return;  // the connection broke
  }
}

void change_listener::run() {
  bool warned = false;
  bool listened_before = false;
  const bool replica = static_cast<bool>(on_.written_elsewhere);
  auto listen = [&](PGconn* conn) {
    if (PQstatus(conn) != CONNECTION_OK) return false;
    auto command =
        replica ? "LISTEN parley_changes; LISTEN parley_writes" : "LISTEN parley_changes";
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn, command), &PQclear);
    return PQresultStatus(res.get()) == PGRES_COMMAND_OK;
  };
  while (!stopping_.load()) {
    connection_ptr conn(PQconnectdb(connect_string_.c_str()), &PQfinish);
    // Writes committed before the listening began were not heard: a replica
    // serves no one until it has replayed them.
    std::optional<wal_position> since;
    if (listen(conn.get()) && (!replica || (since = position_now(conn.get())))) {
      if (warned) spdlog::info("database: listening for other instances' changes again");
      warned = false;
      // Changes committed between two LISTENs were not heard. (The engine
      // waits for the first before it serves, so none come before it.)
      if (listened_before && on_.resumed) on_.resumed();
      listened_before = true;
      if (on_.listening_from) on_.listening_from(since);
      listening_ = true;
      hear(conn.get());
      listening_ = false;
      if (on_.listening_from) on_.listening_from(std::nullopt);
    }
    if (stopping_.load()) break;
    if (!warned)
      spdlog::warn("database: not listening for other instances' changes ({}); retrying",
                   PQerrorMessage(conn.get()));
    warned = true;
    conn.reset();
    wait_for(-1, reconnect_interval_ms);
  }
}

}  // namespace parley
