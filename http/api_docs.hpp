#pragma once

#include <string>

namespace parley {

/// docs/openapi.json as built into the binary (generated from that file).
const char* openapi_source();

/// The OpenAPI 3.1 document GET /openapi.json serves: openapi_source() with
/// info.version set to this build's version. Parsed once; thread-safe.
const std::string& openapi_json();

/// The Swagger UI page of GET /docs and the Redoc page of GET /redoc. Both load
/// the viewer from /docs/assets/ and the document from /openapi.json: nothing
/// from another host, so they work where the network ends at this server.
/// Built once; thread-safe.
const std::string& swagger_ui_page();
const std::string& redoc_page();

/// The Content-Security-Policy both pages are served with: this server only,
/// no inline script (the viewers add inline styles, Redoc a worker from a blob).
extern const char* const viewer_page_policy;

}  // namespace parley
