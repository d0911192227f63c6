#include "http/responses.hpp"

#include "http/json_mapping.hpp"

namespace parley {

void send(const call_context& c, int status, restinio::writable_item_t body,
          const char* content_type, const header_list& headers) {
  auto resp = c.req->create_response(restinio::http_status_line_t{
      restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, reason_phrase(status)});
  resp.append_header("X-Request-Id", c.request_id);
  for (auto& [name, value] : c.cors) resp.append_header(name, value);
  for (auto& [name, value] : headers) resp.append_header(name, value);
  // RESTinio would hand a refused upgrade request to the handler again.
  if (c.req->header().connection() == restinio::http_connection_header_t::upgrade ||
      (c.draining && c.draining->load()))
    resp.connection_close();
  if (status != 204) {
    resp.append_header(restinio::http_field::content_type, content_type);
    resp.set_body(std::move(body));
  }
  resp.done();
  c.record->answered(status);
}

void send_json(const call_context& c, int status, const nlohmann::json& body,
               const header_list& headers) {
  send(c, status, dump(body), "application/json", headers);
}

void send_problem(const call_context& c, const problem& p) {
  auto headers = p.headers;
  if (p.retry_after_s) headers.emplace_back("Retry-After", std::to_string(*p.retry_after_s));
  if (p.status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  if (c.openai)
    send(c, openai_status(p), dump(openai_error_json(p)), "application/json", headers);
  else
    send(c, p.status, render_problem(p, c.request_id), "application/problem+json", headers);
}

void send_no_content(const call_context& c, const header_list& headers) {
  send(c, 204, {}, "", headers);
}

std::string conversation_location(const std::string& id) { return "/v1/conversations/" + id; }

void send_exchange(const call_context& c, const exchange_result& r, bool is_create,
                   header_list headers) {
  if (is_create && r.conversation)
    headers.emplace_back("Location", conversation_location(r.conversation->id));
  send(c, 201, exchange_json(r), "application/json", headers);
}

}  // namespace parley
