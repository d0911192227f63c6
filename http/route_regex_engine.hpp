#pragma once

// Internal to http/: includes RESTinio. The regex engine of Parley's router.

#include <restinio/router/pcre2_regex_engine.hpp>

#include <memory>
#include <new>

namespace parley {

/// RESTinio's PCRE2 engine, matching into one match block per thread. The
/// stock engine creates a block for every route it tries (and PCRE2 then
/// allocates its backtracking frames in it): two allocations per route, a
/// dozen routes tried for a request to the end of the table. A route match is
/// read before the next one starts on the same thread, so one block serves.
struct route_regex_engine {
  using stock = restinio::router::pcre2_regex_engine_t<>;
  using compiled_regex_t = stock::compiled_regex_t;

  /// A view of this thread's match block after a successful match.
  struct match_results_t {
    using matched_item_descriptor_t = stock::matched_item_descriptor_t;
    matched_item_descriptor_t operator[](std::size_t i) const {
      auto* ovector = pcre2_get_ovector_pointer(data);
      return {ovector[2 * i], ovector[2 * i + 1]};
    }
    std::size_t size() const { return count; }

    pcre2_match_data* data = thread_block();
    std::size_t count = 0;

   private:
    static pcre2_match_data* thread_block() {
      struct release {
        void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
      };
      thread_local std::unique_ptr<pcre2_match_data, release> block;
      if (!block) block.reset(pcre2_match_data_create(stock::max_capture_groups(), nullptr));
      if (!block) throw std::bad_alloc{};  // tried again on the thread's next match
      return block.get();
    }
  };
  using matched_item_descriptor_t = match_results_t::matched_item_descriptor_t;

  static constexpr std::size_t max_capture_groups() { return stock::max_capture_groups(); }

  static auto compile_regex(restinio::string_view_t r, bool is_case_sensitive) {
    return stock::compile_regex(r, is_case_sensitive);
  }

  static bool try_match(restinio::string_view_t path, const compiled_regex_t& r,
                        match_results_t& results) {
    int rc = pcre2_match(r.pcre2_regex(), reinterpret_cast<const unsigned char*>(path.data()),
                         path.size(), 0, 0, results.data, nullptr);
    if (rc > 0) {
      results.count = static_cast<std::size_t>(rc);
      return true;
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    // 0: more groups than the block holds, which RESTinio rules out when it
    // compiles a route; anything else is PCRE2 failing.
    throw restinio::exception_t{"PCRE2 failed to match a route: " + std::to_string(rc)};
  }

  static std::size_t submatch_begin_pos(const matched_item_descriptor_t& m) {
    return static_cast<std::size_t>(m.m_begin);
  }
  static std::size_t submatch_end_pos(const matched_item_descriptor_t& m) {
    return static_cast<std::size_t>(m.m_end);
  }
};

}  // namespace parley
