#pragma once

#include <string>
#include <vector>

namespace parley {

/// The SQL dialects Parley speaks; the schema differs between them only here.
enum class sql_dialect { sqlite, postgresql };

/// One schema migration: the statements that take version N-1 to version N.
struct migration {
  int version;
  std::vector<std::string> statements;
};

/// Every migration, oldest first, for `dialect`.
const std::vector<migration>& migrations(sql_dialect dialect);

}  // namespace parley
