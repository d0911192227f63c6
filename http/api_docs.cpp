#include "http/api_docs.hpp"

#include "config/version.hpp"

#include <nlohmann/json.hpp>

namespace parley {

const std::string& openapi_json() {
  static const std::string document = [] {
    auto doc = nlohmann::json::parse(openapi_source());
    doc["info"]["version"] = version();
    return doc.dump(2);
  }();
  return document;
}

namespace {

// Pinned major versions, as FastAPI pins them; the pages need the network
// for the viewer only, /openapi.json comes from this server.
constexpr const char* swagger_ui_cdn = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5";
constexpr const char* redoc_cdn =
    "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js";

/// A viewer page: `head` and `body` inside the markup both pages share.
std::string html_page(const char* viewer, const std::string& head, const std::string& body) {
  return std::string(R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Parley API - )") +
         viewer + "</title>\n" + head + R"(</head>
<body>
<noscript>This page needs JavaScript; the API description itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
)" + body +
         "</body>\n</html>\n";
}

}  // namespace

std::string swagger_ui_page() {
  return html_page(
      "Swagger UI",
      std::string("<link rel=\"stylesheet\" href=\"") + swagger_ui_cdn + "/swagger-ui.css\">\n",
      std::string("<div id=\"swagger-ui\"></div>\n<script src=\"") + swagger_ui_cdn +
          R"(/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout"
});
</script>
)");
}

std::string redoc_page() {
  return html_page("ReDoc", "<style>body { margin: 0; padding: 0; }</style>\n",
                   std::string("<redoc spec-url=\"/openapi.json\"></redoc>\n<script src=\"") +
                       redoc_cdn + "\"></script>\n");
}

}  // namespace parley
