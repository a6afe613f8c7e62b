//! A small, deterministic log builder shared by the ledger's integration tests.
#![allow(dead_code)]

use docket_ledger::hash::sha256;
use docket_ledger::record::{Decision, PolicyVersion, SigningMode};
use docket_ledger::{Entry, GenesisParams, PublicKey, Sealer, SecretKey, Verifier, VerifyError};

pub const T0: u64 = 1_795_464_000_000_000_000;

pub fn key(name: &str, label: &str) -> SecretKey {
    let seed = sha256(&[b"docket test key\0", label.as_bytes()]).0;
    SecretKey::from_seed(name, &seed).unwrap()
}

/// One element of a log as a verifier reads it.
#[derive(Clone, Debug)]
pub enum Item {
    Entry(Entry),
    Checkpoint { size: u64, note: String },
}

pub fn decision(i: u64) -> Decision {
    Decision {
        path: "rbac/allow".into(),
        input: Some(format!(r#"{{"user":"user-{i}","action":"read","n":{i}}}"#)),
        result: if i % 5 == 4 {
            None
        } else {
            Some((!i.is_multiple_of(3)).to_string())
        },
        policy_version: PolicyVersion {
            digest: format!("sha256:{}", "ab".repeat(32)),
            revision: Some("r1".into()),
        },
        log: Default::default(),
    }
}

/// A log of `n` decisions after genesis, with a checkpoint every `every` entries and at the end,
/// and a key rotation at `rotate_at` (if any).
pub struct Built {
    pub items: Vec<Item>,
    pub genesis_key: PublicKey,
    pub final_size: u64,
    pub final_root: docket_ledger::Hash,
}

pub fn build(
    origin: &str,
    label: &str,
    mode: SigningMode,
    n: u64,
    every: u64,
    rotate_at: Option<u64>,
) -> Built {
    build_fork(origin, label, mode, n, every, rotate_at, None)
}

/// Like [`build`], but from entry `diverge_at` on the decisions differ: with the same origin and
/// label (so the same keys) this is a fork, a second history the log's key has signed.
pub fn build_fork(
    origin: &str,
    label: &str,
    mode: SigningMode,
    n: u64,
    every: u64,
    rotate_at: Option<u64>,
    diverge_at: Option<u64>,
) -> Built {
    let first = key("docket-test", label);
    let genesis_key = first.public().clone();
    let params = GenesisParams {
        origin: origin.into(),
        instance_id: format!("instance-{label}"),
        signing: mode,
    };
    let (mut sealer, genesis) = Sealer::genesis(first, params, T0).unwrap();
    let mut items = vec![Item::Entry(genesis)];
    for i in 1..=n {
        let now = T0 + i * 1_000_000;
        let entry = if Some(i) == rotate_at {
            sealer
                .rotate_key(key("docket-test-2", &format!("{label}-rotated")), now)
                .unwrap()
        } else {
            let which = match diverge_at {
                Some(d) if i >= d => i + 1_000_000,
                _ => i,
            };
            sealer
                .seal_decision(&decision(which), now, &mut || [0; 32])
                .unwrap()
                .into_entry()
                .expect("nothing is dropped")
        };
        items.push(Item::Entry(entry));
        if i.is_multiple_of(every) || i == n {
            let (c, note) = sealer.checkpoint();
            items.push(Item::Checkpoint { size: c.size, note });
        }
    }
    let (c, _) = sealer.checkpoint();
    Built {
        items,
        genesis_key,
        final_size: c.size,
        final_root: c.root,
    }
}

/// Verifies `items` entry by entry, and again with every entry prechecked up front (as a
/// parallel verifier does, with the genesis key as the expected signing key); both must agree.
pub fn verify(
    items: &[Item],
    trusted: &PublicKey,
    head: Option<(u64, docket_ledger::Hash)>,
) -> Result<docket_ledger::Report, VerifyError> {
    let sequential = verify_with(items, trusted, head, false);
    let prechecked = verify_with(items, trusted, head, true);
    assert_eq!(
        sequential, prechecked,
        "prechecked verification must give the same verdict"
    );
    sequential
}

fn verify_with(
    items: &[Item],
    trusted: &PublicKey,
    head: Option<(u64, docket_ledger::Hash)>,
    prechecked: bool,
) -> Result<docket_ledger::Report, VerifyError> {
    let mut verifier = Verifier::new(trusted.clone());
    if let Some((size, root)) = head {
        verifier.expect_tree_head(size, root);
    }
    for item in items {
        match item {
            Item::Entry(e) if prechecked => {
                verifier.push_prechecked(&docket_ledger::precheck(&e.encode(), Some(trusted)))?
            }
            Item::Entry(e) => verifier.push_entry(e)?,
            Item::Checkpoint { note, .. } => verifier.push_checkpoint(note)?,
        }
    }
    verifier.finish()
}

pub fn verify_bytes(
    items: &[(Option<Vec<u8>>, Option<String>)],
    trusted: &PublicKey,
) -> Result<docket_ledger::Report, VerifyError> {
    let mut verifier = Verifier::new(trusted.clone());
    for (entry, note) in items {
        if let Some(bytes) = entry {
            verifier.push_entry_bytes(bytes)?;
        }
        if let Some(note) = note {
            verifier.push_checkpoint(note)?;
        }
    }
    verifier.finish()
}

/// One entry of a hand-built log: kind, record text, whether it carries its own signature.
pub type Raw<'a> = (docket_ledger::EntryKind, &'a str, bool);

/// A log written entry by entry with every hash, link and signature correct, ending in one
/// checkpoint signed by `checkpoint_key`, as an export: what a careful forger with the log's key
/// would write. Each rejected vector breaks exactly one rule of the format this way, so only
/// that rule can reject it. Entry 0's record is given too (usually [`genesis_record`]).
pub fn resealed(
    key: &docket_ledger::SecretKey,
    origin: &str,
    raw: &[Raw],
    checkpoint_key: &docket_ledger::SecretKey,
) -> String {
    let mut entries: Vec<Entry> = Vec::new();
    let mut prev = docket_ledger::Hash::ZERO;
    for (seq, (kind, record, signed)) in raw.iter().enumerate() {
        let mut entry = Entry {
            seq: seq as u64,
            prev,
            timestamp_ns: T0 + seq as u64 * 1_000_000_000,
            kind: *kind,
            key_id: key.public().id(),
            record: record.as_bytes().to_vec(),
            leaf: docket_ledger::LeafForm::for_record_len(record.len()),
            hash: docket_ledger::Hash::ZERO,
            signature: None,
            pruned: None,
        };
        entry.hash = entry.compute_hash();
        if *signed {
            let message = docket_ledger::entry::entry_signature_message(&entry.hash);
            entry.signature = Some(key.sign(&message));
        }
        prev = entry.hash;
        entries.push(entry);
    }
    let leaves: Vec<docket_ledger::Hash> = entries.iter().map(|e| e.hash).collect();
    let note = docket_ledger::Checkpoint {
        origin: origin.into(),
        size: leaves.len() as u64,
        root: docket_ledger::merkle::root(&leaves),
    }
    .sign(checkpoint_key);
    docket_ledger::export::write_export(origin, &entries, &[(leaves.len() as u64, note)])
}

pub fn genesis_record(key: &docket_ledger::SecretKey, origin: &str) -> String {
    serde_json::json!({"docket_log": "v1", "origin": origin, "key": key.public().to_vkey(),
           "signing": "checkpoint", "labels": {"id": "vectors", "version": "0.1.0"}})
    .to_string()
}
