#define BOOST_TEST_MODULE api_operations
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/jwt_signer.hpp"
#include "support/prometheus_text.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <ctime>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

// What an operator relies on: /metrics, the JSON request log, the API
// documents and the startup line.

using namespace parley::testing;
using nlohmann::json;

namespace {

const std::string jwt_secret = "operations-secret-1b7e9d3c5a2f4e6d8c0b1a3f5e7d9c2b";
const std::string provider_key = "sk-operations-test-key-4c1d9e7f2a";
const std::string private_words = "the-private-words-of-a-user";

std::string token_for(const std::string& user) {
  return jwt_hs256({{"sub", user}, {"exp", static_cast<std::int64_t>(std::time(nullptr)) + 600}},
                   jwt_secret);
}

server_process& open_server() {
  static auto s = std::make_unique<server_process>();
  return *s;
}

prometheus_scrape scrape(http_client& c) {
  auto r = c.get("/metrics");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  return prometheus_scrape::parse(r.body);
}

double requests_of(const prometheus_scrape& s, const std::string& method, const std::string& route,
                   const std::string& status) {
  return s
      .value("parley_http_requests_total",
             {{"method", method}, {"route", route}, {"status", status}})
      .value_or(0);
}

/// Every line of a server log, each parsed as JSON (a test failure if one is not).
std::vector<json> log_lines(const std::string& log) {
  std::vector<json> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    BOOST_TEST(j.is_object(), "a log line is not a JSON object: " << line);
    if (j.is_object()) out.push_back(j);
  }
  return out;
}

std::vector<json> request_lines(const std::string& log) {
  std::vector<json> out;
  for (auto& j : log_lines(log))
    if (j.value("msg", "") == "request") out.push_back(j);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(metrics_parse_and_counters_move_with_requests) {
  http_client c(open_server().base_url(), "metrics-user");
  auto before = scrape(c);
  auto id = create_conversation(c, {{"message", "hello metrics"}});
  BOOST_REQUIRE_EQUAL(
      c.post("/v1/conversations/" + id + "/messages", {{"content", "again"}}).status, 201);
  BOOST_REQUIRE_EQUAL(c.get("/v1/conversations/" + id).status, 200);
  BOOST_REQUIRE_EQUAL(c.get("/v1/conversations/" + id + "/nowhere").status, 404);
  BOOST_REQUIRE_EQUAL(c.del("/v1/models").status, 405);

  // A request is counted once its answer has gone out, which may be just after
  // the client has read it.
  prometheus_scrape after;
  auto counted = [&](const char* method, const char* route, const char* status) {
    return requests_of(after, method, route, status) - requests_of(before, method, route, status);
  };
  BOOST_TEST(eventually([&] {
    after = scrape(c);
    return counted("POST", "/v1/conversations", "201") >= 1 &&
           counted("POST", "/v1/conversations/:id/messages", "201") >= 1 &&
           counted("GET", "/v1/conversations/:id", "200") >= 1 &&
           counted("GET", "unmatched", "404") >= 1 && counted("DELETE", "/v1/models", "405") >= 1;
  }));
  BOOST_TEST(counted("POST", "/v1/conversations", "201") == 1);
  BOOST_TEST(counted("POST", "/v1/conversations/:id/messages", "201") == 1);
  BOOST_TEST(counted("GET", "unmatched", "404") == 1);
  BOOST_TEST(counted("DELETE", "/v1/models", "405") == 1);
  // Route labels are templates: no conversation id ever becomes a label.
  for (auto& route : after.label_values("parley_http_requests_total", "route"))
    BOOST_TEST(route.find(id) == std::string::npos, route);
  BOOST_TEST(after
                 .value("parley_http_request_duration_seconds_count",
                        {{"method", "POST"}, {"route", "/v1/conversations"}})
                 .value_or(0) >= 1);

  // The engine behind it: echo answered twice, each exchange's writes committed.
  auto echo_requests = [](const prometheus_scrape& s) {
    return s
        .value("parley_provider_requests_total",
               {{"provider", "builtin"}, {"model", "echo"}, {"outcome", "ok"}})
        .value_or(0);
  };
  BOOST_TEST(echo_requests(after) - echo_requests(before) == 2);
  BOOST_TEST(after.value("parley_provider_tokens_total", {{"kind", "completion"}}).value_or(0) >
             before.value("parley_provider_tokens_total", {{"kind", "completion"}}).value_or(0));
  BOOST_TEST(after.value("parley_persistence_batch_size_count").value_or(0) >
             before.value("parley_persistence_batch_size_count").value_or(0));
  BOOST_TEST(after.value("parley_persistence_flush_duration_seconds_count").value_or(0) >= 1);
  BOOST_TEST(after.types["parley_persistence_mailbox_backlog"] == "gauge");
  BOOST_TEST(*after.value("parley_conversation_actors") >= 1);
  BOOST_TEST(*after.value("parley_http_open_connections") >= 1);
  BOOST_TEST(*after.value("process_resident_memory_bytes") > 1024 * 1024);
  BOOST_TEST(*after.value("process_open_fds") >= 3);
}

BOOST_AUTO_TEST_CASE(a_stream_is_counted_with_its_route_and_status) {
  http_client c(open_server().base_url(), "metrics-streamer");
  auto id = create_conversation(c);
  auto before = scrape(c);
  auto streamed = sse_post(open_server().base_url(), "/v1/conversations/" + id + "/messages",
                           {{"content", "stream me"}, {"stream", true}}, "metrics-streamer");
  BOOST_REQUIRE_EQUAL(streamed.status, 200);
  BOOST_TEST(eventually([&] {
    return requests_of(scrape(c), "POST", "/v1/conversations/:id/messages", "200") -
               requests_of(before, "POST", "/v1/conversations/:id/messages", "200") ==
           1;
  }));
}

BOOST_AUTO_TEST_CASE(a_stream_whose_client_leaves_is_counted_once_with_its_status) {
  // Slow enough that the client is gone long before the reply is written.
  server_process s(server_options{
      .config_toml = "[[providers]]\nname = \"builtin\"\nkind = \"builtin\"\nitl_ms = 50\n"});
  http_client c(s.base_url(), "leaver");
  auto id = create_conversation(c);
  auto before = scrape(c);
  auto streamed = sse_post(s.base_url(), "/v1/conversations/" + id + "/messages",
                           {{"content", "a long question of many words to answer"},
                            {"stream", true},
                            {"on_disconnect", "cancel"}},
                           "leaver", [](const sse_result& r) {
                             for (auto& e : r.events)
                               if (e.name == "delta") return false;  // hang up at the first piece
                             return true;
                           });
  BOOST_REQUIRE(streamed.aborted);
  auto counted = [&](const prometheus_scrape& now) {
    return requests_of(now, "POST", "/v1/conversations/:id/messages", "200") -
           requests_of(before, "POST", "/v1/conversations/:id/messages", "200");
  };
  BOOST_TEST(eventually([&] { return counted(scrape(c)) == 1; }));
  // The cancelled generation ends its provider request too.
  BOOST_TEST(eventually([&] {
    return scrape(c)
               .value("parley_provider_requests_total",
                      {{"provider", "builtin"}, {"outcome", "cancelled"}})
               .value_or(0) == 1;
  }));
  BOOST_TEST(counted(scrape(c)) == 1);
}

BOOST_AUTO_TEST_CASE(every_metric_family_is_documented) {
  http_client c(open_server().base_url(), "docs-user");
  // An exchange and a WebSocket, so that the families made on first use
  // exist. (The refused connections' counter appears with the first refusal;
  // test_api_hostile_input scrapes it.)
  auto created = c.post("/v1/conversations", json{{"message", "hi"}});
  BOOST_REQUIRE_EQUAL(created.status, 201);
  ws_client ws(open_server().port(),
               "/v1/conversations/" + created.json()["id"].get<std::string>() + "/ws", "docs-user");
  const auto page = read_file(PARLEY_SOURCE_DIR "/docs/operations.md");
  BOOST_REQUIRE(!page.empty());
  auto families = scrape(c).types;
  BOOST_TEST(families.size() >= 15u);
  for (auto& [name, type] : families)
    BOOST_TEST(page.find("`" + name + "`") != std::string::npos,
               name << " (" << type << ") is not in docs/operations.md");
}

BOOST_AUTO_TEST_CASE(the_openapi_document_and_its_viewers_are_served_openly) {
  http_client c(open_server().base_url());
  auto doc = c.get("/openapi.json");
  BOOST_REQUIRE_EQUAL(doc.status, 200);
  BOOST_TEST(doc.header("content-type") == "application/json");
  auto j = doc.json();
  BOOST_TEST(j["openapi"].get<std::string>().rfind("3.1.", 0) == 0u);
  BOOST_TEST(j["paths"].contains("/v1/conversations/{id}/messages"));
  for (auto page : {"/docs", "/redoc"}) {
    auto r = c.get(page);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    BOOST_TEST(r.header("content-type") == "text/html; charset=utf-8");
    BOOST_TEST(r.body.find("<!DOCTYPE html>") == 0u);
    BOOST_TEST(r.body.find("/openapi.json") != std::string::npos);
  }
  BOOST_TEST(c.get("/docs").body.find("swagger-ui") != std::string::npos);
  BOOST_TEST(c.get("/redoc").body.find("redoc") != std::string::npos);
  expect_problem(c.post("/openapi.json", json::object()), 405);
}

namespace {

/// The src and href values of a page, in order.
std::vector<std::string> references_in(const std::string& html) {
  static const std::regex reference(R"re((?:src|href)="([^"]*)")re");
  std::vector<std::string> out;
  for (std::sregex_iterator it(html.begin(), html.end(), reference), end; it != end; ++it)
    out.push_back((*it)[1].str());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_viewers_load_every_file_from_this_server) {
  http_client c(open_server().base_url());
  for (auto page : {"/docs", "/redoc"}) {
    auto r = c.get(page);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    BOOST_TEST(
        r.header("content-security-policy").starts_with("default-src 'self'; script-src 'self';"));
    // Neither an absolute URL nor inline script: only paths on this server.
    BOOST_TEST(r.body.find("://") == std::string::npos);
    BOOST_TEST(r.body.find("<script>") == std::string::npos);
    int scripts = 0;
    for (auto& path : references_in(r.body)) {
      BOOST_TEST_CONTEXT(page << " references " << path) {
        BOOST_TEST((path.starts_with("/") && !path.starts_with("//")));
        auto file = c.get(path);
        BOOST_TEST(file.status == 200);
        BOOST_TEST(file.body.size() > 0u);
        if (path.ends_with(".js")) {
          ++scripts;
          BOOST_TEST(file.header("content-type") == "text/javascript; charset=utf-8");
          BOOST_TEST(file.header("cache-control") == "public, max-age=86400");
        }
      }
    }
    BOOST_TEST(scripts >= 1);
  }
  // The bundles' license notices are served where their comments point.
  for (auto notice : {"swagger-ui-bundle.js.LICENSE.txt", "redoc.standalone.js.LICENSE.txt"}) {
    auto r = c.get(std::string("/docs/assets/") + notice);
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.header("content-type") == "text/plain; charset=utf-8");
  }
  expect_problem(c.get("/docs/assets/nothing.js"), 404);
  expect_problem(c.get("/docs/assets/..%2Fopenapi.json"), 404);
  expect_problem(c.del("/docs/assets/swagger-ui.css"), 405);
}

BOOST_AUTO_TEST_CASE(the_playground_loads_every_file_from_this_server) {
  http_client c(open_server().base_url());
  for (auto page : {"/", "/playground"}) {
    auto r = c.get(page);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    BOOST_TEST(r.header("content-type") == "text/html; charset=utf-8");
    auto policy = r.header("content-security-policy");
    BOOST_TEST(policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"));
    BOOST_TEST(policy.find("unsafe") == std::string::npos);
    BOOST_TEST(policy.find("connect-src 'self'") != std::string::npos);
    BOOST_TEST(r.header("referrer-policy") == "no-referrer");
    BOOST_TEST(r.body.find("<meta name=\"parley-auth-mode\" content=\"none\">") !=
               std::string::npos);
    BOOST_TEST(r.body.find("://") == std::string::npos);
    // Every script is a file of this server's (none inline, whatever its type).
    for (auto at = r.body.find("<script"); at != std::string::npos;
         at = r.body.find("<script", at + 1)) {
      auto tag = r.body.substr(at, r.body.find('>', at) - at);
      BOOST_TEST(tag.find(" src=\"/playground/assets/") != std::string::npos, tag);
    }
    BOOST_TEST(r.body.find(" style=") == std::string::npos);
    int files = 0;
    for (auto& path : references_in(r.body)) {
      if (path == "/docs") continue;  // the <noscript> pointer to the API's page
      BOOST_TEST_CONTEXT(page << " references " << path) {
        BOOST_TEST(path.starts_with("/playground/assets/"));
        auto file = c.get(path);
        BOOST_TEST(file.status == 200);
        BOOST_TEST(file.body.size() > 1000u);
        BOOST_TEST(file.header("x-content-type-options") == "nosniff");
        ++files;
      }
    }
    BOOST_TEST(files == 2);
  }
  auto script = c.get("/playground/assets/playground.js");
  BOOST_TEST(script.header("content-type") == "text/javascript; charset=utf-8");
  // Bundled, not fetched: DOMPurify and marked are in the one script.
  BOOST_TEST(script.body.find("DOMPurify") != std::string::npos);
  for (auto notice : {"marked.LICENSE.txt", "dompurify.LICENSE.txt"}) {
    auto r = c.get(std::string("/playground/assets/") + notice);
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.header("content-type") == "text/plain; charset=utf-8");
    BOOST_TEST(r.body.find("Copyright") != std::string::npos);
  }
  expect_problem(c.get("/playground/assets/nothing.js"), 404);
  expect_problem(c.get("/playground/assets/..%2F..%2Fopenapi.json"), 404);
  expect_problem(c.post("/", json::object()), 405);
}

BOOST_AUTO_TEST_CASE(the_playground_can_be_turned_off_and_follows_the_auth_mode) {
  server_process off(server_options{.config_toml = "[server]\nplayground = false\n"});
  http_client c(off.base_url());
  for (auto path : {"/", "/playground", "/playground/assets/playground.js"}) {
    auto r = c.get(path);
    BOOST_TEST_CONTEXT(path) { expect_problem(r, 404); }
  }
  BOOST_TEST(c.get("/docs").status == 200);
  BOOST_TEST(c.get("/health").status == 200);

  server_process jwt(server_options{.config_toml = "[auth]\nmode = \"jwt\"\njwt_secret = \"" +
                                                   jwt_secret + "\"\n"});
  http_client anonymous(jwt.base_url());
  // The page itself needs no token: it asks for one.
  auto page = anonymous.get("/");
  BOOST_REQUIRE_EQUAL(page.status, 200);
  BOOST_TEST(page.body.find("<meta name=\"parley-auth-mode\" content=\"jwt\">") !=
             std::string::npos);
  BOOST_TEST(anonymous.get("/playground/assets/playground.css").status == 200);
  BOOST_TEST(anonymous.get("/v1/conversations").status == 401);
}

BOOST_AUTO_TEST_CASE(request_logs_are_json_lines_without_secrets_or_content) {
  // A provider with a key that is configured but never called.
  server_process s(server_options{
      .config_toml = "[auth]\nmode = \"jwt\"\n"
                     "[[providers]]\nname = \"upstream\"\nkind = \"openai\"\n"
                     "base_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"OPS_TEST_KEY\"\n"
                     "[[models]]\nid = \"remote-model\"\nprovider = \"upstream\"\n"
                     "upstream = \"gpt-x\"\n",
      .env = {{"PARLEY_JWT_SECRET", jwt_secret}, {"OPS_TEST_KEY", provider_key}}});
  http_client c(s.base_url());
  auto token = token_for("log-user");
  auto auth = "Authorization: Bearer " + token;
  auto created = c.post("/v1/conversations", {{"message", private_words}},
                        {auth, "X-Request-Id: log-check-1"});
  BOOST_REQUIRE_EQUAL(created.status, 201);
  auto id = created.json()["id"].get<std::string>();
  BOOST_REQUIRE_EQUAL(c.get("/v1/conversations/" + id + "/messages", {auth}).status, 200);
  BOOST_REQUIRE_EQUAL(c.get("/v1/usage", {"Authorization: Bearer not-a-token"}).status, 401);

  std::vector<json> requests;
  BOOST_TEST(eventually([&] {
    requests = request_lines(s.log());
    return requests.size() >= 3;
  }));
  auto log = s.log();
  BOOST_TEST(log.find(jwt_secret) == std::string::npos);
  BOOST_TEST(log.find(provider_key) == std::string::npos);
  BOOST_TEST(log.find(token) == std::string::npos);
  BOOST_TEST(log.find(private_words) == std::string::npos);
  BOOST_TEST(log.find("Echo: ") == std::string::npos);

  auto create = std::find_if(requests.begin(), requests.end(),
                             [](const json& j) { return j["request_id"] == "log-check-1"; });
  BOOST_REQUIRE(create != requests.end());
  BOOST_TEST((*create)["method"] == "POST");
  BOOST_TEST((*create)["route"] == "/v1/conversations");
  BOOST_TEST((*create)["status"] == 201);
  BOOST_TEST((*create)["user"] == "log-user");
  BOOST_TEST((*create)["latency_ms"].is_number());
  BOOST_TEST((*create)["level"] == "info");
  BOOST_TEST((*create)["time"].get<std::string>().size() == 24u);
  BOOST_TEST(!create->contains("body"));
  auto refused = std::find_if(requests.begin(), requests.end(),
                              [](const json& j) { return j["status"] == 401; });
  BOOST_REQUIRE(refused != requests.end());
  BOOST_TEST((*refused)["route"] == "/v1/usage");
  BOOST_TEST((*refused)["user"] == "");
  auto history = std::find_if(requests.begin(), requests.end(), [](const json& j) {
    return j["route"] == "/v1/conversations/:id/messages";
  });
  BOOST_REQUIRE(history != requests.end());
  BOOST_TEST((*history)["path"] == "/v1/conversations/" + id + "/messages");

  // The startup line names what was found, keys aside.
  auto lines = log_lines(log);
  BOOST_REQUIRE(!lines.empty());
  auto start = lines.front()["msg"].get<std::string>();
  BOOST_TEST(start.find("starting") != std::string::npos, start);
  bool names_database = start.find("database sqlite") != std::string::npos ||
                        start.find("database postgresql") != std::string::npos;
  BOOST_TEST(names_database, start);
  BOOST_TEST(start.find("upstream (openai)") != std::string::npos, start);
  BOOST_TEST(start.find("remote-model (upstream)") != std::string::npos, start);
  BOOST_TEST(start.find("echo (builtin)") != std::string::npos, start);
}

BOOST_AUTO_TEST_CASE(log_content_puts_request_bodies_into_the_log) {
  server_process s(server_options{.config_toml = "[log]\ncontent = true\n"});
  http_client c(s.base_url(), "content-user");
  BOOST_REQUIRE_EQUAL(c.post("/v1/conversations", {{"message", private_words}}).status, 201);
  BOOST_TEST(eventually([&] {
    for (auto& j : request_lines(s.log()))
      if (j.value("body", "").find(private_words) != std::string::npos) return true;
    return false;
  }));
}

BOOST_AUTO_TEST_CASE(every_request_of_a_burst_gets_its_line_and_stopping_loses_none) {
  server_process s;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      http_client c(s.base_url());
      for (int i = 0; i < 100; ++i)
        c.get("/health", {"X-Request-Id: burst-" + std::to_string(t) + "-" + std::to_string(i)});
    });
  for (auto& t : clients) t.join();
  BOOST_TEST(s.stop() == 0);
  std::set<std::string> ids;
  for (auto& j : request_lines(s.log()))
    if (j["request_id"].get<std::string>().rfind("burst-", 0) == 0) ids.insert(j["request_id"]);
  BOOST_TEST(ids.size() == 400u);
}

BOOST_AUTO_TEST_CASE(the_log_level_filters_request_lines) {
  server_process s(server_options{.env = {{"PARLEY_LOG_LEVEL", "warn"}}});
  http_client c(s.base_url());
  BOOST_REQUIRE_EQUAL(c.get("/health").status, 200);
  BOOST_REQUIRE_EQUAL(c.get("/metrics").status, 200);
  BOOST_TEST(request_lines(s.log()).empty());
  for (auto& j : log_lines(s.log())) BOOST_TEST(j["level"] != "info");
}

BOOST_AUTO_TEST_CASE(a_bad_log_setting_is_a_configuration_error) {
  std::string out;
  BOOST_TEST(run_parley({"serve", "--port", "0", "--database-url", "sqlite::memory:"}, out,
                        {{"PARLEY_LOG_LEVEL", "chatty"}}) == 2);
  BOOST_TEST(out.find("log.level") != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(an_unreachable_database_is_reported_without_its_password) {
  std::string out;
  BOOST_TEST(run_parley({"serve", "--port", "0", "--database-url",
                         "postgresql://parley:hunter2-in-url@127.0.0.1:1/parley"},
                        out) == 1);
  BOOST_TEST(out.find("hunter2-in-url") == std::string::npos, out);
  BOOST_TEST(out.find("postgresql://parley:***@127.0.0.1:1/parley") != std::string::npos, out);
}
