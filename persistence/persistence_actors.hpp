#pragma once

#include "config/settings.hpp"
#include "persistence/store.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <memory>

namespace parley {

class commit_positions;

/// The database as actors. Every actor owns its own store and runs detached, on
/// its own thread, so blocking SQL never stalls the cooperative scheduler.
struct persistence_actors {
  /// Protocol: (write_atom, write_set) -> ok_atom once the set is committed, or
  /// an error (db_unavailable, conflict). (flush_atom) -> ok_atom once every
  /// write received before it is committed. Sets are grouped into batches of up
  /// to `batch_max_requests`, one transaction each, at most `batch_delay_ms` late.
  caf::actor writer;
  /// Protocol: (read_atom, read_job) -> whatever the job returns, or an error;
  /// (read_atom, shared_ptr<read_request>) runs the request, which answers itself.
  /// A round-robin pool of `read_pool_size` readers, so reads never wait behind
  /// a batch.
  caf::actor readers;
  /// Protocol: (read_atom, user, shared_ptr<read_request>), which answers
  /// itself as with `readers`: the reads a replica may serve (history,
  /// lists, search, usage, exports), for `user`.
  /// With database.read_url, a pool of readers on the replica that run a read
  /// there once the replica has replayed every write this process acknowledged
  /// for that user, and hand it to `readers` before; without, `readers`.
  caf::actor replica_readers;
  /// With database.read_url: where each user's acknowledged writes end in the
  /// WAL, which the writer notes and the replica readers check. The engine
  /// adds what other instances commit, as it hears of it. Null without.
  std::shared_ptr<commit_positions> positions;
};

/// Connects every actor's store through `factory` (throws store_error when the
/// database cannot be reached) and spawns the actors.
persistence_actors spawn_persistence(caf::actor_system& sys, const database_settings& cfg,
                                     const store_factory& factory);

}  // namespace parley
