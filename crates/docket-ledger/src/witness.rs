//! The C2SP `tlog-witness` protocol without I/O: the `add-checkpoint` request, and the witness's
//! decision on it given the latest checkpoint it cosigned for that log.
//!
//! A witness keeps, per log origin, only the latest checkpoint it cosigned ([`LogState`]). A
//! request carries the size the client believes that is (`old`), a consistency proof from it, and
//! the new checkpoint. [`decide`] answers as the protocol prescribes, in its order: an unknown
//! origin (404), no valid signature by the log's key (403), an old size beyond the new one (400),
//! an old size that is not the witness's (409 with its size), a root that differs at the same size
//! (409), a proof that does not verify (422), else a cosignature (200) and the new state, which the
//! caller must persist, atomically with the check, before it answers.
//!
//! Signed checkpoints that contradict what the witness cosigned are kept as [`Misbehaviour`]: two
//! signed checkpoints of one size with different roots are proof that the log forked; a
//! consistency proof that does not connect, or a signed checkpoint smaller than one already
//! cosigned, are leads (a buggy or lagging client can cause them too).

use crate::checkpoint::{Checkpoint, NoteSignature, SignedCheckpoint};
use crate::cosignature::{Cosigned, CosignerKey, MAX_TIMESTAMP, cosign};
use crate::hash::Hash;
use crate::keys::{PublicKey, SecretKey};
use crate::merkle::verify_consistency;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many consistency proof lines (C2SP: a client MUST NOT send more than 63).
pub const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, exactly as sent.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body: `old <size>`, one base64 hash per line, a blank line, the note.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Reads a request body; the error is a sentence for a 400 answer.
    pub fn parse(body: &str) -> Result<AddCheckpoint, String> {
        let (head, note) = body.split_once("\n\n").ok_or(
            "the body must be `old <size>`, proof lines, a blank line, then the checkpoint",
        )?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or("the body must start with `old <size>`")?;
        let canonical = old == "0" || (!old.is_empty() && !old.starts_with('0'));
        let old_size = old
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && old.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("old size {old:?} is not a decimal number without leading zeros")
            })?;
        let proof = lines
            .map(|line| {
                BASE64
                    .decode(line)
                    .ok()
                    .and_then(|raw| Hash::from_slice(&raw))
                    .ok_or_else(|| format!("proof line {line:?} is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(format!(
                "{} consistency proof lines; the protocol allows at most {MAX_PROOF_LINES}",
                proof.len()
            ));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_string(),
        })
    }
}

/// A log the witness follows: its origin and the keys that may sign its checkpoints.
#[derive(Clone, Debug)]
pub struct WitnessedLog {
    pub origin: String,
    pub keys: Vec<PublicKey>,
}

/// What a witness remembers of a log: the latest checkpoint it cosigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogState {
    pub size: u64,
    /// The root hash, base64.
    pub root: String,
    /// The signed note as the log sent it.
    pub checkpoint: String,
    /// The time of the latest cosignature, POSIX seconds: the next is never earlier.
    pub timestamp: u64,
}

/// A signed checkpoint that contradicts what the witness cosigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Misbehaviour {
    /// `fork` (proof: two signed checkpoints, one size, two roots), `inconsistent` (a proof
    /// that does not connect the cosigned checkpoint to the new one) or `rollback` (a signed
    /// checkpoint smaller than one already cosigned).
    pub kind: String,
    pub origin: String,
    /// The checkpoint the witness had cosigned.
    pub witnessed: String,
    /// The signed checkpoint offered against it.
    pub offered: String,
    /// The request's old size and proof lines (base64), when they are part of the evidence.
    pub old_size: u64,
    pub proof: Vec<String>,
    /// What is wrong, in a sentence.
    pub detail: String,
}

/// The witness's answer to an `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: the cosignature lines to send, and the state to persist before sending them.
    Cosigned {
        state: LogState,
        signature: NoteSignature,
    },
    /// 409 `text/x.tlog.size`: the size of the latest cosigned checkpoint (0 if none).
    Conflict {
        size: u64,
        why: String,
        evidence: Option<Misbehaviour>,
    },
    /// 422: the consistency proof does not verify.
    BadProof {
        why: String,
        evidence: Option<Misbehaviour>,
    },
    /// 404: the origin is not a log this witness follows.
    UnknownLog(String),
    /// 403: no signature by a key of the log verifies.
    Unsigned(String),
    /// 400: the request is malformed.
    BadRequest(String),
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Cosigned { .. } => 200,
            Answer::Conflict { .. } => 409,
            Answer::BadProof { .. } => 422,
            Answer::UnknownLog(_) => 404,
            Answer::Unsigned(_) => 403,
            Answer::BadRequest(_) => 400,
        }
    }

    pub fn evidence(&self) -> Option<&Misbehaviour> {
        match self {
            Answer::Conflict { evidence, .. } | Answer::BadProof { evidence, .. } => {
                evidence.as_ref()
            }
            _ => None,
        }
    }
}

/// The origin a request's checkpoint names, to find the log's state before [`decide`].
pub fn request_origin(request: &AddCheckpoint) -> Option<String> {
    SignedCheckpoint::parse(&request.note)
        .ok()
        .map(|c| c.checkpoint.origin)
}

/// Decides an `add-checkpoint` request. `logs` is the witness's configuration, `state` its
/// latest cosigned checkpoint of the request's origin, `now` its clock (POSIX seconds) and `key`
/// its signing key.
pub fn decide(
    logs: &[WitnessedLog],
    state: Option<&LogState>,
    request: &AddCheckpoint,
    now: u64,
    key: &SecretKey,
) -> Answer {
    let note = match SignedCheckpoint::parse(&request.note) {
        Ok(note) => note,
        Err(e) => return Answer::BadRequest(format!("the checkpoint is not a signed note: {e}")),
    };
    let checkpoint = &note.checkpoint;
    let Some(log) = logs.iter().find(|l| l.origin == checkpoint.origin) else {
        return Answer::UnknownLog(format!(
            "this witness does not follow a log with origin {:?}",
            checkpoint.origin
        ));
    };
    if !log.keys.iter().any(|k| note.is_signed_by(k)) {
        return Answer::Unsigned(format!(
            "no signature on the checkpoint verifies under a key of {:?}",
            log.origin
        ));
    }
    if request.old_size > checkpoint.size {
        return Answer::BadRequest(format!(
            "old size {} is larger than the checkpoint's size {}",
            request.old_size, checkpoint.size
        ));
    }
    let (known_size, known_root) = match state {
        Some(s) => (s.size, s.root.clone()),
        None => (0, String::new()),
    };
    let root_b64 = BASE64.encode(checkpoint.root.0);
    let evidence = |kind: &str, detail: String, with_proof: bool| {
        state.map(|s| Misbehaviour {
            kind: kind.to_string(),
            origin: log.origin.clone(),
            witnessed: s.checkpoint.clone(),
            offered: request.note.clone(),
            old_size: if with_proof { request.old_size } else { 0 },
            proof: if with_proof {
                request.proof.iter().map(|h| BASE64.encode(h.0)).collect()
            } else {
                Vec::new()
            },
            detail,
        })
    };
    // A signed checkpoint of the witnessed size with another root is a fork, whatever the
    // request's old size says; one smaller than the witnessed size rolls the log back.
    if state.is_some() && checkpoint.size == known_size && root_b64 != known_root {
        let why = format!(
            "the log signed two different roots for size {known_size}: {known_root} (cosigned) and {root_b64}"
        );
        return Answer::Conflict {
            size: known_size,
            evidence: evidence("fork", why.clone(), false),
            why,
        };
    }
    if request.old_size != known_size {
        let rollback = state.is_some() && checkpoint.size < known_size;
        let why = if rollback {
            format!(
                "a checkpoint of size {} is smaller than the size {known_size} already cosigned",
                checkpoint.size
            )
        } else {
            format!(
                "old size {} is not the size of the latest cosigned checkpoint, {known_size}",
                request.old_size
            )
        };
        return Answer::Conflict {
            size: known_size,
            evidence: if rollback {
                evidence("rollback", why.clone(), false)
            } else {
                None
            },
            why,
        };
    }
    let old_root = match state {
        Some(_) => BASE64
            .decode(&known_root)
            .ok()
            .and_then(|raw| Hash::from_slice(&raw))
            .unwrap_or_default(),
        None => Hash::default(),
    };
    if let Err(e) = verify_consistency(
        request.old_size,
        checkpoint.size,
        &request.proof,
        &old_root,
        &checkpoint.root,
    ) {
        let why = format!(
            "the consistency proof from size {} to {} does not verify: {e}",
            request.old_size, checkpoint.size
        );
        return Answer::BadProof {
            evidence: if request.old_size > 0 {
                evidence("inconsistent", why.clone(), true)
            } else {
                None
            },
            why,
        };
    }
    let timestamp = now.max(state.map_or(0, |s| s.timestamp)).min(MAX_TIMESTAMP);
    Answer::Cosigned {
        state: LogState {
            size: checkpoint.size,
            root: root_b64,
            checkpoint: request.note.clone(),
            timestamp,
        },
        signature: cosign(key, &note.text, timestamp),
    }
}

/// What a verifier requires of witnesses: their keys, and how many of them must have cosigned
/// the checkpoint it holds the log to.
#[derive(Clone, Debug)]
pub struct WitnessPolicy {
    pub witnesses: Vec<CosignerKey>,
    pub quorum: usize,
}

/// The checkpoint a witness policy holds a log to, and who cosigned it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessedHead {
    pub checkpoint: Checkpoint,
    pub cosigned: Vec<Cosigned>,
}

impl WitnessPolicy {
    /// Of `notes` (checkpoints of the log `origin` carrying cosignatures, from the log's
    /// `cosignatures.jsonl`, a witness, or anywhere), the largest checkpoint that at least
    /// `quorum` distinct trusted witnesses validly cosigned. Cosignatures on one checkpoint text
    /// spread over several notes are counted together. The error is a sentence: there is no
    /// such checkpoint (the log is self-signed only, as far as these notes show), or trusted
    /// witnesses cosigned two different roots for one size (a fork, or a dishonest witness).
    pub fn strongest(
        &self,
        origin: &str,
        notes: &[SignedCheckpoint],
    ) -> Result<WitnessedHead, String> {
        let mut by_text: BTreeMap<(u64, String), (Checkpoint, Vec<Cosigned>)> = BTreeMap::new();
        for note in notes.iter().filter(|n| n.checkpoint.origin == origin) {
            let found = note.cosignatures(&self.witnesses);
            if found.is_empty() {
                continue;
            }
            let slot = by_text
                .entry((note.checkpoint.size, note.text.clone()))
                .or_insert_with(|| (note.checkpoint.clone(), Vec::new()));
            for c in found {
                match slot.1.iter_mut().find(|have| have.witness == c.witness) {
                    Some(have) => have.timestamp = have.timestamp.min(c.timestamp),
                    None => slot.1.push(c),
                }
            }
        }
        let mut roots: BTreeMap<u64, &Checkpoint> = BTreeMap::new();
        for (checkpoint, cosigned) in by_text.values() {
            if let Some(other) = roots.insert(checkpoint.size, checkpoint)
                && other.root != checkpoint.root
            {
                return Err(format!(
                    "trusted witnesses cosigned two different roots for tree size {} of {origin} \
                     ({} and {}, cosigned by {}): the log forked, or a witness is dishonest",
                    checkpoint.size,
                    BASE64.encode(other.root.0),
                    BASE64.encode(checkpoint.root.0),
                    cosigned
                        .iter()
                        .map(|c| c.witness.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let best = by_text
            .into_values()
            .filter(|(_, cosigned)| cosigned.len() >= self.quorum.max(1))
            .max_by_key(|(checkpoint, _)| checkpoint.size);
        match best {
            Some((checkpoint, cosigned)) => Ok(WitnessedHead {
                checkpoint,
                cosigned,
            }),
            None => Err(format!(
                "no checkpoint of {origin} carries valid cosignatures of {} of the {} given \
                     witnesses: as far as these cosignatures show, the log is signed by its operator \
                     alone, who could have rewritten it",
                self.quorum.max(1),
                self.witnesses.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::Tree;

    fn log_key() -> SecretKey {
        SecretKey::from_seed("log.example", &[1; 32]).unwrap()
    }

    fn tree(leaves: &[&str]) -> Tree {
        let mut tree = Tree::new();
        for leaf in leaves {
            tree.push(leaf_hash(leaf.as_bytes()));
        }
        tree
    }

    fn note(tree: &Tree, size: u64) -> String {
        Checkpoint {
            origin: "log.example".into(),
            size,
            root: tree.root_at(size).unwrap(),
        }
        .sign(&log_key())
    }

    fn logs() -> Vec<WitnessedLog> {
        vec![WitnessedLog {
            origin: "log.example".into(),
            keys: vec![log_key().public().clone()],
        }]
    }

    #[test]
    fn the_protocol_in_order() {
        let witness = SecretKey::from_seed("w1", &[2; 32]).unwrap();
        let good = tree(&["a", "b", "c", "d", "e"]);
        let request = |old: u64, size: u64, t: &Tree| AddCheckpoint {
            old_size: old,
            proof: if old == 0 {
                vec![]
            } else {
                t.consistency_proof(old, size).unwrap()
            },
            note: note(t, size),
        };
        // First sight: old 0, no proof.
        let first = request(0, 3, &good);
        assert_eq!(AddCheckpoint::parse(&first.encode()).unwrap(), first);
        let Answer::Cosigned { state, signature } = decide(&logs(), None, &first, 100, &witness)
        else {
            panic!("first checkpoint not cosigned")
        };
        let cosigner = CosignerKey::of(witness.public());
        let text = SignedCheckpoint::parse(&first.note).unwrap().text;
        assert_eq!(cosigner.verify(&text, &signature), Some(100));
        // A stale old size: 409 with the witnessed size.
        let answer = decide(&logs(), Some(&state), &request(0, 5, &good), 101, &witness);
        assert!(matches!(
            answer,
            Answer::Conflict {
                size: 3,
                evidence: None,
                ..
            }
        ));
        // The right old size and proof: cosigned, and time never runs backwards.
        let Answer::Cosigned { state: next, .. } =
            decide(&logs(), Some(&state), &request(3, 5, &good), 50, &witness)
        else {
            panic!("extension not cosigned")
        };
        assert_eq!((next.size, next.timestamp), (5, 100));
        // A fork: same size, another root, signed by the log.
        let forked = tree(&["a", "b", "c", "d", "X"]);
        let answer = decide(&logs(), Some(&next), &request(5, 5, &forked), 200, &witness);
        assert_eq!(answer.status(), 409);
        assert_eq!(answer.evidence().unwrap().kind, "fork");
        // A rewritten history grown past the witnessed size: its proof cannot connect.
        let rewritten = tree(&["a", "b", "Y", "d", "e", "f"]);
        let answer = decide(
            &logs(),
            Some(&next),
            &request(5, 6, &rewritten),
            200,
            &witness,
        );
        assert_eq!(answer.status(), 422);
        assert_eq!(answer.evidence().unwrap().kind, "inconsistent");
        // A rollback: a smaller signed checkpoint.
        let answer = decide(&logs(), Some(&next), &request(3, 3, &good), 200, &witness);
        assert_eq!(answer.status(), 409);
        assert_eq!(answer.evidence().unwrap().kind, "rollback");
        // Unknown origin, foreign signature, old beyond new, malformed.
        let mut foreign = request(0, 5, &good);
        foreign.note = Checkpoint {
            origin: "log.example".into(),
            size: 5,
            root: good.root_at(5).unwrap(),
        }
        .sign(&SecretKey::from_seed("log.example", &[9; 32]).unwrap());
        assert_eq!(decide(&logs(), None, &foreign, 1, &witness).status(), 403);
        assert_eq!(decide(&[], None, &first, 1, &witness).status(), 404);
        let mut beyond = request(0, 3, &good);
        beyond.old_size = 4;
        assert_eq!(decide(&logs(), None, &beyond, 1, &witness).status(), 400);
        assert!(AddCheckpoint::parse("old 01\n\nx").is_err());
        assert!(AddCheckpoint::parse("old 1\nnot-a-hash\n\nx").is_err());
        assert!(AddCheckpoint::parse("old 1\n").is_err());
    }

    #[test]
    fn a_policy_holds_the_log_to_its_largest_quorum_checkpoint() {
        let w: Vec<SecretKey> = (0..3)
            .map(|i| SecretKey::from_seed(&format!("w{i}"), &[10 + i; 32]).unwrap())
            .collect();
        let policy = WitnessPolicy {
            witnesses: w.iter().map(|k| CosignerKey::of(k.public())).collect(),
            quorum: 2,
        };
        let good = tree(&["a", "b", "c", "d"]);
        let cosigned = |size: u64, t: &Tree, by: &[usize]| {
            let note = SignedCheckpoint::parse(&note(t, size)).unwrap();
            let sigs: Vec<_> = by.iter().map(|&i| cosign(&w[i], &note.text, 7)).collect();
            SignedCheckpoint::parse(&note.with_signatures(&sigs).unwrap()).unwrap()
        };
        let notes = vec![
            cosigned(2, &good, &[0, 1]),
            cosigned(4, &good, &[0]),
            cosigned(4, &good, &[2]),
            cosigned(3, &good, &[1]),
        ];
        let head = policy.strongest("log.example", &notes).unwrap();
        assert_eq!(
            head.checkpoint.size, 4,
            "two notes of size 4 make a quorum together"
        );
        assert_eq!(head.cosigned.len(), 2);
        let e = policy.strongest("log.example", &notes[1..2]).unwrap_err();
        assert!(e.contains("signed by its operator alone"), "{e}");
        assert!(policy.strongest("other.example", &notes).is_err());
        let forked = tree(&["a", "b", "c", "X"]);
        let mut split = notes.clone();
        split.push(cosigned(4, &forked, &[1]));
        let e = policy.strongest("log.example", &split).unwrap_err();
        assert!(e.contains("two different roots for tree size 4"), "{e}");
    }
}
