#define BOOST_TEST_MODULE base
#include <boost/test/unit_test.hpp>

#include "base/clock.hpp"
#include "base/shared_text.hpp"
#include "base/uuid.hpp"

#include <string>

// base/: dates and times as Parley writes them, UUIDv7 ids and shared text.
// (The mutex has test_mutex.)

using namespace parley;

BOOST_AUTO_TEST_CASE(time_and_ids) {
  BOOST_TEST(format_rfc3339(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(format_rfc3339(1795352707123) == "2026-11-22T13:05:07.123Z");
  BOOST_TEST(format_day(1795352707123) == "2026-11-22");
  BOOST_TEST((parse_day("2026-11-22") == std::optional<unix_ms>(1795305600000)));
  BOOST_TEST(!parse_day("2026-02-30").has_value());
  BOOST_TEST(!parse_day("2026-1-5").has_value());
  BOOST_TEST(!parse_day("yesterday").has_value());
  BOOST_TEST(!parse_day("2026-+1-01").has_value());
  BOOST_TEST(!parse_day("2026- 1-01").has_value());
  BOOST_TEST(!parse_day(" 2026-1-01").has_value());
  BOOST_TEST(!parse_day("+026-11-01").has_value());

  // RFC 3339 read back: Parley's own form, other fractions and offsets.
  using ms = std::optional<unix_ms>;
  BOOST_TEST((parse_rfc3339("2026-11-22T13:05:07.123Z") == ms(1795352707123)));
  BOOST_TEST((parse_rfc3339(format_rfc3339(1)) == ms(1)));
  BOOST_TEST((parse_rfc3339("2026-11-22T13:05:07Z") == ms(1795352707000)));
  BOOST_TEST((parse_rfc3339("2026-11-22T13:05:07.1234567Z") == ms(1795352707123)));
  BOOST_TEST((parse_rfc3339("2026-11-22T13:05:07.5z") == ms(1795352707500)));
  BOOST_TEST((parse_rfc3339("2026-11-22T15:05:07.123+02:00") == ms(1795352707123)));
  BOOST_TEST((parse_rfc3339("2026-11-22T12:35:07.123-00:30") == ms(1795352707123)));
  for (auto bad : {"", "2026-11-22", "2026-11-22T13:05:07", "2026-11-22T13:05:07.Z",
                   "2026-11-22 13:05:07Z", "2026-11-22T24:00:00Z", "2026-11-22T13:05:07+2:00",
                   "2026-11-22T13:05:07Zjunk", "2026-02-30T00:00:00Z", "2026-11-22T1:05:07Z"})
    BOOST_TEST(!parse_rfc3339(bad).has_value(), bad);

  auto a = make_uuid_v7(), b = make_uuid_v7();
  BOOST_TEST(is_canonical_uuid(a));
  BOOST_TEST(a != b);
  BOOST_TEST(a[14] == '7');  // version
  BOOST_TEST(!is_canonical_uuid("0193-not-a-uuid"));
  BOOST_TEST(!is_canonical_uuid("01A20421-86A4-75E1-B9C5-9C9695DDD071"));
}

BOOST_AUTO_TEST_CASE(shared_text_is_one_copy_however_often_it_is_passed_on) {
  shared_text none;
  BOOST_TEST(none.empty());
  BOOST_TEST(none == "");
  shared_text hello(std::string("hello, world"));
  auto copy = hello;
  BOOST_TEST((copy.data() == hello.data()));  // the same characters, not a copy
  BOOST_TEST(copy == hello);
  BOOST_TEST(copy == std::string("hello, world"));
  BOOST_TEST(std::string_view(copy).size() == 12u);
  BOOST_TEST(!(copy == shared_text("hello")));
  copy = "another";  // a new text: the first stays as it was
  BOOST_TEST(hello == "hello, world");
  BOOST_TEST(copy == "another");
}
