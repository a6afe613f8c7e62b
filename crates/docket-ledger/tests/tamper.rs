//! Every single mutation of a sealed log is detected, and named for what it is.

use crate::common::*;
use docket_ledger::entry::BODY_HEADER_LEN;
use docket_ledger::record::SigningMode;
use docket_ledger::{Failure, Location};
use proptest::prelude::*;

fn entries_of(items: &[Item]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i, Item::Entry(_)))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn genuine_logs_verify_in_both_signing_modes() {
    for mode in [SigningMode::Checkpoint, SigningMode::Entry] {
        let built = build("docket.test/a", "a", mode, 40, 7, Some(20));
        let report = verify(
            &built.items,
            &built.genesis_key,
            Some((built.final_size, built.final_root)),
        )
        .unwrap();
        assert_eq!(report.entries, 41);
        assert_eq!(report.root, built.final_root);
        assert_eq!(
            report.keys.len(),
            2,
            "the rotated key is learnt from the log"
        );
        assert_eq!(report.count(docket_ledger::EntryKind::Decision), 39);
        assert_eq!(report.state.size, 41);
    }
}

/// Flips one bit in every byte of every entry's binary encoding, one at a time, and checks the
/// verifier names the failure that byte's field implies, at that entry.
#[test]
fn every_byte_flip_in_every_binary_entry_is_detected_and_named() {
    for mode in [SigningMode::Checkpoint, SigningMode::Entry] {
        let built = build("docket.test/flip", "flip", mode, 12, 4, Some(6));
        let encoded: Vec<(Option<Vec<u8>>, Option<String>)> = built
            .items
            .iter()
            .map(|item| match item {
                Item::Entry(e) => (Some(e.encode()), None),
                Item::Checkpoint { note, .. } => (None, Some(note.clone())),
            })
            .collect();
        verify_bytes(&encoded, &built.genesis_key).unwrap();
        let mut flips = 0;
        for (k, item) in built.items.iter().enumerate() {
            let Item::Entry(entry) = item else { continue };
            let bytes = entry.encode();
            let record_end = BODY_HEADER_LEN + entry.record.len();
            for at in 0..bytes.len() {
                let mut mutated = encoded.clone();
                let mut b = bytes.clone();
                b[at] ^= 0x01;
                mutated[k].0 = Some(b);
                let err = verify_bytes(&mutated, &built.genesis_key)
                    .expect_err("a flipped byte must be detected");
                let expected = match at {
                    0..16 => Failure::Malformed,                      // tag
                    16..24 => Failure::WrongSequence,                 // seq
                    24..56 => Failure::BrokenLink,                    // prev
                    69..73 => Failure::Malformed,                     // record length
                    _ if at < record_end => Failure::BadHash, // timestamp, kind, key id, record
                    _ if at < record_end + 32 => Failure::BadHash, // stored hash
                    _ if at == record_end + 32 => Failure::Malformed, // signature length
                    _ => Failure::BadSignature,               // signature
                };
                assert_eq!(
                    (err.failure, err.location),
                    (expected, Location::Entry(entry.seq)),
                    "{mode:?}: flip at byte {at} of entry {}: {err}",
                    entry.seq
                );
                flips += 1;
            }
        }
        assert!(flips > 3000, "{flips} flips");
    }
}

/// The same for an entry in the digest form (log-format §3.6), whose body holds the SHA-256 of a
/// record too long for a tlog-tiles bundle: every header byte, hash and signature byte, and
/// every 101st byte of the record (and its last) is flipped in turn.
#[test]
fn every_byte_flip_in_a_digest_form_entry_is_detected_and_named() {
    let signer = key("docket-test", "digest-flip");
    let trusted = signer.public().clone();
    let params = docket_ledger::GenesisParams {
        origin: "docket.test/digest-flip".into(),
        instance_id: "digest-flip".into(),
        signing: SigningMode::Entry,
    };
    let (mut sealer, genesis) = docket_ledger::Sealer::genesis(signer, params, T0).unwrap();
    let record = format!(
        r#"{{"op":"put_data","path":"/big","value":"{}"}}"#,
        "v".repeat(70_000)
    );
    let large = sealer
        .seal_record(
            docket_ledger::EntryKind::PolicyChange,
            record.into_bytes(),
            T0 + 1,
        )
        .unwrap();
    assert_eq!(large.leaf, docket_ledger::LeafForm::Digest);
    assert_eq!(large.body().len(), BODY_HEADER_LEN + 32);
    let after = sealer
        .seal_decision(&decision(2), T0 + 2, &mut || [0; 32])
        .unwrap()
        .into_entry()
        .unwrap();
    let (_, note) = sealer.checkpoint();
    let encoded: Vec<(Option<Vec<u8>>, Option<String>)> = vec![
        (Some(genesis.encode()), None),
        (Some(large.encode()), None),
        (Some(after.encode()), None),
        (None, Some(note)),
    ];
    verify_bytes(&encoded, &trusted).unwrap();
    let bytes = large.encode();
    let record_end = BODY_HEADER_LEN + large.record.len();
    let mut flips = 0;
    for at in (0..bytes.len()).filter(|&at| {
        at < BODY_HEADER_LEN || at >= record_end - 1 || (at - BODY_HEADER_LEN).is_multiple_of(101)
    }) {
        let mut mutated = encoded.clone();
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        mutated[1].0 = Some(b);
        let err = verify_bytes(&mutated, &trusted).expect_err("a flipped byte must be detected");
        let expected = match at {
            0..16 => Failure::Malformed,                      // tag
            16..24 => Failure::WrongSequence,                 // seq
            24..56 => Failure::BrokenLink,                    // prev
            69..73 => Failure::Malformed,                     // record length
            _ if at < record_end + 32 => Failure::BadHash, // the rest of the header, record, hash
            _ if at == record_end + 32 => Failure::Malformed, // signature length
            _ => Failure::BadSignature,                    // signature
        };
        assert_eq!(
            (err.failure, err.location),
            (expected, Location::Entry(1)),
            "flip at byte {at}: {err}"
        );
        flips += 1;
    }
    assert!(flips > 800, "{flips} flips");
}

#[test]
fn a_log_by_another_key_is_untrusted_and_a_spliced_entry_breaks_the_chain() {
    let ours = build("docket.test/a", "a", SigningMode::Checkpoint, 10, 3, None);
    let theirs = build("docket.test/a", "b", SigningMode::Checkpoint, 10, 3, None);
    let err = verify(&theirs.items, &ours.genesis_key, None).unwrap_err();
    assert_eq!(
        (err.failure, err.location),
        (Failure::UntrustedKey, Location::Entry(0))
    );
    // Same key, another log (different instance): its entries do not link into ours.
    let other = build(
        "docket.test/other",
        "a",
        SigningMode::Checkpoint,
        10,
        3,
        None,
    );
    let mut spliced = ours.items.clone();
    let k = entries_of(&spliced)[5];
    spliced[k] = other.items[entries_of(&other.items)[5]].clone();
    let err = verify(&spliced, &ours.genesis_key, None).unwrap_err();
    assert_eq!(
        (err.failure, err.location),
        (Failure::BrokenLink, Location::Entry(5))
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Duplicate(usize),
    SwapWithNext(usize),
    ForgeBefore(usize),
    RehashFrom(usize),
    TruncateAfter(usize),
    CheckpointByte(usize, usize),
    RollBackLastCheckpoint,
    ReSignWithForeignKey(usize),
    /// Replace an entry with the same-numbered entry of another log by the same key.
    SpliceFromOtherLog(usize),
    /// Replace a checkpoint with the one the log's own key signed for a fork diverging at the
    /// given entry (same origin, same key, a different history).
    ForkedCheckpoint(usize, usize),
    /// Present a whole fork, consistent in itself, to a verifier that holds the genuine log's
    /// latest tree head (as a witness or an earlier reader would).
    ForkAgainstTrustedHead(usize),
}

fn mutation(items: usize, entries: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (1..entries).prop_map(Mutation::Drop),
        (0..entries).prop_map(Mutation::Duplicate),
        (1..entries - 1).prop_map(Mutation::SwapWithNext),
        (1..entries).prop_map(Mutation::ForgeBefore),
        (1..entries).prop_map(Mutation::RehashFrom),
        (0..items - 1).prop_map(Mutation::TruncateAfter),
        (0..64usize, 0..400usize).prop_map(|(c, b)| Mutation::CheckpointByte(c, b)),
        Just(Mutation::RollBackLastCheckpoint),
        (1..entries).prop_map(Mutation::ReSignWithForeignKey),
        (1..entries).prop_map(Mutation::SpliceFromOtherLog),
        (1..entries, 0..64usize).prop_map(|(seq, c)| Mutation::ForkedCheckpoint(seq, c)),
        (1..entries).prop_map(Mutation::ForkAgainstTrustedHead),
    ]
}

fn entry_at(items: &[Item], seq: usize) -> (usize, docket_ledger::Entry) {
    let k = entries_of(items)[seq];
    let Item::Entry(e) = &items[k] else {
        unreachable!()
    };
    (k, e.clone())
}

fn check_mutation(mode: SigningMode, m: Mutation) {
    let built = build("docket.test/prop", "prop", mode, 30, 4, Some(13));
    let head = Some((built.final_size, built.final_root));
    let mut items = built.items.clone();
    let next_is_entry = |items: &[Item], k: usize| matches!(items.get(k), Some(Item::Entry(_)));
    let (failure, location): (Failure, Option<Location>) = match m {
        Mutation::Drop(seq) => {
            let (k, _) = entry_at(&items, seq);
            items.remove(k);
            if next_is_entry(&items, k) {
                (Failure::WrongSequence, Some(Location::Entry(seq as u64)))
            } else {
                (
                    Failure::CheckpointMismatch,
                    Some(Location::Checkpoint(seq as u64)),
                )
            }
        }
        Mutation::Duplicate(seq) => {
            let (k, e) = entry_at(&items, seq);
            items.insert(k + 1, Item::Entry(e));
            (
                Failure::WrongSequence,
                Some(Location::Entry(seq as u64 + 1)),
            )
        }
        Mutation::SwapWithNext(seq) => {
            let (k, _) = entry_at(&items, seq);
            let (k2, _) = entry_at(&items, seq + 1);
            items.swap(k, k2);
            (Failure::WrongSequence, Some(Location::Entry(seq as u64)))
        }
        Mutation::ForgeBefore(seq) => {
            // A well-formed, correctly linked and hashed entry an attacker slips in.
            let (k, e) = entry_at(&items, seq);
            let mut forged = e.clone();
            forged.record = br#"{"forged":true}"#.to_vec();
            forged.kind = docket_ledger::EntryKind::Decision;
            forged.signature = None;
            forged.hash = forged.compute_hash();
            items.insert(k, Item::Entry(forged));
            match mode {
                // Every entry must be signed: the forgery itself gives it away.
                SigningMode::Entry => {
                    (Failure::MissingSignature, Some(Location::Entry(seq as u64)))
                }
                SigningMode::Checkpoint => (
                    Failure::WrongSequence,
                    Some(Location::Entry(seq as u64 + 1)),
                ),
            }
        }
        Mutation::RehashFrom(seq) => {
            // Alter a record and recompute every hash and link after it: only signatures can tell.
            let mut prev = None;
            let mut expected = None;
            for (k, item) in items.iter_mut().enumerate() {
                match item {
                    Item::Entry(e) if (e.seq as usize) >= seq => {
                        if e.seq as usize == seq {
                            e.record = br#"{"rewritten":true}"#.to_vec();
                        }
                        if let Some(p) = prev {
                            e.prev = p;
                        }
                        e.hash = e.compute_hash();
                        prev = Some(e.hash);
                        if expected.is_none() && e.signature.is_some() {
                            expected = Some((Failure::BadSignature, Some(Location::Entry(e.seq))));
                        }
                    }
                    Item::Checkpoint { size, .. }
                        if (*size as usize) > seq && expected.is_none() =>
                    {
                        let _ = k;
                        expected = Some((
                            Failure::CheckpointMismatch,
                            Some(Location::Checkpoint(*size)),
                        ));
                    }
                    _ => {}
                }
            }
            expected.expect("a later signature exists")
        }
        Mutation::TruncateAfter(k) => {
            items.truncate(k + 1);
            if mode == SigningMode::Entry && entries_of(&items).len() as u64 == built.final_size {
                // Only a trailing checkpoint went: every entry is present and signed on its own,
                // so nothing was lost and the log must still verify.
                verify(&items, &built.genesis_key, head).expect("all entries remain, each signed");
                return;
            }
            (Failure::Truncated, None)
        }
        Mutation::CheckpointByte(c, b) => {
            let cps: Vec<usize> = (0..items.len())
                .filter(|k| matches!(items[*k], Item::Checkpoint { .. }))
                .collect();
            let k = cps[c % cps.len()];
            let Item::Checkpoint { size, note } = &mut items[k] else {
                unreachable!()
            };
            let mut bytes = note.clone().into_bytes();
            let at = b % bytes.len();
            bytes[at] ^= 0x01;
            let size = *size;
            // A flip inside a multi-byte character (the signature line's em dash) leaves bytes
            // that are not UTF-8: a reader decoding them lossily must still reject the note.
            *note = String::from_utf8_lossy(&bytes).into_owned();
            // Where in the note decides the name; all stay at this checkpoint.
            let err = verify(&items, &built.genesis_key, head).unwrap_err();
            assert_eq!(err.location, Location::Checkpoint(size), "{err}");
            assert!(
                matches!(
                    err.failure,
                    Failure::Malformed | Failure::CheckpointMismatch | Failure::BadSignature
                ),
                "{err}"
            );
            return;
        }
        Mutation::RollBackLastCheckpoint => {
            let cps: Vec<usize> = (0..items.len())
                .filter(|k| matches!(items[*k], Item::Checkpoint { .. }))
                .collect();
            let last = *cps.last().unwrap();
            let earlier = items[cps[cps.len() - 2]].clone();
            let Item::Checkpoint { size, .. } = items[last] else {
                unreachable!()
            };
            items[last] = earlier;
            (
                Failure::CheckpointMismatch,
                Some(Location::Checkpoint(size)),
            )
        }
        Mutation::ReSignWithForeignKey(seq) => {
            // Re-sign an entry with a key that is not the log's (claiming the log's key id).
            let (k, mut e) = entry_at(&items, seq);
            let foreign = key("docket-test", "foreign");
            e.signature =
                Some(foreign.sign(&docket_ledger::entry::entry_signature_message(&e.hash)));
            items[k] = Item::Entry(e);
            (Failure::BadSignature, Some(Location::Entry(seq as u64)))
        }
        Mutation::SpliceFromOtherLog(seq) => {
            let other = build("docket.test/other", "prop", mode, 30, 4, Some(13));
            let (k, _) = entry_at(&items, seq);
            let (_, foreign) = entry_at(&other.items, seq);
            items[k] = Item::Entry(foreign);
            (Failure::BrokenLink, Some(Location::Entry(seq as u64)))
        }
        Mutation::ForkedCheckpoint(seq, c) => {
            let fork = fork_of(mode, seq);
            // A checkpoint of the fork at a size that includes the divergence.
            let forked: Vec<&Item> = fork
                .items
                .iter()
                .filter(|i| matches!(i, Item::Checkpoint { size, .. } if *size as usize > seq))
                .collect();
            let chosen = forked[c % forked.len()].clone();
            let Item::Checkpoint { size, .. } = chosen else {
                unreachable!()
            };
            let k = items
                .iter()
                .position(|i| matches!(i, Item::Checkpoint { size: s, .. } if *s == size))
                .expect("both logs checkpoint at the same sizes");
            items[k] = chosen;
            (
                Failure::CheckpointMismatch,
                Some(Location::Checkpoint(size)),
            )
        }
        Mutation::ForkAgainstTrustedHead(seq) => {
            let fork = fork_of(mode, seq);
            // On its own the fork is a valid log: only a tree head from the genuine history
            // exposes it.
            verify(&fork.items, &fork.genesis_key, None).expect("a fork verifies on its own");
            items = fork.items;
            (
                Failure::CheckpointMismatch,
                Some(Location::Checkpoint(built.final_size)),
            )
        }
    };
    let err = verify(&items, &built.genesis_key, head).expect_err("mutation must be detected");
    assert_eq!(err.failure, failure, "{err}");
    if let Some(location) = location {
        assert_eq!(err.location, location, "{err}");
    }
}

/// The same log as `check_mutation` builds (same origin, same keys), diverging at entry `seq`.
fn fork_of(mode: SigningMode, seq: usize) -> Built {
    build_fork(
        "docket.test/prop",
        "prop",
        mode,
        30,
        4,
        Some(13),
        Some(seq as u64),
    )
}

/// Cases per signing mode: 256 in the test command, more with DOCKET_TAMPER_CASES (`just tamper`
/// runs 5,000 per mode: 10,000 mutations).
fn cases() -> u32 {
    std::env::var("DOCKET_TAMPER_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn structural_mutations_are_detected_and_named_checkpoint_mode(m in mutation(39, 31)) {
        check_mutation(SigningMode::Checkpoint, m);
    }

    #[test]
    fn structural_mutations_are_detected_and_named_entry_mode(m in mutation(39, 31)) {
        check_mutation(SigningMode::Entry, m);
    }
}
