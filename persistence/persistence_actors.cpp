#include "persistence/persistence_actors.hpp"

#include "persistence/caf_errors.hpp"
#include "persistence/messages.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>

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
    st.db->commit(sets);
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
      for (auto& p : batch) p.promise.deliver(make_caf_error(store_failure(e)));
      return;
    }
  } catch (const std::exception& e) {
    m.failed_batches.add();
    auto f = unexpected_failure("writer", e);
    for (auto& p : batch) p.promise.deliver(make_caf_error(f));
    return;
  }
  // One request's writes took the whole batch down: commit each on its own
  // so only the offending one fails.
  for (auto& p : batch) {
    try {
      st.db->commit({&p.set});
      p.promise.deliver(ok_atom::value);
    } catch (const store_error& e) {
      p.promise.deliver(make_caf_error(store_failure(e)));
    } catch (const std::exception& e) {
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
                     database_settings cfg) {
  self->state.db = std::move(db);
  self->state.cfg = cfg;
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

struct reader_state {
  static inline const char* name = "parley.reader";
  std::shared_ptr<store> db;
};

caf::behavior reader(caf::stateful_actor<reader_state>* self, std::shared_ptr<store> db) {
  self->state.db = std::move(db);
  return {
      [=](read_atom, const read_job& job) -> caf::result<caf::message> {
        try {
          return job(*self->state.db);
        } catch (const store_error& e) {
          spdlog::warn("reader: {}", e.what());
          return make_caf_error(store_failure(e));
        } catch (const std::exception& e) {
          return make_caf_error(unexpected_failure("reader", e));
        }
      },
      [=](read_atom, const std::shared_ptr<read_request>& request) {
        try {
          request->run(*self->state.db);
        } catch (const store_error& e) {
          spdlog::warn("reader: {}", e.what());
          request->fail(store_failure(e));
        } catch (const std::exception& e) {
          request->fail(unexpected_failure("reader", e));
        }
      },
  };
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
  std::shared_ptr<store> writer_store = factory();
  writer_store->migrate();
  writer_store->set_call_timeout(call_timeout);
  std::vector<std::shared_ptr<store>> reader_stores;
  for (unsigned i = 0; i < cfg.read_pool_size; ++i) {
    reader_stores.push_back(factory());
    reader_stores.back()->set_call_timeout(call_timeout);
  }
  persistence_actors out;
  out.writer = sys.spawn<caf::detached>(writer, writer_store, cfg);
  std::size_t next = 0;
  out.readers = caf::actor_pool::make(
      sys.dummy_execution_unit(), reader_stores.size(),
      [&] { return sys.spawn<caf::detached>(reader, reader_stores[next++]); },
      caf::actor_pool::round_robin());
  return out;
}

}  // namespace parley
