#include "support/prometheus_text.hpp"

#include <cctype>
#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

namespace parley::testing {

namespace {

bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool is_name_char(char c) {
  return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c));
}
bool is_label_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_label_char(char c) {
  return is_label_start(c) || std::isdigit(static_cast<unsigned char>(c));
}

[[noreturn]] void fail(std::size_t line_no, const std::string& line, const std::string& why) {
  throw std::runtime_error("metrics line " + std::to_string(line_no) + " (" + line + "): " + why);
}

double parse_number(const std::string& text, std::size_t line_no, const std::string& line) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail(line_no, line, "'" + text + "' is not a number");
  }
  if (used != text.size()) fail(line_no, line, "'" + text + "' is not a number");
  return v;
}

/// The family a sample belongs to: a histogram's _bucket/_sum/_count name its family.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (auto t = types.find(name); t != types.end())
    return t->second == "histogram" || t->second == "summary" ? "" : name;
  for (auto suffix : {"_bucket", "_sum", "_count"}) {
    std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      auto t = types.find(base);
      if (t != types.end() && (t->second == "histogram" || t->second == "summary")) return base;
    }
  }
  return "";
}

}  // namespace

prometheus_scrape prometheus_scrape::parse(const std::string& text) {
  prometheus_scrape out;
  std::istringstream in(text);
  std::string line;
  std::size_t line_no = 0;
  static const std::set<std::string> known_types{"counter", "gauge", "histogram", "summary",
                                                 "untyped"};
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (keyword == "TYPE") {
        std::string type;
        words >> type;
        if (!known_types.count(type)) fail(line_no, line, "unknown type");
        if (out.types.count(name)) fail(line_no, line, "a second TYPE for " + name);
        out.types[name] = type;
      } else if (keyword == "HELP") {
        std::string rest;
        std::getline(words, rest);
        out.help[name] = rest.empty() ? rest : rest.substr(1);
      }
      continue;
    }
    prometheus_sample s;
    std::size_t i = 0;
    if (!is_name_start(line[0])) fail(line_no, line, "a sample must start with a metric name");
    while (i < line.size() && is_name_char(line[i])) ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        auto start = i;
        if (i < line.size() && is_label_start(line[i]))
          while (i < line.size() && is_label_char(line[i])) ++i;
        auto label = line.substr(start, i - start);
        if (label.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
          fail(line_no, line, "expected label=\"value\"");
        i += 2;
        std::string value;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] != '\\') {
            value += line[i];
            continue;
          }
          if (++i >= line.size()) fail(line_no, line, "a label value ends in a backslash");
          if (line[i] == 'n')
            value += '\n';
          else if (line[i] == '\\' || line[i] == '"')
            value += line[i];
          else
            fail(line_no, line, "unknown escape in a label value");
        }
        if (i >= line.size()) fail(line_no, line, "an unterminated label value");
        ++i;  // the closing quote
        if (s.labels.count(label)) fail(line_no, line, "label " + label + " given twice");
        s.labels[label] = value;
        if (i < line.size() && line[i] == ',')
          ++i;
        else if (i < line.size() && line[i] != '}')
          fail(line_no, line, "expected , or } after a label value");
      }
      if (i >= line.size()) fail(line_no, line, "an unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ')
      fail(line_no, line, "expected a space before the value");
    auto rest = line.substr(i + 1);
    auto space = rest.find(' ');  // an optional timestamp may follow
    s.value = parse_number(rest.substr(0, space), line_no, line);
    if (space != std::string::npos) {
      auto stamp = rest.substr(space + 1);
      bool integer = !stamp.empty();
      for (std::size_t k = 0; k < stamp.size(); ++k)
        integer = integer && (std::isdigit(static_cast<unsigned char>(stamp[k])) ||
                              (k == 0 && stamp[k] == '-' && stamp.size() > 1));
      if (!integer) fail(line_no, line, "only a timestamp may follow the value");
    }
    if (family_of(s.name, out.types).empty()) fail(line_no, line, "no TYPE line for " + s.name);
    out.samples.push_back(std::move(s));
  }
  // Histogram buckets rise with `le` and end in +Inf equal to _count.
  for (auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> series;
    for (auto& s : out.samples) {
      if (s.name != family + "_bucket") continue;
      auto labels = s.labels;
      auto le = labels.find("le");
      if (le == labels.end()) throw std::runtime_error(family + "_bucket without le");
      double bound = parse_number(le->second, 0, le->second);
      labels.erase(le);
      series[labels].emplace_back(bound, s.value);
    }
    for (auto& [labels, buckets] : series) {
      for (std::size_t k = 1; k < buckets.size(); ++k)
        if (buckets[k].first <= buckets[k - 1].first || buckets[k].second < buckets[k - 1].second)
          throw std::runtime_error(family + ": buckets are not cumulative in ascending le");
      if (buckets.empty() || !std::isinf(buckets.back().first))
        throw std::runtime_error(family + ": the last bucket is not le=\"+Inf\"");
      auto count = out.value(family + "_count", labels);
      if (!count || *count != buckets.back().second)
        throw std::runtime_error(family + ": _count differs from the +Inf bucket");
    }
  }
  return out;
}

std::optional<double> prometheus_scrape::value(
    const std::string& name, const std::map<std::string, std::string>& labels) const {
  std::optional<double> total;
  for (auto& s : samples) {
    if (s.name != name) continue;
    bool matches = true;
    for (auto& [k, v] : labels) {
      auto found = s.labels.find(k);
      matches = matches && found != s.labels.end() && found->second == v;
    }
    if (matches) total = total.value_or(0) + s.value;
  }
  return total;
}

std::vector<std::string> prometheus_scrape::label_values(const std::string& name,
                                                         const std::string& label) const {
  std::set<std::string> values;
  for (auto& s : samples)
    if (s.name == name && s.labels.count(label)) values.insert(s.labels.at(label));
  return {values.begin(), values.end()};
}

}  // namespace parley::testing
