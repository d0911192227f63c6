#include "telemetry/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

namespace parley::metrics {

// --- histogram ------------------------------------------------------------------

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()))
    throw std::logic_error("histogram bounds must ascend");
}

void histogram::observe(double value) {
  auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<double> size_buckets() {
  std::vector<double> out;
  for (double b = 1; b <= 1024; b *= 2) out.push_back(b);
  return out;
}

// --- text format ----------------------------------------------------------------

std::string escape(std::string_view text, bool in_label_value) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && in_label_value)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

namespace {

enum kind { counter_kind, gauge_kind, histogram_kind };

const char* type_name(int k) {
  return k == counter_kind ? "counter" : k == gauge_kind ? "gauge" : "histogram";
}

/// `{a="x",b="y"}` with an optional extra label last (a histogram's `le`).
std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  auto add = [&](std::string_view name, std::string_view value) {
    out += out.empty() ? '{' : ',';
    out.append(name).append("=\"").append(value).append("\"");
  };
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
    add(names[i], escape(values[i], true));
  if (!extra_name.empty()) add(extra_name, extra_value);
  if (!out.empty()) out += '}';
  return out;
}

}  // namespace

struct registry::entry {
  std::string help;
  int type;
  std::vector<std::string> label_names;
  std::vector<double> bounds;
  // Exactly one is set, as `type` says.
  std::unique_ptr<family<counter>> counters;
  std::unique_ptr<family<gauge>> gauges;
  std::unique_ptr<family<histogram>> histograms;

  void render(const std::string& name, std::string& out) const {
    out += "# HELP " + name + " " + escape(help, false) + "\n";
    out += "# TYPE " + name + " " + type_name(type) + "\n";
    if (counters)
      counters->for_each([&](auto& values, const counter& m) {
        out += name + label_set(label_names, values) + " " + std::to_string(m.value()) + "\n";
      });
    if (gauges)
      gauges->for_each([&](auto& values, const gauge& m) {
        out += name + label_set(label_names, values) + " " + format_value(m.value()) + "\n";
      });
    if (histograms)
      histograms->for_each([&](auto& values, const histogram& m) {
        auto s = m.read();
        auto& upper = m.upper_bounds();
        for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
          auto le = i < upper.size() ? format_value(upper[i]) : "+Inf";
          out += name + "_bucket" + label_set(label_names, values, "le", le) + " " +
                 std::to_string(s.cumulative[i]) + "\n";
        }
        out += name + "_sum" + label_set(label_names, values) + " " + format_value(s.sum) + "\n";
        out +=
            name + "_count" + label_set(label_names, values) + " " + std::to_string(s.count) + "\n";
      });
  }
};

registry::registry() = default;
registry::~registry() = default;

registry::entry& registry::find_or_add(const std::string& name, const std::string& help, int type,
                                       const std::vector<std::string>& label_names,
                                       const std::vector<double>& bounds) {
  mutex_lock lock(mutex_);
  auto& slot = families_[name];
  if (slot) {
    if (slot->type != type || slot->label_names != label_names || slot->bounds != bounds)
      throw std::logic_error("metric " + name + " is already registered differently");
    return *slot;
  }
  slot = std::make_unique<entry>();
  slot->help = help;
  slot->type = type;
  slot->label_names = label_names;
  slot->bounds = bounds;
  if (type == counter_kind) slot->counters = std::make_unique<family<counter>>(label_names);
  if (type == gauge_kind) slot->gauges = std::make_unique<family<gauge>>(label_names);
  if (type == histogram_kind)
    slot->histograms = std::make_unique<family<histogram>>(label_names, bounds);
  return *slot;
}

family<counter>& registry::counters(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  return *find_or_add(name, help, counter_kind, label_names, {}).counters;
}

family<gauge>& registry::gauges(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names) {
  return *find_or_add(name, help, gauge_kind, label_names, {}).gauges;
}

family<histogram>& registry::histograms(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  return *find_or_add(name, help, histogram_kind, label_names, bounds).histograms;
}

counter& registry::counter_named(const std::string& name, const std::string& help) {
  return counters(name, help).with({});
}

gauge& registry::gauge_named(const std::string& name, const std::string& help) {
  return gauges(name, help).with({});
}

histogram& registry::histogram_named(const std::string& name, const std::string& help,
                                     std::vector<double> bounds) {
  return histograms(name, help, {}, std::move(bounds)).with({});
}

std::string registry::render() const {
  mutex_lock lock(mutex_);
  std::string out;
  for (auto& [name, e] : families_) e->render(name, out);
  return out;
}

namespace {
// Taken during static initialisation, which is close enough to the start.
const double process_start_seconds =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}  // namespace

void sample_process_metrics(registry& r) {
  long pages_total = 0, pages_resident = 0;
  if (std::ifstream statm("/proc/self/statm"); statm >> pages_total >> pages_resident)
    r.gauge_named("process_resident_memory_bytes", "Resident memory size in bytes.")
        .set(static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec)
    r.gauge_named("process_open_fds", "Open file descriptors.").set(static_cast<double>(fds));
  r.gauge_named("process_start_time_seconds", "Start time of the process since the Unix epoch.")
      .set(process_start_seconds);
}

registry& default_registry() {
  static registry instance;
  return instance;
}

}  // namespace parley::metrics
