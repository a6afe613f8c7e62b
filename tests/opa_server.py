#!/usr/bin/env python3
"""The real OPA engine (v1.20 Go library, `opa-golib-python-bindings`) behind OPA's Data API, as
the baseline of the load test (tests/loadtest.rs). OPA's own server is not installable here, so
the HTTP layer is Python's ThreadingHTTPServer; the engine is OPA's. It loads the example
policies and answers `POST /v1/data/<path>` with `{"input": …}` → `{"result": …}`. `POST /bench`
with a JSON list of `[path, input]` times the engine alone on them, in-process.

Usage: opa_server.py [--port 0]   (prints "opa: listening on http://127.0.0.1:<port>")
"""

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

POLICIES = Path(__file__).resolve().parent.parent / "examples" / "policies"


def engine():
    e = OpaEngine()
    for rego in sorted(POLICIES.glob("*.rego")):
        e.add_policy(rego.name, rego.read_text())
    for data in sorted(POLICIES.glob("*.json")):
        e.add_data(json.loads(data.read_text()))
    return e


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.path == "/bench":
            return self.bench()
        if not self.path.startswith("/v1/data/"):
            return self.answer(404, {"code": "resource_not_found", "message": self.path})
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path[len("/v1/data/"):].strip("/").replace("/", ".")
        try:
            result = {"result": self.engine.eval_document(path, body.get("input"))}
        except OpaUndefinedError:
            result = {}
        except OpaError as e:
            return self.answer(500, {"code": "internal_error", "message": str(e)})
        self.answer(200, result)

    def bench(self):
        """Engine only: evaluates a list of [path, input] in-process, best of 3, no HTTP."""
        length = int(self.headers.get("Content-Length", 0))
        work = [(p.replace("/", "."), i) for p, i in json.loads(self.rfile.read(length))]
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for path, doc in work:
                try:
                    self.engine.eval_document(path, doc)
                except OpaUndefinedError:
                    pass
            best = min(best, time.perf_counter() - start)
        self.answer(200, {"seconds": best, "count": len(work)})

    def answer(self, status, doc):
        out = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Handler.engine = engine()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"opa: listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
