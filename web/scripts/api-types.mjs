#!/usr/bin/env node
// TypeScript types of the API, generated from the server's OpenAPI document.
//
//   node scripts/api-types.mjs generate [OPENAPI.json]  writes src/api/schema.d.ts
//   node scripts/api-types.mjs check [OPENAPI.json]     fails if src/api/schema.d.ts differs
//                                                       from what OPENAPI.json generates
//
// OPENAPI.json defaults to web/openapi.json (`fedics openapi > web/openapi.json`). `check`
// is how a test proves the UI was built against the API the binary serves: give it a fresh
// `fedics openapi` output.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(web, "src/api/schema.d.ts");
const [mode, specArg] = process.argv.slice(2);

if (mode !== "generate" && mode !== "check") {
  console.error("usage: api-types.mjs generate|check [OPENAPI.json]");
  process.exit(2);
}
// npm runs scripts in web/: resolve a relative path against where npm was started.
const specPath = specArg ? resolve(process.env.INIT_CWD ?? process.cwd(), specArg) : resolve(web, "openapi.json");

let spec;
try {
  spec = JSON.parse(readFileSync(specPath, "utf8"));
} catch (e) {
  console.error(`cannot read the OpenAPI document ${specPath}: ${e.message}`);
  process.exit(2);
}

const HEADER =
  "// Generated from the FedICS OpenAPI document by `npm run gen:api` (openapi-typescript).\n" +
  "// Do not edit: change the server, run `fedics openapi > web/openapi.json`, then `npm run gen:api`.\n\n";

async function render() {
  const ast = await openapiTS(spec, { alphabetize: true, silent: true });
  return HEADER + astToString(ast);
}

const text = await render();
if (mode === "generate") {
  writeFileSync(out, text);
  console.log(`wrote ${out} from ${specPath}`);
} else {
  let committed = "";
  try {
    committed = readFileSync(out, "utf8");
  } catch {
    console.error(`check:api: ${out} is missing; run npm run gen:api`);
    process.exit(1);
  }
  if (committed === text) {
    console.log(`check:api: src/api/schema.d.ts matches ${specPath}`);
    process.exit(0);
  }
  const a = committed.split("\n");
  const b = text.split("\n");
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  console.error(
    `check:api: src/api/schema.d.ts is out of date with ${specPath} (first difference at line ${i + 1}):\n` +
      `  committed: ${a[i] ?? "<end of file>"}\n` +
      `  generated: ${b[i] ?? "<end of file>"}\n` +
      "Regenerate with `fedics openapi > web/openapi.json && npm run gen:api`, then fix the UI where the types changed (npm run typecheck).",
  );
  process.exit(1);
}
