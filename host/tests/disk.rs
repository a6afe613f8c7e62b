//! `docket serve` on a disk that fills up: decisions that cannot be made durable are refused
//! (503, never an unlogged answer), `/health` says why, nothing already acknowledged is lost or
//! corrupted, and writing resumes by itself once space returns. On a read-only log directory
//! the server refuses to start, saying why. The log directory sits on a small tmpfs mounted for the test
//! (this needs root, as the test command runs here and in CI).

use crate::common::{Server, docket_command, scratch, serve_to_exit, verify_dir};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: this test needs root (it simulates a full disk)",
            at.display()
        );
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `docket log reveal` proves the address masked in entry `seq` (decision `i`) with its salt
/// from `salts`.
fn assert_revealed(dir: &Path, salts: &Path, seq: u64, i: u64) {
    let out = docket_command()
        .args(["log", "reveal"])
        .arg(dir.join("data/log"))
        .arg("--pub")
        .arg(dir.join("data/docket.pub"))
        .args(["--seq", &seq.to_string(), "--path", "/input/context/ip"])
        .args(["--value", &format!("\"{}\"", address(i))])
        .arg("--salts")
        .arg(salts)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "entry {seq}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every line of the salt file is whole (a torn append would leave one glued to the next).
fn assert_salt_lines_whole(salts: &Path) {
    let text = std::fs::read_to_string(salts).unwrap();
    for (n, line) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "line {} of the salt file is torn: {line:?}",
            n + 1
        );
    }
}

/// The client address the logging rules mask in decision `i` (its salt goes to the salt file).
fn address(i: u64) -> String {
    format!("10.0.{}.{}", i / 256, i % 256)
}

fn decide(c: &Client, server: &Server, i: u64) -> (u16, Value) {
    let input = json!({"user": "alice", "action": "read", "resource": {"type": "document", "id": format!("d-{i}-{}", "x".repeat(200))},
                       "context": {"ip": address(i)}});
    let r = c
        .post(server.url("/v1/data/rbac/allow"))
        .json(&json!({ "input": input }))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn health(c: &Client, server: &Server) -> (u16, String) {
    let r = c.get(server.url("/health")).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn a_full_or_read_only_disk_refuses_decisions_loses_nothing_and_recovers() {
    let dir = scratch("disk");
    let disk = Tmpfs::mount(&dir.join("data"), "4m");
    let server = Server::start(&dir, &[]);
    let c = Client::new();
    let mut acknowledged = Vec::new();
    let mut i = 0;
    let mut decide_ok = |c: &Client, server: &Server| {
        i += 1;
        let (status, body) = decide(c, server, i);
        if status == 200 {
            acknowledged.push((body["decision_id"].as_str().unwrap().to_string(), i));
        }
        (status, body)
    };
    for _ in 0..20 {
        assert_eq!(decide_ok(&c, &server).0, 200);
    }

    // Three cycles: fill the disk, keep deciding while it is full (so writes tear at every
    // place a full disk can tear them: the salt file, the segment), then free it.
    let filler = dir.join("data/filler");
    for _ in 0..3 {
        // A filler file takes what is left.
        let mut bytes = 0u64;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {
                bytes += 4096;
            }
            let _ = f.sync_all();
        }
        assert!(bytes > 0);
        // Decisions now fail with 503 (after at most a few that fit in what is left).
        let mut refused = 0;
        for _ in 0..200 {
            let (status, body) = decide_ok(&c, &server);
            if status == 200 {
                continue;
            }
            assert_eq!(status, 503, "{body}");
            // The first refusal says the decision could not be made durable; later ones that
            // the log is not accepting entries until its reopening succeeds.
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains("durable") || message.contains("not accepting entries"),
                "{body}"
            );
            refused += 1;
            if refused == 40 {
                break;
            }
        }
        assert!(refused > 0, "a full disk never refused a decision");
        let (status, why) = health(&c, &server);
        assert_eq!(status, 500);
        assert!(why.contains("cannot be written"), "{why}");

        // Space returns: writing resumes without a restart.
        std::fs::remove_file(&filler).unwrap();
        let (status, body) = decide_ok(&c, &server);
        assert_eq!(status, 200, "{body}");
        assert_eq!(health(&c, &server).0, 200);
    }

    // Nothing acknowledged was lost, and the log verifies.
    let mut seqs = Vec::new();
    for (id, i) in &acknowledged {
        let r = c
            .get(server.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "acknowledged decision {id} is missing"
        );
        let bundle: Value = r.json().unwrap();
        seqs.push((bundle["entry"]["seq"].as_u64().unwrap(), *i));
    }
    assert!(server.stop().success());

    // The salt file kept its discipline through the full disk: every line whole, and the masked
    // address of every acknowledged decision, the newest included, is revealed with its salt.
    let salts = dir.join("data/mask-salts.jsonl");
    assert_salt_lines_whole(&salts);
    for (seq, i) in [seqs[0], *seqs.last().unwrap()] {
        assert_revealed(&dir, &salts, seq, i);
    }

    // A read-only log directory: the server refuses to start, says why, and changes nothing.
    // (A mounted file system cannot be made read-only under a writer holding files open, so
    // this is tested at start-up.)
    disk.remount("ro");
    let out = serve_to_exit(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    disk.remount("rw");
    let server = Server::start(&dir, &[]);
    assert_eq!(decide(&c, &server, 0).0, 200);
    assert!(server.stop().success());
    let summary = verify_dir(&dir);
    println!(
        "disk faults: {} acknowledged decisions kept through a full and a read-only disk; {summary}",
        acknowledged.len()
    );
}

/// The salt file on a disk of its own that fills up (the log's disk has room): every commit's
/// salt append tears at the page boundary and fails, so the decision is refused; once space
/// returns, no torn line is left glued to the next one, and every acknowledged masked address,
/// the newest included, is revealed with its salt.
#[test]
fn a_full_salt_disk_tears_no_line_and_every_acknowledged_salt_is_found() {
    let dir = scratch("disk-salts");
    let salts_disk = Tmpfs::mount(&dir.join("salts"), "16k");
    let salts = dir.join("salts/mask-salts.jsonl");
    let server = Server::start(&dir, &["--salts", salts.to_str().unwrap()]);
    let c = Client::new();
    let mut acknowledged = Vec::new();
    let mut i = 0;
    let mut refused = 0;
    for _ in 0..3 {
        // Fill what is left of the salt disk, then keep deciding until appends tear and fail.
        let filler = dir.join("salts/filler");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            while f.write_all(&[0u8; 512]).is_ok() {}
        }
        let mut failed_here = 0;
        for _ in 0..100 {
            i += 1;
            let (status, body) = decide(&c, &server, i);
            match status {
                200 => acknowledged.push((body["decision_id"].as_str().unwrap().to_string(), i)),
                _ => {
                    assert_eq!(status, 503, "{body}");
                    failed_here += 1;
                    if failed_here == 5 {
                        break;
                    }
                }
            }
        }
        assert!(failed_here > 0, "a full salt disk never refused a decision");
        refused += failed_here;
        std::fs::remove_file(&filler).unwrap();
        i += 1;
        let (status, body) = decide(&c, &server, i);
        assert_eq!(status, 200, "{body}");
        acknowledged.push((body["decision_id"].as_str().unwrap().to_string(), i));
    }
    let mut seqs = Vec::new();
    for (id, i) in &acknowledged {
        let bundle = server.decision_bundle(id);
        seqs.push((bundle["entry"]["seq"].as_u64().unwrap(), *i));
    }
    assert!(server.stop().success());
    assert_salt_lines_whole(&salts);
    for &(seq, i) in &seqs {
        assert_revealed(&dir, &salts, seq, i);
    }
    drop(salts_disk);
    println!(
        "salt disk full three times: {refused} decisions refused, {} acknowledged, every salt line whole and every masked address revealed",
        acknowledged.len()
    );
}
