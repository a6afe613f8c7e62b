// Runs the docket component, transpiled by jco, on the vectors `docket-bench js-vectors` wrote:
// the same policies, requests, key and clock as the native run. Works in Node and in browsers:
// the caller passes jco's `instantiate`, a core-module loader and preview2-shim's modules.

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));

export async function runVectors(instantiate, getCoreModule, shim, vectors) {
  const now = BigInt(vectors.now_ns);
  // The component reads time from wasi:clocks/wall-clock: pin it to the native run's instant.
  const wallClock = {
    now: () => ({ seconds: now / 1000000000n, nanoseconds: Number(now % 1000000000n) }),
    resolution: () => ({ seconds: 0n, nanoseconds: 1 }),
  };
  const { cli, clocks, io, random } = shim;
  // jco's instantiate mode names imports without their package versions.
  const v = "";
  const imports = {
    "docket:audit/types": {},
    [`wasi:cli/environment${v}`]: cli.environment,
    [`wasi:cli/exit${v}`]: cli.exit,
    [`wasi:cli/stderr${v}`]: cli.stderr,
    [`wasi:cli/stdin${v}`]: cli.stdin,
    [`wasi:cli/stdout${v}`]: cli.stdout,
    [`wasi:cli/terminal-input${v}`]: cli.terminalInput,
    [`wasi:cli/terminal-output${v}`]: cli.terminalOutput,
    [`wasi:cli/terminal-stderr${v}`]: cli.terminalStderr,
    [`wasi:cli/terminal-stdin${v}`]: cli.terminalStdin,
    [`wasi:cli/terminal-stdout${v}`]: cli.terminalStdout,
    [`wasi:clocks/monotonic-clock${v}`]: clocks.monotonicClock,
    [`wasi:clocks/wall-clock${v}`]: wallClock,
    [`wasi:io/error${v}`]: io.error,
    [`wasi:io/poll${v}`]: io.poll,
    [`wasi:io/streams${v}`]: io.streams,
    [`wasi:random/insecure-seed${v}`]: random.insecureSeed,
    [`wasi:random/random${v}`]: random.random,
  };
  const root = await instantiate(getCoreModule, imports);
  const engine = new root.policy.Engine();
  for (const p of vectors.policies) {
    engine.addPolicy(p.id, p.source);
    engine.addData(p.data);
  }
  const sealer = root.sealing.Sealer.genesis(
    unhex(vectors.seed), vectors.key_name, vectors.origin, vectors.instance_id, "checkpoint");
  const entries = [hex(sealer.takeGenesis().encoded)];
  const results = [];
  const started = performance.now();
  for (const [path, input] of vectors.requests) {
    const decision = engine.evaluate(path, input);
    results.push(decision.result ?? null);
    entries.push(hex(sealer.sealDecision(decision).encoded));
  }
  const micros = ((performance.now() - started) * 1000) / vectors.requests.length;
  return { entries, results, checkpoint: sealer.checkpoint().note, micros };
}

// The differences between a run and the native vectors (empty when byte-identical).
export function differences(vectors, run) {
  const out = [];
  vectors.entries.forEach((e, i) => { if (run.entries[i] !== e) out.push(`entry ${i} differs`); });
  if (run.entries.length !== vectors.entries.length) out.push(`${run.entries.length} entries, expected ${vectors.entries.length}`);
  vectors.results.forEach((r, i) => { if ((run.results[i] ?? null) !== r) out.push(`result ${i}: ${run.results[i]} vs ${r}`); });
  if (run.checkpoint !== vectors.checkpoint) out.push("checkpoint note differs");
  return out;
}
