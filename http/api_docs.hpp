#pragma once

#include <string>

namespace parley {

/// docs/openapi.json as built into the binary (generated from that file).
const char* openapi_source();

/// The OpenAPI 3.1 document GET /openapi.json serves: openapi_source() with
/// info.version set to this build's version. Parsed once; thread-safe.
const std::string& openapi_json();

/// The Swagger UI page of GET /docs and the Redoc page of GET /redoc. Both load
/// the viewer from its public CDN and the document from /openapi.json.
std::string swagger_ui_page();
std::string redoc_page();

}  // namespace parley
