#define BOOST_TEST_MODULE api_docs
#include "base/version.hpp"
#include "http/api_docs.hpp"
#include "http/embedded_files.hpp"
#include "http/playground.hpp"
#include "http/server.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

using namespace parley;
using operation = std::pair<std::string, std::string>;  // method (upper case), path

namespace {

std::set<operation> documented_operations(const nlohmann::json& doc) {
  static const std::set<std::string> methods{"get",     "put",  "post",  "delete",
                                             "options", "head", "patch", "trace"};
  std::set<operation> out;
  for (auto& [path, item] : doc.at("paths").items())
    for (auto& [method, op] : item.items())
      if (methods.count(method)) {
        std::string upper = method;
        std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
        out.emplace(upper, path);
      }
  return out;
}

/// Every "$ref" in `node`, as JSON pointers into the document.
void collect_refs(const nlohmann::json& node, std::vector<std::string>& out) {
  if (node.is_object()) {
    for (auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) out.push_back(value.get<std::string>());
      collect_refs(value, out);
    }
  } else if (node.is_array()) {
    for (auto& value : node) collect_refs(value, out);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_document_is_openapi_3_1_with_this_builds_version) {
  auto doc = nlohmann::json::parse(openapi_json());
  BOOST_TEST(doc["openapi"].get<std::string>().rfind("3.1.", 0) == 0u);
  BOOST_TEST(doc["info"]["version"] == version());
  BOOST_TEST(doc["info"]["title"].is_string());
}

BOOST_AUTO_TEST_CASE(every_routed_operation_is_documented_and_every_documented_one_routed) {
  auto doc = nlohmann::json::parse(openapi_json());
  auto documented = documented_operations(doc);
  auto routed_list = routed_operations();
  std::set<operation> routed(routed_list.begin(), routed_list.end());
  BOOST_TEST(routed.size() == routed_list.size());  // no route registered twice
  BOOST_TEST(routed.size() >= 19u);
  for (auto& op : routed)
    BOOST_TEST(documented.count(op) == 1u,
               op.first << " " << op.second << " is routed but missing from docs/openapi.json");
  for (auto& op : documented)
    BOOST_TEST(routed.count(op) == 1u,
               op.first << " " << op.second << " is in docs/openapi.json but not routed");
}

BOOST_AUTO_TEST_CASE(route_templates_are_written_as_openapi_paths) {
  auto routed = routed_operations();
  auto has = [&](const char* method, const char* path) {
    return std::find(routed.begin(), routed.end(), operation{method, path}) != routed.end();
  };
  BOOST_TEST(has("PATCH", "/v1/conversations/{id}/messages/{message_id}"));
  BOOST_TEST(has("GET", "/v1/conversations/{id}/ws"));
  BOOST_TEST(has("GET", "/metrics"));
  BOOST_TEST(has("GET", "/openapi.json"));
}

BOOST_AUTO_TEST_CASE(every_operation_has_an_id_and_answers_and_every_ref_resolves) {
  auto doc = nlohmann::json::parse(openapi_json());
  std::set<std::string> ids;
  for (auto& [path, item] : doc["paths"].items())
    for (auto& [method, op] : item.items()) {
      if (!op.is_object() || !op.contains("responses")) continue;
      BOOST_TEST(op["operationId"].is_string(), method << " " << path << " has no operationId");
      BOOST_TEST(ids.insert(op.value("operationId", "")).second,
                 "operationId of " << method << " " << path << " is not unique");
      BOOST_TEST(!op["responses"].empty(), method << " " << path << " documents no answer");
    }
  std::vector<std::string> refs;
  collect_refs(doc, refs);
  BOOST_TEST(!refs.empty());
  for (auto& ref : refs) {
    BOOST_TEST_REQUIRE(ref.rfind("#/", 0) == 0u, ref << " is not a local reference");
    BOOST_TEST(doc.contains(nlohmann::json::json_pointer(ref.substr(1))), ref << " points nowhere");
  }
}

BOOST_AUTO_TEST_CASE(the_viewer_pages_load_the_served_document) {
  for (auto page : {swagger_ui_page(), redoc_page()})
    BOOST_TEST(page.rfind("<!DOCTYPE html>", 0) == 0u);
  BOOST_TEST(redoc_page().find("<redoc spec-url=\"/openapi.json\">") != std::string::npos);
  BOOST_TEST(swagger_ui_page().find("<script src=\"/docs/assets/swagger-initializer.js\">") !=
             std::string::npos);
  auto* init = find_embedded(viewer_assets(), "swagger-initializer.js");
  BOOST_REQUIRE(init);
  BOOST_TEST(init->bytes.find("SwaggerUIBundle({\n  url: \"/openapi.json\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_file_a_viewer_page_names_is_compiled_in) {
  const std::string prefix = "=\"/docs/assets/";
  for (auto page : {swagger_ui_page(), redoc_page()}) {
    int named = 0;
    for (auto at = page.find(prefix); at != std::string::npos; at = page.find(prefix, at + 1)) {
      auto start = at + prefix.size();
      auto name = page.substr(start, page.find('"', start) - start);
      auto* asset = find_embedded(viewer_assets(), name);
      BOOST_TEST_REQUIRE(asset, name << " is not compiled in");
      BOOST_TEST(asset->bytes.size() > 100u);
      ++named;
    }
    BOOST_TEST(named >= 1);
  }
  BOOST_TEST(!find_embedded(viewer_assets(), ""));
  BOOST_TEST(!find_embedded(viewer_assets(), "package.json"));
}

BOOST_AUTO_TEST_CASE(the_playground_page_carries_the_auth_mode_and_names_compiled_in_files) {
  for (auto mode : {"none", "jwt"}) {
    auto page = playground_page(mode);
    BOOST_TEST(page.rfind("<!DOCTYPE html>", 0) == 0u);
    BOOST_TEST(page.find(std::string("<meta name=\"parley-auth-mode\" content=\"") + mode +
                         "\">") != std::string::npos);
    BOOST_TEST(page.find("{{") == std::string::npos);
    const std::string prefix = "=\"/playground/assets/";
    int named = 0;
    for (auto at = page.find(prefix); at != std::string::npos; at = page.find(prefix, at + 1)) {
      auto start = at + prefix.size();
      auto name = page.substr(start, page.find('"', start) - start);
      BOOST_TEST_REQUIRE(find_embedded(playground_assets(), name), name << " is not compiled in");
      ++named;
    }
    BOOST_TEST(named == 2);
  }
  // Files of one set are not served from the other's route.
  BOOST_TEST(!find_embedded(playground_assets(), "swagger-ui.css"));
  BOOST_TEST(!find_embedded(viewer_assets(), "playground.js"));
  std::string policy = playground_page_policy;
  BOOST_TEST(policy.find("script-src 'self';") != std::string::npos);
  BOOST_TEST(policy.find("unsafe") == std::string::npos);
  BOOST_TEST(policy.find("frame-ancestors 'none'") != std::string::npos);
}
