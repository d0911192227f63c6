#define BOOST_TEST_MODULE load_histogram
#include <boost/test/unit_test.hpp>

#include "bench/load/histogram.hpp"

#include <algorithm>
#include <random>
#include <vector>

using parley::load::histogram;

BOOST_AUTO_TEST_CASE(small_values_are_exact) {
  histogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v);
  BOOST_TEST(h.count() == 1000u);
  BOOST_TEST(h.quantile(0.5) == 500u);
  BOOST_TEST(h.quantile(0.99) == 990u);
  BOOST_TEST(h.quantile(1.0) == 1000u);
  BOOST_TEST(h.min() == 1u);
  BOOST_TEST(h.max() == 1000u);
  BOOST_TEST(h.mean() == 500.5);
}

BOOST_AUTO_TEST_CASE(large_values_keep_three_significant_digits) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> spread(10.0, 2.0);  // microseconds to minutes
  std::vector<std::uint64_t> values;
  histogram h;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<std::uint64_t>(spread(rng)) + 1;
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    auto exact = values[static_cast<std::size_t>(q * values.size()) - 1];
    auto got = h.quantile(q);
    BOOST_TEST(got >= exact);
    BOOST_TEST(static_cast<double>(got - exact) <= exact / 1000.0 + 1);
  }
  BOOST_TEST(h.quantile(1.0) == values.back());
}

BOOST_AUTO_TEST_CASE(buckets_cover_every_value_in_order) {
  for (std::uint64_t v : {0ull, 1ull, 2047ull, 2048ull, 2049ull, 4095ull, 4096ull, 1ull << 40,
                          (1ull << 63) + 12345, ~0ull}) {
    auto b = histogram::bucket_of(v);
    BOOST_TEST(histogram::highest_in(b) >= v);
    if (b > 0) BOOST_TEST(histogram::highest_in(b - 1) < v);
  }
}

BOOST_AUTO_TEST_CASE(merging_adds_counts) {
  histogram a, b;
  for (int i = 0; i < 10; ++i) a.record(100);
  for (int i = 0; i < 30; ++i) b.record(5000000);
  a.merge(b);
  BOOST_TEST(a.count() == 40u);
  BOOST_TEST(a.quantile(0.25) == 100u);
  BOOST_TEST(a.quantile(0.5) >= 5000000u);
  BOOST_TEST(a.max() == 5000000u);
  BOOST_TEST(histogram().quantile(0.5) == 0u);
}
