#pragma once

#include "config/settings.hpp"
#include "providers/chat_protocol.hpp"
#include "providers/provider.hpp"

#include <memory>

namespace parley {

/// A provider reached over HTTP (kinds `openai` and `anthropic`): `protocol`
/// says what goes on the wire, an upstream_client of its own carries it.
/// Retries connection errors, 429 and 5xx with backoff within the request's
/// deadline and the provider's timeout_ms, but never once text has been
/// delivered to a streaming caller.
std::shared_ptr<provider> make_http_provider(const provider_settings& cfg,
                                             std::unique_ptr<chat_protocol> protocol);

}  // namespace parley
