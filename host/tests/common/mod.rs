//! Shared by the tests that run the real `docket serve` binary.
#![allow(dead_code)]

use docket_ledger::PublicKey;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docket-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `docket serve` process.
pub struct Server {
    child: Child,
    pub base: String,
    pub dir: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(dir, extra, &[])
    }

    /// [`Server::start`] with more environment variables (e.g. libfaketime's).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(dir, Command::new(env!("CARGO_BIN_EXE_docket")), extra, env)
    }

    /// [`Server::start`] under an open-file limit of `nofile` (soft and hard, `ulimit -n`).
    pub fn start_with_nofile(dir: &Path, extra: &[&str], nofile: u32) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_docket"),
        ]);
        Server::spawn(dir, command, extra, &[])
    }

    fn spawn(dir: &Path, mut command: Command, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let stderr = std::fs::File::create(dir.join("serve.stderr")).unwrap();
        let mut child = command
            .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
            .arg(dir.join("data"))
            .args(extra)
            .envs(env.iter().copied())
            .env(
                "DOCKET_CACHE_DIR",
                std::env::temp_dir().join("docket-test-component-cache"),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let log = std::fs::read_to_string(dir.join("serve.stderr")).unwrap_or_default();
                panic!("docket serve exited before listening:\n{log}");
            };
            if let Some(url) = line.strip_prefix("docket serve: listening on ") {
                break url.to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/log/decisions/{id}`: a decision's sealed entry, inclusion proof and checkpoint.
    pub fn decision_bundle(&self, id: &str) -> serde_json::Value {
        reqwest::blocking::get(self.url(&format!("/v1/log/decisions/{id}")))
            .unwrap()
            .json()
            .unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn genesis_key(&self) -> PublicKey {
        let text = std::fs::read_to_string(self.dir.join("data/docket.pub")).unwrap();
        PublicKey::from_vkey(text.trim()).unwrap()
    }

    /// SIGTERM: a graceful stop; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    /// The server's resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The server's `host:port`.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Waits for the server to exit by itself (after a signal), at most `limit`.
    pub fn wait_exit(mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal (`STOP`, `CONT`, …) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A policy directory under `dir` holding the example RBAC policy and its data, to which a test
/// adds its own modules.
pub fn rbac_policies(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let examples = repo().join("examples/policies");
    for file in ["rbac.rego", "rbac.json"] {
        std::fs::copy(examples.join(file), policies.join(file)).unwrap();
    }
    policies
}

/// The size of the server's latest checkpoint, read through its API.
pub fn log_size(c: &reqwest::blocking::Client, server: &Server) -> u64 {
    c.get(server.url("/v1/log"))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap()["size"]
        .as_u64()
        .unwrap()
}

/// Every entry of the server's log, read through its API.
pub fn all_entries(c: &reqwest::blocking::Client, server: &Server) -> Vec<serde_json::Value> {
    let size = log_size(c, server);
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let page: serde_json::Value = c
            .get(server.url(&format!("/v1/log/entries?start={}&limit=1000", out.len())))
            .send()
            .unwrap()
            .json()
            .unwrap();
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
    }
    out
}

/// The text of `docket log export` of a server's log (`<server dir>/data/log`).
pub fn export_text(server_dir: &Path) -> String {
    let export = server_dir.join("export.jsonl");
    let out = docket_command()
        .args(["log", "export"])
        .arg(server_dir.join("data/log"))
        .arg("-o")
        .arg(&export)
        .output()
        .unwrap();
    succeeded(&out);
    std::fs::read_to_string(&export).unwrap()
}

/// Asserts that a command succeeded, showing its stderr if not.
pub fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `docket` binary, with the shared component cache.
pub fn docket_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docket"));
    command.env(
        "DOCKET_CACHE_DIR",
        std::env::temp_dir().join("docket-test-component-cache"),
    );
    command
}

/// `docket serve` on `dir/data` run to its exit: for servers that must refuse to start.
pub fn serve_to_exit(dir: &Path) -> std::process::Output {
    docket_command()
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap()
}

/// `docket verify` of a server's log directory; panics unless it verifies.
pub fn verify_dir(server_dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_docket"))
        .arg("verify")
        .arg(server_dir.join("data/log"))
        .arg("--pub")
        .arg(server_dir.join("data/docket.pub"))
        .env(
            "DOCKET_CACHE_DIR",
            std::env::temp_dir().join("docket-test-component-cache"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "verify failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The workspace root. Read from the environment `cargo test` runs tests in, not compiled in:
/// a test binary cached in a shared target directory may run from another checkout.
pub fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("..")
}
