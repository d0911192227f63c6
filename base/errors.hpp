#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace parley {

/// The engine's error domain. Every layer reports failures as these codes; the
/// HTTP layer maps them to status codes in exactly one place.
enum class errc : std::uint8_t {
  none = 0,
  not_found,         ///< unknown or not owned (the two are indistinguishable)
  unauthenticated,   ///< missing or invalid credentials
  invalid_argument,  ///< a value out of range, with the field named
  conflict,          ///< the operation does not apply to the current state
  queue_full,        ///< the conversation's queue is full
  rate_limited,
  db_unavailable,  ///< the database did not answer or refused
  provider_error,
  provider_timeout,
  overloaded,
  internal,  ///< stays last: stored answers are decoded by walking the codes up to it
};

/// A failure as a value: what went wrong, for whom it is meant, and context the
/// HTTP layer reports (the field of a 422, the stored message of a 502).
struct failure {
  errc code = errc::internal;
  std::string detail;
  std::string field;                      ///< set for invalid_argument
  std::string message_id;                 ///< set for provider errors
  std::optional<unsigned> retry_after_s;  ///< set for 429 and 503
};

/// Either a value or why there is none, like std::expected (C++23) without
/// the wait: the one way the code says "a value or an error". The error is a
/// failure, or for the HTTP layer's checks the problem to answer.
template <class T, class E = failure>
class outcome {
 public:
  outcome(T value) : value_(std::move(value)) {}
  outcome(E why) : error_(std::move(why)) {}

  explicit operator bool() const { return value_.has_value(); }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const E& error() const { return *error_; }

 private:
  std::optional<T> value_;
  std::optional<E> error_;
};

/// A value-less result.
struct done {};

const char* to_string(errc code);

/// The failure of an operation that did not finish within its deadline;
/// `code` says what the caller reports (a busy engine, a silent database).
failure timed_out(errc code);

}  // namespace parley
