#!/usr/bin/env python3
"""An independent verifier of docket exports, written from docs/log-format.md alone.

It shares no code with docket: Python's hashlib for SHA-256 and the `cryptography` package for
Ed25519. It checks the export vectors in tests/vectors/ and that single tampered copies fail at
the right entry. Run by tests/run; exits non-zero on any disagreement with the specification.
"""

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KINDS = {"genesis": 0, "decision": 1, "key-rotation": 2, "policy-change": 3, "ingested": 4, "tally": 5,
         "prune": 6}
ALWAYS_SIGNED = {"genesis", "key-rotation", "prune"}


def rfc3339_ns(ns):
    """§4.2's timestamp form: RFC 3339 UTC with nine fraction digits (fixed width)."""
    import datetime
    seconds, fraction = divmod(ns, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def check_prune_record(rec, seq, timestamp):
    """§4.8: scope, a range of earlier entries, ordered disjoint runs, retention passed."""
    if rec.get("prune") != "decision-payloads":
        return "scope"
    first, last, ranges = rec["first"], rec["last"], rec["ranges"]
    if not (first <= last < seq):
        return "range"
    nxt, total = first, 0
    for a, b in ranges:
        if a < nxt or a > b or b > last:
            return "runs"
        nxt, total = b + 1, total + b - a + 1
    if total != rec["entries"]:
        return "count"
    if len(rec["latest_retain_until"]) != 30 or rec["latest_retain_until"] > rfc3339_ns(timestamp):
        return "pruned under retention"
    return None


class Rejected(Exception):
    def __init__(self, where, failure, detail=""):
        super().__init__(f"{where}: {failure}: {detail}")
        self.where, self.failure = where, failure


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def parse_vkey(text):
    """§9: <name>+<8 hex key id>+<base64(0x01 ‖ key)>; the id is recomputed."""
    name, key_id, b64 = text.strip().split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 1 and len(raw) == 33, "not an Ed25519 verifier key"
    computed = sha256(name.encode(), b"\n", b"\x01", raw[1:])[:4].hex()
    assert computed == key_id, "key id does not match the key"
    return {"name": name, "id": key_id, "key": Ed25519PublicKey.from_public_bytes(raw[1:])}


def verifies(key, message, signature):
    try:
        key["key"].verify(signature, message)
        return True
    except InvalidSignature:
        return False


def merkle_root(leaves):
    """§7.1: RFC 9162 MTH over entry hashes (which are already leaf hashes)."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01", merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_export(lines, trusted_vkey):
    trusted = parse_vkey(trusted_vkey)
    header = json.loads(lines[0])
    assert header["docket_export"] == "v1"
    leaves, key, signing, origin, prev_hash, last_ts, covered = [], None, None, None, b"\0" * 32, 0, True
    # §8: pruned entries wait for a later prune entry to authorize them, and for a checkpoint
    # to bind their hashes (which can no longer be recomputed).
    unauthorized, unbound, prunes = set(), False, []
    for line in lines[1:]:
        obj = json.loads(line)
        if "checkpoint" in obj:
            where = f"checkpoint after {len(leaves)} entries"
            note = obj["checkpoint"]
            text, _, sigs = note.rpartition("\n\n")
            text += "\n"
            o, size, root_b64 = text.split("\n")[:3]
            if o != origin or int(size) != len(leaves) or base64.b64decode(root_b64) != merkle_root(leaves):
                raise Rejected(where, "checkpoint-mismatch")
            ok = False
            for sig_line in sigs.strip("\n").split("\n"):
                name, blob = sig_line.removeprefix("\u2014 ").split(" ")
                blob = base64.b64decode(blob)
                if name == key["name"] and blob[:4].hex() == key["id"] and verifies(key, text.encode(), blob[4:]):
                    ok = True
            if not ok:
                raise Rejected(where, "bad-signature")
            covered, unbound = True, False
            continue
        p = len(leaves)
        where = f"entry {p}"
        pruned = "pruned" in obj
        if obj["seq"] != p:
            raise Rejected(where, "wrong-sequence")
        if bytes.fromhex(obj["prev"]) != prev_hash:
            raise Rejected(where, "broken-link")
        if pruned:  # §3.5: only the stored hash is left; only decisions are ever pruned
            entry_hash, rec = bytes.fromhex(obj["hash"]), None
            if obj["kind"] != "decision":
                raise Rejected(where, "bad-record")
            unauthorized.add(p)
            unbound = True
        else:
            record = obj["record"].encode("utf-8")
            body = (b"docket/entry/v1\0" + struct.pack(">Q", obj["seq"]) + bytes.fromhex(obj["prev"])
                    + struct.pack(">Q", int(obj["timestamp"])) + bytes([KINDS[obj["kind"]]])
                    + bytes.fromhex(obj["key_id"]) + struct.pack(">I", len(record)) + record)
            entry_hash = sha256(b"\x00", body)
            if entry_hash.hex() != obj["hash"]:
                raise Rejected(where, "bad-hash")
            rec = json.loads(record)
        if p == 0:
            origin, signing = rec["origin"], rec["signing"]
            key = parse_vkey(rec["key"])
            if key["key"].public_bytes_raw() != trusted["key"].public_bytes_raw():
                raise Rejected(where, "untrusted-key")
        if obj["key_id"] != key["id"]:
            raise Rejected(where, "unknown-key")
        signature = obj.get("signature")
        if signature is None and (obj["kind"] in ALWAYS_SIGNED or signing == "entry"):
            raise Rejected(where, "missing-signature")
        if signature is not None:
            if not verifies(key, b"docket/entry-signature/v1\0" + entry_hash, base64.b64decode(signature)):
                raise Rejected(where, "bad-signature")
            covered = True
        else:
            covered = False
        if int(obj["timestamp"]) < last_ts:
            raise Rejected(where, "timestamp-regression")
        if obj["kind"] == "key-rotation":
            key = parse_vkey(rec["new_key"])
        if obj["kind"] == "prune":
            why = check_prune_record(rec, p, int(obj["timestamp"]))
            if why:
                raise Rejected(where, "bad-record", why)
            found = {s for a, b in rec["ranges"] for s in range(a, b + 1)} & unauthorized
            unauthorized -= found
            prunes.append({"seq": p, "first": rec["first"], "last": rec["last"], "entries": rec["entries"],
                           "pruned_found": len(found), "policy_versions": rec["policy_versions"]})
        leaves.append(entry_hash)
        prev_hash, last_ts = entry_hash, int(obj["timestamp"])
    if not covered or unbound:
        raise Rejected("end of log", "truncated")
    if unauthorized:
        raise Rejected(f"entry {min(unauthorized)}", "unauthorized-prune")
    return len(leaves), merkle_root(leaves), prunes


def main():
    vectors = Path(__file__).parent / "vectors"
    vkey = (vectors / "genesis.pub").read_text()
    expected = json.loads((vectors / "expected.json").read_text())
    for name in ["log.jsonl", "log-entry-mode.jsonl"]:
        lines = (vectors / name).read_text().splitlines()
        size, root, _ = verify_export(lines, vkey)
        print(f"{name}: verified {size} entries, root {root.hex()}")
        if name == "log.jsonl":
            assert root.hex() == expected["roots"][-1]["root"], "root differs from expected.json"
        # Tamper: one character of entry 4's record → bad-hash at entry 4.
        tampered = list(lines)
        obj = json.loads(tampered[5])
        obj["record"] = obj["record"].replace("read", "reaD", 1)
        tampered[5] = json.dumps(obj)
        try:
            verify_export(tampered, vkey)
            sys.exit(f"{name}: a tampered record was not detected")
        except Rejected as e:
            assert (e.where, e.failure) == ("entry 4", "bad-hash"), str(e)
            print(f"{name}: tampered copy rejected: {e}")
    check_pruned(vectors, vkey)
    print("independent verifier: all checks passed")


def check_pruned(vectors, vkey):
    """The pruned log verifies with the prune the vectors expect; an entry made to look pruned
    without a prune entry authorizing it is tampering."""
    expected = json.loads((vectors / "pruned.json").read_text())
    lines = (vectors / "log-pruned.jsonl").read_text().splitlines()
    size, root, prunes = verify_export(lines, vkey)
    assert (size, root.hex()) == (expected["entries"], expected["root"]), "pruned log: size or root differs"
    assert prunes == expected["prunes"], f"pruned log: prunes {prunes} differ from pruned.json"
    for p in prunes:
        print(f"log-pruned.jsonl: entries {p['first']}..={p['last']}: {p['pruned_found']} payloads pruned under "
              f"retention policy version {', '.join(p['policy_versions'])} (prune entry {p['seq']})")
    for case in expected["tampered"]:
        tampered = list(lines)
        index = next(i for i, line in enumerate(tampered) if json.loads(line).get("seq") == case["seq"])
        obj = json.loads(tampered[index])
        obj["pruned"] = len(obj.pop("record").encode("utf-8"))
        obj["kind"] = "decision"
        tampered[index] = json.dumps(obj)
        try:
            verify_export(tampered, vkey)
            sys.exit(f"log-pruned.jsonl: {case['mutation']} was not detected")
        except Rejected as e:
            assert (e.where, e.failure) == (f"entry {case['seq']}", case["failure"]), str(e)
            print(f"log-pruned.jsonl: {case['mutation']}: rejected: {e}")


if __name__ == "__main__":
    if len(sys.argv) == 3:  # independent_verifier.py EXPORT.jsonl KEY.pub
        size, root, prunes = verify_export(Path(sys.argv[1]).read_text().splitlines(), Path(sys.argv[2]).read_text())
        print(f"verified {size} entries, root {root.hex()}")
        for p in prunes:
            print(f"pruned: entries {p['first']}..={p['last']}: {p['pruned_found']} payloads removed under "
                  f"retention policy version {', '.join(p['policy_versions'])} (prune entry {p['seq']})")
    else:
        main()
