// The docket component (the very .wasm the host runs), transpiled by jco, evaluating and sealing
// the same decisions in Node 20 and in headless Chromium as the native crates did with the same
// clock and key (docket-bench js-vectors). Every entry and the checkpoint must be byte-identical.
//
// Usage: node tests/browser/component_js.mjs <component .wasm> <docket-bench binary>

import { launchChromium } from "./chromium.js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as shim from "@bytecodealliance/preview2-shim";
import { runVectors, differences } from "./component_run.js";

const [componentWasm, bench] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), "docket-jco-"));
const vectorsFile = join(work, "vectors.json");
execFileSync(bench, ["js-vectors", vectorsFile, "60"]);
const vectors = JSON.parse(readFileSync(vectorsFile, "utf8"));
const out = join(work, "component");
execFileSync(join(here, "node_modules", ".bin", "jco"),
  ["transpile", componentWasm, "-o", out, "--instantiation", "async", "--quiet"]);

let failed = false;
const report = (where, run) => {
  const diff = differences(vectors, run);
  console.log(`${where}: ${run.entries.length} entries, ${diff.length ? "DIFFERENT: " + diff.slice(0, 5).join("; ") : "byte-identical to native"} (${run.micros.toFixed(1)} µs per eval + seal)`);
  failed ||= diff.length > 0;
};

// Node 20.
const { instantiate } = await import(pathToFileURL(join(out, "docket_component.js")));
const nodeRun = await runVectors(instantiate, async (p) => WebAssembly.compile(await readFile(join(out, p))), shim, vectors);
report("node", nodeRun);

// Chromium: a page importing the same runner, the transpiled component and the browser shim.
const files = { "/": here, "/component/": out, "/shim/": join(here, "node_modules", "@bytecodealliance", "preview2-shim", "dist", "browser") };
const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };
const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x").pathname;
  if (url === "/vectors.json") return res.end(JSON.stringify(vectors));
  if (url === "/page.html") {
    res.setHeader("content-type", "text/html");
    return res.end(`<!doctype html><script type="importmap">{"imports": {
      "@bytecodealliance/preview2-shim/cli": "/shim/cli.js", "@bytecodealliance/preview2-shim/clocks": "/shim/clocks.js",
      "@bytecodealliance/preview2-shim/filesystem": "/shim/filesystem.js", "@bytecodealliance/preview2-shim/io": "/shim/io.js",
      "@bytecodealliance/preview2-shim/random": "/shim/random.js", "@bytecodealliance/preview2-shim/sockets": "/shim/sockets.js",
      "@bytecodealliance/preview2-shim/http": "/shim/http.js"}}</script>
      <script type="module">
        import { instantiate } from "/component/docket_component.js";
        import * as cli from "/shim/cli.js"; import * as clocks from "/shim/clocks.js";
        import * as io from "/shim/io.js"; import * as random from "/shim/random.js";
        import { runVectors } from "/component_run.js";
        const vectors = await (await fetch("/vectors.json")).json();
        window.run = await runVectors(instantiate, (p) => WebAssembly.compileStreaming(fetch("/component/" + p)),
          { cli, clocks, io, random }, vectors);
      </script>`);
  }
  const prefix = Object.keys(files).filter((k) => url.startsWith(k)).sort((a, b) => b.length - a.length)[0];
  const path = normalize(join(files[prefix], url.slice(prefix.length)));
  if (!path.startsWith(files[prefix])) { res.statusCode = 403; return res.end(); }
  try {
    const body = await readFile(path);
    res.setHeader("content-type", types[extname(path)] || "application/octet-stream");
    res.end(body);
  } catch {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${server.address().port}/page.html`);
  await page.waitForFunction(() => window.run, null, { timeout: 120000 })
    .catch((e) => { throw new Error(`the component did not run in Chromium: ${errors.join("; ") || e.message}`); });
  report("chromium", await page.evaluate(() => window.run));
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
