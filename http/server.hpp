#pragma once

#include "actors/engine.hpp"
#include "config/settings.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace parley {

/// Blocks SIGINT and SIGTERM in the calling thread and so in every thread it
/// starts afterwards, which run_server needs to take them with sigwait. Call
/// it first in main(), before any other thread (CAF's, a provider's) starts.
void block_stop_signals();

/// Serves the HTTP API on `cfg.server.host:port` with `cfg.server.threads` I/O
/// threads until SIGINT or SIGTERM; then stops accepting, lets in-flight
/// requests finish (up to `shutdown_grace_ms`), shuts the engine down (every
/// pending write is committed) and returns 0. `on_listening` gets the bound
/// port (useful with port 0). Throws std::system_error when it cannot listen.
/// Must be called from the main thread, after block_stop_signals() and before
/// any other thread was started without it.
int run_server(const settings& cfg, engine& eng, std::function<void(std::uint16_t)> on_listening);

/// Every (method, route template) the router serves, OPTIONS aside, with
/// templates written as OpenAPI paths: /v1/conversations/{id}.
std::vector<std::pair<std::string, std::string>> routed_operations();

}  // namespace parley
