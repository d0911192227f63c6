// Checks that docs/api.md, the HTTP reference written for people, covers the
// same operations as an OpenAPI document: every operation (method and path)
// has a `### METHOD /path` heading spelled as in the document's `paths`, every
// such heading is an operation of the document, and each operation's section
// (from its heading to the next `##` or `###` heading) lists the response
// status codes the document lists for it, and no other: in the rows of its
// status table (`| 404 | ... |`) and on its `Statuses:` or `Also` line.
//
//   node check-api-doc.mjs PATH_TO_OPENAPI_JSON PATH_TO_API_MD
//
// Exit status: 0 consistent, 1 inconsistent (each problem is printed), 2 usage
// error (no such file, bad arguments). Needs nothing beyond Node itself.
import { readFile } from "node:fs/promises";

function usage(message) {
  if (message) console.error(`api-doc: ${message}`);
  console.error("usage: node check-api-doc.mjs PATH_TO_OPENAPI_JSON PATH_TO_API_MD");
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 2 || args.some((a) => a.startsWith("-"))) usage();
const [openapiPath, mdPath] = args;

async function read(path) {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    usage(`cannot read ${path}: ${e.message}`);
  }
}
const openapiText = await read(openapiPath);
const md = await read(mdPath);

let doc;
try {
  doc = JSON.parse(openapiText);
} catch (e) {
  console.error(`api-doc: ${openapiPath} is not valid JSON: ${e.message}`);
  process.exit(1);
}
if (typeof doc !== "object" || doc === null || typeof doc.paths !== "object" || doc.paths === null) {
  console.error(`api-doc: ${openapiPath} has no "paths" object`);
  process.exit(1);
}

const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const problems = [];

// The document's operations: "METHOD /path" -> the status codes it answers with.
const operations = new Map();
for (const [path, item] of Object.entries(doc.paths)) {
  if (item === null || typeof item !== "object") continue;
  for (const m of methods) {
    const op = item[m];
    if (op === null || typeof op !== "object") continue;
    const statuses = Object.keys(op.responses ?? {}).filter((s) => s !== "default");
    operations.set(`${m.toUpperCase()} ${path}`, statuses);
  }
}

// The Markdown's headings, outside fenced code blocks. A route heading is a
// level-3 heading whose text is an HTTP method and a path (backticks around
// either are tolerated); its section runs to the next heading of level 1 to 3.
const lines = md.split(/\r?\n/);
const headings = []; // { line, level, key|null }
let fence = null;
for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  const f = /^ {0,3}(`{3,}|~{3,})/.exec(line);
  if (f) {
    if (fence === null) fence = f[1];
    else if (f[1][0] === fence[0] && f[1].length >= fence.length) fence = null;
    continue;
  }
  if (fence !== null) continue;
  const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
  if (!h) continue;
  const level = h[1].length;
  let key = null;
  if (level === 3) {
    const text = h[2].replace(/`/g, "").trim();
    const r = /^([A-Z]+)\s+(\/\S*)$/.exec(text);
    if (r && methods.includes(r[1].toLowerCase())) key = `${r[1]} ${r[2]}`;
  }
  headings.push({ line: i, level, key });
}

/// The statuses a route's section lists: the first cell of each status table
/// row, and the numbers of its "Statuses:" or "Also" line (up to any link).
function listedStatuses(text) {
  const out = new Set();
  for (const line of text.split("\n")) {
    const row = /^\|\s*([1-5][0-9][0-9])\s*\|/.exec(line);
    if (row) out.add(row[1]);
    if (/^(Statuses:|Also )/.test(line))
      for (const n of line.split(/[([]/)[0].match(/\b[1-5][0-9][0-9]\b/g) ?? []) out.add(n);
  }
  return out;
}

const sections = new Map(); // "METHOD /path" -> the section's text
for (let k = 0; k < headings.length; k++) {
  const { line, key } = headings[k];
  if (key === null) continue;
  let end = lines.length;
  for (let n = k + 1; n < headings.length; n++)
    if (headings[n].level <= 3) {
      end = headings[n].line;
      break;
    }
  if (sections.has(key)) {
    problems.push(`${mdPath}:${line + 1}: a second heading for ${key}`);
    continue;
  }
  sections.set(key, { line: line + 1, text: lines.slice(line + 1, end).join("\n") });
}

for (const [key, section] of sections)
  if (!operations.has(key))
    problems.push(`${mdPath}:${section.line}: "### ${key}" is not an operation of ${openapiPath}`);

for (const [key, statuses] of operations) {
  const section = sections.get(key);
  if (!section) {
    problems.push(`${key} has no "### ${key}" heading in ${mdPath}`);
    continue;
  }
  const listed = listedStatuses(section.text);
  for (const status of statuses)
    if (!listed.has(status))
      problems.push(`${key}: status ${status} is listed in ${openapiPath} but not in its section of ${mdPath}`);
  for (const status of listed)
    if (!statuses.includes(status))
      problems.push(`${key}: status ${status} is listed in its section of ${mdPath} but not in ${openapiPath}`);
}

if (problems.length) {
  console.error(`api-doc: ${mdPath} does not match ${openapiPath}:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
const statusCount = [...operations.values()].reduce((n, s) => n + s.length, 0);
console.log(
  `api-doc: ${mdPath} covers the ${operations.size} operations and ${statusCount} responses of ${openapiPath}`,
);
