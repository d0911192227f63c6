#include "http/import_formats.hpp"

#include "base/clock.hpp"
#include "base/uuid.hpp"
#include "http/field_checker.hpp"
#include "http/request_parsing.hpp"
#include "providers/token_estimator.hpp"

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace parley {

using nlohmann::json;

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/// Where the JSON value starting at `at` ends (one past it); the end of
/// `text` when it does not end.
std::size_t value_end(std::string_view text, std::size_t at) {
  int depth = 0;
  auto end = text.size();
  scan_json(text, at, [&](std::size_t i, char c) {
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0)
        end = i;  // a scalar ends at its array's end
      else if (--depth == 0)
        end = i + 1;
    } else if (depth == 0 && (c == ',' || is_space(c))) {
      end = i;  // a scalar ends here
    }
    return end == text.size();
  });
  return end;
}

/// The first failing check's detail, kept while the rest are skipped.
struct problem_list {
  std::optional<std::string> first;
  void fail(std::string detail) {
    if (!first) first = std::move(detail);
  }
};

/// SHA-256 of `text` in hex: the source of a conversation that names none.
std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

bool known_role(const std::string& role) {
  return role == "user" || role == "assistant" || role == "system";
}

/// Fills in what follows from the messages: the active leaf (the newest
/// leaf under `wanted`, or under the newest message when it names none),
/// the active branch's length, the highest seq. `messages` in seq order.
void settle_tree(imported_conversation& out, std::optional<std::string> wanted) {
  auto& meta = out.row;
  std::unordered_map<std::string, const message_record*> by_id;
  std::unordered_map<std::string, const message_record*> newest_child;
  for (auto& m : out.messages) {
    by_id[m.id] = &m;
    if (m.parent_id) newest_child[*m.parent_id] = &m;  // seq order: the last is the newest
  }
  meta.last_seq = out.messages.empty() ? 0 : out.messages.back().seq;
  if (out.messages.empty()) {
    meta.active_leaf_id.reset();
    meta.message_count = 0;
    return;
  }
  const message_record* leaf =
      wanted && by_id.count(*wanted) ? by_id[*wanted] : &out.messages.back();
  for (auto child = newest_child.find(leaf->id); child != newest_child.end();
       child = newest_child.find(leaf->id))
    leaf = child->second;
  meta.active_leaf_id = leaf->id;
  meta.message_count = 0;
  for (auto* m = leaf; m; m = m->parent_id ? by_id[*m->parent_id] : nullptr) ++meta.message_count;
  // Siblings' places, as the database would count them.
  std::map<std::optional<std::string>, std::int64_t> children;
  for (auto& m : out.messages) ++children[m.parent_id];
  std::map<std::optional<std::string>, std::int64_t> seen;
  for (auto& m : out.messages) {
    m.sibling_index = ++seen[m.parent_id];
    m.sibling_count = children[m.parent_id];
  }
}

conversation_record new_row(const import_context& ctx) {
  conversation_record row;
  row.id = make_uuid_v7();
  row.user_id = ctx.user_id;
  row.model = ctx.models ? ctx.models->default_model().id : "echo";
  row.created_at = row.updated_at = ctx.now;
  return row;
}

// --- Parley's own format ---------------------------------------------------------

std::optional<unix_ms> timestamp(const json& j, const char* field, problem_list& problems,
                                 const std::string& where) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  auto t = it->is_string() ? parse_rfc3339(it->get<std::string>()) : std::nullopt;
  if (!t) problems.fail(where + "." + field + " is not an RFC 3339 timestamp");
  return t;
}

std::optional<std::string> optional_text(const json& j, const char* field, problem_list& problems,
                                         const std::string& where) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    problems.fail(where + "." + field + " is not a string");
    return std::nullopt;
  }
  // PostgreSQL's text cannot hold U+0000 (libpq would cut the string there).
  if (it->get_ref<const std::string&>().find('\0') != std::string::npos) {
    problems.fail(where + "." + field + " contains the character U+0000");
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<std::int64_t> optional_count(const json& j, const char* field, problem_list& problems,
                                           const std::string& where) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
    problems.fail(where + "." + field + " is not a count");
    return std::nullopt;
  }
  return it->get<std::int64_t>();
}

outcome<imported_conversation> from_parley(const json& j, std::string_view text,
                                           const import_context& ctx) {
  problem_list problems;
  auto c = j.find("conversation");
  auto list = j.find("messages");
  if (c == j.end() || !c->is_object())
    return failure{errc::invalid_argument, "conversation is missing"};
  if (list == j.end() || !list->is_array())
    return failure{errc::invalid_argument, "messages is missing"};
  imported_conversation out;
  auto source_id = optional_text(*c, "id", problems, "conversation");
  out.source = source_id ? "parley:" + *source_id : "parley:sha256:" + sha256_hex(text);
  auto& row = out.row = new_row(ctx);
  row.title = optional_text(*c, "title", problems, "conversation");
  if (row.title && count_code_points(*row.title) > max_title_chars)
    problems.fail("conversation.title is longer than 200 characters");
  if (auto model = optional_text(*c, "model", problems, "conversation");
      model && (!ctx.models || ctx.models->find(*model)))
    row.model = *model;
  row.system_prompt = optional_text(*c, "system_prompt", problems, "conversation");
  if (auto m = c->find("metadata"); m != c->end() && !m->is_null()) {
    bool ok = m->is_object() && m->size() <= max_metadata_entries;
    if (ok)
      for (auto& [k, v] : m->items()) ok = ok && v.is_string();
    if (ok)
      row.metadata_json = m->dump();
    else
      problems.fail("conversation.metadata is not an object of at most 32 string values");
  }
  row.created_at = timestamp(*c, "created_at", problems, "conversation").value_or(ctx.now);
  row.updated_at = timestamp(*c, "updated_at", problems, "conversation").value_or(row.created_at);
  if (auto u = c->find("usage"); u != c->end() && u->is_object()) {
    row.usage.prompt_tokens = optional_count(*u, "prompt_tokens", problems, "usage").value_or(0);
    row.usage.completion_tokens =
        optional_count(*u, "completion_tokens", problems, "usage").value_or(0);
    if (auto cost = u->find("cost_usd"); cost != u->end() && cost->is_number())
      row.usage.cost_usd = cost->get<double>();
  }
  if (auto f = c->find("forked_from"); f != c->end() && f->is_object()) {
    row.forked_from_conversation_id = optional_text(*f, "conversation_id", problems, "forked_from");
    row.forked_from_message_id = optional_text(*f, "message_id", problems, "forked_from");
  }

  // The messages, in seq order, each parent before its children.
  std::vector<const json*> ordered;
  for (auto& m : *list) {
    if (!m.is_object() || !m.contains("seq") || !m["seq"].is_number_integer() ||
        m["seq"].get<std::int64_t>() < 1) {
      problems.fail("every message needs a seq of 1 or more");
      break;
    }
    ordered.push_back(&m);
  }
  if (problems.first) return failure{errc::invalid_argument, *problems.first};
  std::stable_sort(ordered.begin(), ordered.end(), [](const json* a, const json* b) {
    return (*a)["seq"].get<std::int64_t>() < (*b)["seq"].get<std::int64_t>();
  });
  std::unordered_map<std::string, std::string> new_id;  // exported id -> ours
  std::int64_t last_seq = 0;
  for (auto* m : ordered) {
    auto seq = (*m)["seq"].get<std::int64_t>();
    auto where = "message " + std::to_string(seq);
    if (seq == last_seq) {
      problems.fail("two messages have seq " + std::to_string(seq));
      break;
    }
    last_seq = seq;
    message_record r;
    auto old_id = optional_text(*m, "id", problems, where);
    if (!old_id) problems.fail(where + " has no id");
    r.id = make_uuid_v7();
    r.conversation_id = row.id;
    r.seq = seq;
    r.role = optional_text(*m, "role", problems, where).value_or("");
    if (!known_role(r.role)) problems.fail(where + ".role is not user, assistant or system");
    auto content = optional_text(*m, "content", problems, where);
    if (!content || content->empty()) problems.fail(where + ".content is missing or empty");
    // No length limit: a reply may be longer than a user may send.
    if (content) r.content = *content;
    r.created_at = timestamp(*m, "created_at", problems, where).value_or(row.created_at);
    r.edited_at = timestamp(*m, "edited_at", problems, where);
    if (auto parent = optional_text(*m, "parent_id", problems, where)) {
      auto found = new_id.find(*parent);
      if (found == new_id.end())
        problems.fail(where + ".parent_id names no earlier message");
      else
        r.parent_id = found->second;
    }
    r.model = optional_text(*m, "model", problems, where);
    r.finish_reason = optional_text(*m, "finish_reason", problems, where);
    if (r.finish_reason && *r.finish_reason != "stop" && *r.finish_reason != "length" &&
        *r.finish_reason != "cancelled")
      problems.fail(where + ".finish_reason is not stop, length or cancelled");
    if (auto u = m->find("usage"); u != m->end() && u->is_object()) {
      r.prompt_tokens = optional_count(*u, "prompt_tokens", problems, where + ".usage");
      r.completion_tokens = optional_count(*u, "completion_tokens", problems, where + ".usage");
    }
    if (problems.first) break;
    new_id[*old_id] = r.id;
    out.messages.push_back(std::move(r));
  }
  if (problems.first) return failure{errc::invalid_argument, *problems.first};
  std::optional<std::string> leaf;
  if (auto l = c->find("active_leaf_id"); l != c->end() && l->is_string())
    if (auto found = new_id.find(l->get<std::string>()); found != new_id.end())
      leaf = found->second;
  settle_tree(out, leaf);
  return out;
}

// --- ChatGPT's conversations.json ---------------------------------------------------

/// A message's text: its string parts joined by newlines (images and other
/// attachments are left out), or a code block's text.
std::string chatgpt_text(const json& content) {
  if (!content.is_object()) return {};
  auto type_field = content.find("content_type");
  auto type = type_field != content.end() && type_field->is_string()
                  ? type_field->get<std::string>()
                  : std::string();
  std::string out;
  if (type == "text" || type == "multimodal_text") {
    if (auto parts = content.find("parts"); parts != content.end() && parts->is_array())
      for (auto& part : *parts)
        if (part.is_string() && !part.get_ref<const std::string&>().empty()) {
          if (!out.empty()) out += '\n';
          out += part.get<std::string>();
        }
  } else if (type == "code") {
    if (auto t = content.find("text"); t != content.end() && t->is_string())
      out = t->get<std::string>();
  }
  return out;
}

std::optional<unix_ms> chatgpt_time(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  auto seconds = it->get<double>();
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e11) return std::nullopt;
  return static_cast<unix_ms>(seconds * 1000);
}

outcome<imported_conversation> from_chatgpt(const json& j, std::string_view text,
                                            const import_context& ctx) {
  auto mapping = j.find("mapping");
  if (mapping == j.end() || !mapping->is_object())
    return failure{errc::invalid_argument, "mapping is missing"};
  imported_conversation out;
  std::string source_id;
  for (auto field : {"conversation_id", "id"})
    if (auto it = j.find(field);
        it != j.end() && it->is_string() &&
        it->get_ref<const std::string&>().find('\0') == std::string::npos) {
      source_id = it->get<std::string>();
      break;
    }
  out.source = source_id.empty() ? "chatgpt:sha256:" + sha256_hex(text) : "chatgpt:" + source_id;
  auto& row = out.row = new_row(ctx);
  if (auto t = j.find("title"); t != j.end() && t->is_string()) {
    auto title = t->get<std::string>();
    // A title longer than ours allows is cut, not refused: it is the user's data.
    std::size_t chars = 0, end = 0;
    while (end < title.size() && chars < max_title_chars) {
      ++end;
      while (end < title.size() && (static_cast<unsigned char>(title[end]) & 0xC0) == 0x80) ++end;
      ++chars;
    }
    title.resize(end);
    if (title.find('\0') == std::string::npos) row.title = title;
  }
  row.created_at = chatgpt_time(j, "create_time").value_or(ctx.now);
  row.updated_at = chatgpt_time(j, "update_time").value_or(row.created_at);

  // Each node: its parent, whether it is kept (a visible message with text),
  // its text and role.
  struct node {
    std::optional<std::string> parent;
    bool kept = false;
    std::string role, text;
    std::optional<unix_ms> created;
  };
  std::unordered_map<std::string, node> nodes;
  for (auto& [key, value] : mapping->items()) {
    if (!value.is_object())
      return failure{errc::invalid_argument, "node " + key + " is not an object"};
    node n;
    if (auto p = value.find("parent"); p != value.end() && p->is_string())
      n.parent = p->get<std::string>();
    if (auto m = value.find("message"); m != value.end() && m->is_object()) {
      auto author = m->find("author");
      if (author != m->end() && author->is_object())
        if (auto role = author->find("role"); role != author->end() && role->is_string())
          n.role = role->get<std::string>();
      bool hidden = false;
      if (auto meta = m->find("metadata"); meta != m->end() && meta->is_object())
        if (auto h = meta->find("is_visually_hidden_from_conversation");
            h != meta->end() && h->is_boolean())
          hidden = h->get<bool>();
      if (auto content = m->find("content"); content != m->end()) n.text = chatgpt_text(*content);
      n.created = chatgpt_time(*m, "create_time");
      // Text PostgreSQL cannot store (U+0000) is no message to show either.
      n.kept = !hidden && known_role(n.role) && !n.text.empty() &&
               n.text.find('\0') == std::string::npos;
    }
    nodes.emplace(key, std::move(n));
  }
  // The kept ancestor of a node, remembered for every node on the way up so
  // that a long run of skipped nodes is walked once; a loop in the parents
  // breaks the conversation.
  std::unordered_map<std::string, std::optional<std::string>> ancestor;
  auto kept_parent = [&](const std::string& id) -> outcome<std::optional<std::string>> {
    std::vector<std::string> walked;
    std::optional<std::string> found;
    for (auto at = nodes.find(id);;) {
      if (walked.size() > nodes.size())
        return failure{errc::invalid_argument, "the parents of node " + id + " form a loop"};
      if (!at->second.parent) break;
      if (auto known = ancestor.find(at->first); known != ancestor.end()) {
        found = known->second;
        break;
      }
      walked.push_back(at->first);
      auto up = nodes.find(*at->second.parent);
      if (up == nodes.end()) break;
      if (up->second.kept) {
        found = up->first;
        break;
      }
      at = up;
    }
    for (auto& w : walked) ancestor[w] = found;
    return found;
  };
  // Each kept node's kept parent, its depth and its time: its own, or else
  // its parent's (the conversation's at a root), and never before its
  // parent's, so that ordering by time puts parents first.
  struct placed {
    std::optional<std::string> parent;
    std::size_t depth = 0;
    unix_ms time = 0;
    std::size_t position = 0;  ///< among its original parent's children
    bool done = false;
  };
  std::unordered_map<std::string, placed> place;
  for (auto& [id, n] : nodes) {
    if (!n.kept) continue;
    auto parent = kept_parent(id);
    if (!parent) return parent.error();
    place[id].parent = *parent;
  }
  for (auto& [key, value] : mapping->items()) {
    auto kids = value.find("children");
    if (kids == value.end() || !kids->is_array()) continue;
    for (std::size_t i = 0; i < kids->size(); ++i)
      if (auto& k = (*kids)[i]; k.is_string() && place.count(k.get<std::string>()))
        place[k.get<std::string>()].position = i;
  }
  for (auto& [id, p] : place) {
    // Up to the first node already placed (or a root), then back down.
    std::vector<std::string> chain{id};
    while (!place[chain.back()].done && place[chain.back()].parent) {
      chain.push_back(*place[chain.back()].parent);
      if (chain.size() > place.size())
        return failure{errc::invalid_argument, "the parents of node " + id + " form a loop"};
    }
    for (auto i = chain.size(); i-- > 0;) {
      auto& here = place[chain[i]];
      if (here.done) continue;
      auto* up = here.parent ? &place[*here.parent] : nullptr;
      auto parent_time = up ? up->time : row.created_at;
      here.depth = up ? up->depth + 1 : 0;
      here.time = std::max(nodes[chain[i]].created.value_or(parent_time), parent_time);
      here.done = true;
    }
  }
  std::vector<std::string> order;
  for (auto& [id, p] : place) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    auto& x = place[a];
    auto& y = place[b];
    return std::tie(x.time, x.depth, x.position, a) < std::tie(y.time, y.depth, y.position, b);
  });
  std::unordered_map<std::string, std::string> new_id;
  for (auto& id : order) {
    auto& n = nodes[id];
    message_record m;
    m.id = make_uuid_v7();
    new_id[id] = m.id;
    m.conversation_id = row.id;
    m.seq = static_cast<std::int64_t>(out.messages.size()) + 1;
    m.role = n.role;
    m.content = n.text;
    m.created_at = place[id].time;
    if (auto& parent = place[id].parent) m.parent_id = new_id[*parent];
    out.messages.push_back(std::move(m));
  }
  // The current node, or its nearest kept ancestor, is where the branch shown ends.
  std::optional<std::string> leaf;
  if (auto current = j.find("current_node"); current != j.end() && current->is_string()) {
    auto id = current->get<std::string>();
    if (nodes.count(id) && !nodes[id].kept) {
      auto parent = kept_parent(id);
      id = parent && *parent ? **parent : std::string();
    }
    if (auto found = new_id.find(id); found != new_id.end()) leaf = found->second;
  }
  settle_tree(out, leaf);
  return out;
}

}  // namespace

import_splitter::import_splitter(std::string_view body, bool ndjson)
    : body_(body), ndjson_(ndjson) {
  if (ndjson_) return;
  while (at_ < body_.size() && is_space(body_[at_])) ++at_;
  if (at_ < body_.size() && body_[at_] == '[') {
    in_array_ = true;
    ++at_;
  }
}

std::optional<std::string_view> import_splitter::next() {
  if (done_) return std::nullopt;
  if (ndjson_) {
    while (at_ < body_.size()) {
      auto end = body_.find('\n', at_);
      if (end == std::string_view::npos) end = body_.size();
      auto line = body_.substr(at_, end - at_);
      at_ = end + 1;
      auto first = line.find_first_not_of(" \t\r");
      if (first != std::string_view::npos) return line.substr(first);
    }
    done_ = true;
    return std::nullopt;
  }
  while (at_ < body_.size() && (is_space(body_[at_]) || (in_array_ && body_[at_] == ','))) ++at_;
  if (at_ >= body_.size() || (in_array_ && body_[at_] == ']')) {
    done_ = true;
    return std::nullopt;
  }
  auto end = value_end(body_, at_);
  if (end == at_) end = at_ + 1;  // a stray character: a value that will not parse
  auto value = body_.substr(at_, end - at_);
  at_ = end;
  if (!in_array_) done_ = true;  // a single object: the rest is not read
  return value;
}

outcome<imported_conversation> import_conversation(std::string_view text,
                                                   const import_context& ctx) try {
  // Nested deeper than any export is: refused before the parser recurses.
  if (json_depth(text, max_json_depth) > max_json_depth)
    return failure{errc::invalid_argument,
                   "nested deeper than " + std::to_string(max_json_depth) + " levels"};
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return failure{errc::invalid_argument, "not valid JSON"};
  if (!j.is_object()) return failure{errc::invalid_argument, "not a JSON object"};
  if (auto format = j.find("format"); format != j.end()) {
    if (*format != "parley.conversation.v1")
      return failure{errc::invalid_argument, "format is not parley.conversation.v1"};
    return from_parley(j, text, ctx);
  }
  if (j.contains("mapping")) return from_chatgpt(j, text, ctx);
  return failure{errc::invalid_argument,
                 "neither a parley.conversation.v1 object nor a ChatGPT conversation"};
} catch (const json::exception& e) {
  // A value of a type the reading did not check for.
  return failure{errc::invalid_argument, std::string("unexpected value: ") + e.what()};
}

import_reader read_import(std::string_view body, bool ndjson, import_context ctx) {
  auto splitter = std::make_shared<import_splitter>(body, ndjson);
  return [splitter, ctx]() -> std::optional<outcome<imported_conversation>> {
    auto text = splitter->next();
    if (!text) return std::nullopt;
    return import_conversation(*text, ctx);
  };
}

}  // namespace parley
