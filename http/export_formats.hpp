#pragma once

// What the export routes write: Parley's `parley.conversation.v1` object
// (which POST /v1/import reads back) and a Markdown transcript.

#include "actors/requests.hpp"

#include <string>

namespace parley {

/// The format name an export object carries.
inline constexpr const char* conversation_export_format = "parley.conversation.v1";

/// `{"conversation": Conversation, "format": "parley.conversation.v1",
/// "messages": [Message…]}` on one line (keys in sorted order).
std::string export_json(const conversation_export& e);

/// A readable transcript of `e.messages` (the active branch): the title,
/// the conversation's settings, then each message under its role and time.
std::string export_markdown(const conversation_export& e);

}  // namespace parley
