//! `docket-loadtest`: `docket serve` under concurrent clients on loopback, next to the real OPA
//! engine behind the same Data API (tests/opa_server.py), driven by the same clients with the same
//! requests in the same run. Bounded by count and by time. Prints a Markdown table for
//! BENCHMARKS.md.
//!
//! Run: `cargo build --release -p docket -p docket-tests && target/release/docket-loadtest`
//! Options: `--clients 16 --requests 20000 --seconds 20`.
//!
//! `docket-loadtest --lanes 1 [--seconds 5]` measures instead what heavy and runaway evaluations
//! do to ordinary decisions: one client's ordinary decisions alone, beside 8 clients sending
//! 3.5 MB inputs, and beside 4 clients running a policy until the 2 s time limit, against a
//! server with evaluation lanes (the default) and one without (`--eval-grace-ms` beyond any
//! evaluation), in the same run.
//!
//! `docket-loadtest --nats 1` compares the embedded store with the log in NATS JetStream (R1,
//! R3; one docket node and two) on a 3-server cluster it starts on loopback.

#[path = "../crates/docket-nats/tests/cluster/mod.rs"]
mod cluster;

use docket_server::examples::Requests;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Options {
    clients: usize,
    requests: usize,
    seconds: u64,
    lanes: bool,
    witnesses: bool,
    nats: bool,
}

fn options() -> Options {
    let mut o = Options {
        clients: 16,
        requests: 20_000,
        seconds: 20,
        lanes: false,
        witnesses: false,
        nats: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--clients", Some(v)) => o.clients = v,
            ("--requests", Some(v)) => o.requests = v,
            ("--seconds", Some(v)) => o.seconds = v as u64,
            ("--lanes", Some(v)) => o.lanes = v != 0,
            ("--witnesses", Some(v)) => o.witnesses = v != 0,
            ("--nats", Some(v)) => o.nats = v != 0,
            _ => panic!(
                "usage: docket-loadtest [--clients N] [--requests N] [--seconds N] [--lanes 1] [--witnesses 1] [--nats 1]"
            ),
        }
    }
    o
}

/// Spawns a server and waits for its "listening on" line.
fn spawn(mut command: Command, marker: &str) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix(marker) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

struct Run {
    done: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `clients` threads post the same seeded requests until `requests` are done or time is up.
fn drive(base: &str, o: &Options) -> Run {
    drive_all(&[base], o)
}

/// [`drive`] over several servers: request `i` goes to `bases[i % bases.len()]`.
fn drive_all(bases: &[&str], o: &Options) -> Run {
    let mut generator = Requests::new(7);
    let work: Arc<Vec<(String, String)>> = Arc::new(
        (0..o.requests)
            .map(|i| {
                let (path, input) = generator.next_request();
                (
                    format!("{}/v1/data/{path}", bases[i % bases.len()]),
                    format!("{{\"input\":{input}}}"),
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(o.requests)));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..o.clients)
        .map(|_| {
            let (work, next, errors, latencies) = (
                Arc::clone(&work),
                Arc::clone(&next),
                Arc::clone(&errors),
                Arc::clone(&latencies),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= work.len() || Instant::now() > deadline {
                        break;
                    }
                    let (url, body) = &work[i];
                    let t = Instant::now();
                    let ok = client
                        .post(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .ok()
                        .filter(|r| r.status().is_success())
                        .and_then(|r| r.bytes().ok())
                        .is_some();
                    mine.push(t.elapsed());
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    Run {
        done: latencies.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
    }
}

/// Stops a server with SIGTERM and waits for it.
fn stop(mut server: Child) {
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
}

/// A run's table cells: decisions | errors | decisions/s | p50 ms | p99 ms.
fn row(run: &Run) -> String {
    format!(
        "{} | {} | {:.0} | {:.2} | {:.2}",
        run.done,
        run.errors,
        rate(run),
        percentile(&run.latencies, 0.5),
        percentile(&run.latencies, 0.99)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn rate(run: &Run) -> f64 {
    run.done as f64 / run.elapsed.as_secs_f64()
}

/// µs per evaluation through the component (no sealing), best of 3.
fn component_eval_us(sample: &[(&str, String)]) -> f64 {
    let runtime =
        docket_runtime::Runtime::new(Some(&std::env::temp_dir().join("docket-loadtest-cache")))
            .unwrap();
    let mut instance = runtime.instantiate().unwrap();
    for p in docket_server::examples::ALL {
        instance.add_policy(p.id, p.source).unwrap();
        instance.add_data(p.data).unwrap();
    }
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for (path, input) in sample {
            instance.evaluate(path, Some(input)).unwrap();
        }
        best = best.min(t.elapsed());
    }
    best.as_secs_f64() * 1e6 / sample.len() as f64
}

/// Load beside the measured client: `clients` threads posting `body` to `path` until stopped.
struct Background {
    name: &'static str,
    clients: usize,
    path: &'static str,
    body: Arc<String>,
}

/// One client's ordinary decisions for `seconds`, sequentially, beside `background`.
fn ordinary_beside(base: &str, background: &Background, seconds: u64) -> Vec<Duration> {
    use std::sync::atomic::AtomicBool;
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..background.clients)
        .map(|_| {
            let (stop, body) = (Arc::clone(&stop), Arc::clone(&background.body));
            let url = format!("{base}{}", background.path);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_bytes().to_vec())
                        .send()
                        .and_then(|r| r.bytes());
                }
            })
        })
        .collect();
    // Let the background reach the server before measuring.
    std::thread::sleep(Duration::from_millis(if background.clients > 0 {
        500
    } else {
        0
    }));
    let client = reqwest::blocking::Client::new();
    let mut generator = Requests::new(3);
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let (path, input) = generator.next_request();
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/data/{path}"))
            .header("content-type", "application/json")
            .body(format!("{{\"input\":{input}}}"))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "an ordinary decision failed");
        r.bytes().unwrap();
        latencies.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    latencies.sort();
    latencies
}

fn lanes(o: &Options, docket: &std::path::Path, scratch: &std::path::Path) {
    let policies = scratch.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        policies.join("spin.rego"),
        "package spin\n\nimport rego.v1\n\nforever if {\n\tevery i in numbers.range(1, 5000) {\n\t\tevery j in numbers.range(1, 5000) {\n\t\t\ti * j > 0\n\t\t}\n\t}\n}\n",
    )
    .unwrap();
    let heavy = format!(
        r#"{{"input":{{"user":"alice","action":"read","resource":{{"type":"document","id":"d1"}},"attachment":"{}"}}}}"#,
        "x".repeat(3_500_000)
    );
    let backgrounds = [
        Background {
            name: "alone",
            clients: 0,
            path: "",
            body: Arc::new(String::new()),
        },
        Background {
            name: "beside 8 clients sending 3.5 MB inputs",
            clients: 8,
            path: "/v1/data/rbac/allow",
            body: Arc::new(heavy),
        },
        Background {
            name: "beside 4 clients running a policy to the 2 s limit",
            clients: 4,
            path: "/v1/data/spin/forever",
            body: Arc::new("{}".to_string()),
        },
    ];
    println!(
        "One client's ordinary decisions (RBAC/ABAC, sequential, {} s per row), `docket serve` on {} cores",
        o.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| server | ordinary decisions | count | p50 ms | p99 ms | p99 / p99 alone |");
    println!("|---|---|---|---|---|---|");
    for (server, grace) in [
        ("lanes (default)", None),
        ("one lane (--eval-grace-ms 3600000)", Some("3600000")),
    ] {
        let dir = scratch.join(format!("lanes-{}", grace.unwrap_or("default")));
        let mut command = Command::new(docket);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
            .arg(dir.join("data"))
            .arg("--policy")
            .arg(&policies)
            .args(["--max-input-bytes", "8000000", "--max-body", "8000000"]);
        if let Some(grace) = grace {
            command.args(["--eval-grace-ms", grace]);
        }
        let (mut server_process, url) = spawn(command, "docket serve: listening on ");
        let mut alone_p99 = f64::NAN;
        for background in &backgrounds {
            let latencies = ordinary_beside(&url, background, o.seconds);
            let p99 = percentile(&latencies, 0.99);
            if background.clients == 0 {
                alone_p99 = p99;
            }
            println!(
                "| {server} | {} | {} | {:.2} | {:.2} | {:.1} |",
                background.name,
                latencies.len(),
                percentile(&latencies, 0.5),
                p99,
                p99 / alone_p99
            );
        }
        let _ = server_process.kill();
        let _ = server_process.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `docket serve` alone and with three witnesses (two `docket witness` processes on the same
/// machine and one down), alternating, same clients and requests: what witnessing costs the
/// decision path, and how far behind the cosignatures are at the end.
fn witnesses(o: &Options, docket: &std::path::Path, scratch: &std::path::Path) {
    let data = scratch.join("witnessed/data");
    let keygen = Command::new(docket)
        .args(["keygen", "--out"])
        .arg(&data)
        .args(["--stem", "docket", "--name", "loadtest.docket/log"])
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let log_pub = data.join("docket.pub");
    let start_witness = |name: &str| {
        let mut command = Command::new(docket);
        command
            .args(["witness", "--addr", "127.0.0.1:0", "--name", name, "--dir"])
            .arg(scratch.join(name))
            .arg("--log")
            .arg(&log_pub);
        let (child, url) = spawn(command, "docket witness: listening on ");
        let key = std::fs::read_to_string(scratch.join(name).join("witness.pub")).unwrap();
        (child, format!("{}@{url}", key.trim()))
    };
    let (mut w1, a1) = start_witness("w1");
    let (mut w2, a2) = start_witness("w2");
    let (mut w3, a3) = start_witness("w3");
    let _ = w3.kill();
    let _ = w3.wait();
    println!(
        "{} clients, up to {} requests or {} s per run, RBAC and ABAC; witnesses: two live `docket witness` on this machine, one down",
        o.clients, o.requests, o.seconds
    );
    println!();
    println!(
        "| run | server | decisions | errors | decisions/s | p50 ms | p99 ms | 2-of-3 cosigned size / log size when the load ends |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rates = [Vec::new(), Vec::new()];
    for round in 1..=2 {
        for (i, (name, with)) in [("alone", false), ("3 witnesses (1 down)", true)]
            .iter()
            .enumerate()
        {
            let dir = if *with {
                scratch.join("witnessed")
            } else {
                scratch.join(format!("alone-{round}"))
            };
            let mut command = Command::new(docket);
            command
                .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
                .arg(dir.join("data"));
            if *with {
                command.args(["--witness", &a1, "--witness", &a2, "--witness", &a3]);
            }
            let (server, url) = spawn(command, "docket serve: listening on ");
            let run = drive(&url, o);
            let lag = if *with {
                let client = reqwest::blocking::Client::new();
                let size = client
                    .get(format!("{url}/v1/log"))
                    .send()
                    .unwrap()
                    .json::<serde_json::Value>()
                    .unwrap()["size"]
                    .as_u64()
                    .unwrap();
                let cosigned = || {
                    client
                        .get(format!("{url}/v1/log/witnessed?quorum=2"))
                        .send()
                        .ok()
                        .and_then(|r| r.json::<serde_json::Value>().ok())
                        .and_then(|v| v["size"].as_u64())
                        .unwrap_or(0)
                };
                let at_end = cosigned();
                let settle = Instant::now();
                while cosigned() < size && settle.elapsed() < Duration::from_secs(60) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                format!(
                    "{at_end} / {size}; all cosigned {:.2} s after the load",
                    settle.elapsed().as_secs_f64()
                )
            } else {
                "".to_string()
            };
            stop(server);
            rates[i].push(rate(&run));
            println!("| {round} | {name} | {} | {lag} |", row(&run));
        }
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    println!(
        "with witnesses / alone, decisions/s (mean of 2 runs each): {:.2}",
        mean(&rates[1]) / mean(&rates[0])
    );
    let _ = w1.kill();
    let _ = w2.kill();
    let _ = w1.wait();
    let _ = w2.wait();
    let _ = std::fs::remove_dir_all(scratch);
}

/// The log on the embedded store against the log in NATS JetStream (a 3-server cluster on this
/// machine, `sync_interval: always`), one replica and three, one docket node and two, same run.
fn nats(o: &Options, docket: &std::path::Path, scratch: &std::path::Path) {
    let cluster = cluster::Cluster::start(3, None);
    let monitors: Vec<String> = cluster
        .monitors()
        .into_iter()
        .flat_map(|m| ["--nats-monitor".to_string(), m])
        .collect();
    println!(
        "{} clients, up to {} requests or {} s per run, RBAC and ABAC; NATS: 3 nats-server 2.15.1 on this machine, sync_interval: always",
        o.clients, o.requests, o.seconds
    );
    println!();
    println!("| run | log | docket nodes | decisions | errors | decisions/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    let setups: [(&str, Option<usize>, usize); 5] = [
        ("embedded store (fsync)", None, 1),
        ("embedded store (fsync)", None, 2),
        ("JetStream R1", Some(1), 1),
        ("JetStream R3", Some(3), 1),
        ("JetStream R3", Some(3), 2),
    ];
    let mut rates = vec![Vec::new(); setups.len()];
    for round in 1..=2 {
        for (i, (name, replicas, nodes)) in setups.iter().enumerate() {
            let servers: Vec<(Child, String)> = (0..*nodes)
                .map(|n| {
                    let dir = scratch.join(format!("nats-{round}-{i}-{n}"));
                    let mut command = Command::new(docket);
                    command
                        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
                        .arg(dir.join("data"));
                    if let Some(r) = replicas {
                        let stream = format!("BENCH{round}R{r}");
                        command
                            .args(["--nats", &cluster.url(&stream, &format!("n{i}-{n}"))])
                            .args(["--nats-replicas", &r.to_string()])
                            .args(&monitors);
                    }
                    spawn(command, "docket serve: listening on ")
                })
                .collect();
            let bases: Vec<&str> = servers.iter().map(|(_, url)| url.as_str()).collect();
            let run = drive_all(&bases, o);
            for (server, _) in servers {
                stop(server);
            }
            rates[i].push(rate(&run));
            println!("| {round} | {name} | {nodes} | {} |", row(&run));
        }
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    for (i, (name, _, nodes)) in setups.iter().enumerate().skip(1) {
        println!(
            "{name}, {nodes} node(s) / embedded store, 1 node, decisions/s (mean of 2 runs each): {:.2}",
            mean(&rates[i]) / mean(&rates[0])
        );
    }
    let _ = std::fs::remove_dir_all(scratch);
}

fn main() {
    let o = options();
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let docket = std::env::var_os("DOCKET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir.join("docket"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("docket-loadtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    if o.lanes {
        lanes(&o, &docket, &scratch);
        return;
    }
    if o.witnesses {
        witnesses(&o, &docket, &scratch);
        return;
    }
    if o.nats {
        nats(&o, &docket, &scratch);
        return;
    }

    let mut command = Command::new(&docket);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(scratch.join("data"));
    let (docket_server, docket_url) = spawn(command, "docket serve: listening on ");
    let docket_run = drive(&docket_url, &o);
    stop(docket_server);
    let verify = Command::new(&docket)
        .arg("verify")
        .arg(scratch.join("data/log"))
        .arg("--pub")
        .arg(scratch.join("data/docket.pub"))
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&verify.stdout).trim().to_string();

    let mut command = Command::new("python3");
    command.arg(root.join("tests/opa_server.py"));
    let (mut opa_server, opa_url) = spawn(command, "opa: listening on ");
    let opa_run = drive(&opa_url, &o);
    // Engine only, no HTTP: the same requests through docket's component and OPA's engine.
    let mut generator = Requests::new(11);
    let sample: Vec<(&str, String)> = (0..2000).map(|_| generator.next_request()).collect();
    let opa_engine_us = {
        let body = serde_json::to_string(
            &sample
                .iter()
                .map(|(p, i)| (p, serde_json::from_str::<serde_json::Value>(i).unwrap()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{opa_url}/bench"))
            .body(body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["seconds"].as_f64().unwrap() * 1e6 / sample.len() as f64
    };
    let docket_engine_us = component_eval_us(&sample);
    let _ = opa_server.kill();
    let _ = opa_server.wait();

    println!(
        "{} clients, up to {} requests or {} s each, RBAC and ABAC alternating",
        o.clients, o.requests, o.seconds
    );
    println!();
    println!("| server | decisions | errors | decisions/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, run) in [
        (
            "docket serve (eval + seal + fsync'd group commit)",
            &docket_run,
        ),
        (
            "OPA v1.20 engine behind Python http.server (no logging)",
            &opa_run,
        ),
    ] {
        println!("| {name} | {} |", row(run));
    }
    println!();
    println!(
        "docket / OPA throughput: {:.2}x; docket log: {verified}",
        rate(&docket_run) / rate(&opa_run)
    );
    println!();
    println!(
        "Engine only, same {} requests in-process, best of 3: docket component {docket_engine_us:.1} µs/decision, OPA engine via ctypes {opa_engine_us:.1} µs/decision (OPA / docket: {:.2}x)",
        sample.len(),
        opa_engine_us / docket_engine_us
    );
    let _ = std::fs::remove_dir_all(&scratch);
    if docket_run.errors > 0 || !verify.status.success() {
        std::process::exit(1);
    }
}
