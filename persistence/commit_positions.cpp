#include "persistence/commit_positions.hpp"

#include <algorithm>
#include <charconv>
#include <type_traits>
#include <variant>

namespace parley {

namespace {

void add_user(std::vector<std::string>& users, const std::string& user) {
  if (!user.empty() && std::find(users.begin(), users.end(), user) == users.end())
    users.push_back(user);
}

}  // namespace

wal_position parse_wal_position(std::string_view text) {
  auto slash = text.find('/');
  std::uint32_t high = 0, low = 0;
  auto parse = [](std::string_view part, std::uint32_t& out) {
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out, 16);
    return ec == std::errc{} && end == part.data() + part.size() && !part.empty();
  };
  if (slash == std::string_view::npos || !parse(text.substr(0, slash), high) ||
      !parse(text.substr(slash + 1), low))
    throw store_error(errc::internal, "not a WAL position: " + std::string(text));
  return (wal_position{high} << 32) | low;
}

void commit_positions::note(wal_position at, const whose_writes& whose) {
  if (!whose) {
    every_user_ = std::max(every_user_, at);
    return;
  }
  for (auto& user : *whose) {
    auto& position = by_user_[user];
    position = std::max(position, at);
  }
}

void commit_positions::committed(wal_position at, const whose_writes& whose) {
  mutex_lock lock(mutex_);
  note(at, whose);
  if (writer_in_doubt_) {
    // This batch committed after the one whose end is unknown: past it too.
    writer_in_doubt_ = false;
    every_user_ = std::max(every_user_, at);
  }
}

void commit_positions::committed_somewhere() {
  mutex_lock lock(mutex_);
  writer_in_doubt_ = true;
}

void commit_positions::heard(wal_position at, const whose_writes& whose) {
  mutex_lock lock(mutex_);
  note(at, whose);
}

void commit_positions::listening(std::optional<wal_position> at) {
  mutex_lock lock(mutex_);
  listening_ = at.has_value();
  if (at) every_user_ = std::max(every_user_, *at);
}

wal_position commit_positions::needed_by(const std::string& user) const {
  mutex_lock lock(mutex_);
  if (writer_in_doubt_ || !listening_) return nobody_yet;
  auto found = by_user_.find(user);
  return std::max(every_user_, found == by_user_.end() ? wal_position{0} : found->second);
}

void commit_positions::replayed(wal_position at, std::uint64_t asked_after) {
  mutex_lock lock(mutex_);
  if (asked_after != losses_ || at <= replayed_) return;
  replayed_ = at;
  // Swept only when the map has doubled since, so a sweep costs O(1) per entry added.
  if (by_user_.size() < 2 * swept_size_ + 1024) return;
  std::erase_if(by_user_, [at](const auto& entry) { return entry.second <= at; });
  swept_size_ = by_user_.size();
}

wal_position commit_positions::known_replayed() const {
  mutex_lock lock(mutex_);
  return replayed_;
}

void commit_positions::replica_lost() {
  mutex_lock lock(mutex_);
  // Entries swept as replayed are then covered by every_user_.
  every_user_ = std::max(every_user_, replayed_);
  replayed_ = 0;
  ++losses_;
}

std::uint64_t commit_positions::losses() const {
  mutex_lock lock(mutex_);
  return losses_;
}

std::size_t commit_positions::users_kept() const {
  mutex_lock lock(mutex_);
  return by_user_.size();
}

whose_writes users_written(const write_set& set) {
  std::vector<std::string> users;
  bool unnamed = false;
  for (auto& op : set)
    std::visit(
        [&](const auto& w) {
          using op_type = std::decay_t<decltype(w)>;
          if constexpr (std::is_same_v<op_type, write::insert_conversation> ||
                        std::is_same_v<op_type, write::update_conversation>)
            add_user(users, w.row.user_id);
          else if constexpr (std::is_same_v<op_type, write::add_usage> ||
                             std::is_same_v<op_type, write::record_source>)
            add_user(users, w.user_id);
          else if constexpr (std::is_same_v<op_type, write::delete_conversation>)
            w.user_id.empty() ? void(unnamed = true) : add_user(users, w.user_id);
          else if constexpr (std::is_same_v<op_type, write::insert_message> ||
                             std::is_same_v<op_type, write::update_message> ||
                             std::is_same_v<op_type, write::delete_message> ||
                             std::is_same_v<op_type, write::insert_summary>)
            unnamed = true;
          // Runs and idempotency keys are read from the primary only.
        },
        op);
  // Messages come with their conversation's update (its version and
  // updated_at), which names the user; alone, they could be anyone's.
  if (unnamed && users.empty()) return std::nullopt;
  return users;
}

whose_writes users_written(const std::vector<const write_set*>& sets) {
  std::vector<std::string> users;
  for (auto* set : sets) {
    auto whose = users_written(*set);
    if (!whose) return std::nullopt;
    for (auto& user : *whose) add_user(users, user);
  }
  return users;
}

}  // namespace parley
