//! A served log read by an independent C2SP client: Go's reference `golang.org/x/mod/sumdb/note`
//! and `tlog` (tests/c2sp/interop.go, built with Debian's Go), which knows nothing of docket but
//! the public key URL. It opens the checkpoint with the key in force, reads every entry from
//! the entry bundles, proves each one's inclusion from the hash tiles, and proves the log
//! consistent with a checkpoint taken before a prune and a key rotation (issue 21).

use crate::common::{Server, docket_command, scratch};
use reqwest::blocking::Client;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Builds the Go client once per test binary.
fn interop_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let binary = out_dir.join("c2sp-interop");
            let source = crate::common::repo().join("tests/c2sp/interop.go");
            let built = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(source)
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", out_dir.join("go-cache"))
                .output()
                .unwrap_or_else(|e| {
                    panic!("running go ({e}): install golang-go and golang-golang-x-mod-dev (tests/setup-debian.sh)")
                });
            assert!(
                built.status.success(),
                "building tests/c2sp/interop.go: {}",
                String::from_utf8_lossy(&built.stderr)
            );
            binary
        })
        .clone()
}

/// Runs the Go client against a server; returns its JSON report.
pub(crate) fn interop(server: &Server, old: Option<(&Path, &[String])>) -> Value {
    let mut command = Command::new(interop_binary());
    command.arg(&server.base);
    if let Some((checkpoint, keys)) = old {
        command.arg(checkpoint).args(keys);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "the C2SP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn decide(c: &Client, s: &Server, user: &str) {
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"input":{{"user":"{user}","action":"read","resource":{{"type":"document","id":"d1"}}}}}}"#
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn policies(dir: &Path, retention: &str) -> PathBuf {
    let policies = crate::common::rbac_policies(dir);
    std::fs::write(
        policies.join("system-log.rego"),
        format!("package system.log\n\nimport rego.v1\n\ndefault retention := \"{retention}\"\n"),
    )
    .unwrap();
    policies
}

#[test]
fn a_generic_c2sp_client_proves_every_entry_across_a_prune_and_a_key_rotation() {
    let dir = scratch("c2sp-interop");
    let policies = policies(&dir, "1s");
    let policy_arg = policies.display().to_string();
    let args = ["--policy", policy_arg.as_str(), "--segment-bytes", "4096"];
    let c = client();

    let s = Server::start(&dir, &args);
    for i in 0..40 {
        decide(&c, &s, &format!("user-{i}"));
    }
    let fresh = interop(&s, None);
    assert_eq!(fresh["proved"], fresh["size"], "{fresh}");
    assert_eq!(fresh["pruned"], 0);
    let old = dir.join("old-checkpoint");
    std::fs::write(
        &old,
        c.get(s.url("/checkpoint")).send().unwrap().text().unwrap(),
    )
    .unwrap();
    let genesis = std::fs::read_to_string(dir.join("data/docket.pub"))
        .unwrap()
        .trim()
        .to_string();
    assert!(s.stop().success());

    // Prune what has expired (decisions are kept one second), then hand the log to a new key.
    let data = dir.join("data");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = run(docket_command()
            .args(["log", "prune"])
            .arg(data.join("log"))
            .arg("--key")
            .arg(data.join("docket.key")));
        if out.lines().any(|line| line.starts_with("pruned ")) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing was ever pruned: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let origin = std::fs::read_to_string(data.join("log/checkpoint"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    run(docket_command()
        .args(["keygen", "--out"])
        .arg(&dir)
        .args(["--stem", "next", "--name", &origin]));
    run(docket_command()
        .args(["rotate-key", "--dir"])
        .arg(data.join("log"))
        .arg("--key")
        .arg(data.join("docket.key"))
        .arg("--new-key")
        .arg(dir.join("next.key"))
        .arg("--pub")
        .arg(data.join("docket.pub")));
    std::fs::copy(dir.join("next.key"), data.join("docket.key")).unwrap();
    std::fs::set_permissions(
        data.join("docket.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let next = std::fs::read_to_string(dir.join("next.pub"))
        .unwrap()
        .trim()
        .to_string();

    let s = Server::start(&dir, &args);
    for i in 40..45 {
        decide(&c, &s, &format!("user-{i}"));
    }
    // The served key is the key in force; the history names both, the rotation entry after
    // the genesis.
    assert_eq!(
        c.get(s.url("/v1/log/public-key"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            .trim(),
        next
    );
    let keys: Value = c.get(s.url("/v1/log/keys")).send().unwrap().json().unwrap();
    assert_eq!(keys["keys"][0]["key"], genesis.as_str());
    assert_eq!(keys["keys"][0]["introduced_by"], 0);
    assert_eq!(keys["keys"][1]["key"], next.as_str());
    assert!(keys["keys"][1]["introduced_by"].as_u64().unwrap() >= 40);

    let report = interop(&s, Some((&old, std::slice::from_ref(&genesis))));
    let size = report["size"].as_u64().unwrap();
    let (proved, pruned) = (
        report["proved"].as_u64().unwrap(),
        report["pruned"].as_u64().unwrap(),
    );
    assert!(pruned > 0, "{report}");
    assert_eq!(proved + pruned, size, "{report}");
    assert_eq!(report["consistent_from"], fresh["size"]);
    assert_eq!(report["origin"], origin.as_str());
    assert_eq!(report["key"], next.as_str());

    // Entry bundles are compressed for a client that accepts gzip, and only then.
    let plain = c.get(s.url("/tile/entries/000.p/10")).send().unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let zipped = c
        .get(s.url("/tile/entries/000.p/10"))
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let plain = plain.bytes().unwrap();
    let zipped = zipped.bytes().unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);
}

#[test]
fn a_generic_c2sp_client_reads_a_log_with_an_entry_over_64_kib() {
    let dir = scratch("c2sp-large");
    let policies = policies(&dir, "90d");
    // An 86 KB policy file: its load entry is larger than a bundle's 16-bit length can state.
    let mut big = String::from("package big\n\nimport rego.v1\n\n");
    for i in 0..2000 {
        big.push_str(&format!("rule_{i:04} := \"{}\"\n", "v".repeat(24)));
    }
    std::fs::write(policies.join("big.rego"), big).unwrap();
    let policy_arg = policies.display().to_string();
    let s = Server::start(&dir, &["--policy", policy_arg.as_str()]);
    let c = client();
    decide(&c, &s, "alice");
    // A decision on a 100 KB input: its record is over the limit too.
    let note = "n".repeat(100_000);
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"input":{{"user":"bob","action":"read","resource":{{"type":"document","id":"d1"}},"note":"{note}"}}}}"#
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    decide(&c, &s, "carol");
    let report = interop(&s, None);
    assert_eq!(report["proved"], report["size"], "{report}");
    // The load entry and the large decision are in the digest form (log-format §3.6), their
    // records checked by the client against their bodies.
    assert_eq!(report["digests"], 2, "{report}");
    let load: Value = c
        .get(s.url("/v1/log/entries/1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(load["kind"], "policy-change", "{load}");
    let source = load["record"]["modules"]["big.rego"].as_str().unwrap();
    assert!(
        source.contains("rule_1999"),
        "the policy source stays in the log"
    );
    let missing = c.get(s.url("/v1/log/entries/99/record")).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(s.stop().success());
    let verify = run(docket_command()
        .arg("verify")
        .arg(dir.join("data/log"))
        .arg("--pub")
        .arg(dir.join("data/docket.pub")));
    assert!(verify.contains("verified"), "{verify}");
}
