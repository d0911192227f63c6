#pragma once

#include "base/mutex.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parley {

/// A WAL position as PostgreSQL writes it ("16/B374D848"); throws
/// store_error(internal) for anything else.
wal_position parse_wal_position(std::string_view text);

/// Whose data a write touches, as far as reads from a replica care: these
/// users' (empty: nobody's, e.g. run records, which only the primary is read
/// for), or, when none, anyone's.
using whose_writes = std::optional<std::vector<std::string>>;

/// Read-your-writes on a read replica (database.read_url). The writer notes
/// where in the WAL each user's latest acknowledged batch ended, the change
/// listener what other instances committed; a read for a user may go to the
/// replica once it has replayed past everything noted for them, and goes to
/// the primary before. Thread-safe: the writer, the listener and the replica
/// readers share one.
class commit_positions {
 public:
  /// The writer committed a batch of `whose` writes, ending at `at`.
  void committed(wal_position at, const whose_writes& whose);
  /// The writer committed a batch but could not learn where it ended: every
  /// user's reads go to the primary until it learns the next position.
  void committed_somewhere();
  /// Other instances committed `whose` writes, all before the WAL reached `at`.
  void heard(wal_position at, const whose_writes& whose);
  /// Listening for other instances' writes (again) as of `at`: what was
  /// committed before may not have been heard, so every user's reads wait
  /// for it. None: not listening, so every user's reads go to the primary
  /// (as they do before the first call).
  void listening(std::optional<wal_position> at);

  /// The position a replica must have replayed before it may answer `user`
  /// (0 when nothing of theirs is waiting; nobody_yet when it may not answer
  /// anyone now).
  wal_position needed_by(const std::string& user) const;
  static constexpr wal_position nobody_yet = std::numeric_limits<wal_position>::max();

  /// The replica said it has replayed up to `at`, asked when losses() was
  /// `asked_after`: positions at or below it need no keeping. Lower reports,
  /// and those asked before the replica was last lost, are ignored.
  void replayed(wal_position at, std::uint64_t asked_after);
  /// The highest position replayed() was told since the replica was last lost.
  wal_position known_replayed() const;
  /// The replica stopped answering: when it is back (restarted, perhaps from
  /// an older restart point) each connection asks it again, and no user's
  /// reads go to it before it is at least where it was known to be.
  void replica_lost();
  /// How many times replica_lost() was called: a connection that last asked
  /// the replica before the latest loss asks again rather than trust
  /// known_replayed().
  std::uint64_t losses() const;

  /// Users with a position kept (for tests of the sweep).
  std::size_t users_kept() const;

 private:
  void note(wal_position at, const whose_writes& whose) REQUIRES(mutex_);

  mutable mutex mutex_;
  std::unordered_map<std::string, wal_position> by_user_ GUARDED_BY(mutex_);
  wal_position every_user_ GUARDED_BY(mutex_) = 0;
  wal_position replayed_ GUARDED_BY(mutex_) = 0;
  std::uint64_t losses_ GUARDED_BY(mutex_) = 0;
  bool writer_in_doubt_ GUARDED_BY(mutex_) = false;
  bool listening_ GUARDED_BY(mutex_) = false;
  /// by_user_'s size after the last sweep: the next one waits for it to double.
  std::size_t swept_size_ GUARDED_BY(mutex_) = 0;
};

/// Whose data `set` writes: the users it names; none when it writes messages
/// or summaries without naming whose.
whose_writes users_written(const write_set& set);
/// The same for a batch of sets.
whose_writes users_written(const std::vector<const write_set*>& sets);

}  // namespace parley
