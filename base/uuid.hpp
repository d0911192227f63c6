#pragma once

#include <string>
#include <string_view>

namespace parley {

/// A new UUID version 7 (time-ordered) in canonical lowercase form. Thread-safe.
std::string make_uuid_v7();

/// True for a canonical lowercase UUID: 8-4-4-4-12 hex digits.
bool is_canonical_uuid(std::string_view text);

/// This process's id among the Parley instances on one database: a UUID made
/// once, at the first call. Thread-safe.
const std::string& instance_id();

}  // namespace parley
