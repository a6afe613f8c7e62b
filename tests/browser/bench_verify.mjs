// Browser verification throughput: a 100,000-decision log (docket demo), exported, verified by the
// page in headless Chromium, next to docket-ledger natively and the component in wasmtime on the
// same export in the same run (docket-bench verify-export). Prints a Markdown row for BENCHMARKS.md.
//
// Usage: node tests/browser/bench_verify.mjs <target dir (holding release/docket and release/docket-bench)> [count]

import { launchChromium } from "./chromium.js";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, statSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [target, countArg] = process.argv.slice(2);
const count = Number(countArg || 100000);
const docket = join(target, "release", "docket");
const work = mkdtempSync(join(tmpdir(), "docket-browser-bench-"));
execFileSync(docket, ["demo", "--dir", join(work, "demo"), "--count", String(count)], { stdio: "ignore" });
const exportFile = join(work, "log.jsonl");
execFileSync(docket, ["log", "export", join(work, "demo", "log"), "-o", exportFile]);
const pub = join(work, "demo", "demo.pub");
const baselines = JSON.parse(execFileSync(join(target, "release", "docket-bench"), ["verify-export", exportFile, pub]).toString());

const server = spawn(docket, ["serve", "--addr", "127.0.0.1:0", "--dir", join(work, "serve")], { stdio: ["ignore", "pipe", "ignore"] });
const base = await new Promise((resolve) => {
  createInterface({ input: server.stdout }).on("line", (l) => {
    const m = l.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
});
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(`${base}/ui/`);
  let best = Infinity;
  let entries = 0;
  for (let round = 0; round < 3; round++) {
    await page.evaluate(() => { document.getElementById("result").dataset.verdict = ""; });
    await page.setInputFiles("#export-file", exportFile);
    await page.fill("#key-text", readFileSync(pub, "utf8").trim());
    await page.click("#verify-file");
    await page.waitForFunction(() => document.getElementById("result").dataset.verdict, null, { timeout: 600000 });
    const report = await page.evaluate(() => window.lastReport);
    if (!report.ok) throw new Error(`the page rejected a genuine log: ${report.message}`);
    best = Math.min(best, report.seconds);
    entries = report.entries;
  }
  const wasm = (await (await fetch(`${base}/ui/docket_web_bg.wasm`)).arrayBuffer()).byteLength;
  const js = (await (await fetch(`${base}/ui/docket_web.js`)).arrayBuffer()).byteLength
    + (await (await fetch(`${base}/ui/app.js`)).arrayBuffer()).byteLength;
  const browserRate = entries / best;
  console.log(`export: ${entries} entries, ${statSync(exportFile).size} bytes`);
  console.log("| verifier | entries/s | vs native |");
  console.log("|---|---|---|");
  console.log(`| browser page (Chromium, wasm-bindgen; streaming, incl. table rows) | ${browserRate.toFixed(0)} | ${(browserRate / baselines.native_entries_per_s).toFixed(2)}x |`);
  console.log(`| component in wasmtime | ${baselines.component_entries_per_s} | ${(baselines.component_entries_per_s / baselines.native_entries_per_s).toFixed(2)}x |`);
  console.log(`| docket-ledger native | ${baselines.native_entries_per_s} | 1.00x |`);
  console.log(`sizes: docket_web_bg.wasm ${wasm} bytes; JS (docket_web.js + app.js) ${js} bytes`);
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
