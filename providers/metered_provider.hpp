#pragma once

#include "providers/provider.hpp"
#include "telemetry/metrics.hpp"

#include <memory>
#include <string>

namespace parley {

/// `inner` with its completions counted into `r`, labelled with `provider_name`
/// and the upstream model: requests by outcome (ok, cancelled, error,
/// timeout), prompt and completion tokens, time to the first piece of text and
/// to the end. Adds nothing to the completion itself.
std::shared_ptr<provider> make_metered_provider(std::shared_ptr<provider> inner,
                                                std::string provider_name, metrics::registry& r);

}  // namespace parley
