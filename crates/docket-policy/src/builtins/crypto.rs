//! OPA's hashing and JSON Web Token builtins that regorus leaves out: `crypto.sha256`, `sha1`,
//! `md5`, `crypto.hmac.*`, `io.jwt.decode`, `io.jwt.verify_*` and `io.jwt.decode_verify`,
//! following OPA v1.20's `topdown/crypto.go` and `topdown/tokens.go` (the answers and which
//! inputs are errors; messages are OPA's where a policy author reads them). Public keys and
//! their signature schemes are in `jwt_keys.rs`.
//!
//! Architecture invariant: pure functions of their arguments, as every builtin docket answers,
//! except that `io.jwt.decode_verify` without a `time` constraint reads the clock, as OPA reads
//! the evaluation's time for it.

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use regorus::Value;
use sha2::Digest;

use super::string_arg as string;

use hex::encode as hex;

pub fn sha256(args: &[Value]) -> Result<Value> {
    let s = string("crypto.sha256", 1, &args[0])?;
    Ok(Value::from(hex(sha2::Sha256::digest(s.as_bytes()))))
}

pub fn sha1(args: &[Value]) -> Result<Value> {
    let s = string("crypto.sha1", 1, &args[0])?;
    Ok(Value::from(hex(sha1::Sha1::digest(s.as_bytes()))))
}

pub fn md5(args: &[Value]) -> Result<Value> {
    let s = string("crypto.md5", 1, &args[0])?;
    Ok(Value::from(hex(md5::Md5::digest(s.as_bytes()))))
}

/// The HMAC of `message` under `key` with one of the hashes OPA offers.
fn hmac_of(hash: Hash, key: &[u8], message: &[u8]) -> Vec<u8> {
    macro_rules! mac {
        ($d:ty) => {{
            let mut mac = <Hmac<$d> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match hash {
        Hash::Md5 => mac!(md5::Md5),
        Hash::Sha1 => mac!(sha1::Sha1),
        Hash::Sha256 => mac!(sha2::Sha256),
        Hash::Sha384 => mac!(sha2::Sha384),
        Hash::Sha512 => mac!(sha2::Sha512),
    }
}

#[derive(Clone, Copy)]
enum Hash {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

fn hmac_builtin(name: &str, hash: Hash, args: &[Value]) -> Result<Value> {
    let message = string(name, 1, &args[0])?;
    let key = string(name, 2, &args[1])?;
    Ok(Value::from(hex(hmac_of(
        hash,
        key.as_bytes(),
        message.as_bytes(),
    ))))
}

/// One builtin function per (name, hash) pair, each calling `$via` with its OPA name.
macro_rules! builtins_by_hash {
    ($via:ident, $prefix:literal: $($f:ident => $name:literal, $hash:expr),* $(,)?) => {
        $(pub fn $f(args: &[Value]) -> Result<Value> {
            $via(concat!($prefix, $name), $hash, args)
        })*
    };
}

builtins_by_hash! {
    hmac_builtin, "crypto.hmac.":
    hmac_md5 => "md5", Hash::Md5,
    hmac_sha1 => "sha1", Hash::Sha1,
    hmac_sha256 => "sha256", Hash::Sha256,
    hmac_sha512 => "sha512", Hash::Sha512,
}

/// Compares two MACs in constant time, as Go's `hmac.Equal`.
pub fn hmac_equal(args: &[Value]) -> Result<Value> {
    let a = string("crypto.hmac.equal", 1, &args[0])?.as_bytes();
    let b = string("crypto.hmac.equal", 2, &args[1])?.as_bytes();
    Ok(Value::from(constant_time_eq(a, b)))
}

/// Equal bytes, compared without stopping at the first difference (Go's `hmac.Equal`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// OPA's base64url decoding of a JWT section: unpadded, padding tolerated.
fn base64url(section: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(section.trim_end_matches('='))
        .map_err(|_| anyhow!("illegal base64url string: {section}"))
}

/// A compact JWS split into its three sections.
struct Token<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split<'a>(name: &str, jwt: &'a str) -> Result<Token<'a>> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        bail!(
            "{name}: encoded JWT must have 3 sections, found {}",
            parts.len()
        );
    };
    Ok(Token {
        header,
        payload,
        signature,
    })
}

/// A JWT section that must be a JSON object.
fn json_object(name: &str, what: &str, bytes: &[u8]) -> Result<Value> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| anyhow!("{name}: JWT {what} is not UTF-8"))?;
    let value =
        Value::from_json_str(text).map_err(|e| anyhow!("{name}: JWT {what} is not JSON: {e}"))?;
    match value {
        Value::Object(_) => Ok(value),
        _ => bail!("{name}: JWT {what} is not a JSON object"),
    }
}

fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    match object {
        Value::Object(map) => map.get(&Value::from(key)),
        _ => None,
    }
}

/// The token's header and payload, following nested tokens (`cty: JWT`) to the innermost.
fn decode_sections(name: &str, jwt: &str) -> Result<(Value, Value, String)> {
    let mut jwt = jwt.to_string();
    loop {
        let token = split(name, &jwt)?;
        let header = token_header(name, &token)?;
        let payload_bytes = base64url(token.payload)
            .map_err(|e| anyhow!("{name}: JWT payload had invalid encoding: {e}"))?;
        let signature = hex(&base64url(token.signature)
            .map_err(|e| anyhow!("{name}: JWT signature had invalid encoding: {e}"))?);
        if let Some(inner) = nested_token(name, &header, &payload_bytes)? {
            jwt = inner;
            continue;
        }
        let payload = json_object(name, "payload", &payload_bytes)?;
        return Ok((header, payload, signature));
    }
}

/// A token's header, which must be a base64url JSON object.
fn token_header(name: &str, token: &Token<'_>) -> Result<Value> {
    let bytes = base64url(token.header)
        .map_err(|e| anyhow!("{name}: JWT header had invalid encoding: {e}"))?;
    json_object(name, "header", &bytes)
}

/// The header's `kid`, if it names one.
fn header_kid(header: &Value) -> Option<String> {
    match field(header, "kid") {
        Some(Value::String(kid)) => Some(kid.to_string()),
        _ => None,
    }
}

/// The inner token when the header says the payload is one (`cty: JWT`); an error for any
/// other content type.
fn nested_token(name: &str, header: &Value, payload: &[u8]) -> Result<Option<String>> {
    let Some(Value::String(cty)) = field(header, "cty") else {
        return Ok(None);
    };
    if !cty.eq_ignore_ascii_case("JWT") {
        bail!("{name}: unsupported JWT content type {cty:?}");
    }
    String::from_utf8(payload.to_vec())
        .map(Some)
        .map_err(|_| anyhow!("{name}: the nested JWT is not UTF-8"))
}

/// `io.jwt.decode(jwt)`: `[header, payload, signature as hex]`, nothing verified.
pub fn decode(args: &[Value]) -> Result<Value> {
    let name = "io.jwt.decode";
    let jwt = string(name, 1, &args[0])?;
    let (header, payload, signature) = decode_sections(name, jwt)?;
    Ok(Value::from(vec![header, payload, Value::from(signature)]))
}

fn hmac_hash(alg: &str) -> Option<Hash> {
    match alg {
        "HS256" => Some(Hash::Sha256),
        "HS384" => Some(Hash::Sha384),
        "HS512" => Some(Hash::Sha512),
        _ => None,
    }
}

/// Whether the token's signature is the HMAC of its signing input under `secret`.
fn hmac_verifies(token: &Token<'_>, hash: Hash, secret: &[u8]) -> Result<bool> {
    let signature = base64url(token.signature)?;
    let input = format!("{}.{}", token.header, token.payload);
    let expected = hmac_of(hash, secret, input.as_bytes());
    Ok(constant_time_eq(&signature, &expected))
}

fn verify_hs(name: &str, hash: Hash, args: &[Value]) -> Result<Value> {
    let token = split(name, string(name, 1, &args[0])?)?;
    let secret = string(name, 2, &args[1])?;
    let verified =
        hmac_verifies(&token, hash, secret.as_bytes()).map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(Value::from(verified))
}

builtins_by_hash! {
    verify_hs, "io.jwt.":
    verify_hs256 => "verify_hs256", Hash::Sha256,
    verify_hs384 => "verify_hs384", Hash::Sha384,
    verify_hs512 => "verify_hs512", Hash::Sha512,
}

/// The key `io.jwt.decode_verify` verifies with.
enum TokenKey {
    Secret(String),
    Keys(Vec<super::jwt_keys::Key>),
}

/// `io.jwt.verify_<alg>(jwt, certificate)` for a public-key algorithm: whether the signature
/// verifies under a key of `certificate` (PEM or JWK(S)), checked with `alg` whatever the
/// header says, as OPA does.
fn verify_public(name: &str, alg: &str, args: &[Value]) -> Result<Value> {
    let token = split(name, string(name, 1, &args[0])?)?;
    let keys = super::jwt_keys::parse_keys(string(name, 2, &args[1])?)
        .map_err(|e| anyhow!("{name}: {e}"))?;
    let signature = base64url(token.signature).map_err(|e| anyhow!("{name}: {e}"))?;
    let header = token_header(name, &token)?;
    let kid = header_kid(&header);
    let input = format!("{}.{}", token.header, token.payload);
    Ok(Value::from(super::jwt_keys::verify_with(
        &keys,
        alg,
        kid.as_deref(),
        input.as_bytes(),
        &signature,
    )))
}

macro_rules! verify_public_builtins {
    ($($f:ident => $alg:literal),* $(,)?) => {
        $(pub fn $f(args: &[Value]) -> Result<Value> {
            verify_public(concat!("io.jwt.", stringify!($f)), $alg, args)
        })*
    };
}

verify_public_builtins! {
    verify_rs256 => "RS256", verify_rs384 => "RS384", verify_rs512 => "RS512",
    verify_ps256 => "PS256", verify_ps384 => "PS384", verify_ps512 => "PS512",
    verify_es256 => "ES256", verify_es384 => "ES384", verify_es512 => "ES512",
    verify_eddsa => "EdDSA",
}

/// Whether the compact JWS `token` verifies with `alg` under `key` (a PEM or JWK(S) public key
/// for RS*, PS*, ES* and EdDSA; the secret itself for HS*): the check `io.jwt.verify_<alg>`
/// makes, for callers outside Rego (OPA bundle signatures). The algorithm is the caller's, never
/// the token header's.
pub fn verify_jws(alg: &str, token: &str, key: &str) -> std::result::Result<bool, String> {
    let name = "bundle signature";
    let parts = split(name, token).map_err(|e| e.to_string())?;
    if let Some(hash) = hmac_hash(alg) {
        return hmac_verifies(&parts, hash, key.as_bytes()).map_err(|e| e.to_string());
    }
    let args = [Value::from(token), Value::from(key)];
    match verify_public(name, alg, &args).map_err(|e| e.to_string())? {
        Value::Bool(ok) => Ok(ok),
        _ => Ok(false),
    }
}

/// What `io.jwt.decode_verify` is told to check.
struct Constraints {
    key: Option<TokenKey>,
    alg: Option<String>,
    iss: Option<String>,
    aud: Option<String>,
    /// Seconds since the epoch (OPA's nanoseconds divided by 1e9).
    time: f64,
}

fn constraints(name: &str, value: &Value) -> Result<Constraints> {
    let Value::Object(map) = value else {
        bail!(
            "{name}: operand 2 must be object but got {}",
            super::type_name(value)
        );
    };
    let mut c = Constraints {
        key: None,
        alg: None,
        iss: None,
        aud: None,
        time: f64::NAN,
    };
    let text = |key: &str, v: &Value| match v {
        Value::String(s) => Ok(s.to_string()),
        _ => Err(anyhow!("{name}: the `{key}` constraint must be a string")),
    };
    for (key, v) in map.iter() {
        let Value::String(key) = key else {
            bail!("{name}: token validation constraints are named by strings");
        };
        match key.as_ref() {
            "secret" | "cert" if c.key.is_some() => bail!("{name}: duplicate key constraints"),
            // An empty secret is no key at all, as in OPA.
            "secret" => {
                let secret = text("secret", v)?;
                c.key = (!secret.is_empty()).then_some(TokenKey::Secret(secret));
            }
            "cert" => {
                let keys = super::jwt_keys::parse_keys(&text("cert", v)?)
                    .map_err(|e| anyhow!("{name}: {e}"))?;
                c.key = Some(TokenKey::Keys(keys));
            }
            "alg" => c.alg = Some(text("alg", v)?),
            "iss" => c.iss = Some(text("iss", v)?),
            "aud" => c.aud = Some(text("aud", v)?),
            "time" => {
                if !matches!(v, Value::Number(_)) {
                    bail!("{name}: the `time` constraint must be a number");
                }
                c.time = float(v) / 1e9;
            }
            other => bail!("{name}: unknown token validation constraint: {other}"),
        }
    }
    if c.key.is_none() {
        bail!("{name}: no key constraint");
    }
    if c.time.is_nan() {
        c.time = now_seconds(name)?;
    }
    Ok(c)
}

#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
fn now_seconds(_name: &str) -> Result<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("the clock reads before 1970"))?;
    Ok(now.as_nanos() as f64 / 1e9)
}

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
fn now_seconds(name: &str) -> Result<f64> {
    bail!("{name}: this build has no clock; give the `time` constraint (nanoseconds)")
}

/// A number as Go's float64 holds it, integers beyond 2^53 rounded as Go rounds them (OPA
/// compares these times as floats).
fn float(v: &Value) -> f64 {
    let Value::Number(n) = v else {
        return f64::NAN;
    };
    n.as_f64()
        .or_else(|| n.as_i64().map(|i| i as f64))
        .or_else(|| n.as_u64().map(|u| u as f64))
        .unwrap_or_else(|| {
            serde_json::to_string(v)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(f64::NAN)
        })
}

/// A registered time claim as seconds; OPA refuses one that is not a number.
fn time_claim(name: &str, payload: &Value, claim: &str) -> Result<Option<f64>> {
    match field(payload, claim) {
        None => Ok(None),
        Some(n @ Value::Number(_)) => Ok(Some(float(n))),
        Some(_) => bail!("{name}: the `{claim}` claim must be a number"),
    }
}

/// `io.jwt.decode_verify(jwt, constraints)`: `[true, header, payload]` when the signature, the
/// algorithm, the issuer, the audience and the validity period all check out, else
/// `[false, {}, {}]` (OPA's order of checks, RFC 7519 §7.2).
pub fn decode_verify(args: &[Value]) -> Result<Value> {
    let name = "io.jwt.decode_verify";
    let jwt = string(name, 1, &args[0])?;
    let c = constraints(name, &args[1])?;
    let unverified = || {
        Value::from(vec![
            Value::from(false),
            Value::new_object(),
            Value::new_object(),
        ])
    };
    let mut jwt = jwt.to_string();
    let (header, payload) = loop {
        let token = split(name, &jwt)?;
        let header = token_header(name, &token)?;
        let alg = match field(&header, "alg") {
            Some(Value::String(alg)) => alg.to_string(),
            _ => return Ok(unverified()),
        };
        if c.alg.as_ref().is_some_and(|want| *want != alg) {
            return Ok(unverified());
        }
        let verified = match (
            c.key.as_ref().expect("checked: a key constraint"),
            hmac_hash(&alg),
        ) {
            (TokenKey::Secret(secret), Some(hash)) => {
                hmac_verifies(&token, hash, secret.as_bytes())
                    .map_err(|e| anyhow!("{name}: {e}"))?
            }
            // An asymmetric algorithm, `none` or one OPA does not know: a shared secret
            // verifies none of them.
            (TokenKey::Secret(_), None) => false,
            (TokenKey::Keys(keys), _) => {
                let signature = base64url(token.signature).map_err(|e| anyhow!("{name}: {e}"))?;
                let kid = header_kid(&header);
                let input = format!("{}.{}", token.header, token.payload);
                super::jwt_keys::verify_with(
                    keys,
                    &alg,
                    kid.as_deref(),
                    input.as_bytes(),
                    &signature,
                )
            }
        };
        if !verified {
            return Ok(unverified());
        }
        let payload_bytes = base64url(token.payload)
            .map_err(|e| anyhow!("{name}: JWT payload had invalid encoding: {e}"))?;
        if let Some(inner) = nested_token(name, &header, &payload_bytes)? {
            jwt = inner;
            continue;
        }
        break (header, json_object(name, "payload", &payload_bytes)?);
    };
    if let Some(iss) = &c.iss
        && field(&payload, "iss") != Some(&Value::from(iss.as_str()))
    {
        return Ok(unverified());
    }
    let audience_ok = match (field(&payload, "aud"), &c.aud) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(Value::String(aud)), Some(want)) => aud.as_ref() == want.as_str(),
        (Some(Value::Array(auds)), Some(want)) => auds.contains(&Value::from(want.as_str())),
        (Some(_), Some(_)) => false,
    };
    if !audience_ok {
        return Ok(unverified());
    }
    if let Some(exp) = time_claim(name, &payload, "exp")?
        && c.time >= exp
    {
        return Ok(unverified());
    }
    if let Some(nbf) = time_claim(name, &payload, "nbf")?
        && c.time < nbf
    {
        return Ok(unverified());
    }
    Ok(Value::from(vec![Value::from(true), header, payload]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    /// An HS256 token over {"sub":"alice","iss":"me","aud":"you","exp":4102444800,"nbf":1000}
    /// with the secret `secret`, made by Python's hmac; the answers below are OPA v1.20's.
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1lIiwiYXVkIjoieW91IiwiZXhwIjo0MTAyNDQ0ODAwLCJuYmYiOjEwMDB9.YiZx_kAlr8hyfaytPid8_sJU_7E6cVE0uxQ5HENQpcw";

    fn verify(constraints: &str) -> Result<String> {
        let c = Value::from_json_str(constraints).unwrap();
        decode_verify(&[s(TOKEN), c]).map(|v| serde_json::to_string(&v).unwrap())
    }

    #[test]
    fn hashes_and_macs_are_opas() {
        assert_eq!(
            sha256(&[s("abc")]).unwrap(),
            s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            sha1(&[s("abc")]).unwrap(),
            s("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            md5(&[s("abc")]).unwrap(),
            s("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            hmac_sha256(&[s("abc"), s("key")]).unwrap(),
            s("9c196e32dc0175f86f4b1cb89289d6619de6bee699e4c378e68309ed97a1a6ab")
        );
        assert_eq!(hmac_equal(&[s("a"), s("a")]).unwrap(), Value::from(true));
        assert_eq!(hmac_equal(&[s("a"), s("b")]).unwrap(), Value::from(false));
    }

    #[test]
    fn tokens_decode_and_verify_as_opa_decides() {
        let decoded = serde_json::to_string(&decode(&[s(TOKEN)]).unwrap()).unwrap();
        assert!(decoded.contains(r#""sub":"alice""#), "{decoded}");
        assert!(
            decoded.ends_with(
                r#""622671fe4025afc8727dacad3e277cfec254ffb13a715134bb14391c4350a5cc"]"#
            ),
            "{decoded}"
        );
        assert!(
            decode(&[s("a.b")])
                .unwrap_err()
                .to_string()
                .contains("3 sections")
        );
        assert!(decode(&[s("x.y.z")]).is_err());
        assert_eq!(
            verify_hs256(&[s(TOKEN), s("secret")]).unwrap(),
            Value::from(true)
        );
        assert_eq!(
            verify_hs256(&[s(TOKEN), s("wrong")]).unwrap(),
            Value::from(false)
        );
        assert!(verify_hs256(&[s("a.b.c"), s("x")]).is_err());

        let unverified = r#"[false,{},{}]"#;
        // The token names an audience: without an `aud` constraint it is not valid.
        assert_eq!(verify(r#"{"secret":"secret"}"#).unwrap(), unverified);
        assert_eq!(
            verify(r#"{"secret":"secret","iss":"me"}"#).unwrap(),
            unverified
        );
        assert!(
            verify(r#"{"secret":"secret","aud":"you"}"#)
                .unwrap()
                .starts_with("[true,")
        );
        assert_eq!(
            verify(r#"{"secret":"wrong","aud":"you"}"#).unwrap(),
            unverified
        );
        assert_eq!(
            verify(r#"{"secret":"secret","aud":"you","iss":"other"}"#).unwrap(),
            unverified
        );
        assert_eq!(
            verify(r#"{"secret":"secret","aud":"you","alg":"RS256"}"#).unwrap(),
            unverified
        );
        assert_eq!(
            verify(r#"{"secret":"secret","aud":"you","time":4102444801000000000}"#).unwrap(),
            unverified
        );
        assert_eq!(
            verify(r#"{"secret":"secret","aud":"you","time":999000000000}"#).unwrap(),
            unverified
        );
        assert!(
            verify("{}")
                .unwrap_err()
                .to_string()
                .contains("no key constraint")
        );
        assert!(
            verify(r#"{"secret":"secret","foo":1}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown token validation constraint: foo")
        );
    }
}
