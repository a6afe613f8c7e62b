// The docket log verifier page in real headless Chromium (Debian's, driven by playwright-core),
// served by a real `docket serve` on loopback: a genuine export verifies, a tampered one is
// rejected naming the entry, and the server-backed check verifies the server's own log.
// Screenshots of both verdicts are saved as test artifacts.
//
// Usage: node tests/browser/verify_page.mjs <docket binary> <artifact dir>

import { launchChromium } from "./chromium.js";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const [docket, artifacts] = process.argv.slice(2);
if (!docket || !artifacts) throw new Error("usage: verify_page.mjs <docket binary> <artifact dir>");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "docket-browser-"));

function startServer() {
  const child = spawn(docket, ["serve", "--addr", "127.0.0.1:0", "--dir", join(work, "data")], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ child, base: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`docket serve exited (${code})`)));
  });
}

const { child, base } = await startServer();
const browser = await launchChromium();
try {
  // Some decisions to verify.
  const users = ["alice", "bob", "carol", "mallory"];
  for (let i = 0; i < 60; i++) {
    const input = { user: users[i % 4], action: i % 3 ? "read" : "deploy", resource: { type: "service", id: `s${i}` } };
    const r = await fetch(`${base}/v1/data/rbac/allow`, { method: "POST", body: JSON.stringify({ input }) });
    assert.equal(r.status, 200);
  }
  const good = join(work, "good.jsonl");
  execFileSync(docket, ["log", "export", join(work, "data", "log"), "-o", good]);
  const vkey = readFileSync(join(work, "data", "docket.pub"), "utf8").trim();

  // The tampered copy: one decision's result flipped inside its record.
  const lines = readFileSync(good, "utf8").split("\n");
  const victim = lines.findIndex((l) => l.includes('\\"result\\":true') && l.includes('"kind":"decision"'));
  assert.ok(victim > 0, "no allowed decision to tamper with");
  const victimSeq = JSON.parse(lines[victim]).seq;
  lines[victim] = lines[victim].replace('\\"result\\":true', '\\"result\\":false');
  const tampered = join(work, "tampered.jsonl");
  writeFileSync(tampered, lines.join("\n"));

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(`${base}/ui/`);
  const verdict = async (button) => {
    await page.evaluate(() => { document.getElementById("result").dataset.verdict = ""; });
    await page.click(button);
    await page
      .waitForFunction(() => document.getElementById("result").dataset.verdict, null, { timeout: 30000 })
      .catch((e) => { throw new Error(`no verdict from the page (${e.message}); page errors: ${errors.join("; ")}`); });
    return page.evaluate(() => ({
      verdict: document.getElementById("result").dataset.verdict,
      text: document.getElementById("result").innerText,
      badRow: document.querySelector("tr.bad td")?.textContent ?? null,
      report: window.lastReport,
    }));
  };

  await page.setInputFiles("#export-file", good);
  await page.fill("#key-text", vkey);
  const ok = await verdict("#verify-file");
  assert.equal(ok.verdict, "verified", ok.text);
  assert.match(ok.text, /Verified: \d+ entries/);
  assert.equal(ok.report.kinds.decision, 60);
  await page.screenshot({ path: join(artifacts, "verifier-verified.png"), fullPage: true });
  console.log(`browser: genuine export verified (${ok.report.entries} entries, root ${ok.report.root.slice(0, 16)}…)`);

  await page.setInputFiles("#export-file", tampered);
  const bad = await verdict("#verify-file");
  assert.equal(bad.verdict, "rejected", bad.text);
  assert.ok(bad.text.includes(`entry ${victimSeq}: bad-hash`), bad.text);
  assert.equal(bad.badRow, String(victimSeq));
  await page.screenshot({ path: join(artifacts, "verifier-rejected.png"), fullPage: true });
  console.log(`browser: tampered export rejected at entry ${victimSeq} (bad-hash), row highlighted`);

  await page.fill("#server-url", base);
  await page.fill("#server-key", vkey);
  const server = await verdict("#verify-server");
  assert.equal(server.verdict, "verified", server.text);
  const size = (await (await fetch(`${base}/v1/log`)).json()).size;
  assert.equal(server.report.entries, size);
  console.log(`browser: the server's log verified from the page (${size} entries)`);
  // A decision's inclusion proof from the server, checked by the wasm bindings in the page.
  const proof = await page.evaluate(async ({ base, vkey }) => {
    const m = await import("./docket_web.js");
    const page = await (await fetch(`${base}/v1/log/entries?start=5&limit=1`)).json();
    const id = page.entries[0].decision_id;
    const bundle = await (await fetch(`${base}/v1/log/decisions/${id}`)).json();
    const head = JSON.parse(m.verifyCheckpoint(bundle.checkpoint, vkey));
    const leaf = btoa(String.fromCharCode(...bundle.entry.hash.match(/../g).map((h) => parseInt(h, 16))));
    const p = bundle.inclusion_proof;
    return {
      signed: head.ok,
      included: m.verifyInclusion(leaf, BigInt(p.leaf_index), BigInt(p.tree_size), p.hashes, head.root),
      wrongIndex: m.verifyInclusion(leaf, BigInt(p.leaf_index + 1), BigInt(p.tree_size), p.hashes, head.root),
    };
  }, { base, vkey });
  assert.deepEqual(proof, { signed: true, included: true, wrongIndex: false });
  console.log("browser: a decision's inclusion proof and its checkpoint check out in the page");
  assert.deepEqual(errors, []);
  console.log(`browser: screenshots in ${artifacts}`);
} finally {
  await browser.close();
  child.kill("SIGTERM");
}
