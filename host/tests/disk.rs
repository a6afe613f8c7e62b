//! `docket serve` on a disk that fills up: decisions that cannot be made durable are refused
//! (503, never an unlogged answer), `/health` says why, nothing already acknowledged is lost or
//! corrupted, and writing resumes by itself once space returns. On a read-only log directory
//! the server refuses to start, saying why. The log directory sits on a small tmpfs mounted for the test
//! (this needs root, as the test command runs here and in CI).

mod common;

use common::{Server, scratch, verify_dir};
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

fn decide(c: &Client, server: &Server, i: u64) -> (u16, Value) {
    let input = json!({"user": "alice", "action": "read", "resource": {"type": "document", "id": format!("d-{i}-{}", "x".repeat(200))}});
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
            acknowledged.push(body["decision_id"].as_str().unwrap().to_string());
        }
        (status, body)
    };
    for _ in 0..20 {
        assert_eq!(decide_ok(&c, &server).0, 200);
    }

    // Fill the disk: a filler file takes what is left.
    let filler = dir.join("data/filler");
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
    let mut refused = None;
    for _ in 0..200 {
        let (status, body) = decide_ok(&c, &server);
        if status != 200 {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("a full disk never refused a decision");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("durable"),
        "{body}"
    );
    let (status, why) = health(&c, &server);
    assert_eq!(status, 500);
    assert!(why.contains("cannot be written"), "{why}");

    // Space returns: writing resumes without a restart.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = decide_ok(&c, &server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(health(&c, &server).0, 200);

    // Nothing acknowledged was lost, and the log verifies.
    for id in &acknowledged {
        let status = c
            .get(server.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 200, "acknowledged decision {id} is missing");
    }
    assert!(server.stop().success());

    // A read-only log directory: the server refuses to start, says why, and changes nothing.
    // (A mounted file system cannot be made read-only under a writer holding files open, so
    // this is tested at start-up.)
    disk.remount("ro");
    let out = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(dir.join("data"))
        .env(
            "DOCKET_CACHE_DIR",
            std::env::temp_dir().join("docket-test-component-cache"),
        )
        .output()
        .unwrap();
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
