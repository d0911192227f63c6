#pragma once

#include <cstdint>
#include <string_view>

namespace parley {

/// Unicode code points in UTF-8 text (invalid bytes count one each).
std::size_t count_code_points(std::string_view utf8);

/// The engine's estimate of tokens in a text: about four characters a token.
std::int64_t estimate_tokens(std::string_view text);

/// The estimate for one chat message: its text plus the per-message framing
/// providers add (role markers and separators).
std::int64_t estimate_message_tokens(std::string_view content);

}  // namespace parley
