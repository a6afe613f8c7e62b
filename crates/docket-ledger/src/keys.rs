//! Ed25519 keys in the C2SP signed-note encodings.
//!
//! A public key travels as a note *verifier key* (`<name>+<key id hex>+<base64(0x01 ‖ key)>`) and a
//! secret key as a note *signer key* (`PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 ‖ seed)>`), the
//! formats of Go's `golang.org/x/mod/sumdb/note`, so docket's keys work with existing tlog tooling.

use crate::hash::sha256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::fmt;

/// The C2SP signature type byte of Ed25519.
pub const ALG_ED25519: u8 = 0x01;

/// A C2SP key id: the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(pub u32);

impl KeyId {
    pub fn compute(name: &str, public_key: &[u8; 32]) -> KeyId {
        KeyId::compute_for(ALG_ED25519, name, public_key)
    }

    /// The key id of a key of signature type `alg` (0x01 a note signature, 0x04 a
    /// `cosignature/v1`): C2SP ties the type into the id, so one Ed25519 key has one id per use.
    pub fn compute_for(alg: u8, name: &str, public_key: &[u8; 32]) -> KeyId {
        let digest = sha256(&[name.as_bytes(), b"\n", &[alg], public_key]);
        KeyId(u32::from_be_bytes([
            digest.0[0],
            digest.0[1],
            digest.0[2],
            digest.0[3],
        ]))
    }

    pub fn to_hex(self) -> String {
        format!("{:08x}", self.0)
    }

    pub fn from_hex(text: &str) -> Option<KeyId> {
        if text.len() != 8
            || text
                .bytes()
                .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(KeyId)
    }

    /// A key id as a signed-note key states it: 8 hex digits in either case, as Go's
    /// `golang.org/x/mod/sumdb/note` reads them (docket writes lower case).
    pub(crate) fn from_note_hex(text: &str) -> Option<KeyId> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    BadName(String),
    BadEncoding(String),
    IdMismatch { stated: String, computed: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadName(name) => write!(
                f,
                "invalid key name {name:?}: a key name must be non-empty UTF-8 without spaces or '+'"
            ),
            KeyError::BadEncoding(why) => write!(f, "malformed key: {why}"),
            KeyError::IdMismatch { stated, computed } => write!(
                f,
                "key id {stated} does not match the key (computed {computed}): the key text was altered"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// C2SP key names: non-empty, no Unicode whitespace, no '+'.
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.chars().any(char::is_whitespace) || name.contains('+') {
        return Err(KeyError::BadName(name.to_string()));
    }
    Ok(())
}

/// A verifier key's text: `<name>+<key id hex>+<base64(alg ‖ 32-byte Ed25519 key)>`.
pub(crate) fn encode_vkey(name: &str, id: KeyId, alg: u8, key: &VerifyingKey) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(alg);
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", id.to_hex(), BASE64.encode(raw))
}

/// Reads a verifier key's text into its name, stated id, type byte and Ed25519 key: 33 bytes
/// of base64, a valid point that is not of small order (no signature verifies under one with
/// the strict rules of log-format §9, so such a key is refused where it is read, not at the
/// first signature it fails). The caller checks the type byte and the id.
pub(crate) fn parse_vkey<'a>(
    text: &'a str,
    shape: &str,
) -> Result<(&'a str, &'a str, u8, VerifyingKey), KeyError> {
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::BadEncoding(shape.into()));
    };
    check_key_name(name)?;
    let raw = BASE64
        .decode(b64)
        .map_err(|e| KeyError::BadEncoding(format!("key is not base64: {e}")))?;
    if raw.len() != 33 {
        return Err(KeyError::BadEncoding(
            "not an Ed25519 key (expected a type byte followed by 32 bytes)".into(),
        ));
    }
    let bytes: [u8; 32] = raw[1..].try_into().expect("length checked");
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| KeyError::BadEncoding("not a valid Ed25519 point".into()))?;
    if key.is_weak() {
        return Err(KeyError::BadEncoding(
            "a small-order Ed25519 point, under which no signature can verify".into(),
        ));
    }
    Ok((name, id, raw[0], key))
}

/// A named Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    id: KeyId,
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl PublicKey {
    pub fn new(name: &str, key: VerifyingKey) -> Result<PublicKey, KeyError> {
        check_key_name(name)?;
        let id = KeyId::compute(name, key.as_bytes());
        Ok(PublicKey {
            name: name.to_string(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The note verifier key text: `<name>+<id>+<base64(0x01 ‖ key)>`.
    pub fn to_vkey(&self) -> String {
        encode_vkey(&self.name, self.id, ALG_ED25519, &self.key)
    }

    pub fn from_vkey(text: &str) -> Result<PublicKey, KeyError> {
        let (name, id, alg, key) = parse_vkey(
            text,
            "expected <name>+<key id>+<base64 key> (a docket .pub file)",
        )?;
        if alg != ALG_ED25519 {
            return Err(KeyError::BadEncoding(
                "not an Ed25519 key (expected 0x01 followed by 32 bytes)".into(),
            ));
        }
        let public = PublicKey::new(name, key)?;
        if KeyId::from_note_hex(id) != Some(public.id) {
            return Err(KeyError::IdMismatch {
                stated: id.to_string(),
                computed: public.id.to_hex(),
            });
        }
        Ok(public)
    }

    /// Verifies an Ed25519 signature with the strict rules (no small-order keys or
    /// non-canonical signatures), which every signature docket makes satisfies.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// A named Ed25519 signing key. Its secret never appears in `Debug`, `Display` or errors.
#[derive(Clone)]
pub struct SecretKey {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.public.to_vkey())
    }
}

impl SecretKey {
    /// A key from a 32-byte seed: the caller supplies the randomness, so this crate needs no RNG.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<SecretKey, KeyError> {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::new(name, key.verifying_key())?;
        Ok(SecretKey { key, public })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The 32-byte seed, for handing the key to the component's sealer (the only place it goes).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The note signer key text: `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>`.
    pub fn to_skey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.public.name,
            self.public.id.to_hex(),
            BASE64.encode(raw)
        )
    }

    pub fn from_skey(text: &str) -> Result<SecretKey, KeyError> {
        let Some(rest) = text.trim().strip_prefix("PRIVATE+KEY+") else {
            return Err(KeyError::BadEncoding(
                "expected PRIVATE+KEY+<name>+<key id>+<base64 seed> (a docket .key file)".into(),
            ));
        };
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::BadEncoding(
                "expected <name>+<key id>+<base64 seed>".into(),
            ));
        };
        let raw = BASE64
            .decode(b64)
            .map_err(|_| KeyError::BadEncoding("secret key is not base64".into()))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(KeyError::BadEncoding("not an Ed25519 secret key".into()));
        }
        let seed: [u8; 32] = raw[1..].try_into().expect("length checked");
        let secret = SecretKey::from_seed(name, &seed)?;
        if KeyId::from_note_hex(id) != Some(secret.public.id) {
            return Err(KeyError::IdMismatch {
                stated: id.to_string(),
                computed: secret.public.id.to_hex(),
            });
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_read_in_either_case_as_go_reads_them() {
        let secret = SecretKey::from_seed("docket.example", &[7; 32]).unwrap();
        let vkey = secret.public().to_vkey();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (id, b64) = rest.split_once('+').unwrap();
        let upper = format!("{name}+{}+{b64}", id.to_ascii_uppercase());
        assert_ne!(upper, vkey, "the id has letters to change case");
        assert_eq!(PublicKey::from_vkey(&upper).unwrap(), *secret.public());
        let skey = secret.to_skey();
        let upper_skey = skey.replace(id, &id.to_ascii_uppercase());
        assert_eq!(
            SecretKey::from_skey(&upper_skey).unwrap().public(),
            secret.public()
        );
        // Still exactly 8 digits naming this key.
        for bad in [
            format!("{name}+{}+{b64}", &id[1..]),
            format!("{name}+0{id}+{b64}"),
            format!("{name}+{:08x}+{b64}", secret.public().id().0 ^ 1),
        ] {
            assert!(PublicKey::from_vkey(&bad).is_err(), "{bad}");
        }
    }
}
