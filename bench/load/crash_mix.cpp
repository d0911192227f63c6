#include "bench/load/crash_mix.hpp"

#include "base/mutex.hpp"
#include "support/http_client.hpp"
#include "support/sse_client.hpp"
#include "support/ws_client.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace parley::load {

namespace {

using json = nlohmann::json;
using parley::testing::http_client;
using parley::testing::http_response;
using parley::testing::sse_post;
using parley::testing::sse_result;
using parley::testing::ws_client;
using clock_type = std::chrono::steady_clock;

// --- the journal -------------------------------------------------------------------------

/// Appends JSON lines, each in one write(2) on an O_APPEND descriptor: once
/// append() returns, the line is the kernel's, whatever happens to the server
/// (or to this process) next. Thread-safe.
class journal_writer {
 public:
  explicit journal_writer(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw std::runtime_error("cannot open the journal " + path + ": " + std::strerror(errno));
  }
  ~journal_writer() { ::close(fd_); }
  journal_writer(const journal_writer&) = delete;
  journal_writer& operator=(const journal_writer&) = delete;

  void append(const json& line) {
    auto text = line.dump() + "\n";
    parley::mutex_lock lock(mutex_);
    const char* p = text.data();
    auto left = text.size();
    while (left > 0) {
      auto n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw std::runtime_error(std::string("writing the journal: ") + std::strerror(errno));
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

 private:
  parley::mutex mutex_;  // one line at a time: append() may write in several pieces
  int fd_ GUARDED_BY(mutex_) = -1;
};

std::vector<json> read_journal(const std::string& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_object()) lines.push_back(std::move(j));
  }
  return lines;
}

std::string str(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string();
}

std::int64_t num(const json& j, const char* key, std::int64_t otherwise = -1) {
  auto i = j.find(key);
  return i != j.end() && i->is_number_integer() ? i->get<std::int64_t>() : otherwise;
}

/// What the journal keeps of a stored message.
json brief(const json& m) {
  return {{"id", str(m, "id")},
          {"seq", num(m, "seq")},
          {"role", str(m, "role")},
          {"content", str(m, "content")}};
}

/// A whole answer's stored messages ({"message", "reply"}), as journal briefs.
json stored_messages(const json& answer) {
  auto msgs = json::array();
  for (auto name : {"message", "reply"})
    if (answer.contains(name) && answer[name].is_object()) msgs.push_back(brief(answer[name]));
  return msgs;
}

std::uint16_t port_of(const std::string& base_url) {
  auto colon = base_url.rfind(':');
  if (colon == std::string::npos || colon < base_url.find("://") + 3) return 80;
  return static_cast<std::uint16_t>(std::stoi(base_url.substr(colon + 1)));
}

std::string shorten(std::string s, std::size_t n = 160) {
  if (s.size() > n) s = s.substr(0, n) + "…";
  return s;
}

/// Every message of a conversation, ascending seq, read in pages of 200.
/// `status` is 200, or the first page's answer that was not 200 (-1: not
/// the expected JSON). Throws when the server cannot be reached.
struct conversation_read {
  long status = 0;
  std::vector<json> messages;
};

conversation_read read_conversation(http_client& http, const std::string& identity,
                                    const std::string& id) {
  conversation_read r;
  std::int64_t after = 0;
  for (;;) {
    auto res =
        // Every branch: a message off the active one is stored all the same.
        http.get("/v1/conversations/" + id +
                     "/messages?view=all&limit=200&after=" + std::to_string(after),
                 {identity});
    r.status = res.status;
    if (res.status != 200) return r;
    auto page = res.json();
    if (!page.is_object() || !page["data"].is_array()) {
      r.status = -1;
      return r;
    }
    for (auto& m : page["data"]) r.messages.push_back(m);
    if (page["data"].empty() || page.value("has_more", false) != true) return r;
    auto next = num(page["data"].back(), "seq", after);
    if (next <= after) {
      r.status = -1;  // has_more without progress
      return r;
    }
    after = next;
  }
}

// --- the load --------------------------------------------------------------------------------

struct op_count {
  std::uint64_t attempted = 0;
  std::uint64_t acknowledged = 0;
};

struct load_stats {
  std::map<std::string, op_count> ops;
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t acknowledged_messages = 0;

  void merge(const load_stats& o) {
    for (auto& [k, v] : o.ops) {
      ops[k].attempted += v.attempted;
      ops[k].acknowledged += v.acknowledged;
    }
    for (auto& [k, v] : o.errors) errors[k] += v;
    acknowledged_messages += o.acknowledged_messages;
  }
};

struct model_message {
  std::string id;
  std::string role;
};

struct live_conversation {
  std::string id;
  bool loaded = false;  ///< `messages` is what the server holds
  std::vector<model_message> messages;
};

/// One user: a random sequence of operations on its own conversations, one
/// at a time (so its model of each conversation stays exact while the
/// server lives; a conversation is read again after anything unexpected).
class user_worker {
 public:
  user_worker(const crash_options& o, journal_writer& journal, std::string user,
              std::vector<std::string> conversations, std::uint64_t seed, std::string prefix,
              clock_type::time_point stop)
      : o_(o),
        journal_(journal),
        user_(std::move(user)),
        identity_(o.identity(user_)),
        rng_(seed),
        prefix_(std::move(prefix)),
        stop_(stop),
        http_(o.base_url) {
    for (auto& id : conversations) conversations_.push_back({id});
    if (identity_.rfind("Authorization: Bearer ", 0) == 0)
      ws_query_ = "?access_token=" + identity_.substr(22);
  }

  void run() {
    while (conversations_.size() < o_.conversations_per_user && !gone_ && clock_type::now() < stop_)
      guarded("create", [&] { create(false, false); });
    while (!gone_ && clock_type::now() < stop_) {
      step();
      if (o_.think_ms > 0 && !gone_) {
        std::uniform_real_distribution<double> think(0, o_.think_ms);
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(think(rng_)));
      }
    }
  }

  load_stats stats;

 private:
  void step() {
    // Weights of the operations, out of 100.
    static const std::vector<std::pair<const char*, int>> mix{
        {"send", 16},   {"send-key", 10},  {"sse", 9},
        {"sse-key", 8}, {"ws", 10},        {"edit", 12},
        {"delete", 8},  {"regenerate", 6}, {"regenerate-sse", 5},
        {"create", 2},  {"create-key", 2}, {"delete-conversation", 1}};
    int total = 0;
    for (auto& [name, w] : mix) total += w;
    auto pick = std::uniform_int_distribution<int>(0, total - 1)(rng_);
    std::string kind;
    for (auto& [name, w] : mix) {
      if (pick < w) {
        kind = name;
        break;
      }
      pick -= w;
    }
    if (conversations_.empty()) kind = "create";
    if (kind == "create" || kind == "create-key") {
      guarded(kind, [&] { create(chance(0.5), kind == "create-key"); });
      return;
    }
    if (kind == "delete-conversation" && conversations_.size() < 2) kind = "send";
    auto index = std::uniform_int_distribution<std::size_t>(0, conversations_.size() - 1)(rng_);
    auto id = conversations_[index].id;
    guarded(
        kind,
        [&] {
          auto* c = loaded(id);
          if (!c) return;
          if (kind == "send" || kind == "send-key")
            send(*c, kind, false, kind == "send-key");
          else if (kind == "sse" || kind == "sse-key")
            send(*c, kind, true, kind == "sse-key");
          else if (kind == "ws")
            ws_send(*c);
          else if (kind == "edit")
            edit(*c);
          else if (kind == "delete")
            remove(*c);
          else if (kind == "regenerate" || kind == "regenerate-sse")
            regenerate(*c, kind == "regenerate-sse");
          else if (kind == "delete-conversation")
            delete_conversation(id);
        },
        id);
  }

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  /// Runs one operation; a transport failure ends the run when the server is
  /// gone, and is counted as an error when it is not.
  template <class F>
  void guarded(const std::string& kind, F&& f, const std::string& conversation = "") {
    try {
      f();
    } catch (const std::exception& e) {
      if (auto* c = find(conversation)) c->loaded = false;
      if (server_up())
        ++stats
              .errors[kind + ": transport error while the server was up: " + shorten(e.what(), 80)];
      else
        gone_ = true;
    }
  }

  bool server_up() {
    try {
      http_client probe(o_.base_url);
      return probe.get("/health").status == 200;
    } catch (const std::exception&) {
      return false;
    }
  }

  live_conversation* find(const std::string& id) {
    for (auto& c : conversations_)
      if (c.id == id) return &c;
    return nullptr;
  }

  /// The conversation with its model read from the server if need be; null
  /// when it is gone (an earlier round's unanswered delete took it).
  live_conversation* loaded(const std::string& id) {
    auto* c = find(id);
    if (!c) return nullptr;
    if (c->loaded) return c;
    auto r = read_conversation(http_, identity_, id);
    if (r.status == 404) {
      drop(id);
      return nullptr;
    }
    if (r.status != 200) {
      ++stats.errors["reading a conversation: HTTP " + std::to_string(r.status)];
      return nullptr;
    }
    c->messages.clear();
    for (auto& m : r.messages) c->messages.push_back({str(m, "id"), str(m, "role")});
    c->loaded = true;
    return c;
  }

  void drop(const std::string& id) {
    conversations_.erase(std::remove_if(conversations_.begin(), conversations_.end(),
                                        [&](auto& c) { return c.id == id; }),
                         conversations_.end());
  }

  std::string next_n() { return prefix_ + "." + std::to_string(counter_++); }

  void attempt(const std::string& kind, json line) {
    line["t"] = "attempt";
    line["user"] = user_;
    journal_.append(line);
    ++stats.ops[kind].attempted;
  }

  void ack(const std::string& n, const std::string& op, const std::string& conversation,
           json fields) {
    fields["t"] = "ack";
    fields["n"] = n;
    fields["op"] = op;
    fields["user"] = user_;
    fields["conv"] = conversation;
    if (fields.contains("msgs")) stats.acknowledged_messages += fields["msgs"].size();
    journal_.append(fields);
  }

  void unexpected(const std::string& kind, const std::string& what, live_conversation* c) {
    ++stats.errors[kind + ": " + what];
    if (c) c->loaded = false;
  }

  std::vector<std::string> headers(const std::string& key = "") const {
    std::vector<std::string> h{identity_};
    if (!key.empty()) h.push_back("Idempotency-Key: " + key);
    return h;
  }

  void apply(live_conversation& c, const json& msgs) {
    for (auto& m : msgs) c.messages.push_back({str(m, "id"), str(m, "role")});
  }

  /// Reads a streamed answer, acknowledging `message` and `done` events as
  /// they arrive. True when `done` came.
  bool stream(const std::string& kind, const std::string& n, const std::string& op,
              live_conversation& c, const std::string& path, const json& body,
              const std::string& key, const std::string& replaces) {
    std::size_t seen = 0;
    bool done = false, error = false;
    auto on_event = [&](const sse_result& r) {
      for (; seen < r.events.size(); ++seen) {
        auto& e = r.events[seen];
        if ((e.name == "message" || e.name == "done") && e.data.is_object()) {
          json fields{{"status", 200}, {"stream", true}, {"msgs", json::array({brief(e.data)})}};
          ack(n, op, c.id, fields);
          if (e.name == "done" && !replaces.empty() && !c.messages.empty() &&
              c.messages.back().id == replaces)
            c.messages.pop_back();
          apply(c, fields["msgs"]);
          done = done || e.name == "done";
        } else if (e.name == "error") {
          error = true;
        }
      }
      return true;
    };
    auto r = sse_post(o_.base_url, path, body, "", on_event, headers(key));
    if (r.status != 200) {
      unexpected(kind, "HTTP " + std::to_string(r.status) + " " + shorten(r.body, 80), &c);
    } else if (error) {
      unexpected(kind, "stream error event", &c);
    } else if (!done) {
      throw std::runtime_error("the stream ended without done");
    } else {
      ++stats.ops[kind].acknowledged;
    }
    return done;
  }

  void send(live_conversation& c, const std::string& kind, bool streamed, bool keyed) {
    auto n = next_n();
    auto content = "m " + n;
    json body{{"content", content}};
    if (!streamed && chance(0.2)) body["reply"] = false;
    if (streamed) body["stream"] = true;
    auto path = "/v1/conversations/" + c.id + "/messages";
    std::string key = keyed ? "crash-" + n : "";
    json line{{"n", n},
              {"op", "send"},
              {"mode", streamed ? "sse" : "http"},
              {"conv", c.id},
              {"path", path},
              {"body", body},
              {"content", content}};
    if (keyed) line["key"] = key;
    attempt(kind, line);
    if (streamed) {
      stream(kind, n, "send", c, path, body, key, "");
      return;
    }
    auto r = http_.request("POST", path, body.dump(), headers(key));
    if (r.status != 201) {
      unexpected(kind, "HTTP " + std::to_string(r.status), &c);
      return;
    }
    auto msgs = stored_messages(r.json());
    ack(n, "send", c.id, {{"status", 201}, {"msgs", msgs}});
    apply(c, msgs);
    ++stats.ops[kind].acknowledged;
  }

  void ws_send(live_conversation& c) {
    auto n = next_n();
    auto content = "m " + n;
    attempt("ws", {{"n", n}, {"op", "send"}, {"mode", "ws"}, {"conv", c.id}, {"content", content}});
    ws_client ws(port_of(o_.base_url), "/v1/conversations/" + c.id + "/ws" + ws_query_,
                 ws_query_.empty() ? user_ : "");
    ws.send_json({{"type", "message"}, {"content", content}});
    for (;;) {
      auto e = ws.read_json(std::chrono::seconds(30));
      auto type = e.is_object() ? str(e, "type") : "";
      if (type == "message" || type == "done") {
        auto& m = e[type == "message" ? "message" : "reply"];
        if (!m.is_object()) continue;
        auto msgs = json::array({brief(m)});
        ack(n, "send", c.id, {{"status", 200}, {"ws", true}, {"msgs", msgs}});
        apply(c, msgs);
        if (type == "done") {
          ++stats.ops["ws"].acknowledged;
          return;
        }
      } else if (type == "error") {
        unexpected("ws", "error event " + shorten(e.dump(), 80), &c);
        return;
      }
    }
  }

  void edit(live_conversation& c) {
    if (c.messages.empty()) return;
    auto& m =
        c.messages[std::uniform_int_distribution<std::size_t>(0, c.messages.size() - 1)(rng_)];
    auto n = next_n();
    auto content = "e " + n;
    attempt("edit",
            {{"n", n}, {"op", "edit"}, {"conv", c.id}, {"msg_id", m.id}, {"content", content}});
    auto r = http_.request("PATCH", "/v1/conversations/" + c.id + "/messages/" + m.id,
                           json{{"content", content}}.dump(), headers());
    if (r.status != 200) {
      unexpected("edit", "HTTP " + std::to_string(r.status), &c);
      return;
    }
    ack(n, "edit", c.id, {{"status", 200}, {"msgs", json::array({brief(r.json())})}});
    ++stats.ops["edit"].acknowledged;
  }

  void remove(live_conversation& c) {
    if (c.messages.empty()) return;
    auto at = std::uniform_int_distribution<std::size_t>(0, c.messages.size() - 1)(rng_);
    auto id = c.messages[at].id;
    auto n = next_n();
    attempt("delete", {{"n", n}, {"op", "delete"}, {"conv", c.id}, {"msg_id", id}});
    auto r =
        http_.request("DELETE", "/v1/conversations/" + c.id + "/messages/" + id, "", headers());
    if (r.status != 204) {
      unexpected("delete", "HTTP " + std::to_string(r.status), &c);
      return;
    }
    ack(n, "delete", c.id, {{"status", 204}, {"msg_id", id}});
    c.messages.erase(c.messages.begin() + static_cast<std::ptrdiff_t>(at));
    ++stats.ops["delete"].acknowledged;
  }

  void regenerate(live_conversation& c, bool streamed) {
    if (c.messages.empty()) return;
    auto kind = streamed ? "regenerate-sse" : "regenerate";
    // A reply that is the last message leaves the active branch for the new
    // one: it stays stored, a sibling (docs/api.md, Branches). The model of
    // the conversation kept here follows the active branch, so it drops it.
    std::string replaces = c.messages.back().role == "assistant" ? c.messages.back().id : "";
    auto n = next_n();
    json body = json::object();
    if (streamed) body["stream"] = true;
    auto path = "/v1/conversations/" + c.id + "/regenerate";
    json line{{"n", n}, {"op", "regenerate"}, {"conv", c.id}, {"stream", streamed}};
    attempt(kind, line);
    if (streamed) {
      stream(kind, n, "regenerate", c, path, body, "", replaces);
      return;
    }
    auto r = http_.request("POST", path, body.dump(), headers());
    if (r.status != 201) {
      unexpected(kind, "HTTP " + std::to_string(r.status), &c);
      return;
    }
    auto msgs = stored_messages(r.json());
    json fields{{"status", 201}, {"msgs", msgs}};
    ack(n, "regenerate", c.id, fields);
    if (!replaces.empty()) c.messages.pop_back();
    apply(c, msgs);
    ++stats.ops[kind].acknowledged;
  }

  void create(bool with_message, bool keyed) {
    auto kind = keyed ? "create-key" : "create";
    auto n = next_n();
    auto title = "c " + n;
    json body{{"title", title}};
    if (with_message) body["message"] = "m " + n;
    std::string key = keyed ? "crash-" + n : "";
    json line{{"n", n},
              {"op", "create"},
              {"path", "/v1/conversations"},
              {"body", body},
              {"title", title}};
    if (with_message) line["content"] = "m " + n;
    if (keyed) line["key"] = key;
    attempt(kind, line);
    auto r = http_.request("POST", "/v1/conversations", body.dump(), headers(key));
    auto answer = r.json();
    if (r.status != 201 || !answer.is_object() || str(answer, "id").empty()) {
      unexpected(kind, "HTTP " + std::to_string(r.status), nullptr);
      return;
    }
    auto id = str(answer, "id");
    auto msgs = stored_messages(answer);
    ack(n, "create", id, {{"status", 201}, {"created", true}, {"msgs", msgs}});
    live_conversation c{id, true, {}};
    apply(c, msgs);
    conversations_.push_back(std::move(c));
    ++stats.ops[kind].acknowledged;
  }

  void delete_conversation(const std::string& id) {
    auto n = next_n();
    attempt("delete-conversation", {{"n", n}, {"op", "delete-conversation"}, {"conv", id}});
    auto r = http_.request("DELETE", "/v1/conversations/" + id, "", headers());
    if (r.status != 204) {
      unexpected("delete-conversation", "HTTP " + std::to_string(r.status), find(id));
      return;
    }
    ack(n, "delete-conversation", id, {{"status", 204}});
    drop(id);
    ++stats.ops["delete-conversation"].acknowledged;
  }

  const crash_options& o_;
  journal_writer& journal_;
  std::string user_;
  std::string identity_;
  std::string ws_query_;
  std::mt19937_64 rng_;
  std::string prefix_;
  clock_type::time_point stop_;
  http_client http_;
  std::vector<live_conversation> conversations_;
  std::uint64_t counter_ = 0;
  bool gone_ = false;
};

std::string user_name(std::size_t i) { return "crash-" + std::to_string(i); }

/// The conversations the journal says exist, by user, in creation order.
std::map<std::string, std::vector<std::string>> journal_conversations(
    const std::vector<json>& lines) {
  std::map<std::string, std::vector<std::string>> by_user;
  std::set<std::string> deleted;
  for (auto& l : lines) {
    if (str(l, "t") != "ack") continue;
    if (l.value("created", false)) by_user[str(l, "user")].push_back(str(l, "conv"));
    if (str(l, "op") == "delete-conversation") deleted.insert(str(l, "conv"));
  }
  for (auto& [user, ids] : by_user)
    ids.erase(
        std::remove_if(ids.begin(), ids.end(), [&](auto& id) { return deleted.count(id) > 0; }),
        ids.end());
  return by_user;
}

// --- the verification ------------------------------------------------------------------------

enum class presence { unknown, present, absent };

struct expected_message {
  std::string conv;
  std::int64_t seq = -1;
  presence state = presence::unknown;  ///< what the last acknowledgement said
  bool may_be_absent = false;          ///< an unanswered delete since may have removed it
  bool edited = false;                 ///< its content was last set by an acknowledged edit
  std::optional<std::string> content;  ///< the acknowledged content (not known from a retry)
  std::set<std::string> allowed;       ///< that, and the contents of unanswered edits since
  std::string by;                      ///< the operation (n) that acknowledged it last
};

struct expected_conversation {
  std::string user;
  bool acknowledged = false;  ///< its creation was answered
  bool must_be_gone = false;  ///< an answered delete
  bool may_be_gone = false;   ///< an unanswered delete
};

struct keyed_request {
  json attempt;
  std::string message_id, reply_id, conv_id;  ///< what the first answer acknowledged
  bool whole = false;                         ///< a whole 201 answer was acknowledged
  std::optional<json> replay;                 ///< the first retry's answer
};

struct retry_answer {
  std::string kind;  ///< "ok" (201, or a fresh stream ending in done), "failed" (502/504), "gone"
                     ///< (404), "other"
  long status = 0;
  std::string message_id, reply_id, conv_id;
  json msgs = json::array();
  std::string body;
};

class verifier {
 public:
  verifier(const crash_options& o, std::vector<json> lines)
      : o_(o), lines_(std::move(lines)), http_(o.base_url) {}

  int run() {
    for (auto& l : lines_) take(l);
    {
      journal_writer journal(o_.journal_path);
      auto answers = ask_all_again();
      for (std::size_t i = 0; i < keyed_order_.size(); ++i)
        retry(journal, keyed_order_[i], answers[i]);
    }
    read_back();
    return report();
  }

 private:
  void violation(const std::string& kind, json detail) {
    ++violations_[kind];
    if (examples_.size() < 40) {
      detail["violation"] = kind;
      examples_.push_back(detail);
    }
  }

  // --- the journal, in order ---

  void take(const json& l) {
    auto t = str(l, "t");
    auto op = str(l, "op");
    auto conv = str(l, "conv");
    auto n = str(l, "n");
    if (!conv.empty() && convs_[conv].user.empty()) convs_[conv].user = str(l, "user");
    users_.insert(str(l, "user"));
    if (t == "attempt") {
      if (op == "edit") {
        auto& m = message(str(l, "msg_id"), conv);
        m.allowed.insert(str(l, "content"));
      } else if (op == "delete") {
        message(str(l, "msg_id"), conv).may_be_absent = true;
      } else if (op == "delete-conversation") {
        convs_[conv].may_be_gone = true;
      } else if (op == "send") {
        sends_.emplace_back(conv, str(l, "content"));
      } else if (op == "create") {
        creates_.emplace_back(str(l, "user"), str(l, "title"));
      }
      if (l.contains("key")) {
        keyed_[n].attempt = l;
        keyed_order_.push_back(n);
      }
    } else if (t == "ack") {
      if (l.value("created", false)) {
        auto& c = convs_[conv];
        c.user = str(l, "user");
        c.acknowledged = true;
      }
      if (l.contains("msgs"))
        for (auto& m : l["msgs"]) acknowledged(m, conv, op, n);
      if (op == "delete") deleted(str(l, "msg_id"), conv, n);
      if (op == "delete-conversation") convs_[conv].must_be_gone = true;
      if (op != "retry" && keyed_.count(n)) {
        auto& k = keyed_[n];
        if (l.value("status", 0) == 201) k.whole = true;
        if (l.value("created", false)) k.conv_id = conv;
        if (l.contains("msgs"))
          for (auto& m : l["msgs"])
            (str(m, "role") == "assistant" ? k.reply_id : k.message_id) = str(m, "id");
      }
    } else if (t == "replay") {
      if (keyed_.count(n)) keyed_[n].replay = l;
    }
  }

  expected_message& message(const std::string& id, const std::string& conv) {
    auto& m = messages_[id];
    if (m.conv.empty()) m.conv = conv;
    return m;
  }

  void acknowledged(const json& brief, const std::string& conv, const std::string& op,
                    const std::string& n) {
    auto id = str(brief, "id");
    auto seq = num(brief, "seq");
    if (id.empty()) return;
    auto [at, fresh] = seqs_.try_emplace(std::make_pair(conv, seq), id);
    if (!fresh && at->second != id)
      violation(
          "seq given twice",
          {{"conversation", conv}, {"seq", seq}, {"first", at->second}, {"second", id}, {"op", n}});
    bool known = messages_.count(id) > 0;
    auto& m = message(id, conv);
    if (m.seq >= 0 && m.seq != seq)
      violation("seq changed", {{"message", id}, {"was", m.seq}, {"now", seq}, {"op", n}});
    m.seq = seq;
    if (op == "retry") {
      // A replay's content is the first answer's: it says the message was
      // stored, not what it holds now.
      if (!known) m.state = presence::present;
      return;
    }
    m.state = presence::present;
    m.may_be_absent = false;
    m.content = str(brief, "content");
    m.allowed = {*m.content};
    m.edited = op == "edit";
    m.by = n;
  }

  void deleted(const std::string& id, const std::string& conv, const std::string& n) {
    auto& m = message(id, conv);
    m.state = presence::absent;
    m.may_be_absent = false;
    m.content.reset();
    m.by = n;
  }

  // --- idempotent retries ---

  retry_answer ask_again(const json& a) {
    auto user = str(a, "user");
    std::vector<std::string> headers{o_.identity(user), "Idempotency-Key: " + str(a, "key")};
    auto r = sse_post(o_.base_url, str(a, "path"), a["body"], "", {}, headers);
    retry_answer ans;
    ans.status = r.status;
    ans.body = r.body;
    if (!r.events.empty()) {
      // Never received before the crash: run now, streamed.
      bool done = false;
      for (auto& e : r.events) {
        if ((e.name == "message" || e.name == "done") && e.data.is_object()) {
          ans.msgs.push_back(brief(e.data));
          (e.name == "done" ? ans.reply_id : ans.message_id) = str(e.data, "id");
          done = done || e.name == "done";
        }
      }
      ans.kind = r.status == 200 && done ? "ok" : "other";
      return ans;
    }
    auto j = json::parse(r.body, nullptr, false);
    if (r.status == 201 && j.is_object()) {
      ans.kind = "ok";
      ans.msgs = stored_messages(j);
      if (j.contains("message") && j["message"].is_object())
        ans.message_id = str(j["message"], "id");
      if (j.contains("reply") && j["reply"].is_object()) ans.reply_id = str(j["reply"], "id");
      if (str(a, "op") == "create") ans.conv_id = str(j, "id");
    } else if ((r.status == 502 || r.status == 504) && j.is_object()) {
      ans.kind = "failed";
      ans.message_id = str(j, "message_id");
    } else if (r.status == 404) {
      ans.kind = "gone";
    } else {
      ans.kind = "other";
    }
    return ans;
  }

  struct retry_outcome {
    std::optional<retry_answer> answer;
    std::string error;
    double ms = 0;
  };

  /// Sends every keyed request again, eight at a time (they are independent;
  /// what each answer means is judged afterwards, in journal order).
  std::vector<retry_outcome> ask_all_again() {
    std::vector<retry_outcome> out(keyed_order_.size());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (auto i = next++; i < out.size(); i = next++) {
        auto start = clock_type::now();
        try {
          out[i].answer = ask_again(keyed_.at(keyed_order_[i]).attempt);
        } catch (const std::exception& e) {
          out[i].error = e.what();
        }
        out[i].ms = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) threads.emplace_back(work);
    for (auto& t : threads) t.join();
    return out;
  }

  void retry(journal_writer& journal, const std::string& n, const retry_outcome& outcome) {
    auto& k = keyed_[n];
    auto& a = k.attempt;
    auto op = str(a, "op");
    ++retries_;
    retry_ms_max_ = std::max(retry_ms_max_, outcome.ms);
    if (outcome.ms > 2000) {
      ++retries_slow_;
      if (slow_examples_.size() < 5)
        slow_examples_.push_back({{"op", n},
                                  {"ms", std::lround(outcome.ms)},
                                  {"status", outcome.answer ? outcome.answer->status : 0}});
    }
    if (!outcome.answer) {
      violation("idempotent retry failed",
                {{"op", n}, {"error", outcome.error}, {"ms", std::lround(outcome.ms)}});
      return;
    }
    const auto& ans = *outcome.answer;
    auto conv = op == "create" ? (k.conv_id.empty() ? ans.conv_id : k.conv_id) : str(a, "conv");
    bool conv_gone = !conv.empty() && (convs_[conv].must_be_gone || convs_[conv].may_be_gone);
    auto expected = [&]() -> std::string {
      if (conv_gone && ans.kind == "gone") return "";
      if (k.replay) {
        auto& p = *k.replay;
        if (ans.kind != str(p, "kind") || ans.message_id != str(p, "message_id") ||
            ans.reply_id != str(p, "reply_id") || ans.conv_id != str(p, "conv_id"))
          return "the first retry's answer: " + p.dump();
        return "";
      }
      if (op == "create") {
        if (ans.kind != "ok") return "201";
        if (!k.conv_id.empty() && ans.conv_id != k.conv_id)
          return "201 with conversation " + k.conv_id;
        if (!k.message_id.empty() && ans.message_id != k.message_id)
          return "message " + k.message_id;
        return "";
      }
      if (k.whole || !k.reply_id.empty()) {
        if (ans.kind != "ok" || ans.message_id != k.message_id || ans.reply_id != k.reply_id)
          return "201 with message " + k.message_id + " and reply " + k.reply_id;
        return "";
      }
      if (!k.message_id.empty()) {
        if ((ans.kind != "ok" && ans.kind != "failed") || ans.message_id != k.message_id)
          return "201 or 502 naming message " + k.message_id;
        return "";
      }
      if (ans.kind != "ok" && ans.kind != "failed") return "201, or 502 naming the stored message";
      return "";
    }();
    if (!expected.empty()) {
      violation("idempotent retry not replayed", {{"op", n},
                                                  {"key", str(a, "key")},
                                                  {"expected", expected},
                                                  {"status", ans.status},
                                                  {"answer", shorten(ans.body, 300)}});
      return;
    }
    if (ans.kind == "ok" || ans.kind == "failed") ++replayed_;
    bool first = !k.replay;
    if (first) {
      json replay{{"t", "replay"},
                  {"n", n},
                  {"user", str(a, "user")},
                  {"kind", ans.kind},
                  {"status", ans.status},
                  {"message_id", ans.message_id},
                  {"reply_id", ans.reply_id},
                  {"conv_id", ans.conv_id}};
      journal.append(replay);
      k.replay = replay;
    }
    if (!first || ans.kind != "ok" || conv.empty()) return;
    // What the first retry's answer reports stored is acknowledged now (for
    // the read-back, and for later rounds through the journal).
    json line{{"t", "ack"},      {"n", n},
              {"op", "retry"},   {"user", str(a, "user")},
              {"conv", conv},    {"status", ans.status},
              {"msgs", ans.msgs}};
    if (op == "create") line["created"] = true;
    journal.append(line);
    take(line);
  }

  // --- reading everything back ---

  void read_back() {
    // Each user's listing, every page.
    std::map<std::string, std::set<std::string>> listed;       // user → conversation ids
    std::map<std::string, std::map<std::string, int>> titles;  // user → title → count
    for (auto& user : users_) {
      if (user.empty()) continue;
      std::string cursor;
      for (int page = 0; page < 100000; ++page) {
        auto path = "/v1/conversations?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor);
        http_response r;
        try {
          r = http_.get(path, {o_.identity(user)});
        } catch (const std::exception& e) {
          violation("listing does not load", {{"user", user}, {"error", e.what()}});
          break;
        }
        auto j = r.json();
        if (r.status != 200 || !j.is_object() || !j["data"].is_array()) {
          violation("listing does not load", {{"user", user}, {"status", r.status}});
          break;
        }
        for (auto& c : j["data"]) {
          listed[user].insert(str(c, "id"));
          ++titles[user][str(c, "title")];
          if (convs_[str(c, "id")].user.empty()) convs_[str(c, "id")].user = user;
        }
        cursor = str(j, "next_cursor");
        if (cursor.empty()) break;
      }
    }
    for (auto& [user, title] : creates_)
      if (titles[user][title] > 1)
        violation("conversation stored twice",
                  {{"user", user}, {"title", title}, {"copies", titles[user][title]}});

    std::map<std::string, std::map<std::string, json>> present;  // conv → id → message
    for (auto& [id, c] : convs_) {
      if (c.user.empty()) continue;
      bool in_listing = listed[c.user].count(id) > 0;
      http_response r;
      try {
        r = http_.get("/v1/conversations/" + id, {o_.identity(c.user)});
      } catch (const std::exception& e) {
        violation("conversation does not load", {{"conversation", id}, {"error", e.what()}});
        continue;
      }
      if (c.acknowledged && !c.must_be_gone) ++conversations_acknowledged_;
      if (r.status == 404) {
        if (c.must_be_gone) {
          ++conversation_deletes_acknowledged_, ++conversation_deletes_held_;
        } else if (c.may_be_gone) {
          if (c.acknowledged) ++conversations_removed_unanswered_;
        } else if (c.acknowledged || in_listing) {
          if (c.acknowledged) ++conversations_lost_;
          violation(c.acknowledged ? "acknowledged conversation lost" : "listed conversation 404",
                    {{"conversation", id}, {"user", c.user}});
        }
        gone_.insert(id);
        continue;
      }
      if (r.status != 200) {
        violation("conversation does not load",
                  {{"conversation", id}, {"status", r.status}, {"answer", shorten(r.body, 200)}});
        gone_.insert(id);  // its messages cannot be judged
        continue;
      }
      if (c.must_be_gone) {
        ++conversation_deletes_acknowledged_;
        violation("deleted conversation is back", {{"conversation", id}});
      } else if (c.acknowledged) {
        ++conversations_found_;
        if (!in_listing) violation("conversation missing from its listing", {{"conversation", id}});
      }
      conversation_read m;
      try {
        m = read_conversation(http_, o_.identity(c.user), id);
      } catch (const std::exception& e) {
        violation("messages do not load", {{"conversation", id}, {"error", e.what()}});
        gone_.insert(id);
        continue;
      }
      if (m.status != 200) {
        violation("messages do not load", {{"conversation", id}, {"status", m.status}});
        gone_.insert(id);
        continue;
      }
      std::int64_t last = 0;
      auto& here = present[id];
      for (auto& msg : m.messages) {
        auto seq = num(msg, "seq");
        auto mid = str(msg, "id");
        if (seq <= last)
          violation("seq given twice",
                    {{"conversation", id}, {"seq", seq}, {"listing", true}, {"message", mid}});
        last = std::max(last, seq);
        auto at = seqs_.find(std::make_pair(id, seq));
        if (at != seqs_.end() && at->second != mid)
          violation(
              "seq given twice",
              {{"conversation", id}, {"seq", seq}, {"acknowledged", at->second}, {"stored", mid}});
        here[mid] = msg;
      }
    }

    for (auto& [id, m] : messages_) {
      if (m.conv.empty() || gone_.count(m.conv) || !present.count(m.conv)) continue;
      auto& here = present[m.conv];
      auto found = here.find(id);
      if (m.state == presence::present) {
        ++messages_acknowledged_;
        if (m.edited) ++edits_acknowledged_;
        if (found == here.end()) {
          if (m.may_be_absent) {
            ++messages_removed_unanswered_;
          } else {
            ++messages_lost_;
            violation("acknowledged message lost",
                      {{"conversation", m.conv}, {"message", id}, {"seq", m.seq}, {"op", m.by}});
          }
          continue;
        }
        ++messages_found_;
        auto content = str(found->second, "content");
        if (m.content && !m.allowed.count(content)) {
          ++(m.edited ? edits_lost_ : contents_wrong_);
          violation(m.edited ? "acknowledged edit lost" : "acknowledged content changed",
                    {{"conversation", m.conv},
                     {"message", id},
                     {"expected", *m.content},
                     {"stored", content},
                     {"op", m.by}});
        } else if (m.edited) {
          ++edits_held_;
        }
      } else if (m.state == presence::absent) {
        ++deletes_acknowledged_;
        if (found == here.end()) {
          ++deletes_held_;
        } else {
          violation("deleted message is back",
                    {{"conversation", m.conv}, {"message", id}, {"op", m.by}});
        }
      }
    }

    // Every send's content is unique: two stored user messages holding one
    // are a message stored twice (an idempotent retry that was not replayed,
    // or a write applied twice).
    for (auto& [conv, content] : sends_) {
      if (!present.count(conv)) continue;
      int copies = 0;
      for (auto& [mid, msg] : present[conv])
        if (str(msg, "role") == "user" && str(msg, "content") == content) ++copies;
      if (copies > 1)
        violation("message stored twice",
                  {{"conversation", conv}, {"content", content}, {"copies", copies}});
    }
  }

  int report() {
    std::uint64_t violations = 0;
    for (auto& [k, v] : violations_) violations += v;
    auto acknowledged = messages_acknowledged_ + deletes_acknowledged_ +
                        conversations_acknowledged_ + conversation_deletes_acknowledged_;
    auto found =
        messages_found_ + deletes_held_ + conversations_found_ + conversation_deletes_held_;
    auto removed = messages_removed_unanswered_ + conversations_removed_unanswered_;
    auto lost = acknowledged - found - removed;
    json out{
        {"acknowledged", acknowledged},
        {"found", found},
        {"removed_by_unanswered", removed},
        {"lost", lost},
        {"messages",
         {{"acknowledged", messages_acknowledged_},
          {"found", messages_found_},
          {"removed_by_unanswered", messages_removed_unanswered_},
          {"lost", messages_lost_},
          {"content_wrong", contents_wrong_}}},
        {"edits",
         {{"acknowledged", edits_acknowledged_}, {"held", edits_held_}, {"lost", edits_lost_}}},
        {"deletes", {{"acknowledged", deletes_acknowledged_}, {"held", deletes_held_}}},
        {"conversations",
         {{"acknowledged", conversations_acknowledged_},
          {"found", conversations_found_},
          {"removed_by_unanswered", conversations_removed_unanswered_},
          {"lost", conversations_lost_},
          {"deletes_acknowledged", conversation_deletes_acknowledged_},
          {"deletes_held", conversation_deletes_held_}}},
        {"idempotent_retries",
         {{"sent", retries_},
          {"replayed", replayed_},
          {"slowest_ms", std::lround(retry_ms_max_)},
          {"slower_than_2s", retries_slow_},
          {"slow_examples", slow_examples_}}},
        {"violations", violations_},
        {"violation_count", violations},
        {"examples", examples_}};
    std::printf(
        "acknowledged %llu (messages %llu, of them edited %llu; deletes %llu; conversations %llu; "
        "conversation deletes %llu): found %llu, removed by an unanswered delete %llu, lost %llu\n",
        static_cast<unsigned long long>(acknowledged),
        static_cast<unsigned long long>(messages_acknowledged_),
        static_cast<unsigned long long>(edits_acknowledged_),
        static_cast<unsigned long long>(deletes_acknowledged_),
        static_cast<unsigned long long>(conversations_acknowledged_),
        static_cast<unsigned long long>(conversation_deletes_acknowledged_),
        static_cast<unsigned long long>(found), static_cast<unsigned long long>(removed),
        static_cast<unsigned long long>(lost));
    std::printf(
        "idempotent retries %llu, replayed %llu (slowest %.0f ms, %llu over 2 s); violations "
        "%llu\n",
        static_cast<unsigned long long>(retries_), static_cast<unsigned long long>(replayed_),
        retry_ms_max_, static_cast<unsigned long long>(retries_slow_),
        static_cast<unsigned long long>(violations));
    for (auto& e : slow_examples_) std::printf("  slow retry: %s\n", e.dump().c_str());
    for (auto& [k, v] : violations_)
      std::printf("violation: %s × %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    for (auto& e : examples_) std::printf("  %s\n", e.dump().c_str());
    if (!o_.json_path.empty()) std::ofstream(o_.json_path) << out.dump(2) << "\n";
    return lost == 0 && violations == 0 ? 0 : 3;
  }

  const crash_options& o_;
  std::vector<json> lines_;
  http_client http_;
  std::map<std::string, expected_message> messages_;
  std::map<std::string, expected_conversation> convs_;
  std::map<std::pair<std::string, std::int64_t>, std::string>
      seqs_;  ///< acknowledged (conv, seq) → id
  std::map<std::string, keyed_request> keyed_;
  std::vector<std::string> keyed_order_;
  std::vector<std::pair<std::string, std::string>> sends_;    ///< (conv, content)
  std::vector<std::pair<std::string, std::string>> creates_;  ///< (user, title)
  std::set<std::string> users_;
  std::set<std::string> gone_;  ///< conversations whose messages are not judged
  std::map<std::string, std::uint64_t> violations_;
  json examples_ = json::array();
  std::uint64_t retries_ = 0, replayed_ = 0, retries_slow_ = 0;
  double retry_ms_max_ = 0;
  json slow_examples_ = json::array();
  std::uint64_t messages_acknowledged_ = 0, messages_found_ = 0, messages_removed_unanswered_ = 0,
                messages_lost_ = 0, contents_wrong_ = 0;
  std::uint64_t edits_acknowledged_ = 0, edits_held_ = 0, edits_lost_ = 0;
  std::uint64_t deletes_acknowledged_ = 0, deletes_held_ = 0;
  std::uint64_t conversations_acknowledged_ = 0, conversations_found_ = 0,
                conversations_removed_unanswered_ = 0, conversations_lost_ = 0;
  std::uint64_t conversation_deletes_acknowledged_ = 0, conversation_deletes_held_ = 0;
};

}  // namespace

int run_crash_mix(const crash_options& o) {
  signal(SIGPIPE, SIG_IGN);  // a write to a socket the killed server left
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::random_device device;
  auto seed = o.seed != 0 ? o.seed : (std::uint64_t{device()} << 32 | device());
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "%08x", static_cast<unsigned>(device()));
  try {
    journal_writer journal(o.journal_path);
    auto existing = journal_conversations(read_journal(o.journal_path));
    if (!o.ready_path.empty()) std::ofstream(o.ready_path) << "ready\n";
    auto stop = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(o.seconds));
    std::vector<std::unique_ptr<user_worker>> workers;
    for (std::size_t u = 0; u < o.users; ++u)
      workers.push_back(
          std::make_unique<user_worker>(o, journal, user_name(u), existing[user_name(u)], seed + u,
                                        std::string(prefix) + "." + std::to_string(u), stop));
    auto start = clock_type::now();
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
    for (auto& t : threads) t.join();
    load_stats total;
    for (auto& w : workers) total.merge(w->stats);
    auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    json ops = json::object();
    std::uint64_t attempted = 0, acknowledged = 0;
    for (auto& [k, v] : total.ops) {
      ops[k] = {{"attempted", v.attempted}, {"acknowledged", v.acknowledged}};
      attempted += v.attempted;
      acknowledged += v.acknowledged;
    }
    json out{{"seconds", elapsed},
             {"attempted", attempted},
             {"acknowledged", acknowledged},
             {"acknowledged_messages", total.acknowledged_messages},
             {"ops", ops},
             {"errors", total.errors}};
    std::printf(
        "crash mix: %llu operations attempted, %llu acknowledged (%llu messages) in %.1f s\n",
        static_cast<unsigned long long>(attempted), static_cast<unsigned long long>(acknowledged),
        static_cast<unsigned long long>(total.acknowledged_messages), elapsed);
    for (auto& [k, v] : total.ops)
      std::printf("  %-20s %6llu attempted %6llu acknowledged\n", k.c_str(),
                  static_cast<unsigned long long>(v.attempted),
                  static_cast<unsigned long long>(v.acknowledged));
    for (auto& [k, v] : total.errors)
      std::printf("error: %s × %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "parley-load: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int verify_crash_journal(const crash_options& o) {
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  try {
    verifier v(o, read_journal(o.journal_path));
    return v.run();
  } catch (const std::exception& e) {
    std::cerr << "parley-load: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace parley::load
