#include "http/openai_streams.hpp"

#include "base/json_text.hpp"

namespace parley {

using nlohmann::json;

namespace {

std::string data_line(const json& j) { return "data: " + dump(j) + "\n\n"; }

class chat_chunks final : public sse_format {
 public:
  chat_chunks(std::string id, unix_ms created, std::string model, bool include_usage)
      : id_(std::move(id)),
        created_(created),
        model_(std::move(model)),
        include_usage_(include_usage) {}

  std::string event(const conversation_event& e) override {
    using kind = conversation_event::kind;
    if (e.type == kind::started) return role_once();
    if (e.type == kind::delta) {
      if (e.message && e.message->model) model_ = *e.message->model;
      return role_once() + data_line(chunk({{"content", e.text}}, nullptr));
    }
    if (e.type != kind::done) return {};
    auto& m = *e.message;
    if (m.model) model_ = *m.model;
    auto reason = openai_finish_reason(m.finish_reason.value_or("stop"));
    auto out = role_once() + data_line(chunk(json::object(), reason));
    if (include_usage_) {
      completion_usage u{m.prompt_tokens.value_or(0), m.completion_tokens.value_or(0)};
      out += data_line(chat_chunk_json(id_, created_, model_, nullptr, nullptr, &u));
    }
    return out + "data: [DONE]\n\n";
  }

  std::string failure(const problem& p, const std::string&) override {
    return data_line(openai_error_json(p));
  }

 private:
  json chunk(json delta, const char* finish) {
    return chat_chunk_json(id_, created_, model_, std::move(delta), finish);
  }
  /// The first chunk names the role, as OpenAI's do.
  std::string role_once() {
    if (std::exchange(role_sent_, true)) return {};
    return data_line(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  }

  const std::string id_;
  const unix_ms created_;
  std::string model_;
  const bool include_usage_;
  bool role_sent_ = false;
};

class response_events final : public sse_format {
 public:
  explicit response_events(std::shared_ptr<const response_view> base) : base_(std::move(base)) {}

  std::string event(const conversation_event& e) override {
    using kind = conversation_event::kind;
    std::string out = created_once(e);
    if (e.type == kind::delta) {
      view_.text += e.text;
      out += next(
          "response.output_text.delta",
          {{"item_id", view_.id}, {"output_index", 0}, {"content_index", 0}, {"delta", e.text}});
    } else if (e.type == kind::done) {
      view_ = with_reply(std::move(view_), *e.message);
      out += next(
          "response.output_text.done",
          {{"item_id", view_.id}, {"output_index", 0}, {"content_index", 0}, {"text", view_.text}});
      out += next("response.completed", {{"response", response_json(view_)}});
    }
    return out;
  }

  std::string failure(const problem& p, const std::string&) override {
    if (!created_sent_) view_ = *base_;
    view_.status = "failed";
    view_.error = p;
    return next("response.failed", {{"response", response_json(view_)}});
  }

 private:
  std::string created_once(const conversation_event& e) {
    if (std::exchange(created_sent_, true)) return {};
    view_ = *base_;
    // A new conversation's id is known once its first message is stored.
    if (!view_.conversation_id && view_.store && e.message)
      view_.conversation_id = e.message->conversation_id;
    auto shown = view_;
    shown.status = "in_progress";
    return next("response.created", {{"response", response_json(shown)}});
  }
  std::string next(const char* type, json fields) {
    fields["type"] = type;
    fields["sequence_number"] = sequence_++;
    return sse_event(type, dump(fields));
  }

  const std::shared_ptr<const response_view> base_;
  response_view view_;
  std::int64_t sequence_ = 0;
  bool created_sent_ = false;
};

}  // namespace

std::unique_ptr<sse_format> chat_chunk_format(std::string id, unix_ms created, std::string model,
                                              bool include_usage) {
  return std::make_unique<chat_chunks>(std::move(id), created, std::move(model), include_usage);
}

std::unique_ptr<sse_format> response_event_format(std::shared_ptr<const response_view> base) {
  return std::make_unique<response_events>(std::move(base));
}

}  // namespace parley
