#!/usr/bin/env python3
"""Signs an OPA bundle directory as `opa sign` does, written from OPA's documentation of the
format (docs "Bundle Signing" and `bundle/hash.go`), with Python's `cryptography` for the JWS:
a `.signatures.json` holding one JWT whose payload lists every file of the bundle with its
SHA-256 (for data.json and .manifest, of OPA's canonical form: keys sorted, no spaces, numbers
as Go writes the value). The tests build signed bundles with it and tamper with them.

Usage: sign_bundle.py DIR --alg HS256|RS256|ES256|EdDSA --key SECRET_OR_PEM_FILE
                      [--kid ID] [--scope SCOPE] [--iss ISSUER]
"""

import argparse
import base64
import hashlib
import hmac
import json
import math
from decimal import Decimal
from pathlib import Path

STRUCTURED = {"data.json", "data.yaml", ".manifest"}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def go_number(value) -> str:
    """A JSON number as Go's encoder writes the value OPA's loader read: an integer as its
    digits, a float64 in its shortest digits, in exponent form below 1e-6 and from 1e21."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    shortest = Decimal(repr(value)).normalize()
    if 1e-6 <= abs(value) < 1e21:
        text = format(shortest, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return format(shortest, "e")


def go_string(s: str) -> str:
    out = ['"']
    for c in s:
        code = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\b":
            out.append("\\b")
        elif c == "\f":
            out.append("\\f")
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def canonical(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(go_string(k) + ":" + canonical(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, str):
        return go_string(value)
    if value is None:
        return "null"
    return go_number(value)


def digest(path: Path, name: str) -> str:
    raw = path.read_bytes()
    if name.rsplit("/", 1)[-1] in STRUCTURED:
        raw = canonical(json.loads(raw)).encode()
    return hashlib.sha256(raw).hexdigest()


def sign(signing_input: bytes, alg: str, key: str) -> bytes:
    if alg == "HS256":
        return hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

    private = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
    if alg == "RS256":
        return private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        der = private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return private.sign(signing_input)
    raise SystemExit(f"unsupported algorithm {alg}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--alg", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--kid", default="default")
    parser.add_argument("--scope", default="")
    parser.add_argument("--iss", default="")
    args = parser.parse_args()
    root = Path(args.dir)
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name == ".signatures.json":
            continue
        files.append({"name": name, "hash": digest(path, name), "algorithm": "SHA-256"})
    payload = {"files": files, "keyid": args.kid}
    if args.scope:
        payload["scope"] = args.scope
    if args.iss:
        payload["iss"] = args.iss
    header = {"alg": args.alg, "kid": args.kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())).encode()
    token = signing_input.decode() + "." + b64url(sign(signing_input, args.alg, args.key))
    (root / ".signatures.json").write_text(json.dumps({"signatures": [token]}))


if __name__ == "__main__":
    main()
