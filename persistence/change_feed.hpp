#pragma once

// How Parley instances sharing one PostgreSQL database learn of each other's
// committed changes: the writer NOTIFYs, inside each batch's transaction, the
// conversations the batch changed (postgresql_batch.cpp); every instance
// LISTENs on a connection of its own. A notice carries ids only, never
// content: an instance that cares reads the rows. Instances with a read
// replica also announce whose data each batch wrote (parley_writes). No
// libpq here.

#include "persistence/commit_positions.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

struct pg_conn;  // libpq's PGconn

namespace parley {

/// One conversation's committed change.
struct conversation_change {
  std::string instance;  ///< the instance_id() of the process that wrote it
  std::string conversation_id;
  std::optional<std::int64_t> version;  ///< the row's version now; none: deleted
  bool operator==(const conversation_change&) const = default;
};

/// The notice's payload: "1 INSTANCE CONVERSATION VERSION|deleted".
std::string encode_change(const conversation_change& change);
/// None when `payload` is not a notice this version writes.
std::optional<conversation_change> decode_change(std::string_view payload);

/// Whose data a batch committed (parley_writes).
struct batch_writes {
  std::string instance;  ///< the instance_id() of the process that wrote it
  whose_writes whose;    ///< the users (at least one); none: anyone's
  bool operator==(const batch_writes&) const = default;
};

/// Its notices' payloads (none for nobody's): "1 INSTANCE *" for anyone's,
/// else "1 INSTANCE" then " LENGTH:USER" per user, spread over as many notices as
/// keep each under PostgreSQL's 8000 bytes. One per batch, not per user:
/// every notice costs every listening instance a wake-up.
std::vector<std::string> encode_writes(const batch_writes& writes);
/// None when `payload` is not a notice this version writes.
std::optional<batch_writes> decode_writes(std::string_view payload);

/// LISTENs for changes on its own connection and thread, and reconnects
/// (every second) when the connection breaks. Handlers run on its thread and
/// must not block.
class change_listener {
 public:
  struct handlers {
    /// A change committed by any instance (this one's too).
    std::function<void(const conversation_change&)> changed;
    /// Listening again after a break: changes committed meanwhile were not heard.
    std::function<void()> resumed;
    /// For a read replica, optional, set with listening_from: the listener
    /// then also hears other instances' parley_writes. `whose` writes committed elsewhere, all
    /// before the WAL reached `position`.
    std::function<void(wal_position position, const whose_writes& whose)> written_elsewhere;
    /// For a read replica, optional: listening (again) as of WAL `position`,
    /// or, with none, no longer listening.
    std::function<void(std::optional<wal_position> position)> listening_from;
  };

  /// Starts listening on the database at `url` (a postgresql:// URL).
  change_listener(std::string url, handlers on);
  /// Stops, as stop() does.
  ~change_listener();
  change_listener(const change_listener&) = delete;
  change_listener& operator=(const change_listener&) = delete;

  /// Ends the thread; no handler runs once it returns. Idempotent.
  void stop();

  /// Whether it is listening now (for /metrics and tests).
  bool listening() const { return listening_.load(); }

 private:
  void run();
  /// Waits for `fd` to be readable (or only for the time, with -1); false once stopping.
  bool wait_for(int fd, int timeout_ms);
  /// Hands on what `conn` hears until it breaks or the listener stops.
  void hear(pg_conn* conn);
  /// Hands on the notices libpq has read; false when the WAL position could
  /// not be asked for the writes among them.
  bool hand_on(pg_conn* conn);
  /// The primary's WAL position now; none when the query failed.
  std::optional<wal_position> position_now(pg_conn* conn);

  std::string connect_string_;
  handlers on_;
  int wake_fd_ = -1;  ///< an eventfd that stop() writes to end the wait
  std::atomic<bool> stopping_{false};
  std::atomic<bool> listening_{false};
  std::thread thread_;
};

}  // namespace parley
