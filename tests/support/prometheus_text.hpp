#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace parley::testing {

/// One sample line: `name{label="value",...} 12.5`.
struct prometheus_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// A scrape in the Prometheus text exposition format 0.0.4, parsed strictly:
/// any malformed line, a sample without a TYPE before it, or a histogram
/// whose buckets are not cumulative throws std::runtime_error naming the line.
struct prometheus_scrape {
  std::map<std::string, std::string> types;  ///< family name -> counter, gauge, histogram…
  std::map<std::string, std::string> help;
  std::vector<prometheus_sample> samples;

  static prometheus_scrape parse(const std::string& text);

  /// The value of the one sample named `name` whose labels include `labels`
  /// (summed when several match); nullopt when none matches.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const;
  /// Every label value `label` takes in samples named `name`.
  std::vector<std::string> label_values(const std::string& name, const std::string& label) const;
};

}  // namespace parley::testing
