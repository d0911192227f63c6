#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace parley::testing {

/// One server-sent event as the client read it, with when it arrived.
struct sse_event_read {
  std::string name;
  std::string id;       ///< its `id:` line, if any
  nlohmann::json data;  ///< discarded when the data is not JSON
  std::chrono::steady_clock::time_point at;
};

struct sse_result {
  long status = 0;
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::vector<sse_event_read> events;
  int comments = 0;      ///< lines starting with ':' (keep-alives)
  std::string body;      ///< everything received, as received
  bool aborted = false;  ///< the client hung up (keep_reading said no)
  std::chrono::steady_clock::time_point started;
};

/// POSTs `body` to `base_url + path` and reads the answer incrementally as
/// text/event-stream (or as a plain body when it is not one). After every
/// event `keep_reading` decides whether to go on; returning false closes the
/// connection at once, as a client that goes away would.
sse_result sse_post(const std::string& base_url, const std::string& path,
                    const nlohmann::json& body, const std::string& user_id = "",
                    std::function<bool(const sse_result&)> keep_reading = {},
                    std::vector<std::string> headers = {});

/// The same for a GET (a resumed stream): `headers` such as Last-Event-ID.
sse_result sse_get(const std::string& base_url, const std::string& path,
                   const std::string& user_id = "",
                   std::function<bool(const sse_result&)> keep_reading = {},
                   std::vector<std::string> headers = {});

}  // namespace parley::testing
