#include "http/json_mapping.hpp"

#include "base/json_text.hpp"
#include "base/uuid.hpp"

#include <charconv>
#include <utility>

namespace parley {

using nlohmann::json;

namespace {

json optional_string(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

}  // namespace

json to_json(const conversation_record& c) {
  auto metadata = json::parse(c.metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = json::object();
  return {
      {"id", c.id},
      {"user_id", c.user_id},
      {"title", optional_string(c.title)},
      {"model", c.model},
      {"system_prompt", optional_string(c.system_prompt)},
      {"metadata", std::move(metadata)},
      {"created_at", format_rfc3339(c.created_at)},
      {"updated_at", format_rfc3339(c.updated_at)},
      {"message_count", c.message_count},
      {"active_leaf_id", optional_string(c.active_leaf_id)},
      {"forked_from", c.forked_from_conversation_id
                          ? json{{"conversation_id", *c.forked_from_conversation_id},
                                 {"message_id", optional_string(c.forked_from_message_id)}}
                          : json()},
      {"usage",
       {{"prompt_tokens", c.usage.prompt_tokens},
        {"completion_tokens", c.usage.completion_tokens},
        {"total_tokens", c.usage.prompt_tokens + c.usage.completion_tokens},
        {"cost_usd", c.usage.cost_usd}}},
      {"context_strategy", optional_string(c.context_strategy)},
      {"running", c.running ? json{{"run_id", c.running->run_id},
                                   {"started_at", format_rfc3339(c.running->started_at)}}
                            : json()},
  };
}

json to_json(const summary_record& s) {
  return {{"id", s.id},
          {"conversation_id", s.conversation_id},
          {"covers_through_message_id", s.covers_through_message_id},
          {"content", s.content},
          {"model", s.model},
          {"created_at", format_rfc3339(s.created_at)},
          {"tokens_before", s.tokens_before},
          {"tokens_after", s.tokens_after}};
}

json to_json(const std::vector<summary_record>& summaries) {
  auto data = json::array();
  for (auto& s : summaries) data.push_back(to_json(s));
  return {{"data", std::move(data)}};
}

json branch_json(const std::optional<std::string>& active_leaf_id) {
  return {{"active_leaf_id", optional_string(active_leaf_id)}};
}

namespace {

/// A message as the API shows it, appended to `out`; the keys in json's
/// (sorted) order, as a tree of the same would dump them.
void append_message_json(std::string& out, const message_record& m) {
  out += "{\"content\":";
  append_json_string(out, m.content.view());
  out += ",\"conversation_id\":";
  append_json_string(out, m.conversation_id);
  out += ",\"created_at\":\"";
  out += format_rfc3339(m.created_at);
  out += "\",\"edited_at\":";
  if (m.edited_at) {
    out += '"';
    out += format_rfc3339(*m.edited_at);
    out += '"';
  } else {
    out += "null";
  }
  if (m.model) {
    out += ",\"finish_reason\":";
    if (m.finish_reason)
      append_json_string(out, *m.finish_reason);
    else
      out += "null";
  }
  out += ",\"id\":";
  append_json_string(out, m.id);
  if (m.model) {
    out += ",\"model\":";
    append_json_string(out, *m.model);
  }
  out += ",\"parent_id\":";
  if (m.parent_id)
    append_json_string(out, *m.parent_id);
  else
    out += "null";
  out += ",\"role\":";
  append_json_string(out, m.role);
  out += ",\"seq\":";
  out += std::to_string(m.seq);
  out += ",\"sibling_count\":";
  out += std::to_string(m.sibling_count);
  out += ",\"sibling_index\":";
  out += std::to_string(m.sibling_index);
  if (m.model) {
    out += ",\"usage\":{\"completion_tokens\":";
    out += std::to_string(m.completion_tokens.value_or(0));
    out += ",\"prompt_tokens\":";
    out += std::to_string(m.prompt_tokens.value_or(0));
    out += '}';
  }
  out += '}';
}

}  // namespace

std::string message_json(const message_record& m) {
  std::string out;
  out.reserve(m.content.size() + 320);
  append_message_json(out, m);
  return out;
}

std::string exchange_json(const exchange_result& r) {
  // A new conversation's fields and the messages share one object: the
  // messages are written in before its closing brace, as they are elsewhere.
  std::string out = r.conversation ? dump(to_json(*r.conversation)) : std::string("{}");
  out.pop_back();
  out.reserve(out.size() + (r.message ? r.message->content.size() : 0) +
              (r.reply ? r.reply->content.size() : 0) + 700);
  auto member = [&out](const char* name, const message_record& m) {
    if (out.size() > 1) out += ',';
    out.append("\"").append(name).append("\":");
    append_message_json(out, m);
  };
  if (r.message) member("message", *r.message);
  if (r.reply) member("reply", *r.reply);
  out += '}';
  return out;
}

void append_messages_json(std::string& out, const std::vector<message_record>& messages) {
  std::size_t size = out.size() + 2;
  for (auto& m : messages) size += m.content.size() + 320;
  out.reserve(size);
  out += '[';
  bool first = true;
  for (auto& m : messages) {
    if (!std::exchange(first, false)) out += ',';
    append_message_json(out, m);
  }
  out += ']';
}

std::string page_json(const message_page& page) {
  std::string out = "{\"data\":";
  append_messages_json(out, page.data);
  out += ",\"has_more\":";
  out += page.has_more ? "true" : "false";
  out += '}';
  return out;
}

json to_json(const conversation_page& page) {
  json data = json::array();
  for (auto& c : page.rows) data.push_back(to_json(c));
  return {{"data", std::move(data)},
          {"next_cursor", page.next ? json(encode_cursor(*page.next)) : json(nullptr)}};
}

json to_json(const model_registry& models) {
  json data = json::array();
  for (auto& m : models.all())
    data.push_back({{"id", m.id},
                    {"provider", m.provider},
                    {"context_window", m.context_window},
                    {"max_output_tokens", m.max_output_tokens},
                    {"input_price_per_mtok", m.input_price_per_mtok},
                    {"output_price_per_mtok", m.output_price_per_mtok},
                    {"default", m.is_default}});
  return {{"data", std::move(data)}};
}

json usage_to_json(const std::string& user_id, const std::string& from, const std::string& to,
                   const std::vector<usage_row>& rows) {
  auto totals = [](const usage_row& u) {
    return json{{"requests", u.requests},
                {"prompt_tokens", u.prompt_tokens},
                {"completion_tokens", u.completion_tokens},
                {"total_tokens", u.prompt_tokens + u.completion_tokens},
                {"cost_usd", u.cost_usd}};
  };
  usage_row total;
  json by_model = json::array();
  for (auto& r : rows) {
    total.requests += r.requests;
    total.prompt_tokens += r.prompt_tokens;
    total.completion_tokens += r.completion_tokens;
    total.cost_usd += r.cost_usd;
    auto entry = totals(r);
    entry["model"] = r.model;
    by_model.push_back(std::move(entry));
  }
  return {{"user_id", user_id},
          {"from", from},
          {"to", to},
          {"total", totals(total)},
          {"by_model", std::move(by_model)}};
}

// A cursor is "<updated_at>_<id>": the keyset position of the last row served.
std::string encode_cursor(const conversation_cursor& c) {
  return std::to_string(c.updated_at) + "_" + c.id;
}

std::optional<conversation_cursor> decode_cursor(const std::string& text) {
  auto sep = text.find('_');
  if (sep == std::string::npos || sep == 0) return std::nullopt;
  conversation_cursor c;
  auto [end, ec] = std::from_chars(text.data(), text.data() + sep, c.updated_at);
  if (ec != std::errc{} || end != text.data() + sep || c.updated_at < 0) return std::nullopt;
  c.id = text.substr(sep + 1);
  if (!is_canonical_uuid(c.id)) return std::nullopt;
  return c;
}

// A search cursor is "<score>_<key>": the keyset position of the last hit served.
std::string encode_search_cursor(const search_cursor& c) {
  return std::to_string(c.score) + "_" + c.key;
}

std::optional<search_cursor> decode_search_cursor(const std::string& text) {
  auto sep = text.find('_');
  if (sep == std::string::npos || sep == 0) return std::nullopt;
  search_cursor c;
  auto [end, ec] = std::from_chars(text.data(), text.data() + sep, c.score);
  if (ec != std::errc{} || end != text.data() + sep) return std::nullopt;
  c.key = text.substr(sep + 1);
  // A key is "m:" or "c:" and an id.
  if (c.key.size() < 2 || (c.key[0] != 'm' && c.key[0] != 'c') || c.key[1] != ':' ||
      !is_canonical_uuid(std::string_view(c.key).substr(2)))
    return std::nullopt;
  return c;
}

json to_json(const import_summary& summary) {
  json errors = json::array();
  for (auto& [index, detail] : summary.errors)
    errors.push_back({{"index", index}, {"detail", detail}});
  return {{"imported", summary.imported},
          {"skipped", summary.skipped},
          {"conversations", summary.conversations},
          {"errors", std::move(errors)}};
}

json to_json(const search_page& page) {
  json data = json::array();
  for (auto& h : page.hits)
    data.push_back({{"type", h.title ? "conversation" : "message"},
                    {"conversation_id", h.conversation_id},
                    {"conversation_title", optional_string(h.conversation_title)},
                    {"message_id", optional_string(h.message_id)},
                    {"seq", h.seq ? json(*h.seq) : json()},
                    {"role", optional_string(h.role)},
                    {"created_at", format_rfc3339(h.created_at)},
                    {"snippet", snippet_html(h.snippet)}});
  return {{"data", std::move(data)},
          {"next_cursor", page.next ? json(encode_search_cursor(*page.next)) : json()}};
}

namespace {

/// The characters of a snippet: text (one code point, escaped as HTML) or a mark.
struct snippet_piece {
  enum { text, open, close } kind;
  std::string html;
};

std::vector<snippet_piece> snippet_pieces(std::string_view raw) {
  std::vector<snippet_piece> out;
  for (std::size_t at = 0; at < raw.size();) {
    auto rest = raw.substr(at);
    if (rest.starts_with(search_mark_open) || rest.starts_with(search_mark_close)) {
      out.push_back(
          {rest.starts_with(search_mark_open) ? snippet_piece::open : snippet_piece::close, {}});
      at += search_mark_open.size();
      continue;
    }
    // One code point: its lead byte and what continues it.
    auto n = std::size_t{1};
    while (at + n < raw.size() && (static_cast<unsigned char>(raw[at + n]) & 0xC0) == 0x80) ++n;
    std::string html;
    switch (raw[at]) {
      case '&':
        html = "&amp;";
        break;
      case '<':
        html = "&lt;";
        break;
      case '>':
        html = "&gt;";
        break;
      case '"':
        html = "&quot;";
        break;
      case '\'':
        html = "&#39;";
        break;
      default:
        html.assign(raw.substr(at, n));
    }
    out.push_back({snippet_piece::text, std::move(html)});
    at += n;
  }
  return out;
}

}  // namespace

std::string snippet_html(std::string_view raw, std::size_t max_chars) {
  auto pieces = snippet_pieces(raw);
  std::size_t chars = 0, first_mark = pieces.size();
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].kind == snippet_piece::text)
      ++chars;
    else if (first_mark == pieces.size())
      first_mark = i;
  }
  // Too long: a window that starts a little before the first match.
  std::size_t begin = 0, end = pieces.size();
  if (chars > max_chars) {
    std::size_t lead = 0;
    begin = first_mark == pieces.size() ? 0 : first_mark;
    while (begin > 0 && lead < max_chars / 4) {
      --begin;
      if (pieces[begin].kind == snippet_piece::text) ++lead;
    }
    std::size_t taken = 0;
    for (end = begin; end < pieces.size() && taken < max_chars; ++end)
      if (pieces[end].kind == snippet_piece::text) ++taken;
  }
  std::string out = begin > 0 ? "\u2026" : "";
  bool marked = false;
  // Marks are written only in pairs that open before they close.
  for (auto i = begin; i < end; ++i) {
    auto& p = pieces[i];
    if (p.kind == snippet_piece::text) {
      out += p.html;
    } else if (p.kind == snippet_piece::open && !marked) {
      out += "<mark>";
      marked = true;
    } else if (p.kind == snippet_piece::close && marked) {
      out += "</mark>";
      marked = false;
    }
  }
  if (marked) out += "</mark>";
  if (end < pieces.size()) out += "\u2026";
  return out;
}

}  // namespace parley
