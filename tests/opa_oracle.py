#!/usr/bin/env python3
"""docket serve against the real OPA engine, over real HTTP on loopback.

The oracle is OPA itself (v1.20, the Go library through `opa-golib-python-bindings`). It loads
the same example policies and data as `docket serve`; a seeded corpus of generated requests
(well-formed, edge-case and malformed-shaped inputs, over whole packages as well as single rules)
is evaluated by both, and every answer must agree.

That library cannot run OPA's decision-log plugin, so the upload half of the test builds what the
plugin sends, following OPA's documented event format and upload protocol exactly: events from
OPA's own answers, JSON arrays cut at OPA's default `upload_size_limit_bytes` (32768), gzip'd,
POSTed to /logs with a bearer token. Every event must then be in the log, byte-for-byte as sent
(minus whitespace), with an inclusion proof; `docket verify` must accept the log afterwards.

Usage: opa_oracle.py <path to the docket binary> [--count N]
"""

import argparse
import base64
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "examples" / "policies"
UPLOAD_LIMIT = 32768  # OPA's default decision_logs.reporting.upload_size_limit_bytes


def rbac_input(rng):
    users = ["alice", "bob", "carol", "dave", "erin", "mallory", "", "ALICE"]
    actions = ["read", "write", "deploy", "delete", "approve"]
    kinds = ["document", "dashboard", "service", "invoice", "cluster"]
    doc = {
        "user": rng.choice(users),
        "action": rng.choice(actions),
        "resource": {"type": rng.choice(kinds), "id": f"r-{rng.randrange(10000)}"},
    }
    shape = rng.randrange(12)
    if shape == 0:
        del doc["user"]
    elif shape == 1:
        doc["resource"] = "not-an-object"
    elif shape == 2:
        doc["user"] = rng.randrange(5)  # a number where a name belongs
    elif shape == 3:
        del doc["action"]
    return doc


def abac_input(rng):
    departments = ["engineering", "finance", "legal", "sales"]
    levels = ["public", "internal", "confidential", "secret", "top-secret"]
    subject = f"u{rng.randrange(1, 40)}"
    owner = subject if rng.randrange(4) == 0 else f"u{rng.randrange(1, 40)}"
    ip = (
        f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if rng.randrange(3)
        else f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    )
    doc = {
        "action": rng.choice(["read", "write", "comment", "delete"]),
        "subject": {
            "id": subject,
            "department": rng.choice(departments),
            "clearance": rng.choice(levels),
            "suspended": rng.randrange(15) == 0,
        },
        "resource": {
            "owner": owner,
            "department": rng.choice(departments),
            "classification": rng.choice(levels),
        },
        "context": {"ip": ip, "hour": rng.choice([rng.randrange(24), 7.5, 8, 19, 18.99])},
    }
    shape = rng.randrange(14)
    if shape == 0:
        del doc["context"]
    elif shape == 1:
        doc["subject"]["suspended"] = "yes"
    elif shape == 2:
        del doc["resource"]["classification"]
    return doc


def corpus(count, seed=9):
    rng = random.Random(seed)
    paths = ["rbac/allow", "rbac/reasons", "rbac/user_roles", "rbac", "abac/allow", "abac/permitted", "abac"]
    out = []
    for i in range(count):
        path = paths[i % len(paths)]
        out.append((path, rbac_input(rng) if path.startswith("rbac") else abac_input(rng)))
    return out


def same(a, b):
    """JSON equality where numbers compare by value (OPA answers exact decimals)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def canonical_sets(value):
    """Rego sets come back as arrays; order them so both sides compare as sets."""
    if isinstance(value, list):
        items = [canonical_sets(v) for v in value]
        try:
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        except TypeError:
            return items
    if isinstance(value, dict):
        return {k: canonical_sets(v) for k, v in value.items()}
    return value


def opa_answer(engine, path, doc):
    try:
        return ("value", engine.eval_document(path.replace("/", "."), doc))
    except OpaUndefinedError:
        return ("undefined", None)
    except OpaError as e:
        return ("error", str(e))


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def docket_answer(base, path, doc):
    status, body = http(
        "POST", f"{base}/v1/data/{path}", json.dumps({"input": doc}).encode(), {"Content-Type": "application/json"}
    )
    answer = json.loads(body)
    if status == 200 and "result" in answer:
        return ("value", answer["result"]), answer["decision_id"]
    if status == 200:
        return ("undefined", None), answer["decision_id"]
    return ("error", answer.get("message")), None


def start_server(binary, data_dir, log_path):
    env = dict(os.environ)
    env.setdefault("DOCKET_CACHE_DIR", str(Path(tempfile.gettempdir()) / "docket-test-component-cache"))
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=open(log_path, "w"),
        text=True,
        env=env,
    )
    for line in proc.stdout:
        if line.startswith("docket serve: listening on "):
            return proc, line.split()[-1]
    raise SystemExit(f"docket serve did not start:\n{Path(log_path).read_text()}")


def opa_events(engine, requests, labels):
    """Decision events as OPA's decision-log plugin builds them, from OPA's own answers."""
    events = []
    for i, (path, doc) in enumerate(requests):
        kind, value = opa_answer(engine, path, doc)
        event = {
            "labels": labels,
            "decision_id": str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4)),
            "path": path,
            "input": doc,
            "requested_by": "127.0.0.1:40312",
            "timestamp": datetime(2026, 11, 23, 20, 0, i % 60, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
            "metrics": {"timer_rego_query_eval_ns": 40000 + i, "timer_server_handler_ns": 90000 + i},
            "req_id": i + 1,
        }
        if kind == "value":
            event["result"] = value
        elif kind == "error":
            event["error"] = {"code": "eval_error", "message": value}
        events.append(event)
    return events


def chunks(events, limit):
    """Cut events into JSON arrays whose gzip'd size stays under OPA's upload limit."""
    chunk = []
    for event in events:
        trial = chunk + [event]
        if chunk and len(gzip.compress(json.dumps(trial).encode())) > limit:
            yield chunk
            chunk = [event]
        else:
            chunk = trial
    if chunk:
        yield chunk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("docket")
    parser.add_argument("--count", type=int, default=700)
    args = parser.parse_args()

    engine = OpaEngine()
    for rego in sorted(POLICIES.glob("*.rego")):
        engine.add_policy(rego.name, rego.read_text())
    for data in sorted(POLICIES.glob("*.json")):
        engine.add_data(json.loads(data.read_text()))

    work = Path(tempfile.mkdtemp(prefix="docket-opa-oracle-"))
    proc, base = start_server(args.docket, work / "data", work / "serve.stderr")
    try:
        requests = corpus(args.count)
        kinds = {"value": 0, "undefined": 0, "error": 0}
        disagreements = []
        decision_ids = []
        for path, doc in requests:
            want = opa_answer(engine, path, doc)
            got, decision_id = docket_answer(base, path, doc)
            kinds[want[0]] += 1
            agree = want[0] == got[0] and (
                want[0] != "value" or same(canonical_sets(want[1]), canonical_sets(got[1]))
            )
            if not agree:
                disagreements.append((path, doc, want, got))
            if decision_id:
                decision_ids.append(decision_id)
        print(
            f"opa oracle: {len(requests)} requests, {len(requests) - len(disagreements)} agree with OPA "
            f"({kinds['value']} defined, {kinds['undefined']} undefined, {kinds['error']} errors by OPA)"
        )
        for path, doc, want, got in disagreements[:10]:
            print(f"  DISAGREE {path} input={json.dumps(doc)}\n    opa={want}\n    docket={got}")

        # Every decision docket answered is in its log.
        for decision_id in decision_ids[:: max(1, len(decision_ids) // 50)]:
            status, body = http("GET", f"{base}/v1/log/decisions/{decision_id}")
            assert status == 200, (decision_id, body)

        # OPA's decision-log upload, as the plugin sends it.
        token = (work / "data" / "token").read_text().strip()
        labels = {"id": "6f4b0a7e-opa-oracle", "version": "1.20.2", "app": "oracle"}
        events = opa_events(engine, requests, labels)
        sent = 0
        for chunk in chunks(events, UPLOAD_LIMIT):
            body = gzip.compress(json.dumps(chunk).encode())
            assert len(body) <= UPLOAD_LIMIT
            status, answer = http(
                "POST",
                f"{base}/logs",
                body,
                {
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {token}",
                    "User-Agent": "Open Policy Agent/1.20.2 (linux, amd64)",
                },
            )
            assert status == 200, answer
            assert json.loads(answer)["sealed"] == len(chunk), answer
            sent += 1
        missing = 0
        for event in events:
            status, body = http("GET", f"{base}/v1/log/decisions/{event['decision_id']}")
            stored = json.loads(body) if status == 200 else None
            if stored is None or stored["entry"]["kind"] != "ingested":
                missing += 1
                continue
            raw = base64.b64decode(stored["entry"]["encoded"])
            assert same(stored["entry"]["record"], event), (stored["entry"]["record"], event)
            assert json.dumps(event, separators=(",", ":")).encode() in raw, "the event is not stored as sent"
        print(f"opa uploads: {len(events)} events in {sent} gzip'd chunks, {len(events) - missing} sealed and found")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    verify = subprocess.run(
        [args.docket, "verify", str(work / "data" / "log"), "--pub", str(work / "data" / "docket.pub")],
        capture_output=True,
        text=True,
    )
    print(verify.stdout.strip() or verify.stderr.strip())
    ok = not disagreements and missing == 0 and verify.returncode == 0 and len(requests) >= 300
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory kept: {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
