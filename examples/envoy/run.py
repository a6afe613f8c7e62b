#!/usr/bin/env python3
"""The Envoy example, end to end on loopback: docket serve, a small upstream, and Envoy with the
docket filter (examples/envoy/envoy.yaml). Sends an allowed, a denied and an admin request, shows
each answer and decision id, then the sealed entry of one of them, and stays up, printing what
to try, until Ctrl-C (or exits at once with --once).

Usage (from the repository root, after `cargo build --release -p docket` and building the filter,
which `just envoy-demo` does):

    python3 examples/envoy/run.py [--port 10000] [--docket-port 8181] [--once]
"""

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DOCKET = TARGET / "release" / "docket"
FILTER = TARGET / "wasm" / "wasm32-wasip1" / "component" / "docket_envoy.wasm"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"upstream says hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


def request(method, url, headers=None, body=b"{}"):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    parser = argparse.ArgumentParser(description="docket's Envoy filter, end to end on loopback")
    parser.add_argument("--port", type=int, default=10000,
                        help="Envoy's listener (default 10000; 0 for any free port)")
    parser.add_argument("--docket-port", type=int, default=8181,
                        help="docket serve, which seals every decision (default 8181; 0 for any)")
    parser.add_argument("--once", action="store_true",
                        help="send the example requests, check their answers and stop (exit 1 "
                             "if one is not the expected one), instead of staying up")
    args = parser.parse_args()
    if args.port == 0:
        args.port = free_port()
    for path, what in [(DOCKET, "cargo build --release -p docket"), (FILTER, "just envoy-filter")]:
        if not path.exists():
            sys.exit(f"{path} is missing: run {what}")
    for port, flag in [(args.port, "--port"), (args.docket_port, "--docket-port")]:
        if port and not port_is_free(port):
            sys.exit(f"127.0.0.1:{port} is in use: choose another with {flag}")
    work = Path(tempfile.mkdtemp(prefix="docket-envoy-example-"))
    docket = subprocess.Popen(
        [DOCKET, "serve", "--addr", f"127.0.0.1:{args.docket_port}", "--dir", work / "data"],
        stdout=subprocess.PIPE, stderr=open(work / "docket.log", "w"), text=True,
    )
    base = next((line.split()[-1] for line in docket.stdout if "listening on" in line), None)
    if base is None:
        sys.exit(f"docket serve did not start; see {work / 'docket.log'}")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    ports = {name: free_port() for name in ["ADMIN_PORT", "PLAIN_PORT"]}
    ports["LISTEN_PORT"] = args.port
    policies = {p.name: p.read_text() for p in sorted((ROOT / "examples" / "envoy").glob("*.rego"))}
    config = (ROOT / "examples" / "envoy" / "envoy.yaml").read_text()
    # An identity provider's key, made up for the example: jwt_authn trusts it (its JWKS), and
    # the admin token below is signed with it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    b64url = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    idp = Ed25519PrivateKey.generate()
    public = idp.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwks = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "example", "x": b64url(public)}]})
    for key, value in {
        "JWKS": jwks,
        **{k: str(v) for k, v in ports.items()},
        "UPSTREAM_PORT": str(upstream.server_address[1]),
        "DOCKET_PORT": base.rsplit(":", 1)[1],
        "DOCKET_TOKEN": (work / "data" / "token").read_text().strip(),
        "FILTER_WASM": str(FILTER),
        "POLICIES": json.dumps(policies),
        "DATA": "{}",
    }.items():
        config = config.replace("{{" + key + "}}", value)
    (work / "envoy.yaml").write_text(config)
    envoy = subprocess.Popen(
        ["envoy", "-c", work / "envoy.yaml", "--use-dynamic-base-id", "--concurrency", "2"],
        stdout=subprocess.DEVNULL, stderr=open(work / "envoy.log", "w"),
    )
    try:
        for _ in range(300):
            try:
                if request("GET", f"http://127.0.0.1:{ports['ADMIN_PORT']}/ready")[2].strip() == "LIVE":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        front = f"http://127.0.0.1:{ports['LISTEN_PORT']}"
        signed = b64url(b'{"alg":"EdDSA","kid":"example"}') + "." + b64url(
            json.dumps({"sub": "alice", "roles": ["admin"], "iss": "docket-example"}).encode())
        admin_jwt = signed + "." + b64url(idp.sign(signed.encode()))
        last_id = None
        wrong = []
        for method, path, headers, expected in [
            ("GET", "/public/catalog", {}, 200),
            ("POST", "/admin/users", {}, 403),
            ("POST", "/admin/users", {"Authorization": f"Bearer {admin_jwt}"}, 200),
        ]:
            status, got, body = request(method, front + path, headers)
            if status != expected or not got.get("x-docket-decision-id"):
                wrong.append(f"{method} {path}: {status} (expected {expected}, with a decision id)")
            last_id = got.get("x-docket-decision-id") or last_id
            print(f"{method} {path} {'(admin JWT)' if headers else ''}-> {status} {body.strip()!r}  decision {got.get('x-docket-decision-id')}")
        # The filter also answers OPA's Data API itself, each answer sealed before it is given.
        question = {"input": {"attributes": {"request": {"http": {"method": "GET"}}}, "parsed_path": ["public", "x"]}}
        status, got, body = request("POST", front + "/v1/data/envoy/authz/decision",
                                    {"Content-Type": "application/json"}, json.dumps(question).encode())
        print(f"POST /v1/data/envoy/authz/decision -> {status} {body.strip()}")
        status, _, body = request("GET", f"{base}/v1/log/decisions/{last_id}")
        entry = json.loads(body)["entry"]
        print(f"\nsealed as entry {entry['seq']} ({entry['kind']}): result {json.dumps(entry['record']['result'])}, policy {entry['record']['policy_version']['digest'][:19]}…")
        verify = f"{DOCKET} verify {work}/data/log --pub {work}/data/docket.pub"
        if args.once:
            print(f"\nfiles in {work}; verify with: {verify}")
            if wrong:
                sys.exit("not the expected answers: " + "; ".join(wrong))
            return
        print(f"""
Running until Ctrl-C. Envoy with the docket filter: {front}; docket serve: {base}
Try:
  curl -i {front}/public/catalog                      # allowed, sealed first
  curl -i -X POST {front}/admin/users                 # denied (403), sealed too
  curl -i -X POST {front}/admin/users -H 'Authorization: Bearer {admin_jwt}'
  curl -s {base}/v1/log/checkpoint                     # the log's signed checkpoint
  curl -s {base}/v1/log/decisions/<decision id>        # a decision's entry and its proof
  {verify}
Files: {work} (docket.log, envoy.log, data/)""", flush=True)
        # Ctrl-C or a SIGTERM ends the example (a shell's background job starts with SIGINT
        # ignored, so both are set here).
        def stop(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while docket.poll() is None and envoy.poll() is None:
                time.sleep(0.5)
            print("a process stopped; see the logs in", work)
        except KeyboardInterrupt:
            print("\nstopping")
    finally:
        envoy.terminate()
        docket.terminate()
        envoy.wait()
        docket.wait()


if __name__ == "__main__":
    main()
