#pragma once

#include "config/settings.hpp"

#include <string_view>

namespace parley {

/// Makes every log line one JSON object on stderr, at `cfg.level`:
/// {"time":"2026-11-22T13:05:07.123Z","level":"info","msg":"..."}. Call once,
/// at start, before other threads log.
void configure_logging(const log_settings& cfg);

/// Writes `json_object` (a serialized JSON object, such as one request's
/// record) as a log line at info level, with "time" and "level" put first.
/// Thread-safe and non-blocking: lines queue for a writer thread (the oldest
/// dropped past 16384 waiting), which writes them all out before exit.
void log_event(std::string_view json_object);

/// `text` as a JSON string literal, quotes included; invalid UTF-8 replaced.
std::string json_quoted(std::string_view text);

}  // namespace parley
