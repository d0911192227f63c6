#pragma once

#include <cstdint>
#include <vector>

namespace parley::load {

/// A high-dynamic-range histogram of non-negative integers (microseconds,
/// say): exact below 2,048, and within 1/1,024 (three significant digits)
/// above, up to 2^63. Fixed memory (about 440 KiB), O(1) record, no
/// allocation after construction. Not thread-safe: one per thread, merged.
class histogram {
 public:
  histogram();

  void record(std::uint64_t value);
  void merge(const histogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  /// The smallest recorded value v (to the histogram's precision) such that a
  /// fraction `q` (0..1) of the values are ≤ v; 0 when empty.
  std::uint64_t quantile(double q) const;

  /// The bucket a value falls in, and the highest value of a bucket (exposed for tests).
  static std::size_t bucket_of(std::uint64_t value);
  static std::uint64_t highest_in(std::size_t bucket);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0, max_ = 0, min_ = UINT64_MAX;
  unsigned __int128 sum_ = 0;
};

}  // namespace parley::load
