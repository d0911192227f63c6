#pragma once

#include "base/errors.hpp"
#include "config/settings.hpp"
#include "persistence/records.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>

namespace parley {

/// A database operation failed. `code` is db_unavailable (the database did not
/// answer, is locked or full), conflict (a constraint or a stale version
/// rejected the write) or internal (a value the database refused).
struct store_error : std::runtime_error {
  store_error(errc c, const std::string& what) : std::runtime_error(what), code(c) {}
  errc code;
};

/// A position in PostgreSQL's write-ahead log: how far a read replica must
/// have replayed to see a commit. 0 stands for none (SQLite).
using wal_position = std::uint64_t;

/// Synchronous access to the database through one connection. Not thread-safe:
/// each instance is owned by one actor (the writer or one reader). Every call
/// may block and throws store_error on failure.
class store {
 public:
  virtual ~store() = default;

  /// Creates or migrates the schema to the latest version.
  virtual void migrate() = 0;

  /// Commits all `sets` in one transaction; on any error nothing is committed.
  /// Returns the WAL position past the commit once track_commit_positions()
  /// was called, else 0 (and 0 when it could not be read).
  virtual wal_position commit(const std::vector<const write_set*>& sets) = 0;

  /// For a read replica (PostgreSQL): from now on, each commit also tells
  /// other instances whose data it wrote, and returns where it ended in the WAL.
  virtual void track_commit_positions() {}

  virtual std::optional<conversation_record> find_conversation(const std::string& id) = 0;

  /// Up to `limit` of the user's conversations with an id above `after`
  /// (all when empty), in id order.
  virtual std::vector<conversation_record> list_conversations_by_id(const std::string& user_id,
                                                                    const std::string& after,
                                                                    unsigned limit) = 0;

  /// The conversation the user imported from `source`, if any.
  virtual std::optional<std::string> find_source(const std::string& user_id,
                                                 const std::string& source) = 0;

  /// Up to `limit` of the user's conversations after `after`, most recently updated first.
  virtual conversation_page list_conversations(const std::string& user_id, unsigned limit,
                                               const std::optional<conversation_cursor>& after) = 0;

  /// Messages with seq > after_seq in ascending order, or, when `before_seq` is
  /// set, the `limit` messages just below it (still ascending).
  virtual std::vector<message_record> list_messages(const std::string& conversation_id,
                                                    std::int64_t after_seq,
                                                    std::optional<std::int64_t> before_seq,
                                                    unsigned limit) = 0;

  /// The message `message_id` if it belongs to `conversation_id`.
  virtual std::optional<message_record> find_message(const std::string& conversation_id,
                                                     const std::string& message_id) = 0;

  /// The conversation's summaries (every branch's), oldest first.
  virtual std::vector<summary_record> list_summaries(const std::string& conversation_id) = 0;

  /// The run `run_id` of `conversation_id` whose reply is not stored.
  virtual std::optional<run_record> find_run(const std::string& conversation_id,
                                             const std::string& run_id) = 0;

  /// The message `message_id` in whichever conversation holds it.
  virtual std::optional<message_record> find_message_by_id(const std::string& message_id) = 0;

  // --- the message tree ---
  // Each message read carries its parent and its place among its siblings.

  /// Up to `limit` messages of the branch that ends at `leaf_id`, from it
  /// towards the root (newest first). Reads no more than it returns.
  virtual std::vector<message_record> walk_branch(const std::string& conversation_id,
                                                  const std::string& leaf_id, unsigned limit) = 0;

  /// list_messages' page, over the branch that ends at `leaf_id` only.
  virtual std::vector<message_record> list_branch(const std::string& conversation_id,
                                                  const std::string& leaf_id,
                                                  std::int64_t after_seq,
                                                  std::optional<std::int64_t> before_seq,
                                                  unsigned limit) = 0;

  /// The number of messages from the root to `leaf_id`.
  virtual std::int64_t branch_length(const std::string& conversation_id,
                                     const std::string& leaf_id) = 0;

  /// Whether `message` lies on the branch that ends at `leaf_id`.
  virtual bool branch_contains(const std::string& conversation_id, const std::string& leaf_id,
                               const message_record& message) = 0;

  /// The newest leaf under `from` (itself when it has no children), taking
  /// the newest child at each step and never `excluded`; from the newest root
  /// when `from` is none. None when there is no such message.
  virtual std::optional<std::string> newest_leaf(const std::string& conversation_id,
                                                 const std::optional<std::string>& from,
                                                 const std::string& excluded) = 0;

  /// The number of children of `parent_id`, or of roots when it is none.
  virtual std::int64_t child_count(const std::string& conversation_id,
                                   const std::optional<std::string>& parent_id) = 0;

  /// The page of `request`'s matches, best first.
  virtual search_page search(const search_request& request) = 0;

  virtual std::optional<idempotency_record> find_idempotency(const std::string& user_id,
                                                             const std::string& key) = 0;

  /// Removes idempotency records created before `cutoff`; returns how many.
  virtual std::int64_t purge_idempotency(unix_ms cutoff) = 0;

  /// The user's usage by model over the inclusive day range (YYYY-MM-DD).
  virtual std::vector<usage_row> usage(const std::string& user_id, const std::string& from_day,
                                       const std::string& to_day) = 0;

  /// A trivial query: proves the database answers.
  virtual void ping() = 0;

  /// How far this database, a PostgreSQL standby, has replayed its primary's
  /// WAL. None when it is not a standby: it has every commit.
  virtual std::optional<wal_position> replayed_position() = 0;

  /// Bounds every later call but migrate(): a call still running `timeout`
  /// after it began is cancelled on the server and throws
  /// store_error(db_unavailable). A cancelled statement's transaction is
  /// rolled back and the connection stays usable; when the cancel did not
  /// take, the connection is given up (what it sent may still commit, should
  /// the server resume) and opened again by the next call. Zero (the default) bounds nothing.
  /// SQLite takes it as its busy timeout: a lock held elsewhere for longer fails the call
  /// with db_unavailable.
  virtual void set_call_timeout(std::chrono::milliseconds timeout) { (void)timeout; }
};

/// Makes a new store per call: each actor that touches the database owns one.
using store_factory = std::function<std::unique_ptr<store>()>;

/// A factory for the database at `url`. For `sqlite::memory:` all stores share
/// one connection (under a lock), since each connection would see its own database.
/// Connecting happens when the factory is called and may throw store_error.
store_factory make_store_factory(const database_url& url);

/// The same, but a store connects on its first call instead of when it is
/// made, and tries again on later calls (at most every 250 ms) while it
/// cannot, failing them with db_unavailable meanwhile: for a database the
/// engine can do without for a while (the read replica).
store_factory make_connecting_store_factory(const database_url& url);

/// libpq's connection parameters from a postgresql:// URL, with bounds on how
/// long connecting and a dead peer may stall a call, unless the URL sets them.
std::string postgresql_connect_string(const std::string& url);

/// Whether libpq can read the postgresql:// URL `url` (without connecting).
bool postgresql_url_parses(const std::string& url);

}  // namespace parley
