#include "http/problem.hpp"

#include "base/json_text.hpp"

#include <nlohmann/json.hpp>

namespace parley {

problem make_problem(int status, std::string detail) {
  problem p;
  p.status = status;
  p.detail = std::move(detail);
  return p;
}

problem invalid_field(std::string field, std::string message) {
  problem p = make_problem(422, "the request is invalid: " + field + " " + message);
  p.errors.push_back({std::move(field), std::move(message)});
  return p;
}

problem to_problem(const failure& f) {
  problem p;
  p.detail = f.detail;
  p.message_id = f.message_id;
  p.retry_after_s = f.retry_after_s;
  switch (f.code) {
    case errc::not_found:
      p.status = 404;
      break;
    case errc::unauthenticated:
      p.status = 401;
      break;
    case errc::invalid_argument:
      p.status = 422;
      p.errors.push_back({f.field, f.detail});
      break;
    case errc::conflict:
      p.status = 409;
      break;
    case errc::queue_full:
    case errc::rate_limited:
      p.status = 429;
      if (!p.retry_after_s) p.retry_after_s = 1;
      break;
    case errc::db_unavailable:
    case errc::overloaded:
      p.status = 503;
      if (!p.retry_after_s) p.retry_after_s = 1;
      break;
    case errc::provider_error:
      p.status = 502;
      break;
    case errc::provider_timeout:
      p.status = 504;
      break;
    case errc::none:
    case errc::internal:
      // Never a 500 for a client's input: an internal failure means the engine
      // could not complete the operation now.
      p.status = 503;
      p.retry_after_s = 1;
      if (p.detail.empty()) p.detail = "the engine could not complete the request";
      break;
  }
  return p;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 426:
      return "Upgrade Required";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

nlohmann::json problem_json(const problem& p, const std::string& request_id) {
  nlohmann::json body = {
      {"type", "about:blank"}, {"title", reason_phrase(p.status)}, {"status", p.status},
      {"detail", p.detail},    {"request_id", request_id},
  };
  if (!p.errors.empty()) {
    auto& errors = body["errors"] = nlohmann::json::array();
    for (auto& e : p.errors) errors.push_back({{"field", e.field}, {"message", e.message}});
  }
  if (!p.message_id.empty()) body["message_id"] = p.message_id;
  return body;
}

std::string render_problem(const problem& p, const std::string& request_id) {
  return dump(problem_json(p, request_id));
}

int openai_status(const problem& p) { return p.status == 422 ? 400 : p.status; }

nlohmann::json openai_error_json(const problem& p) {
  auto status = openai_status(p);
  // OpenAI's own types: the SDKs choose their error class by status, and
  // clients that log or branch read `type`.
  const char* type = status == 401   ? "authentication_error"
                     : status == 403 ? "permission_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  nlohmann::json param = nullptr;
  if (!p.errors.empty()) param = p.errors.front().field;
  nlohmann::json code = nullptr;
  if (!p.code.empty()) code = p.code;
  auto message = p.detail.empty() ? std::string(reason_phrase(status)) : p.detail;
  nlohmann::json error{{"message", message}, {"type", type}, {"param", param}, {"code", code}};
  // A provider failure names the user message that stays stored, as
  // Parley's problems do: the SDKs keep unknown fields.
  if (!p.message_id.empty()) error["message_id"] = p.message_id;
  return {{"error", std::move(error)}};
}

}  // namespace parley
