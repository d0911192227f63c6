#include "http/export_stream.hpp"

#include "http/export_formats.hpp"
#include "http/problem.hpp"

namespace parley {

export_stream::export_stream(call_context c, engine& eng, unsigned page_size)
    : c_(std::move(c)), engine_(eng), page_size_(page_size) {}

void export_stream::start() { read_next(); }

void export_stream::read_next() {
  engine_.export_page(c_.user_id, after_, page_size_,
                      [self = shared_from_this()](auto page) { self->on_page(std::move(page)); });
}

void export_stream::on_page(outcome<std::vector<conversation_export>> page) {
  if (!page) {
    auto p = to_problem(page.error());
    if (!response_) {
      send_problem(c_, p);
      return;
    }
    response_->append_chunk("{\"error\":" + render_problem(p, c_.request_id) + "}\n");
    response_->done();
    return;
  }
  if (!response_) {
    c_.record->set_status(200);
    response_.emplace(c_.req->create_response<restinio::chunked_output_t>());
    response_->append_header("X-Request-Id", c_.request_id);
    for (auto& [name, value] : c_.cors) response_->append_header(name, value);
    response_->append_header(restinio::http_field::content_type, "application/x-ndjson");
    response_->append_header(restinio::http_field::cache_control, "no-cache");
  }
  std::string lines;
  for (auto& e : *page) {
    lines += export_json(e);
    lines += '\n';
  }
  if (!page->empty()) after_ = page->back().conversation.id;
  if (page->size() < page_size_) {
    if (!lines.empty()) response_->append_chunk(std::move(lines));
    response_->done();
    return;
  }
  response_->append_chunk(std::move(lines));
  // The next page once these bytes are with the socket (or the client is gone).
  response_->flush([self = shared_from_this()](const asio::error_code& error) {
    if (!error) self->read_next();
  });
}

}  // namespace parley
