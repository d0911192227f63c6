#define BOOST_TEST_MODULE request_guard
#include <boost/test/unit_test.hpp>

#include "http/request_guard.hpp"

#include <string>

using parley::equals_ignoring_case;
using parley::is_header_name_list;

BOOST_AUTO_TEST_CASE(header_tokens_compare_ignoring_ascii_case) {
  BOOST_TEST(equals_ignoring_case("Bearer", "bearer"));
  BOOST_TEST(equals_ignoring_case("application/JSON", "Application/json"));
  BOOST_TEST(equals_ignoring_case("", ""));
  BOOST_TEST(!equals_ignoring_case("bearer", "bearer "));
  BOOST_TEST(!equals_ignoring_case("websocket", "websockets"));
  BOOST_TEST(!equals_ignoring_case("", "x"));
  // Only ASCII letters fold: other bytes must match exactly.
  BOOST_TEST(!equals_ignoring_case("\xc3\xa9", "\xc3\x89"));
  BOOST_TEST(!equals_ignoring_case("[", "{"));
}

BOOST_AUTO_TEST_CASE(a_preflight_header_list_is_echoed_only_when_plain) {
  BOOST_TEST(is_header_name_list("authorization, content-type, Idempotency-Key, x_custom"));
  BOOST_TEST(is_header_name_list(""));
  BOOST_TEST(is_header_name_list(std::string(1024, 'a')));
  BOOST_TEST(!is_header_name_list(std::string(1025, 'a')));
  // Nothing that could end the header it is echoed into, or start another.
  BOOST_TEST(!is_header_name_list("content-type\r\nSet-Cookie: a=b"));
  BOOST_TEST(!is_header_name_list("content-type\n"));
  BOOST_TEST(!is_header_name_list(std::string("a\0b", 3)));
  BOOST_TEST(!is_header_name_list("x-a: b"));
  BOOST_TEST(!is_header_name_list("x-\xc3\xa9"));
  BOOST_TEST(!is_header_name_list("a\tb"));
}
