// Checks an OpenAPI document: valid against the official OpenAPI 3.1 JSON
// schema (@seriousme/openapi-schema-validator), version 3.1.x, and every
// internal $ref resolving to something in the document.
//
//   node validate.mjs PATH_TO_OPENAPI_JSON
//
// Exit status: 0 valid, 1 invalid, 2 usage error (no such file, bad arguments,
// the validator library not installed: run `npm ci` in this directory).
import { readFile } from "node:fs/promises";

function usage(message) {
  if (message) console.error(`openapi: ${message}`);
  console.error("usage: node validate.mjs PATH_TO_OPENAPI_JSON");
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 1 || args[0].startsWith("-")) usage();
const path = args[0];

let text;
try {
  text = await readFile(path, "utf8");
} catch (e) {
  usage(`cannot read ${path}: ${e.message}`);
}

let Validator;
try {
  ({ Validator } = await import("@seriousme/openapi-schema-validator"));
} catch (e) {
  usage(`cannot load @seriousme/openapi-schema-validator (run npm ci in tests/openapi): ${e.message}`);
}

const problems = [];

let doc;
try {
  doc = JSON.parse(text);
} catch (e) {
  console.error(`openapi: ${path} is not valid JSON: ${e.message}`);
  process.exit(1);
}

if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
  console.error(`openapi: ${path} is not a JSON object`);
  process.exit(1);
}
if (typeof doc.openapi !== "string" || !/^3\.1\.\d+$/.test(doc.openapi))
  problems.push(`"openapi" must be a 3.1.x version string, found ${JSON.stringify(doc.openapi)}`);

// The official schema.
const validator = new Validator();
const result = await validator.validate(structuredClone(doc));
if (!result.valid) {
  const errors = Array.isArray(result.errors) ? result.errors : [result.errors];
  for (const e of errors) {
    if (e && typeof e === "object" && "instancePath" in e) {
      const params = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : "";
      problems.push(`schema: ${e.instancePath || "/"} ${e.message}${params}`);
    } else {
      problems.push(`validator: ${typeof e === "string" ? e : JSON.stringify(e)}`);
    }
  }
} else if (validator.version !== "3.1") {
  problems.push(`validated as OpenAPI ${validator.version}, not 3.1`);
}

// Every internal $ref (and discriminator mapping) must point into the document.
const unescape = (s) => s.replace(/~1/g, "/").replace(/~0/g, "~");
function lookup(pointer) {
  if (pointer === "") return { found: true, value: doc };
  if (!pointer.startsWith("/")) return { found: false };
  let node = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = unescape(decodeURIComponent(raw));
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, key)) return { found: false };
    node = node[key];
  }
  return { found: true, value: node };
}

function checkRef(target, where) {
  if (typeof target !== "string") {
    problems.push(`$ref at ${where} is not a string`);
    return;
  }
  if (!target.startsWith("#")) {
    problems.push(`$ref at ${where} is external (${target}); this document must be self-contained`);
    return;
  }
  if (!lookup(target.slice(1)).found) problems.push(`dangling $ref at ${where}: ${target}`);
}

function walk(node, where) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => walk(v, `${where}/${i}`));
    return;
  }
  if (node === null || typeof node !== "object") return;
  for (const [key, value] of Object.entries(node)) {
    const at = `${where}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
    if (key === "$ref" && typeof value !== "object") {
      checkRef(value, at);
    } else if (key === "mapping" && where.endsWith("/discriminator") && value && typeof value === "object") {
      for (const [name, target] of Object.entries(value))
        if (typeof target === "string" && target.startsWith("#")) checkRef(target, `${at}/${name}`);
    } else {
      walk(value, at);
    }
  }
}
walk(doc, "#");

// operationIds must be unique.
const seen = new Map();
const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
for (const [p, item] of Object.entries(doc.paths || {})) {
  for (const m of methods) {
    const id = item?.[m]?.operationId;
    if (id === undefined) continue;
    if (seen.has(id)) problems.push(`operationId ${id} is used by ${seen.get(id)} and ${m.toUpperCase()} ${p}`);
    else seen.set(id, `${m.toUpperCase()} ${p}`);
  }
}

if (problems.length) {
  console.error(`openapi: ${path} is not a valid OpenAPI 3.1 document:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`openapi: ${path} is a valid OpenAPI ${doc.openapi} document`);
