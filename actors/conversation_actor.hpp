#pragma once

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/running_runs.hpp"
#include "actors/usage_meter.hpp"
#include "base/errors.hpp"
#include "config/settings.hpp"
#include "persistence/persistence_actors.hpp"
#include "providers/model_registry.hpp"
#include "telemetry/metrics.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace parley {

/// What every conversation actor shares. Owned by the engine, which outlives
/// all actors; read-only after start except `dir`, `meter`, `running` and
/// `conflicts`, which are thread-safe.
struct engine_context {
  settings cfg;
  /// The time: every reading of it in the engine comes from here.
  std::shared_ptr<const engine_clock> clock;
  /// Keeps the generations' deadlines and the idle checks (one thread for
  /// all, no CAF timer each).
  deadline_sweeper* deadlines = nullptr;
  std::shared_ptr<const model_registry> models;
  persistence_actors db;
  std::unique_ptr<directory> dir;
  usage_meter meter;
  running_runs running;
  /// Writes run again because another process changed their conversation.
  metrics::counter& conflicts = metrics::default_registry().counter_named(
      "parley_conversation_conflicts_total",
      "Writes that found their conversation changed by another Parley process and ran again "
      "after a reload.");
};

/// The answer for a conversation that does not exist or is not the caller's.
failure conversation_not_found(const std::string& id);

/// The actor of an existing conversation: it loads itself from the database
/// and answers not_found (then quits) if there is no such conversation.
///
/// Its interface is `conversation_actor` (actors/messages.hpp).
/// Operations that change the conversation run one at a time in arrival order.
conversation_actor spawn_loading_conversation(caf::actor_system& sys, engine_context* ctx,
                                              const std::string& id);

/// The actor of a conversation that does not exist yet. Its first request must
/// be create_atom's.
conversation_actor spawn_new_conversation(caf::actor_system& sys, engine_context* ctx,
                                          const std::string& id);

}  // namespace parley
