#!/usr/bin/env python3
"""Regenerates the conformance suite's expected results from the real OPA engine.

Every module under `policies/` and `data.json` are loaded into one OPA engine (v1.20, the Go
library through `opa-golib-python-bindings`, installed by tests/setup-python.sh). For each
policy, a seeded generator builds inputs from the fields that policy reads: well-formed values
that reach both outcomes, and the edge cases (a missing field, a value of the wrong type, unicode,
large, negative and fractional numbers, malformed strings). Each query is evaluated by OPA and its
answer written to `expected/<policy>.json`:

    {"value": <the document>}   the document is defined
    {"undefined": true}         OPA answers undefined
    {"error": "<message>"}      OPA fails the evaluation (e.g. a builtin's type error)

The format is documented in docs/conformance.md. The files are checked in; the Rust test
(`tests/conformance.rs`) compares docket against them natively and through the component.
Re-run after changing a policy or a generator: `python3 tests/conformance/generate.py`.
"""

import base64
import hashlib
import hmac
import json
import random
from pathlib import Path

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

HERE = Path(__file__).resolve().parent
CASES_PER_POLICY = 120
SEED = 2026

# --- value pools -----------------------------------------------------------------------------

TEXTS = [
    "", "a", "banana split", "  padded  ", "prefix", "pre-fix", "héllo wörld", "日本語テキスト",
    "emoji 🎉!", "a,b; c;d", "k=1 x=22 yy=333", "tab\tand\nnewline", '{"a": 1}', "[1, 2",
    "ÅÄÖ åäö", "UPPER lower", "a" * 120, "--dashes--", "aaa!", "Straße", "ǅ title", "null",
    "<b>&amp;</b>", "line\u2028sep", "0", "12 apples and 7 pears", "a\u0301", "x=1,y=2;z=3",
]
USERS = ["alice", "bob", "carol", "dave", "mallory", "émile", "svc-build", " Alice ", "ALICE", "", "eve"]
ROLES = ["admin", "editor", "viewer", "", "root", "Admin"]
ACTIONS = ["read", "write", "delete", "approve", "list", "LIST", " Read ", "watch", ""]
NUMBERS = [
    0, 1, 2, 3, 7, 10, 42, 99, 100, 101, -1, -7, 2.5, -0.5, 0.1, 1e-7, 1e15, 3.0,
    2**53 + 1, 12345678901234567890, 255, 1024, 65, 50, 90, 89.99, -100,
]
IPS = ["10.1.2.3", "10.1.255.255", "10.2.0.1", "192.168.0.1", "::1", "2001:db8::1", "not-an-ip", "10.1.2.3/32", ""]
CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "bad", "2001:db8::/32", "10.0.0.0/33", "0.0.0.0/0"]
EMAILS = ["alice@example.com", "Bob@Example.COM", "no-at-sign", "a.b+c@mail.co", "x@y", "émile@exemple.fr", "@example.com", ""]
PATTERNS = [r"^a", r"\d+", r"(?i)abc", r"\w+", r"([a-z", r"^$", r"a|b", r"[[:alpha:]]+", r"\p{L}+", r".*", r"(", r"x{2,}"]
URNS = ["urn:foo:bar", "urn:foo:", "urn:bar:x", "urn:foo:a:b", "foo", ""]
PATHS = ["/api/v1/items/a/b", "/api/v1/items", "/api/x/items/1", "/public/docs", "/users/alice", "/users/bob/profile", "/", "", "public", "/api//items/x"]
HOSTS = ["a.example.com", "example.com", "b.c.example.com", "api.internal", "api.", "API.example.com", ""]
TIMESTAMPS = [
    "2025-03-04T05:06:07Z", "2025-03-04T05:06:07.123456789Z", "2024-02-29T12:00:00+05:30",
    "1970-01-01T00:00:00Z", "2025-13-01T00:00:00Z", "yesterday", "2025-03-04", "2023-11-14T22:13:20Z",
    "2038-01-19T03:14:08-08:00", "2025-12-31T23:59:59.5Z",
]
TIME_NS = [
    0, 1717000037500000000, 1717000037000000000, 1709164800123456789, -1, -86400000000000,
    1700000000000000001, 1735689599999999999, 2.5e18, 1.5, 9223372036854775807, 1e19,
    1679792400000000000, 1667091600000000000,  # around Europe's 2023 changes of clock
]
ZONES = [
    "", "UTC", "Local", "Europe/Paris", "America/New_York", "Asia/Kathmandu", "Asia/Kolkata",
    "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "Africa/Casablanca",
    "America/Sao_Paulo", "Etc/GMT+3", "Bad/Zone", "utc", "Europe/Dublin",
]
LAYOUTS = [
    "", "MST", "RFC3339", "RFC3339Nano", "RFC1123", "RFC1123Z", "RFC822", "RFC822Z", "RFC850",
    "ANSIC", "UnixDate", "RubyDate", "Kitchen", "DateTime", "2006-01-02T15:04:05.000Z07:00",
    "2006-01-02T15:04:05.999Z07:00", "15:04:05,000000", "15:04:05,999999999",
    "Monday January _2 3:4:5 PM .000000", "Mon Jan 2 15:04:05 MST 2006", "3:04pm",
    "Z07 Z0700 Z07:00 Z070000 Z07:00:00", "-07 -0700 -07:00 -070000 -07:00:00",
    "_2 __2 002 _2006 06 2006", "Janet Mond Monday January", "1 01 2 02 3 03 4 04 5 05",
    "2006-01-02 15:04:05.9999 -0700 MST", ".0 .9 .00 .99", "05.000005", "no layout elements",
    "2006年01月02日", "PM pm AM",
]
NETS = [
    "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.3.0/24", "10.1.2.128/25", "10.1.2.3/32",
    "10.1.2.3/8", "192.168.0.0/16", "192.168.1.0/24", "172.16.0.0/12", "0.0.0.0/0",
    "2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128", "::/0", "fe80::/10",
    "::ffff:10.0.0.0/104", "10.0.0.0/33", "bad", "10.0.0.0", "", "10.0.0.0/08", "10.0.0.0/-1",
]
ADDRESSES = NETS[:17] + [
    "10.1.2.3", "10.200.0.1", "192.168.1.77", "172.20.1.1", "8.8.8.8", "2001:db8::5",
    "2001:db9::1", "::ffff:10.1.2.3", "224.0.0.1", "not-an-ip", "1.2.3",
]
MERGEABLE = [
    "10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.0.128/25", "10.0.0.5",
    "192.168.0.0/24", "192.168.1.0/24", "192.168.3.0/24", "172.16.5.4", "10.1.2.3",
    "2001:db8::/33", "2001:db8:8000::/33", "2001:db8::/32", "2001:db9::/48", "::/1",
    "0.0.0.0/1", "128.0.0.0/1", "255.255.255.255/32", "255.255.255.254/32", "10.0.0.0/8",
]


def cidr_collection(rng):
    kind = rng.random()
    if kind < 0.25:
        return rng.choice(ADDRESSES)
    if kind < 0.55:
        return [rng.choice(ADDRESSES) for _ in range(rng.randint(0, 4))]
    if kind < 0.7:
        return [[rng.choice(ADDRESSES), rng.choice(["web", "db", 7])] for _ in range(rng.randint(1, 3))]
    if kind < 0.9:
        return {f"k{i}": rng.choice(ADDRESSES) for i in range(rng.randint(0, 3))}
    return rng.choice([[], [[]], [1], {"k": 5}, 17, None])


def merge_list(rng):
    if rng.random() < 0.1:
        return rng.choice([["2001:db8::1"], ["bad"], [5], "10.0.0.0/8"])
    return [rng.choice(MERGEABLE) for _ in range(rng.randint(0, 6))]


DURATIONS = ["1h", "90m", "1h30m", "2.5s", "-5m", "bad", "300ms", "1d", "0", "45us", "2h45m30.5s"]
DAYS = ["2024-01-31", "2024-02-29", "2023-02-29", "2024-13-01", "bad", "1999-12-31"]
SIZES = ["10MB", "1Mi", "512", "1.5GiB", "bad", "10mb", "2Ki", "0", "1e3", "3 GB", "-1K"]
QUANTITIES = ["1.5k", "2m", "100", "3G", "bad", "0.5", "1Ki", "250M", "7u"]
VERSIONS = ["1.2.3", "1.2.4-beta", "1.2.3-alpha.1", "0.9.0", "v1.2.3", "1.2", "bad", "10.0.0", "1.2.3+build.5"]
UUIDS = ["5f0c3a9e-1b2d-4c5e-8f7a-9b0c1d2e3f4a", "5F0C3A9E-1B2D-4C5E-8F7A-9B0C1D2E3F4A", "not-a-uuid", "00000000-0000-0000-0000-000000000000", "{5f0c3a9e-1b2d-4c5e-8f7a-9b0c1d2e3f4a}"]
NUMERIC_TEXTS = ["42", "-3.5", "1e3", "abc", "0x10", " 7", "", "007", "1.0", "99999999999999999999"]
METHODS = ["GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "get"]
KEYS = ["flags", "regions", "users", "missing", "limits"]
CATEGORIES = ["fruit", "tools", "books", ""]
IMAGES = ["registry.example.com/app:1.2", "registry.example.com/app:latest", "docker.io/library/nginx:latest", "nginx", "registry.example.com/db@sha256:abc"]


def wrong_type(rng):
    """A value of an arbitrary type, for fields read as something else."""
    return rng.choice([None, True, False, 17, -2.5, "str", [], [1, "a"], {}, {"k": "v"}])


def number(rng):
    return rng.choice(NUMBERS) if rng.random() < 0.8 else rng.randrange(-50, 150)


def numbers_list(rng):
    n = rng.randrange(0, 7)
    xs = [rng.choice([rng.randrange(-3, 120), rng.choice(NUMBERS)]) for _ in range(n)]
    if xs and rng.random() < 0.15:
        xs[rng.randrange(len(xs))] = rng.choice(["7", None, 2.5])
    if xs and rng.random() < 0.2:
        xs.append(xs[0])  # a duplicate
    return xs


def item(rng):
    it = {
        "name": rng.choice(["apple", "hammer", "novel", "pear", "émincé", "x"]),
        "qty": rng.choice([0, 1, 3, 11, 50, 2.5]),
        "price": rng.choice([1, 9.99, 0.1, 100, 0, 1e6]),
        "category": rng.choice(CATEGORIES),
    }
    if rng.random() < 0.15:
        del it["price"]
    if rng.random() < 0.05:
        it["qty"] = "many"
    return it


def items(rng):
    return [item(rng) for _ in range(rng.randrange(0, 5))]


def payload(rng, depth=0):
    kinds = ["str", "num", "bool", "null"] + (["arr", "obj"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(TEXTS[:20])
    if kind == "num":
        return rng.choice([1, 1.5, -2, 0.25, 1e21, 123456789])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "arr":
        return [payload(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    return {rng.choice(["a", "b", "ü", "key with space", "z"]): payload(rng, depth + 1) for _ in range(rng.randrange(0, 3))}


def attrs(rng):
    o = {}
    if rng.random() < 0.8:
        o["team"] = rng.choice(["blue", "red", "", "Blue"])
    if rng.random() < 0.6:
        o["level"] = rng.choice([1, 2, 3, "high"])
    if rng.random() < 0.6:
        o["meta"] = {"region": rng.choice(["eu", "us", "ap"])} if rng.random() < 0.8 else {"zone": "a"}
    if rng.random() < 0.4:
        o["secret"] = "s3cr3t"
    return o


def user_object(rng):
    if rng.random() < 0.3:
        return rng.choice(USERS)
    u = {"name": rng.choice(USERS)}
    if rng.random() < 0.7:
        u["role"] = rng.choice(ROLES)
    if rng.random() < 0.3:
        u["sudo"] = rng.choice([True, False, "yes"])
    return u


def claims(rng):
    c = {}
    if rng.random() < 0.85:
        c["sub"] = rng.choice(["alice", "bob", "carol"])
    c["groups"] = rng.sample(["admin", "dev", "ops", "audit"], rng.randrange(0, 3))
    if rng.random() < 0.6:
        c["mfa"] = rng.choice([True, False, "true"])
    return c


def container(rng):
    c = {"name": rng.choice(["app", "sidecar", "db", "init"]), "image": rng.choice(IMAGES)}
    if rng.random() < 0.3:
        c["securityContext"] = {"privileged": rng.choice([True, False])}
    if rng.random() < 0.7:
        c["resources"] = {"limits": {"memory": rng.choice(SIZES)}}
    return c


def pod(rng):
    return {"containers": [container(rng) for _ in range(rng.randrange(0, 4))]}


def metadata(rng):
    labels = {}
    if rng.random() < 0.7:
        labels["team"] = rng.choice(["blue", "red"])
    return {"labels": labels}


def b64(rng):
    import base64
    raw = rng.choice(TEXTS[:12]).encode()
    return rng.choice([base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), "!!!", "YWJj", "YWJ", ""])


# Patterns in Go's syntax where Rust's regex reads them otherwise (docs/conformance.md).
GO_PATTERNS = [
    r"^\w+$", r"^\w{3,16}$", r"\w+", r"\W+", r"\d+", r"\D", r"\s+", r"\S+", r"\b\w", r"\B",
    r"^[\w.-]+@[\w-]+\.\w{2,6}$", r"^\p{L}{1,5}$", r"\pL+", r"[\s,;]+", r"[^\d\s]+", r"[a[]",
    r"[a&&b]", r"[a~~]", r"[]a]+", r"[[:alpha:]]+", r"[[:^digit:]]+", r"\Qa.b\E", r"(?i)straße",
    r"(?i)é", r"a*", r"x*", "", r"(a)|(b)", r"(\w)(\d)?", r"(?P<name>\w+)", "[", "(", r"a{1001}",
    r"\pN", ".", r"(?s).+", r"^$", r"\x41", r"\u0041", r"\101", r"\1", r"\<a\>", r"[a-]+",
    r"[\d-z]+", r"(?U)a+", r"\x{e9}", r"\z", r"\Aa",
]
GO_TEXTS = [
    "école", "abc_def", "a b\u00a0c", "hello world", "a.b", "axb", "a[b", "&", "~", "]a",
    "ABC123", "straße", "STRASSE", "ÉCOLE", "x", "", "baaac", "ab", "abab", "a\tb\nc", "١٢٣",
    "foo@bar.com", "jö@bar.com", "日本語", "a-b_c.d", "<a>", "A", "aaa", "z-9", "é",
]


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(header, payload, secret="s3cret", digest=hashlib.sha256, signature=None):
    """A compact JWS signed with HMAC (or carrying `signature` as given)."""
    signing = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(
        json.dumps(payload, separators=(",", ":")).encode())
    if signature is None:
        signature = _b64(hmac.new(secret.encode(), signing.encode(), digest).digest())
    return signing + "." + signature


_CLAIMS = {"sub": "alice", "role": "admin", "iss": "idp", "aud": "api", "nbf": 1000, "exp": 4102444800}
JWTS = [
    _jwt({"alg": "HS256", "typ": "JWT"}, _CLAIMS),
    _jwt({"alg": "HS256"}, {**_CLAIMS, "role": "viewer"}),
    _jwt({"alg": "HS256"}, {**_CLAIMS, "aud": ["web", "api"]}),
    _jwt({"alg": "HS256"}, {k: v for k, v in _CLAIMS.items() if k != "aud"}),
    _jwt({"alg": "HS256"}, {**_CLAIMS, "exp": 1700000000}),
    _jwt({"alg": "HS256"}, {**_CLAIMS, "nbf": 4102444800}),
    _jwt({"alg": "HS256"}, {**_CLAIMS, "exp": "tomorrow"}),
    _jwt({"alg": "HS256"}, _CLAIMS, secret="other"),
    _jwt({"alg": "HS512"}, _CLAIMS, digest=hashlib.sha512),
    _jwt({"alg": "HS384"}, _CLAIMS, digest=hashlib.sha384),
    _jwt({"alg": "RS256"}, _CLAIMS, signature="c2ln"),
    _jwt({"alg": "none"}, _CLAIMS, signature=""),
    _jwt({"typ": "JWT"}, _CLAIMS),
    _jwt({"alg": "HS256", "cty": "JWT"}, {"x": 1}),
    "a.b", "x.y.z", "a.b.c", "", "not-a-token",
    _b64(b"[1]") + "." + _b64(b"{}") + ".c2ln",
]
SECRETS = ["s3cret", "other", "", "key"]
# Public keys and tokens signed with their private keys, made once (make_jwt_fixtures.py).
JWT_FIXTURES = json.loads((Path(__file__).parent / "jwt_fixtures.json").read_text())


def constraints(rng):
    c = {}
    roll = rng.random()
    if roll < 0.85:
        c["secret"] = rng.choice(SECRETS)
    elif roll < 0.9:
        c["cert"] = "-----BEGIN PUBLIC KEY-----"
    if rng.random() < 0.3:
        c["alg"] = rng.choice(["HS256", "HS512", "RS256"])
    if rng.random() < 0.5:
        c["aud"] = rng.choice(["api", "web", "other"])
    if rng.random() < 0.3:
        c["iss"] = rng.choice(["idp", "other"])
    if rng.random() < 0.3:
        c["time"] = rng.choice([1500000000000000000, 999000000000, 4102444801000000000, 1800000000000000000])
    if rng.random() < 0.05:
        c["unknown"] = 1
    return c


def any_value(rng):
    return rng.choice([None, True, 0, 2.5, "s", "", [1], {"a": 1}, [], {}])


def pool(values):
    return lambda rng: rng.choice(values)


FIELD = {
    "text": pool(TEXTS), "user": pool(USERS), "role": pool(ROLES), "action": pool(ACTIONS),
    "n": number, "m": number, "amount": number, "score": number, "size_n": number,
    "numbers": numbers_list, "other": numbers_list, "items": items, "ip": pool(IPS),
    "cidr": pool(CIDRS), "email": pool(EMAILS), "pattern": pool(PATTERNS), "urn": pool(URNS),
    "path": pool(PATHS), "host": pool(HOSTS), "timestamp": pool(TIMESTAMPS),
    "duration": pool(DURATIONS), "day": pool(DAYS), "size": pool(SIZES),
    "quantity": pool(QUANTITIES), "version": pool(VERSIONS), "uuid": pool(UUIDS),
    "numeric_text": pool(NUMERIC_TEXTS), "flag": lambda rng: rng.random() < 0.5,
    "payload": payload, "b64": b64, "attrs": attrs, "user_object": user_object,
    "claims": claims, "method": pool(METHODS), "spec": pod, "metadata": metadata,
    "key": pool(KEYS), "value": any_value, "other_user": pool(USERS),
    "go_pattern": pool(GO_PATTERNS), "go_text": pool(GO_TEXTS),
    "token": pool(JWTS), "secret": pool(SECRETS), "constraints": constraints,
    "signed_token": pool(JWT_FIXTURES["tokens"]), "public_key": pool(JWT_FIXTURES["certs"]),
    "time_ns": pool(TIME_NS), "zone": pool(ZONES), "layout": pool(LAYOUTS),
    "net": pool(NETS), "cidr_collection": cidr_collection, "merge_list": merge_list,
}

# policy → (input fields, as input key → generator name; the rules queried). Paths are under
# data.conformance.<policy>; "" queries the whole package document.
POLICIES = {
    "defaults_else": ({"role": "role", "action": "action", "score": "score", "size": "size_n", "user": "user"},
                      ["allow", "level", "bucket", "greeting", ""]),
    "functions": ({"amount": "amount", "user": "user_object", "items": "items"},
                  ["scaled", "clamped", "kind", "privileged", "order_total"]),
    "partial_sets": ({"items": "items", "user": "user"},
                     ["violations", "prices", "by_qty", "allow", "names"]),
    "iteration": ({"numbers": "numbers"},
                  ["all_positive", "all_small", "has_negative", "index_of_max", "no_zero", "pairs", "old_style"]),
    "comprehensions": ({"numbers": "numbers", "items": "items"},
                       ["squares", "evens", "index", "nested", "count_big", "grouped"]),
    "with_keyword": ({"user": "user", "other": "other_user", "amount": "amount"},
                     ["allow", "allow_as_alice", "allow_as_input", "over_limit", "over_small_limit", "shout", "now_is_fixed"]),
    "negation": ({"user": "user", "role": "role", "ip": "ip"},
                 ["allow", "not_admin", "no_role", "not_prefixed", "outside", "unknown_user", "not_member"]),
    "modules/a": ({"user": "user", "action": "action"}, ["allow", "user_info", "doc"]),
    "modules/b": ({"user": "user", "action": "action"}, ["count_actions", "ok"]),
    "data_refs": ({"user": "user", "action": "action", "key": "key"},
                  ["user", "roles", "can", "managers", "team_size", "dynamic"]),
    "strings": ({"text": "text", "n": "n", "flag": "flag", "numeric_text": "numeric_text"},
                ["results", "formatted", "formatted_values", "formatted_number", "int_formats", "as_number", "upper_text"]),
    "numbers": ({"n": "n", "m": "m"},
                ["arithmetic", "quotient", "remainder", "rounding", "comparisons", "range", "stepped", "bitwise", "big", "tenth"]),
    "aggregates": ({"numbers": "numbers", "items": "items"},
                   ["stats", "set_stats", "names_sorted", "any_big", "average"]),
    "sets_arrays": ({"numbers": "numbers", "other": "other"},
                    ["set_ops", "arrays", "subset", "first", "last", "flat"]),
    "objects": ({"attrs": "attrs"},
                ["results", "json_filtered", "json_removed", "walked", "has_team", "team_or_default"]),
    "json_encoding": ({"payload": "payload", "text": "text", "b64": "b64"},
                      ["marshalled", "round_trip", "valid_json", "parsed", "encodings", "decoded", "b64_valid", "query_object", "patched"]),
    "regex_glob": ({"email": "email", "text": "text", "pattern": "pattern", "urn": "urn", "path": "path", "host": "host"},
                   ["email_ok", "digits", "parts", "replaced", "valid_pattern", "user_pattern_match", "submatches", "templated", "glob_path", "glob_host", "glob_default"]),
    "time_units": ({"timestamp": "timestamp", "duration": "duration", "day": "day", "size": "size", "quantity": "quantity"},
                   ["ts", "parts", "later", "diff", "duration", "within_hour", "parsed_layout", "formatted", "size", "quantity", "big_enough"]),
    "types_net_semver": ({"value": "value", "ip": "ip", "cidr": "cidr", "version": "version", "uuid": "uuid"},
                         ["types", "in_office", "valid_cidr", "cidr_contains_cidr", "version_cmp", "version_ok", "uuid_parsed"]),
    "http_api": ({"method": "method", "path": "path", "claims": "claims"}, ["allow", "reasons", "decision", ""]),
    "admission": ({"spec": "spec", "metadata": "metadata"}, ["deny", "memory_limits", "allowed"]),
    "regex_go": ({"pattern": "go_pattern", "text": "go_text"},
                 ["matched", "found", "first_two", "groups", "split", "replaced", "valid"]),
    "jwt_crypto": ({"token": "token", "secret": "secret", "constraints": "constraints", "text": "text"},
                   ["decoded", "hs256", "hs512", "verified", "hashes", "macs", "same", "allow"]),
    "jwt_keys": ({"token": "signed_token", "cert": "public_key"},
                 ["rs256", "rs512", "ps256", "es256", "es384", "es512", "eddsa", "verified"]),
    "time_format": ({"ns": "time_ns", "zone": "zone", "layout": "layout"},
                    ["formatted", "default_layout", "plain"]),
    "net_cidr": ({"a": "net", "b": "net", "x": "cidr_collection", "y": "cidr_collection", "list": "merge_list"},
                 ["intersects", "matches", "merged", "merged_set", "allowed"]),
}


def generate_input(rng, fields):
    doc = {}
    for key, gen in fields.items():
        roll = rng.random()
        if roll < 0.08:
            continue  # missing
        doc[key] = wrong_type(rng) if roll < 0.15 else FIELD[gen](rng)
    return doc


def opa_answer(engine, path, doc):
    try:
        return {"value": engine.eval_document(path.replace("/", "."), doc)}
    except OpaUndefinedError:
        return {"undefined": True}
    except OpaError as e:
        return {"error": str(e)[:300]}


def main():
    engine = OpaEngine()
    for module in sorted((HERE / "policies").glob("*.rego")):
        engine.add_policy(module.name, module.read_text())
    engine.add_data(json.loads((HERE / "data.json").read_text()))
    try:  # OPA compiles the modules at the first evaluation: a policy error must stop the run
        engine.eval_document("conformance")
    except OpaError as e:
        raise SystemExit(f"OPA does not compile the suite's policies: {e}")
    out_dir = HERE / "expected"
    out_dir.mkdir(exist_ok=True)
    total = 0
    for index, (policy, (fields, rules)) in enumerate(POLICIES.items()):
        rng = random.Random(SEED * 1000 + index)
        package = "conformance/" + policy
        queries = [f"{package}/{r}" if r else package for r in rules]
        cases = []
        for _ in range(CASES_PER_POLICY):
            doc = generate_input(rng, fields)
            cases.append({"input": doc, "expect": {q: opa_answer(engine, q, doc) for q in queries}})
        total += len(cases) * len(queries)
        lines = [json.dumps({"policy": policy, "queries": queries}, ensure_ascii=False)[:-1] + ', "cases": [']
        lines += [("  " if i == 0 else ", ") + json.dumps(c, ensure_ascii=False, sort_keys=True) for i, c in enumerate(cases)]
        lines.append("]}")
        (out_dir / (policy.replace("/", "_") + ".json")).write_text("\n".join(lines) + "\n")
        outcomes = [next(iter(a)) for c in cases for a in c["expect"].values()]
        print(f"{policy:18} {len(cases) * len(queries):5} decisions: "
              f"{outcomes.count('value')} defined, {outcomes.count('undefined')} undefined, {outcomes.count('error')} errors")
    print(f"{total} decisions in all, from OPA")


if __name__ == "__main__":
    main()
