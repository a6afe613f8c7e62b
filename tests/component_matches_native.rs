//! The component, run in wasmtime, decides and seals exactly as the native crates do: for the
//! same policies, inputs, clock and key, the same decisions and byte-identical entries and
//! checkpoints. And each side's verifier accepts the other's log.

use docket_ledger::record::SigningMode;
use docket_ledger::{Decision, GenesisParams, SealedDecision, Sealer, SecretKey, Verifier};
use docket_policy::PolicyEngine;
use docket_runtime::{self as runtime, FixedClock, Runtime, Verdict};
use docket_server::examples::{ALL, Requests};
use std::time::Duration;

const NOW_NS: u64 = 1_795_464_000_123_456_789;
const SEED: [u8; 32] = [42; 32];
const NEXT_SEED: [u8; 32] = [43; 32];

fn runtime() -> Runtime {
    let cache = std::env::temp_dir().join("docket-test-component-cache");
    Runtime::new(Some(&cache)).expect("the component compiles")
}

fn to_wit(d: &Decision) -> runtime::Decision {
    runtime::Decision {
        path: d.path.clone(),
        input: d.input.clone(),
        result: d.result.clone(),
        policy_version: runtime::PolicyVersion {
            digest: d.policy_version.digest.clone(),
            revision: d.policy_version.revision.clone(),
        },
        log: runtime::LogRules {
            drop: d.log.drop,
            mask: Vec::new(),
            retention_ns: d.log.retention_ns,
        },
    }
}

#[test]
fn component_and_native_give_identical_decisions_entries_and_checkpoints() {
    for (mode, wit_mode) in [
        (SigningMode::Checkpoint, runtime::SigningMode::Checkpoint),
        (SigningMode::Entry, runtime::SigningMode::Entry),
    ] {
        let rt = runtime();
        let mut wasm = rt
            .instantiate_with_clock(Some(Box::new(FixedClock(Duration::from_nanos(NOW_NS)))))
            .unwrap();
        let mut native = PolicyEngine::new();
        for p in ALL {
            assert_eq!(
                wasm.add_policy(p.id, p.source).unwrap(),
                native.add_policy(p.id, p.source).unwrap()
            );
            wasm.add_data(p.data).unwrap();
            native.add_data(p.data).unwrap();
        }
        wasm.set_revision(Some("v1")).unwrap();
        native.set_revision(Some("v1".into()));
        let version = wasm.policy_version().unwrap();
        assert_eq!(
            (version.digest.as_str(), version.revision.as_deref()),
            (
                native.version().digest.as_str(),
                native.version().revision.as_deref()
            )
        );

        let key = SecretKey::from_seed("docket-test", &SEED).unwrap();
        let params = GenesisParams {
            origin: "docket.test/component".into(),
            instance_id: "instance-1".into(),
            signing: mode,
        };
        let (mut sealer, genesis) = Sealer::genesis(key.clone(), params, NOW_NS).unwrap();
        let wasm_genesis = wasm
            .start_log(
                &SEED,
                "docket-test",
                "docket.test/component",
                "instance-1",
                wit_mode,
            )
            .unwrap();
        assert_eq!(
            wasm_genesis.encoded,
            genesis.encode(),
            "genesis entries differ"
        );

        let mut native_log = vec![genesis.encode()];
        let mut wasm_log = vec![wasm_genesis.encoded.clone()];
        let mut requests = Requests::new(7);
        let (mut allowed, mut denied) = (0, 0);
        for i in 0..300 {
            let (path, input) = requests.next_request();
            let n = native.evaluate(path, Some(&input)).unwrap();
            let w = wasm.evaluate(path, Some(&input)).unwrap();
            assert_eq!(
                (&w.path, &w.input, &w.result),
                (&n.path, &n.input, &n.result),
                "decision {i} on {input}"
            );
            match n.result.as_deref() {
                Some("true") => allowed += 1,
                _ => denied += 1,
            }
            let SealedDecision::Sealed {
                entry,
                decision_id: id,
                ..
            } = sealer
                .seal_decision(&n, NOW_NS, &mut || unreachable!("nothing is masked"))
                .unwrap()
            else {
                panic!("the example policies drop no access decision");
            };
            let sealed = wasm.seal_decision(&to_wit(&n)).unwrap().unwrap();
            assert_eq!(
                sealed.encoded,
                entry.encode(),
                "entry {} differs",
                entry.seq
            );
            assert_eq!(sealed.decision_id.as_deref(), Some(id.as_str()));
            assert_eq!(sealed.hash, entry.hash.0.to_vec());
            native_log.push(entry.encode());
            wasm_log.push(sealed.encoded);
            if i == 150 {
                let next = SecretKey::from_seed("docket-test-next", &NEXT_SEED).unwrap();
                let rotation = sealer.rotate_key(next, NOW_NS).unwrap();
                let wasm_rotation = wasm.rotate_key(&NEXT_SEED, "docket-test-next").unwrap();
                assert_eq!(wasm_rotation.encoded, rotation.encode());
                native_log.push(rotation.encode());
                wasm_log.push(wasm_rotation.encoded);
            }
        }
        assert!(
            allowed > 50 && denied > 50,
            "both outcomes exercised: {allowed} allowed, {denied} denied"
        );
        let (checkpoint, note) = sealer.checkpoint();
        let wasm_checkpoint = wasm.checkpoint().unwrap();
        assert_eq!(wasm_checkpoint.note, note);
        assert_eq!(wasm_checkpoint.root, checkpoint.root.0.to_vec());

        // The component verifies the native log, in runs of entries as the host pushes them...
        let mut verifier = wasm.verifier(&key.public().to_vkey()).unwrap();
        for run in native_log.chunks(64) {
            verifier.push_entries(run).unwrap();
        }
        verifier.push_checkpoint(&note).unwrap();
        let report = verifier.finish().unwrap();
        assert_eq!(report.entries, native_log.len() as u64);
        let summary = docket_ledger::report::Summary::from(&report);
        assert_eq!(summary.count(docket_ledger::EntryKind::Decision), 300);
        assert_eq!(report.keys.len(), 2);

        // ...and the native verifier the component's log, arriving at the same state.
        let mut native_verifier = Verifier::new(key.public().clone());
        for bytes in &wasm_log {
            native_verifier.push_entry_bytes(bytes).unwrap();
        }
        native_verifier
            .push_checkpoint(&wasm_checkpoint.note)
            .unwrap();
        let native_report = native_verifier.finish().unwrap();
        assert_eq!(native_report.root.0.to_vec(), report.root);
        // Both logs hold the same kinds of entries: the component's report, in the one shape
        // every shell prints, says what the native report of the other log says.
        let native_summary = docket_ledger::report::Summary::from(&native_report);
        assert_eq!(
            (
                native_summary.kinds,
                native_summary.checkpoints,
                &native_summary.keys
            ),
            (summary.kinds, summary.checkpoints, &summary.keys)
        );
        assert_eq!(
            native_report.state.head.0.to_vec(),
            wasm.chain_state().unwrap().head
        );
    }
}

#[test]
fn component_rejects_a_tampered_log_naming_the_entry() {
    let rt = runtime();
    let mut wasm = rt.instantiate().unwrap();
    wasm.add_policy(ALL[0].id, ALL[0].source).unwrap();
    wasm.add_data(ALL[0].data).unwrap();
    let seed = [9u8; 32];
    let genesis = wasm
        .start_log(
            &seed,
            "docket-test",
            "docket.test/tamper",
            "i",
            runtime::SigningMode::Checkpoint,
        )
        .unwrap();
    let mut log = vec![genesis.encoded];
    let mut requests = Requests::new(1);
    for _ in 0..20 {
        let d = wasm.evaluate(ALL[0].path, Some(&requests.rbac())).unwrap();
        log.push(wasm.seal_decision(&d).unwrap().unwrap().encoded);
    }
    let vkey = SecretKey::from_seed("docket-test", &seed)
        .unwrap()
        .public()
        .to_vkey();
    // Flip one byte inside entry 7's record.
    let record_byte = docket_ledger::entry::BODY_HEADER_LEN + 5;
    log[7][record_byte] ^= 0x20;
    use docket_ledger::{Failure, Location};
    let mut verifier = wasm.verifier(&vkey).unwrap();
    let mut failure = None;
    for bytes in &log {
        if let Err(e) = verifier.push_entry(bytes).verdict().unwrap() {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("tampering is detected");
    assert!(matches!(failure.location, Location::Entry(7)));
    assert!(matches!(failure.failure, Failure::BadHash));

    // Pushed as one run, the same entry is named, and the verifier stays failed after it.
    let mut verifier = wasm.verifier(&vkey).unwrap();
    let failure = verifier.push_entries(&log).verdict().unwrap().unwrap_err();
    assert!(matches!(failure.location, Location::Entry(7)));
    assert!(matches!(failure.failure, Failure::BadHash));
    let again = verifier
        .push_entries(&log[8..])
        .verdict()
        .unwrap()
        .unwrap_err();
    assert!(matches!(again.location, Location::Entry(7)));
}

#[test]
fn bad_policy_input_and_keys_get_typed_errors_from_the_component() {
    let rt = runtime();
    let mut wasm = rt.instantiate().unwrap();
    let err = wasm
        .add_policy("bad.rego", "package bad\nallow if {")
        .verdict()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, runtime::PolicyError::Parse((ref id, _)) if id == "bad.rego"),
        "{err:?}"
    );
    wasm.add_policy(ALL[0].id, ALL[0].source).unwrap();
    let err = wasm
        .evaluate("rbac/allow", Some("{not json"))
        .verdict()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, runtime::PolicyError::Input(_)), "{err:?}");
    let err = wasm
        .start_log(
            &[1; 32],
            "bad name",
            "o",
            "i",
            runtime::SigningMode::Checkpoint,
        )
        .verdict()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, runtime::SealError::InvalidKey(_)), "{err:?}");
    // A resumed sealer refuses a key that is not the log's key in force.
    wasm.start_log(
        &[1; 32],
        "k",
        "docket.test/x",
        "i",
        runtime::SigningMode::Checkpoint,
    )
    .unwrap();
    let state = wasm.chain_state().unwrap();
    let err = wasm
        .resume_log(&[2; 32], "k", &state)
        .verdict()
        .unwrap()
        .unwrap_err();
    match err {
        runtime::SealError::KeyMismatch(message) => {
            assert!(
                !message.contains(&format!("{:?}", [2u8; 32])),
                "the key never appears in errors"
            );
        }
        other => panic!("expected key-mismatch, got {other:?}"),
    }
}
