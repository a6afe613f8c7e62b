//! Witness cosignatures: C2SP `tlog-cosignature`, the Ed25519 `cosignature/v1` type.
//!
//! A witness that has checked a checkpoint against every earlier one it saw of the same log
//! signs this message with its own key:
//!
//! ```text
//! cosignature/v1\n
//! time <POSIX seconds>\n
//! <the checkpoint's note text: origin, size, root, any extension lines>
//! ```
//!
//! and the note signature line it returns is
//! `— <witness name> base64(key id ‖ u64 timestamp big-endian ‖ Ed25519 signature)`, where the
//! key id is `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]`. A cosignature therefore says two
//! things a log's own signature cannot: someone other than the operator saw this tree head, and
//! saw it no later than `time`.

use crate::checkpoint::{CheckpointError, NoteSignature, SignedCheckpoint};
use crate::keys::{KeyError, KeyId, PublicKey, SecretKey};
use ed25519_dalek::{Signature, VerifyingKey};
use std::fmt;

/// The C2SP signature type byte of an Ed25519 `cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The largest timestamp a cosignature may carry (C2SP: at most 2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// A witness's public identity: its name and Ed25519 key, as a `cosignature/v1` verifier key
/// (`<name>+<key id hex>+<base64(0x04 ‖ key)>`).
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    id: KeyId,
    key: VerifyingKey,
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl CosignerKey {
    /// The cosigner identity of a docket key: the same name and Ed25519 key, used for
    /// `cosignature/v1` (so its key id differs from the note-signing key id).
    pub fn of(public: &PublicKey) -> CosignerKey {
        CosignerKey {
            name: public.name().to_string(),
            id: KeyId::compute_for(ALG_COSIGNATURE_V1, public.name(), public.bytes()),
            key: *public.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The verifier key text: `<name>+<id>+<base64(0x04 ‖ key)>`.
    pub fn to_vkey(&self) -> String {
        crate::keys::encode_vkey(&self.name, self.id, ALG_COSIGNATURE_V1, &self.key)
    }

    /// Reads a `cosignature/v1` verifier key. A note-signing key (type 0x01) is refused with a
    /// sentence saying so: it names a log, not a witness.
    pub fn from_vkey(text: &str) -> Result<CosignerKey, KeyError> {
        let (name, id, alg, key) = crate::keys::parse_vkey(
            text,
            "expected a witness key <name>+<key id>+<base64 key> (docket witness prints it)",
        )?;
        if alg == crate::keys::ALG_ED25519 {
            return Err(KeyError::BadEncoding(
                "this is a log's signing key (type 0x01), not a witness's cosignature/v1 key \
                 (type 0x04): `docket witness` prints its key"
                    .into(),
            ));
        }
        if alg != ALG_COSIGNATURE_V1 {
            return Err(KeyError::BadEncoding(
                "not a cosignature/v1 key (expected 0x04 followed by 32 bytes)".into(),
            ));
        }
        let bytes = *key.as_bytes();
        let cosigner = CosignerKey {
            name: name.to_string(),
            id: KeyId::compute_for(ALG_COSIGNATURE_V1, name, &bytes),
            key,
        };
        if KeyId::from_note_hex(id) != Some(cosigner.id) {
            return Err(KeyError::IdMismatch {
                stated: id.to_string(),
                computed: cosigner.id.to_hex(),
            });
        }
        Ok(cosigner)
    }

    /// If `signature` is this witness's valid cosignature on the checkpoint note text `text`,
    /// its timestamp. Signatures of other keys, or of this key's name with another id, are not
    /// this witness's and answer `None`, as are malformed or out-of-range ones.
    pub fn verify(&self, text: &str, signature: &NoteSignature) -> Option<u64> {
        if signature.key_name != self.name || signature.key_id != self.id {
            return None;
        }
        let blob: &[u8; 72] = signature.signature.as_slice().try_into().ok()?;
        let timestamp = u64::from_be_bytes(blob[..8].try_into().expect("8 bytes"));
        if timestamp > MAX_TIMESTAMP {
            return None;
        }
        let sig: [u8; 64] = blob[8..].try_into().expect("64 bytes");
        self.key
            .verify_strict(
                cosigned_message(text, timestamp).as_bytes(),
                &Signature::from_bytes(&sig),
            )
            .ok()?;
        Some(timestamp)
    }
}

/// The exact bytes a `cosignature/v1` signs: the header line, the time line, the note text.
pub fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// Cosigns the checkpoint note text `text` at `timestamp` (POSIX seconds, at most
/// [`MAX_TIMESTAMP`]) with the witness key `key`.
pub fn cosign(key: &SecretKey, text: &str, timestamp: u64) -> NoteSignature {
    assert!(
        timestamp <= MAX_TIMESTAMP,
        "cosignature timestamp beyond 2^63 - 1"
    );
    let cosigner = CosignerKey::of(key.public());
    let mut blob = Vec::with_capacity(72);
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&key.sign(cosigned_message(text, timestamp).as_bytes()));
    NoteSignature {
        key_name: cosigner.name,
        key_id: cosigner.id,
        signature: blob,
    }
}

/// One witness's valid cosignature found on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned, in POSIX seconds.
    pub timestamp: u64,
}

impl SignedCheckpoint {
    /// The valid cosignatures of `witnesses` this note carries, at most one per witness (the
    /// earliest, if a witness signed twice). Unknown and invalid signature lines are ignored, as
    /// C2SP prescribes: they can add no trust, and a log cannot be blamed for a line it did not
    /// write.
    pub fn cosignatures(&self, witnesses: &[CosignerKey]) -> Vec<Cosigned> {
        witnesses
            .iter()
            .filter_map(|w| {
                self.signatures
                    .iter()
                    .filter_map(|s| w.verify(&self.text, s))
                    .min()
                    .map(|timestamp| Cosigned {
                        witness: w.name().to_string(),
                        timestamp,
                    })
            })
            .collect()
    }

    /// This note with `extra` signature lines appended (skipping any it already has).
    pub fn with_signatures(&self, extra: &[NoteSignature]) -> Result<String, CheckpointError> {
        let mut out = format!("{}\n", self.text);
        let mut all = self.signatures.clone();
        for s in extra {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        for s in &all {
            out.push_str(&s.line());
        }
        SignedCheckpoint::parse(&out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::hash::Hash;

    fn witness() -> SecretKey {
        SecretKey::from_seed("witness.example/w1", &[3; 32]).unwrap()
    }

    fn note() -> SignedCheckpoint {
        let log = SecretKey::from_seed("log.example", &[1; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: "log.example".into(),
            size: 5,
            root: Hash([9; 32]),
        };
        SignedCheckpoint::parse(&checkpoint.sign(&log)).unwrap()
    }

    #[test]
    fn a_cosignature_verifies_under_its_witness_key_only() {
        let note = note();
        let w = witness();
        let sig = cosign(&w, &note.text, 1_700_000_000);
        let key = CosignerKey::of(w.public());
        assert_eq!(key.verify(&note.text, &sig), Some(1_700_000_000));
        assert_eq!(CosignerKey::from_vkey(&key.to_vkey()).unwrap(), key);
        // Another checkpoint, another time, another witness: not valid.
        assert_eq!(key.verify(&note.text.replace('5', "6"), &sig), None);
        let mut later = sig.clone();
        later.signature[7] ^= 1;
        assert_eq!(key.verify(&note.text, &later), None);
        let other = CosignerKey::of(
            SecretKey::from_seed("witness.example/w1", &[4; 32])
                .unwrap()
                .public(),
        );
        assert_eq!(other.verify(&note.text, &sig), None);
        // The log-signing id of the same key is not the cosigner id.
        assert_ne!(key.id(), w.public().id());
        assert!(CosignerKey::from_vkey(&w.public().to_vkey()).is_err());
    }

    #[test]
    fn cosignatures_ride_on_the_note_and_unknown_lines_are_ignored() {
        let note = note();
        let w = witness();
        let stranger = SecretKey::from_seed("stranger", &[5; 32]).unwrap();
        let text = note
            .with_signatures(&[
                cosign(&w, &note.text, 10),
                cosign(&stranger, &note.text, 11),
            ])
            .unwrap();
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(parsed.signatures.len(), 3);
        assert_eq!(
            parsed.cosignatures(&[CosignerKey::of(w.public())]),
            vec![Cosigned {
                witness: "witness.example/w1".into(),
                timestamp: 10
            }]
        );
    }
}
