//! Pruning under retention: a prune entry authorizes removing the payloads of expired
//! decisions; the pruned log still verifies, and reports the prune. Payloads removed without
//! authority, or entries passed off as pruned decisions, are caught.

use crate::common::{Item, T0, decision, key, verify};
use docket_ledger::export::{ExportLine, ExportVerifier, entry_line, parse_line, write_export};
use docket_ledger::record::SigningMode;
use docket_ledger::sealer::SealError;
use docket_ledger::{
    Entry, EntryKind, Failure, GenesisParams, Location, LogRules, Sealer, Verifier,
};

const SECOND: u64 = 1_000_000_000;

struct Log {
    sealer: Sealer,
    items: Vec<Item>,
    genesis_key: docket_ledger::PublicKey,
}

impl Log {
    fn new(mode: SigningMode) -> Log {
        let signer = key("docket-test", "prune");
        let genesis_key = signer.public().clone();
        let params = GenesisParams {
            origin: "docket.test/prune".into(),
            instance_id: "prune".into(),
            signing: mode,
        };
        let (sealer, genesis) = Sealer::genesis(signer, params, T0).unwrap();
        Log {
            sealer,
            items: vec![Item::Entry(genesis)],
            genesis_key,
        }
    }

    /// Verifies the log, which must fail; the failure.
    fn first_failure(&self) -> docket_ledger::VerifyError {
        verify(&self.items, &self.genesis_key, None).unwrap_err()
    }

    /// Seals a decision at `now` kept for `retention` (none: kept for ever).
    fn decide(&mut self, i: u64, now: u64, retention: Option<u64>) {
        let mut d = decision(i);
        d.log = LogRules {
            retention_ns: retention,
            ..LogRules::default()
        };
        let entry = self
            .sealer
            .seal_decision(&d, now, &mut || [7; 32])
            .unwrap()
            .into_entry()
            .unwrap();
        self.items.push(Item::Entry(entry));
    }

    fn checkpoint(&mut self) {
        let (c, note) = self.sealer.checkpoint();
        self.items.push(Item::Checkpoint { size: c.size, note });
    }

    fn entries(&self, first: u64, last: u64) -> Vec<Entry> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Entry(e) if (first..=last).contains(&e.seq) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// A minute after `sample`: prunes entries 1..=5 (the expired decisions among them), as a
    /// writer does: the prune entry, a checkpoint, then the pruned entries in place.
    fn prune_expired(&mut self) {
        let (prune, pruned) = self
            .sealer
            .seal_prune(&self.entries(1, 5), T0 + 60 * SECOND)
            .unwrap();
        self.items.push(Item::Entry(prune));
        self.checkpoint();
        self.replace(&pruned);
    }

    /// Puts pruned entries in place of the full ones.
    fn replace(&mut self, pruned: &[Entry]) {
        for item in &mut self.items {
            if let Item::Entry(e) = item
                && let Some(p) = pruned.iter().find(|p| p.seq == e.seq)
            {
                *e = p.clone();
            }
        }
    }
}

/// Entries 1..=6: decisions kept 10 s (1, 2, 4, 5), a policy change (3) and a decision kept
/// a year (6), committed in two checkpoints.
fn sample(mode: SigningMode) -> Log {
    let mut log = Log::new(mode);
    log.decide(1, T0 + 1, Some(10 * SECOND));
    log.decide(2, T0 + 2, Some(10 * SECOND));
    let change = log
        .sealer
        .seal_record(
            EntryKind::PolicyChange,
            br#"{"policy":"changed"}"#.to_vec(),
            T0 + 3,
        )
        .unwrap();
    log.items.push(Item::Entry(change));
    log.decide(4, T0 + 4, Some(10 * SECOND));
    log.checkpoint();
    log.decide(5, T0 + 5, Some(10 * SECOND));
    log.decide(6, T0 + 6, Some(365 * 24 * 3600 * SECOND));
    log.checkpoint();
    log
}

#[test]
fn expired_payloads_are_pruned_and_the_log_verifies_with_the_prune_reported() {
    for mode in [SigningMode::Checkpoint, SigningMode::Entry] {
        let mut log = sample(mode);
        let later = T0 + 60 * SECOND;
        let (prune, pruned) = log.sealer.seal_prune(&log.entries(1, 5), later).unwrap();
        assert_eq!(prune.kind, EntryKind::Prune);
        assert!(prune.signature.is_some(), "a prune entry is always signed");
        let record: serde_json::Value = serde_json::from_slice(&prune.record).unwrap();
        assert_eq!(record["first"], 1);
        assert_eq!(record["last"], 5);
        assert_eq!(record["entries"], 4);
        assert_eq!(record["ranges"], serde_json::json!([[1, 2], [4, 5]]));
        assert_eq!(
            pruned.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 4, 5]
        );
        log.items.push(Item::Entry(prune));
        log.checkpoint();
        log.replace(&pruned);

        let report = verify(&log.items, &log.genesis_key, None).unwrap();
        assert_eq!(report.entries, 8);
        assert_eq!(report.pruned_entries, 4);
        assert_eq!(report.count(EntryKind::Prune), 1);
        assert_eq!(report.prunes.len(), 1);
        let summary = &report.prunes[0];
        assert_eq!((summary.seq, summary.first, summary.last), (7, 1, 5));
        assert_eq!((summary.entries, summary.pruned_found), (4, 4));
        assert_eq!(summary.policy_versions, [decision(1).policy_version.digest]);

        // The encodings round-trip, on disk and in an export, and the export verifies too.
        for item in &log.items {
            if let Item::Entry(e) = item {
                assert_eq!(&Entry::decode(&e.encode()).unwrap(), e);
                assert_eq!(
                    parse_line(&entry_line(e)).unwrap(),
                    ExportLine::Entry(e.clone())
                );
            }
        }
        let report = verify_export(&log).unwrap();
        assert_eq!(report.pruned_entries, 4);
    }
}

fn verify_export(log: &Log) -> Result<docket_ledger::Report, docket_ledger::VerifyError> {
    let entries: Vec<Entry> = log.entries(0, u64::MAX);
    let checkpoints: Vec<(u64, String)> = log
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Checkpoint { size, note } => Some((*size, note.clone())),
            _ => None,
        })
        .collect();
    let export = write_export("docket.test/prune", &entries, &checkpoints);
    let mut verifier = ExportVerifier::new(Verifier::new(log.genesis_key.clone()));
    for line in export.lines() {
        verifier.push_line(line)?;
    }
    verifier.finish()
}

#[test]
fn an_ingested_event_with_a_retention_is_pruned_and_one_without_is_kept() {
    let mut log = Log::new(SigningMode::Checkpoint);
    let seal = |log: &mut Log, record: &str, at: u64| {
        let e = log
            .sealer
            .seal_record(EntryKind::Ingested, record.as_bytes().to_vec(), at)
            .unwrap();
        log.items.push(Item::Entry(e));
    };
    // An event the Envoy filter sent with its logging rules' retention, and one from OPA.
    let until = docket_ledger::record::rfc3339(T0 + 10 * SECOND);
    let digest = format!("sha256:{}", "cd".repeat(32));
    seal(
        &mut log,
        &format!(
            r#"{{"decision_id":"a","path":"envoy/authz/decision","retain_until":"{until}","policy_version":{{"digest":"{digest}"}}}}"#
        ),
        T0 + 1,
    );
    seal(&mut log, r#"{"decision_id":"b","path":"opa/x"}"#, T0 + 2);
    log.decide(3, T0 + 3, Some(10 * SECOND));
    log.checkpoint();
    let (prune, pruned) = log
        .sealer
        .seal_prune(&log.entries(1, 3), T0 + 60 * SECOND)
        .unwrap();
    assert_eq!(pruned.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
    let record: serde_json::Value = serde_json::from_slice(&prune.record).unwrap();
    assert_eq!(record["ranges"], serde_json::json!([[1, 1], [3, 3]]));
    assert!(
        record["policy_versions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(digest))
    );
    log.items.push(Item::Entry(prune));
    log.checkpoint();
    log.replace(&pruned);
    let report = verify(&log.items, &log.genesis_key, None).unwrap();
    assert_eq!(report.pruned_entries, 2);
    assert_eq!(verify_export(&log).unwrap().pruned_entries, 2);

    // A kind that is never pruned (here the genesis) cannot be passed off as pruned, even when
    // a prune's range covers it.
    let mut forged = log.items.clone();
    if let Item::Entry(genesis) = &mut forged[0] {
        *genesis = genesis.pruned();
    }
    let err = verify(&forged, &log.genesis_key, None).unwrap_err();
    assert_eq!(err.failure, Failure::BadRecord, "{err}");
    assert!(
        err.to_string().contains("never pruned") || err.to_string().contains("ever pruned"),
        "{err}"
    );
}

#[test]
fn an_entry_under_retention_or_without_one_refuses_the_prune() {
    let mut log = sample(SigningMode::Checkpoint);
    let size = log.sealer.state().size;
    // Entry 6 is kept a year.
    let refused = log.sealer.seal_prune(&log.entries(1, 6), T0 + 60 * SECOND);
    let Err(SealError::Refused(why)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(why.contains("entry 6 is under retention until"), "{why}");
    assert_eq!(log.sealer.state().size, size, "nothing was sealed");
    // Ten seconds have not passed for entry 1.
    let refused = log.sealer.seal_prune(&log.entries(1, 1), T0 + 5 * SECOND);
    assert!(matches!(refused, Err(SealError::Refused(_))), "{refused:?}");

    let mut forever = Log::new(SigningMode::Checkpoint);
    forever.decide(1, T0 + 1, None);
    let refused = forever
        .sealer
        .seal_prune(&forever.entries(1, 1), u64::MAX / 2);
    let Err(SealError::Refused(why)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(why.contains("no retention rule"), "{why}");
}

#[test]
fn payloads_removed_without_a_prune_entry_are_tampering() {
    let mut log = sample(SigningMode::Checkpoint);
    let pruned = log.entries(2, 2)[0].pruned();
    log.replace(&[pruned]);
    let error = log.first_failure();
    assert_eq!(error.failure, Failure::UnauthorizedPrune);
    assert_eq!(error.location, Location::Entry(2));
    assert!(error.detail.contains("tampered"), "{}", error.detail);
    assert_eq!(
        verify_export(&log).unwrap_err().failure,
        Failure::UnauthorizedPrune
    );
}

#[test]
fn an_entry_outside_the_pruned_ranges_cannot_pass_as_pruned() {
    let mut log = sample(SigningMode::Checkpoint);
    log.prune_expired();
    // The policy change at 3 lies inside the examined range but was not pruned: disguised as
    // a pruned decision (its kind is no longer bound by a hash), it is still caught.
    let mut disguised = log.entries(3, 3)[0].pruned();
    disguised.kind = EntryKind::Decision;
    log.replace(&[disguised]);
    let error = log.first_failure();
    assert_eq!(
        (error.failure, error.location),
        (Failure::UnauthorizedPrune, Location::Entry(3))
    );
    // Undisguised, a pruned policy change is refused at once.
    let mut log = sample(SigningMode::Checkpoint);
    let change = log.entries(3, 3)[0].pruned();
    log.replace(&[change]);
    let error = log.first_failure();
    assert_eq!(
        (error.failure, error.location),
        (Failure::BadRecord, Location::Entry(3))
    );
}

#[test]
fn a_pruned_entry_with_another_hash_breaks_the_tree() {
    let mut log = sample(SigningMode::Checkpoint);
    log.prune_expired();
    let mut forged = log.entries(1, 1)[0].clone();
    forged.hash.0[0] ^= 1;
    log.replace(&[forged]);
    let error = log.first_failure();
    // Entry 2's prev still names the true hash.
    assert_eq!(
        (error.failure, error.location),
        (Failure::BrokenLink, Location::Entry(2))
    );

    // Inside a run of pruned entries no link is left to break: the checkpoint's root is.
    let mut log = sample(SigningMode::Checkpoint);
    log.prune_expired();
    let mut first = log.entries(1, 1)[0].clone();
    let mut second = log.entries(2, 2)[0].clone();
    first.hash.0[0] ^= 1;
    second.prev = first.hash;
    log.replace(&[first, second]);
    let error = log.first_failure();
    assert_eq!(error.failure, Failure::CheckpointMismatch);
}

#[test]
fn a_prune_entry_dated_before_the_retention_passed_is_refused() {
    let mut log = sample(SigningMode::Checkpoint);
    let (mut prune, _) = log
        .sealer
        .seal_prune(&log.entries(1, 2), T0 + 60 * SECOND)
        .unwrap();
    // The same record, signed by the log's key but dated before entries 1 and 2 expired.
    prune.timestamp_ns = T0 + 7;
    prune.hash = prune.compute_hash();
    prune.signature = Some(
        key("docket-test", "prune")
            .sign(&docket_ledger::entry::entry_signature_message(&prune.hash)),
    );
    log.items.push(Item::Entry(prune));
    let error = log.first_failure();
    assert_eq!(
        (error.failure, error.location),
        (Failure::BadRecord, Location::Entry(7))
    );
    assert!(error.detail.contains("under retention"), "{}", error.detail);
}

/// One clock reading ten years ahead stamps a decision in 2036 (timestamps never go back). A
/// prune by the right clock afterwards must not judge retention by that stamp, or it would
/// remove payloads still under retention.
#[test]
fn a_prune_is_refused_when_the_log_is_stamped_later_than_its_clock() {
    let year = 365 * 24 * 3600 * SECOND;
    let mut log = Log::new(SigningMode::Checkpoint);
    log.decide(1, T0 + SECOND, Some(90 * 24 * 3600 * SECOND));
    log.decide(2, T0 + 10 * year, Some(SECOND)); // the one bad reading
    log.decide(3, T0 + 2 * SECOND, Some(SECOND)); // stamped 10 years ahead too
    log.checkpoint();
    let size = log.sealer.state().size;
    let refused = log.sealer.seal_prune(&log.entries(1, 3), T0 + 200 * SECOND);
    let Err(SealError::Refused(why)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(why.contains("later than the clock's"), "{why}");
    assert_eq!(log.sealer.state().size, size, "nothing was sealed");
}
