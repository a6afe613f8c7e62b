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
PRUNABLE = {"decision", "ingested"}  # §4.8: the kinds whose payloads a prune may remove


def rfc3339_ns(ns):
    """§4.2's timestamp form: RFC 3339 UTC with nine fraction digits (fixed width)."""
    import datetime
    seconds, fraction = divmod(ns, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


class NotJsonText(ValueError):
    pass


MAX_DEPTH = 100


def json_text(text):
    """§4 "JSON text": RFC 8259 with unique names, depth at most 100, no lone surrogate escapes
    and finite numbers. Returns the parsed value or raises NotJsonText."""
    def unique(pairs):
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise NotJsonText("a repeated name")
        return dict(pairs)

    def finite(text):
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise NotJsonText(f"{text} does not fit a double")
        return value

    def bad_constant(name):
        raise NotJsonText(f"{name} is not JSON")

    try:
        value = json.loads(text, object_pairs_hook=unique, parse_float=finite, parse_constant=bad_constant)
    except (json.JSONDecodeError, RecursionError) as e:
        raise NotJsonText(str(e))

    def walk(v, depth):
        if isinstance(v, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                raise NotJsonText("a lone surrogate")
        elif isinstance(v, (list, dict)):
            if depth + 1 > MAX_DEPTH:
                raise NotJsonText("nested too deep")
            for k, x in (v.items() if isinstance(v, dict) else enumerate(v)):
                walk(k, depth + 1) if isinstance(k, str) else None
                walk(x, depth + 1)
    walk(value, 0)
    return value


# Ed25519 over edwards25519 (RFC 8032 §5.1), only to tell small-order points (§9).
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def decode_point(raw):
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def point_add(p1, p2):
    """RFC 8032 §6's unified addition in extended coordinates (it doubles too)."""
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % P
    c = 2 * p1[3] * p2[3] * D % P
    d = 2 * p1[2] * p2[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def is_small_order(raw):
    pt = decode_point(raw)
    if pt is None:
        return False
    for _ in range(3):
        pt = point_add(pt, pt)
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def check_prune_record(rec, seq, timestamp):
    """§4.8: scope, a range of earlier entries, ordered disjoint runs, retention passed."""
    if set(rec) != {"prune", "first", "last", "entries", "ranges", "policy_versions", "latest_retain_until"}:
        return "fields"
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
    versions = rec["policy_versions"]
    digest_ok = all(isinstance(v, str) and v.startswith("sha256:") and len(v) == 71
                    and all(c in "0123456789abcdef" for c in v[7:]) for v in versions)
    if rec["entries"] < 1 or not versions or not digest_ok or any(a >= b for a, b in zip(versions, versions[1:])):
        return "policy versions"
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


class BadKey(ValueError):
    pass


def parse_vkey(text):
    """§9: <name>+<8 hex key id>+<base64(0x01 ‖ key)>; the id is recomputed; small-order points
    are refused."""
    name, key_id, b64 = text.strip().split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 1 or len(raw) != 33:
        raise BadKey("not an Ed25519 verifier key")
    computed = sha256(name.encode(), b"\n", b"\x01", raw[1:])[:4].hex()
    if computed != key_id:
        raise BadKey("key id does not match the key")
    if is_small_order(raw[1:]):
        raise BadKey("a small-order point")
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


ENTRY_FIELDS = {"seq", "prev", "timestamp", "kind", "key_id", "record", "form", "pruned", "hash", "signature"}
# §3.6: the longest record a body may hold itself (a C2SP entry bundle frames 65,535 bytes, the
# header takes 73); a longer one is sealed in the digest form.
MAX_INLINE_RECORD = 65535 - 73


def entry_line(line, where):
    """§10: one JSON object per line, each field once; a decimal timestamp without leading zeros."""
    if not line.strip():
        raise Rejected(where, "malformed", "a blank line")
    try:
        obj = json_text(line)
    except NotJsonText as e:
        raise Rejected(where, "malformed", str(e))
    if not isinstance(obj, dict):
        raise Rejected(where, "malformed", "not an object")
    if "checkpoint" in obj:
        if set(obj) != {"checkpoint"}:
            raise Rejected(where, "malformed", "checkpoint line")
        return obj
    if not set(obj) <= ENTRY_FIELDS or ("record" in obj) == ("pruned" in obj):
        raise Rejected(where, "malformed", "entry line fields")
    if "form" in obj and (obj["form"] != "digest" or "pruned" in obj):
        raise Rejected(where, "malformed", f"form {obj['form']!r}")
    ts = obj.get("timestamp")
    if not (isinstance(ts, str) and ts.isdigit() and ts.isascii() and (ts == "0" or ts[0] != "0")):
        raise Rejected(where, "malformed", f"timestamp {ts!r}")
    kind = obj.get("kind")
    if kind not in KINDS:
        byte = kind.removeprefix("unknown-") if isinstance(kind, str) and kind.startswith("unknown-") else ""
        if not (byte.isdigit() and byte.isascii() and (byte == "0" or byte[0] != "0") and 7 <= int(byte) <= 255):
            raise Rejected(where, "malformed", f"kind {kind!r}")
    return obj


def valid_origin(origin):
    """§4.1: 1 to 256 bytes of visible ASCII (0x21 to 0x7E)."""
    return isinstance(origin, str) and 1 <= len(origin) <= 256 and all(0x21 <= ord(c) <= 0x7E for c in origin)


def check_genesis(rec):
    """§4.1: exactly these fields, labels exactly id and version."""
    if set(rec) != {"docket_log", "origin", "key", "signing", "labels"} or rec["docket_log"] != "v1":
        return "fields"
    labels = rec["labels"]
    if not isinstance(labels, dict) or set(labels) != {"id", "version"} or not all(isinstance(v, str) for v in labels.values()):
        return "labels"
    if rec["signing"] not in ("checkpoint", "entry"):
        return "signing"
    if not valid_origin(rec["origin"]):
        return "origin"
    return None


def kind_byte(kind):
    return KINDS[kind] if kind in KINDS else int(kind.removeprefix("unknown-"))


def verify_export(lines, trusted_vkey):
    trusted = parse_vkey(trusted_vkey)
    header = json_text(lines[0])
    assert header["docket_export"] == "v1"
    expected_origin = header["origin"]
    leaves, key, signing, origin, prev_hash, last_ts, covered = [], None, None, None, b"\0" * 32, 0, True
    # §8: pruned entries wait for a later prune entry to authorize them, and for a checkpoint
    # to bind their hashes (which can no longer be recomputed).
    unauthorized, unbound, prunes, prunable = set(), False, [], set()
    for line in lines[1:]:
        obj = entry_line(line, f"entry {len(leaves)}")
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
        if pruned:  # §3.5: only the stored hash is left; only decisions and ingested events are pruned
            entry_hash, rec = bytes.fromhex(obj["hash"]), None
            if obj["kind"] not in PRUNABLE:
                raise Rejected(where, "bad-record")
            unauthorized.add(p)
            unbound = True
        else:
            record = obj["record"].encode("utf-8")
            digest_form = obj.get("form") == "digest"  # §3.6: the body holds SHA-256(record)
            body = ((b"docket/digest/v1" if digest_form else b"docket/entry/v1\0")
                    + struct.pack(">Q", obj["seq"]) + bytes.fromhex(obj["prev"])
                    + struct.pack(">Q", int(obj["timestamp"])) + bytes([kind_byte(obj["kind"])])
                    + bytes.fromhex(obj["key_id"]) + struct.pack(">I", len(record))
                    + (hashlib.sha256(record).digest() if digest_form else record))
            entry_hash = sha256(b"\x00", body)
            if entry_hash.hex() != obj["hash"]:
                raise Rejected(where, "bad-hash")
            if digest_form and len(record) <= MAX_INLINE_RECORD:
                raise Rejected(where, "malformed", "the digest form for a record that fits in its body")
            try:
                rec = json_text(obj["record"])
            except NotJsonText as e:
                raise Rejected(where, "bad-record", str(e))
            if not isinstance(rec, dict):
                raise Rejected(where, "bad-record", "not an object")
        if p == 0:
            if obj["kind"] != "genesis":
                raise Rejected(where, "bad-genesis", "entry 0 is not a genesis entry")
            why = check_genesis(rec)
            if not why and rec["origin"] != expected_origin:
                why = "the origin differs from the export header's"
            if why:
                raise Rejected(where, "bad-genesis", why)
            origin, signing = rec["origin"], rec["signing"]
            try:
                key = parse_vkey(rec["key"])
            except (BadKey, ValueError) as e:
                raise Rejected(where, "bad-genesis", f"genesis key: {e}")
            if key["key"].public_bytes_raw() != trusted["key"].public_bytes_raw():
                raise Rejected(where, "untrusted-key")
        elif obj["kind"] == "genesis" or obj["kind"] not in KINDS:
            raise Rejected(where, "bad-record", f"a {obj['kind']} entry after entry 0")
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
            try:
                if set(rec) != {"new_key"}:
                    raise BadKey("fields")
                next_key = parse_vkey(rec["new_key"])
            except (BadKey, ValueError) as e:
                raise Rejected(where, "bad-record", str(e))
        if obj["kind"] == "prune":
            why = check_prune_record(rec, p, int(obj["timestamp"]))
            if not why and any(s not in prunable for a, b in rec["ranges"] for s in range(a, b + 1)):
                why = "a range names an entry that is neither a decision nor an ingested event"
            if why:
                raise Rejected(where, "bad-record", why)
            found = {s for a, b in rec["ranges"] for s in range(a, b + 1)} & unauthorized
            unauthorized -= found
            prunes.append({"seq": p, "first": rec["first"], "last": rec["last"], "entries": rec["entries"],
                           "pruned_found": len(found), "policy_versions": rec["policy_versions"]})
        if obj["kind"] == "key-rotation":
            key = next_key  # in force from the next entry on (§4.3), and for the checkpoints after it
        if obj["kind"] in PRUNABLE:
            prunable.add(p)
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
        lines = export_lines((vectors / name).read_text())
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
    check_digest(vectors, vkey)
    check_rejected(vectors)
    print("independent verifier: all checks passed")


def check_rejected(vectors):
    """Each log of rejected.json breaks one rule (§4, §8, §10) with every hash and signature
    right: this verifier must reject it with the failure and location docket gives."""
    rejected = json.loads((vectors / "rejected.json").read_text())
    for case in rejected["cases"]:
        try:
            verify_export(export_lines(case["export"]), rejected["genesis_key"])
            sys.exit(f"rejected.json: {case['case']}: accepted")
        except Rejected as e:
            got = (e.where, e.failure)
            want = (case["location"], case["failure"])
            assert got == want, f"rejected.json: {case['case']}: {got} (docket says {want}): {e}"
            print(f"rejected.json: {case['case']}: {e.where}: {e.failure}")


def check_pruned(vectors, vkey):
    """The pruned log verifies with the prune the vectors expect; an entry made to look pruned
    without a prune entry authorizing it is tampering."""
    expected = json.loads((vectors / "pruned.json").read_text())
    lines = export_lines((vectors / "log-pruned.jsonl").read_text())
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


def check_digest(vectors, vkey):
    """§3.6: the record that fills a body to 65,535 bytes is held in it; one byte more and the
    body holds the record's SHA-256. Bodies are rebuilt here from the export and compared with
    digest.json; one changed byte of the long record is bad-hash at its entry."""
    expected = json.loads((vectors / "digest.json").read_text())
    lines = export_lines((vectors / "log-digest.jsonl").read_text())
    size, root, _ = verify_export(lines, vkey)
    assert (size, root.hex()) == (len(expected["entries"]), expected["root"]), "digest log: size or root differs"
    for want, line in zip(expected["entries"], [json.loads(line) for line in lines if '"seq"' in line]):
        record = line["record"].encode("utf-8")
        digest_form = line.get("form") == "digest"
        assert digest_form == (len(record) > MAX_INLINE_RECORD) == (want["form"] == "digest"), want
        body = ((b"docket/digest/v1" if digest_form else b"docket/entry/v1\0")
                + struct.pack(">Q", line["seq"]) + bytes.fromhex(line["prev"])
                + struct.pack(">Q", int(line["timestamp"])) + bytes([kind_byte(line["kind"])])
                + bytes.fromhex(line["key_id"]) + struct.pack(">I", len(record))
                + (hashlib.sha256(record).digest() if digest_form else record))
        assert (len(body), hashlib.sha256(body).hexdigest()) == (want["body_length"], want["body_sha256"]), want
        if digest_form:
            assert body.hex() == want["body"], f"digest log: entry {line['seq']}'s body differs"
        print(f"log-digest.jsonl: entry {line['seq']}: a {len(record)}-byte record, a {len(body)}-byte body")
    index = next(i for i, line in enumerate(lines) if json.loads(line).get("form") == "digest")
    tampered = list(lines)
    obj = json.loads(tampered[index])
    obj["record"] = obj["record"].replace("ppp", "ppq", 1)
    tampered[index] = json.dumps(obj)
    try:
        verify_export(tampered, vkey)
        sys.exit("log-digest.jsonl: a changed byte of a digest-form record was not detected")
    except Rejected as e:
        assert (e.where, e.failure) == (f"entry {obj['seq']}", "bad-hash"), str(e)
        print(f"log-digest.jsonl: tampered copy rejected: {e}")


def export_lines(text):
    """§10: lines end with \n (a trailing \r is ignored); nothing else separates them (Python's
    splitlines would also split at U+2028 and friends, which JSON strings may hold raw)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def run_cases(path):
    """For the differential test: one verdict per case of a JSON file, as JSON lines."""
    data = json.loads(Path(path).read_text())
    for case in data["cases"]:
        try:
            verify_export(export_lines(case["export"]), data["genesis_key"])
            out = {"ok": True}
        except Rejected as e:
            out = {"failure": e.failure, "location": e.where}
        except Exception as e:  # a crash is a disagreement, never a verdict
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cases":
        run_cases(sys.argv[2])
    elif len(sys.argv) == 3:  # independent_verifier.py EXPORT.jsonl KEY.pub
        size, root, prunes = verify_export(export_lines(Path(sys.argv[1]).read_text()), Path(sys.argv[2]).read_text())
        print(f"verified {size} entries, root {root.hex()}")
        for p in prunes:
            print(f"pruned: entries {p['first']}..={p['last']}: {p['pruned_found']} payloads removed under "
                  f"retention policy version {', '.join(p['policy_versions'])} (prune entry {p['seq']})")
    else:
        main()
