//! The crash harness: writers under load are killed with SIGKILL at seeded random points,
//! restarted, and checked every time. No acknowledged decision may be lost or sealed twice, and
//! the log must verify (the server re-verifies it on every start, `docket verify` at the end).
//!
//! The test command runs a reduced, seeded size; `just crash` runs the full one:
//! `DOCKET_CRASH_KILLS=100 cargo test --release -p docket --test cli crash:: -- --nocapture`.

use crate::common::{Server, all_entries, scratch, verify_dir};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn kills(default: usize) -> usize {
    std::env::var("DOCKET_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_server_killed_at_random_points_under_load_loses_and_duplicates_nothing() {
    let rounds = kills(8);
    let dir = scratch("crash-serve");
    let mut rng = StdRng::seed_from_u64(0xD0C7E7);
    // decision_id → the seq the server acknowledged it at.
    let acknowledged = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let c = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for round in 0..rounds {
        // Starting re-verifies the whole log through the component; a damaged log would refuse.
        let server = Server::start(&dir, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let (url, stop, acknowledged) = (
                    server.url("/v1/data/rbac/allow"),
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                );
                std::thread::spawn(move || {
                    let c = Client::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let user = ["alice", "bob", "carol"][(i % 3) as usize];
                        let input = json!({"user": user,
                            "action": "read", "resource": {"type": "document", "id": format!("r{round}-{t}-{i}")}});
                        let Ok(r) = c.post(&url).json(&json!({ "input": input })).send() else {
                            return;
                        };
                        if r.status().as_u16() != 200 {
                            return;
                        }
                        let seq: u64 = r.headers()["x-docket-seq"].to_str().unwrap().parse().unwrap();
                        let Ok(body) = r.json::<Value>() else { return };
                        let id = body["decision_id"].as_str().unwrap().to_string();
                        let previous = acknowledged.lock().unwrap().insert(id.clone(), seq);
                        assert!(previous.is_none(), "decision id {id} acknowledged twice");
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
    }

    // After the last kill: every acknowledged decision is in the log exactly once, at the seq
    // it was acknowledged with, and nothing else claims its id.
    let server = Server::start(&dir, &[]);
    let entries = all_entries(&c, &server);
    let mut seen = HashMap::<String, u64>::new();
    for e in &entries {
        if e["kind"] == "decision" {
            let id = e["decision_id"].as_str().unwrap().to_string();
            assert!(
                seen.insert(id.clone(), e["seq"].as_u64().unwrap())
                    .is_none(),
                "decision id {id} sealed twice"
            );
        }
    }
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() >= rounds * 10,
        "too little load: {} acknowledged decisions in {rounds} rounds",
        acknowledged.len()
    );
    for (id, seq) in acknowledged.iter() {
        assert_eq!(
            seen.get(id),
            Some(seq),
            "acknowledged decision {id} (seq {seq}) is missing or moved"
        );
    }
    println!(
        "crash harness (server): {rounds} SIGKILLs under load, {} acknowledged decisions all present once, {} entries, {} decisions sealed but never acknowledged",
        acknowledged.len(),
        entries.len(),
        seen.len() - acknowledged.len()
    );
    assert!(server.stop().success());
    verify_dir(&dir);
}

#[test]
fn the_cli_writer_killed_at_random_points_loses_nothing_it_printed() {
    let rounds = kills(8).div_ceil(2);
    let dir = scratch("crash-cli");
    let key_dir = dir.join("keys");
    let docket = env!("CARGO_BIN_EXE_docket");
    let cache = std::env::temp_dir().join("docket-test-component-cache");
    let out = std::process::Command::new(docket)
        .args(["keygen", "--name", "docket.crash", "--out"])
        .arg(&key_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let policy = crate::common::repo().join("examples/policies/rbac.rego");
    let data = crate::common::repo().join("examples/policies/rbac.json");
    let mut rng = StdRng::seed_from_u64(0xC11);
    let mut printed = Vec::<String>::new();
    for _ in 0..rounds {
        // A stream of evals; one of them is killed mid-way at a random moment.
        let victim_after = rng.random_range(0..6);
        let kill_delay = Duration::from_millis(rng.random_range(0..80));
        for n in 0..=victim_after {
            let mut child = std::process::Command::new(docket)
                .args([
                    "eval",
                    "--path",
                    "rbac/allow",
                    "--policy",
                    &policy.display().to_string(),
                    "--data",
                    &data.display().to_string(),
                ])
                .arg("--dir")
                .arg(dir.join("log"))
                .arg("--key")
                .arg(key_dir.join("docket.key"))
                .env("DOCKET_CACHE_DIR", &cache)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(br#"{"user":"alice","action":"read","resource":{"type":"document"}}"#)
                .unwrap();
            if n == victim_after {
                std::thread::sleep(kill_delay);
                let _ = child.kill();
            }
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
                printed.push(v["decision_id"].as_str().unwrap().to_string());
            }
        }
    }
    // Everything a run printed is in the log, and the log verifies.
    let export = dir.join("log.jsonl");
    let status = std::process::Command::new(docket)
        .args(["log", "export"])
        .arg(dir.join("log"))
        .arg("-o")
        .arg(&export)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&export).unwrap();
    for id in &printed {
        assert!(
            text.contains(id.as_str()),
            "printed decision {id} is not in the log"
        );
    }
    let verify = std::process::Command::new(docket)
        .arg("verify")
        .arg(dir.join("log"))
        .arg("--pub")
        .arg(key_dir.join("docket.pub"))
        .env("DOCKET_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    println!(
        "crash harness (cli): {rounds} SIGKILLs, {} printed decisions all in the log; {}",
        printed.len(),
        String::from_utf8_lossy(&verify.stdout).trim()
    );
}
