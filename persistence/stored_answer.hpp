#pragma once

#include "persistence/records.hpp"

#include <string>
#include <string_view>

namespace parley {

/// The text form of an idempotent request's outcome in `idempotency_keys.answer`:
/// a JSON object holding the records it produced or the failure it answered.
/// The database's own format, not the API's: http/ renders the outcome anew
/// for each repeat.
std::string encode_answer(const outcome<exchange_result>& answer);

/// Reads what encode_answer wrote. Throws store_error(internal) for text it
/// did not write, so a damaged row fails the repeat instead of replaying junk.
outcome<exchange_result> decode_answer(std::string_view text);

}  // namespace parley
