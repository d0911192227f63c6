#pragma once

#include "actors/requests.hpp"
#include "base/mutex.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace parley {

/// Which client connections wait for a generation, so that a connection that
/// closes calls its generations off. Thread-safe (RESTinio's I/O threads
/// report closes, handlers add watches), sharded by connection.
class connection_watch {
 public:
  /// Calls `c` off if connection `connection_id` closes before `c` is released.
  void watch(std::uint64_t connection_id, const std::shared_ptr<cancellation>& c);

  /// The connection closed: cancels what it waited for and forgets it.
  void closed(std::uint64_t connection_id);

  /// Connections watched now (for tests).
  std::size_t size() const;

 private:
  struct shard {
    mutable parley::mutex mutex;
    // Weak: a finished request releases its cancellation and is pruned later.
    std::unordered_map<std::uint64_t, std::vector<std::weak_ptr<cancellation>>> waiting
        GUARDED_BY(mutex);
  };
  static constexpr std::size_t shard_count = 16;
  std::array<shard, shard_count> shards_;
};

}  // namespace parley
