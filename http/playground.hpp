#pragma once

#include <string>
#include <string_view>

namespace parley {

/// The playground page of GET / and GET /playground: http/playground/index.html
/// with the server's `auth.mode` ("none" or "jwt") in the meta tag the script
/// reads, so that it asks for a user id or for a token.
std::string playground_page(std::string_view auth_mode);

/// The Content-Security-Policy the page is served with: scripts, styles,
/// images and connections from this server only (its WebSocket included), no
/// inline script or style, no plugins, frames, forms or <base>.
extern const char* const playground_page_policy;

}  // namespace parley
