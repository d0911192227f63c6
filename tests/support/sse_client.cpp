#include "support/sse_client.hpp"

#include "support/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace parley::testing {

namespace {

struct reading {
  sse_result result;
  std::string pending;  ///< bytes after the last complete event
  std::function<bool(const sse_result&)> keep_reading;
};

/// Takes every complete event (a block ending in a blank line) out of `r.pending`.
bool take_events(reading& r) {
  for (;;) {
    auto end = r.pending.find("\n\n");
    if (end == std::string::npos) return true;
    auto block = r.pending.substr(0, end);
    r.pending.erase(0, end + 2);
    sse_event_read e;
    e.at = std::chrono::steady_clock::now();
    std::string data;
    bool any = false;
    std::size_t pos = 0;
    while (pos <= block.size()) {
      auto nl = std::min(block.find('\n', pos), block.size());
      auto line = block.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.empty()) continue;
      if (line[0] == ':') {
        ++r.result.comments;
        continue;
      }
      if (line.rfind("event: ", 0) == 0) e.name = line.substr(7), any = true;
      if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
      if (line.rfind("data: ", 0) == 0) data += line.substr(6), any = true;
    }
    if (!any) continue;
    e.data = nlohmann::json::parse(data, nullptr, false);
    r.result.events.push_back(std::move(e));
    if (r.keep_reading && !r.keep_reading(r.result)) return false;
  }
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto& r = *static_cast<reading*>(user);
  r.result.body.append(data, size * n);
  r.pending.append(data, size * n);
  if (!take_events(r)) {
    r.result.aborted = true;
    return 0;  // libcurl closes the connection
  }
  return size * n;
}

/// POSTs `body`, or GETs when there is none.
sse_result sse_request(const std::string& base_url, const std::string& path,
                       const std::optional<nlohmann::json>& body, const std::string& user_id,
                       std::function<bool(const sse_result&)> keep_reading,
                       std::vector<std::string> headers) {
  reading r;
  r.keep_reading = std::move(keep_reading);
  r.result.started = std::chrono::steady_clock::now();
  auto curl = curl_easy_init();
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  if (body) headers.push_back("Content-Type: application/json");
  if (!user_id.empty()) headers.push_back("X-User-Id: " + user_id);
  curl_slist* list = nullptr;
  for (auto& h : headers) list = curl_slist_append(list, h.c_str());
  auto url = base_url + path;
  auto text = body ? body->dump() : std::string();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  if (body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(text.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.result.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  auto rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.result.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && r.result.aborted))
    throw std::runtime_error(std::string(body ? "POST " : "GET ") + path + ": " +
                             curl_easy_strerror(rc));
  return r.result;
}

}  // namespace

sse_result sse_post(const std::string& base_url, const std::string& path,
                    const nlohmann::json& body, const std::string& user_id,
                    std::function<bool(const sse_result&)> keep_reading,
                    std::vector<std::string> headers) {
  return sse_request(base_url, path, body, user_id, std::move(keep_reading), std::move(headers));
}

sse_result sse_get(const std::string& base_url, const std::string& path, const std::string& user_id,
                   std::function<bool(const sse_result&)> keep_reading,
                   std::vector<std::string> headers) {
  return sse_request(base_url, path, std::nullopt, user_id, std::move(keep_reading),
                     std::move(headers));
}

}  // namespace parley::testing
