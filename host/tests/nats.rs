//! A fleet of `docket serve` nodes keeping their logs in NATS JetStream, on a real 3-server
//! cluster on loopback (nats-server 2.15, `sync_interval: always`): decisions from two nodes
//! under load while NATS servers are killed with SIGKILL, stalled with SIGSTOP, and a docket
//! node is killed and replaced by one with an empty data directory and the same key. At the
//! end every acknowledged decision is in its node's log exactly once, at the seq it was
//! acknowledged with, and each log verifies as read straight from JetStream.
//!
//! The test command runs a seeded, bounded number of faults; `just nats-faults N` runs more
//! (`DOCKET_NATS_FAULTS=N`).

#[path = "../../crates/docket-nats/tests/cluster/mod.rs"]
pub mod cluster;

use crate::common::{Server, all_entries, docket_command, scratch, succeeded};
use cluster::Cluster;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

fn faults(default: usize) -> usize {
    std::env::var("DOCKET_NATS_FAULTS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

/// `docket serve`'s flags for log `log` in stream DOCKET of `cluster`.
fn nats_flags(cluster: &Cluster, log: &str) -> Vec<String> {
    let mut flags = vec!["--nats".to_string(), cluster.url("DOCKET", log)];
    for monitor in cluster.monitors() {
        flags.push("--nats-monitor".into());
        flags.push(monitor);
    }
    flags
}

fn start_node(dir: &Path, flags: &[String]) -> Server {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(dir, &flags)
}

/// A new node's directory holding only what a replacement needs: the log's key and the token.
fn replacement_dir(from: &Path, name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for file in ["docket.key", "docket.pub", "token"] {
        std::fs::copy(from.join("data").join(file), dir.join("data").join(file)).unwrap();
    }
    dir
}

/// What the clients saw: decision id → (log, seq acknowledged).
type Acknowledged = Arc<Mutex<HashMap<String, (String, u64)>>>;

fn clients(
    log: &str,
    url: &Arc<RwLock<String>>,
    stop: &Arc<AtomicBool>,
    acknowledged: &Acknowledged,
    refused: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|t| {
            let (log, url, stop, acknowledged, refused) = (
                log.to_string(),
                Arc::clone(url),
                Arc::clone(stop),
                Arc::clone(acknowledged),
                Arc::clone(refused),
            );
            std::thread::spawn(move || {
                let c = Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let base = url.read().unwrap().clone();
                    let user = ["alice", "bob"][(i % 2) as usize];
                    let input = json!({"user": user, "action": "read",
                        "resource": {"type": "document", "id": format!("{log}-{t}-{i}")}});
                    let answer = c
                        .post(format!("{base}/v1/data/rbac/allow"))
                        .json(&json!({ "input": input }))
                        .send();
                    // During a fault a node refuses (503) or is gone; that is not an
                    // acknowledgement, and the client tries again.
                    let Ok(r) = answer else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    if r.status().as_u16() != 200 {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let seq: u64 = r.headers()["x-docket-seq"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let body: Value = r.json().unwrap();
                    let id = body["decision_id"].as_str().unwrap().to_string();
                    let previous = acknowledged
                        .lock()
                        .unwrap()
                        .insert(id.clone(), (log.clone(), seq));
                    assert!(previous.is_none(), "decision id {id} acknowledged twice");
                }
            })
        })
        .collect()
}

/// Waits until `more` decisions beyond those acknowledged now are acknowledged.
fn wait_for_progress(acknowledged: &Acknowledged, more: usize, what: &str) {
    let target = acknowledged.lock().unwrap().len() + more;
    let start = Instant::now();
    while acknowledged.lock().unwrap().len() < target {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress {what}: {} acknowledged, waiting for {target}",
            acknowledged.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_fleet_on_a_nats_cluster_loses_no_acknowledged_decision_under_faults() {
    let mut cluster = Cluster::start(3, None);
    let mut rng = StdRng::seed_from_u64(0x4A75);
    let dir_a = scratch("nats-a-0");
    let dir_b = scratch("nats-b");
    let mut node_a = start_node(&dir_a, &nats_flags(&cluster, "node-a"));
    let node_b = start_node(&dir_b, &nats_flags(&cluster, "node-b"));
    let url_a = Arc::new(RwLock::new(node_a.base.clone()));
    let url_b = Arc::new(RwLock::new(node_b.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let mut threads = clients("node-a", &url_a, &stop, &acknowledged, &refused);
    threads.extend(clients("node-b", &url_b, &stop, &acknowledged, &refused));
    wait_for_progress(&acknowledged, 50, "before any fault");

    let mut current_a = dir_a.clone();
    let rounds = faults(8);
    let mut done = Vec::new();
    for round in 0..rounds {
        let fault = round % 4;
        let server = rng.random_range(0..3usize);
        match fault {
            0 => {
                cluster.kill(server);
                wait_for_progress(&acknowledged, 30, "with a NATS server killed");
                cluster.restart(server);
                done.push(format!("SIGKILL of nats-server n{}", server + 1));
            }
            1 => {
                cluster.signal(server, "STOP");
                std::thread::sleep(Duration::from_millis(rng.random_range(500..3000)));
                cluster.signal(server, "CONT");
                done.push(format!("SIGSTOP/SIGCONT of nats-server n{}", server + 1));
            }
            2 => {
                // Two of three servers gone: no quorum, so commits fail and decisions are
                // refused (never answered unsealed) until they are back.
                let other = (server + 1 + rng.random_range(0..2usize)) % 3;
                let before = refused.load(Ordering::Relaxed);
                cluster.kill(server);
                cluster.kill(other);
                let start = Instant::now();
                while refused.load(Ordering::Relaxed) == before {
                    assert!(
                        start.elapsed() < Duration::from_secs(120),
                        "nothing was refused without a quorum"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                cluster.restart(server);
                cluster.restart(other);
                done.push(format!(
                    "quorum lost: SIGKILL of nats-servers n{} and n{}",
                    server + 1,
                    other + 1
                ));
            }
            _ => {
                // The node dies; its replacement has an empty directory but the key.
                node_a.kill();
                let next = replacement_dir(&current_a, &format!("nats-a-{}", round + 1));
                node_a = start_node(&next, &nats_flags(&cluster, "node-a"));
                *url_a.write().unwrap() = node_a.base.clone();
                current_a = next;
                done.push("SIGKILL of docket node A, replaced".into());
            }
        }
        wait_for_progress(&acknowledged, 30, &format!("after fault {round}"));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    // Node B serves the whole fleet: node A's log, read from JetStream, with the same
    // checkpoint, tiles and proofs node A serves for itself, and A's decisions by id.
    let c = Client::new();
    let own_checkpoint = c
        .get(node_a.url("/checkpoint"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let start = Instant::now();
    loop {
        let seen = c
            .get(node_b.url("/v1/fleet/logs/node-a/checkpoint"))
            .send()
            .unwrap();
        if seen.status().as_u16() == 200 && seen.text().unwrap() == own_checkpoint {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node B never caught up with node A's log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let fleet: Value = c
        .get(node_b.url("/v1/fleet"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = fleet["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["log"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a", "node-b"], "{fleet}");
    assert_eq!(fleet["logs"][1]["own"], true, "{fleet}");
    let tile =
        |server: &Server, path: &str| c.get(server.url(path)).send().unwrap().bytes().unwrap();
    assert_eq!(
        tile(&node_b, "/v1/fleet/logs/node-a/tile/0/000"),
        tile(&node_a, "/tile/0/000"),
        "a hash tile of node A's log, from node B"
    );
    let (some_id, (_, some_seq)) = {
        let acknowledged = acknowledged.lock().unwrap();
        let (id, at) = acknowledged
            .iter()
            .find(|(_, (log, _))| log == "node-a")
            .expect("node A acknowledged decisions");
        (id.clone(), at.clone())
    };
    let found: Value = c
        .get(node_b.url(&format!("/v1/fleet/decisions/{some_id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let own: Value = c
        .get(node_a.url(&format!("/v1/log/decisions/{some_id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(found["log"], "node-a", "{found}");
    assert_eq!(found["entry"]["seq"], some_seq, "{found}");
    assert_eq!(found["entry"]["hash"], own["entry"]["hash"], "{found}");
    assert_eq!(found["inclusion_proof"], own["inclusion_proof"], "{found}");
    let missing = c
        .get(node_b.url("/v1/fleet/decisions/no-such-decision"))
        .send()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    assert!(node_a.stop().success());
    assert!(node_b.stop().success());

    // Each log, read by a node that starts from nothing but its key (JetStream alone), holds
    // every decision it acknowledged, once, at its seq.
    let acknowledged = acknowledged.lock().unwrap();
    let c = Client::new();
    for (log, from) in [("node-a", &current_a), ("node-b", &dir_b)] {
        let fresh = replacement_dir(from, &format!("nats-{log}-final"));
        let reader = start_node(&fresh, &nats_flags(&cluster, log));
        let mut seen = HashMap::<String, u64>::new();
        for e in all_entries(&c, &reader) {
            if e["kind"] == "decision" {
                let id = e["decision_id"].as_str().unwrap().to_string();
                let seq = e["seq"].as_u64().unwrap();
                assert!(seen.insert(id.clone(), seq).is_none(), "{id} sealed twice");
            }
        }
        let mine: Vec<_> = acknowledged.iter().filter(|(_, (l, _))| l == log).collect();
        for (id, (_, seq)) in &mine {
            assert_eq!(
                seen.get(*id),
                Some(seq),
                "acknowledged decision {id} (seq {seq}) is missing from {log} or moved"
            );
        }
        assert!(reader.stop().success());
        // And `docket verify` reads and verifies it straight from JetStream.
        let out = docket_command()
            .arg("verify")
            .arg(cluster.url("DOCKET", log))
            .arg("--pub")
            .arg(from.join("data/docket.pub"))
            .output()
            .unwrap();
        succeeded(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("verified"), "{text}");
        // The export, read from JetStream too, holds every sealed decision.
        let export = fresh.join("export.jsonl");
        let out = docket_command()
            .args(["log", "export"])
            .arg(cluster.url("DOCKET", log))
            .arg("-o")
            .arg(&export)
            .output()
            .unwrap();
        succeeded(&out);
        let exported: std::collections::HashSet<String> = std::fs::read_to_string(&export)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let line: Value = serde_json::from_str(line).ok()?;
                (line["kind"] == "decision").then_some(())?;
                let record: Value = serde_json::from_str(line["record"].as_str()?).ok()?;
                Some(record["decision_id"].as_str()?.to_string())
            })
            .collect();
        for id in seen.keys() {
            assert!(exported.contains(id), "{id} is not in the export");
        }
        println!(
            "{log}: {} acknowledged decisions all present once; {} sealed but not acknowledged",
            mine.len(),
            seen.len() - mine.len()
        );
    }
    println!(
        "faults: {}; {} requests refused during them",
        done.join(", "),
        refused.load(Ordering::Relaxed)
    );
}

#[test]
fn serve_refuses_what_could_lose_a_commit_and_says_what_to_do() {
    let cluster = Cluster::start(1, None);
    let dir = scratch("nats-refusals");
    let run = |flags: &[String]| {
        let out = docket_command()
            .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
            .arg(dir.join("data"))
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let url = cluster.url("DOCKET", "one");
    // One server cannot give the three replicas asked for by default.
    let mut refusals = Vec::new();
    let err = run(&nats_flags(&cluster, "one"));
    assert!(err.contains("monitoring endpoint(s) given for 3"), "{err}");
    refusals.push(err);
    // Without a way to check the servers' fsync, nothing is assumed.
    let err = run(&["--nats".into(), url.clone()]);
    assert!(err.contains("--nats-monitor"), "{err}");
    assert!(err.contains("--nats-unchecked-fsync"), "{err}");
    refusals.push(err);
    // A name that cannot be a subject token.
    let err = run(&[
        "--nats".into(),
        "nats://127.0.0.1:1/DOCKET/a.b".into(),
        "--nats-unchecked-fsync".into(),
    ]);
    assert!(err.contains("cannot be a log name"), "{err}");
    refusals.push(err);
    for e in &refusals {
        assert!(!e.contains("Error {") && !e.contains("Os {"), "{e}");
    }
    // With one replica asked for explicitly, a single server serves.
    let mut flags = nats_flags(&cluster, "one");
    flags.extend(["--nats-replicas".into(), "1".into()]);
    let server = start_node(&dir, &flags);
    let c = Client::new();
    let r = c
        .post(server.url("/v1/data/rbac/allow"))
        .json(&json!({"input": {"user": "alice", "action": "read", "resource": {"type": "document", "id": "1"}}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(server.stop().success());
    // A data directory whose log JetStream does not hold is not uploaded.
    let other = scratch("nats-refusals-local");
    let local = Server::start(&other, &[]);
    // Without --nats there is no fleet to serve, and the answer says so.
    let no_fleet = c.get(local.url("/v1/fleet")).send().unwrap();
    assert_eq!(no_fleet.status().as_u16(), 404);
    assert!(no_fleet.text().unwrap().contains("docket serve --nats"));
    assert!(local.stop().success());
    let out = docket_command()
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(other.join("data"))
        .args(nats_flags(&cluster, "fresh"))
        .args(["--nats-replicas", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds a log that is not in JetStream"),
        "{err}"
    );

    // Bytes in a log's subject that are not whole commits are damage, reported as such.
    let location = docket_nats::Location::parse(&cluster.url("DOCKET", "junk")).unwrap();
    let junk = docket_nats::JetStreamLog::open(
        &location,
        docket_nats::Requirements { replicas: 1 },
        &docket_nats::Durability::checked(cluster.monitors()),
        true,
    )
    .unwrap();
    junk.read().unwrap();
    junk.append(b"these bytes are not frames").unwrap();
    let out = docket_command()
        .arg("verify")
        .arg(cluster.url("DOCKET", "junk"))
        .arg("--pub")
        .arg(dir.join("data/docket.pub"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REJECTED") && text.contains("damaged"),
        "{text}"
    );
}
