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
import { createHash, generateKeyPairSync, sign } from "node:crypto";

const [docket, artifacts] = process.argv.slice(2);
if (!docket || !artifacts) throw new Error("usage: verify_page.mjs <docket binary> <artifact dir>");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "docket-browser-"));

function start(args, what) {
  const child = spawn(docket, args, { stdio: ["ignore", "pipe", "ignore"] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ child, base: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`${what} exited (${code})`)));
  });
}

// The log's key first, so a witness can follow the log from its first checkpoint.
execFileSync(docket, ["keygen", "--out", join(work, "data"), "--stem", "docket", "--name", "browser.test/log"]);
const witness = await start(
  ["witness", "--addr", "127.0.0.1:0", "--dir", join(work, "witness"), "--name", "browser.test/witness",
    "--log", join(work, "data", "docket.pub")],
  "docket witness",
);
const witnessKey = readFileSync(join(work, "witness", "witness.pub"), "utf8").trim();
const { child, base } = await start(
  ["serve", "--addr", "127.0.0.1:0", "--dir", join(work, "data"), "--witness", `${witnessKey}@${witness.base}`,
    "--witness-interval-ms", "20"],
  "docket serve",
);
const browser = await launchChromium();
try {
  // Some decisions to verify.
  const users = ["alice", "bob", "carol", "mallory"];
  for (let i = 0; i < 60; i++) {
    const input = { user: users[i % 4], action: i % 3 ? "read" : "deploy", resource: { type: "service", id: `s${i}` } };
    const r = await fetch(`${base}/v1/data/rbac/allow`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input }) });
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
  assert.match(server.text, /self-signed only/);

  // Witnesses: the page holds the log to the checkpoint the witness cosigned, and says so; a
  // witness that never cosigned it leaves the log not witnessed, which the page says too.
  const deadline = Date.now() + 30000;
  while ((await (await fetch(`${base}/v1/log/witnessed`)).json().catch(() => ({}))).size !== size) {
    assert.ok(Date.now() < deadline, "the witness did not cosign the latest checkpoint in 30 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  await page.fill("#witness-keys", witnessKey);
  await page.fill("#witness-quorum", "1");
  const witnessed = await verdict("#verify-server");
  assert.equal(witnessed.verdict, "verified", witnessed.text);
  assert.match(witnessed.text, new RegExp(`the first ${size} entries are in a checkpoint cosigned by 1 of 1 witnesses`));
  {
    const { publicKey: pk } = generateKeyPairSync("ed25519");
    const raw = Buffer.from(pk.export({ format: "jwk" }).x, "base64url");
    const name = "stranger.test/witness";
    const id = createHash("sha256").update(Buffer.concat([Buffer.from(name + "\n"), Buffer.from([4]), raw])).digest().subarray(0, 4);
    await page.fill("#witness-keys", `${name}+${id.toString("hex")}+${Buffer.concat([Buffer.from([4]), raw]).toString("base64")}`);
  }
  const stranger = await verdict("#verify-server");
  assert.equal(stranger.verdict, "rejected", stranger.text);
  assert.match(stranger.text, /signed by its operator alone/);
  // The export too, with the witness's own answer pasted as the cosigned checkpoint.
  const fromWitness = await (await fetch(`${witness.base}/checkpoint?origin=${encodeURIComponent("browser.test/log")}`)).text();
  execFileSync(docket, ["log", "export", join(work, "data", "log"), "-o", good]);
  await page.setInputFiles("#export-file", good);
  await page.fill("#key-text", vkey);
  await page.fill("#witness-keys", witnessKey);
  await page.fill("#cosigned-note", fromWitness);
  const exportWitnessed = await verdict("#verify-file");
  assert.equal(exportWitnessed.verdict, "verified", exportWitnessed.text);
  assert.match(exportWitnessed.text, /cosigned by 1 of 1 witnesses/);
  await page.screenshot({ path: join(artifacts, "verifier-witnessed.png"), fullPage: true });
  await page.fill("#witness-keys", "");
  await page.fill("#cosigned-note", "");
  console.log("browser: held to the witness's cosigned checkpoint (server and export); a witness that never cosigned leaves the log not witnessed");
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

  // What the page shows must never outrun what verified (issue 20 item 5, issue 30 item 9).
  const shown = () => page.evaluate(() => ({
    notVerifiedBanner: !document.getElementById("not-verified").hidden,
    explore: document.getElementById("explore").dataset.verified,
    counts: document.getElementById("shown").textContent,
    paths: [...document.querySelectorAll("#entries tbody tr td:nth-child(4)")].map((td) => td.textContent),
    warned: [...document.querySelectorAll("#entries tbody tr.warn td:nth-child(4)")].map((td) => td.title),
  }));
  // A wrong key: rejected at entry 0, and nothing is shown as the log's content.
  const other = execFileSync(docket, ["keygen", "--out", work, "--stem", "other", "--name", "other.key"]).toString().trim();
  await page.setInputFiles("#export-file", good);
  await page.fill("#key-text", other);
  const wrongKey = await verdict("#verify-file");
  assert.equal(wrongKey.verdict, "rejected", wrongKey.text);
  let view = await shown();
  assert.ok(view.notVerifiedBanner, "a rejected log carries the NOT VERIFIED banner");
  assert.equal(view.explore, "no");
  assert.ok(!/in the log/.test(view.counts), view.counts);
  // An entry dropped from the middle: the count says what was read, not "in the log".
  const dropped = join(work, "dropped.jsonl");
  const goodLines = readFileSync(good, "utf8").split("\n");
  const dropAt = goodLines.map((l, i) => (l.includes('"kind":"decision"') ? i : -1)).filter((i) => i >= 0)[3];
  writeFileSync(dropped, goodLines.filter((_, i) => i !== dropAt).join("\n"));
  await page.fill("#key-text", vkey);
  await page.setInputFiles("#export-file", dropped);
  const drop = await verdict("#verify-file");
  assert.equal(drop.verdict, "rejected", drop.text);
  view = await shown();
  assert.ok(view.notVerifiedBanner && /NOT VERIFIED/.test(view.counts), view.counts);
  console.log(`browser: a wrong key and a dropped entry are rejected and shown as NOT VERIFIED (${view.counts})`);

  // The server's own key, not one the user gave: verified, but it says how little that proves.
  await page.fill("#server-url", base);
  await page.fill("#server-key", "");
  const selfKeyed = await verdict("#verify-server");
  assert.equal(selfKeyed.verdict, "verified", selfKeyed.text);
  assert.match(selfKeyed.text, /key the server itself supplied/);

  // A lying server: genuine `encoded` bytes, every other field rewritten. The table is read
  // from the verified bytes, so none of the invented fields appear.
  const { createServer } = await import("node:http");
  const liar = createServer(async (req, res) => {
    const upstream = await fetch(`${base}${req.url}`);
    let body = await upstream.text();
    if (req.url.startsWith("/v1/log/entries")) {
      const parsed = JSON.parse(body);
      for (const e of parsed.entries) {
        e.kind = "decision";
        e.record = { path: "payments/refund", result: false, decision_id: "forged" };
        e.decision_id = "forged";
        e.timestamp = "2001-01-01T00:00:00Z";
      }
      body = JSON.stringify(parsed);
    }
    res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "text/plain", "access-control-allow-origin": "*" });
    res.end(body);
  });
  await new Promise((r) => liar.listen(0, "127.0.0.1", r));
  const liarUrl = `http://127.0.0.1:${liar.address().port}`;
  await page.fill("#server-url", liarUrl);
  await page.fill("#server-key", vkey);
  const lied = await verdict("#verify-server");
  assert.equal(lied.verdict, "verified", lied.text);
  view = await shown();
  assert.ok(view.paths.length > 0);
  assert.ok(!view.paths.some((p) => p.includes("payments/refund")), view.paths.join(","));
  assert.ok(view.paths.includes("rbac/allow"), view.paths.join(","));
  liar.close();
  console.log("browser: a server rewriting every field but the sealed bytes changes nothing shown");

  // A path that looks like another: flagged and escaped, never shown as `rbac/allow`.
  const oldNote = await (await fetch(`${base}/v1/log/checkpoint`)).text();
  const token = readFileSync(join(work, "data", "token"), "utf8").trim();
  const ingested = await fetch(`${base}/logs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: JSON.stringify([{ decision_id: "rtl-1", path: "rbac\u202e/wolla", result: true }]),
  });
  assert.equal(ingested.status, 200);
  await page.fill("#server-url", base);
  const withRtl = await verdict("#verify-server");
  assert.equal(withRtl.verdict, "verified", withRtl.text);
  view = await shown();
  assert.ok(view.warned.some((w) => /direction-changing/.test(w)), JSON.stringify(view.warned));
  assert.ok(view.paths.some((p) => p.includes("\\u{202e}")), view.paths.join(","));
  console.log("browser: a direction-changing path is escaped and flagged");

  // A rollback: a server showing an older, genuinely signed state of its log. Held to a
  // checkpoint the user kept, the page rejects it; without one it cannot know.
  const newNote = await (await fetch(`${base}/v1/log/checkpoint`)).text();
  const rollback = createServer(async (req, res) => {
    const upstream = await fetch(`${base}${req.url}`);
    const body = req.url.startsWith("/v1/log/checkpoint") ? oldNote : await upstream.text();
    res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "text/plain", "access-control-allow-origin": "*" });
    res.end(body);
  });
  await new Promise((r) => rollback.listen(0, "127.0.0.1", r));
  await page.fill("#server-url", `http://127.0.0.1:${rollback.address().port}`);
  await page.fill("#server-key", vkey);
  await page.fill("#trusted-note", "");
  const unheld = await verdict("#verify-server");
  assert.equal(unheld.verdict, "verified", unheld.text);
  await page.fill("#trusted-note", newNote);
  const held = await verdict("#verify-server");
  assert.equal(held.verdict, "rejected", held.text);
  assert.match(held.text, /truncated/);
  await page.fill("#server-url", base);
  const current = await verdict("#verify-server");
  assert.equal(current.verdict, "verified", current.text);
  assert.match(current.text, /trusted checkpoint/);
  // The same tree head signed by a key that is not the log's: not a checkpoint the page holds
  // the log to (the signature is checked in wasm, by the key in force at its size).
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
  const name = newNote.split("\n")[0];
  const keyId = createHash("sha256").update(Buffer.concat([Buffer.from(name + "\n"), Buffer.from([1]), raw])).digest().subarray(0, 4);
  const text = newNote.split("\n").slice(0, 3).join("\n") + "\n";
  const signature = sign(null, Buffer.from(text), privateKey);
  const foreignNote = `${text}\n\u2014 ${name} ${Buffer.concat([keyId, signature]).toString("base64")}\n`;
  await page.fill("#trusted-note", foreignNote);
  const foreign = await verdict("#verify-server");
  assert.equal(foreign.verdict, "rejected", foreign.text);
  assert.match(foreign.text, /not signed by the key in force/);
  await page.fill("#trusted-note", "");
  rollback.close();
  console.log("browser: a rolled-back server is rejected when the page holds a checkpoint kept from before, and a checkpoint signed by another key is not held to");

  // The page's own headers.
  const headers = (await fetch(`${base}/ui/`)).headers;
  assert.match(headers.get("content-security-policy") ?? "", /script-src 'self' 'wasm-unsafe-eval'/);
  assert.equal(headers.get("x-content-type-options"), "nosniff");
  assert.deepEqual(errors, [], "the page threw no errors through all of the above");
  assert.deepEqual(errors, []);
  console.log(`browser: screenshots in ${artifacts}`);
} finally {
  await browser.close();
  child.kill("SIGTERM");
  witness.child.kill("SIGTERM");
}
