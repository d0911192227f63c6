#pragma once

// Steps that many integration tests take through the API. Header-only: it
// needs Boost.Test's assertions of the test that includes it.

#include "support/http_client.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace parley::testing {

/// Asserts an RFC 9457 problem with `status` and returns it.
inline nlohmann::json expect_problem(const http_response& r, long status) {
  BOOST_TEST(r.status == status);
  BOOST_TEST(r.header("content-type") == "application/problem+json");
  auto j = r.json();
  BOOST_REQUIRE(j.is_object());
  BOOST_TEST(j["status"] == status);
  BOOST_TEST(j["title"].is_string());
  BOOST_TEST(j["detail"].is_string());
  BOOST_TEST(j["type"].is_string());
  BOOST_TEST(j["request_id"] == r.header("x-request-id"));
  return j;
}

/// Creates a conversation and returns its id.
inline std::string create_conversation(http_client& c,
                                       const nlohmann::json& body = nlohmann::json::object()) {
  auto r = c.post("/v1/conversations", body);
  BOOST_REQUIRE_EQUAL(r.status, 201);
  return r.json()["id"].get<std::string>();
}

/// `/v1/conversations/{id}` and what follows it.
inline std::string conversation_path(const std::string& id, const std::string& rest = "") {
  return "/v1/conversations/" + id + rest;
}

/// POSTs `body` to the conversation's messages; asserts 201 and returns the answer.
inline nlohmann::json send_message(http_client& c, const std::string& id,
                                   const nlohmann::json& body) {
  auto r = c.post(conversation_path(id, "/messages"), body);
  BOOST_REQUIRE_EQUAL(r.status, 201);
  return r.json();
}

/// Every stored message of a conversation, oldest first, page by page.
inline std::vector<nlohmann::json> all_messages(http_client& c, const std::string& id) {
  std::vector<nlohmann::json> out;
  std::int64_t after = 0;
  for (;;) {
    auto r =
        c.get("/v1/conversations/" + id + "/messages?limit=200&after=" + std::to_string(after));
    BOOST_REQUIRE_EQUAL(r.status, 200);
    auto page = r.json();
    for (auto& m : page["data"]) out.push_back(m);
    if (!page["has_more"].get<bool>()) return out;
    after = out.back()["seq"];
  }
}

/// Polls `done` every 20 ms for up to `within`.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds within = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace parley::testing
