#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace parley {

/// Milliseconds since the Unix epoch, the unit of every timestamp we store.
using unix_ms = std::int64_t;

unix_ms now_ms();

/// RFC 3339 UTC with milliseconds: 2026-11-22T13:05:07.123Z.
std::string format_rfc3339(unix_ms t);

/// The UTC day of a timestamp as YYYY-MM-DD.
std::string format_day(unix_ms t);

/// The start (midnight UTC) of the day YYYY-MM-DD; nothing when `text` is
/// not a valid calendar date.
std::optional<unix_ms> parse_day(const std::string& text);

/// An RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS`, an optional fraction of a
/// second, then `Z` or `±HH:MM`), to the millisecond below; nothing for any
/// other text.
std::optional<unix_ms> parse_rfc3339(const std::string& text);

}  // namespace parley
