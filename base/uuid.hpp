#pragma once

#include <string>
#include <string_view>

namespace parley {

/// A new UUID version 7 (time-ordered) in canonical lowercase form. Thread-safe.
std::string make_uuid_v7();

/// True for a canonical lowercase UUID: 8-4-4-4-12 hex digits.
bool is_canonical_uuid(std::string_view text);

}  // namespace parley
