#pragma once

#include "base/mutex.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace parley::metrics {

/// A count that only goes up. Lock-free and thread-safe.
class counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. Lock-free and thread-safe.
class gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into buckets with fixed upper bounds, plus their sum
/// and count, as Prometheus histograms are. Lock-free and thread-safe; a
/// concurrent read may see an observation in the count but not yet the sum.
class histogram {
 public:
  /// `upper_bounds` ascending; the +Inf bucket is implied.
  explicit histogram(std::vector<double> upper_bounds);

  void observe(double value);

  struct snapshot {
    std::vector<std::uint64_t> cumulative;  ///< one per upper bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  snapshot read() const;
  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  ///< not cumulative
  std::atomic<double> sum_{0};
};

/// Bucket bounds in seconds from 1 ms to 60 s, for request and flush latency.
std::vector<double> latency_buckets();

/// Powers of two from 1 to 1024, for sizes such as writes per batch.
std::vector<double> size_buckets();

/// One metric name and its children, one per set of label values. Children
/// are made on first use and live as long as the family, so callers may keep
/// the reference. Thread-safe.
template <class Metric>
class family {
 public:
  family(std::vector<std::string> label_names, std::vector<double> bounds = {})
      : label_names_(std::move(label_names)), bounds_(std::move(bounds)) {}

  /// The child for `values`, given in the order of the family's label names.
  Metric& with(const std::vector<std::string>& values) {
    mutex_lock lock(mutex_);
    auto& child = children_[values];
    if (!child) child = make_child();
    return *child;
  }

  const std::vector<std::string>& label_names() const { return label_names_; }

  /// Calls `fn(label_values, metric)` for each child in label order.
  template <class Fn>
  void for_each(Fn fn) const {
    mutex_lock lock(mutex_);
    for (auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::unique_ptr<Metric> make_child() const {
    if constexpr (std::is_same_v<Metric, histogram>)
      return std::make_unique<histogram>(bounds_);
    else
      return std::make_unique<Metric>();
  }

  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  mutable mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_ GUARDED_BY(mutex_);
};

/// Named metric families, rendered in the Prometheus text exposition format
/// (version 0.0.4). Asking twice for the same name returns the same family;
/// asking for it as another type or with other labels throws
/// std::logic_error, a programming mistake. Thread-safe.
class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  family<counter>& counters(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});
  family<gauge>& gauges(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names = {});
  family<histogram>& histograms(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::vector<double> bounds);

  /// Unlabelled shorthands: the family's only child.
  counter& counter_named(const std::string& name, const std::string& help);
  gauge& gauge_named(const std::string& name, const std::string& help);
  histogram& histogram_named(const std::string& name, const std::string& help,
                             std::vector<double> bounds);

  /// Every family, sorted by name.
  std::string render() const;

 private:
  struct entry;
  entry& find_or_add(const std::string& name, const std::string& help, int kind,
                     const std::vector<std::string>& label_names,
                     const std::vector<double>& bounds);

  mutable mutex mutex_;
  std::map<std::string, std::unique_ptr<entry>> families_ GUARDED_BY(mutex_);
};

/// The process's registry, which every library records into and GET /metrics renders.
registry& default_registry();

/// Sets the process gauges of `r` from /proc: resident memory, open file
/// descriptors (connections among them) and start time. Call before rendering.
void sample_process_metrics(registry& r);

/// A label value or HELP text escaped as the exposition format wants it.
std::string escape(std::string_view text, bool in_label_value);

/// A sample value: integers without a fraction, +Inf/-Inf/NaN by name.
std::string format_value(double value);

}  // namespace parley::metrics
