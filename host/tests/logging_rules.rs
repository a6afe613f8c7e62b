//! Logging rules end to end, through the real component and real files: the example
//! `system.log` rules mask the request's address and drop health checks. A masked value never
//! reaches any file; the log verifies; `docket log reveal` proves the value with its salt and
//! refuses a wrong one; dropped decisions are counted in signed tally entries.

use docket_runtime::log::{AuditLog, verify_frames, write_new_key};
use docket_runtime::{Runtime, SigningMode};
use docket_server::examples::{DEFAULTS, HEALTH, Requests};
use docket_store::salts::SaltFile;
use docket_store::{self as store, Frame};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docket-rules-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn masked_values_stay_off_disk_prove_out_with_their_salt_and_drops_are_tallied() {
    let dir = scratch("e2e");
    let runtime = Runtime::new(Some(
        &std::env::temp_dir().join("docket-test-component-cache"),
    ))
    .unwrap();
    let key = write_new_key(&dir, "k", "docket.test").unwrap();
    let log_dir = dir.join("log");
    let salt_path = dir.join("mask-salts.jsonl");
    let mut log = AuditLog::create(
        &log_dir,
        &runtime,
        &key,
        "docket.test/rules",
        "i1",
        SigningMode::Checkpoint,
    )
    .unwrap();
    log.keep_salts_in(SaltFile::open(&salt_path).unwrap());
    for p in DEFAULTS {
        log.instance().add_policy(p.id, p.source).unwrap();
        log.instance().add_data(p.data).unwrap();
    }

    let mut requests = Requests::new(8);
    let mut addresses = Vec::new();
    let mut masked_entries = Vec::new();
    let mut dropped = 0u64;
    for i in 0..200 {
        if i % 7 == 0 {
            let sealed = log.decide(HEALTH.path, None).unwrap();
            assert!(sealed.entry.is_none(), "health checks are dropped");
            assert_eq!(sealed.result.as_deref(), Some("true"), "and still answered");
            dropped += 1;
            continue;
        }
        let input = requests.abac();
        let ip = serde_json::from_str::<serde_json::Value>(&input).unwrap()["context"]["ip"]
            .as_str()
            .unwrap()
            .to_string();
        let sealed = log.decide("abac/allow", Some(&input)).unwrap();
        masked_entries.push((sealed.entry.unwrap().seq, ip.clone()));
        addresses.push(ip);
        if i % 20 == 19 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    drop(log);

    // No address is in any file: the log's segments, index, checkpoints, or the salt file.
    let mut all_files = files(&log_dir);
    all_files.push(salt_path.clone());
    for file in &all_files {
        let bytes = std::fs::read(file).unwrap();
        for ip in &addresses {
            assert!(
                !contains(&bytes, ip.as_bytes()),
                "{ip} found in {}",
                file.display()
            );
        }
    }

    // The log verifies, and its tally entries count every dropped decision.
    let (frames, _) = store::read_frames(&log_dir).unwrap();
    let mut instance = runtime.instantiate().unwrap();
    let report = verify_frames(&mut instance, key.public(), &frames, None, |_| {}).unwrap();
    let (mut tallied, mut decisions) = (0, 0);
    for frame in &frames {
        if let Frame::Entry(bytes) = frame {
            let entry = docket_ledger::Entry::decode(bytes).unwrap();
            if entry.kind == docket_ledger::EntryKind::Decision {
                decisions += 1;
                let record: serde_json::Value = serde_json::from_slice(&entry.record).unwrap();
                assert_eq!(record["erased"][0], "/input/context/ip");
                assert!(record["input"]["context"].get("ip").is_none());
            }
            if entry.kind == docket_ledger::EntryKind::Tally {
                let record: serde_json::Value = serde_json::from_slice(&entry.record).unwrap();
                assert_eq!(record["tally"], "dropped");
                assert_eq!(record["paths"]["health/live"], record["count"]);
                tallied += record["count"].as_u64().unwrap();
            }
        }
    }
    assert_eq!(tallied, dropped);
    assert_eq!(decisions, masked_entries.len());
    assert!(report.entries > decisions as u64);

    // Revealing: the right address with its salt proves out; a wrong one, or a wrong salt, not.
    let (seq, ip) = &masked_entries[3];
    let reveal = |value: &str, salt: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_docket"))
            .args(["log", "reveal"])
            .arg(&log_dir)
            .arg("--pub")
            .arg(dir.join("k.pub"))
            .args([
                "--seq",
                &seq.to_string(),
                "--path",
                "/input/context/ip",
                "--value",
                value,
            ])
            .args(salt)
            .output()
            .unwrap()
    };
    let salts = ["--salts", salt_path.to_str().unwrap()];
    let right = reveal(&format!("\"{ip}\""), &salts);
    assert_eq!(right.status.code(), Some(0), "{right:?}");
    assert!(String::from_utf8_lossy(&right.stdout).starts_with("proved"));
    let wrong = reveal("\"10.0.0.1\"", &salts);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("not proved"));
    let zero_salt = ["--salt", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="];
    let wrong_salt = reveal(&format!("\"{ip}\""), &zero_salt);
    assert_eq!(wrong_salt.status.code(), Some(1), "{wrong_salt:?}");
    // The address without its JSON quotes is a mistake in the command (exit 2, saying so),
    // not a wrong value.
    let unquoted = reveal(ip, &salts);
    assert_eq!(unquoted.status.code(), Some(2), "{unquoted:?}");
    assert!(
        String::from_utf8_lossy(&unquoted.stderr).contains("is not JSON text"),
        "{unquoted:?}"
    );
}
