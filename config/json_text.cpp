#include "config/json_text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace parley {

void append_json_string(std::string& out, std::string_view text) {
  bool plain = std::all_of(text.begin(), text.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
  });
  if (!plain) {
    out += nlohmann::json(std::string(text))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  out += '"';
  out += text;
  out += '"';
}

}  // namespace parley
