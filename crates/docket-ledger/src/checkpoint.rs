//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n      ← checkpoint body (the note text, signed)
//! \n
//! — <key name> <base64(key id ‖ Ed25519 signature)>\n
//! ```

use crate::hash::Hash;
use crate::keys::{KeyId, PublicKey, SecretKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt;

/// The prefix of a signed-note signature line: an em dash (U+2014) and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// A tree head: the log's origin, its size and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub key_name: String,
    pub key_id: KeyId,
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line as a note carries it: `— <name> <base64(key id ‖ signature)>\n`.
    pub fn line(&self) -> String {
        let mut blob = Vec::with_capacity(4 + self.signature.len());
        blob.extend_from_slice(&self.key_id.0.to_be_bytes());
        blob.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.key_name,
            BASE64.encode(blob)
        )
    }
}

/// A parsed signed checkpoint: the checkpoint, its exact signed text and its signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointError(pub String);

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckpointError {}

fn bad(why: impl Into<String>) -> CheckpointError {
    CheckpointError(why.into())
}

impl Checkpoint {
    /// The note text: exactly the bytes a checkpoint signature signs.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0)
        )
    }

    /// Signs the checkpoint; returns the complete note (text, blank line, signature line).
    pub fn sign(&self, key: &SecretKey) -> String {
        let text = self.body();
        let signature = key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key.public().id().0.to_be_bytes());
        blob.extend_from_slice(&signature);
        format!(
            "{text}\n{SIGNATURE_LINE_PREFIX}{} {}\n",
            key.public().name(),
            BASE64.encode(blob)
        )
    }

    /// Parses a checkpoint body. Extension lines are allowed by C2SP; docket writes none and
    /// ignores any it finds (they are still covered by the signature).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(bad("checkpoint text must end with a newline"));
        };
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("checkpoint has no origin line"))?;
        let size_text = lines
            .next()
            .ok_or_else(|| bad("checkpoint has no tree size line"))?;
        let canonical = size_text == "0" || (!size_text.starts_with('0') && !size_text.is_empty());
        let size = size_text
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && size_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad(format!("tree size {size_text:?} is not a decimal number")))?;
        let root_text = lines
            .next()
            .ok_or_else(|| bad("checkpoint has no root hash line"))?;
        let root = BASE64
            .decode(root_text)
            .ok()
            .and_then(|raw| Hash::from_slice(&raw))
            .ok_or_else(|| bad(format!("root hash {root_text:?} is not 32 bytes of base64")))?;
        if lines.any(str::is_empty) {
            return Err(bad("checkpoint has an empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// Parses note signature lines (without the final newline), as a note ends or as a witness
/// answers `add-checkpoint` (C2SP tlog-witness).
pub fn parse_signature_lines(block: &str) -> Result<Vec<NoteSignature>, CheckpointError> {
    let mut signatures = Vec::new();
    for line in block.split('\n') {
        let rest = line.strip_prefix(SIGNATURE_LINE_PREFIX).ok_or_else(|| {
            bad(format!(
                "signature line {line:?} does not start with \"— \""
            ))
        })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| bad(format!("signature line {line:?} has no key name")))?;
        let blob = BASE64
            .decode(b64)
            .map_err(|_| bad(format!("signature of key {name:?} is not base64")))?;
        if blob.len() < 5 {
            return Err(bad(format!("signature of key {name:?} is too short")));
        }
        signatures.push(NoteSignature {
            key_name: name.to_string(),
            key_id: KeyId(u32::from_be_bytes(blob[..4].try_into().expect("4 bytes"))),
            signature: blob[4..].to_vec(),
        });
    }
    Ok(signatures)
}

impl SignedCheckpoint {
    /// Parses a signed note holding a checkpoint. Signatures are parsed, not checked.
    pub fn parse(note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        if note.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(bad(
                "a signed note must not contain control characters other than newline",
            ));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("signed note has no blank line before its signatures"))?;
        let text = &note[..split + 1];
        let sig_block = &note[split + 2..];
        let Some(sig_block) = sig_block.strip_suffix('\n') else {
            return Err(bad("signed note must end with a newline"));
        };
        let signatures = parse_signature_lines(sig_block)?;
        if signatures.is_empty() {
            return Err(bad("signed note has no signatures"));
        }
        let checkpoint = Checkpoint::parse_body(text)?;
        Ok(SignedCheckpoint {
            checkpoint,
            text: text.to_string(),
            signatures,
        })
    }

    /// Checks that this checkpoint, offered as a trusted tree head, is one of the log of
    /// `origin`: a checkpoint of another log says nothing about this one (and must not be
    /// reported as this log's truncation).
    pub fn check_origin(&self, origin: &str) -> Result<(), CheckpointError> {
        if self.checkpoint.origin == origin {
            return Ok(());
        }
        Err(CheckpointError(format!(
            "the trusted checkpoint belongs to another log: its origin is {:?}, this log's is {origin:?}",
            self.checkpoint.origin
        )))
    }

    /// Checks that this checkpoint, offered as a trusted tree head, carries a valid signature by
    /// one of `keys` (the keys the verified log used, and any the user trusts besides): an
    /// unsigned or foreign-signed head proves nothing.
    pub fn check_signed_by_any(&self, keys: &[PublicKey]) -> Result<(), CheckpointError> {
        if keys.iter().any(|key| self.is_signed_by(key)) {
            return Ok(());
        }
        let names: Vec<&str> = self
            .signatures
            .iter()
            .map(|s| s.key_name.as_str())
            .collect();
        let trusted: Vec<&str> = keys.iter().map(|k| k.name()).collect();
        Err(CheckpointError(format!(
            "the trusted checkpoint carries no valid signature by a key of this log or one given \
             with --checkpoint-key (signed by: {}; trusted: {}), so it proves nothing",
            names.join(", "),
            trusted.join(", ")
        )))
    }

    /// True if one of the signatures is a valid Ed25519 signature by `key` (matched by name
    /// and key id, as C2SP prescribes). Other signatures (e.g. witness cosignatures) are ignored.
    pub fn is_signed_by(&self, key: &PublicKey) -> bool {
        self.signatures.iter().any(|s| {
            s.key_id == key.id()
                && s.key_name == key.name()
                && <[u8; 64]>::try_from(s.signature.as_slice())
                    .is_ok_and(|sig| key.verify(self.text.as_bytes(), &sig))
        })
    }
}
