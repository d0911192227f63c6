#pragma once

#include "config/settings.hpp"

#include <string_view>

namespace parley {

/// Makes every log line one JSON object on stderr, at `cfg.level`:
/// {"time":"2026-11-22T13:05:07.123Z","level":"info","msg":"..."}, written by
/// a thread of its own (started here: call it after block_stop_signals()).
/// Call once, at start, before other threads log.
void configure_logging(const log_settings& cfg);

/// Writes `json_object` (a serialized JSON object, such as one request's
/// record) as a log line at info level, with "time" and "level" put first.
/// Thread-safe and non-blocking: a writer thread writes the lines within
/// 50 ms, many at a time (lines past 16 MiB waiting are dropped), and all of
/// them before the process exits.
void log_event(std::string_view json_object);

/// `text` as a JSON string literal, quotes included; invalid UTF-8 replaced.
std::string json_quoted(std::string_view text);

}  // namespace parley
