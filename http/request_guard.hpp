#pragma once

// Checks of header values that the server's request prelude applies before a
// handler runs (http/server.cpp). Pure functions, so that the unit tests and
// tests/fuzz/fuzz_request_guard.cpp reach them; inline, so that parley_http
// needs no new source.

#include <algorithm>
#include <cctype>
#include <string_view>

namespace parley {

/// ASCII case-insensitive equality, as header names and tokens compare
/// ("Bearer", "application/json", "websocket").
inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

/// A list of header names, as a preflight's Access-Control-Request-Headers holds.
inline bool is_header_name_list(std::string_view v) {
  if (v.size() > 1024) return false;
  for (unsigned char ch : v)
    if (!(std::isalnum(ch) || ch == '-' || ch == '_' || ch == ',' || ch == ' ')) return false;
  return true;
}

}  // namespace parley
