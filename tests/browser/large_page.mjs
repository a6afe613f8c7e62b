// The verifier page on a large log, in headless Chromium: a `docket demo` log of N decisions
// (default 1,000,000), verified from its export (file mode; server mode draws the same chart and
// table from the same rows). Checks what the page shows: the verdict, the entry count,
// the chart's bars (their allow and deny counts add up to the log's decisions), the table's
// first 500 rows, and no page errors. The test command runs it at 150,000 (past the ~110,000
// where the chart once threw); `just page-million` at 1,110,000 requests (about 1,003,000
// entries: a tenth are health checks the logging rules drop into tallies).
//
// Usage: node tests/browser/large_page.mjs <docket binary> [count]

import { launchChromium } from "./chromium.js";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const [docket, countArg] = process.argv.slice(2);
const count = Number(countArg || 1000000);
const work = mkdtempSync(join(tmpdir(), "docket-large-page-"));
const demo = join(work, "demo");
execFileSync(docket, ["demo", "--dir", demo, "--count", String(count)], { stdio: "ignore" });
const exportFile = join(work, "log.jsonl");
execFileSync(docket, ["log", "export", join(demo, "log"), "-o", exportFile]);
const vkey = readFileSync(join(demo, "demo.pub"), "utf8").trim();
const cli = JSON.parse(execFileSync(docket, ["verify", join(demo, "log"), "--pub", join(demo, "demo.pub"), "--json"]).toString());
assert.ok(cli.ok, JSON.stringify(cli));

const server = spawn(docket, ["serve", "--addr", "127.0.0.1:0", "--dir", join(work, "serve")], { stdio: ["ignore", "pipe", "ignore"] });
const base = await new Promise((resolve, reject) => {
  createInterface({ input: server.stdout }).on("line", (l) => {
    const m = l.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error(`docket serve exited (${code})`)));
});
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(`${base}/ui/`);
  await page.setInputFiles("#export-file", exportFile);
  await page.fill("#key-text", vkey);
  await page.evaluate(() => { document.getElementById("result").dataset.verdict = ""; });
  await page.click("#verify-file");
  await page
    .waitForFunction(() => document.getElementById("result").dataset.verdict, null, { timeout: 1800000, polling: 500 })
    .catch((e) => { throw new Error(`no verdict (${e.message}); page errors: ${errors.join("; ")}`); });
  const shown = await page.evaluate(() => {
    const bars = [...document.querySelectorAll("#chart rect title")].map((t) => t.textContent);
    return {
      verdict: document.getElementById("result").dataset.verdict,
      text: document.getElementById("result").innerText,
      report: window.lastReport,
      bars,
      rows: document.querySelectorAll("#entries tbody tr").length,
      shownLine: document.getElementById("shown").textContent,
    };
  });
  assert.deepEqual(errors, [], "page errors");
  assert.equal(shown.verdict, "verified", shown.text);
  assert.equal(shown.report.entries, cli.entries);
  assert.equal(shown.report.root, cli.root);
  assert.match(shown.text, new RegExp(`Verified: ${cli.entries} entries`));
  // Every access decision is in the chart: allow + deny bars add up to the decisions the
  // verifier counted (health checks are dropped into tallies by the logging rules).
  const charted = shown.bars.reduce((sum, t) => sum + Number(t.split(" ")[0]), 0);
  const decided = shown.report.kinds.decision;
  assert.ok(decided > 0.8 * count, `${decided} decisions of ${count}`);
  assert.equal(charted, decided, "the chart counts every decision");
  assert.equal(shown.rows, 500, shown.shownLine);
  assert.match(shown.shownLine, new RegExp(`of ${cli.entries} matching entries shown`));
  console.log(`large page: ${cli.entries} entries (${statSync(exportFile).size} bytes) verified in ${shown.report.seconds.toFixed(1)} s, ${decided} decisions charted, 500 rows shown`);
} finally {
  await browser.close();
  server.kill();
  rmSync(work, { recursive: true, force: true });
}
