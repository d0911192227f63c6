#pragma once

// Starting and stopping the programs the tests drive (parley, the mock
// upstream) as child processes.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace parley::testing {

/// Starts `args[0]` with `args` in `cwd`, stdout and stderr to files, `env`
/// added to the environment. With `max_file_bytes`, no file it writes may
/// grow past that (writes fail with EFBIG, as on a full disk).
pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const std::string& cwd, const std::string& stdout_path, const std::string& stderr_path,
            std::uint64_t max_file_bytes = 0);

/// Waits up to `limit` for the child to exit (then SIGKILL); its exit code,
/// or -1 when a signal ended it.
int wait_exit(pid_t pid, std::chrono::seconds limit);

/// Waits (up to 15 s) for a line "…`marker`PORT" in `stdout_path` and returns
/// PORT. Throws std::runtime_error, with `describe()` in the message, when the
/// child exits or the line does not come; the child is then reaped or killed
/// and `pid` set to -1.
std::uint16_t wait_for_port(pid_t& pid, const std::string& stdout_path, const std::string& marker,
                            const std::function<std::string()>& describe);

/// A file's whole contents ("" when it cannot be read).
std::string read_file(const std::string& path);

}  // namespace parley::testing
