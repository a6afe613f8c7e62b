//! JSON Web Token signatures by public key: `io.jwt.verify_rs*`, `ps*`, `es*`, `eddsa`, and the
//! `cert` constraint of `io.jwt.decode_verify`, following OPA v1.20's `topdown/tokens.go`.
//!
//! A key is given as OPA takes it: one PEM block (`CERTIFICATE`, whose subject key is used, or
//! `PUBLIC KEY`), else a JWK or a JWK set (RSA, EC P-256/P-384/P-521, OKP Ed25519). A token
//! whose header names a `kid` that a key of the set carries is checked with that key alone;
//! otherwise every key is tried.

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier;
use rsa::BoxedUint;
use rsa::pkcs8::DecodePublicKey;
use serde_json::Value as Json;
use sha2::{Sha256, Sha384, Sha512};

/// A public key of one of the kinds JWS uses.
enum PublicKey {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A key with what its JWK said about it.
pub(super) struct Key {
    key: PublicKey,
    alg: Option<String>,
    kid: Option<String>,
}

/// The keys of a PEM certificate or public key, a JWK, or a JWK set.
pub(super) fn parse_keys(text: &str) -> Result<Vec<Key>> {
    if let Some(der) = pem_block(text)? {
        let key = match der {
            Pem::Certificate(der) => {
                use x509_cert::der::{Decode, Encode};
                let cert = x509_cert::Certificate::from_der(&der)
                    .map_err(|e| anyhow!("failed to parse the PEM certificate: {e}"))?;
                let spki = cert
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| anyhow!("failed to read the certificate's key: {e}"))?;
                spki_key(&spki)?
            }
            Pem::PublicKey(der) => spki_key(&der)?,
        };
        return Ok(vec![Key {
            key,
            alg: None,
            kid: None,
        }]);
    }
    let json: Json =
        serde_json::from_str(text).map_err(|e| anyhow!("failed to parse a JWK key (set): {e}"))?;
    let jwks = match json.get("keys") {
        Some(Json::Array(keys)) => keys.clone(),
        Some(_) => bail!("failed to parse a JWK key (set): `keys` is not an array"),
        None => vec![json],
    };
    jwks.iter().map(jwk).collect()
}

enum Pem {
    Certificate(Vec<u8>),
    PublicKey(Vec<u8>),
}

/// The first PEM block, as Go's `pem.Decode` finds it; `None` if the text holds none.
fn pem_block(text: &str) -> Result<Option<Pem>> {
    let Some(start) = text.find("-----BEGIN ") else {
        return Ok(None);
    };
    let rest = &text[start + 11..];
    let Some(label_end) = rest.find("-----") else {
        return Ok(None);
    };
    let label = &rest[..label_end];
    let end_marker = format!("-----END {label}-----");
    let body_start = label_end + 5;
    let Some(body_len) = rest[body_start..].find(&end_marker) else {
        return Ok(None);
    };
    let body: String = rest[body_start..body_start + body_len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let after = &rest[body_start + body_len + end_marker.len()..];
    if !after.trim().is_empty() {
        bail!("extra data after a PEM certificate block");
    }
    let der = STANDARD
        .decode(body)
        .map_err(|e| anyhow!("the PEM block is not base64: {e}"))?;
    match label {
        "CERTIFICATE" => Ok(Some(Pem::Certificate(der))),
        "PUBLIC KEY" => Ok(Some(Pem::PublicKey(der))),
        _ => bail!("failed to extract a Key from the PEM certificate"),
    }
}

/// A key from a DER SubjectPublicKeyInfo, whichever of the supported kinds it is.
fn spki_key(der: &[u8]) -> Result<PublicKey> {
    if let Ok(key) = rsa::PublicKey::from_public_key_der(der) {
        return Ok(PublicKey::Rsa(key));
    }
    if let Ok(key) = p256::PublicKey::from_public_key_der(der) {
        return Ok(PublicKey::P256(key.into()));
    }
    if let Ok(key) = p384::PublicKey::from_public_key_der(der) {
        return Ok(PublicKey::P384(key.into()));
    }
    if let Ok(key) = p521::PublicKey::from_public_key_der(der) {
        return Ok(PublicKey::P521(p521::ecdsa::VerifyingKey::from_affine(
            *key.as_affine(),
        )?));
    }
    if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
        return Ok(PublicKey::Ed25519(key));
    }
    bail!("the public key is not an RSA, P-256, P-384, P-521 or Ed25519 key")
}

fn member<'a>(jwk: &'a Json, name: &str) -> Result<&'a str> {
    jwk.get(name)
        .and_then(Json::as_str)
        .ok_or_else(|| anyhow!("failed to parse a JWK key (set): no `{name}`"))
}

fn bytes(jwk: &Json, name: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(member(jwk, name)?.trim_end_matches('='))
        .map_err(|_| anyhow!("failed to parse a JWK key (set): `{name}` is not base64url"))
}

fn jwk(jwk: &Json) -> Result<Key> {
    let key = match (member(jwk, "kty")?, jwk.get("crv").and_then(Json::as_str)) {
        ("RSA", _) => {
            let (n, e) = (bytes(jwk, "n")?, bytes(jwk, "e")?);
            let bits = |b: &[u8]| u32::try_from(b.len() * 8).unwrap_or(u32::MAX);
            let n = BoxedUint::from_be_slice(&n, bits(&n))
                .map_err(|_| anyhow!("failed to parse a JWK key (set): a bad RSA modulus"))?;
            let e = BoxedUint::from_be_slice(&e, bits(&e).max(64))
                .map_err(|_| anyhow!("failed to parse a JWK key (set): a bad RSA exponent"))?;
            PublicKey::Rsa(
                rsa::PublicKey::new(n, e)
                    .map_err(|e| anyhow!("failed to parse a JWK key (set): {e}"))?,
            )
        }
        ("EC", Some(curve)) => {
            let point = [&[4u8][..], &bytes(jwk, "x")?, &bytes(jwk, "y")?].concat();
            let bad = |_| anyhow!("failed to parse a JWK key (set): a bad {curve} point");
            match curve {
                "P-256" => PublicKey::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad)?,
                ),
                "P-384" => PublicKey::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad)?,
                ),
                "P-521" => PublicKey::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad)?,
                ),
                other => bail!("failed to parse a JWK key (set): unsupported curve {other}"),
            }
        }
        ("OKP", Some("Ed25519")) => {
            let x: [u8; 32] = bytes(jwk, "x")?
                .try_into()
                .map_err(|_| anyhow!("failed to parse a JWK key (set): a bad Ed25519 key"))?;
            PublicKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| anyhow!("failed to parse a JWK key (set): a bad Ed25519 key"))?,
            )
        }
        (kty, _) => bail!("failed to parse a JWK key (set): unsupported key type {kty}"),
    };
    Ok(Key {
        key,
        alg: jwk.get("alg").and_then(Json::as_str).map(str::to_string),
        kid: jwk.get("kid").and_then(Json::as_str).map(str::to_string),
    })
}

/// Whether `signature` over `input` verifies under `key` with the JWS algorithm `alg`. A key
/// of another kind than the algorithm's, or a malformed signature, does not verify.
fn verifies(alg: &str, key: &PublicKey, input: &[u8], signature: &[u8]) -> bool {
    use rsa::{pkcs1v15, pss};
    match (alg, key) {
        ("RS256", PublicKey::Rsa(k)) => rsa_verify(
            pkcs1v15::VerifyingKey::<Sha256>::new(k.clone()),
            input,
            pkcs1v15::Signature::try_from(signature),
        ),
        ("RS384", PublicKey::Rsa(k)) => rsa_verify(
            pkcs1v15::VerifyingKey::<Sha384>::new(k.clone()),
            input,
            pkcs1v15::Signature::try_from(signature),
        ),
        ("RS512", PublicKey::Rsa(k)) => rsa_verify(
            pkcs1v15::VerifyingKey::<Sha512>::new(k.clone()),
            input,
            pkcs1v15::Signature::try_from(signature),
        ),
        ("PS256", PublicKey::Rsa(k)) => rsa_verify(
            pss::VerifyingKey::<Sha256>::new(k.clone()),
            input,
            pss::Signature::try_from(signature),
        ),
        ("PS384", PublicKey::Rsa(k)) => rsa_verify(
            pss::VerifyingKey::<Sha384>::new(k.clone()),
            input,
            pss::Signature::try_from(signature),
        ),
        ("PS512", PublicKey::Rsa(k)) => rsa_verify(
            pss::VerifyingKey::<Sha512>::new(k.clone()),
            input,
            pss::Signature::try_from(signature),
        ),
        ("ES256", PublicKey::P256(k)) => {
            p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(input, &s).is_ok())
        }
        ("ES384", PublicKey::P384(k)) => {
            p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(input, &s).is_ok())
        }
        ("ES512", PublicKey::P521(k)) => {
            p521::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(input, &s).is_ok())
        }
        ("EdDSA", PublicKey::Ed25519(k)) => ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| k.verify(input, &s).is_ok()),
        _ => false,
    }
}

fn rsa_verify<V: Verifier<S>, S, E>(key: V, input: &[u8], signature: Result<S, E>) -> bool {
    signature.is_ok_and(|s| key.verify(input, &s).is_ok())
}

/// Whether the token verifies with `alg` under one of `keys`: only the key with the header's
/// `kid`, if the set has one, else each key in turn but those whose JWK names another algorithm
/// (OPA skips them too, for `io.jwt.verify_*` as for `io.jwt.decode_verify`).
pub(super) fn verify_with(
    keys: &[Key],
    alg: &str,
    kid: Option<&str>,
    input: &[u8],
    signature: &[u8],
) -> bool {
    if let Some(key) = kid.and_then(|kid| keys.iter().find(|k| k.kid.as_deref() == Some(kid))) {
        return verifies(alg, &key.key, input, signature);
    }
    keys.iter()
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        .any(|k| verifies(alg, &k.key, input, signature))
}
