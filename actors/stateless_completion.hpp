#pragma once

// Internal to actors/: includes CAF's forward declarations.

#include "actors/completion.hpp"
#include "actors/requests.hpp"

#include <caf/fwd.hpp>

namespace parley {

struct engine_context;

/// Runs one stateless completion (engine::complete) on an actor of its own,
/// which answers `caller` and quits.
void spawn_stateless_completion(caf::actor_system& sys, engine_context* ctx,
                                stateless_request request, completion<stateless_result> caller);

}  // namespace parley
