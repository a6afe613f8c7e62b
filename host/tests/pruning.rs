//! `docket log prune` end to end, through the real component, real segment files and the CLI:
//! expired segments lose their decision payloads and keep their hashes, the pruned log verifies
//! with "pruned under retention policy version X", an entry still under retention refuses the
//! prune and leaves every byte as it was, and an interrupted prune is completed.

use docket_runtime::log::{AuditLog, write_new_key};
use docket_runtime::{EntryKind, Runtime, SigningMode};
use docket_server::examples::{RBAC, Requests};
use docket_store::{self as store, Frame};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Decisions for `rbac/allow` are kept one second, unless the input asks to be kept a year.
const RULES: &str = r#"package system.log

import rego.v1

default retention := "1s"

retention := "8760h" if input.input.keep
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docket-prune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime() -> Runtime {
    Runtime::new(Some(
        &std::env::temp_dir().join("docket-test-component-cache"),
    ))
    .unwrap()
}

fn docket(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(args)
        .arg(dir.join("log"))
        .arg("--key")
        .arg(dir.join("k.key"))
        .output()
        .unwrap()
}

fn verify(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .arg("verify")
        .arg(dir.join("log"))
        .arg("--pub")
        .arg(dir.join("k.pub"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every segment's bytes, by name.
fn segments(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    store::segment_paths(&dir.join("log"))
        .unwrap()
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A log in small segments: 30 decisions kept a second, committed five at a time, then one
/// kept a year (`keep_seq`), then 30 more kept a second. Returns the users of the first 30 with
/// their entries' seqs, and the seq of the one kept a year.
fn sample_log(dir: &Path) -> (Vec<(String, u64, String)>, u64) {
    let runtime = runtime();
    let key = write_new_key(dir, "k", "docket.test").unwrap();
    let mut log = AuditLog::create(
        &dir.join("log"),
        &runtime,
        &key,
        "docket.test/prune",
        "i1",
        SigningMode::Checkpoint,
    )
    .unwrap();
    log.set_segment_limit(6 * 1024);
    log.instance().add_policy(RBAC.id, RBAC.source).unwrap();
    log.instance().add_data(RBAC.data).unwrap();
    log.instance().add_policy("system-log.rego", RULES).unwrap();
    let version = log.instance().policy_version().unwrap();
    log.record(
        EntryKind::PolicyChange,
        &serde_json::json!({"policy_version": version.digest}).to_string(),
    )
    .unwrap();
    let mut requests = Requests::new(11);
    let mut users = Vec::new();
    let mut decide = |log: &mut AuditLog, keep: bool, n: u64| {
        let mut input: serde_json::Value = serde_json::from_str(&requests.rbac()).unwrap();
        let user = format!("pruned-user-{n:04}");
        input["user"] = user.clone().into();
        input["keep"] = keep.into();
        let entry = log
            .decide(RBAC.path, Some(&input.to_string()))
            .unwrap()
            .entry
            .unwrap();
        (user, entry.seq, entry.decision_id)
    };
    for n in 0..30 {
        users.push(decide(&mut log, false, n));
        if n % 5 == 4 {
            log.commit().unwrap();
        }
    }
    let (_, keep_seq, _) = decide(&mut log, true, 30);
    log.commit().unwrap();
    for n in 31..61 {
        decide(&mut log, false, n);
        if n % 5 == 4 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    (users, keep_seq)
}

/// Waits until every decision kept a second has expired: until the wall clock is past the
/// latest `retain_until` among them, read from the log itself (the machine's speed decides
/// when they were sealed, so no fixed wait is right).
fn wait_for_expiry(dir: &Path) {
    let (frames, _) = store::read_frames(&dir.join("log")).unwrap();
    let deadline = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Entry(bytes) => docket_ledger::Entry::decode(bytes).ok(),
            Frame::Checkpoint(_) => None,
        })
        .filter_map(|entry| {
            let record: serde_json::Value = serde_json::from_slice(&entry.record).ok()?;
            (record["input"]["keep"] == false).then_some(entry.timestamp_ns + 1_000_000_000)
        })
        .max()
        .expect("decisions kept a second");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    while now() <= deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn expired_segments_are_pruned_the_log_verifies_and_retention_is_respected() {
    let dir = scratch("e2e");
    let (users, keep_seq) = sample_log(&dir);
    let before = segments(&dir);
    assert!(
        before.len() >= 4,
        "small segments: {} of them",
        before.len()
    );
    for (user, _, _) in &users {
        assert!(before.iter().any(|(_, b)| contains(b, user.as_bytes())));
    }
    // The segment holding the year-long entry: from its first seq (its name) to the next's.
    let firsts: Vec<u64> = before
        .iter()
        .map(|(p, _)| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    let held = firsts.iter().rposition(|&f| f <= keep_seq).unwrap();
    let held = firsts[held]..firsts[held + 1];
    wait_for_expiry(&dir);

    // Through the year-long entry: refused, nothing changed.
    let refused = docket(&["log", "prune", "--through", &keep_seq.to_string()], &dir);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let why = text(&refused.stderr);
    assert!(
        why.contains(&format!("entry {keep_seq} is under retention until"))
            && why.contains("Nothing was changed"),
        "{why}"
    );
    assert_eq!(segments(&dir), before, "a refused prune changes no byte");
    // The segment being written is never pruned.
    let active = docket(&["log", "prune", "--through", "100000"], &dir);
    assert_eq!(active.status.code(), Some(2), "{active:?}");
    assert!(
        text(&active.stderr).contains("there is no entry 100000"),
        "{active:?}"
    );
    assert_eq!(segments(&dir), before);

    // Without --through: every expired sealed segment is pruned, the one holding the
    // year-long entry is kept, with the reason.
    let pruned = docket(&["log", "prune"], &dir);
    assert_eq!(pruned.status.code(), Some(0), "{pruned:?}");
    let out = text(&pruned.stdout);
    assert!(out.contains("pruned 00000000000000000000.seg"), "{out}");
    assert!(
        out.contains(&format!("entry {keep_seq} is under retention until")),
        "{out}"
    );
    let after = segments(&dir);
    for (user, seq, _) in &users {
        let on_disk = after.iter().any(|(_, b)| contains(b, user.as_bytes()));
        if held.contains(seq) {
            assert!(
                on_disk,
                "entry {seq} shares a segment with one under retention: {out}"
            );
        } else {
            assert!(
                !on_disk,
                "{user} (entry {seq}) is still on disk after pruning: {out}"
            );
        }
    }
    assert!(users.iter().any(|(_, seq, _)| !held.contains(seq)));

    // A pruned decision is still found by its id, and proved in the log.
    let (_, pruned_seq, pruned_id) = users
        .iter()
        .find(|(_, seq, _)| !held.contains(seq))
        .unwrap();
    let proved = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["log", "prove"])
        .arg(dir.join("log"))
        .args(["--decision-id", pruned_id])
        .output()
        .unwrap();
    assert_eq!(proved.status.code(), Some(0), "{proved:?}");
    let proof: serde_json::Value = serde_json::from_slice(&proved.stdout).unwrap();
    assert_eq!(proof["seq"], *pruned_seq);
    let (frames, _) = store::read_frames(&dir.join("log")).unwrap();
    let mut policy_changes = 0;
    let mut kept = false;
    for frame in &frames {
        if let Frame::Entry(bytes) = frame {
            let entry = docket_ledger::Entry::decode(bytes).unwrap();
            if entry.kind == docket_ledger::EntryKind::PolicyChange {
                assert!(!entry.is_pruned(), "only decisions are pruned");
                policy_changes += 1;
            }
            if entry.seq == keep_seq {
                kept = !entry.is_pruned();
            }
        }
    }
    assert_eq!(policy_changes, 1);
    assert!(kept, "the entry under retention keeps its payload");

    // The pruned log verifies and says what was pruned, under which policy version.
    let verified = verify(&dir);
    let report = text(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    assert!(report.starts_with("verified:"), "{report}");
    assert!(
        report.contains("payloads removed under retention policy version sha256:"),
        "{report}"
    );

    // Pruning again finds nothing new, and the log still verifies.
    let again = docket(&["log", "prune"], &dir);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert!(text(&again.stdout).contains("already pruned"));
    assert_eq!(verify(&dir).status.code(), Some(0));

    // The export of the pruned log verifies too, with the pruned entries in it.
    let export = dir.join("log.jsonl");
    let exported = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["log", "export"])
        .arg(dir.join("log"))
        .arg("-o")
        .arg(&export)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    assert!(
        std::fs::read_to_string(&export)
            .unwrap()
            .contains("\"pruned\":")
    );
    let verified = Command::new(env!("CARGO_BIN_EXE_docket"))
        .arg("verify")
        .arg(&export)
        .arg("--pub")
        .arg(dir.join("k.pub"))
        .output()
        .unwrap();
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    assert!(text(&verified.stdout).contains("pruned: entries 0..="));
}

#[test]
fn a_payload_removed_without_a_prune_entry_is_reported_as_tampering() {
    let dir = scratch("tamper");
    sample_log(&dir);
    wait_for_expiry(&dir);
    let log_dir = dir.join("log");
    // Rewrite the first segment with entry 3 in its pruned form, as a pruner that skips the
    // signed prune entry would.
    let (frames, _) = store::read_frames(&log_dir).unwrap();
    let Frame::Entry(original) = frames
        .iter()
        .filter(|f| matches!(f, Frame::Entry(_)))
        .nth(3)
        .unwrap()
    else {
        unreachable!()
    };
    let entry = docket_ledger::Entry::decode(original).unwrap();
    assert_eq!(entry.kind, docket_ledger::EntryKind::Decision);
    let pruned = entry.pruned().encode();
    let segment = &store::segment_paths(&log_dir).unwrap()[0];
    let bytes = std::fs::read(segment).unwrap();
    let at = bytes
        .windows(original.len())
        .position(|w| w == original.as_slice())
        .unwrap();
    let mut forged = bytes[..at - 5].to_vec();
    forged.extend_from_slice(&(pruned.len() as u32).to_be_bytes());
    forged.push(1);
    forged.extend_from_slice(&pruned);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[1]);
    crc.update(&pruned);
    forged.extend_from_slice(&crc.finalize().to_be_bytes());
    forged.extend_from_slice(&bytes[at + original.len() + 4..]);
    std::fs::write(segment, forged).unwrap();

    let verified = verify(&dir);
    assert_eq!(verified.status.code(), Some(1), "{verified:?}");
    let out = text(&verified.stdout);
    assert!(
        out.contains("REJECTED: entry 3: unauthorized-prune"),
        "{out}"
    );
}

#[test]
fn a_prune_interrupted_after_its_entry_was_committed_is_completed() {
    let dir = scratch("resume");
    let (users, _) = sample_log(&dir);
    wait_for_expiry(&dir);
    let before = segments(&dir);
    let pruned = docket(&["log", "prune", "--through", "3"], &dir);
    assert_eq!(pruned.status.code(), Some(0), "{pruned:?}");
    // Undo the rewrite of the first segment, as a crash between the commit of the prune entry
    // and the rename of the rewritten segment leaves it.
    let (first, original) = &before[0];
    std::fs::write(first, original).unwrap();
    let verified = verify(&dir);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    assert!(
        text(&verified.stdout).contains("pruned: entries 0..="),
        "a prune entry whose payloads are still there verifies: {verified:?}"
    );
    let again = docket(&["log", "prune", "--through", "3"], &dir);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let first_after = std::fs::read(first).unwrap();
    assert!(!contains(&first_after, users[0].0.as_bytes()), "{again:?}");
    let verified = verify(&dir);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    let entries = text(&verified.stdout)
        .lines()
        .filter(|l| l.starts_with("pruned: "))
        .count();
    assert_eq!(entries, 1, "one prune entry, completed: {verified:?}");
}

#[test]
fn ingested_events_are_pruned_by_their_own_retention_and_opa_uploads_are_kept() {
    let dir = scratch("ingested");
    let runtime = runtime();
    let key = write_new_key(&dir, "k", "docket.test").unwrap();
    let mut log = AuditLog::create(
        &dir.join("log"),
        &runtime,
        &key,
        "docket.test/prune-ingested",
        "i1",
        SigningMode::Checkpoint,
    )
    .unwrap();
    log.set_segment_limit(4 * 1024);
    // Events as the Envoy filter sends them (a retention already past), and as OPA uploads
    // them (none), alternating, in commits of four, over several segments.
    let digest = format!("sha256:{}", "cd".repeat(32));
    for n in 0..40u64 {
        let event = if n % 2 == 0 {
            serde_json::json!({
                "decision_id": format!("envoy-{n:04}"),
                "path": "envoy/authz/decision",
                "input": {"secret": format!("filter-payload-{n:04}")},
                "retain_until": "2000-01-01T00:00:00.000000000Z",
                "policy_version": {"digest": digest},
            })
        } else {
            serde_json::json!({
                "decision_id": format!("opa-{n:04}"),
                "path": "opa/allow",
                "input": {"secret": format!("opa-payload-{n:04}")},
            })
        };
        log.record(EntryKind::Ingested, &event.to_string()).unwrap();
        if n % 4 == 3 {
            log.commit().unwrap();
        }
    }
    drop(log);
    let before = segments(&dir);
    assert!(before.len() >= 3, "small segments: {}", before.len());

    let pruned = docket(&["log", "prune"], &dir);
    assert_eq!(pruned.status.code(), Some(0), "{pruned:?}");
    let after = segments(&dir);
    let all: Vec<u8> = after.iter().flat_map(|(_, b)| b.clone()).collect();
    // Every sealed segment lost its filter payloads; the active one keeps them until sealed.
    let active = &after.last().unwrap().1;
    let mut removed = 0;
    for n in (0..40u64).step_by(2) {
        let payload = format!("filter-payload-{n:04}");
        if !contains(&all, payload.as_bytes()) {
            removed += 1;
        } else {
            assert!(
                contains(active, payload.as_bytes()),
                "{payload} kept in a sealed segment: {}",
                text(&pruned.stdout)
            );
        }
    }
    assert!(removed >= 5, "{removed} filter payloads pruned");
    for n in (1..40u64).step_by(2) {
        let payload = format!("opa-payload-{n:04}");
        assert!(
            contains(&all, payload.as_bytes()),
            "{payload} (no retention) was pruned"
        );
    }
    let verified = verify(&dir);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    let report = text(&verified.stdout);
    assert!(
        report.contains(&format!("removed under retention policy version {digest}")),
        "{report}"
    );
}
