#pragma once

#include "actors/engine.hpp"
#include "config/settings.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace parley {

/// Serves the HTTP API on `cfg.server.host:port` with `cfg.server.threads` I/O
/// threads until SIGINT or SIGTERM; then stops accepting, lets in-flight
/// requests finish (up to `shutdown_grace_ms`), shuts the engine down (every
/// pending write is committed) and returns 0. `on_listening` gets the bound
/// port (useful with port 0). Throws std::system_error when it cannot listen.
/// Must be called from the main thread before other threads start, since it
/// blocks SIGINT/SIGTERM for the whole process to wait for them itself.
/// Every (method, route template) the router serves, OPTIONS aside, with
/// templates written as OpenAPI paths: /v1/conversations/{id}.
std::vector<std::pair<std::string, std::string>> routed_operations();

int run_server(const settings& cfg, engine& eng, std::function<void(std::uint16_t)> on_listening);

}  // namespace parley
