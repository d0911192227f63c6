#pragma once

#include "base/errors.hpp"

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace parley {

/// The error category of Parley's errc inside CAF.
constexpr caf::atom_value errc_category = caf::atom("parley");

/// A failure as a caf::error; detail, field, message id and retry hint travel in its context.
caf::error make_caf_error(const failure& f);

/// Back from a caf::error. CAF's own errors map as: a request timeout to
/// `on_timeout`, anything else (receiver gone, unexpected reply) to internal.
failure to_failure(const caf::error& e, errc on_timeout);

}  // namespace parley
