//! Logging rules at sealing time: masked values leave only salted commitments in the sealed
//! record, dropped decisions are counted in tally entries, retention becomes `retain_until`, and
//! the log verifies throughout.

use crate::common::{T0, decision, key};
use docket_ledger::masking::{RevealError, check_reveal, commitment};
use docket_ledger::record::SigningMode;
use docket_ledger::{
    EntryKind, GenesisParams, LogRules, MaskRule, SealedDecision, Sealer, Verifier,
};

#[test]
fn masked_values_are_committed_dropped_ones_tallied_and_the_log_verifies() {
    let signer = key("docket-test", "rules");
    let genesis_key = signer.public().clone();
    let params = GenesisParams {
        origin: "docket.test/rules".into(),
        instance_id: "rules".into(),
        signing: SigningMode::Checkpoint,
    };
    let (mut sealer, genesis) = Sealer::genesis(signer, params, T0).unwrap();
    let mut entries = vec![genesis];
    let mut salts = 0u8;
    let mut next_salt = || {
        salts += 1;
        [salts; 32]
    };

    let mut masked = decision(1);
    masked.log = LogRules {
        drop: false,
        mask: vec![MaskRule::Remove {
            path: "/input/user".into(),
        }],
        retention_ns: Some(3_600_000_000_000),
    };
    let SealedDecision::Sealed { entry, salts, .. } = sealer
        .seal_decision(&masked, T0 + 1, &mut next_salt)
        .unwrap()
    else {
        panic!("a masked decision is sealed");
    };
    let record = String::from_utf8(entry.record.clone()).unwrap();
    assert!(!record.contains("user-1"), "{record}");
    assert!(record.contains(r#""erased":["/input/user"]"#), "{record}");
    assert!(
        record.contains(&commitment(&[1; 32], r#""user-1""#)),
        "{record}"
    );
    assert!(
        record.contains(r#""retain_until":"2026-11-23T21:00:00.000000001Z""#),
        "{record}"
    );
    assert_eq!(salts.len(), 1);
    check_reveal(&entry.record, "/input/user", r#""user-1""#, &salts[0].salt).unwrap();
    assert_eq!(
        check_reveal(&entry.record, "/input/user", r#""user-2""#, &salts[0].salt),
        Err(RevealError::Mismatch)
    );
    entries.push(entry);

    let mut health = decision(2);
    health.path = "health/live".into();
    health.log.drop = true;
    for i in 0..3 {
        let outcome = sealer.seal_decision(&health, T0 + 10 + i, &mut next_salt);
        assert!(matches!(outcome, Ok(SealedDecision::Dropped)));
    }
    assert_eq!(sealer.dropped_pending(), 3);
    let tally = sealer.seal_tally(T0 + 20).expect("three drops to tally");
    assert_eq!(tally.kind, EntryKind::Tally);
    let tally_record: serde_json::Value = serde_json::from_slice(&tally.record).unwrap();
    assert_eq!(tally_record["count"], 3);
    assert_eq!(tally_record["paths"]["health/live"], 3);
    assert_eq!(sealer.dropped_pending(), 0);
    assert!(sealer.seal_tally(T0 + 21).is_none(), "nothing new to tally");
    entries.push(tally);

    let mut verifier = Verifier::new(genesis_key);
    for e in &entries {
        verifier.push_entry(e).unwrap();
    }
    let (_, note) = sealer.checkpoint();
    verifier.push_checkpoint(&note).unwrap();
    let report = verifier.finish().unwrap();
    assert_eq!(report.entries, 3);
}

#[test]
fn a_mask_rule_outside_the_decision_refuses_the_seal_and_leaves_the_chain_alone() {
    let (mut sealer, _) = Sealer::genesis(
        key("docket-test", "bad-rule"),
        GenesisParams {
            origin: "docket.test/bad".into(),
            instance_id: "bad".into(),
            signing: SigningMode::Checkpoint,
        },
        T0,
    )
    .unwrap();
    let mut d = decision(1);
    d.log.mask = vec![MaskRule::Remove {
        path: "/labels/id".into(),
    }];
    let e = sealer
        .seal_decision(&d, T0 + 1, &mut || [0; 32])
        .unwrap_err();
    assert!(e.to_string().contains("/input or /result"), "{e}");
    assert_eq!(sealer.state().size, 1);
}
