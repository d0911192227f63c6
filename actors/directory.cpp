#include "actors/directory.hpp"

#include "actors/messages.hpp"

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

namespace parley {

directory::directory(std::size_t max_live, spawn_fn spawn_loading)
    : max_per_shard_(std::max<std::size_t>(1, max_live / shard_count)),
      spawn_loading_(std::move(spawn_loading)) {}

directory::shard& directory::shard_of(const std::string& id) {
  return shards_[std::hash<std::string>{}(id) % shard_count];
}

conversation_actor directory::find_or_spawn(const std::string& id) {
  auto& s = shard_of(id);
  mutex_lock guard(s.mutex);
  if (auto i = s.actors.find(id); i != s.actors.end()) {
    s.lru.splice(s.lru.begin(), s.lru, i->second.lru_position);
    return i->second.actor;
  }
  auto actor = spawn_loading_(id);
  s.lru.push_front(id);
  s.actors.emplace(id, entry{actor, s.lru.begin()});
  live_.fetch_add(1, std::memory_order_relaxed);
  evict_if_full(s);
  return actor;
}

conversation_actor directory::find(const std::string& id) {
  auto& s = shard_of(id);
  mutex_lock guard(s.mutex);
  auto i = s.actors.find(id);
  return i == s.actors.end() ? conversation_actor{} : i->second.actor;
}

void directory::insert_new(const std::string& id, const conversation_actor& actor) {
  auto& s = shard_of(id);
  mutex_lock guard(s.mutex);
  s.lru.push_front(id);
  s.actors.emplace(id, entry{actor, s.lru.begin()});
  live_.fetch_add(1, std::memory_order_relaxed);
  evict_if_full(s);
}

void directory::remove(const std::string& id, const caf::actor_addr& who) {
  auto& s = shard_of(id);
  mutex_lock guard(s.mutex);
  auto i = s.actors.find(id);
  if (i == s.actors.end() || i->second.actor.address() != who) return;
  s.lru.erase(i->second.lru_position);
  s.actors.erase(i);
  live_.fetch_sub(1, std::memory_order_relaxed);
}

void directory::evict_if_full(shard& s) {
  if (s.actors.size() <= max_per_shard_) return;
  // A busy actor ignores the request, so ask a few from the cold end.
  constexpr std::size_t candidates = 4;
  std::size_t asked = 0;
  for (auto i = s.lru.rbegin(); i != s.lru.rend() && asked < candidates; ++i, ++asked)
    caf::anon_send(s.actors[*i].actor, passivate_atom::value);
}

}  // namespace parley

namespace parley {

void directory::stop_all() {
  for (auto& s : shards_) {
    mutex_lock guard(s.mutex);
    for (auto& [id, e] : s.actors) caf::anon_send_exit(e.actor, caf::exit_reason::user_shutdown);
  }
}

std::vector<std::string> directory::live_ids() {
  std::vector<std::string> out;
  out.reserve(size());
  for (auto& s : shards_) {
    mutex_lock guard(s.mutex);
    for (auto& [id, e] : s.actors) out.push_back(id);
  }
  return out;
}

}  // namespace parley
