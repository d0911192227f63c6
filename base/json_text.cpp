#include "base/json_text.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace parley {

namespace {

/// The length of the valid UTF-8 sequence that starts `text` (a byte of
/// 0x80 or above), or 0 when it is not one (RFC 3629: no overlong forms,
/// no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view text) {
  auto at = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  auto lead = at(0);
  std::size_t length = 0;
  std::uint8_t low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (at(1) < low || at(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (at(i) < 0x80 || at(i) > 0xBF) return 0;
  return length;
}

}  // namespace

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void append_json_string(std::string& out, std::string_view text) {
  auto start = out.size();
  out.reserve(start + text.size() + 2);
  out += '"';
  auto plain = [](std::uint8_t c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; };
  for (std::size_t i = 0; i < text.size();) {
    // A run that needs nothing done goes in with one copy.
    auto run = i;
    while (run < text.size() && plain(static_cast<std::uint8_t>(text[run]))) ++run;
    if (run > i) {
      out.append(text.substr(i, run - i));
      i = run;
      continue;
    }
    auto c = static_cast<std::uint8_t>(text[i]);
    if (c >= 0x80) {
      auto length = utf8_sequence(text.substr(i));
      if (length == 0) {
        // Invalid UTF-8: json's own rules say what replaces what.
        out.resize(start);
        out += dump(nlohmann::json(std::string(text)));
        return;
      }
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {  // the other control characters
        constexpr char hex[] = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xF];
      }
    }
  }
  out += '"';
}

}  // namespace parley
