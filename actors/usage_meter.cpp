#include "actors/usage_meter.hpp"

#include "actors/conversation_actor.hpp"
#include "persistence/messages.hpp"
#include "persistence/store.hpp"

#include <caf/send.hpp>

#include <algorithm>
#include <functional>

namespace parley {

usage_meter::shard& usage_meter::shard_of(const std::string& user) const {
  return shards_[std::hash<std::string>{}(user) % shard_count];
}

usage_meter::entry& usage_meter::entry_for(shard& s, const std::string& user,
                                           const std::string& day) {
  auto& e = s.users[user];
  if (e.day != day) e = entry{day, 0, false};
  return e;
}

std::optional<std::int64_t> usage_meter::used(const std::string& user,
                                              const std::string& day) const {
  auto& s = shard_of(user);
  mutex_lock lock(s.mutex);
  auto i = s.users.find(user);
  if (i == s.users.end() || i->second.day != day || !i->second.seeded) return std::nullopt;
  return i->second.tokens;
}

void usage_meter::seed(const std::string& user, const std::string& day, std::int64_t tokens,
                       time_point read_at) {
  auto& s = shard_of(user);
  mutex_lock lock(s.mutex);
  auto& e = entry_for(s, user, day);
  e.tokens = std::max(e.tokens, tokens);
  e.seeded = true;
  e.read_at = std::max(e.read_at, read_at);
  e.rereading = false;
}

bool usage_meter::take_reread(const std::string& user, const std::string& day, time_point now) {
  auto& s = shard_of(user);
  mutex_lock lock(s.mutex);
  auto i = s.users.find(user);
  if (i == s.users.end() || i->second.day != day || !i->second.seeded || i->second.rereading ||
      now - i->second.read_at < reread_after)
    return false;
  i->second.rereading = true;
  return true;
}

void usage_meter::add(const std::string& user, const std::string& day, std::int64_t tokens) {
  auto& s = shard_of(user);
  mutex_lock lock(s.mutex);
  entry_for(s, user, day).tokens += tokens;
}

std::int64_t tokens_used(store& db, const std::string& user, const std::string& day) {
  std::int64_t tokens = 0;
  for (auto& row : db.usage(user, day, day)) tokens += row.prompt_tokens + row.completion_tokens;
  return tokens;
}

void refresh_when_stale(engine_context& ctx, const std::string& user, const std::string& day) {
  auto now = ctx.clock->now();
  if (!ctx.meter.take_reread(user, day, now)) return;
  // The reader seeds the meter itself: nobody waits for the answer.
  read_job job = [meter = &ctx.meter, user, day, now](store& db) {
    try {
      meter->seed(user, day, tokens_used(db, user, day), now);
    } catch (...) {
      meter->seed(user, day, 0, now);  // keeps the count; read again after reread_after
    }
    return caf::make_message();
  };
  caf::anon_send(ctx.db.readers, read_atom::value, std::move(job));
}

failure token_quota_reached(const std::string& user, std::int64_t limit, unix_ms now) {
  constexpr std::int64_t day_ms = 86400000;
  failure f{errc::rate_limited,
            "user " + user + " has used the " + std::to_string(limit) + " tokens allowed per day"};
  f.retry_after_s = static_cast<unsigned>((day_ms - now % day_ms + 999) / 1000);
  return f;
}

}  // namespace parley
