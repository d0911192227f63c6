#pragma once

#include <span>
#include <string_view>

namespace parley {

/// A file compiled into the binary (embedded_files.cpp.in), served as it is.
struct embedded_file {
  std::string_view name;  ///< as in the route's {name}
  const char* content_type;
  std::string_view bytes;
};

/// Swagger UI and Redoc: GET /docs/assets/{name}.
std::span<const embedded_file> viewer_assets();

/// The playground's script, style sheet and licenses: GET /playground/assets/{name}.
std::span<const embedded_file> playground_assets();

/// http/playground/index.html, the playground page before the server fills in
/// its settings (playground.hpp).
std::string_view playground_page_template();

/// The file of `files` called `name`, or nullptr.
const embedded_file* find_embedded(std::span<const embedded_file> files, std::string_view name);

}  // namespace parley
