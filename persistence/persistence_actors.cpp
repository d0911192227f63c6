#include "persistence/persistence_actors.hpp"

#include "config/load_settings.hpp"
#include "persistence/caf_errors.hpp"
#include "persistence/commit_positions.hpp"
#include "persistence/messages.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <atomic>
#include <chrono>
#include <optional>

namespace parley {

namespace {

constexpr auto idempotency_lifetime = std::chrono::hours(24);
constexpr auto purge_interval = std::chrono::minutes(10);

/// What the requesters of a store call that threw something other than a
/// store_error are told: a bug, answered rather than left to kill the actor,
/// since the conversation actors wait for every answer without a timer.
failure unexpected_failure(const char* who, const std::exception& e) {
  spdlog::error("{}: {}", who, e.what());
  return {errc::internal, "the database call failed"};
}

failure store_failure(const store_error& e) {
  failure f;
  f.code = e.code;
  if (e.code == errc::conflict) {
    f.detail = "the write conflicts with data written meanwhile";
  } else if (e.code == errc::internal) {
    f.detail = "the database refused the request";  // answered 503 (problem.cpp)
  } else {
    f.code = errc::db_unavailable;
    f.detail = "the database is unavailable";
    f.retry_after_s = 1;
  }
  return f;
}

// --- writer -------------------------------------------------------------------

/// What the writer reports on GET /metrics.
struct writer_metrics {
  metrics::histogram& batch_size;
  metrics::histogram& flush_seconds;
  metrics::counter& failed_batches;
  metrics::gauge& mailbox_backlog;
};

writer_metrics& recorded_writer_metrics() {
  static auto& r = metrics::default_registry();
  static writer_metrics m{
      r.histogram_named("parley_persistence_batch_size", "Write requests committed per batch.",
                        metrics::size_buckets()),
      r.histogram_named("parley_persistence_flush_duration_seconds",
                        "Time to commit one batch (one transaction).", metrics::latency_buckets()),
      r.counter_named("parley_persistence_failed_batches_total",
                      "Batches whose transaction failed as a whole."),
      r.gauge_named("parley_persistence_mailbox_backlog",
                    "Messages waiting in the writer's mailbox, sampled as it takes each one."),
  };
  return m;
}

struct pending_write {
  write_set set;
  caf::response_promise promise;
};

struct writer_state {
  static inline const char* name = "parley.writer";
  std::shared_ptr<store> db;
  database_settings cfg;
  /// Where each user's acknowledged writes end, when a replica serves reads.
  std::shared_ptr<commit_positions> positions;
  bool position_missed = false;  ///< the last batch's position could not be read

  /// Notes where the batch of `sets` ended (position `at`; 0: unknown),
  /// before its requesters are answered, so that their next reads know. Once
  /// per batch: one position, one lock.
  void note_committed(wal_position at, const std::vector<const write_set*>& sets) {
    if (!positions) return;
    if (at == 0) {
      if (!position_missed) spdlog::warn("writer: a batch's WAL position could not be read");
      position_missed = true;
      positions->committed_somewhere();
      return;
    }
    position_missed = false;
    positions->committed(at, users_written(sets));
  }
  /// A batch failed in a way that may still have committed it (the
  /// connection broke, or a cancel did not take): its retry may be answered
  /// from the database, so no replica read may miss it.
  void note_outcome_unknown() {
    if (positions) positions->committed_somewhere();
  }
  std::vector<pending_write> pending;
  bool flush_scheduled = false;
};

/// Commits everything pending in one transaction and answers each requester.
void flush_pending(writer_state& st) {
  if (st.pending.empty()) return;
  auto batch = std::move(st.pending);
  st.pending.clear();
  std::vector<const write_set*> sets;
  sets.reserve(batch.size());
  for (auto& p : batch) sets.push_back(&p.set);
  auto& m = recorded_writer_metrics();
  auto started = std::chrono::steady_clock::now();
  try {
    st.note_committed(st.db->commit(sets), sets);
    m.batch_size.observe(static_cast<double>(batch.size()));
    m.flush_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    for (auto& p : batch) p.promise.deliver(ok_atom::value);
    return;
  } catch (const store_error& e) {
    m.failed_batches.add();
    // A conflict or a refused value belongs to one request; anything else
    // (the database is gone) to all of them.
    if (e.code == errc::db_unavailable || batch.size() == 1) {
      spdlog::warn("writer: batch of {} failed: {}", batch.size(), e.what());
      if (e.code == errc::db_unavailable) st.note_outcome_unknown();
      for (auto& p : batch) p.promise.deliver(make_caf_error(store_failure(e)));
      return;
    }
  } catch (const std::exception& e) {
    m.failed_batches.add();
    st.note_outcome_unknown();
    auto f = unexpected_failure("writer", e);
    for (auto& p : batch) p.promise.deliver(make_caf_error(f));
    return;
  }
  // One request's writes took the whole batch down: commit each on its own
  // so only the offending one fails.
  for (auto& p : batch) {
    try {
      std::vector<const write_set*> alone{&p.set};
      st.note_committed(st.db->commit(alone), alone);
      p.promise.deliver(ok_atom::value);
    } catch (const store_error& e) {
      if (e.code == errc::db_unavailable) st.note_outcome_unknown();
      p.promise.deliver(make_caf_error(store_failure(e)));
    } catch (const std::exception& e) {
      st.note_outcome_unknown();
      p.promise.deliver(make_caf_error(unexpected_failure("writer", e)));
    }
  }
}

void purge_expired_keys(writer_state& st) {
  auto cutoff = now_ms() -
                std::chrono::duration_cast<std::chrono::milliseconds>(idempotency_lifetime).count();
  try {
    st.db->purge_idempotency(cutoff);
  } catch (const store_error& e) {
    spdlog::warn("writer: purging idempotency keys failed: {}", e.what());
  }
}

caf::behavior writer(caf::stateful_actor<writer_state>* self, std::shared_ptr<store> db,
                     database_settings cfg, std::shared_ptr<commit_positions> positions) {
  self->state.db = std::move(db);
  self->state.cfg = cfg;
  self->state.positions = std::move(positions);
  // On shutdown nothing pending may be lost.
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    flush_pending(self->state);
    self->quit(msg.reason);
  });
  self->send(self, purge_atom::value);
  return {
      [=](write_atom, write_set& set) -> caf::result<ok_atom> {
        recorded_writer_metrics().mailbox_backlog.set(static_cast<double>(self->mailbox().size()));
        auto& st = self->state;
        st.pending.push_back({std::move(set), self->make_response_promise()});
        // Taken now: a full batch is flushed below, which empties `pending`.
        auto promise = st.pending.back().promise;
        if (st.pending.size() >= st.cfg.batch_max_requests) {
          flush_pending(st);
        } else if (!st.flush_scheduled) {
          st.flush_scheduled = true;
          // A zero delay still batches: the flush queues behind every write
          // already in the mailbox.
          if (st.cfg.batch_delay_ms == 0)
            self->send(self, tick_atom::value);
          else
            self->delayed_send(self, std::chrono::milliseconds(st.cfg.batch_delay_ms),
                               tick_atom::value);
        }
        return promise;
      },
      [=](tick_atom) {
        self->state.flush_scheduled = false;
        flush_pending(self->state);
      },
      [=](flush_atom) {
        flush_pending(self->state);
        return ok_atom::value;
      },
      [=](purge_atom) {
        purge_expired_keys(self->state);
        self->delayed_send(self, purge_interval, purge_atom::value);
      },
  };
}

// --- readers ------------------------------------------------------------------

caf::result<caf::message> run_job(store& db, const read_job& job) {
  try {
    return job(db);
  } catch (const store_error& e) {
    spdlog::warn("reader: {}", e.what());
    return make_caf_error(store_failure(e));
  } catch (const std::exception& e) {
    return make_caf_error(unexpected_failure("reader", e));
  }
}

/// Runs `request` on `db`; a store_error it throws that `spare` returns
/// true for is left to the caller instead of answered.
template <class Spare>
void run_request(store& db, read_request& request, Spare spare) {
  try {
    request.run(db);
  } catch (const store_error& e) {
    if (spare(e)) throw;
    spdlog::warn("reader: {}", e.what());
    request.fail(store_failure(e));
  } catch (const std::exception& e) {
    request.fail(unexpected_failure("reader", e));
  }
}

void run_request(store& db, read_request& request) {
  run_request(db, request, [](const store_error&) { return false; });
}

struct reader_state {
  static inline const char* name = "parley.reader";
  std::shared_ptr<store> db;
};

caf::behavior reader(caf::stateful_actor<reader_state>* self, std::shared_ptr<store> db) {
  self->state.db = std::move(db);
  return {
      [=](read_atom, const read_job& job) { return run_job(*self->state.db, job); },
      [=](read_atom, const std::shared_ptr<read_request>& request) {
        run_request(*self->state.db, *request);
      },
      // What a replica could serve, when there is none: the user makes no difference.
      [=](read_atom, const std::string&, const std::shared_ptr<read_request>& request) {
        run_request(*self->state.db, *request);
      },
  };
}

/// What the replica readers report on GET /metrics.
metrics::family<metrics::counter>& replica_reads() {
  static auto& family = metrics::default_registry().counters(
      "parley_replica_reads_total",
      "Reads a read replica (database.read_url) may serve, by where they went: the replica, or "
      "the primary because the replica had not yet replayed the user's acknowledged writes "
      "(behind) or did not answer (unavailable).",
      {"outcome"});
  return family;
}

/// How often the prober asks a replica that failed whether it is back.
constexpr auto replica_probe_interval = std::chrono::seconds(1);

using probe_atom = caf::atom_constant<caf::atom("probe")>;

/// Whether the replica failed a read and has not answered the prober since.
/// While it is down, the readers leave their connections to it alone: a
/// replica that hangs would hold each read they try for their deadline.
struct replica_health {
  std::atomic<bool> down{false};
  caf::actor prober;  ///< told (probe_atom) when the replica goes down
};

struct replica_prober_state {
  static inline const char* name = "parley.replica_prober";
};

/// Asks the replica, on a connection of its own, once a second while it is
/// down, and says when it is back. Only this actor waits for a replica that hangs.
caf::behavior replica_prober(caf::stateful_actor<replica_prober_state>* self,
                             std::shared_ptr<store> db, std::shared_ptr<replica_health> health) {
  self->set_down_handler([self](caf::down_msg& msg) { self->quit(msg.reason); });
  return {
      // It goes when the readers go (watching them: a link would take the
      // readers down with the prober, were it ever to fail).
      [=](const caf::actor& readers) { self->monitor(readers); },
      [=](probe_atom) {
        if (!health->down) return;
        try {
          db->ping();
          spdlog::info("replica: answering again");
          health->down = false;
        } catch (const std::exception&) {
          self->delayed_send(self, replica_probe_interval, probe_atom::value);
        }
      },
  };
}

struct replica_reader_state {
  static inline const char* name = "parley.replica_reader";
  std::shared_ptr<store> db;
  std::shared_ptr<commit_positions> positions;
  std::shared_ptr<replica_health> health;
  caf::actor primary;  ///< the readers, for what the replica cannot answer now
  metrics::counter& served = replica_reads().with({"replica"});
  metrics::counter& behind = replica_reads().with({"behind"});
  metrics::counter& unavailable = replica_reads().with({"unavailable"});
  /// commit_positions::losses() when this connection last asked the replica
  /// how far it has replayed (none yet: it asks first).
  std::optional<std::uint64_t> asked_after_losses;

  /// Whether a read for `user` may run on the replica: whether it answers,
  /// and has replayed every acknowledged write of theirs. It is asked only
  /// when what it said last is not enough, or when this connection has not
  /// asked it since it was last lost (it may have come back behind).
  bool may_serve(const std::string& user) {
    if (health->down) {
      unavailable.add();
      return false;
    }
    auto needed = positions->needed_by(user);
    if (needed == commit_positions::nobody_yet) {
      behind.add();
      return false;
    }
    auto losses = positions->losses();
    if (asked_after_losses == losses && needed <= positions->known_replayed()) return true;
    std::optional<wal_position> replayed;
    try {
      replayed = db->replayed_position();
    } catch (const store_error& e) {
      note_unavailable(e);
      return false;
    }
    // None: read_url names no standby, which has every commit (but may
    // become one later, so this answer is not kept).
    if (!replayed) return true;
    positions->replayed(*replayed, losses);
    asked_after_losses = losses;
    if (needed <= *replayed) return true;
    behind.add();
    return false;
  }

  void note_unavailable(const store_error& e) {
    unavailable.add();
    positions->replica_lost();
    if (health->down.exchange(true)) return;
    spdlog::warn("replica: {}; reading from the primary meanwhile", e.what());
    caf::anon_send(health->prober, probe_atom::value);
  }
};

/// Runs a read on the replica when it has caught up with the user's writes,
/// else hands it to the primary's readers. A read the replica fails for
/// being unavailable goes to the primary too: a replica that is down costs
/// the primary the reads, not the clients their answers.
caf::behavior replica_reader(caf::stateful_actor<replica_reader_state>* self,
                             std::shared_ptr<store> db, std::shared_ptr<commit_positions> positions,
                             std::shared_ptr<replica_health> health, caf::actor primary) {
  auto& st = self->state;
  st.db = std::move(db);
  st.positions = std::move(positions);
  st.health = std::move(health);
  st.primary = std::move(primary);
  return {
      [=](read_atom, const std::string& user, const std::shared_ptr<read_request>& request) {
        auto& st = self->state;
        if (st.may_serve(user)) {
          try {
            run_request(*st.db, *request,
                        [](const store_error& e) { return e.code == errc::db_unavailable; });
            st.served.add();
            return;
          } catch (const store_error& e) {
            st.note_unavailable(e);
          }
        }
        self->send(st.primary, read_atom::value, request);
      },
  };
}

/// libpq quotes the malformed part of a URL (a password, say) in its error:
/// such a URL is refused here, before anything connects, and named redacted.
void refuse_malformed_url(const std::string& key, const database_url& url) {
  if (url.kind == database_url::backend::postgresql && !postgresql_url_parses(url.target))
    throw config_error(key + ": " + redacted_url(url.original) +
                       " is not a valid PostgreSQL URL (check its percent-encoding)");
}

}  // namespace

persistence_actors spawn_persistence(caf::actor_system& sys, const database_settings& cfg,
                                     const store_factory& factory) {
  // Every call of an actor's store is bounded by database.timeout_ms, so that
  // a hung statement cannot hold the writer or a reader for longer, and every
  // request is answered: the conversation actors wait for these answers
  // without a timer of their own. A write waits for the batches ahead of it,
  // each bounded the same. What is acknowledged is always committed; a write
  // answered with a timeout was rolled back, unless the cancel did not take
  // and a resuming server commits what it had been sent.
  auto call_timeout = std::chrono::milliseconds(cfg.timeout_ms);
  refuse_malformed_url("database.url", cfg.url);
  if (cfg.read_url) refuse_malformed_url("database.read_url", *cfg.read_url);
  std::shared_ptr<store> writer_store = factory();
  writer_store->migrate();
  writer_store->set_call_timeout(call_timeout);
  std::vector<std::shared_ptr<store>> reader_stores;
  for (unsigned i = 0; i < cfg.read_pool_size; ++i) {
    reader_stores.push_back(factory());
    reader_stores.back()->set_call_timeout(call_timeout);
  }
  std::vector<std::shared_ptr<store>> replica_stores;
  std::shared_ptr<commit_positions> positions;
  if (cfg.read_url) {
    writer_store->track_commit_positions();
    // Each connection opens on its first use: a standby that is down at
    // start (being rebuilt, say) costs the primary the reads, not the start.
    auto replica_factory = make_connecting_store_factory(*cfg.read_url);
    // One connection per reader, and the prober's.
    for (unsigned i = 0; i <= cfg.read_pool_size; ++i) {
      replica_stores.push_back(replica_factory());
      // The whole deadline, as on the primary: a slow search there is as
      // good as anywhere. A replica that hangs costs the reads waiting on it
      // their answer (503), once; then the prober keeps the others off it.
      replica_stores.back()->set_call_timeout(call_timeout);
    }
    positions = std::make_shared<commit_positions>();
  }
  persistence_actors out;
  out.positions = positions;
  out.writer = sys.spawn<caf::detached>(writer, writer_store, cfg, positions);
  std::size_t next = 0;
  out.readers = caf::actor_pool::make(
      sys.dummy_execution_unit(), reader_stores.size(),
      [&] { return sys.spawn<caf::detached>(reader, reader_stores[next++]); },
      caf::actor_pool::round_robin());
  if (replica_stores.empty()) {
    out.replica_readers = out.readers;
    return out;
  }
  auto health = std::make_shared<replica_health>();
  // Asked once now, so that the first reads need not each find it down.
  try {
    replica_stores.back()->ping();
  } catch (const store_error& e) {
    spdlog::warn(
        "the read replica (database.read_url {}) does not answer: {}; reading from the "
        "primary until it does",
        redacted_url(cfg.read_url->original), e.what());
    health->down = true;
  }
  health->prober = sys.spawn<caf::detached>(replica_prober, replica_stores.back(), health);
  replica_stores.pop_back();
  next = 0;
  out.replica_readers = caf::actor_pool::make(
      sys.dummy_execution_unit(), replica_stores.size(),
      [&] {
        return sys.spawn<caf::detached>(replica_reader, replica_stores[next++], positions, health,
                                        out.readers);
      },
      caf::actor_pool::round_robin());
  caf::anon_send(health->prober, out.replica_readers);
  // Not at once: the ping above has just tried, and a connection tries at
  // most every 250 ms.
  if (health->down)
    caf::delayed_anon_send(health->prober, replica_probe_interval, probe_atom::value);
  return out;
}

}  // namespace parley
