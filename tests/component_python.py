#!/usr/bin/env python3
"""The docket component in another wasmtime host: Python's `wasmtime` (wasmtime-py, PyPI).

The very .wasm `docket serve` runs, driven through its WIT interfaces by wasmtime-py's component
API, in the same sequence as the jco test (tests/browser/component_js.mjs): an engine with the
example policies, a sealer started from a fixed key, 60 decisions evaluated and sealed, the
checkpoint, then the verifier over what was sealed. Every entry, result and the checkpoint must
be byte-identical to what the native crates produced with the same clock and key
(`docket-bench js-vectors`), and the verifier must accept them and reject a changed byte.

What the host provides: WASI preview 2 (wasmtime-py's `add_wasip2`), with the wall clock pinned
to the native run's instant (the component reads time only from wasi:clocks/wall-clock) and
randomness from the host (used only for mask salts, which these decisions do not need).

Usage: python3 tests/component_python.py <component .wasm> <docket-bench binary>
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime
import wasmtime.component as wc

POLICY = "docket:audit/policy@0.1.0"
SEALING = "docket:audit/sealing@0.1.0"
VERIFICATION = "docket:audit/verification@0.1.0"


def fail(message: str) -> None:
    print(f"component_python: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


class Docket:
    """The component instantiated in a wasmtime-py store, its exports callable by name."""

    def __init__(self, wasm: Path, now_ns: int):
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        component = wc.Component.from_file(engine, str(wasm))
        linker = wc.Linker(engine)
        linker.add_wasip2()
        # The component's only clock is wasi:clocks/wall-clock: pin it to the native run's
        # instant, shadowing the one add_wasip2 defined.
        linker.allow_shadowing = True

        def datetime(seconds: int, nanoseconds: int) -> wc.Record:
            record = wc.Record()
            record.seconds = seconds
            record.nanoseconds = nanoseconds
            return record

        with linker.root() as root:
            with root.add_instance(wall_clock_import(component, engine)) as clock:
                clock.add_func("now", lambda _store: datetime(now_ns // 10**9, now_ns % 10**9))
                clock.add_func("resolution", lambda _store: datetime(0, 1))
        self.instance = linker.instantiate(self.store, component)

    def call(self, interface: str, name: str, *args):
        index = self.instance.get_export_index(self.store, interface)
        if index is None:
            fail(f"the component exports no {interface}")
        func_index = self.instance.get_export_index(self.store, name, index)
        if func_index is None:
            fail(f"{interface} has no {name}")
        return self.instance.get_func(self.store, func_index)(self.store, *args)


def wall_clock_import(component: wc.Component, engine: wasmtime.Engine) -> str:
    """The versioned name the component imports the wall clock under (wasi:clocks/wall-clock@0.2.x)."""
    names = [n for n in component.type.imports(engine) if n.startswith("wasi:clocks/wall-clock@")]
    if len(names) != 1:
        fail(f"expected one wasi:clocks/wall-clock import, found {names}")
    return names[0]


def field(record, name: str):
    """A WIT record field; wasmtime-py keeps the kebab-case names."""
    return getattr(record, name)


class Refused(Exception):
    """A WIT `result`'s `err` case."""


def ok(value, unit: bool = False):
    """The `ok` payload of a WIT `result`, or `Refused` with the `err` payload.

    wasmtime-py 50 tags a result (`Variant("ok"|"err", payload)`) only when its two cases could
    be confused in Python; otherwise it returns the payload of whichever case it was, untagged.
    So: a `Variant` tagged ok/err is unwrapped; for a result whose `ok` carries nothing (`unit`),
    anything but `None` is the error; for one whose `ok` is a record or string and whose `err`
    is a WIT variant (policy-error, seal-error), a `Variant` is the error. docs/embedding.md says
    the same for anyone driving the component from Python.
    """
    if isinstance(value, wc.Variant) and value.tag in ("ok", "err"):
        if value.tag == "err":
            raise Refused(value.payload)
        return value.payload
    if unit:
        if value is not None:
            raise Refused(value)
        return None
    if isinstance(value, wc.Variant):
        raise Refused(value)
    return value


def main() -> None:
    if len(sys.argv) != 3:
        fail("usage: component_python.py <component .wasm> <docket-bench binary>")
    wasm, bench = Path(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        vectors_file = Path(work) / "vectors.json"
        subprocess.run([bench, "js-vectors", str(vectors_file), "60"], check=True, capture_output=True)
        vectors = json.loads(vectors_file.read_text())

    started = time.perf_counter()
    docket = Docket(wasm, int(vectors["now_ns"]))
    load_seconds = time.perf_counter() - started

    engine = docket.call(POLICY, "[constructor]engine")
    for policy in vectors["policies"]:
        ok(docket.call(POLICY, "[method]engine.add-policy", engine, policy["id"], policy["source"]))
        ok(docket.call(POLICY, "[method]engine.add-data", engine, policy["data"]), unit=True)
    sealer = ok(docket.call(
        SEALING,
        "[static]sealer.genesis",
        bytes.fromhex(vectors["seed"]),
        vectors["key_name"],
        vectors["origin"],
        vectors["instance_id"],
        "checkpoint",
    ))
    encoded = [bytes(field(docket.call(SEALING, "[method]sealer.take-genesis", sealer), "encoded"))]
    results = []
    started = time.perf_counter()
    for path, request in vectors["requests"]:
        decision = ok(docket.call(POLICY, "[method]engine.evaluate", engine, path, request))
        results.append(field(decision, "result"))
        entry = ok(docket.call(SEALING, "[method]sealer.seal-decision", sealer, decision))
        encoded.append(bytes(field(entry, "encoded")))
    micros = (time.perf_counter() - started) * 1e6 / len(vectors["requests"])
    # An error crosses as an error: a module that does not parse is refused, not loaded.
    try:
        ok(docket.call(POLICY, "[method]engine.add-policy", engine, "broken.rego", "package broken\nallow if {"))
        fail("a module that does not parse was accepted")
    except Refused as refused:
        if field(refused.args[0], "tag") != "parse":
            fail(f"a broken module was refused as {refused.args[0]}, not as a parse error")
    checkpoint = docket.call(SEALING, "[method]sealer.checkpoint", sealer)
    note = field(checkpoint, "note")

    differences = []
    if [e.hex() for e in encoded] != vectors["entries"]:
        first = next(
            (i for i, (a, b) in enumerate(zip(encoded, vectors["entries"])) if a.hex() != b),
            min(len(encoded), len(vectors["entries"])),
        )
        differences.append(f"entry {first} differs ({len(encoded)} entries, expected {len(vectors['entries'])})")
    if results != vectors["results"]:
        differences.append("a result differs")
    if note != vectors["checkpoint"]:
        differences.append("the checkpoint note differs")
    if differences:
        fail("; ".join(differences))

    # The verifier of the same component over what was sealed, keyed by the sealer's own
    # verifier key: accepted as a whole; one changed byte is rejected.
    key = field(docket.call(SEALING, "[method]sealer.state", sealer), "key")

    def verify(entries) -> str:
        verifier = docket.call(VERIFICATION, "[constructor]verifier", key)
        try:
            for entry in entries:
                ok(docket.call(VERIFICATION, "[method]verifier.push-entry", verifier, entry), unit=True)
            ok(docket.call(VERIFICATION, "[method]verifier.push-checkpoint", verifier, note), unit=True)
            report = ok(docket.call(VERIFICATION, "[method]verifier.finish", verifier))
        except Refused as refused:
            error = refused.args[0]
            return f"rejected: {field(error, 'failure')} at {field(error, 'location')}: {field(error, 'detail')}"
        return f"verified: {field(report, 'entries')} entries"

    verdict = verify(encoded)
    if verdict != f"verified: {len(encoded)} entries":
        fail(f"the genuine entries were not verified: {verdict}")
    tampered = list(encoded)
    changed = bytearray(tampered[7])
    changed[-1] ^= 1
    tampered[7] = bytes(changed)
    rejected = verify(tampered)
    if not rejected.startswith("rejected"):
        fail(f"a changed byte in entry 7 was not rejected: {rejected}")

    print(
        f"python wasmtime {wasmtime_version()}: {len(encoded)} entries byte-identical to native, "
        f"checkpoint identical, verified; a changed byte rejected ({rejected[:80]}…); "
        f"{micros:.1f} µs per eval + seal, component loaded in {load_seconds:.1f} s"
    )


def wasmtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # pragma: no cover - the version is only printed
        return "?"


if __name__ == "__main__":
    main()
