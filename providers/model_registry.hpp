#pragma once

#include "config/settings.hpp"
#include "providers/provider.hpp"
#include "providers/token_estimator.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

/// A model clients can name: its configuration plus the provider that serves it.
struct model_info : model_settings {
  std::string provider_kind;
  bool is_default = false;
  std::shared_ptr<parley::provider> impl;
  /// Learnt from the provider's token counts; never null in a registry.
  std::shared_ptr<token_calibration> calibration;

  /// Tokens the context may use: the window less room for the reply, in the
  /// engine's estimate as calibrated for this model.
  std::int64_t context_budget() const {
    auto tokens = static_cast<std::int64_t>(context_window) - max_output_tokens;
    return calibration ? static_cast<std::int64_t>(tokens / calibration->factor()) : tokens;
  }
  double cost_usd(std::int64_t prompt_tokens, std::int64_t completion_tokens) const {
    return (prompt_tokens * input_price_per_mtok + completion_tokens * output_price_per_mtok) / 1e6;
  }
};

/// Every model of the configuration. Immutable once built, so any thread may read it.
class model_registry {
 public:
  /// Builds the registry from `[[providers]]`, `[[models]]` and `defaults.model`.
  /// The built-in provider and its model `echo` are always there (a config entry
  /// of the same name overrides them). Throws config_error.
  static std::shared_ptr<const model_registry> build(const settings& cfg);

  /// nullptr for an unknown alias.
  const model_info* find(std::string_view id) const;
  const model_info& default_model() const { return models_[default_index_]; }
  /// The model to ask after `failed` did, when `asked` models (`failed`
  /// included) have been asked: its fallback, or nullptr when it has none or
  /// the chain has come round to every model (fallbacks may form a loop).
  const model_info* fallback_after(const model_info& failed, std::size_t asked) const {
    if (failed.fallback.empty() || asked >= models_.size()) return nullptr;
    return find(failed.fallback);
  }
  const std::vector<model_info>& all() const { return models_; }

 private:
  std::vector<model_info> models_;
  std::size_t default_index_ = 0;
};

}  // namespace parley
