#define BOOST_TEST_MODULE api_search
#include <boost/test/unit_test.hpp>

// GET /v1/search over real HTTP, on SQLite (FTS5) and PostgreSQL (tsvector):
// the query language, accents and case, the caller's text only, edits and
// deletes seen at once, keyset pages without repeats, filters, and hostile
// queries that are never an error.

#include "support/api.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

#include <chrono>
#include <ctime>
#include <set>
#include <string>
#include <vector>

using namespace parley::testing;
using nlohmann::json;

namespace {

server_process& server() {
  static auto s = std::make_unique<server_process>();
  return *s;
}

http_client client(const std::string& user) { return http_client(server().base_url(), user); }

std::string encoded(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

json search(http_client& c, const std::string& q, const std::string& extra = "") {
  auto r = c.get("/v1/search?q=" + encoded(q) + extra);
  BOOST_REQUIRE_MESSAGE(r.status == 200, q + ": " + r.body);
  return r.json();
}

/// The message ids a search finds (title matches left out).
std::set<std::string> found(http_client& c, const std::string& q, const std::string& extra = "") {
  std::set<std::string> out;
  auto page = search(c, q, extra);
  for (auto& hit : page["data"])
    if (hit["type"] == "message") out.insert(hit["message_id"].get<std::string>());
  return out;
}

/// Stores `content` as a user message without a reply; its id.
std::string note(http_client& c, const std::string& conversation, const std::string& content) {
  auto r = c.post("/v1/conversations/" + conversation + "/messages",
                  {{"content", content}, {"reply", false}});
  BOOST_REQUIRE_EQUAL(r.status, 201);
  return r.json()["message"]["id"].get<std::string>();
}

using ids = std::set<std::string>;

/// The UTC date `days` from today, as YYYY-MM-DD.
std::string utc_day(int days) {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() +
                                                std::chrono::hours(24 * days));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_query_language) {
  auto c = client("search-language");
  auto id = create_conversation(c);
  auto lisbon = note(c, id, "Where is the best café in Lisbon? I love running there.");
  auto reversed = note(c, id, "Lisbon: café is the best");
  auto porto = note(c, id, "A CAFE in Porto, naïve and cheap");
  auto resume = note(c, id, "My résumé is ready");

  // All words, in any order; case and accents do not matter.
  BOOST_TEST((found(c, "lisbon cafe") == ids{lisbon, reversed}));
  BOOST_TEST((found(c, "CAFÉ") == ids{lisbon, reversed, porto}));
  BOOST_TEST((found(c, "resume") == ids{resume}));
  BOOST_TEST((found(c, "NAIVE") == ids{porto}));
  // Stemmed: running finds run.
  BOOST_TEST((found(c, "run") == ids{lisbon}));
  // A phrase: its words together, in order.
  BOOST_TEST((found(c, "\"best café\"") == ids{lisbon}));
  // Exclusions and alternatives.
  BOOST_TEST((found(c, "cafe -lisbon") == ids{porto}));
  BOOST_TEST((found(c, "porto OR résumé") == ids{porto, resume}));
  BOOST_TEST((found(c, "lisbon running OR porto") == ids{lisbon, porto}));
  BOOST_TEST(found(c, "nowhere").empty());

  // The answer's shape, with the match marked and the rest escaped.
  auto page = search(c, "porto");
  BOOST_REQUIRE_EQUAL(page["data"].size(), 1u);
  auto& hit = page["data"][0];
  BOOST_TEST(hit["type"] == "message");
  BOOST_TEST(hit["conversation_id"] == id);
  BOOST_TEST(hit["conversation_title"].is_null());
  BOOST_TEST(hit["seq"] == 3);
  BOOST_TEST(hit["role"] == "user");
  BOOST_TEST(hit["created_at"].is_string());
  BOOST_TEST(hit["snippet"].get<std::string>().find("<mark>Porto</mark>") != std::string::npos);
  BOOST_TEST(page["next_cursor"].is_null());
}

BOOST_AUTO_TEST_CASE(snippets_are_escaped_html_around_the_match) {
  auto c = client("search-snippets");
  auto id = create_conversation(c);
  note(c, id, "<script>alert(1)</script> & <b>zebra</b> \"quoted\"");
  auto hit = search(c, "zebra")["data"][0];
  auto snippet = hit["snippet"].get<std::string>();
  BOOST_TEST(snippet.find("<mark>zebra</mark>") != std::string::npos, snippet);
  BOOST_TEST(snippet.find("<script") == std::string::npos, snippet);
  BOOST_TEST(snippet.find("<b>") == std::string::npos, snippet);
  BOOST_TEST(snippet.find("&lt;") != std::string::npos, snippet);
  // A long message: about 200 characters around the match.
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "filler" + std::to_string(i) + " ";
  long_text += "giraffe";
  for (int i = 0; i < 300; ++i) long_text += " more" + std::to_string(i);
  note(c, id, long_text);
  snippet = search(c, "giraffe")["data"][0]["snippet"].get<std::string>();
  BOOST_TEST(snippet.find("<mark>giraffe</mark>") != std::string::npos, snippet);
  BOOST_TEST(snippet.size() < 300u, snippet);
}

BOOST_AUTO_TEST_CASE(titles_are_found_too) {
  auto c = client("search-titles");
  auto id = create_conversation(c, {{"title", "Holiday in Kyoto"}});
  note(c, id, "temples and kyoto gardens");
  auto page = search(c, "kyoto");
  BOOST_REQUIRE_EQUAL(page["data"].size(), 2u);
  int titles = 0;
  for (auto& hit : page["data"]) {
    if (hit["type"] != "conversation") continue;
    ++titles;
    BOOST_TEST(hit["message_id"].is_null());
    BOOST_TEST(hit["seq"].is_null());
    BOOST_TEST(hit["role"].is_null());
    BOOST_TEST(hit["conversation_title"] == "Holiday in Kyoto");
    BOOST_TEST(hit["snippet"] == "Holiday in <mark>Kyoto</mark>");
  }
  BOOST_TEST(titles == 1);
  // Renamed: the old title is gone, the new one found.
  BOOST_TEST(c.patch("/v1/conversations/" + id, {{"title", "Osaka trip"}}).status == 200);
  BOOST_TEST(search(c, "holiday")["data"].empty());
  BOOST_TEST(search(c, "osaka")["data"].size() == 1u);
  // A role filter keeps to messages.
  BOOST_TEST(search(c, "kyoto", "&role=user")["data"].size() == 1u);
}

BOOST_AUTO_TEST_CASE(only_the_callers_text_is_ever_found) {
  auto alice = client("search-alice");
  auto bob = client("search-bob");
  auto mine = note(alice, create_conversation(alice, {{"title", "flamingo plans"}}),
                   "the flamingo is pink");
  auto theirs = create_conversation(bob, {{"title", "flamingo secrets"}});
  note(bob, theirs, "bob's flamingo secret");
  BOOST_TEST((found(alice, "flamingo") == ids{mine}));
  auto hits = search(alice, "flamingo");
  for (auto& hit : hits["data"]) BOOST_TEST(hit["conversation_id"] != theirs);
  BOOST_TEST(search(alice, "secret")["data"].empty());
  // Naming the other's conversation finds nothing either.
  BOOST_TEST(search(alice, "flamingo", "&conversation_id=" + theirs)["data"].empty());
  // A user id that differs only in case, or is a prefix, is another user.
  auto prefix = client("search-ali");
  BOOST_TEST(search(prefix, "flamingo")["data"].empty());
  auto upper = client("SEARCH-ALICE");
  BOOST_TEST(search(upper, "flamingo")["data"].empty());
}

BOOST_AUTO_TEST_CASE(edits_and_deletes_are_seen_at_once) {
  auto c = client("search-writes");
  auto id = create_conversation(c);
  auto m = note(c, id, "the walrus sleeps");
  BOOST_TEST((found(c, "walrus") == ids{m}));
  BOOST_TEST(c.patch("/v1/conversations/" + id + "/messages/" + m, {{"content", "the seal sleeps"}})
                 .status == 200);
  BOOST_TEST(found(c, "walrus").empty());
  BOOST_TEST((found(c, "seal") == ids{m}));
  BOOST_TEST(c.del("/v1/conversations/" + id + "/messages/" + m).status == 204);
  BOOST_TEST(found(c, "seal").empty());
  auto other = create_conversation(c, {{"title", "narwhal notes"}});
  note(c, other, "a narwhal tusk");
  BOOST_TEST(search(c, "narwhal")["data"].size() == 2u);
  BOOST_TEST(c.del("/v1/conversations/" + other).status == 204);
  BOOST_TEST(search(c, "narwhal")["data"].empty());
  // A reply is searchable as soon as it is stored.
  auto replied = c.post("/v1/conversations/" + id + "/messages", {{"content", "octopus"}}).json();
  BOOST_TEST((found(c, "octopus") == ids{replied["message"]["id"], replied["reply"]["id"]}));
}

BOOST_AUTO_TEST_CASE(pages_visit_every_match_once) {
  auto c = client("search-pages");
  auto id = create_conversation(c);
  std::set<std::string> stored;
  // Some identical (equal scores, ordered by key), some not.
  for (int i = 0; i < 23; ++i)
    stored.insert(
        note(c, id, i % 3 ? "needle in a haystack" : "needle needle " + std::to_string(i)));
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page =
        search(c, "needle", "&limit=5" + (cursor.empty() ? "" : "&cursor=" + encoded(cursor)));
    BOOST_TEST(page["data"].size() <= 5u);
    for (auto& hit : page["data"]) seen.push_back(hit["message_id"].get<std::string>());
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    BOOST_REQUIRE(++pages < 20);
  } while (!cursor.empty());
  BOOST_TEST(pages == 5);
  BOOST_TEST(seen.size() == stored.size());
  BOOST_TEST((std::set<std::string>(seen.begin(), seen.end()) == stored));
}

BOOST_AUTO_TEST_CASE(filters_narrow_the_matches) {
  auto c = client("search-filters");
  auto first = create_conversation(c);
  auto second = create_conversation(c);
  auto exchange =
      c.post("/v1/conversations/" + first + "/messages", {{"content", "pelican"}}).json();
  auto elsewhere = note(c, second, "pelican again");
  auto user_id = exchange["message"]["id"].get<std::string>();
  auto reply_id = exchange["reply"]["id"].get<std::string>();
  BOOST_TEST((found(c, "pelican", "&conversation_id=" + first) == ids{user_id, reply_id}));
  BOOST_TEST((found(c, "pelican", "&role=assistant") == ids{reply_id}));
  BOOST_TEST((found(c, "pelican", "&role=user") == ids{user_id, elsewhere}));
  auto today = utc_day(0), yesterday = utc_day(-1), tomorrow = utc_day(1);
  BOOST_TEST(found(c, "pelican", "&from=" + today + "&to=" + today).size() == 3u);
  BOOST_TEST(found(c, "pelican", "&to=" + yesterday).empty());
  BOOST_TEST(found(c, "pelican", "&from=" + tomorrow).empty());
}

BOOST_AUTO_TEST_CASE(hostile_queries_are_never_an_error) {
  auto c = client("search-hostile");
  auto id = create_conversation(c);
  auto m = note(c, id, "quokka said: \"hello\" NEAR the * star (really) a\\b");
  // 10 KB, mostly of characters a URL carries as they are (the request
  // target's limit is 16 KiB), with every operator of both engines in it.
  std::string huge;
  while (huge.size() < 10 * 1024) huge += "quokka-NEAR.x_OR~AND-";
  huge += "\" * ( ) : \\ ^ { }";
  for (const std::string& q : std::vector<std::string>{"\"",
                                                       "\"\"",
                                                       "\"quokka",
                                                       "*",
                                                       "quokka*",
                                                       "NEAR(quokka said)",
                                                       "NEAR(",
                                                       "content:quokka",
                                                       "owner : \"x\"",
                                                       ":",
                                                       "\\",
                                                       "\\\"quokka\\\"",
                                                       "-",
                                                       "--quokka",
                                                       "OR",
                                                       "quokka OR",
                                                       "AND",
                                                       "NOT quokka",
                                                       "(",
                                                       ")",
                                                       "^quokka",
                                                       "{owner}: quokka",
                                                       "'",
                                                       "quokka'; DROP TABLE messages;--",
                                                       "\x01\x02",
                                                       "🙂",
                                                       "%",
                                                       "_",
                                                       huge}) {
    auto r = c.get("/v1/search?q=" + encoded(q));
    BOOST_TEST(r.status == 200, q.substr(0, 40) << ": " << r.body.substr(0, 200));
  }
  // Bytes that are not UTF-8 cannot be a query string at all.
  expect_problem(c.get("/v1/search?q=%FF%FE"), 400);
  // The words in it are still found.
  BOOST_TEST((found(c, "NEAR(quokka said)") == ids{m}));
  BOOST_TEST((found(c, "quokka*") == ids{m}));
  BOOST_TEST((found(c, "quokka:said") == ids{m}));
  BOOST_TEST(found(c, "owner : \"x\"").empty());
  BOOST_TEST(found(c, "-quokka").empty());
  BOOST_TEST(c.get("/v1/conversations/" + id + "/messages").status == 200);
}

BOOST_AUTO_TEST_CASE(invalid_parameters_are_422) {
  auto c = client("search-invalid");
  auto field = [&](const std::string& query) {
    return expect_problem(c.get("/v1/search?" + query), 422)["errors"][0]["field"];
  };
  BOOST_TEST(field("") == "q");
  BOOST_TEST(field("q=") == "q");
  BOOST_TEST(field("q=%20%09") == "q");
  BOOST_TEST(field("q=a&limit=0") == "limit");
  BOOST_TEST(field("q=a&limit=51") == "limit");
  BOOST_TEST(field("q=a&role=robot") == "role");
  BOOST_TEST(field("q=a&from=2026-13-01") == "from");
  BOOST_TEST(field("q=a&from=2026-02-02&to=2026-02-01") == "from");
  BOOST_TEST(field("q=a&cursor=nonsense") == "cursor");
  BOOST_TEST(field("q=a&conversation_id=nope") == "conversation_id");
  BOOST_TEST(c.get("/v1/search?q=a&limit=50").status == 200);
}
