#define BOOST_TEST_MODULE sse_parser
#include <boost/test/unit_test.hpp>

#include "providers/sse_parser.hpp"

#include <random>
#include <vector>

using namespace parley;

namespace {

/// A stream with everything the rules allow: CRLF, CR and LF line ends,
/// comments, named events, multi-line data, fields without a space, ids,
/// an event without data, and UTF-8 split across bytes.
const std::string stream =
    ": keep-alive comment\r\n"
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\"}\r\n"
    "\r\n"
    "data:first line\n"
    "data: second line\n"
    "id: 7\n"
    "retry: 1000\n"
    "\n"
    "event: ping\r"
    "\r"
    "data: caf\xc3\xa9 \xe2\x9c\x93\r"
    "\r"
    "data: [DONE]\n"
    "\n"
    "data: never finished";

const std::vector<sse_event> expected{
    {"message_start", "{\"type\":\"message_start\"}"},
    {"message", "first line\nsecond line"},
    {"message", "caf\xc3\xa9 \xe2\x9c\x93"},
    {"message", "[DONE]"},
};

std::vector<sse_event> parse_in_pieces(const std::vector<std::size_t>& cuts) {
  std::vector<sse_event> got;
  sse_parser parser([&](sse_event& e) { got.push_back(e); });
  std::size_t at = 0;
  for (auto cut : cuts) {
    parser.feed(std::string_view(stream).substr(at, cut - at));
    at = cut;
  }
  parser.feed(std::string_view(stream).substr(at));
  return got;
}

void check(const std::vector<sse_event>& got) {
  BOOST_REQUIRE_EQUAL(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST(got[i].name == expected[i].name);
    BOOST_TEST(got[i].data == expected[i].data);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(whole_stream_at_once) { check(parse_in_pieces({})); }

BOOST_AUTO_TEST_CASE(byte_by_byte) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  check(parse_in_pieces(cuts));
}

BOOST_AUTO_TEST_CASE(random_chunkings) {
  std::mt19937 rng(20261124);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    for (;;) {
      at += std::uniform_int_distribution<std::size_t>(1, 12)(rng);
      if (at >= stream.size()) break;
      cuts.push_back(at);
    }
    check(parse_in_pieces(cuts));
  }
}

BOOST_AUTO_TEST_CASE(an_unfinished_line_is_held_and_counted) {
  std::vector<sse_event> got;
  sse_parser parser([&](sse_event& e) { got.push_back(e); });
  parser.feed("data: partial");
  BOOST_TEST(got.empty());
  BOOST_TEST(parser.pending_bytes() == 13u);
  parser.feed(" end\n\n");
  BOOST_REQUIRE(got.size() == 1u);
  BOOST_TEST(got[0].data == "partial end");
  BOOST_TEST(parser.pending_bytes() == 0u);
}
