#include "http/export_formats.hpp"

#include "base/clock.hpp"
#include "base/json_text.hpp"
#include "http/json_mapping.hpp"

#include <cctype>

namespace parley {

std::string export_json(const conversation_export& e) {
  auto conversation = to_json(e.conversation);
  // What runs now is no part of what is exported.
  conversation.erase("running");
  std::string out = "{\"conversation\":";
  out += dump(conversation);
  out += ",\"format\":\"";
  out += conversation_export_format;
  out += "\",\"messages\":";
  append_messages_json(out, e.messages);
  out += '}';
  return out;
}

std::string export_markdown(const conversation_export& e) {
  auto& c = e.conversation;
  std::string out =
      "# " + (c.title && !c.title->empty() ? *c.title : "Untitled conversation") + "\n\n";
  out += "- Conversation: `" + c.id + "`\n";
  out += "- Model: `" + c.model + "`\n";
  out += "- Created: " + format_rfc3339(c.created_at) + "\n";
  out += "- Messages on this branch: " + std::to_string(e.messages.size()) + "\n";
  if (c.system_prompt) out += "\n## System prompt\n\n" + *c.system_prompt + "\n";
  for (auto& m : e.messages) {
    auto role = m.role;
    if (!role.empty())
      role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
    out += "\n## " + role;
    if (m.model) out += " (" + *m.model + ")";
    out += " · " + format_rfc3339(m.created_at);
    if (m.edited_at) out += ", edited " + format_rfc3339(*m.edited_at);
    out += "\n\n";
    out += m.content.view();
    out += "\n";
  }
  return out;
}

}  // namespace parley
