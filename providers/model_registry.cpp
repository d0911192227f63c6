#include "providers/model_registry.hpp"

#include "config/load_settings.hpp"
#include "providers/builtin_provider.hpp"
#include "providers/http_provider.hpp"
#include "providers/metered_provider.hpp"

#include <map>

namespace parley {

namespace {

struct provider_entry {
  provider_settings cfg;
  std::shared_ptr<provider> impl;
};

std::string without_trailing_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::shared_ptr<provider> make_provider(provider_settings p) {
  if (p.kind == "builtin") return make_builtin_provider(p.ttft_ms, p.itl_ms);
  if (p.kind != "openai" && p.kind != "anthropic")
    throw config_error("providers: '" + p.name + "' has unknown kind '" + p.kind +
                       "' (expected builtin, openai or anthropic)");
  if (p.base_url.empty())
    p.base_url = p.kind == "openai" ? "https://api.openai.com/v1" : "https://api.anthropic.com";
  p.base_url = without_trailing_slash(p.base_url);
  if (p.base_url.rfind("http://", 0) != 0 && p.base_url.rfind("https://", 0) != 0)
    throw config_error("providers: '" + p.name + "' has base_url '" + p.base_url +
                       "', which is not an http:// or https:// URL");
  return make_http_provider(
      p, p.kind == "openai" ? make_openai_protocol() : make_anthropic_protocol());
}

}  // namespace

std::shared_ptr<const model_registry> model_registry::build(const settings& cfg) {
  std::map<std::string, provider_entry> providers;
  provider_settings builtin;
  builtin.name = "builtin";
  builtin.kind = "builtin";
  providers["builtin"] = {builtin, nullptr};
  for (auto& p : cfg.providers) providers[p.name] = {p, nullptr};
  for (auto& [name, entry] : providers)
    entry.impl = make_metered_provider(make_provider(entry.cfg), name, metrics::default_registry());

  std::vector<model_settings> models;
  model_settings echo;
  echo.id = "echo";
  echo.provider = "builtin";
  echo.upstream = "echo";
  models.push_back(echo);
  for (auto& m : cfg.models) {
    if (m.id == "echo")
      models.front() = m;
    else
      models.push_back(m);
  }

  auto registry = std::make_shared<model_registry>();
  for (auto& m : models) {
    auto p = providers.find(m.provider);
    if (p == providers.end())
      throw config_error("models: '" + m.id + "' names unknown provider '" + m.provider + "'");
    model_info info;
    static_cast<model_settings&>(info) = m;
    info.provider_kind = p->second.cfg.kind;
    if (info.upstream.empty()) info.upstream = m.id;
    info.impl = p->second.impl;
    info.calibration = std::make_shared<token_calibration>();
    registry->models_.push_back(std::move(info));
  }
  for (auto& m : registry->models_)
    if (!m.fallback.empty() && !registry->find(m.fallback))
      throw config_error("models: '" + m.id + "' falls back to unknown model '" + m.fallback + "'");
  bool found = false;
  for (std::size_t i = 0; i < registry->models_.size(); ++i)
    if (registry->models_[i].id == cfg.default_model) {
      registry->default_index_ = i;
      registry->models_[i].is_default = true;
      found = true;
    }
  if (!found) throw config_error("defaults.model: unknown model '" + cfg.default_model + "'");
  if (!cfg.context.summary_model.empty() && !registry->find(cfg.context.summary_model))
    throw config_error("context.summary_model: unknown model '" + cfg.context.summary_model + "'");
  return registry;
}

const model_info* model_registry::find(std::string_view id) const {
  for (auto& m : models_)
    if (m.id == id) return &m;
  return nullptr;
}

}  // namespace parley
