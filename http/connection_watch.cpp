#include "http/connection_watch.hpp"

#include <algorithm>

namespace parley {

void connection_watch::watch(std::uint64_t connection_id, const std::shared_ptr<cancellation>& c) {
  auto& s = shards_[connection_id % shard_count];
  mutex_lock lock(s.mutex);
  auto& list = s.waiting[connection_id];
  // A keep-alive connection runs many requests: drop the finished ones.
  std::erase_if(list, [](auto& w) { return w.expired(); });
  list.push_back(c);
}

void connection_watch::closed(std::uint64_t connection_id) {
  std::vector<std::weak_ptr<cancellation>> list;
  {
    auto& s = shards_[connection_id % shard_count];
    mutex_lock lock(s.mutex);
    auto i = s.waiting.find(connection_id);
    if (i == s.waiting.end()) return;
    list = std::move(i->second);
    s.waiting.erase(i);
  }
  for (auto& w : list)
    if (auto c = w.lock()) c->cancel();
}

std::size_t connection_watch::size() const {
  std::size_t n = 0;
  for (auto& s : shards_) {
    mutex_lock lock(s.mutex);
    n += s.waiting.size();
  }
  return n;
}

}  // namespace parley
