#include "bench/load/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace parley::load {

namespace {

// Values below `linear` have a bucket each; above, every power of two
// [2^k, 2^(k+1)) is cut into `half` equal buckets.
constexpr std::uint64_t linear = 2048;
constexpr std::uint64_t half = linear / 2;
constexpr int top_bit_of_linear = 11;  // 2^11 = linear
constexpr std::size_t bucket_count = linear + (64 - top_bit_of_linear) * half;

int top_bit(std::uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

histogram::histogram() : counts_(bucket_count, 0) {}

std::size_t histogram::bucket_of(std::uint64_t value) {
  if (value < linear) return static_cast<std::size_t>(value);
  int shift = top_bit(value) - (top_bit_of_linear - 1);  // value >> shift is in [half, linear)
  auto sub = (value >> shift) - half;
  return static_cast<std::size_t>(linear + (shift - 1) * half + sub);
}

std::uint64_t histogram::highest_in(std::size_t bucket) {
  if (bucket < linear) return bucket;
  auto shift = (bucket - linear) / half + 1;
  auto sub = (bucket - linear) % half + half;
  return ((sub + 1) << shift) - 1;
}

void histogram::record(std::uint64_t value) {
  ++counts_[bucket_of(value)];
  ++count_;
  sum_ += value;
  max_ = std::max(max_, value);
  min_ = std::min(min_, value);
}

void histogram::merge(const histogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
}

std::uint64_t histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * count_));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in(i), max_);
  }
  return max_;
}

}  // namespace parley::load
