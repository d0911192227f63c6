#pragma once

#include "base/mutex.hpp"
#include "persistence/records.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace parley {

/// The run in progress in each conversation of this process, for the
/// routes that answer from the database rather than from the conversation's
/// actor (GET /v1/conversations/{id}). Thread-safe.
class running_runs {
 public:
  /// Registers `run` as `conversation_id`'s until the returned handle is dropped.
  std::shared_ptr<void> add(const std::string& conversation_id, running_run run) {
    {
      mutex_lock lock(mutex_);
      runs_[conversation_id] = run;
    }
    return {nullptr, [this, conversation_id, run_id = run.run_id](void*) {
              mutex_lock lock(mutex_);
              auto at = runs_.find(conversation_id);
              if (at != runs_.end() && at->second.run_id == run_id) runs_.erase(at);
            }};
  }

  /// The conversations with a run in progress now.
  std::vector<std::string> conversations() const {
    mutex_lock lock(mutex_);
    std::vector<std::string> out;
    out.reserve(runs_.size());
    for (auto& [id, run] : runs_) out.push_back(id);
    return out;
  }

  std::size_t size() const {
    mutex_lock lock(mutex_);
    return runs_.size();
  }

  std::optional<running_run> find(const std::string& conversation_id) const {
    mutex_lock lock(mutex_);
    auto at = runs_.find(conversation_id);
    if (at == runs_.end()) return std::nullopt;
    return at->second;
  }

 private:
  mutable mutex mutex_;
  std::unordered_map<std::string, running_run> runs_ GUARDED_BY(mutex_);
};

}  // namespace parley
