// What every browser test here starts with: its two arguments (the parley
// binary and where screenshots go), Debian's chromium through
// playwright-core, a parley server on an ephemeral port, and the list of
// problems that decides the exit status.
//
// PARLEY_CHROMIUM names the browser (default /usr/bin/chromium).
// Exit status: 0 passed, 1 a check failed, 2 usage error (missing binary,
// browser or playwright-core: run `npm ci` in this directory).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

/// Reads the arguments of `script` (reporting as `name`) and loads
/// playwright-core; exits with 2 when anything is missing.
export async function browserTest(name, script) {
  const usage = (message) => {
    if (message) console.error(`${name}: ${message}`);
    console.error(`usage: node ${script} PARLEY_BINARY SCREENSHOT_DIR`);
    process.exit(2);
  };
  const args = process.argv.slice(2);
  if (args.length !== 2 || args.some((a) => a.startsWith("-"))) usage();
  const [parleyBinary, screenshotDir] = args.map((a) => resolve(a));
  const chromiumPath = process.env.PARLEY_CHROMIUM || "/usr/bin/chromium";
  if (!existsSync(parleyBinary)) usage(`no parley binary at ${parleyBinary}`);
  if (!existsSync(chromiumPath)) usage(`no browser at ${chromiumPath} (install Debian's chromium)`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    usage(`playwright-core is not installed (npm ci in tests/browser): ${e.message}`);
  }
  const problems = [];
  return {
    parleyBinary,
    screenshotDir,
    usage,
    problems,
    fail: (what) => problems.push(what),
    /// Chromium with every host but this machine unreachable.
    launch: () => chromium.launch({
      executablePath: chromiumPath,
      args: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
    }),
    /// Reports the problems and exits: 0 when there were none.
    finish: () => {
      for (const p of problems) console.error(`${name}: ${p}`);
      process.exit(problems.length === 0 ? 0 : 1);
    },
  };
}

/// Starts `parley serve` on an ephemeral port with its SQLite database in
/// `dir` and `extraArgs`; resolves to {server, baseUrl}.
export async function startServer(parleyBinary, dir, extraArgs = []) {
  const server = spawn(
    parleyBinary,
    ["serve", ...extraArgs, "--host", "127.0.0.1", "--port", "0",
     "--database-url", `sqlite://${dir}/parley.db`],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line in 30 s:\n${output}`)), 30000);
    const read = (chunk) => {
      output += chunk;
      const m = output.match(/parley listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    server.stdout.on("data", read);
    server.stderr.on("data", read);
    server.on("error", reject);
    server.on("exit", (code) => reject(new Error(`parley exited with ${code}:\n${output}`)));
  });
  return { server, baseUrl };
}
