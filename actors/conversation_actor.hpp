#pragma once

#include "actors/directory.hpp"
#include "actors/usage_meter.hpp"
#include "config/errors.hpp"
#include "config/settings.hpp"
#include "persistence/persistence_actors.hpp"
#include "providers/model_registry.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace parley {

/// What every conversation actor shares. Owned by the engine, which outlives
/// all actors; read-only after start except `dir` and `meter`, which are thread-safe.
struct engine_context {
  settings cfg;
  std::shared_ptr<const model_registry> models;
  persistence_actors db;
  std::unique_ptr<directory> dir;
  usage_meter meter;
};

/// The answer for a conversation that does not exist or is not the caller's.
failure conversation_not_found(const std::string& id);

/// The actor of an existing conversation: it loads itself from the database
/// and answers not_found (then quits) if there is no such conversation.
///
/// Protocol: every request carries the caller's user id first and, last, the
/// completion<T> the actor answers (no response message travels back):
///   (update_atom, user, conversation_patch, completion<conversation_record>)
///   (delete_atom, user, completion<done>)
///   (history_atom, user, history_query, completion<message_page>)
///   (send_atom, user, send_params, optional<idempotency_claim>, completion<exchange_result>)
///   (edit_atom, user, message_id, content, completion<message_record>)
///   (remove_atom, user, message_id, completion<done>)
///   (regen_atom, user, regenerate_params, optional<idempotency_claim>,
///    completion<exchange_result>)
///   (watch_atom, user, shared_ptr<conversation_subscriber>, completion<done>)
///   (unwatch_atom, shared_ptr<conversation_subscriber>), no answer
/// Operations that change the conversation run one at a time in arrival order.
caf::actor spawn_loading_conversation(caf::actor_system& sys, engine_context* ctx,
                                      const std::string& id);

/// The actor of a conversation that does not exist yet. Its first request must
/// be (create_atom, new_conversation, optional<idempotency_claim>,
/// completion<exchange_result>).
caf::actor spawn_new_conversation(caf::actor_system& sys, engine_context* ctx,
                                  const std::string& id);

}  // namespace parley
