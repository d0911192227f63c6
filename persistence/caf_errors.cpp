#include "persistence/caf_errors.hpp"

#include <spdlog/spdlog.h>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include <cstdint>
#include <string>

namespace parley {

caf::error make_caf_error(const failure& f) {
  return {static_cast<std::uint8_t>(f.code), errc_category,
          caf::make_message(f.detail, f.field, f.message_id,
                            f.retry_after_s ? static_cast<std::int32_t>(*f.retry_after_s) : -1)};
}

failure to_failure(const caf::error& e, errc on_timeout) {
  failure f;
  if (e.category() == errc_category) {
    f.code = static_cast<errc>(e.code());
    auto& ctx = e.context();
    if (ctx.match_elements<std::string, std::string, std::string, std::int32_t>()) {
      f.detail = ctx.get_as<std::string>(0);
      f.field = ctx.get_as<std::string>(1);
      f.message_id = ctx.get_as<std::string>(2);
      if (auto retry = ctx.get_as<std::int32_t>(3); retry >= 0)
        f.retry_after_s = static_cast<unsigned>(retry);
    }
    return f;
  }
  if (e == caf::sec::request_timeout) return timed_out(on_timeout);
  // Not ours and not a timeout: a bug or a dying actor. Say what it was in the log.
  spdlog::error("unexpected actor error: {}", caf::to_string(e));
  f.code = errc::internal;
  f.detail = "internal error";
  return f;
}

}  // namespace parley
