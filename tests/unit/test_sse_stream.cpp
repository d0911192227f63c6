#define BOOST_TEST_MODULE sse_stream
#include <boost/test/unit_test.hpp>

#include "http/sse_stream.hpp"

#include <nlohmann/json.hpp>

using namespace parley;

BOOST_AUTO_TEST_CASE(events_are_one_data_line_and_a_blank_line) {
  auto e = sse_event("delta", R"({"content":"a\nb"})");
  BOOST_TEST(e == "event: delta\ndata: {\"content\":\"a\\nb\"}\n\n");
  // JSON keeps newlines escaped, so the data stays on one line.
  auto dumped = nlohmann::json{{"content", "line one\nline two"}}.dump();
  auto framed = sse_event("delta", dumped);
  BOOST_TEST(std::count(framed.begin(), framed.end(), '\n') == 3);
}
