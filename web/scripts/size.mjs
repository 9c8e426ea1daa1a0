#!/usr/bin/env node
// Size of the production build (web/dist): every file raw and gzipped, the total, and
// what the first load of the overview fetches (index.html and the assets it links).
// Prints a table, then one JSON line.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const dist = resolve(dirname(fileURLToPath(import.meta.url)), "../dist");
const files = [];
(function walk(d) {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
})(dist);
const rows = files
  .map((p) => {
    const b = readFileSync(p);
    return { file: relative(dist, p), raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
  })
  .sort((a, b) => b.gzip - a.gzip);
const html = readFileSync(join(dist, "index.html"), "utf8");
const linked = new Set([...html.matchAll(/(?:src|href)="\/?(assets\/[^"]+)"/g)].map((m) => m[1]));
const first = rows.filter((r) => r.file === "index.html" || linked.has(r.file));
const sum = (rs, k) => rs.reduce((a, r) => a + r[k], 0);
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const r of rows) console.log(`${r.file.padEnd(44)} ${kb(r.raw).padStart(11)} ${kb(r.gzip).padStart(11)} gzip${linked.has(r.file) || r.file === "index.html" ? "  (first load)" : ""}`);
console.log(`${"total".padEnd(44)} ${kb(sum(rows, "raw")).padStart(11)} ${kb(sum(rows, "gzip")).padStart(11)} gzip`);
console.log(`${"first load of the overview".padEnd(44)} ${kb(sum(first, "raw")).padStart(11)} ${kb(sum(first, "gzip")).padStart(11)} gzip`);
console.log(
  JSON.stringify({
    total_raw_bytes: sum(rows, "raw"),
    total_gzip_bytes: sum(rows, "gzip"),
    first_load_raw_bytes: sum(first, "raw"),
    first_load_gzip_bytes: sum(first, "gzip"),
    files: rows.length,
  }),
);
