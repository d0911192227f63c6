#include "support/http_client.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>

namespace parley::testing {

nlohmann::json http_response::json() const { return nlohmann::json::parse(body, nullptr, false); }

std::string http_response::header(const std::string& name) const {
  auto i = headers.find(name);
  return i == headers.end() ? "" : i->second;
}

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

}  // namespace

size_t collect_header(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    auto name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
  }
  return size * n;
}

int raw_connect(std::uint16_t port, int receive_buffer) {
  // The server may close a raw socket under our writes (a timeout, a
  // refusal): the write then fails with EPIPE instead of killing the test.
  std::signal(SIGPIPE, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  if (receive_buffer > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("cannot connect to port " + std::to_string(port));
  }
  return fd;
}

int raw_post(std::uint16_t port, const std::string& path, const std::string& body,
             const std::string& user, int receive_buffer) {
  int fd = raw_connect(port, receive_buffer);
  auto request =
      "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-Id: " + user +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    throw std::runtime_error("POST " + path + " over a plain socket failed");
  }
  return fd;
}

http_client::http_client(std::string base_url, std::string user_id)
    : base_url_(std::move(base_url)), user_id_(std::move(user_id)), curl_(curl_easy_init()) {
  if (!curl_) throw std::runtime_error("curl_easy_init failed");
}

http_client::~http_client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

http_response http_client::request(const std::string& method, const std::string& path,
                                   const std::string& body, std::vector<std::string> headers) {
  auto curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  http_response out;
  auto has = [&](const char* prefix) {
    return std::any_of(headers.begin(), headers.end(), [&](const std::string& h) {
      return strncasecmp(h.c_str(), prefix, std::strlen(prefix)) == 0;
    });
  };
  if (!user_id_.empty() && !has("X-User-Id:")) headers.push_back("X-User-Id: " + user_id_);
  if (!body.empty() && !has("Content-Type:")) headers.push_back("Content-Type: application/json");
  headers.push_back("Expect:");  // no 100-continue round trip for large bodies
  curl_slist* list = nullptr;
  for (auto& h : headers) list = curl_slist_append(list, h.c_str());
  auto url = base_url_ + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty() || method == "POST" || method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  auto rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) throw std::runtime_error(method + " " + path + ": " + curl_easy_strerror(rc));
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  return out;
}

http_response http_client::get(const std::string& path, std::vector<std::string> headers) {
  return request("GET", path, "", std::move(headers));
}

http_response http_client::del(const std::string& path, std::vector<std::string> headers) {
  return request("DELETE", path, "", std::move(headers));
}

http_response http_client::post(const std::string& path, const nlohmann::json& body,
                                std::vector<std::string> headers) {
  return request("POST", path, body.is_null() ? "" : body.dump(), std::move(headers));
}

http_response http_client::patch(const std::string& path, const nlohmann::json& body,
                                 std::vector<std::string> headers) {
  return request("PATCH", path, body.dump(), std::move(headers));
}

bool closed_within(int fd, std::chrono::milliseconds timeout, std::string* received) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    auto n = read(fd, buf, sizeof buf);
    if (n <= 0) return true;
    if (received) received->append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace parley::testing
