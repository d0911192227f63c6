#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace parley {

/// Unicode code points in UTF-8 text (invalid bytes count one each).
std::size_t count_code_points(std::string_view utf8);

/// The engine's estimate of tokens in a text: about four characters a token.
std::int64_t estimate_tokens(std::string_view text);

/// The same estimate for a text of `code_points` characters, for callers that
/// count a growing text piece by piece instead of rescanning it.
std::int64_t tokens_of(std::size_t code_points);

/// The estimate for one chat message: its text plus the per-message framing
/// providers add (role markers and separators).
std::int64_t estimate_message_tokens(std::string_view content);

/// How a model's real token counts compare with the engine's estimate, learnt
/// from the prompt_tokens its provider reports. Thread-safe: every
/// conversation actor using the model shares one.
class token_calibration {
 public:
  /// One prompt's estimate and the provider's count; ignored unless both are positive.
  void observe(std::int64_t estimated, std::int64_t reported);

  /// What to multiply an estimate by: a moving average of reported/estimated,
  /// between 0.25 and 4, in steps of 1/16 so that budgets derived from it
  /// change only when the difference matters.
  double factor() const;

 private:
  std::atomic<double> ratio_{1.0};
};

}  // namespace parley
