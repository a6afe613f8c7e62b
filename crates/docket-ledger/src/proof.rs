//! Checking, offline, that one entry is in a log: an entry's hash (and, if given, its bytes), an
//! inclusion proof and the signed checkpoint it leads to, against the log's key. Reads the two
//! shapes docket hands out (docs/api.md, "Checking a proof offline"): `docket log prove`'s
//! (hashes in hex) and the server's decision lookup, `GET /v1/log/decisions/{id}` (hashes in
//! base64, the entry with its encoding). Either encoding is accepted wherever a hash is.

use crate::hash::Hash;
use crate::merkle::verify_inclusion;
use crate::{Entry, PublicKey, SignedCheckpoint};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

/// What a proof document claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofClaim {
    pub seq: u64,
    pub entry_hash: Hash,
    /// The entry's encoding (log-format §3.3), when the document carries it.
    pub encoded: Option<Vec<u8>>,
    pub tree_size: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note the proof leads to.
    pub checkpoint: String,
}

/// What a proof showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    pub seq: u64,
    pub entry_hash: Hash,
    pub tree_size: u64,
    pub origin: String,
    /// The key (by name) whose signature on the checkpoint was checked.
    pub signed_by: String,
    /// Whether the entry's own bytes were checked against its hash.
    pub entry_checked: bool,
}

impl ProofClaim {
    /// Reads `docket log prove`'s output or a decision lookup's answer.
    pub fn from_json(document: &Value) -> Result<ProofClaim, String> {
        let checkpoint = document["checkpoint"]
            .as_str()
            .ok_or("the document has no \"checkpoint\" (the signed note the proof leads to)")?
            .to_string();
        if let Some(proof) = document.get("inclusion_proof") {
            // GET /v1/log/decisions/{id}: {"entry": {...}, "inclusion_proof": {...}, "checkpoint"}.
            let entry = &document["entry"];
            let encoded = match entry["encoded"].as_str() {
                Some(text) => Some(
                    B64.decode(text)
                        .map_err(|_| "entry.encoded is not base64".to_string())?,
                ),
                None => None,
            };
            return Ok(ProofClaim {
                seq: number(&proof["leaf_index"], "inclusion_proof.leaf_index")?,
                entry_hash: hash(&entry["hash"], "entry.hash")?,
                encoded,
                tree_size: number(&proof["tree_size"], "inclusion_proof.tree_size")?,
                hashes: hashes(&proof["hashes"], "inclusion_proof.hashes")?,
                checkpoint,
            });
        }
        // `docket log prove`: {"seq", "entry_hash", "tree_size", "root", "proof", "checkpoint"}.
        Ok(ProofClaim {
            seq: number(&document["seq"], "seq")?,
            entry_hash: hash(&document["entry_hash"], "entry_hash")?,
            encoded: None,
            tree_size: number(&document["tree_size"], "tree_size")?,
            hashes: hashes(&document["proof"], "proof")?,
            checkpoint,
        })
    }

    /// Checks the claim: the checkpoint carries a valid signature by one of `keys`, covers the
    /// proof's tree size, and the proof leads from the entry's hash to its root; if the entry's
    /// bytes are given, they decode to that entry at that seq with that hash.
    pub fn check(&self, keys: &[PublicKey]) -> Result<Proven, String> {
        let signed = SignedCheckpoint::parse(&self.checkpoint)
            .map_err(|e| format!("the checkpoint is not a signed note: {e}"))?;
        let key = keys
            .iter()
            .find(|k| signed.is_signed_by(k))
            .ok_or_else(|| {
                let names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
                format!(
                    "the checkpoint carries no valid signature by the key given ({}): it proves nothing about that log",
                    names.join(", ")
                )
            })?;
        if signed.checkpoint.size != self.tree_size {
            return Err(format!(
                "the proof is for a tree of {} entries, the checkpoint for {}",
                self.tree_size, signed.checkpoint.size
            ));
        }
        verify_inclusion(
            &self.entry_hash,
            self.seq,
            self.tree_size,
            &self.hashes,
            &signed.checkpoint.root,
        )
        .map_err(|e| format!("the inclusion proof does not lead to the checkpoint's root: {e}"))?;
        if let Some(bytes) = &self.encoded {
            let entry =
                Entry::decode(bytes).map_err(|e| format!("the entry does not decode: {e}"))?;
            if entry.seq != self.seq {
                return Err(format!(
                    "the entry given is entry {}, the proof is for entry {}",
                    entry.seq, self.seq
                ));
            }
            if entry.hash != self.entry_hash || entry.compute_hash() != entry.hash {
                return Err(
                    "the entry's bytes do not hash to the hash the proof is for: the entry was altered"
                        .into(),
                );
            }
        }
        Ok(Proven {
            seq: self.seq,
            entry_hash: self.entry_hash,
            tree_size: self.tree_size,
            origin: signed.checkpoint.origin.clone(),
            signed_by: key.name().to_string(),
            entry_checked: self.encoded.is_some(),
        })
    }
}

fn number(value: &Value, field: &str) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{field} is missing or not a whole number"))
}

/// A hash in lowercase hex (64 digits) or base64 (44 characters).
fn hash(value: &Value, field: &str) -> Result<Hash, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("{field} is missing or not a string"))?;
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        B64.decode(text).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Hash)
        .ok_or_else(|| format!("{field} is not a SHA-256 hash in hex or base64: {text:?}"))
}

fn hashes(value: &Value, field: &str) -> Result<Vec<Hash>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{field} is missing or not a list"))?
        .iter()
        .enumerate()
        .map(|(i, h)| hash(h, &format!("{field}[{i}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{inclusion_proof, root};
    use crate::{Checkpoint, SecretKey};

    fn setup() -> (SecretKey, Vec<Hash>, String) {
        let key = SecretKey::from_seed("proof.test/log", &[7; 32]).unwrap();
        let leaves: Vec<Hash> = (0..5u8).map(|i| Hash([i; 32])).collect();
        let checkpoint = Checkpoint {
            origin: "proof.test/log".into(),
            size: 5,
            root: root(&leaves),
        };
        let note = checkpoint.sign(&key);
        (key, leaves, note)
    }

    #[test]
    fn a_proof_in_either_encoding_checks_and_a_changed_one_does_not() {
        let (key, leaves, note) = setup();
        let proof = inclusion_proof(&leaves, 3).unwrap();
        let hex_doc = serde_json::json!({
            "seq": 3, "entry_hash": leaves[3].to_hex(), "tree_size": 5,
            "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            "checkpoint": note,
        });
        let b64_doc = serde_json::json!({
            "entry": {"hash": B64.encode(leaves[3].0)},
            "inclusion_proof": {"leaf_index": 3, "tree_size": 5,
                "hashes": proof.iter().map(|h| B64.encode(h.0)).collect::<Vec<_>>()},
            "checkpoint": note,
        });
        for doc in [&hex_doc, &b64_doc] {
            let proven = ProofClaim::from_json(doc)
                .unwrap()
                .check(&[key.public().clone()])
                .unwrap();
            assert_eq!((proven.seq, proven.tree_size), (3, 5));
            assert_eq!(proven.origin, "proof.test/log");
        }
        // Another leaf, another position, a changed proof hash, another size, another key:
        // each refused, saying why.
        let refused = |change: &dyn Fn(&mut Value)| -> String {
            let mut wrong = hex_doc.clone();
            change(&mut wrong);
            ProofClaim::from_json(&wrong)
                .unwrap()
                .check(&[key.public().clone()])
                .unwrap_err()
        };
        refused(&|d| d["entry_hash"] = leaves[2].to_hex().into());
        refused(&|d| d["seq"] = 2.into());
        refused(&|d| d["proof"][0] = Hash([9; 32]).to_hex().into());
        let e = refused(&|d| d["tree_size"] = 4.into());
        assert!(e.contains("a tree of 4 entries"), "{e}");
        let other = SecretKey::from_seed("proof.test/log", &[8; 32]).unwrap();
        let e = ProofClaim::from_json(&hex_doc)
            .unwrap()
            .check(&[other.public().clone()])
            .unwrap_err();
        assert!(e.contains("no valid signature"), "{e}");
        // Malformed documents say which field.
        let e =
            ProofClaim::from_json(&serde_json::json!({"checkpoint": note, "seq": 1})).unwrap_err();
        assert!(e.contains("entry_hash"), "{e}");
    }
}
