//! `docket serve` against hostile clients (issue 21): every flag at a non-default value, the
//! token checked before a body is read, timeouts and a connection limit that keep the server
//! answering, a bounded shutdown, input limits and quotas, no writes from web pages, private
//! files, and exactly one tile per address. Each test runs the real binary on loopback.

use crate::common::{Server, docket_command, scratch, verify_dir};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

const RBAC: &str =
    r#"{"input":{"user":"alice","action":"read","resource":{"type":"document","id":"d1"}}}"#;

fn decide(c: &Client, s: &Server) -> reqwest::blocking::Response {
    c.post(s.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(RBAC)
        .send()
        .unwrap()
}

fn log_size(c: &Client, s: &Server) -> u64 {
    let log: Value = c.get(s.url("/v1/log")).send().unwrap().json().unwrap();
    log["size"].as_u64().unwrap()
}

/// A raw connection to the server, with a generous read timeout so a test that waits for the
/// server to act fails instead of hanging if it never does.
fn connect(s: &Server) -> TcpStream {
    let stream = TcpStream::connect(s.authority()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response head (and whatever body arrived with it).
fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("a response");
        assert!(n > 0, "the server closed without answering");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

fn health(s: &Server) -> u16 {
    let mut stream = connect(s);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .unwrap();
    status_of(&read_response(&mut stream))
}

/// Waits until `GET /metrics` has exactly this line.
fn wait_for_metric(c: &Client, s: &Server, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never reached: {line}\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn every_serve_flag_at_a_non_default_value() {
    let dir = scratch("hostile-flags");
    let token_file = dir.join("token.txt");
    std::fs::write(&token_file, "a-token-of-more-than-16-chars\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let salts = dir.join("salts.jsonl");
    let read_token = dir.join("read-token.txt");
    let nats = crate::nats::cluster::Cluster::start(1, None);
    std::fs::write(&read_token, "a-read-token-of-16-chars-or-more\n").unwrap();
    std::fs::set_permissions(&read_token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let flags: Vec<(&str, String)> = vec![
        ("--token-file", token_file.display().to_string()),
        ("--workers", "1".into()),
        ("--eval-grace-ms", "5".into()),
        ("--commit-max-entries", "3".into()),
        ("--commit-max-delay-us", "1000".into()),
        ("--default-decision", "rbac/allow".into()),
        ("--ingest-path", "/opa/logs".into()),
        ("--max-body", "200000".into()),
        ("--max-ingest-body", "300000".into()),
        ("--revision", "r-flags".into()),
        ("--sign-entries", String::new()),
        ("--salts", salts.display().to_string()),
        ("--segment-bytes", "4096".into()),
        ("--max-input-bytes", "50000".into()),
        ("--max-connections", "40".into()),
        ("--header-timeout-ms", "4000".into()),
        ("--body-timeout-ms", "4000".into()),
        ("--idle-timeout-ms", "4000".into()),
        ("--shutdown-timeout-ms", "3000".into()),
        ("--allowed-host", "docket.test".into()),
        ("--body-budget-bytes", "8000000".into()),
        ("--client-rate", "1000000".into()),
        ("--client-burst", "4000000".into()),
        ("--origin", "docket.test/flags".into()),
        ("--read-token-file", read_token.display().to_string()),
        // A witness that is down for the whole test: decisions go on regardless.
        (
            "--witness",
            format!(
                "{}@http://127.0.0.1:9",
                docket_ledger::CosignerKey::of(
                    docket_ledger::SecretKey::from_seed("flags.test/witness", &[5; 32])
                        .unwrap()
                        .public()
                )
                .to_vkey()
            ),
        ),
        ("--witness-interval-ms", "100".into()),
        ("--bundle", {
            let bundle = dir.join("flags-bundle");
            std::fs::create_dir_all(bundle.join("flagsbundle")).unwrap();
            std::fs::write(
                bundle.join(".manifest"),
                r#"{"revision":"fb1","roots":["flagsbundle"]}"#,
            )
            .unwrap();
            std::fs::write(bundle.join("flagsbundle/data.json"), r#"{"on":true}"#).unwrap();
            crate::bundles::sign(
                &bundle,
                "HS256",
                "flags-secret",
                &["--kid", "flags", "--scope", "flags"],
            );
            bundle.display().to_string()
        }),
        ("--verification-key", "flags-secret".into()),
        ("--verification-key-id", "flags".into()),
        ("--signing-alg", "HS256".into()),
        ("--scope", "flags".into()),
        ("--bundle-min-delay-seconds", "30".into()),
        ("--bundle-max-delay-seconds", "45".into()),
        // The log on a one-server NATS cluster: one replica asked for explicitly, and the
        // server's fsync checked, then accepted unchecked all the same.
        ("--nats", nats.url("FLAGS", "hostile")),
        ("--nats-replicas", "1".into()),
        ("--nats-monitor", nats.monitors()[0].clone()),
        ("--nats-unchecked-fsync", String::new()),
        ("--allow-origin", "https://audit.example".into()),
    ];
    // Every flag `docket serve --help` documents is here (beside --addr and --dir, which every
    // test sets, and --policy, set below): a new flag must be added to this test.
    let help = docket_command().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let documented: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| {
            w.starts_with("--")
                && w.len() > 2
                && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .filter(|w| !["--addr", "--dir", "--policy", "--help"].contains(w))
        .collect();
    let tested: BTreeSet<&str> = flags.iter().map(|(f, _)| *f).collect();
    assert_eq!(documented, tested, "flags documented vs tested");

    let policy = crate::common::repo().join("examples/policies");
    let mut args: Vec<String> = vec!["--policy".into(), policy.display().to_string()];
    for (flag, value) in &flags {
        args.push(flag.to_string());
        if !value.is_empty() {
            args.push(value.clone());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(&dir, &args);
    let c = client();
    // Concurrent decisions through the delayed group commit (the flag that once panicked).
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (c, url) = (c.clone(), s.url("/"));
            std::thread::spawn(move || {
                c.post(url)
                    .header("content-type", "application/json")
                    .body(r#"{"user":"alice","action":"read","resource":{"type":"document","id":"d1"}}"#)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(
            h.join().unwrap(),
            200,
            "POST / under --default-decision rbac/allow"
        );
    }
    let upload = c
        .post(s.url("/opa/logs"))
        .bearer_auth("a-token-of-more-than-16-chars")
        .header("content-type", "application/json")
        .body(r#"[{"decision_id":"d-flags-1","result":true}]"#)
        .send()
        .unwrap();
    assert_eq!(upload.status().as_u16(), 200, "{}", upload.text().unwrap());
    let checkpoint = c.get(s.url("/checkpoint")).send().unwrap().text().unwrap();
    assert!(
        checkpoint.starts_with("docket.test/flags\n"),
        "{checkpoint}"
    );
    let key = c
        .get(s.url("/v1/log/public-key"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        key.starts_with("docket.test/flags+"),
        "the key is named after the origin: {key}"
    );
    assert!(
        checkpoint.contains("\u{2014} docket.test/flags "),
        "signed by the key named after the origin: {checkpoint}"
    );
    assert_eq!(c.get(s.url("/v1/log")).send().unwrap().status(), 401);
    // Another origin's script may read, if named with --allow-origin, and nothing else.
    let from = |origin: &str, request: reqwest::blocking::RequestBuilder| {
        request.header("origin", origin).send().unwrap()
    };
    let allowed = from("https://audit.example", c.get(s.url("/checkpoint")));
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://audit.example"
    );
    let other = from("https://evil.example", c.get(s.url("/checkpoint")));
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let preflight = from(
        "https://audit.example",
        c.request(reqwest::Method::OPTIONS, s.url("/v1/log/entries"))
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization"),
    );
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "authorization"
    );
    let write_preflight = from(
        "https://audit.example",
        c.request(reqwest::Method::OPTIONS, s.url("/v1/data/rbac/allow"))
            .header("access-control-request-method", "POST"),
    );
    assert_eq!(write_preflight.status().as_u16(), 403);
    let decided = from(
        "https://audit.example",
        c.post(s.url("/v1/data/rbac/allow"))
            .json(&json!({"input": {}})),
    );
    assert!(
        decided
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The configuration names bundle URLs and paths: read-token holders only.
    assert_eq!(c.get(s.url("/v1/config")).send().unwrap().status(), 401);
    let config: Value = c
        .get(s.url("/v1/config"))
        .bearer_auth("a-read-token-of-16-chars-or-more")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        config["result"]["docket"]["log"]["store"], "nats-jetstream",
        "{config}"
    );
    assert_eq!(
        config["result"]["docket"]["log"]["fsync_checked"], false,
        "{config}"
    );
    let log: Value = c
        .get(s.url("/v1/log"))
        .bearer_auth("a-read-token-of-16-chars-or-more")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(log["policy_version"]["revision"], "r-flags");
    let big = format!(r#"{{"input":{{"pad":"{}"}}}}"#, "x".repeat(60_000));
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413, "--max-input-bytes 50000");
    let status = s.stop();
    assert!(status.success(), "{status:?}");
    let verified = verify_dir(&dir);
    assert!(verified.contains("(8 decisions)"), "{verified}");
    // --sign-entries: every entry carries its own signature.
    let text = crate::common::export_text(&dir);
    let entries: Vec<&str> = text.lines().filter(|l| l.starts_with("{\"seq\"")).collect();
    assert_eq!(entries.len(), 11, "{text}");
    assert!(
        entries.iter().all(|l| l.contains("\"signature\"")),
        "{text}"
    );
    let segments = std::fs::read_dir(dir.join("data/log/segments"))
        .unwrap()
        .count();
    assert!(
        segments > 1,
        "--segment-bytes 4096 rolls segments over ({segments})"
    );
}

#[test]
fn writes_without_the_token_are_refused_before_their_body_is_read() {
    let dir = scratch("hostile-auth");
    let s = Server::start(&dir, &["--body-budget-bytes", "1000000"]);
    // A 64 MiB upload, no token: the 401 comes before a byte of the body is sent.
    for (method, path) in [
        ("POST", "/logs"),
        ("PUT", "/v1/policies/x"),
        ("PUT", "/v1/data/x"),
    ] {
        let mut stream = connect(&s);
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 67108864\r\n\r\n"
        )
        .unwrap();
        let response = read_response(&mut stream);
        assert_eq!(status_of(&response), 401, "{method} {path}: {response}");
    }
    // Sixteen of them at once, each then sending its whole 64 MiB regardless: the server has
    // answered and holds none of it.
    let before = s.rss_kib();
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let mut stream = connect(&s);
            std::thread::spawn(move || {
                stream
                    .write_all(b"POST /logs HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 67108864\r\n\r\n")
                    .unwrap();
                let status = status_of(&read_response(&mut stream));
                let chunk = vec![b' '; 1 << 20];
                for _ in 0..64 {
                    if stream.write_all(&chunk).is_err() {
                        break; // closed by the server
                    }
                }
                status
            })
        })
        .collect();
    for sender in senders {
        assert_eq!(sender.join().unwrap(), 401);
    }
    let after = s.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "the server grew from {before} KiB to {after} KiB holding refused uploads"
    );
    // Bodies in flight share the budget: one request holding 900 kB leaves no room for another.
    let mut holder = connect(&s);
    holder
        .write_all(b"POST /v1/data/rbac/allow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n{\"input\":")
        .unwrap();
    // Once the server holds it (docket_body_bytes_in_flight), a second is refused.
    let c = client();
    wait_for_metric(&c, &s, "docket_body_bytes_in_flight 900000");
    let mut second = connect(&s);
    second
        .write_all(b"POST /v1/data/rbac/allow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n")
        .unwrap();
    let response = read_response(&mut second);
    assert_eq!(status_of(&response), 503, "{response}");
    assert!(response.contains("retry shortly"), "{response}");
    drop(holder);
    // With the budget free again, an ordinary decision is answered.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = decide(&c, &s).status().as_u16();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the budget was never returned ({status})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_and_idle_connections_are_closed_and_a_flood_cannot_silence_the_server() {
    let dir = scratch("hostile-timeouts");
    let s = Server::start(
        &dir,
        &[
            "--header-timeout-ms",
            "300",
            "--idle-timeout-ms",
            "300",
            "--body-timeout-ms",
            "300",
            "--max-connections",
            "20",
        ],
    );
    // Half a request head: the connection is closed.
    let mut slow_head = connect(&s);
    slow_head
        .write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    assert_eq!(read_to_close(&mut slow_head), "");
    // A keep-alive connection left idle after a response: closed.
    let mut idle = connect(&s);
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let first = read_response(&mut idle);
    assert_eq!(status_of(&first), 200);
    assert_eq!(read_to_close(&mut idle), "");
    // A body that never finishes: 408, nothing logged. The server closes keep-alive connections
    // idle for 300 ms, as long as this takes: a pooled connection could be closed just as it is
    // reused, so this client opens one per request.
    let c = Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let before = log_size(&c, &s);
    let mut slow_body = connect(&s);
    slow_body
        .write_all(b"POST /v1/data/rbac/allow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"input\":")
        .unwrap();
    let response = read_to_close(&mut slow_body);
    assert_eq!(status_of(&response), 408, "{response}");
    assert_eq!(log_size(&c, &s), before);

    // Twice the connection limit held open and idle: the server still answers, closing the
    // connections idle longest to make room.
    let flood: Vec<TcpStream> = (0..40).map(|_| connect(&s)).collect();
    for _ in 0..5 {
        assert_eq!(health(&s), 200);
    }
    drop(flood);
}

#[test]
fn when_every_connection_is_busy_a_newcomer_gets_503_at_once() {
    let dir = scratch("hostile-busy");
    let s = Server::start(&dir, &["--max-connections", "8"]);
    // Requests in flight, each waiting for the rest of its body. One the server has not read
    // yet looks idle and may be closed to make room for a probe, so requests are added until
    // eight are in flight and a probe is refused.
    let open_busy = || {
        let mut stream = connect(&s);
        stream
            .write_all(b"POST /v1/data/rbac/allow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .unwrap();
        stream
    };
    let mut busy: Vec<TcpStream> = (0..7).map(|_| open_busy()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        busy.push(open_busy());
        let mut stream = connect(&s);
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            .unwrap();
        let response = read_response(&mut stream);
        if status_of(&response) == 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "never refused: {response}");
    };
    assert!(response.contains("connection limit"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1"),
        "{response}"
    );
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&s) != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
    }
}

#[test]
fn under_a_low_open_file_limit_idle_connections_cannot_stop_answers() {
    let dir = scratch("hostile-nofile");
    // 256 descriptors; the default --max-connections is fitted under them.
    let s = Server::start_with_nofile(&dir, &[], 256);
    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect(s.authority()).ok())
        .collect();
    assert!(
        flood.len() > 256,
        "the flood opened {} connections",
        flood.len()
    );
    for _ in 0..5 {
        assert_eq!(health(&s), 200);
    }
    let c = client();
    assert_eq!(decide(&c, &s).status().as_u16(), 200);
    drop(flood);
}

#[test]
fn sigterm_with_a_client_stuck_mid_body_stops_in_bounded_time_keeping_acknowledged_entries() {
    let dir = scratch("hostile-shutdown");
    let s = Server::start(&dir, &["--shutdown-timeout-ms", "500"]);
    let c = client();
    let acknowledged = decide(&c, &s);
    assert_eq!(acknowledged.status().as_u16(), 200);
    let id = acknowledged.headers()["x-docket-decision-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut stuck = connect(&s);
    stuck
        .write_all(b"POST /v1/data/rbac/allow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .unwrap();
    assert_eq!(decide(&c, &s).status().as_u16(), 200);
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(60))
        .expect("docket serve did not stop after SIGTERM");
    assert!(status.success(), "{status:?}");
    drop(stuck);
    verify_dir(&dir);
    let text = crate::common::export_text(&dir);
    assert!(
        text.contains(&id),
        "the acknowledged decision {id} is in the log"
    );
}

#[test]
fn decision_inputs_are_bounded_and_a_client_quota_is_enforced() {
    let dir = scratch("hostile-quota");
    let s = Server::start(
        &dir,
        &[
            "--max-input-bytes",
            "2000",
            "--client-rate",
            "1",
            "--client-burst",
            "3000",
        ],
    );
    let c = client();
    let before = log_size(&c, &s);
    let big = json!({"input": {"pad": "x".repeat(3000)}}).to_string();
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(r.text().unwrap().contains("--max-input-bytes"));
    assert_eq!(log_size(&c, &s), before, "nothing sealed");
    // 2,000-byte inputs against a 3,000-byte burst at 1 byte/s: two are sealed (the second
    // while quota is left), then 429 until the debt is earned back.
    let input = json!({"input": {"pad": "y".repeat(1990)}}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .post(s.url("/v1/data/rbac/allow"))
            .header("content-type", "application/json")
            .body(input.clone())
            .send()
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(log_size(&c, &s), before + 2);
    // The token holder (a proxy such as the Envoy filter) is not held to a client's quota.
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .bearer_auth(s.token())
        .header("content-type", "application/json")
        .body(input)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn web_pages_cannot_write_decisions_or_read_through_a_rebound_name() {
    let dir = scratch("hostile-csrf");
    let s = Server::start(&dir, &["--allowed-host", "docket.test"]);
    let c = client();
    let before = log_size(&c, &s);
    let post = |headers: &[(&str, &str)]| {
        let mut r = c.post(s.url("/v1/data/rbac/allow")).body(RBAC);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // The bodies a page can send cross-site without a preflight.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let (status, body) = post(&headers);
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert!(body.contains("Content-Type: application/json"), "{body}");
    }
    let (status, body) = post(&[
        ("content-type", "application/json"),
        ("origin", "https://evil.example"),
    ]);
    assert_eq!(status, 403, "{body}");
    let r = c
        .get(s.url("/v1/data/rbac/allow?input=%7B%7D"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // DNS rebinding: a name the server was not told it answers to.
    for path in ["/v1/log", "/v1/log/entries", "/v1/data/rbac/allow"] {
        let r = c
            .get(s.url(path))
            .header("host", "evil.example:8181")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 421, "{path}");
    }
    assert_eq!(log_size(&c, &s), before, "nothing was sealed");
    // What is allowed: JSON from a service, the page's own origin, a configured name, and the
    // token holder under any name.
    assert_eq!(
        post(&[("content-type", "application/json; charset=utf-8")]).0,
        200
    );
    let own = format!("http://{}", s.authority());
    assert_eq!(
        post(&[
            ("content-type", "application/json"),
            ("origin", own.as_str())
        ])
        .0,
        200
    );
    let r = c
        .get(s.url("/v1/log"))
        .header("host", "docket.test:8181")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(s.url("/v1/data/rbac/allow"))
        .header("host", "docket")
        .bearer_auth(s.token())
        .header("content-type", "application/json")
        .body(RBAC)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(log_size(&c, &s), before + 3);
}

#[test]
fn secrets_readable_by_others_are_refused_and_new_files_are_private() {
    let dir = scratch("hostile-modes");
    let s = Server::start(&dir, &[]);
    let c = client();
    assert_eq!(decide(&c, &s).status().as_u16(), 200);
    assert!(s.stop().success());
    let data = dir.join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("log")), 0o700);
    assert_eq!(mode(&data.join("log/segments")), 0o700);
    for file in ["docket.key", "token", "mask-salts.jsonl", "log/checkpoint"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    for segment in std::fs::read_dir(data.join("log/segments")).unwrap() {
        assert_eq!(mode(&segment.unwrap().path()), 0o600);
    }
    // An export holds the same records: owner-only too.
    crate::common::export_text(&dir);
    assert_eq!(mode(&dir.join("export.jsonl")), 0o600);
    for secret in ["docket.key", "token"] {
        let path = data.join(secret);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = crate::common::serve_to_exit(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("chmod 600 {}", path.display())),
            "{stderr}"
        );
        assert!(!stderr.contains("Os {"), "no Debug output: {stderr}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    verify_dir(&dir);
}

#[test]
fn tile_addresses_past_the_last_leaf_or_spelled_twice_are_not_found() {
    let dir = scratch("hostile-tiles");
    let s = Server::start(&dir, &[]);
    let c = client();
    assert_eq!(decide(&c, &s).status().as_u16(), 200);
    let size = log_size(&c, &s);
    let ok = c
        .get(s.url(&format!("/tile/0/000.p/{size}")))
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.bytes().unwrap().len() as u64, 32 * size);
    for path in [
        "/tile/0/x072/x057/x594/x037/x927/936.p/5",
        "/tile/entries/x072/x057/x594/x037/x927/935",
        "/tile/entries/x072/x057/x594/x037/x927/936",
        "/tile/00/000",
        "/tile/00/000.p/1",
        "/tile/1/x281/x474/x976/x710/656",
    ] {
        let r = c.get(s.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

#[test]
fn an_opa_upload_is_acknowledged_only_once_durable() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = scratch("hostile-uploads");
    let s = Server::start(&dir, &[]);
    let (url, token) = (s.url("/logs"), s.token());
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let (url, token) = (url.clone(), token.clone());
            let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let c = client();
                for chunk in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ids: Vec<String> = (0..5).map(|e| format!("up-{t}-{chunk}-{e}")).collect();
                    let events: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"decision_id": id, "path": "rbac/allow", "result": true}))
                        .collect();
                    let sent = c
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&events).unwrap())
                        .send();
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acknowledged.lock().unwrap().extend(ids)
                        }
                        _ => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "uploads were not acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let s = Server::start(&dir, &[]);
    let c = client();
    for id in &acknowledged {
        let r = c
            .get(s.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "acknowledged event {id} is not in the log"
        );
    }
    drop(s);
    verify_dir(&dir);
}

#[test]
fn a_runaway_evaluation_does_not_hold_the_worker_ordinary_decisions_need() {
    use std::sync::{Arc, Mutex};
    let dir = scratch("hostile-lanes");
    let policies = crate::common::rbac_policies(&dir);
    // 25 million steps: stopped by the runtime's time limit, not by memory.
    std::fs::write(
        policies.join("spin.rego"),
        "package spin\n\nimport rego.v1\n\nforever if {\n\tevery i in numbers.range(1, 5000) {\n\t\tevery j in numbers.range(1, 5000) {\n\t\t\ti * j > 0\n\t\t}\n\t}\n}\n",
    )
    .unwrap();
    let policy_arg = policies.display().to_string();
    // One worker per lane: without lanes, the runaway would hold the only one.
    let s = Server::start(&dir, &["--policy", policy_arg.as_str(), "--workers", "1"]);
    let finished = Arc::new(Mutex::new(Vec::new()));
    let runaway = {
        let (url, finished) = (s.url("/v1/data/spin/forever"), Arc::clone(&finished));
        std::thread::spawn(move || {
            let r = client()
                .post(url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .unwrap();
            let (status, body) = (r.status().as_u16(), r.text().unwrap());
            finished.lock().unwrap().push("runaway");
            (status, body)
        })
    };
    // The runaway is evaluating once the server reports a request in flight beside this one;
    // then an ordinary decision is answered while it still runs.
    let c = client();
    wait_for_metric(&c, &s, "docket_body_bytes_in_flight 2");
    assert_eq!(decide(&c, &s).status().as_u16(), 200);
    finished.lock().unwrap().push("ordinary");
    let (status, body) = runaway.join().unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("ran longer than"),
        "stopped by the time limit: {body}"
    );
    assert_eq!(*finished.lock().unwrap(), ["ordinary", "runaway"]);
}

#[test]
fn reading_entries_can_require_a_token_while_checkpoints_and_hash_tiles_stay_public() {
    let dir = scratch("hostile-read-token");
    let read_token = dir.join("read-token");
    std::fs::write(&read_token, "a-read-token-of-16-chars-or-more\n").unwrap();
    std::fs::set_permissions(&read_token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let read_arg = read_token.display().to_string();
    let s = Server::start(&dir, &["--read-token-file", read_arg.as_str()]);
    let c = client();
    let id = decide(&c, &s).headers()["x-docket-decision-id"]
        .to_str()
        .unwrap()
        .to_string();
    let get = |path: &str, token: Option<&str>| {
        let mut r = c.get(s.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status().as_u16()
    };
    let write = s.token();
    for path in [
        "/v1/log".to_string(),
        "/v1/log/entries".to_string(),
        "/v1/log/entries/1".to_string(),
        format!("/v1/log/decisions/{id}"),
        "/tile/entries/000.p/2".to_string(),
    ] {
        assert_eq!(get(&path, None), 401, "{path}");
        assert_eq!(get(&path, Some("not-the-token-at-all")), 401, "{path}");
        assert_eq!(
            get(&path, Some("a-read-token-of-16-chars-or-more")),
            200,
            "{path}"
        );
        assert_eq!(get(&path, Some(&write)), 200, "{path}");
    }
    for path in [
        "/checkpoint",
        "/v1/log/checkpoint",
        "/v1/log/public-key",
        "/v1/log/keys",
        "/tile/0/000.p/2",
        "/v1/log/proof/consistency?from=1",
    ] {
        assert_eq!(get(path, None), 200, "{path}");
    }
    // A read token others can read is refused like the write token.
    drop(s);
    std::fs::set_permissions(&read_token, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = docket_command()
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(dir.join("data"))
        .args(["--read-token-file", read_arg.as_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}
