#pragma once

// How Parley instances sharing one PostgreSQL database learn of each other's
// committed changes: the writer NOTIFYs, inside each batch's transaction, the
// conversations the batch changed (postgresql_batch.cpp); every instance
// LISTENs on a connection of its own. A notice carries ids only, never
// content: an instance that cares reads the rows. No libpq here.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

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

  std::string connect_string_;
  handlers on_;
  int wake_fd_ = -1;  ///< an eventfd that stop() writes to end the wait
  std::atomic<bool> stopping_{false};
  std::atomic<bool> listening_{false};
  std::thread thread_;
};

}  // namespace parley
