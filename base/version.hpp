#pragma once

namespace parley {

/// The version `parley --version` prints.
const char* version();

}  // namespace parley
