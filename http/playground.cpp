#include "http/playground.hpp"

#include "http/embedded_files.hpp"

#include <stdexcept>

namespace parley {

const char* const playground_page_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

std::string playground_page(std::string_view auth_mode) {
  constexpr std::string_view marker = "{{auth_mode}}";
  std::string page(playground_page_template());
  auto at = page.find(marker);
  if (at == std::string::npos)
    throw std::logic_error("http/playground/index.html has no " + std::string(marker));
  page.replace(at, marker.size(), auth_mode);
  return page;
}

}  // namespace parley
