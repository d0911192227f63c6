#define BOOST_TEST_MODULE configuration_doc
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"
#include "support/server_process.hpp"

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

// docs/configuration.md against the loader: the same keys, each with the
// environment variables the loader reads for it, and every default the page
// states literally the one the loader starts from.

using namespace parley;

namespace {

/// A key as the page documents it.
struct documented_key {
  std::set<std::string> env;
  std::string default_text;  ///< as written
};

std::vector<std::string> split_cells(const std::string& row) {
  std::vector<std::string> cells;
  std::stringstream in(row);
  std::string cell;
  std::getline(in, cell, '|');  // before the first bar
  while (std::getline(in, cell, '|')) cells.push_back(cell);
  return cells;
}

std::vector<std::string> code_spans(const std::string& text) {
  std::vector<std::string> out;
  static const std::regex span("`([^`]*)`");
  for (std::sregex_iterator it(text.begin(), text.end(), span), end; it != end; ++it)
    out.push_back((*it)[1]);
  return out;
}

std::string trimmed(const std::string& s) {
  auto b = s.find_first_not_of(' ');
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

/// `a / b` split at " / ", or `text` alone.
std::vector<std::string> alternatives(const std::string& text, std::size_t count) {
  std::vector<std::string> out;
  std::string rest = text;
  for (std::size_t at; count > 1 && (at = rest.find(" / ")) != std::string::npos;) {
    out.push_back(trimmed(rest.substr(0, at)));
    rest = rest.substr(at + 3);
  }
  out.push_back(trimmed(rest));
  return out;
}

/// The keys of the page's tables: the main one (key, env, default) and those
/// after "Provider keys:" and "Model keys:" (key, default), whose keys are
/// listed as "providers.KEY" and "models.KEY".
std::map<std::string, documented_key> documented_keys() {
  std::ifstream file(PARLEY_SOURCE_DIR "/docs/configuration.md");
  BOOST_REQUIRE_MESSAGE(file, "cannot read docs/configuration.md");
  std::map<std::string, documented_key> out;
  std::string line, prefix, last_text;
  bool in_table = false, has_env = false;
  while (std::getline(file, line)) {
    if (line.rfind("| key |", 0) == 0) {
      in_table = true;
      has_env = line.find("| env |") != std::string::npos;
      prefix = last_text == "Provider keys:" ? "providers."
               : last_text == "Model keys:"  ? "models."
                                             : "";
      continue;
    }
    if (!in_table || line.rfind("|", 0) != 0) {
      in_table = false;
      if (!line.empty()) last_text = line;
      continue;
    }
    if (line.rfind("|---", 0) == 0) continue;
    auto cells = split_cells(line);
    BOOST_REQUIRE_MESSAGE(cells.size() >= (has_env ? 3u : 2u), "a short row: " << line);
    auto keys = code_spans(cells[0]);
    auto env = has_env ? code_spans(cells[1]) : std::vector<std::string>{};
    auto defaults = alternatives(trimmed(cells[has_env ? 2 : 1]), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto& k = out[prefix + keys[i]];
      // "`A` / `B`" for two keys pairs them; one key may have several names.
      if (keys.size() > 1 && env.size() == keys.size())
        k.env.insert(env[i]);
      else if (keys.size() == 1)
        k.env.insert(env.begin(), env.end());
      if (defaults.size() == keys.size()) k.default_text = defaults[i];
    }
  }
  return out;
}

/// The default `text` states as a TOML value: a number, or a literal in
/// backticks; nothing when it states none literally ("number of cores",
/// "none", a description).
std::optional<std::string> as_toml_value(const std::string& text) {
  static const std::regex number(R"(^(\d+)( \(off\))?$)"), literal("^`([^`]*)`$");
  std::smatch m;
  if (std::regex_match(text, m, number)) return m[1].str();
  if (!std::regex_match(text, m, literal)) return std::nullopt;
  auto inner = m[1].str();
  if (inner == "true" || inner == "false" || std::regex_match(inner, number)) return inner;
  return "\"" + inner + "\"";
}

/// The settings a file holding `toml` loads to (no environment, no flags).
settings load_file(const std::string& toml) {
  // One file for every load: the settings name the file they came from.
  static const testing::temp_dir dir;
  command_line cli;
  cli.config_file = dir.path() + "/parley.toml";
  std::ofstream(*cli.config_file) << toml;
  return load_settings(cli, {});
}

/// A file setting `key` (as setting_keys() names it) to `value` ("" for
/// none), around a provider and a model so that their tables exist.
std::string file_setting(const std::string& key, const std::string& value) {
  auto dot = key.find('.');
  auto table = key.substr(0, dot), name = key.substr(dot + 1);
  auto line = value.empty() ? std::string() : name + " = " + value + "\n";
  std::string out = table == "providers" || table == "models" ? "" : "[" + table + "]\n" + line;
  out += "[[providers]]\nname = \"p\"\nkind = \"builtin\"\n" + (table == "providers" ? line : "");
  out += "[[models]]\nid = \"m\"\nprovider = \"p\"\n" + (table == "models" ? line : "");
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_page_documents_every_setting_and_no_other) {
  auto documented = documented_keys();
  std::set<std::string> known;
  for (auto& k : setting_keys()) {
    known.insert(k.key);
    BOOST_TEST(documented.contains(k.key), k.key << " is a setting docs/configuration.md omits");
  }
  for (auto& [key, doc] : documented)
    BOOST_TEST(known.contains(key), key << " is documented but is not a setting");
}

BOOST_AUTO_TEST_CASE(the_page_names_each_settings_environment_variables) {
  auto documented = documented_keys();
  for (auto& k : setting_keys()) {
    if (!documented.contains(k.key)) continue;  // reported by the test above
    std::set<std::string> read(k.env.begin(), k.env.end());
    BOOST_TEST_CONTEXT(k.key) { BOOST_TEST(documented[k.key].env == read); }
  }
}

BOOST_AUTO_TEST_CASE(every_literal_default_on_the_page_is_the_loaders) {
  int checked = 0;
  for (auto& [key, doc] : documented_keys()) {
    auto value = as_toml_value(doc.default_text);
    if (!value) continue;
    BOOST_TEST_CONTEXT(key << " = " << *value) {
      try {
        auto with_default = load_file(file_setting(key, *value));
        auto without = load_file(file_setting(key, ""));
        BOOST_TEST((with_default == without));
      } catch (const config_error& e) {
        BOOST_ERROR("the documented default does not load: " << e.what());
      }
      ++checked;
    }
  }
  // The page states most defaults as numbers or literals.
  BOOST_TEST(checked >= 40);
}

BOOST_AUTO_TEST_CASE(the_pages_example_files_load) {
  // Every ```toml block of the page is a file the loader takes as it is
  // (API keys come from the environment and are not needed to parse).
  std::ifstream file(PARLEY_SOURCE_DIR "/docs/configuration.md");
  std::string line, block;
  bool in_block = false;
  int blocks = 0;
  while (std::getline(file, line)) {
    if (line == "```toml") {
      in_block = true;
      block.clear();
    } else if (in_block && line == "```") {
      in_block = false;
      ++blocks;
      settings s;
      BOOST_CHECK_NO_THROW(apply_toml(s, block, "example"));
    } else if (in_block) {
      block += line + "\n";
    }
  }
  BOOST_TEST(blocks >= 2);
}
