#include "base/errors.hpp"

namespace parley {

const char* to_string(errc code) {
  switch (code) {
    case errc::none:
      return "none";
    case errc::not_found:
      return "not_found";
    case errc::unauthenticated:
      return "unauthenticated";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::conflict:
      return "conflict";
    case errc::queue_full:
      return "queue_full";
    case errc::rate_limited:
      return "rate_limited";
    case errc::db_unavailable:
      return "db_unavailable";
    case errc::provider_error:
      return "provider_error";
    case errc::provider_timeout:
      return "provider_timeout";
    case errc::overloaded:
      return "overloaded";
    case errc::internal:
      return "internal";
  }
  return "internal";
}

failure timed_out(errc code) {
  failure f;
  f.code = code;
  f.detail = "the operation did not finish in time";
  if (code == errc::db_unavailable || code == errc::overloaded) f.retry_after_s = 1;
  return f;
}

}  // namespace parley
