#pragma once

#include "actors/messages.hpp"
#include "base/mutex.hpp"

#include <caf/actor_addr.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace parley {

/// Finds the one live actor of a conversation, spawning it on first touch.
/// Striped into shards, each with its own lock held only for a map update,
/// so it is no single-threaded bottleneck. Thread-safe.
///
/// Keeps a least-recently-used order per shard; when a shard holds more than
/// its share of `max_live`, the least recently used actors are asked to
/// passivate (they do when idle, and then call remove()).
class directory {
 public:
  using spawn_fn = std::function<conversation_actor(const std::string& id)>;

  /// `spawn_loading` makes an actor that loads its conversation from the database.
  directory(std::size_t max_live, spawn_fn spawn_loading);

  /// The live actor for `id`, or a new loading one.
  conversation_actor find_or_spawn(const std::string& id);

  /// The live actor for `id`, or an invalid handle when there is none.
  conversation_actor find(const std::string& id);

  /// Registers `actor`, made for a conversation that does not exist yet.
  void insert_new(const std::string& id, const conversation_actor& actor);

  /// Forgets `id` if it still maps to `who`; an actor calls this as it passivates.
  void remove(const std::string& id, const caf::actor_addr& who);

  /// Tells every live actor to exit (at shutdown).
  void stop_all();

  /// The conversations with a live actor now.
  std::vector<std::string> live_ids();

  std::size_t size() const { return live_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t shard_count = 32;
  struct entry {
    conversation_actor actor;
    std::list<std::string>::iterator lru_position;
  };
  struct shard {
    parley::mutex mutex;
    std::unordered_map<std::string, entry> actors GUARDED_BY(mutex);
    std::list<std::string> lru GUARDED_BY(mutex);  // most recent first
  };

  shard& shard_of(const std::string& id);
  /// Asks the least recently used actors of a full shard to passivate.
  void evict_if_full(shard& s) REQUIRES(s.mutex);

  std::size_t max_per_shard_;
  spawn_fn spawn_loading_;
  std::array<shard, shard_count> shards_;
  std::atomic<std::size_t> live_{0};
};

}  // namespace parley
