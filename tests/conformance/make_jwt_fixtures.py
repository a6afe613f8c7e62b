"""Writes tests/conformance/jwt_fixtures.json: public keys in every form OPA reads (PEM public
keys, X.509 certificates, JWKs and JWK sets with and without `kid` and `alg`) and tokens signed
with their private keys (RS*, PS*, ES256/384/512, EdDSA), tampered and cross-signed ones too.
Keys and ECDSA signatures are random, so the fixtures are made once and kept; generate.py reads
them. Re-run only to change them: python3 tests/conformance/make_jwt_fixtures.py
"""

import base64
import datetime
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import NameOID


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def int_b64(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


HASH = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
CURVE = {"ES256": (ec.SECP256R1(), "P-256", 32), "ES384": (ec.SECP384R1(), "P-384", 48), "ES512": (ec.SECP521R1(), "P-521", 66)}


def sign(alg, key, signing_input):
    data = signing_input.encode()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), HASH[alg[2:]])
    if alg.startswith("PS"):
        h = HASH[alg[2:]]
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        _, _, size = CURVE[alg]
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(HASH[alg[2:]])))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(data)  # EdDSA


def token(alg, key, claims, kid=None):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + "." + b64(sign(alg, key, signing_input))


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def certificate(key, algorithm):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, algorithm))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def jwk(key, **extra):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        out = {"kty": "RSA", "n": int_b64(n.n), "e": int_b64(n.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        crv = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}[pub.curve.name]
        out = {"kty": "EC", "crv": crv[0], "x": int_b64(n.x, crv[1]), "y": int_b64(n.y, crv[1])}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        out = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    out.update(extra)
    return out


def main():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_keys = {alg: ec.generate_private_key(curve) for alg, (curve, _, _) in CURVE.items()}
    ed_key = ed25519.Ed25519PrivateKey.generate()
    claims = {"sub": "alice", "role": "admin", "aud": "api", "iss": "idp", "nbf": 1000, "exp": 4102444800}
    tokens = []
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]:
        tokens.append(token(alg, rsa_key, claims))
    tokens.append(token("RS256", rsa_other, claims))
    tokens.append(token("RS256", rsa_key, claims, kid="rsa-1"))
    tokens.append(token("RS256", rsa_other, claims, kid="rsa-1"))
    for alg, key in ec_keys.items():
        tokens.append(token(alg, key, claims))
    tokens.append(token("ES256", ec_keys["ES256"], {**claims, "role": "viewer"}, kid="ec-1"))
    tokens.append(token("EdDSA", ed_key, claims))
    tokens.append(token("EdDSA", ed_key, {**claims, "aud": "web"}))
    good = tokens[0]
    head, body, sig = good.split(".")
    tokens.append(head + "." + b64(json.dumps({**claims, "role": "root"}).encode()) + "." + sig)  # tampered claims
    tokens.append(head + "." + body + "." + sig[:-4] + "AAAA")  # tampered signature
    tokens.append(head + "." + body + ".")  # no signature
    certs = [
        pem_public(rsa_key),
        certificate(rsa_key, hashes.SHA256()),
        json.dumps(jwk(rsa_key)),
        json.dumps({"keys": [jwk(rsa_other, kid="rsa-0"), jwk(rsa_key, kid="rsa-1", alg="RS256")]}),
        json.dumps({"keys": [jwk(rsa_key, alg="PS256")]}),
        pem_public(ec_keys["ES256"]),
        certificate(ec_keys["ES256"], hashes.SHA256()),
        json.dumps({"keys": [jwk(ec_keys["ES256"], kid="ec-1"), jwk(ec_keys["ES384"]), jwk(ec_keys["ES512"])]}),
        pem_public(ec_keys["ES384"]),
        pem_public(ec_keys["ES512"]),
        pem_public(ed_key),
        json.dumps(jwk(ed_key)),
        pem_public(rsa_other),
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        pem_public(rsa_key) + "trailing",
        "not a key",
        json.dumps({"kty": "RSA"}),
        json.dumps({"keys": []}),
    ]
    out = Path(__file__).parent / "jwt_fixtures.json"
    out.write_text(json.dumps({"tokens": tokens, "certs": certs}, indent=1) + "\n")
    print(f"wrote {out}: {len(tokens)} tokens, {len(certs)} keys")


if __name__ == "__main__":
    main()
