#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

namespace parley {

/// Serializes without throwing, whatever the strings hold: invalid UTF-8
/// becomes U+FFFD. Every JSON text Parley writes goes through this or
/// append_json_string, so both say the same of the same bytes.
std::string dump(const nlohmann::json& j);

/// Appends `text` as a JSON string literal, byte for byte as nlohmann::json's
/// dump with error_handler_t::replace writes it (invalid UTF-8 becomes U+FFFD).
/// For JSON written out directly rather than built as a tree: valid text is
/// escaped in one pass into `out`; only text with invalid UTF-8 is handed to
/// json, whose replacement rules then apply.
void append_json_string(std::string& out, std::string_view text);

}  // namespace parley
