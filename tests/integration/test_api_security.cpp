#define BOOST_TEST_MODULE api_security
#include <boost/test/unit_test.hpp>

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/jwt_signer.hpp"
#include "support/server_process.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace parley::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string secret = "integration-secret-7f3a9c0e5b2d4e6f8a1c3e5d7b9f0a2c";
const std::string issuer = "https://id.example.com/";
const std::string audience = "parley-api";

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

/// A token for `user` that the JWT server accepts, with `changes` merged in.
std::string token_for(const std::string& user, const json& changes = json::object()) {
  json claims{{"sub", user}, {"iss", issuer}, {"aud", audience}, {"exp", unix_now() + 600}};
  claims.merge_patch(changes);
  return jwt_hs256(claims, secret);
}

std::string bearer(const std::string& token) { return "Authorization: Bearer " + token; }

/// HS256 with issuer and audience; the secret comes from the environment.
server_process& jwt_server() {
  static auto s = std::make_unique<server_process>(server_options{
      .config_toml =
          "[auth]\nmode = \"jwt\"\nissuer = \"" + issuer + "\"\naudience = \"" + audience + "\"\n",
      .env = {{"PARLEY_JWT_SECRET", secret}}});
  return *s;
}

/// A client that sends one user's bearer token with every request.
struct bearer_client {
  http_client http;
  std::string auth;
  explicit bearer_client(const std::string& user)
      : http(jwt_server().base_url()), auth(bearer(token_for(user))) {}
  http_response get(const std::string& path) { return http.get(path, {auth}); }
  http_response del(const std::string& path) { return http.del(path, {auth}); }
  http_response post(const std::string& path, const json& body) {
    return http.post(path, body, {auth});
  }
  http_response patch(const std::string& path, const json& body) {
    return http.patch(path, body, {auth});
  }
};

void expect_unauthorized(const http_response& r) {
  expect_problem(r, 401);
  BOOST_TEST(r.header("www-authenticate") == "Bearer");
}

}  // namespace

BOOST_AUTO_TEST_CASE(jwt_mode_requires_a_bearer_token_on_v1_routes_only) {
  http_client anonymous(jwt_server().base_url());
  BOOST_TEST(anonymous.get("/health").status == 200);
  BOOST_TEST(anonymous.get("/ready").status == 200);
  expect_unauthorized(anonymous.get("/v1/models"));
  expect_unauthorized(anonymous.get("/v1/conversations"));
  expect_unauthorized(anonymous.post("/v1/conversations", json::object()));
  expect_unauthorized(anonymous.get("/v1/usage"));
  // X-User-Id means nothing in jwt mode.
  expect_unauthorized(anonymous.get("/v1/conversations", {"X-User-Id: alice"}));
  expect_unauthorized(anonymous.get("/v1/conversations", {"Authorization: Basic YWxpY2U6cHc="}));
  expect_unauthorized(anonymous.get("/v1/conversations", {"Authorization: Bearer"}));
  expect_unauthorized(anonymous.get("/v1/conversations", {"Authorization: Bearer    "}));
  expect_unauthorized(anonymous.get("/v1/conversations", {"Authorization: Bearer \t"}));

  bearer_client alice("alice@example.com");
  auto created = alice.post("/v1/conversations", {{"title", "mine"}});
  BOOST_REQUIRE_EQUAL(created.status, 201);
  BOOST_TEST(created.json()["user_id"] == "alice@example.com");
  // The scheme is case-insensitive.
  auto lower = anonymous.get("/v1/conversations",
                             {"authorization: bearer " + token_for("alice@example.com")});
  BOOST_TEST(lower.status == 200);
  BOOST_TEST(lower.json()["data"].size() == 1u);
}

BOOST_AUTO_TEST_CASE(forged_and_stale_tokens_are_refused) {
  http_client c(jwt_server().base_url());
  json claims{{"sub", "mallory"}, {"iss", issuer}, {"aud", audience}, {"exp", unix_now() + 600}};
  auto none = base64url(json{{"alg", "none"}, {"typ", "JWT"}}.dump()) + "." +
              base64url(claims.dump()) + ".";
  rsa_signer rsa;
  std::vector<std::pair<std::string, std::string>> forgeries{
      {"alg none", none},
      {"alg none, signed anyway", jwt_hs256(claims, secret, {{"alg", "none"}})},
      {"HS512", jwt_hs256(claims, secret, {{"alg", "HS512"}})},
      {"RS256 by another key", rsa.sign(claims)},
      {"wrong secret", jwt_hs256(claims, secret + "!")},
      {"expired", token_for("mallory", {{"exp", unix_now() - 120}})},
      {"not yet valid", token_for("mallory", {{"nbf", unix_now() + 120}})},
      {"wrong audience", token_for("mallory", {{"aud", "someone-else"}})},
      {"wrong issuer", token_for("mallory", {{"iss", "https://evil.example.com/"}})},
      {"no subject", token_for("mallory", {{"sub", nullptr}})},
      {"two segments", "abc.def"},
      {"garbage", "not-a-token-at-all"},
      {"bad base64", "###.$$$.%%%"},
      {"huge", token_for("mallory", {{"pad", std::string(12000, 'x')}})},
      {"huger than a header may be", token_for("mallory", {{"pad", std::string(60000, 'x')}})},
  };
  for (auto& [what, token] : forgeries) {
    BOOST_TEST_CONTEXT(what) {
      auto r = c.get("/v1/conversations", {bearer(token)});
      expect_unauthorized(r);
      // The answer never repeats the token or the secret.
      BOOST_TEST(r.body.find(secret) == std::string::npos);
      if (token.size() > 16) BOOST_TEST(r.body.find(token) == std::string::npos);
    }
  }
  // Within the 30 s leeway a just-expired token still works.
  BOOST_TEST(c.get("/v1/conversations", {bearer(token_for("mallory", {{"exp", unix_now() - 5}}))})
                 .status == 200);
  BOOST_TEST(jwt_server().log().find(secret) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(another_users_conversation_is_missing_for_every_route_with_jwt) {
  bearer_client alice("matrix-alice"), bob("matrix-bob");
  auto created = alice.post("/v1/conversations",
                            {{"title", "mine"}, {"metadata", {{"k", "v"}}}, {"message", "secret"}});
  BOOST_REQUIRE_EQUAL(created.status, 201);
  auto id = created.json()["id"].get<std::string>();
  auto mid = created.json()["message"]["id"].get<std::string>();
  auto base = "/v1/conversations/" + id;
  expect_problem(bob.get(base), 404);
  expect_problem(bob.patch(base, {{"title", "stolen"}}), 404);
  expect_problem(bob.del(base), 404);
  expect_problem(bob.get(base + "/messages"), 404);
  expect_problem(bob.post(base + "/messages", {{"content", "hi"}}), 404);
  expect_problem(bob.post(base + "/messages", {{"content", "hi"}, {"stream", true}}), 404);
  expect_problem(bob.patch(base + "/messages/" + mid, {{"content", "changed"}}), 404);
  expect_problem(bob.del(base + "/messages/" + mid), 404);
  expect_problem(bob.post(base + "/regenerate", json::object()), 404);
  BOOST_TEST(upgrade_status(jwt_server().port(),
                            base + "/ws?access_token=" + token_for("matrix-bob"), "") == 404);
  // Claiming alice's name in a header does nothing for bob.
  BOOST_TEST(bob.http.get(base, {bob.auth, "X-User-Id: matrix-alice"}).status == 404);
  BOOST_TEST(bob.get("/v1/conversations").json()["data"].empty());
  BOOST_TEST(bob.get("/v1/usage").json()["total"]["requests"] == 0);

  auto after = alice.get(base).json();
  BOOST_TEST(after["title"] == "mine");
  BOOST_TEST(after["message_count"] == 2);
  auto messages = alice.get(base + "/messages").json()["data"];
  BOOST_REQUIRE_EQUAL(messages.size(), 2u);
  BOOST_TEST(messages[0]["content"] == "secret");
  BOOST_TEST(messages[0]["edited_at"].is_null());
}

BOOST_AUTO_TEST_CASE(websockets_take_the_token_from_the_query) {
  bearer_client alice("ws-alice");
  auto id = alice.post("/v1/conversations", json::object()).json()["id"].get<std::string>();
  auto path = "/v1/conversations/" + id + "/ws";
  auto port = jwt_server().port();
  BOOST_TEST(upgrade_status(port, path, "") == 401);
  BOOST_TEST(upgrade_status(port, path + "?access_token=nonsense", "") == 401);
  BOOST_TEST(upgrade_status(
                 port, path + "?access_token=" + token_for("ws-alice", {{"exp", unix_now() - 120}}),
                 "") == 401);
  ws_client ws(port, path + "?access_token=" + token_for("ws-alice"));
  ws.send_json({{"type", "message"}, {"content", "over the socket"}});
  BOOST_TEST(ws.read_json()["type"] == "message");
  json event;
  do event = ws.read_json();
  while (event["type"] == "delta");
  BOOST_TEST(event["type"] == "done");
  BOOST_TEST(event["reply"]["content"] == "Echo: over the socket");
  // Only WebSockets may carry the token in the query.
  expect_unauthorized(alice.http.get("/v1/conversations?access_token=" + token_for("ws-alice")));
}

BOOST_AUTO_TEST_CASE(websockets_take_the_token_from_a_subprotocol) {
  // What a browser can do without putting the token in a URL: offer it as a
  // subprotocol beside "parley", which the server accepts.
  bearer_client alice("proto-alice");
  auto id = alice.post("/v1/conversations", json::object()).json()["id"].get<std::string>();
  auto path = "/v1/conversations/" + id + "/ws";
  auto port = jwt_server().port();
  auto offer = [](const std::string& token) { return "parley, parley.bearer." + token; };
  ws_client ws(port, path, "", offer(token_for("proto-alice")));
  BOOST_TEST(ws.accepted_protocol() == "parley");
  ws.send_json({{"type", "message"}, {"content", "token in a subprotocol"}});
  BOOST_TEST(ws.read_json()["type"] == "message");
  json event;
  do event = ws.read_json();
  while (event["type"] == "delta");
  BOOST_TEST(event["reply"]["content"] == "Echo: token in a subprotocol");

  std::string body;
  BOOST_TEST(upgrade_status(port, path, "", &body, offer("nonsense")) == 401);
  BOOST_TEST(body.find("nonsense") == std::string::npos);
  BOOST_TEST(upgrade_status(port, path, "", nullptr,
                            offer(token_for("proto-alice", {{"exp", unix_now() - 120}}))) == 401);
  BOOST_TEST(upgrade_status(port, path, "", nullptr, offer(token_for("proto-bob"))) == 404);
  BOOST_TEST(upgrade_status(port, path, "", nullptr, "parley") == 401);
  // A user named without a token counts for nothing in this mode.
  BOOST_TEST(upgrade_status(port, path, "", nullptr, "parley, parley.user.cHJvdG8tYWxpY2U") == 401);
  // Another site's page cannot use a token it holds this way either.
  BOOST_TEST(upgrade_status(port, path, "", nullptr, offer(token_for("proto-alice")),
                            "https://evil.example") == 401);
  // A client that offers other subprotocols only gets none accepted (the
  // token still counts).
  ws_client other(port, path, "", "chat, parley.bearer." + token_for("proto-alice"));
  BOOST_TEST(other.accepted_protocol() == "");
}

BOOST_AUTO_TEST_CASE(without_tokens_a_websocket_names_its_user_in_a_subprotocol) {
  // A browser's WebSocket cannot send X-User-Id: the playground offers the id
  // base64url-encoded ('@' and ':' are not allowed in a subprotocol).
  server_process open;
  http_client alice(open.base_url(), "ws.alice@example.com");
  auto id = alice.post("/v1/conversations", json::object()).json()["id"].get<std::string>();
  auto path = "/v1/conversations/" + id + "/ws";
  ws_client ws(open.port(), path, "", "parley, parley.user.d3MuYWxpY2VAZXhhbXBsZS5jb20");
  BOOST_TEST(ws.accepted_protocol() == "parley");
  // Someone else's id (or none: "default") finds no such conversation.
  BOOST_TEST(upgrade_status(open.port(), path, "", nullptr, "parley, parley.user.Ym9i") == 404);
  BOOST_TEST(upgrade_status(open.port(), path, "", nullptr, "parley") == 404);
  std::string body;
  BOOST_TEST(upgrade_status(open.port(), path, "", &body, "parley, parley.user.!!") == 401);
  BOOST_TEST(body.find("base64url") != std::string::npos);
  // From this server's own page, yes; from another site's page, the
  // subprotocol names nobody (a WebSocket is not subject to CORS).
  auto alice_protocols = "parley, parley.user.d3MuYWxpY2VAZXhhbXBsZS5jb20";
  auto own_origin = "http://127.0.0.1:" + std::to_string(open.port());
  BOOST_TEST(upgrade_status(open.port(), path, "", nullptr, alice_protocols, own_origin) == 101);
  BOOST_TEST(upgrade_status(open.port(), path, "", nullptr, alice_protocols,
                            "https://evil.example") == 404);
}

BOOST_AUTO_TEST_CASE(hostile_bodies_are_clear_problems) {
  bearer_client c("hostile-bodies");
  auto id = c.post("/v1/conversations", json::object()).json()["id"].get<std::string>();
  auto send_raw = [&](const std::string& body) {
    return c.http.request("POST", "/v1/conversations/" + id + "/messages", body, {c.auth});
  };
  expect_problem(send_raw(R"({"content": "trunc)"), 400);
  expect_problem(send_raw(R"({"content": "bad \xff\xfe bytes"})"), 400);
  expect_problem(send_raw(R"({"content": "overlong \xc0\xaf slash"})"), 400);
  expect_problem(send_raw(R"({"content": "lone surrogate \ud800"})"), 400);
  expect_problem(send_raw(std::string("{\"content\": \"nul\0byte\"}", 24)), 400);
  // Half a megabyte of nesting: neither the parser nor the clean-up recurses.
  std::string deep = "{\"content\": \"x\", \"extra\": " + std::string(250000, '[') +
                     std::string(250000, ']') + "}";
  auto r = send_raw(deep);
  BOOST_TEST((r.status == 201 || r.status == 400 || r.status == 422));
  std::string deep_objects = std::string(100000, '[') + std::string(100000, ']');
  expect_problem(c.http.request("POST", "/v1/conversations", deep_objects, {c.auth}), 400);
  auto meta = c.http.request("POST", "/v1/conversations",
                             R"({"metadata": {"k": {"nested": {"deeper": [1]}}}})", {c.auth});
  expect_problem(meta, 422);
  BOOST_TEST(c.get("/v1/conversations/" + id).json()["message_count"] <= 2);
  BOOST_TEST(jwt_server().log().find("terminate") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_rs256_server_accepts_its_key_and_refuses_key_confusion) {
  rsa_signer rsa;
  temp_dir dir;
  auto pem = dir.path() + "/public.pem";
  std::ofstream(pem) << rsa.public_pem();
  server_process s(server_options{
      .config_toml = "[auth]\nmode = \"jwt\"\njwt_public_key_file = \"" + pem + "\"\n"});
  http_client c(s.base_url());
  json claims{{"sub", "rsa-user"}, {"exp", unix_now() + 600}};
  auto ok = c.post("/v1/conversations", json::object(), {bearer(rsa.sign(claims))});
  BOOST_TEST(ok.status == 201);
  BOOST_TEST(ok.json()["user_id"] == "rsa-user");
  expect_unauthorized(c.get("/v1/conversations", {bearer(jwt_hs256(claims, rsa.public_pem()))}));
  expect_unauthorized(c.get("/v1/conversations", {bearer(jwt_hs256(claims, secret))}));
}

BOOST_AUTO_TEST_CASE(a_bad_jwt_configuration_stops_the_start) {
  std::string out;
  temp_dir dir;
  auto config = dir.path() + "/parley.toml";
  std::ofstream(config) << "[auth]\nmode = \"jwt\"\n";
  BOOST_TEST(run_parley({"serve", "--config", config, "--port", "0"}, out) == 2);
  BOOST_TEST(out.find("exactly one of auth.jwt_secret") != std::string::npos, out);
  std::ofstream(config) << "[auth]\nmode = \"jwt\"\njwt_public_key_file = \"" << dir.path()
                        << "/none.pem\"\n";
  BOOST_TEST(run_parley({"serve", "--config", config, "--port", "0"}, out) == 2);
  BOOST_TEST(out.find("cannot read") != std::string::npos, out);
}

// --- per-user limits ------------------------------------------------------------------

namespace {

/// 30 requests per minute, one reply in progress per user, and a model slow
/// enough to hold one open.
server_process& limits_server() {
  static auto s = std::make_unique<server_process>(server_options{
      .config_toml = "[limits]\nrequests_per_minute = 30\nconcurrent_generations = 1\n"
                     "[[providers]]\nname = \"slowpoke\"\nkind = \"builtin\"\nttft_ms = 1500\n"
                     "[[models]]\nid = \"slow\"\nprovider = \"slowpoke\"\n"});
  return *s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_flood_from_one_user_leaves_the_others_alone) {
  http_client flooder(limits_server().base_url(), "flooder"),
      calm(limits_server().base_url(), "calm");
  int accepted = 0, limited = 0;
  http_response refusal;
  for (int i = 0; i < 45; ++i) {
    auto r = flooder.get("/v1/conversations");
    if (r.status == 200) ++accepted;
    if (r.status == 429) {
      ++limited;
      refusal = r;
    }
    if (i % 5 == 0) BOOST_TEST(calm.get("/v1/conversations").status == 200);
  }
  // The bucket holds 30, and refills at one every two seconds.
  BOOST_TEST(accepted >= 30);
  BOOST_TEST(accepted <= 32);
  BOOST_TEST(limited == 45 - accepted);
  expect_problem(refusal, 429);
  auto retry = std::stoi(refusal.header("retry-after"));
  BOOST_TEST(retry >= 1);
  BOOST_TEST(retry <= 2);
  // Service routes are not counted.
  BOOST_TEST(flooder.get("/health").status == 200);
  BOOST_TEST(calm.get("/v1/models").status == 200);
}

BOOST_AUTO_TEST_CASE(one_user_gets_one_reply_at_a_time) {
  auto base = limits_server().base_url();
  http_client busy(base, "busy"), other(base, "other-user");
  auto first = create_conversation(busy, {{"model", "slow"}});
  auto second = create_conversation(busy, {{"model", "slow"}});
  // Streamed, so that its user message is stored before the reply begins.
  auto pending = std::async(std::launch::async, [&] {
    return sse_post(base, "/v1/conversations/" + first + "/messages",
                    {{"content", "slowly"}, {"stream", true}}, "busy");
  });
  // Wait until the first reply is under way.
  BOOST_REQUIRE(eventually(
      [&] { return busy.get("/v1/conversations/" + first).json()["message_count"] == 1; }));
  auto refused = busy.post("/v1/conversations/" + second + "/messages", {{"content", "too"}});
  expect_problem(refused, 429);
  BOOST_TEST(refused.header("retry-after") == "1");
  // Storing a message without a reply needs no slot, and others have their own.
  BOOST_TEST(busy.post("/v1/conversations/" + second + "/messages",
                       {{"content", "note"}, {"role", "system"}})
                 .status == 201);
  auto mine = create_conversation(other);
  BOOST_TEST(other.post("/v1/conversations/" + mine + "/messages", {{"content", "hi"}}).status ==
             201);
  auto streamed = pending.get();
  BOOST_TEST(streamed.status == 200);
  BOOST_TEST(streamed.events.back().name == "done");
  BOOST_TEST(busy.post("/v1/conversations/" + second + "/messages", {{"content", "now"}}).status ==
             201);
}

BOOST_AUTO_TEST_CASE(websocket_messages_count_against_the_same_limits) {
  http_client c(limits_server().base_url(), "ws-busy");
  auto id = create_conversation(c, {{"model", "slow"}});
  ws_client ws(limits_server().port(), "/v1/conversations/" + id + "/ws", "ws-busy");
  ws.send_json({{"type", "message"}, {"content", "first"}});
  ws.send_json({{"type", "message"}, {"content", "second"}});
  json refusal, done;
  while (refusal.is_null() || done.is_null()) {
    auto event = ws.read_json();
    if (event["type"] == "error") refusal = event["error"];
    if (event["type"] == "done") done = event["reply"];
  }
  BOOST_TEST(refusal["status"] == 429);
  BOOST_TEST(done["content"] == "Echo: first");
  BOOST_TEST(c.get("/v1/conversations/" + id).json()["message_count"] == 2);
}

// --- transport limits and CORS -------------------------------------------------------

namespace {

server_process& edge_server() {
  static auto s = std::make_unique<server_process>(
      server_options{.config_toml = "[server]\nmax_body_bytes = 4096\nread_timeout_ms = 1000\n"
                                    "max_header_count = 20\nmax_header_bytes = 2048\n"
                                    "cors_origins = [\"https://app.example.com\"]\n"});
  return *s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_slow_loris_client_is_cut_off_without_holding_up_others) {
  auto port = edge_server().port();
  std::vector<int> slow;
  for (int i = 0; i < 20; ++i) {
    int fd = raw_connect(port);
    std::string start = "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nX-Pad";
    BOOST_REQUIRE(write(fd, start.data(), start.size()) == static_cast<ssize_t>(start.size()));
    slow.push_back(fd);
  }
  http_client c(edge_server().base_url(), "patient");
  auto began = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    for (int fd : slow) (void)!write(fd, "a", 1);  // a byte at a time keeps nothing alive
    BOOST_TEST(c.get("/v1/conversations").status == 200);
    std::this_thread::sleep_for(50ms);
  }
  BOOST_TEST((std::chrono::steady_clock::now() - began < 3s));
  for (int fd : slow) {
    BOOST_TEST(closed_within(fd, 3s));
    close(fd);
  }
  // An idle keep-alive connection goes the same way.
  int idle = raw_connect(port);
  std::string get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  BOOST_REQUIRE(write(idle, get.data(), get.size()) == static_cast<ssize_t>(get.size()));
  std::string answer;
  BOOST_TEST(closed_within(idle, 3s, &answer));
  BOOST_TEST(answer.find("200 OK") != std::string::npos);
  close(idle);
}

BOOST_AUTO_TEST_CASE(oversized_requests_are_refused) {
  http_client c(edge_server().base_url(), "big-sender");
  auto big = json{{"title", std::string(5000, 'x')}}.dump();
  auto r = c.request("POST", "/v1/conversations", big);
  expect_problem(r, 413);
  BOOST_TEST(c.get("/v1/conversations").json()["data"].empty());
  // A body that stops short of its Content-Length is never handled.
  int fd = raw_connect(edge_server().port());
  std::string partial =
      "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 100\r\n\r\n{\"title\": ";
  BOOST_REQUIRE(write(fd, partial.data(), partial.size()) == static_cast<ssize_t>(partial.size()));
  BOOST_TEST(closed_within(fd, 3s));
  close(fd);
  // Too many headers, or one too long, get 431; a long target 414.
  std::vector<std::string> many;
  for (int i = 0; i < 30; ++i) many.push_back("X-Filler-" + std::to_string(i) + ": y");
  expect_problem(c.get("/v1/conversations", many), 431);
  expect_problem(c.get("/v1/conversations", {"X-Long: " + std::string(4000, 'y')}), 431);
  expect_problem(c.get("/v1/conversations?pad=" + std::string(4000, 'q')), 414);
  // Eight times past the limit the screened socket answers 431 before
  // RESTinio's parser would give the connection up unanswered.
  expect_problem(c.get("/v1/conversations", {"X-Huge: " + std::string(20000, 'z')}), 431);
  BOOST_TEST(c.get("/v1/conversations").status == 200);
  BOOST_TEST(c.get("/v1/conversations").json()["data"].empty());
}

BOOST_AUTO_TEST_CASE(cors_answers_listed_origins_only) {
  http_client c(edge_server().base_url(), "browser");
  auto preflight =
      c.request("OPTIONS", "/v1/conversations", "",
                {"Origin: https://app.example.com", "Access-Control-Request-Method: POST",
                 "Access-Control-Request-Headers: authorization, content-type"});
  BOOST_TEST(preflight.status == 204);
  BOOST_TEST(preflight.header("access-control-allow-origin") == "https://app.example.com");
  BOOST_TEST(preflight.header("access-control-allow-methods").find("POST") != std::string::npos);
  BOOST_TEST(preflight.header("access-control-allow-headers") == "authorization, content-type");
  BOOST_TEST(!preflight.header("access-control-max-age").empty());

  auto foreign =
      c.request("OPTIONS", "/v1/conversations", "",
                {"Origin: https://evil.example.com", "Access-Control-Request-Method: POST"});
  BOOST_TEST(foreign.status == 204);
  BOOST_TEST(foreign.header("access-control-allow-origin").empty());
  BOOST_TEST(foreign.header("access-control-allow-methods").empty());

  auto plain_options = c.request("OPTIONS", "/v1/conversations/x/messages");
  BOOST_TEST(plain_options.status == 204);
  BOOST_TEST(plain_options.header("allow") == "GET, POST, OPTIONS");

  auto listed = c.get("/v1/conversations", {"Origin: https://app.example.com"});
  BOOST_TEST(listed.header("access-control-allow-origin") == "https://app.example.com");
  BOOST_TEST(listed.header("vary") == "Origin");
  BOOST_TEST(listed.header("access-control-expose-headers").find("X-Request-Id") !=
             std::string::npos);
  auto unlisted = c.get("/v1/conversations", {"Origin: https://evil.example.com"});
  BOOST_TEST(unlisted.status == 200);  // the browser, not the server, withholds it
  BOOST_TEST(unlisted.header("access-control-allow-origin").empty());
  auto missing = c.get("/v1/conversations/not-an-id", {"Origin: https://app.example.com"});
  expect_problem(missing, 404);
  BOOST_TEST(missing.header("access-control-allow-origin") == "https://app.example.com");

  auto id = create_conversation(c);
  auto stream = sse_post(edge_server().base_url(), "/v1/conversations/" + id + "/messages",
                         {{"content", "cross-origin"}, {"stream", true}}, "browser", {},
                         {"Origin: https://app.example.com"});
  BOOST_TEST(stream.status == 200);
  BOOST_TEST(stream.headers["access-control-allow-origin"] == "https://app.example.com");
  BOOST_TEST(stream.events.back().name == "done");
}
