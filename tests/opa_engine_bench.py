#!/usr/bin/env python3
"""Times the real OPA engine (v1.20 Go library, `opa-golib-python-bindings`) on a fixed workload,
for `docket-bench peers` (tests/bench.rs), which runs docket's evaluators on the same workload in
the same run.

How the Python overhead is kept out of OPA's figure:
- The timed loop calls the library's C entry point `OpaEvalDocument` directly through ctypes with
  pre-encoded byte strings (no `json.dumps` of the input, no `json.loads` of the answer, no lock,
  no per-eval bookkeeping of the high-level `OpaEngine.eval_document`), and frees the answer.
- What remains of Python per call (the loop, two ctypes calls and their cgo transitions) is
  measured separately, as the same loop calling the library's `OpaFreeString(NULL)` twice,
  and subtracted. What is left is OPA's own work: parsing the input JSON, evaluating the
  prepared query (OPA caches it per query string), and serializing the result to JSON, the same
  steps docket's figures include.

Input (file named by argv[1]): {"policies": [{"id", "source", "data"}], "work": {path: [input
JSON text, ...]}}. Output (stdout): {path: {"gross_us", "overhead_us", "us", "results": [JSON
text or null, ...]}}, best of `ROUNDS` for each timing.
"""

import json
import sys
import time

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

ROUNDS = 5


def best_seconds(fn):
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    spec = json.loads(open(sys.argv[1]).read())
    engine = OpaEngine()
    for policy in spec["policies"]:
        engine.add_policy(policy["id"], policy["source"])
        engine.add_data(json.loads(policy["data"]))
    lib, handle = engine._lib, engine._handle
    out = {}
    for path, inputs in spec["work"].items():
        dotted = path.strip("/").replace("/", ".")
        # Answers for the agreement check; this pass also warms OPA's prepared-query cache.
        results = []
        for text in inputs:
            try:
                value = engine.eval_document(dotted, json.loads(text))
                results.append(json.dumps(value, separators=(",", ":"), sort_keys=True))
            except OpaUndefinedError:
                results.append(None)
            except OpaError:  # an evaluation error (the conformance suite has them)
                results.append(None)
        query = dotted.encode()
        encoded = [text.encode() for text in inputs]
        evaluate, free = lib.OpaEvalDocument, lib.OpaFreeString

        def run():
            for data in encoded:
                free(evaluate(handle, query, data, 0, 0))

        def overhead():
            for _ in encoded:
                free(None)
                free(None)

        gross = best_seconds(run) * 1e6 / len(inputs)
        loop = best_seconds(overhead) * 1e6 / len(inputs)
        out[path] = {
            "gross_us": gross,
            "overhead_us": loop,
            "us": gross - loop,
            "results": results,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
