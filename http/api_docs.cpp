#include "http/api_docs.hpp"

#include "base/version.hpp"

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

const char* const viewer_page_policy =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

namespace {

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

const std::string& swagger_ui_page() {
  static const std::string page =
      html_page("Swagger UI", "<link rel=\"stylesheet\" href=\"/docs/assets/swagger-ui.css\">\n",
                R"(<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-initializer.js"></script>
)");
  return page;
}

const std::string& redoc_page() {
  static const std::string page =
      html_page("ReDoc", "<style>body { margin: 0; padding: 0; }</style>\n",
                R"(<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
)");
  return page;
}

}  // namespace parley
