#include "actors/conversation_state.hpp"

#include "actors/exchange_writes.hpp"

#include <caf/send.hpp>

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

/// Reads a page of history.
std::function<message_page(store&)> history_read(const std::string& id, const history_query& q) {
  return [id, q](store& db) {
    message_page page;
    page.data = db.list_messages(id, q.after, q.before, q.limit + 1);
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
  meta.updated_at = self->state.ctx->clock->wall_ms();
  write_set writes{next_version(meta)};
  commit(self, std::move(writes), caller, [=] {
    auto& st = self->state;
    st.meta = meta;
    st.window.set_budget(budget_for(*st.ctx, meta));
    caller.complete(meta);
    finish_op(self);
  });
}

void op_delete(self_ptr self, const std::string& user, const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  commit(self, {write::delete_conversation{self->state.id}}, caller, [=] {
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
      caller.complete(edited);
      finish_op(self);
    });
  });
}

void op_remove(self_ptr self, const std::string& user, const std::string& message_id,
               const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  with_message(self, message_id, caller, [=](message_record& found) {
    auto meta = self->state.meta;
    meta.updated_at = self->state.ctx->clock->wall_ms();
    meta.message_count -= 1;
    write_set writes{write::delete_message{found.id}, next_version(meta)};
    auto removed = found.id;
    commit(self, std::move(writes), caller, [=] {
      auto& st = self->state;
      st.meta = meta;
      st.window.remove(removed);
      caller.complete(done{});
      finish_op(self);
    });
  });
}

void answer_history(self_ptr self, const std::string& user, const history_query& q,
                    const completion<message_page>& caller) {
  auto& st = self->state;
  if (st.meta.user_id != user)
    caller.fail(conversation_not_found(st.id));
  else
    caf::anon_send(st.ctx->db.readers, read_atom::value,
                   read_completing(history_read(st.id, q), caller));
}

}  // namespace parley::conversation_detail
