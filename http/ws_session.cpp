#include "http/ws_session.hpp"

#include "http/json_mapping.hpp"
#include "http/problem.hpp"
#include "telemetry/metrics.hpp"

namespace parley {

namespace rws = restinio::websocket::basic;

namespace {

metrics::gauge& open_sessions() {
  static auto& g = metrics::default_registry().gauge_named("parley_websocket_open_sessions",
                                                           "WebSocket sessions open now.");
  return g;
}

}  // namespace

ws_session::ws_session(engine& eng, parse_limits parsing, ws_limits limits,
                       std::shared_ptr<user_limits> per_user, std::string user_id,
                       std::string conversation_id, std::string request_id,
                       in_flight_counter in_flight,
                       std::shared_ptr<const std::atomic<bool>> draining)
    : engine_(eng),
      parsing_(parsing),
      limits_(limits),
      per_user_(std::move(per_user)),
      in_flight_(std::move(in_flight)),
      draining_(std::move(draining)),
      user_id_(std::move(user_id)),
      conversation_id_(std::move(conversation_id)),
      request_id_(std::move(request_id)),
      last_ping_(clock::now()),
      last_heard_(clock::now().time_since_epoch().count()) {}

ws_session::~ws_session() {
  if (phase_ == phase::open) open_sessions().add(-1);
}

bool ws_session::attach(rws::ws_handle_t ws) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ != phase::upgrading) return false;
  ws_ = std::move(ws);
  phase_ = phase::open;
  open_sessions().add(1);
  activate(*ws_);
  auto early = std::move(early_);
  early_.clear();
  // send_text() stops sending once the session closes (a slow reader).
  for (auto& text : early) send_text(std::move(text));
  return true;
}

void ws_session::on_frame(const rws::message_handle_t& frame) {
  last_heard_ = clock::now().time_since_epoch().count();
  auto refuse = [this](status_code code, const std::string& why) {
    recursive_mutex_lock lock(mutex_);
    close(code, why);
  };
  switch (frame->opcode()) {
    case rws::opcode_t::text_frame:
      if (assembling_) {
        refuse(status_code::protocol_error, "a new message began inside a fragmented one");
        return;
      }
      if (frame->is_final()) {
        take_text(frame->payload());
        return;
      }
      assembling_ = true;
      fragments_ = frame->payload();
      if (fragments_.size() > limits_.max_frame_bytes) take_text(fragments_);  // refused as too big
      return;
    case rws::opcode_t::continuation_frame:
      if (!assembling_) {
        refuse(status_code::protocol_error, "a continuation frame without a message");
        return;
      }
      fragments_ += frame->payload();
      if (frame->is_final() || fragments_.size() > limits_.max_frame_bytes) {
        assembling_ = false;
        take_text(std::move(fragments_));
        fragments_.clear();
      }
      return;
    case rws::opcode_t::ping_frame: {
      recursive_mutex_lock lock(mutex_);
      if (phase_ == phase::open)
        ws_->send_message(rws::final_frame, rws::opcode_t::pong_frame, frame->payload());
      return;
    }
    case rws::opcode_t::pong_frame:
      return;
    case rws::opcode_t::connection_close_frame:
      refuse(status_code::normal_closure, "");
      return;
    default:
      refuse(status_code::cant_accept_data, "only JSON text messages are accepted");
      return;
  }
}

void ws_session::take_text(const std::string& message) {
  if (message.size() > limits_.max_frame_bytes) {
    recursive_mutex_lock lock(mutex_);
    close(status_code::too_big_message,
          "messages are limited to " + std::to_string(limits_.max_frame_bytes) + " bytes");
    return;
  }
  on_text(message);
}

void ws_session::on_text(const std::string& payload) {
  auto parsed_frame = parse_json_object(payload);
  if (!parsed_frame) {
    send_error(parsed_frame.error());
    return;
  }
  if (auto type = parsed_frame->find("type"); type != parsed_frame->end() && *type == "resume") {
    resume(*parsed_frame);
    return;
  }
  auto params = parse_ws_message(std::move(*parsed_frame), parsing_);
  if (!params) {
    send_error(params.error());
    return;
  }
  if (draining_->load()) {
    auto p = make_problem(503, "the server is restarting; send it again once reconnected");
    p.retry_after_s = 1;
    send_error(p);
    return;
  }
  if (auto taken = per_user_->take_request(user_id_, clock::now()); !taken) {
    send_error(to_problem(taken.error()));
    return;
  }
  auto& send = *params;
  std::shared_ptr<void> slot;
  if (send.reply) {
    auto claimed = per_user_->claim_generation(user_id_);
    if (!claimed) {
      send_error(to_problem(claimed.error()));
      return;
    }
    slot = *claimed;
  }
  // Closing the WebSocket stops the reply only when asked to (on_disconnect).
  if (send.cancel_on_disconnect.value_or(limits_.cancel_on_disconnect)) send.cancel = cancel_;
  // The exchange's events come through the watch; only a failure is answered here.
  std::weak_ptr<ws_session> weak = shared_from_this();
  engine_.send_message(
      user_id_, conversation_id_, std::move(send), std::nullopt,
      in_flight_.tracked<exchange_answer>([weak, slot](outcome<exchange_answer> r) {
        if (auto self = weak.lock(); self && !r) self->send_error(to_problem(r.error()));
      }));
}

void ws_session::resume(const nlohmann::json& frame) {
  auto from = parse_ws_resume(frame);
  if (!from) {
    send_error(from.error());
    return;
  }
  // The session watches the conversation: the replay is followed by the live
  // events through the watch, so it need not follow the run as well.
  std::weak_ptr<ws_session> weak = shared_from_this();
  engine_.resume(user_id_, conversation_id_, *from, shared_from_this(), false,
                 [weak](outcome<resume_outcome> r) {
                   if (auto self = weak.lock(); self && !r) self->send_error(to_problem(r.error()));
                 });
}

namespace {

/// `,"n":…,"run_id":"…"` for an event of a run, to close a frame's object with.
/// `{"KEY": VALUE, "type": "TYPE"}`, with `n` and `run_id` when `e` is an
/// event of a run. VALUE is JSON already (a stored message is rendered once).
std::string frame(const char* type, const char* key, const std::string& value,
                  const conversation_event& e) {
  auto out = std::string("{\"") + key + "\":" + value + ",\"type\":\"" + type + "\"";
  if (e.run_id) out += ",\"n\":" + std::to_string(e.n) + ",\"run_id\":\"" + *e.run_id + "\"";
  return out + "}";
}

}  // namespace

bool ws_session::deliver(const conversation_event& e) {
  using kind = conversation_event::kind;
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::closed) return false;
  switch (e.type) {
    case kind::started:
      break;
    case kind::message:
      send_text(frame("message", "message", message_json(*e.message), e));
      break;
    case kind::delta:
      send_text(frame("delta", "content", dump(nlohmann::json(e.text)), e));
      break;
    case kind::done:
      send_text(frame("done", "reply", message_json(*e.message), e));
      break;
    case kind::compaction:
      send_text(frame("compaction", "summary", dump(to_json(*e.summary)), e));
      break;
    case kind::failed:
      // Only to a socket that resumed the run.
      send_text(frame("error", "error", dump(problem_json(to_problem(*e.reason), request_id_)), e));
      break;
    case kind::edited:
      send_text(frame("edited", "message", message_json(*e.message), e));
      break;
    case kind::removed:
      send_json({{"type", "deleted"}, {"message_id", e.text}});
      break;
    case kind::branch: {
      auto frame = branch_json(e.active_leaf_id);
      frame["type"] = "branch";
      send_json(frame);
      break;
    }
    case kind::closed: {
      auto p = to_problem(*e.reason);
      send_json({{"type", "error"}, {"error", problem_json(p, request_id_)}});
      close(p.status == 404 ? status_code::normal_closure : status_code::going_away,
            e.reason->detail);
      break;
    }
  }
  return phase_ != phase::closed;
}

void ws_session::close_for_restart() {
  // 1012 is registered (RFC 6455's IANA registry) but not in RESTinio's list.
  constexpr auto service_restart = static_cast<status_code>(1012);
  recursive_mutex_lock lock(mutex_);
  close(service_restart, "the server is restarting; reconnect");
}

bool ws_session::keep_alive(clock::time_point now) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::closed) return false;
  if (phase_ == phase::upgrading) return true;
  auto heard = clock::time_point(clock::duration(last_heard_.load()));
  if (now - heard > 2 * limits_.ping_interval) {
    close(status_code::policy_violation, "nothing heard from the client, not even a pong");
    return false;
  }
  if (now - last_ping_ >= limits_.ping_interval) {
    last_ping_ = now;
    ws_->send_message(rws::final_frame, rws::opcode_t::ping_frame, std::string());
  }
  return true;
}

void ws_session::send_json(const nlohmann::json& j) { send_text(dump(j)); }

void ws_session::send_text(std::string text) {
  if (phase_ == phase::closed) return;
  if (phase_ == phase::upgrading) {
    early_.push_back(std::move(text));
    return;
  }
  // Past the limit only while earlier frames still wait (see sse_stream).
  if (queued_->load() > limits_.max_queued_bytes) {
    close(status_code::policy_violation, "the client reads too slowly");
    return;
  }
  auto size = text.size();
  queued_->fetch_add(size);
  // The callback runs on the I/O thread once the socket took the frame.
  ws_->send_message(rws::final_frame, rws::opcode_t::text_frame, std::move(text),
                    [queued = queued_, size](const asio::error_code&) { queued->fetch_sub(size); });
}

void ws_session::send_error(const problem& p) {
  recursive_mutex_lock lock(mutex_);
  if (phase_ == phase::closed) return;
  send_json({{"type", "error"}, {"error", problem_json(p, request_id_)}});
}

void ws_session::close(status_code code, const std::string& reason) {
  if (phase_ == phase::closed) return;
  bool was_open = phase_ == phase::open;
  if (was_open) open_sessions().add(-1);
  phase_ = phase::closed;
  auto ws = std::move(ws_);
  ws_.reset();
  // A close frame's reason is at most 123 bytes.
  auto payload = rws::status_code_to_bin(code) + reason.substr(0, 123);
  if (was_open) try {
      ws->send_message(rws::final_frame, rws::opcode_t::connection_close_frame, std::move(payload));
    } catch (const std::exception&) {
      // The connection is gone already.
    }
  // Neither call comes back into this session: both only send to actors.
  engine_.unwatch(conversation_id_, shared_from_this());
  cancel_->cancel();
}

}  // namespace parley
