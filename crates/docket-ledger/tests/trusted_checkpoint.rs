//! `Verifier::expect_checkpoint`: a checkpoint kept from before, which the log must reach, with
//! its origin, root and a signature by the key in force at its size (the browser page and the
//! CLI hold a log to one this way).

use crate::common::{Item, build, key};
use docket_ledger::record::SigningMode;
use docket_ledger::{Failure, SignedCheckpoint, Verifier};

fn held_to(
    items: &[Item],
    genesis: &docket_ledger::PublicKey,
    note: &str,
) -> Result<docket_ledger::Report, docket_ledger::VerifyError> {
    let mut verifier = Verifier::new(genesis.clone());
    verifier.expect_checkpoint(note).unwrap();
    for item in items {
        match item {
            Item::Entry(e) => verifier.push_entry(e)?,
            Item::Checkpoint { note, .. } => verifier.push_checkpoint(note)?,
        }
    }
    verifier.finish()
}

fn note_at(items: &[Item], size: u64) -> String {
    items
        .iter()
        .find_map(|i| match i {
            Item::Checkpoint { size: s, note } if *s == size => Some(note.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_kept_checkpoint_is_reached_signed_by_the_key_in_force_there() {
    // A key rotation at entry 10; checkpoints after entries 4, 8, 12, 16, 20 (sizes 5 … 21).
    let log = build(
        "docket.test/trusted",
        "trusted",
        SigningMode::Checkpoint,
        20,
        4,
        Some(10),
    );
    let genesis = &log.genesis_key;
    // Before the rotation, signed by the genesis key; after it, by the new key: both hold.
    for size in [5, 9, 13, 21] {
        let report = held_to(&log.items, genesis, &note_at(&log.items, size)).unwrap();
        assert_eq!(report.trusted_size, Some(size));
    }
    // After the rotation, a checkpoint the retired key signed is not one the log vouches for.
    let genuine = SignedCheckpoint::parse(&note_at(&log.items, 17)).unwrap();
    let by_retired = genuine.checkpoint.sign(&key("docket-test", "trusted"));
    let e = held_to(&log.items, genesis, &by_retired).unwrap_err();
    assert_eq!(e.failure, Failure::BadSignature, "{e:?}");
    // A rollback: the log shown is shorter than the checkpoint kept.
    let cut: Vec<Item> = log
        .items
        .iter()
        .take_while(|i| !matches!(i, Item::Checkpoint { size: 17, .. }))
        .cloned()
        .collect();
    let e = held_to(&cut, genesis, &note_at(&log.items, 17)).unwrap_err();
    assert_eq!(e.failure, Failure::Truncated, "{e:?}");
    // Another log's checkpoint, same keys, same size.
    let other = build(
        "docket.test/other",
        "trusted",
        SigningMode::Checkpoint,
        20,
        4,
        Some(10),
    );
    let e = held_to(&log.items, genesis, &note_at(&other.items, 9)).unwrap_err();
    assert_eq!(e.failure, Failure::CheckpointMismatch, "{e:?}");
    // The same tree under another origin line, signed by the right key: the origin is checked.
    let mut renamed = genuine.checkpoint.clone();
    renamed.origin = "docket.test/renamed".into();
    let renamed = renamed.sign(&key("docket-test-2", "trusted-rotated"));
    let e = held_to(&log.items, genesis, &renamed).unwrap_err();
    assert_eq!(e.failure, Failure::CheckpointMismatch, "{e:?}");
    assert!(e.detail.contains("another log"), "{e:?}");
    // Not a checkpoint at all: refused up front.
    assert!(
        Verifier::new(genesis.clone())
            .expect_checkpoint("hello\n")
            .is_err()
    );
}
