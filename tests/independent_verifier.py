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

KINDS = {"genesis": 0, "decision": 1, "key-rotation": 2, "policy-change": 3, "ingested": 4, "tally": 5}
ALWAYS_SIGNED = {"genesis", "key-rotation"}


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
            covered = True
            continue
        p = len(leaves)
        where = f"entry {p}"
        record = obj["record"].encode("utf-8")
        body = (b"docket/entry/v1\0" + struct.pack(">Q", obj["seq"]) + bytes.fromhex(obj["prev"])
                + struct.pack(">Q", int(obj["timestamp"])) + bytes([KINDS[obj["kind"]]])
                + bytes.fromhex(obj["key_id"]) + struct.pack(">I", len(record)) + record)
        if obj["seq"] != p:
            raise Rejected(where, "wrong-sequence")
        if bytes.fromhex(obj["prev"]) != prev_hash:
            raise Rejected(where, "broken-link")
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
        leaves.append(entry_hash)
        prev_hash, last_ts = entry_hash, int(obj["timestamp"])
    if not covered:
        raise Rejected("end of log", "truncated")
    return len(leaves), merkle_root(leaves)


def main():
    vectors = Path(__file__).parent / "vectors"
    vkey = (vectors / "genesis.pub").read_text()
    expected = json.loads((vectors / "expected.json").read_text())
    for name in ["log.jsonl", "log-entry-mode.jsonl"]:
        lines = (vectors / name).read_text().splitlines()
        size, root = verify_export(lines, vkey)
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
    print("independent verifier: all checks passed")


if __name__ == "__main__":
    if len(sys.argv) == 3:  # independent_verifier.py EXPORT.jsonl KEY.pub
        size, root = verify_export(Path(sys.argv[1]).read_text().splitlines(), Path(sys.argv[2]).read_text())
        print(f"verified {size} entries, root {root.hex()}")
    else:
        main()
