// The docket log verifier page. Verification is docket-ledger's, compiled to WebAssembly
// (docket_web.js); this file only reads files or a server, feeds the verifier, and shows the
// report and the entries. Every row shown is one the verifier accepted, decoded by it from the
// entry's checked bytes (`takeRows`): nothing the page shows comes from a field beside them.

import init, { ExportVerifier, LogVerifier, verifyCheckpoint, witnessedHead } from "./docket_web.js";

const $ = (id) => document.getElementById(id);
const ready = init({ module_or_path: new URL("docket_web_bg.wasm", import.meta.url) });
let rows = [];
let badSeq = null;
let verified = false;

// Rows from the verifier: [seq, kind, time, path, outcome, decision_id, warnings].
function takeRows(verifier) {
  for (const [seq, kind, time, path, outcome, id, warnings] of JSON.parse(verifier.takeRows())) {
    // `iso`: the time to the millisecond, as Date and the filters' datetime inputs read it.
    rows.push({ seq, kind, time, iso: time.slice(0, 23) + "Z", path, outcome, id, warnings });
  }
}

// The witness policy the user gave, applied to the cosigned checkpoints at hand (the pasted
// note, and for a server its /v1/log/witnessed): null without witness keys; else the head the
// log must reach ({ok, size, root, cosigned}) or why there is none ({ok: false, message}).
async function witnessHead(origin, base) {
  const keys = $("witness-keys").value.split("\n").map((k) => k.trim()).filter(Boolean);
  if (keys.length === 0) return null;
  if ($("trusted-note").value.trim()) {
    throw new Error("Give a checkpoint you trust or witnesses, not both: each names the checkpoint the log is held to.");
  }
  const quorum = Number($("witness-quorum").value || 1);
  const notes = [];
  const pasted = $("cosigned-note").value;
  if (pasted.trim()) notes.push(pasted);
  if (base) {
    const answer = await fetch(`${base}/v1/log/witnessed?quorum=${quorum}`);
    if (answer.ok) notes.push((await answer.json()).note);
  }
  const head = JSON.parse(witnessedHead(origin, notes, keys, quorum));
  head.of = keys.length;
  head.quorum = quorum;
  return head;
}

function witnessLine(head) {
  const who = head.cosigned.map((c) => `${c.witness} at ${c.time}`).join(", ");
  return `the first ${head.size} entries are in a checkpoint cosigned by ${head.cosigned.length} of ${head.of} witnesses (quorum ${head.quorum}): ${who}`;
}

function notWitnessed(head, source) {
  window.lastReport = { ok: false, failure: "not-witnessed", message: head.message };
  showReport({ ok: false, failure: "not-witnessed", message: head.message, location: "end of log", seq: null }, source);
}

function showReport(report, source, caveat, witnessed) {
  const box = $("result");
  box.replaceChildren();
  const title = document.createElement("strong");
  const list = document.createElement("dl");
  const add = (k, v) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    list.append(dt, dd);
  };
  verified = report.ok;
  if (report.ok) {
    box.className = caveat ? "result caveat" : "result ok";
    title.textContent = `Verified: ${report.entries} entries, nothing changed, dropped or reordered`;
    if (caveat) {
      title.textContent += ` (${caveat})`;
      add("caveat", caveat);
    }
    add("source", source);
    add("origin", report.origin);
    add("decisions", `${report.kinds.decision} sealed here, ${report.kinds.ingested} ingested`);
    add("checkpoints", `${report.checkpoints} (last at size ${report.last_checkpoint_size})`);
    for (const p of report.prunes) {
      add("pruned", `entries ${p.first}..=${p.last}: ${p.pruned_found} payloads removed under retention ` +
        `policy version ${p.policy_versions.join(", ")} (prune entry ${p.seq}, ${p.at})`);
    }
    add("time range", `${report.first_timestamp} … ${report.last_timestamp}`);
    add("root", report.root);
    add("signed by", report.keys.join(", "));
    if (witnessed) {
      add("witnessed", witnessLine(witnessed));
      if (report.entries > witnessed.size) add("after it", `${report.entries - witnessed.size} entries are signed by the log's key alone`);
    } else {
      if (report.trusted_size != null) add("trusted checkpoint", `reached: the log extends the one at size ${report.trusted_size}`);
      add("witnesses", "none checked: self-signed only, so whoever holds the log's key could have rewritten it");
    }
    badSeq = null;
  } else {
    box.className = "result bad";
    title.textContent = `Rejected: ${report.message}`;
    add("source", source);
    add("failure", report.failure);
    add("where", report.seq === null ? report.location : `${report.location} ${report.seq}`);
    if (witnessed) add("held to", witnessLine(witnessed));
    badSeq = report.location === "entry" ? report.seq : null;
    // Where verification stopped is shown, never what the rejected entry claims.
    if (badSeq !== null) {
      rows.push({ seq: badSeq, kind: "", time: "", iso: "", path: `rejected here: ${report.failure}`, outcome: "", id: "", warnings: [] });
    }
  }
  box.append(title, list);
  box.dataset.verdict = report.ok ? "verified" : "rejected";
  const explore = $("explore");
  explore.hidden = rows.length === 0;
  explore.dataset.verified = report.ok ? "yes" : "no";
  $("not-verified").hidden = report.ok;
  drawChart();
  renderTable();
}

function showError(message) {
  const box = $("result");
  box.className = "result bad";
  box.dataset.verdict = "error";
  box.textContent = message;
}

// Hands the checkpoint the user trusts, if any, to the verifier: the wasm verifier requires the
// log to reach it, checks its origin and its signature by the key in force at its size.
function holdTo(verifier) {
  const note = $("trusted-note").value;
  if (!note.trim()) return;
  verifier.expectCheckpoint(note.endsWith("\n") ? note : note + "\n");
}

async function publicKey() {
  const file = $("key-file").files[0];
  const text = file ? await file.text() : $("key-text").value;
  if (!text.trim()) throw new Error("Give the log's public key (its .pub file).");
  return text.trim();
}

async function verifyFile(event) {
  event.preventDefault();
  await ready;
  const file = $("export-file").files[0];
  if (!file) return showError("Choose a log export file.");
  let verifier;
  let witnessed = null;
  try {
    const key = await publicKey();
    verifier = new ExportVerifier(key);
    holdTo(verifier);
    // The export's header line names its origin, which the cosigned checkpoints must carry.
    const header = (await file.slice(0, 65536).text()).split("\n")[0];
    let origin = "";
    try { origin = JSON.parse(header).origin ?? ""; } catch { /* the verifier names a bad header */ }
    witnessed = await witnessHead(origin, null);
    if (witnessed && !witnessed.ok) return notWitnessed(witnessed, file.name);
    if (witnessed) verifier.expectTreeHead(BigInt(witnessed.size), witnessed.root);
  } catch (e) {
    return showError(String(e.message || e));
  }
  rows = [];
  badSeq = null;
  const progress = $("progress");
  progress.hidden = false;
  progress.max = file.size || 1;
  progress.value = 0;
  const started = performance.now();
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  let read = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    read += value.length;
    const going = verifier.pushText(value);
    takeRows(verifier);
    progress.value = read;
    if (!going) break;
    // Let the page paint the progress bar on large files.
    await new Promise((r) => setTimeout(r, 0));
  }
  verifier.endText();
  takeRows(verifier);
  const report = JSON.parse(verifier.finish());
  report.seconds = (performance.now() - started) / 1000;
  progress.hidden = true;
  window.lastReport = report;
  showReport(report, `${file.name} (${file.size} bytes, ${report.seconds.toFixed(2)} s)`, "", witnessed);
}

async function verifyServer(event) {
  event.preventDefault();
  await ready;
  const base = ($("server-url").value || location.origin).replace(/\/$/, "");
  const token = $("server-token").value.trim();
  const auth = token ? { headers: { authorization: `Bearer ${token}` } } : {};
  try {
    const typed = $("server-key").value.trim();
    const key = typed || (await (await fetch(`${base}/v1/log/public-key`)).text()).trim();
    // A key the server supplied proves only that the server's log agrees with itself.
    const caveat = typed ? "" : "checked against the key the server itself supplied, so it proves only that the server's log is self-consistent; give the log's public key to check it is the log you expect";
    const note = await (await fetch(`${base}/v1/log/checkpoint`)).text();
    const head = JSON.parse(verifyCheckpoint(note, key));
    if (!head.ok) return showError("The server's checkpoint is not signed by this key.");
    const verifier = new LogVerifier(key);
    holdTo(verifier);
    const witnessed = await witnessHead(head.origin, base);
    if (witnessed && !witnessed.ok) return notWitnessed(witnessed, base);
    if (witnessed) verifier.expectTreeHead(BigInt(witnessed.size), witnessed.root);
    rows = [];
    badSeq = null;
    const progress = $("progress");
    progress.hidden = false;
    progress.max = head.size || 1;
    let going = true;
    for (let start = 0; start < head.size && going; start += 1000) {
      const limit = Math.min(1000, head.size - start);
      const answer = await fetch(`${base}/v1/log/entries?start=${start}&limit=${limit}`, auth);
      if (answer.status === 401) throw new Error("the server needs a read token to show its entries (the read token field)");
      const page = await answer.json();
      for (const e of page.entries) {
        if (!(going = verifier.pushEntry(e.encoded))) break;
      }
      takeRows(verifier);
      progress.value = start + limit;
    }
    if (going) verifier.pushCheckpoint(note);
    const report = JSON.parse(verifier.finish());
    progress.hidden = true;
    window.lastReport = report;
    showReport(report, `${base} (checkpoint at size ${head.size})`, caveat, witnessed);
  } catch (e) {
    showError(`Could not read the server: ${e.message || e}`);
  }
}

function filtered() {
  const outcome = $("f-outcome").value;
  const path = $("f-path").value.trim();
  const id = $("f-id").value.trim();
  const from = $("f-from").value ? new Date($("f-from").value + "Z").toISOString() : "";
  const to = $("f-to").value ? new Date($("f-to").value + "Z").toISOString() : "";
  return rows.filter((r) =>
    (!outcome || r.outcome === outcome) &&
    (!path || r.path.includes(path)) &&
    (!id || r.id.includes(id)) &&
    (!from || r.iso >= from) &&
    (!to || r.iso <= to));
}

function renderTable() {
  const limit = 500;
  let list = filtered();
  // The bad entry is always shown, first.
  if (badSeq !== null) list = [...list.filter((r) => r.seq === badSeq), ...list.filter((r) => r.seq !== badSeq)];
  const body = $("entries").tBodies[0];
  body.replaceChildren(...list.slice(0, limit).map((r) => {
    const tr = document.createElement("tr");
    if (r.seq === badSeq) tr.className = "bad";
    for (const [value, cls] of [[r.seq], [r.time.replace("T", " ").replace("Z", "")], [r.kind], [r.path], [r.outcome, r.outcome], [r.id]]) {
      const td = document.createElement("td");
      td.textContent = value;
      if (cls) td.className = cls;
      tr.append(td);
    }
    if (r.warnings.length > 0) {
      tr.classList.add("warn");
      tr.cells[3].title = r.warnings.join("; ");
      tr.cells[3].textContent = `\u26a0 ${r.path}`;
    }
    return tr;
  }));
  const total = verified
    ? `${rows.length} in the log`
    : `${rows.length - (badSeq === null ? 0 : 1)} read before the log was rejected; NOT VERIFIED`;
  $("shown").textContent = `${Math.min(limit, list.length)} of ${list.length} matching entries shown (${total})`;
}

function drawChart() {
  const svg = $("chart");
  const decisions = rows.filter((r) => r.outcome === "allow" || r.outcome === "deny");
  svg.replaceChildren();
  if (decisions.length === 0) return;
  const times = decisions.map((r) => Date.parse(r.iso));
  // A loop, not Math.min(...times): spreading a million arguments overflows the stack.
  let lo = Infinity, hi = -Infinity;
  for (const t of times) { if (t < lo) lo = t; if (t > hi) hi = t; }
  hi += 1;
  const buckets = 40;
  const counts = Array.from({ length: buckets }, () => ({ allow: 0, deny: 0 }));
  decisions.forEach((r, i) => { counts[Math.min(buckets - 1, Math.floor(((times[i] - lo) / (hi - lo)) * buckets))][r.outcome]++; });
  const max = counts.reduce((m, c) => Math.max(m, c.allow + c.deny), 0);
  const w = 800 / buckets;
  const ns = "http://www.w3.org/2000/svg";
  counts.forEach((c, i) => {
    let y = 160;
    for (const [k, color] of [["allow", "#2e7d32"], ["deny", "#c62828"]]) {
      const h = (c[k] / max) * 150;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", i * w + 1); rect.setAttribute("width", w - 2);
      rect.setAttribute("y", y - h); rect.setAttribute("height", h); rect.setAttribute("fill", color);
      const tip = document.createElementNS(ns, "title");
      tip.textContent = `${c[k]} ${k}`;
      rect.append(tip);
      svg.append(rect);
      y -= h;
    }
  });
}

$("file-form").addEventListener("submit", verifyFile);
$("server-form").addEventListener("submit", verifyServer);
$("filters").addEventListener("input", renderTable);
if (location.protocol.startsWith("http")) $("server-url").placeholder = location.origin;
