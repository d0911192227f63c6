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

/// What a stored answer says: an outcome, or (for a key stored before schema
/// 4, converted by its migration) the answer as it was sent.
struct decoded_answer {
  outcome<exchange_result> answer = failure{};
  std::optional<legacy_answer> legacy;
};

/// Reads what encode_answer (or migration 4) wrote. Throws store_error(internal)
/// for other text, so a damaged row fails the repeat instead of replaying junk.
decoded_answer decode_answer(std::string_view text);

}  // namespace parley
