#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace parley {

/// Base64url without padding (RFC 7515 §2): JWT segments, and the user id a
/// browser's WebSocket offers as a subprotocol. nullopt for anything else,
/// including leftover bits that are not zero (two encodings of one value).
std::optional<std::string> decode_base64url(std::string_view in);

}  // namespace parley
