#pragma once

// Internal to http/: includes RESTinio. Answering a request: every answer
// carries the request id and the CORS headers, and is logged and counted.

#include "actors/requests.hpp"
#include "http/problem.hpp"
#include "http/request_log.hpp"

#include <nlohmann/json.hpp>
#include <restinio/all.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace parley {

/// What every handler knows of its request once the prelude accepted it.
struct call_context {
  restinio::request_handle_t req;
  std::string request_id;
  std::string user_id;  ///< empty on the open routes (/health, /ready)
  header_list cors;     ///< for an Origin that server.cors_origins allows
  /// Logged and counted when the last copy of the context is gone.
  std::shared_ptr<request_record> record;
  /// An OpenAI-compatible route: problems go out in OpenAI's error shape.
  bool openai = false;
  /// Set while the server drains: answers close their connection, so that
  /// the client's (or the balancer's) next request goes to another instance.
  std::shared_ptr<const std::atomic<bool>> draining;
};

void send(const call_context& c, int status, restinio::writable_item_t body,
          const char* content_type, const header_list& headers = {});
void send_json(const call_context& c, int status, const nlohmann::json& body,
               const header_list& headers = {});
void send_problem(const call_context& c, const problem& p);
void send_no_content(const call_context& c, const header_list& headers = {});

std::string conversation_location(const std::string& id);

/// The answer to an exchange (create, send, regenerate) that succeeded; a
/// replay carries `headers` of its own.
void send_exchange(const call_context& c, const exchange_result& r, bool is_create,
                   header_list headers = {});

}  // namespace parley
