//! The audit log end to end, through the real component and real files: eval → seal → persist
//! → verify; reopen and continue; crash recovery; tamper detection; a single writer.

use docket_runtime::log::{AuditLog, read_public_key, verify_frames, write_new_key};
use docket_runtime::{Runtime, SigningMode};
use docket_server::examples::{ALL, Requests};
use docket_store::{self as store, Frame};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(Some(
            &std::env::temp_dir().join("docket-test-component-cache"),
        ))
        .unwrap()
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docket-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_examples(log: &mut AuditLog) {
    for p in ALL {
        log.instance().add_policy(p.id, p.source).unwrap();
        log.instance().add_data(p.data).unwrap();
    }
}

/// Creates a log with `n` decisions committed in batches of 10; returns the acknowledged ids.
fn seed_log(dir: &Path, n: usize) -> (docket_ledger::SecretKey, Vec<String>) {
    let key = write_new_key(dir, "k", "docket.test").unwrap();
    let mut log = AuditLog::create(
        &dir.join("log"),
        runtime(),
        &key,
        "docket.test/e2e",
        "i1",
        SigningMode::Checkpoint,
    )
    .unwrap();
    load_examples(&mut log);
    let mut ids = Vec::new();
    let mut requests = Requests::new(3);
    for i in 0..n {
        let (path, input) = requests.next_request();
        ids.push(
            log.decide(path, Some(&input))
                .unwrap()
                .entry
                .unwrap()
                .decision_id,
        );
        if i % 10 == 9 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    (key, ids)
}

fn decision_ids(dir: &Path) -> Vec<String> {
    let (frames, _) = store::read_frames(dir).unwrap();
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Entry(b) => Some(docket_ledger::Entry::decode(b).unwrap()),
            _ => None,
        })
        .filter(|e| e.kind == docket_ledger::EntryKind::Decision)
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&e.record).unwrap()["decision_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn docket(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(args)
        .env(
            "DOCKET_CACHE_DIR",
            std::env::temp_dir().join("docket-test-component-cache"),
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn decisions_are_sealed_persisted_and_verify_then_the_chain_continues_after_reopening() {
    let dir = scratch("reopen");
    let (key, mut ids) = seed_log(&dir, 35);
    let log_dir = dir.join("log");
    let (mut log, recovery, report) =
        AuditLog::open(&log_dir, runtime(), key.public(), &key).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(report.entries, 36, "genesis + 35 decisions");
    load_examples(&mut log);
    let mut requests = Requests::new(4);
    for _ in 0..5 {
        let (path, input) = requests.next_request();
        let sealed = log.decide(path, Some(&input)).unwrap();
        ids.push(sealed.entry.unwrap().decision_id);
    }
    log.commit().unwrap();
    drop(log);
    assert_eq!(
        decision_ids(&log_dir),
        ids,
        "every acknowledged decision is in the log, in order"
    );
    let (code, out) = docket(&[
        "verify",
        log_dir.to_str().unwrap(),
        "--pub",
        dir.join("k.pub").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: 41 entries (40 decisions)"), "{out}");
    // The export verifies on its own too.
    let export = dir.join("log.jsonl");
    let (code, out) = docket(&[
        "log",
        "export",
        log_dir.to_str().unwrap(),
        "-o",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = docket(&[
        "verify",
        export.to_str().unwrap(),
        "--pub",
        dir.join("k.pub").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    // An inclusion proof, by decision id, that checks out against the signed checkpoint.
    let (code, out) = docket(&[
        "log",
        "prove",
        log_dir.to_str().unwrap(),
        "--decision-id",
        &ids[17],
    ]);
    assert_eq!(code, 0, "{out}");
    let proof: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(proof["seq"], 18, "genesis is entry 0");
    let hash = |v: &serde_json::Value| docket_ledger::Hash::from_hex(v.as_str().unwrap()).unwrap();
    let path: Vec<_> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    let signed =
        docket_ledger::SignedCheckpoint::parse(proof["checkpoint"].as_str().unwrap()).unwrap();
    assert!(signed.is_signed_by(&key.public().clone()));
    docket_ledger::merkle::verify_inclusion(
        &hash(&proof["entry_hash"]),
        18,
        signed.checkpoint.size,
        &path,
        &signed.checkpoint.root,
    )
    .unwrap();

    // The same proof, checked when it is made (--pub) and offline by `docket log check-proof`;
    // an altered proof, another key and a proof for another entry are rejected.
    let public = dir.join("k.pub");
    let (code, out) = docket(&[
        "log",
        "prove",
        log_dir.to_str().unwrap(),
        "--decision-id",
        &ids[17],
        "--pub",
        public.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let proved: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(proved["signed_by"], key.public().name());
    let check = |document: &serde_json::Value, key_file: &std::path::Path| {
        let file = dir.join("proof.json");
        std::fs::write(&file, document.to_string()).unwrap();
        docket(&[
            "log",
            "check-proof",
            file.to_str().unwrap(),
            "--pub",
            key_file.to_str().unwrap(),
        ])
    };
    let (code, out) = check(&proof, &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("proven: entry 18 "), "{out}");
    let mut altered = proof.clone();
    altered["proof"][0] = docket_ledger::Hash([1; 32]).to_hex().into();
    let (code, out) = check(&altered, &public);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REJECTED: the inclusion proof does not lead"),
        "{out}"
    );
    let mut moved = proof.clone();
    moved["seq"] = 17.into();
    assert_eq!(check(&moved, &public).0, 1);
    let other = dir.join("other");
    let (code, out) = docket(&["keygen", "--out", other.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let other_pub = std::fs::read_dir(&other)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pub"))
        .unwrap();
    let (code, out) = check(&proof, &other_pub);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no valid signature"), "{out}");
    let (code, out) = check(&serde_json::json!({"seq": 1}), &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be read"), "{out}");
}

#[test]
fn a_torn_last_frame_and_an_unfinished_commit_are_cut_and_nothing_acknowledged_is_lost() {
    let dir = scratch("torn");
    let (key, ids) = seed_log(&dir, 20);
    let log_dir = dir.join("log");
    let segment = store::segment_paths(&log_dir).unwrap().pop().unwrap();
    // A crash mid-commit: an entry frame written whole, then half of the next one.
    let (frames, _) = store::read_frames(&log_dir).unwrap();
    let Frame::Entry(last_entry) = frames
        .iter()
        .rev()
        .find(|f| matches!(f, Frame::Entry(_)))
        .unwrap()
    else {
        unreachable!()
    };
    let mut tail = Vec::new();
    tail.extend_from_slice(&(last_entry.len() as u32).to_be_bytes());
    tail.push(store::FRAME_ENTRY);
    tail.extend_from_slice(last_entry);
    tail.extend_from_slice(&crc32(&[&[store::FRAME_ENTRY], last_entry]).to_be_bytes());
    tail.extend_from_slice(&(last_entry.len() as u32).to_be_bytes());
    tail.push(store::FRAME_ENTRY);
    tail.extend_from_slice(&last_entry[..40]);
    let before = std::fs::metadata(&segment).unwrap().len();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&tail);
    std::fs::write(&segment, bytes).unwrap();

    let (code, out) = docket(&[
        "verify",
        log_dir.to_str().unwrap(),
        "--pub",
        dir.join("k.pub").to_str().unwrap(),
    ]);
    assert_eq!(
        code, 1,
        "an unsealed entry after the last checkpoint is reported by a read-only verify: {out}"
    );

    let (log, recovery, report) = AuditLog::open(&log_dir, runtime(), key.public(), &key).unwrap();
    assert_eq!(recovery.unsealed_entries_dropped, 1);
    assert_eq!(recovery.truncated_bytes, tail.len() as u64);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), before);
    assert_eq!(report.entries, 21);
    drop(log);
    assert_eq!(decision_ids(&log_dir), ids);
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[test]
fn a_tampered_log_is_rejected_naming_the_entry_and_the_writer_refuses_to_open_it() {
    let dir = scratch("tamper");
    let (key, _) = seed_log(&dir, 30);
    let log_dir = dir.join("log");
    let segment = store::segment_paths(&log_dir).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Find entry 12's frame, flip a record byte and fix the CRC (a deliberate, careful tamper).
    let (mut at, mut seen) = (0usize, 0u64);
    loop {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if bytes[at + 4] == store::FRAME_ENTRY {
            if seen == 12 {
                bytes[at + 5 + docket_ledger::entry::BODY_HEADER_LEN + 3] ^= 0x04;
                let crc = crc32(&[&bytes[at + 4..at + 5 + len]]);
                bytes[at + 5 + len..at + 9 + len].copy_from_slice(&crc.to_be_bytes());
                break;
            }
            seen += 1;
        }
        at += 9 + len;
    }
    std::fs::write(&segment, &bytes).unwrap();
    let (code, out) = docket(&[
        "verify",
        log_dir.to_str().unwrap(),
        "--pub",
        dir.join("k.pub").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 12: bad-hash"), "{out}");
    let err = AuditLog::open(&log_dir, runtime(), key.public(), &key)
        .err()
        .expect("a tampered log is not continued");
    assert!(err.to_string().contains("entry 12"), "{err}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "opening a bad log changes nothing"
    );
}

#[test]
fn a_second_writer_is_refused() {
    let dir = scratch("lock");
    let (key, _) = seed_log(&dir, 3);
    let log_dir = dir.join("log");
    let (_first, _, _) = AuditLog::open(&log_dir, runtime(), key.public(), &key).unwrap();
    let err = AuditLog::open(&log_dir, runtime(), key.public(), &key)
        .err()
        .expect("second writer refused");
    assert!(
        err.to_string().contains("in use by another writer"),
        "{err}"
    );
    // From another process too (the CLI).
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"user":"bob","action":"read","resource":{"type":"document"}}"#,
    )
    .unwrap();
    let policy = crate::common::repo().join("examples/policies/rbac.rego");
    let (code, out) = docket(&[
        "eval",
        "--dir",
        log_dir.to_str().unwrap(),
        "--key",
        dir.join("k.key").to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--path",
        "rbac/allow",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("in use by another writer"), "{out}");
}

#[test]
fn keygen_eval_and_verify_from_the_command_line() {
    let dir = scratch("cli");
    let (code, out) = docket(&[
        "keygen",
        "--out",
        dir.to_str().unwrap(),
        "--name",
        "cli.test",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cli.test+"),
        "the public key is printed: {out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("docket.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let examples = crate::common::repo().join("examples/policies");
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"user":"bob","action":"deploy","resource":{"type":"service"}}"#,
    )
    .unwrap();
    let log_dir = dir.join("log");
    let args = |input: &str| {
        vec![
            "eval".to_string(),
            "--dir".into(),
            log_dir.display().to_string(),
            "--key".into(),
            dir.join("docket.key").display().to_string(),
            "--policy".into(),
            examples.join("rbac.rego").display().to_string(),
            "--data".into(),
            examples.join("rbac.json").display().to_string(),
            "--path".into(),
            "rbac/allow".into(),
            "--input".into(),
            input.to_string(),
        ]
    };
    let run = |a: Vec<String>| docket(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out) = run(args(input.to_str().unwrap()));
    assert_eq!(code, 0, "{out}");
    let decision: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(decision["result"], true);
    // Entry 1 records the policy set the decision (entry 2) was made under.
    assert_eq!(decision["seq"], 2);
    // Bad input: a clear error, and the log stays intact.
    let good = std::fs::read(&input).unwrap();
    std::fs::write(&input, "{not json").unwrap();
    let (code, out) = run(args(input.to_str().unwrap()));
    assert_eq!(code, 2);
    // A sentence, not Rust's Debug output of the error value.
    assert!(out.contains("input: not valid JSON"), "{out}");
    assert!(!out.contains("Input("), "{out}");
    // The same policy set again: no second policy-change entry.
    std::fs::write(&input, good).unwrap();
    let (code, out) = run(args(input.to_str().unwrap()));
    assert_eq!(code, 0, "{out}");
    let decision: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(decision["seq"], 3);
    let public = read_public_key(&dir.join("docket.pub")).unwrap();
    let (frames, torn) = store::read_frames(&log_dir).unwrap();
    assert!(torn.is_none());
    let mut instance = runtime().instantiate().unwrap();
    let report = verify_frames(&mut instance, &public, &frames, None, |_| {}).unwrap();
    assert_eq!(report.entries, 4);
    let Frame::Entry(bytes) = &frames[2] else {
        panic!("entry 1 follows the genesis checkpoint")
    };
    let change = docket_ledger::Entry::decode(bytes).unwrap();
    assert_eq!(change.kind, docket_ledger::EntryKind::PolicyChange);
    let record: serde_json::Value = serde_json::from_slice(&change.record).unwrap();
    assert_eq!(record["op"], "load");
    assert!(
        record["modules"]["rbac.rego"]
            .as_str()
            .unwrap()
            .contains("package rbac")
    );
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("rbac.json")).unwrap())
            .unwrap();
    assert_eq!(record["data"], data);
    // The log is named after the key that started it: its checkpoints' origin is the key's
    // name, and the key's signature line names it too (C2SP tlog-checkpoint).
    let checkpoint = store::latest_checkpoint(&log_dir).unwrap().unwrap();
    assert!(checkpoint.starts_with("cli.test\n"), "{checkpoint}");
    assert!(checkpoint.contains("\n\u{2014} cli.test "), "{checkpoint}");

    // Without --name, each key gets a name of its own, so each log it starts an origin of its own.
    let names: Vec<String> = ["a", "b"]
        .iter()
        .map(|stem| {
            let (code, out) = docket(&["keygen", "--out", dir.to_str().unwrap(), "--stem", stem]);
            assert_eq!(code, 0, "{out}");
            out.lines()
                .next()
                .unwrap()
                .split('+')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(names[0].starts_with("docket.local/"), "{names:?}");
    assert_ne!(names[0], names[1]);
}

#[test]
fn damage_in_the_middle_of_the_last_segment_is_refused_not_cut() {
    let dir = scratch("middle");
    let (key, _) = seed_log(&dir, 20);
    let log_dir = dir.join("log");
    let segment = store::segment_paths(&log_dir).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Corrupt a record byte of an early frame without fixing its CRC: a disk error, not a tear.
    let first_len = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let second = 9 + first_len;
    bytes[second + 5 + docket_ledger::entry::BODY_HEADER_LEN + 2] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let err = AuditLog::open(&log_dir, runtime(), key.public(), &key)
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("the log is damaged"), "{message}");
    assert!(
        message.contains("followed by a complete commit"),
        "{message}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing was cut");
}

#[test]
fn the_signing_key_is_rotated_from_the_command_line() {
    let dir = scratch("rotate");
    let (_, _) = seed_log(&dir, 5);
    let log_dir = dir.join("log");
    let (code, out) = docket(&[
        "keygen",
        "--out",
        dir.to_str().unwrap(),
        "--stem",
        "next",
        "--name",
        "docket.next",
    ]);
    assert_eq!(code, 0, "{out}");
    let path = |name: &str| dir.join(name).display().to_string();
    let (code, out) = docket(&[
        "rotate-key",
        "--dir",
        &path("log"),
        "--key",
        &path("k.key"),
        "--new-key",
        &path("next.key"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("entry 6: the log is now signed by docket.next+"),
        "{out}"
    );
    // The old key can no longer continue the log; the new one can, with the genesis key given.
    let policy = crate::common::repo()
        .join("examples/policies/rbac.rego")
        .display()
        .to_string();
    let input = path("input.json");
    std::fs::write(
        &input,
        r#"{"user":"carol","action":"read","resource":{"type":"document"}}"#,
    )
    .unwrap();
    let eval = |key: &str| {
        docket(&[
            "eval",
            "--dir",
            &path("log"),
            "--key",
            &path(key),
            "--pub",
            &path("k.pub"),
            "--policy",
            &policy,
            "--path",
            "rbac/allow",
            "--input",
            &input,
        ])
    };
    let (code, out) = eval("k.key");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not match the log"), "{out}");
    let (code, out) = eval("next.key");
    assert_eq!(code, 0, "{out}");
    let (code, out) = docket(&["verify", log_dir.to_str().unwrap(), "--pub", &path("k.pub")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        // Seeded 5, the rotation, then eval's policy set and its decision.
        out.contains("verified: 9 entries") && out.contains("docket.next+"),
        "{out}"
    );
}

/// `docket eval` as an OPA user types it: `-d`, `-i`, a `data.` query, `--format`; nothing is
/// written without `--dir`. A query naming nothing loaded (a typo) is refused before anything is
/// sealed, with or without a log.
#[test]
fn eval_answers_as_opa_eval_and_refuses_a_typo_before_sealing_anything() {
    let dir = scratch("opa-eval");
    let examples = crate::common::repo().join("examples/policies");
    let examples = examples.to_str().unwrap();
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"user":"alice","action":"read","resource":{"type":"document","id":"d1"}}"#,
    )
    .unwrap();
    let input = input.to_str().unwrap();

    let (code, out) = docket(&["eval", "-d", examples, "-i", input, "data.rbac.allow"]);
    assert_eq!(code, 0, "{out}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer["result"][0]["expressions"][0]["value"], true,
        "{out}"
    );
    assert_eq!(
        answer["result"][0]["expressions"][0]["text"],
        "data.rbac.allow"
    );
    let (code, out) = docket(&[
        "eval",
        "-d",
        examples,
        "-i",
        input,
        "-f",
        "raw",
        "rbac/allow",
    ]);
    assert_eq!((code, out.trim()), (0, "true"));
    // An existing rule that is undefined for this input: `{}`, as opa eval prints it.
    let (code, out) = docket(&["eval", "-d", examples, "-i", input, "data.abac.denied"]);
    assert_eq!((code, out.trim()), (0, "{}"), "{out}");
    assert!(
        !dir.join("log").exists(),
        "evaluating without --dir writes nothing"
    );

    // A typo is an error, not an undefined decision.
    let (code, out) = docket(&["eval", "-d", examples, "-i", input, "data.rbac.alow"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("data.rbac.alow names no package, rule or data document"),
        "{out}"
    );
    // With a log: nothing is sealed for it, not even the policy load.
    let (code, out) = docket(&["keygen", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let log_dir = dir.join("log");
    let seal = |query: &str| {
        docket(&[
            "eval",
            "-d",
            examples,
            "-i",
            input,
            query,
            "--dir",
            log_dir.to_str().unwrap(),
            "--key",
            dir.join("docket.key").to_str().unwrap(),
        ])
    };
    let (code, out) = seal("data.rbac.allow");
    assert_eq!(code, 0, "{out}");
    let sealed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (sealed["seq"].as_u64(), &sealed["result"]),
        (Some(2), &serde_json::json!(true))
    );
    let before = decision_ids(&log_dir).len();
    let (code, out) = seal("data.rbac.alow");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("names no package, rule or data document"),
        "{out}"
    );
    assert_eq!(
        decision_ids(&log_dir).len(),
        before,
        "the typo sealed nothing"
    );
    let (frames, _) = store::read_frames(&log_dir).unwrap();
    assert_eq!(
        frames
            .iter()
            .filter(|f| matches!(f, Frame::Entry(_)))
            .count(),
        3,
        "genesis, the policy load and the one decision"
    );

    // Numbers as OPA has them, printed with all their digits: an integer beyond 64 bits stays
    // exact in every output format and in the sealed answer, and 0.1 * 3 is 0.3.
    let numbers = dir.join("n.rego");
    std::fs::write(
        &numbers,
        "package n\n\nimport rego.v1\n\nx := [input.big + 1, input.tenth * 3]\n",
    )
    .unwrap();
    let numbers_input = dir.join("n.json");
    std::fs::write(
        &numbers_input,
        r#"{"big": 18446744073709551617, "tenth": 0.1}"#,
    )
    .unwrap();
    let eval_numbers = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "-d",
            numbers.to_str().unwrap(),
            "-i",
            numbers_input.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push("data.n.x");
        docket(&args)
    };
    for format in ["json", "pretty", "raw"] {
        let (code, out) = eval_numbers(&["-f", format]);
        assert_eq!(code, 0, "{out}");
        let compact: String = out.split_whitespace().collect();
        assert!(
            compact.contains("[18446744073709551618,0.3]"),
            "{format}: {out}"
        );
    }
    let (code, out) = eval_numbers(&[
        "--dir",
        log_dir.to_str().unwrap(),
        "--key",
        dir.join("docket.key").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(r#""result":[18446744073709551618,0.3]"#),
        "{out}"
    );

    // print() output goes to standard error, in OPA's form.
    let printing = dir.join("pr.rego");
    std::fs::write(
        &printing,
        "package pr\n\nimport rego.v1\n\nallow if {\n\tprint(\"checking\", input.user)\n\tinput.user == \"alice\"\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args([
            "eval",
            "-d",
            printing.to_str().unwrap(),
            "-i",
            input,
            "-f",
            "raw",
            "data.pr.allow",
        ])
        .env(
            "DOCKET_CACHE_DIR",
            std::env::temp_dir().join("docket-test-component-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "pr.rego:6: checking alice"
    );

    // A policy repository loads as OPA loads it: recursively, each data file at its
    // directory's path, modules named by their path under the directory given (two
    // `policy.rego`s side by side), objects merging key by key.
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("team/roles")).unwrap();
    std::fs::create_dir_all(repo.join("other")).unwrap();
    std::fs::create_dir_all(repo.join("lists/names")).unwrap();
    std::fs::write(repo.join("data.json"), r#"{"top": {"a": 1}}"#).unwrap();
    std::fs::write(repo.join("more.json"), r#"{"top": {"b": 2}}"#).unwrap();
    std::fs::write(repo.join("team/roles/data.json"), r#"{"alice": "admin"}"#).unwrap();
    std::fs::write(repo.join("lists/names/names.json"), r#"["x", "y"]"#).unwrap();
    std::fs::write(repo.join("team/notes.txt"), "not OPA's to load").unwrap();
    std::fs::write(
        repo.join("team/policy.rego"),
        "package team\n\nimport rego.v1\n\nrole := data.team.roles[input.user]\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("other/policy.rego"),
        "package other\n\nimport rego.v1\n\nall := [data.top, data.lists.names]\n",
    )
    .unwrap();
    let eval_repo = |query: &str| {
        docket(&[
            "eval",
            "-d",
            repo.to_str().unwrap(),
            "-i",
            input,
            "-f",
            "raw",
            query,
        ])
    };
    assert_eq!(eval_repo("data.team.role"), (0, "admin\n".to_string()));
    let (code, out) = eval_repo("data.other.all");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([{"a": 1, "b": 2}, ["x", "y"]])
    );
    // The same key set twice is refused, naming where; so is YAML, which docket does not read.
    std::fs::write(
        repo.join("team/clash.json"),
        r#"{"roles": {"alice": "viewer"}}"#,
    )
    .unwrap();
    let (code, out) = eval_repo("data.team.role");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("data at team/roles/alice is already set"),
        "{out}"
    );
    std::fs::remove_file(repo.join("team/clash.json")).unwrap();
    // A number the data tree would round is refused, not changed.
    std::fs::write(
        repo.join("team/ids.json"),
        r#"{"big": 18446744073709551617}"#,
    )
    .unwrap();
    let (code, out) = eval_repo("data.team.role");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("the integer 18446744073709551617 is beyond 64 bits"),
        "{out}"
    );
    std::fs::remove_file(repo.join("team/ids.json")).unwrap();
    std::fs::write(repo.join("team/extra.yaml"), "a: 1\n").unwrap();
    let (code, out) = eval_repo("data.team.role");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not read YAML data files yet"), "{out}");

    // Rego beyond a data reference is said to be out of reach, not misread.
    let (code, out) = docket(&[
        "eval",
        "-d",
        examples,
        "-i",
        input,
        "data.rbac.allow == true",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("data reference"), "{out}");
}

/// The usual mistakes with `docket verify` get a sentence saying what to give it instead.
#[test]
fn verify_says_what_to_give_it_when_given_the_wrong_thing() {
    let dir = scratch("verify-mistakes");
    seed_log(&dir, 3);
    let public = dir.join("k.pub");
    let (code, out) = docket(&[
        "verify",
        dir.to_str().unwrap(),
        "--pub",
        public.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("is not a log directory but holds one: docket verify"),
        "{out}"
    );
    let log = dir.join("log");
    let (code, out) = docket(&[
        "verify",
        log.to_str().unwrap(),
        "--pub",
        dir.join("k.key").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("holds a secret key; a public key is wanted"),
        "{out}"
    );
    let (code, out) = docket(&[
        "verify",
        "http://127.0.0.1:8181",
        "--pub",
        public.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is a URL"), "{out}");
    let (code, out) = docket(&[
        "verify",
        log.to_str().unwrap(),
        "--pub",
        public.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

/// `docket test` classifies each test as OPA v1.20 evaluates it (`tests/rego-test-fixture/`:
/// the engine gave `true` for four tests, undefined for `test_wrong`, 7 for `test_value`, a type
/// error for `test_error`), and exits 1 when one fails, 0 when those run all pass.
#[test]
fn test_runs_rego_tests_as_opa_test_does() {
    let fixture = crate::common::repo().join("tests/rego-test-fixture");
    let fixture = fixture.to_str().unwrap();
    let (code, out) = docket(&["test", fixture]);
    assert_eq!(code, 1, "{out}");
    for line in [
        "data.app_test.test_wrong: FAIL",
        "data.app_test.test_value: FAIL",
        "data.app_test.test_error: ERROR",
        "data.app_test.todo_test_later: SKIPPED",
        "PASS: 4/8",
        "FAIL: 2/8",
        "SKIPPED: 1/8",
        "ERROR: 1/8",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(
        !out.contains("test_alice_allowed"),
        "passes are quiet: {out}"
    );
    assert!(out.contains("its value is 7, not true"), "{out}");

    let (code, out) = docket(&["test", fixture, "-v", "--run", "alice|bob|helper|limit"]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "data.app_test.test_alice_allowed: PASS",
        "data.app_test.test_bob_denied: PASS",
        "data.app_test.test_limit: PASS",
        "data.app_test.test_uses_helper: PASS",
        "PASS: 4/4",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }

    let (code, out) = docket(&["test", fixture, "--run", "("]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--run is not a regular expression"), "{out}");
}

/// `docket check` loads without evaluating, and names every module that does not load.
#[test]
fn check_names_every_module_that_does_not_load() {
    let fixture = crate::common::repo().join("tests/rego-test-fixture");
    let (code, out) = docket(&["check", fixture.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 modules and the data load without errors"),
        "{out}"
    );

    let dir = scratch("check");
    std::fs::write(dir.join("a.rego"), "package a\n\nallow if {\n").unwrap();
    std::fs::write(
        dir.join("b.rego"),
        "package b\n\nimport rego.v1\n\nx := http.send({\"method\": \"get\", \"url\": \"u\"})\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("c.rego"),
        "package c\n\nimport rego.v1\n\nok := true\n",
    )
    .unwrap();
    let (code, out) = docket(&["check", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a.rego:"), "{out}");
    assert!(
        out.contains("b.rego:") && out.contains("http.send"),
        "{out}"
    );
    assert!(!out.contains("c.rego:"), "{out}");
    assert!(out.contains("2 errors: fix them and check again"), "{out}");
}
