#include "actors/conversation_state.hpp"

#include "actors/exchange_writes.hpp"

#include <caf/send.hpp>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace parley::conversation_detail {

namespace {

/// Looks up `message_id` in this conversation, then runs `then` with it.
void with_message(self_ptr self, const std::string& message_id, const reply_slot& caller,
                  std::function<void(message_record&)> then) {
  auto id = self->state.id;
  read<std::optional<message_record>>(
      self, [id, message_id](store& db) { return db.find_message(id, message_id); }, caller,
      [=](std::optional<message_record>& found) {
        if (!found) {
          caller.fail({errc::not_found, "message " + message_id + " not found"});
          finish_op(self);
          return;
        }
        then(*found);
      });
}

/// Reads a page of history: of the whole tree, or of the branch that ends at
/// q.leaf_id or else the stored active leaf (read with it: another process
/// may have moved it since this one loaded the conversation). A q.leaf_id
/// not in the conversation is named as the field at fault.
std::function<outcome<message_page>(store&)> history_read(const std::string& id,
                                                          const history_query& q) {
  return [id, q](store& db) -> outcome<message_page> {
    message_page page;
    auto leaf = q.leaf_id;
    if (leaf && !db.find_message(id, *leaf))
      return failure{errc::invalid_argument, "message " + *leaf + " is not in this conversation",
                     "leaf_id"};
    if (!leaf && !q.whole_tree)
      if (auto row = db.find_conversation(id)) leaf = row->active_leaf_id;
    if (q.whole_tree)
      page.data = db.list_messages(id, q.after, q.before, q.limit + 1);
    else if (leaf)
      page.data = db.list_branch(id, *leaf, q.after, q.before, q.limit + 1);
    if (page.data.size() > q.limit) {
      page.has_more = true;
      // Ascending either way: `before` pages drop the oldest, `after` pages the newest.
      if (q.before)
        page.data.erase(page.data.begin());
      else
        page.data.pop_back();
    }
    return page;
  };
}

/// Tells the watchers that message `message_id` was deleted.
void publish_removal(self_ptr self, const std::string& message_id) {
  conversation_event e;
  e.type = conversation_event::kind::removed;
  e.text = message_id;
  publish(self, std::move(e), nullptr);
}

/// The active branch as the watchers were shown it: its leaf, the
/// conversation's last seq then, and the window's messages (seq and text).
struct shown_branch {
  std::optional<std::string> leaf;
  std::int64_t last_seq = 0;
  std::unordered_map<std::string, std::pair<std::int64_t, shared_text>> messages;
};

shown_branch shown_branch_of(const conversation_state& st) {
  shown_branch out{st.meta.active_leaf_id, st.meta.last_seq, {}};
  for (std::size_t i = 0; i < st.window.size(); ++i) {
    auto entry = st.window.at(i);
    out.messages.emplace(entry.id, std::pair(entry.seq, entry.message.content));
  }
  return out;
}

/// Tells the watchers what another instance changed, as that instance
/// told its own: `deleted` (messages the window held that are gone), then
/// the branch when another became active, then each new message (a reply as
/// `done`) and each edit, `recent` being the active branch's newest
/// messages as just read. Only the watchers hear it: the run in progress,
/// if any, is this instance's own.
void publish_difference(self_ptr self, const shown_branch& shown,
                        const std::vector<message_record>& recent,
                        const std::vector<std::string>& deleted) {
  using kind = conversation_event::kind;
  for (auto& id : deleted) {
    conversation_event e;
    e.type = kind::removed;
    e.text = id;
    tell_watchers(self, e);
  }
  auto& leaf = self->state.meta.active_leaf_id;
  bool continues = !shown.leaf || std::any_of(recent.begin(), recent.end(),
                                              [&](auto& m) { return m.id == *shown.leaf; });
  if (leaf != shown.leaf && !continues) {
    conversation_event e;
    e.type = kind::branch;
    e.active_leaf_id = leaf;
    tell_watchers(self, e);
  }
  for (auto& m : recent) {
    conversation_event e;
    e.message = &m;
    auto before = shown.messages.find(m.id);
    if (m.seq > shown.last_seq)
      e.type = m.role == "assistant" ? kind::done : kind::message;
    else if (before != shown.messages.end() && !(before->second.second == m.content))
      e.type = kind::edited;
    else
      continue;
    tell_watchers(self, e);
  }
}

/// Makes `branch` the active one in `meta`: its leaf and its length.
void take_branch(conversation_record& meta, const loaded_branch& branch) {
  meta.active_leaf_id =
      branch.recent.empty() ? std::nullopt : std::optional<std::string>(branch.recent.back().id);
  meta.message_count = branch.length;
}

}  // namespace

// --- the other operations ----------------------------------------------------------

void op_update(self_ptr self, const std::string& user, const conversation_patch& patch,
               const completion<conversation_record>& caller) {
  if (foreign(self, user, caller)) return;
  auto meta = self->state.meta;
  if (patch.title) meta.title = *patch.title;
  if (patch.model) meta.model = *patch.model;
  if (patch.system_prompt) meta.system_prompt = *patch.system_prompt;
  if (patch.metadata_json) meta.metadata_json = *patch.metadata_json;
  if (patch.context_strategy) meta.context_strategy = *patch.context_strategy;
  meta.updated_at = self->state.ctx->clock->wall_ms();
  // Commits the row, with the branch that becomes active if one does.
  auto finish = [self, caller, meta](std::optional<loaded_branch> branch) mutable {
    auto previous_leaf = self->state.meta.active_leaf_id;
    if (branch) take_branch(meta, *branch);
    write_set writes{next_version(meta)};
    commit(self, std::move(writes), caller, [=] {
      auto& st = self->state;
      st.meta = meta;
      auto budget = budget_for(*st.ctx, meta);
      if (branch) {
        st.window.reset(branch->recent, budget, branch->older_exist);
        st.summary = use_summary(branch->summary);
      } else {
        st.window.set_budget(budget);
      }
      if (st.meta.active_leaf_id != previous_leaf) publish_branch(self);
      caller.complete(meta);
      finish_op(self);
    });
  };
  if (!patch.active_message_id) {
    finish(std::nullopt);
    return;
  }
  // The newest leaf under the message, read with its branch.
  auto id = self->state.id;
  auto target = *patch.active_message_id;
  auto budget = budget_for(*self->state.ctx, meta);
  read<std::optional<loaded_branch>>(
      self,
      [id, target, budget](store& db) -> std::optional<loaded_branch> {
        // None when the message is not in this conversation.
        auto leaf = db.newest_leaf(id, target, "");
        if (!leaf) return std::nullopt;
        return load_branch(db, id, leaf, budget, true);
      },
      caller,
      [=](std::optional<loaded_branch>& found) mutable {
        if (!found) {
          caller.fail({errc::invalid_argument, "message " + target + " is not in this conversation",
                       "active_message_id"});
          finish_op(self);
          return;
        }
        finish(std::move(found));
      });
}

void op_delete(self_ptr self, const std::string& user, const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  commit(self, {write::delete_conversation{self->state.id, self->state.meta.user_id}}, caller, [=] {
    self->state.current = phase::gone;
    close_watchers(self, {errc::not_found, "conversation " + self->state.id + " was deleted"});
    caller.complete(done{});
    finish_op(self);  // answers whatever is queued with not_found and passivates
  });
}

void op_edit(self_ptr self, const std::string& user, const std::string& message_id,
             const shared_text& content, const completion<message_record>& caller) {
  if (foreign(self, user, caller)) return;
  with_message(self, message_id, caller, [=](message_record& found) {
    auto edited = found;
    edited.content = content;
    edited.edited_at = self->state.ctx->clock->wall_ms();
    auto meta = self->state.meta;
    meta.updated_at = *edited.edited_at;
    write_set writes{write::update_message{edited.id, edited.content, *edited.edited_at},
                     next_version(meta)};
    commit(self, std::move(writes), caller, [=] {
      auto& st = self->state;
      st.meta = meta;
      st.window.edit(edited.id, edited.content);
      publish_message(self, conversation_event::kind::edited, edited, nullptr);
      caller.complete(edited);
      finish_op(self);
    });
  });
}

void op_remove(self_ptr self, const std::string& user, const std::string& message_id,
               const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  with_message(self, message_id, caller, [=](message_record& found) {
    auto& st = self->state;
    auto id = st.id;
    auto leaf = st.meta.active_leaf_id;
    auto budget = budget_for(*st.ctx, st.meta);
    // Whether the active branch loses it, and when it is the active leaf,
    // which branch becomes active: the newest leaf under its parent.
    read<removal>(
        self,
        [id, leaf, found, budget](store& db) {
          removal out;
          if (!leaf) return out;
          if (found.id == *leaf) {
            out.on_active_branch = true;
            out.next_branch =
                load_branch(db, id, db.newest_leaf(id, found.parent_id, found.id), budget, true);
          } else {
            out.on_active_branch = db.branch_contains(id, *leaf, found);
          }
          return out;
        },
        caller,
        [=](removal& effect) {
          auto meta = self->state.meta;
          meta.updated_at = self->state.ctx->clock->wall_ms();
          if (effect.next_branch)
            take_branch(meta, *effect.next_branch);
          else if (effect.on_active_branch)
            meta.message_count -= 1;
          // Its children take its parent as theirs.
          write_set writes{write::delete_message{found.id, found.conversation_id, found.parent_id},
                           next_version(meta)};
          commit(self, std::move(writes), caller, [=] {
            auto& st = self->state;
            st.meta = meta;
            publish_removal(self, found.id);
            if (effect.next_branch) {
              st.window.reset(effect.next_branch->recent, budget_for(*st.ctx, meta),
                              effect.next_branch->older_exist);
              st.summary = use_summary(effect.next_branch->summary);
              publish_branch(self);
            } else {
              st.window.remove(found.id);
              // A summary through a message that is gone covers nothing on the branch.
              if (st.summary && st.summary->record.covers_through_message_id == found.id)
                st.summary.reset();
            }
            caller.complete(done{});
            finish_op(self);
          });
        });
  });
}

void reload_telling_watchers(self_ptr self, const reply_slot& caller, std::function<void()> then,
                             std::function<void(const failure&)> failed) {
  if (self->state.watchers.empty()) {
    load_state(
        self, [then](auto&) { then(); }, std::move(failed));
    return;
  }
  // What the watchers have been shown, to tell them only the difference.
  auto shown = std::make_shared<shown_branch>(shown_branch_of(self->state));
  load_state(
      self,
      [self, caller, then, shown](const std::vector<message_record>& recent) {
        // A message shown before and not on the branch now was deleted, or
        // is on a branch no longer active: the database tells which.
        std::vector<std::pair<std::int64_t, std::string>> by_seq;
        for (auto& [id, held] : shown->messages)
          if (std::none_of(recent.begin(), recent.end(),
                           [&id = id](auto& m) { return m.id == id; }))
            by_seq.emplace_back(held.first, id);
        if (by_seq.empty()) {
          publish_difference(self, *shown, recent, {});
          then();
          return;
        }
        std::sort(by_seq.begin(), by_seq.end());
        std::vector<std::string> missing;
        for (auto& [seq, id] : by_seq) missing.push_back(id);
        auto conversation = self->state.id;
        read<std::vector<std::string>>(
            self,
            [conversation, missing](store& db) {
              std::vector<std::string> gone;
              for (auto& id : missing)
                if (!db.find_message(conversation, id)) gone.push_back(id);
              return gone;
            },
            caller,
            [self, then, shown, recent](std::vector<std::string>& gone) {
              publish_difference(self, *shown, recent, gone);
              then();
            });
      },
      std::move(failed));
}

void op_refresh(self_ptr self, const completion<done>& caller) {
  auto& st = self->state;
  // The newest version told of since this refresh was queued.
  auto version = std::exchange(st.refresh_version, 0);
  st.refresh_queued = false;
  auto finish = [self, caller] {
    caller.complete(done{});
    finish_op(self);
  };
  if (version > 0 && version <= st.meta.version) {
    finish();  // read already, by a reload after a conflict
    return;
  }
  auto deleted = [self, finish] {
    auto& st = self->state;
    st.current = phase::gone;
    close_watchers(self, {errc::not_found, "conversation " + st.id + " was deleted"});
    finish();  // answers whatever is queued with not_found and passivates
  };
  if (version < 0) {
    deleted();
    return;
  }
  auto reload = [self, caller, finish, deleted] {
    auto& st = self->state;
    // Nobody to tell and nothing waiting: dropping the state is cheaper than
    // reading it again, since the next request reads it anyway (and this
    // instance may never see one, when the balancer routes the conversation
    // elsewhere).
    if (st.watchers.empty() && st.queue.empty()) {
      caller.complete(done{});
      passivate(self);
      return;
    }
    reload_telling_watchers(self, caller, finish, [self, caller, deleted](const failure& why) {
      if (why.code == errc::not_found) {
        deleted();
        return;
      }
      caller.fail(why);
      finish_op(self);
    });
  };
  if (version > 0) {
    reload();
    return;
  }
  // After a break in listening every live conversation asks: a version
  // check first, so that only those that changed pay for a reload.
  auto id = st.id;
  read<std::optional<std::int64_t>>(
      self,
      [id](store& db) -> std::optional<std::int64_t> {
        auto row = db.find_conversation(id);
        return row ? std::optional<std::int64_t>(row->version) : std::nullopt;
      },
      caller,
      [self, finish, deleted, reload](std::optional<std::int64_t>& stored) {
        if (!stored)
          deleted();
        else if (*stored == self->state.meta.version)
          finish();
        else
          reload();
      });
}

void answer_history(self_ptr self, const std::string& user, const history_query& q,
                    const completion<message_page>& caller) {
  auto& st = self->state;
  if (st.meta.user_id != user)
    caller.fail(conversation_not_found(st.id));
  else
    caf::anon_send(st.ctx->db.replica_readers, read_atom::value, user,
                   read_completing(history_read(st.id, q), caller));
}

}  // namespace parley::conversation_detail
