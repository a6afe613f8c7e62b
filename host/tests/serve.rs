//! `docket serve` over real HTTP on loopback: the real binary, the real component, real files.
//! Decisions are sealed before they are answered and can be proven; policy changes are sealed
//! before they take effect; OPA decision-log uploads are sealed all-or-nothing; a restart
//! continues the chain; a kill -9 under concurrent load loses no acknowledged decision.

use crate::common::{Server, scratch, verify_dir};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::checkpoint::SignedCheckpoint;
use docket_ledger::merkle::{verify_consistency, verify_inclusion};
use docket_ledger::{Hash, PublicKey};
use docket_runtime::Verdict;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn rbac_input(user: &str, action: &str, kind: &str) -> Value {
    json!({"user": user, "action": action, "resource": {"type": kind, "id": format!("{kind}-1")}})
}

fn decide(c: &Client, s: &Server, path: &str, input: &Value) -> (u16, Value) {
    json_of(
        c.post(s.url(&format!("/v1/data/{path}")))
            .json(&json!({ "input": input }))
            .send()
            .unwrap(),
    )
}

/// The sequence number of the entry a new decision gets (`x-docket-seq`).
fn next_decision_seq(c: &Client, s: &Server) -> u64 {
    let response = c
        .post(s.url("/v1/data/rbac/allow"))
        .json(&json!({"input": {}}))
        .send()
        .unwrap();
    response.headers()["x-docket-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn b64_hash(text: &Value) -> Hash {
    Hash(
        B64.decode(text.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

/// Checks a decision's proof bundle the way an outside client would: the checkpoint's
/// signature, then the entry's inclusion under its root.
fn check_decision_proof(bundle: &Value, genesis: &PublicKey) -> u64 {
    let note = bundle["checkpoint"].as_str().unwrap();
    let checkpoint = SignedCheckpoint::parse(note).unwrap();
    assert!(
        checkpoint.is_signed_by(genesis),
        "checkpoint not signed by the log key"
    );
    let encoded = B64
        .decode(bundle["entry"]["encoded"].as_str().unwrap())
        .unwrap();
    let entry = docket_ledger::Entry::decode(&encoded).unwrap();
    assert_eq!(entry.hash, entry.compute_hash());
    let proof = &bundle["inclusion_proof"];
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    assert_eq!(proof["tree_size"], checkpoint.checkpoint.size);
    verify_inclusion(
        &entry.hash,
        entry.seq,
        checkpoint.checkpoint.size,
        &hashes,
        &checkpoint.checkpoint.root,
    )
    .unwrap();
    entry.seq
}

#[test]
fn decisions_are_answered_as_opa_does_and_each_is_provable() {
    let dir = scratch("decisions");
    let server = Server::start(&dir, &[]);
    let c = client();
    let genesis = server.genesis_key();

    let (status, body) = decide(
        &c,
        &server,
        "rbac/allow",
        &rbac_input("alice", "read", "document"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!(true));
    let (_, denied) = decide(
        &c,
        &server,
        "rbac/allow",
        &rbac_input("mallory", "delete", "service"),
    );
    assert_eq!(denied["result"], json!(false));
    // An undefined document: 200 with a decision_id and no result, as OPA answers.
    let (status, undefined) = decide(&c, &server, "rbac/no_such_rule", &json!({}));
    assert_eq!(status, 200);
    assert!(undefined.get("result").is_none(), "{undefined}");
    assert!(undefined["decision_id"].is_string());

    // ?metrics=true answers OPA's metrics member, its timers measured; ?explain is refused
    // before anything is evaluated or sealed, since docket has no query tracer.
    let (status, measured) = json_of(
        c.post(server.url("/v1/data/rbac/allow?metrics=true"))
            .json(&json!({"input": rbac_input("alice", "read", "document")}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{measured}");
    assert_eq!(measured["result"], json!(true));
    for timer in [
        "timer_rego_query_eval_ns",
        "timer_docket_seal_ns",
        "timer_server_handler_ns",
    ] {
        assert!(
            measured["metrics"][timer].as_u64() > Some(0),
            "{timer}: {measured}"
        );
    }
    let seq_before = next_decision_seq(&c, &server);
    let (status, refused) = json_of(
        c.post(server.url("/v1/data/rbac/allow?explain=full"))
            .json(&json!({"input": rbac_input("alice", "read", "document")}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("docket does not explain decisions"),
        "{refused}"
    );
    assert_eq!(
        next_decision_seq(&c, &server),
        seq_before + 1,
        "nothing was sealed for the refused request"
    );

    // Headers name the entry.
    let response = c
        .get(server.url("/v1/data/rbac/allow"))
        .query(&[("input", rbac_input("bob", "read", "document").to_string())])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let seq: u64 = response.headers()["x-docket-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let header_id = response.headers()["x-docket-decision-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, got) = json_of(response);
    assert_eq!(got["decision_id"], json!(header_id));

    // Every decision is in the log, provable against a signed checkpoint, and its record holds
    // what was answered.
    for (answer, input) in [
        (&body, Some(rbac_input("alice", "read", "document"))),
        (&denied, Some(rbac_input("mallory", "delete", "service"))),
        (&undefined, Some(json!({}))),
        (&got, Some(rbac_input("bob", "read", "document"))),
    ] {
        let id = answer["decision_id"].as_str().unwrap();
        let (status, bundle) = json_of(
            c.get(server.url(&format!("/v1/log/decisions/{id}")))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "{bundle}");
        check_decision_proof(&bundle, &genesis);
        let record = &bundle["entry"]["record"];
        assert_eq!(record["decision_id"], json!(id));
        assert_eq!(record.get("result"), answer.get("result"));
        assert_eq!(record.get("input"), input.as_ref());
        assert_eq!(bundle["entry"]["kind"], "decision");
    }
    let (_, by_seq) = json_of(
        c.get(server.url(&format!("/v1/log/entries/{seq}")))
            .send()
            .unwrap(),
    );
    assert_eq!(by_seq["decision_id"], json!(header_id));

    // OPA's error shapes.
    let (status, err) = json_of(
        c.post(server.url("/v1/data/rbac/allow"))
            .header("content-type", "application/json")
            .body("{\"input\": ")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_parameter");
    assert!(
        err["message"].as_str().unwrap().contains("malformed input"),
        "{err}"
    );
    let (status, err) = json_of(
        c.post(server.url("/"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("undefined_document"))
    );
    let (status, _) = json_of(c.get(server.url("/health")).send().unwrap());
    assert_eq!(status, 200);

    // Proofs between checkpoints, and C2SP tiles that agree with the entries.
    let (_, summary) = json_of(c.get(server.url("/v1/log")).send().unwrap());
    let latest = SignedCheckpoint::parse(summary["checkpoint"].as_str().unwrap()).unwrap();
    let size = latest.checkpoint.size;
    let (_, consistency) = json_of(
        c.get(server.url(&format!("/v1/log/proof/consistency?from=2&to={size}")))
            .send()
            .unwrap(),
    );
    let (_, entries) = json_of(
        c.get(server.url("/v1/log/entries?start=0&limit=1000"))
            .send()
            .unwrap(),
    );
    let leaves: Vec<Hash> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let bytes = B64.decode(e["encoded"].as_str().unwrap()).unwrap();
            docket_ledger::Entry::decode(&bytes).unwrap().hash
        })
        .collect();
    assert_eq!(leaves.len() as u64, size);
    let old_root = docket_ledger::merkle::root(&leaves[..2]);
    let proof: Vec<Hash> = consistency["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    verify_consistency(2, size, &proof, &old_root, &latest.checkpoint.root).unwrap();

    let tile = c
        .get(server.url(&format!("/tile/0/000.p/{size}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let tile_hashes: Vec<Hash> = tile
        .chunks(32)
        .map(|c| Hash(c.try_into().unwrap()))
        .collect();
    assert_eq!(tile_hashes, leaves);
    let bundle = c
        .get(server.url(&format!("/tile/entries/000.p/{size}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut at = 0;
    let mut from_bundle = Vec::new();
    while at < bundle.len() {
        let len = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
        from_bundle.push(docket_ledger::hash::leaf_hash(
            &bundle[at + 2..at + 2 + len],
        ));
        at += 2 + len;
    }
    assert_eq!(from_bundle, leaves);
    assert_eq!(
        c.get(server.url("/tile/0/000"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let key = c
        .get(server.url("/v1/log/public-key"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(PublicKey::from_vkey(key.trim()).unwrap(), genesis);
    assert!(!key.contains("PRIVATE"));

    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("docket_decisions_total{outcome=\"allow\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("docket_commit_batch_entries_count"));

    assert!(server.stop().success());
    let summary = verify_dir(&dir);
    assert!(
        summary.starts_with(&format!("verified: {size} entries")),
        "{summary}"
    );
}

#[test]
fn policy_changes_need_the_token_and_are_sealed_before_they_take_effect() {
    let dir = scratch("policies");
    let server = Server::start(&dir, &[]);
    let c = client();
    let token = server.token();
    let module = "package tenants\n\nallow if input.tenant in data.tenants.active\n";

    let (status, err) = json_of(
        c.put(server.url("/v1/policies/tenants.rego"))
            .body(module)
            .send()
            .unwrap(),
    );
    assert_eq!((status, err["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = json_of(
        c.put(server.url("/v1/policies/tenants.rego"))
            .bearer_auth("not-the-token-at-all")
            .body(module)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401);

    let (status, body) = json_of(
        c.put(server.url("/v1/policies/tenants.rego"))
            .bearer_auth(&token)
            .body(module)
            .send()
            .unwrap(),
    );
    assert_eq!((status, &body), (200, &json!({})));
    let (status, _) = json_of(
        c.put(server.url("/v1/data/tenants/active"))
            .bearer_auth(&token)
            .json(&json!(["acme"]))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 204);
    let (_, yes) = decide(&c, &server, "tenants/allow", &json!({"tenant": "acme"}));
    assert_eq!(yes["result"], json!(true));

    // A module that does not compile is refused in OPA's shape and changes nothing.
    let (status, err) = json_of(
        c.put(server.url("/v1/policies/broken.rego"))
            .bearer_auth(&token)
            .body("package broken\nallow if {")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_parameter");
    assert_eq!(err["errors"][0]["code"], "rego_parse_error");
    // A data document docket would have to round (an integer beyond 64 bits) is refused in
    // words, and nothing is sealed for it.
    let (status, err) = json_of(
        c.put(server.url("/v1/data/tenants/ids"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(r#"{"big": 18446744073709551617}"#)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("the integer 18446744073709551617 is beyond 64 bits"),
        "{err}"
    );
    let (_, still) = decide(&c, &server, "tenants/allow", &json!({"tenant": "acme"}));
    assert_eq!(still["result"], json!(true));
    let (status, _) = json_of(
        c.get(server.url("/v1/policies/broken.rego"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 404);

    // The decision's policy version is the one the last sealed change announced, and that
    // change carries the policy text.
    let (_, bundle) = json_of(
        c.get(server.url(&format!(
            "/v1/log/decisions/{}",
            still["decision_id"].as_str().unwrap()
        )))
        .send()
        .unwrap(),
    );
    let seq = bundle["entry"]["seq"].as_u64().unwrap();
    let (_, page) = json_of(
        c.get(server.url(&format!("/v1/log/entries?start=0&limit={seq}")))
            .send()
            .unwrap(),
    );
    let changes: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "policy-change")
        .map(|e| &e["record"])
        .collect();
    let ops: Vec<&str> = changes.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["load", "put_policy", "put_data"]);
    assert_eq!(changes[1]["source"], module);
    assert_eq!(changes[2]["value"], json!(["acme"]));
    assert_eq!(
        changes[2]["policy_version"],
        bundle["entry"]["record"]["policy_version"]
    );

    let (_, listed) = json_of(c.get(server.url("/v1/policies")).send().unwrap());
    assert!(
        listed["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "tenants.rego")
    );
    let (status, _) = json_of(
        c.delete(server.url("/v1/policies/tenants.rego"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let (_, gone) = decide(&c, &server, "tenants/allow", &json!({"tenant": "acme"}));
    assert!(gone.get("result").is_none(), "{gone}");
    let (status, _) = json_of(
        c.delete(server.url("/v1/policies/tenants.rego"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 404);
    assert!(server.stop().success());
    verify_dir(&dir);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Decision events as OPA's decision-log plugin writes them (docs: management-decision-logs).
fn opa_events(n: usize, first: usize) -> Value {
    (first..first + n)
        .map(|i| {
            json!({
                "labels": {"app": "billing", "id": "2b4f5e0b-0e8a-4c3c-9a8e-opa-instance", "version": "1.20.2"},
                "decision_id": format!("4ca636c1-55e4-417a-b1d8-{i:012}"),
                "bundles": {"authz": {"revision": "v7"}},
                "path": "rbac/allow",
                "input": rbac_input("alice", "read", "document"),
                "result": i % 3 != 0,
                "requested_by": "127.0.0.1:53112",
                "timestamp": "2026-11-23T20:00:00.123456789Z",
                "metrics": {"timer_rego_query_eval_ns": 51000, "timer_server_handler_ns": 88000},
                "req_id": i,
            })
        })
        .collect::<Vec<_>>()
        .into()
}

#[test]
fn opa_decision_log_uploads_are_sealed_all_or_nothing() {
    let dir = scratch("ingest");
    let server = Server::start(&dir, &["--max-ingest-body", "200000"]);
    let c = client();
    let token = server.token();
    let upload = |body: Vec<u8>, gz: bool| {
        let mut request = c.post(server.url("/logs")).bearer_auth(&token).body(body);
        if gz {
            request = request.header("content-encoding", "gzip");
        }
        json_of(request.send().unwrap())
    };
    let size = |c: &Client| {
        let (_, s) = json_of(c.get(server.url("/v1/log")).send().unwrap());
        s["size"].as_u64().unwrap()
    };

    let events = opa_events(50, 0);
    let payload = serde_json::to_vec(&events).unwrap();
    let (status, receipt) = upload(gzip(&payload), true);
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        (receipt["sealed"].as_u64(), receipt["duplicates"].as_u64()),
        (Some(50), Some(0))
    );
    let before = size(&c);

    // OPA re-sends a chunk whose answer it lost: nothing is sealed twice.
    let (status, receipt) = upload(gzip(&payload), true);
    assert_eq!(
        (
            status,
            receipt["sealed"].as_u64(),
            receipt["duplicates"].as_u64()
        ),
        (200, Some(0), Some(50))
    );
    assert_eq!(size(&c), before);

    // Bad bodies: a clear 4xx and nothing written.
    let compressed = gzip(&serde_json::to_vec(&opa_events(10, 100)).unwrap());
    for (body, gz, status, says) in [
        (
            compressed[..compressed.len() / 2].to_vec(),
            true,
            400,
            "truncated",
        ),
        (b"definitely not gzip".to_vec(), true, 400, "gzip"),
        (b"{\"not\": \"an array\"}".to_vec(), false, 400, "array"),
        (
            b"[{\"decision_id\": \"x\"}, 7]".to_vec(),
            false,
            400,
            "event 1",
        ),
        (vec![b' '; 300_000], false, 413, "larger"),
        (gzip(&[b' '; 300_000]), true, 413, "decompresses"),
    ] {
        let (got, err) = upload(body, gz);
        assert_eq!(got, status, "{err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
        assert_eq!(size(&c), before);
    }
    let (status, _) = json_of(
        c.post(server.url("/logs"))
            .body(payload.clone())
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401);

    // Each event is its own entry, stored as sent, findable by OPA's decision_id.
    let (_, bundle) = json_of(
        c.get(server.url("/v1/log/decisions/4ca636c1-55e4-417a-b1d8-000000000007"))
            .send()
            .unwrap(),
    );
    assert_eq!(bundle["entry"]["kind"], "ingested");
    assert_eq!(bundle["entry"]["record"], events[7]);
    check_decision_proof(&bundle, &server.genesis_key());
    assert!(server.stop().success());
    verify_dir(&dir);
}

#[test]
fn a_restart_continues_the_chain() {
    let dir = scratch("restart");
    let c = client();
    let server = Server::start(&dir, &[]);
    let (_, first) = decide(
        &c,
        &server,
        "rbac/allow",
        &rbac_input("alice", "read", "document"),
    );
    assert!(server.stop().success());
    let server = Server::start(&dir, &[]);
    let (_, second) = decide(
        &c,
        &server,
        "rbac/allow",
        &rbac_input("bob", "read", "document"),
    );
    for answer in [&first, &second] {
        let (status, bundle) = json_of(
            c.get(server.url(&format!(
                "/v1/log/decisions/{}",
                answer["decision_id"].as_str().unwrap()
            )))
            .send()
            .unwrap(),
        );
        assert_eq!(status, 200);
        check_decision_proof(&bundle, &server.genesis_key());
    }
    // Two loads (one per start), two decisions, genesis.
    let (_, summary) = json_of(c.get(server.url("/v1/log")).send().unwrap());
    assert_eq!(summary["size"], 5);
    assert!(server.stop().success());
    verify_dir(&dir);
}

#[test]
fn kill_9_under_concurrent_load_loses_no_acknowledged_decision() {
    let dir = scratch("kill9");
    let server = Server::start(&dir, &[]);
    let url = server.url("/v1/data/rbac/allow");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_at = Instant::now() + Duration::from_secs(20);
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let (url, acknowledged) = (url.clone(), Arc::clone(&acknowledged));
            std::thread::spawn(move || {
                let c = client();
                for i in 0.. {
                    if Instant::now() > stop_at {
                        break;
                    }
                    let input = rbac_input(["alice", "bob", "carol"][i % 3], "read", "document");
                    let Ok(response) = c.post(&url).json(&json!({ "input": input })).send() else {
                        break; // the server is gone
                    };
                    if response.status().as_u16() != 200 {
                        break;
                    }
                    let Ok(body) = response.json::<Value>() else {
                        break;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(body["decision_id"].as_str().unwrap().to_string());
                    let _ = t;
                }
            })
        })
        .collect();
    // Let the load build up, then kill the server without warning.
    while acknowledged.lock().unwrap().len() < 2000 && Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 2000,
        "only {} decisions before the kill",
        acknowledged.len()
    );

    let server = Server::start(&dir, &[]);
    let c = client();
    for id in &acknowledged {
        let status = c
            .get(server.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(
            status, 200,
            "acknowledged decision {id} is missing after the kill"
        );
    }
    assert!(server.stop().success());
    let summary = verify_dir(&dir);
    assert!(summary.starts_with("verified:"), "{summary}");
}

/// The tamper suite over a log that `docket serve` wrote (decisions, a policy change, ingested
/// OPA events), exported by the CLI and verified through the component against the server's
/// latest tree head. Seeded mutations of the export: bit flips anywhere, dropped, duplicated,
/// swapped and truncated lines. Every mutation that changes what the export says is rejected,
/// and a flip inside an entry's line is named at that entry. DOCKET_SERVED_TAMPER_CASES sets
/// the count (400 in the test command).
#[test]
fn every_seeded_mutation_of_a_served_log_is_detected() {
    use docket_ledger::export::{ExportLine, parse_line};
    use docket_ledger::verifier::Location;
    use docket_runtime::Runtime;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    let dir = scratch("tamper");
    let server = Server::start(&dir, &[]);
    let c = client();
    let token = server.token();
    let mut requests = docket_server::examples::Requests::new(11);
    for _ in 0..30 {
        let (path, input) = requests.next_request();
        let input: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(decide(&c, &server, path, &input).0, 200);
    }
    let module = "package extra\n\nallow if input.user == \"root\"\n";
    let put = c
        .put(server.url("/v1/policies/extra.rego"))
        .bearer_auth(&token)
        .body(module)
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let upload = c
        .post(server.url("/logs"))
        .bearer_auth(&token)
        .header("content-encoding", "gzip")
        .body(gzip(&serde_json::to_vec(&opa_events(5, 0)).unwrap()))
        .send()
        .unwrap();
    assert_eq!(upload.status().as_u16(), 200);
    let (_, d) = decide(&c, &server, "extra/allow", &json!({"user": "root"}));
    assert_eq!(d["result"], json!(true));
    assert!(server.stop().success());

    let export = dir.join("served.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["log", "export"])
        .arg(dir.join("data/log"))
        .arg("-o")
        .arg(&export)
        .env(
            "DOCKET_CACHE_DIR",
            std::env::temp_dir().join("docket-test-component-cache"),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let lines: Vec<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let parsed: Vec<_> = lines.iter().map(|l| parse_line(l).ok()).collect();
    let head = lines
        .iter()
        .rev()
        .find_map(|l| match parse_line(l) {
            Ok(ExportLine::Checkpoint(note)) => Some(SignedCheckpoint::parse(&note).unwrap()),
            _ => None,
        })
        .unwrap()
        .checkpoint;
    let vkey = std::fs::read_to_string(dir.join("data/docket.pub")).unwrap();
    let runtime = Runtime::new(Some(
        &std::env::temp_dir().join("docket-test-component-cache"),
    ))
    .unwrap();
    let mut instance = runtime.instantiate().unwrap();
    let mut verify = |lines: &[String]| {
        let mut v = instance.verifier(vkey.trim()).unwrap();
        v.expect_tree_head(head.size, &head.root.0).unwrap();
        for line in lines {
            v.push_export_line(line).verdict().unwrap()?;
        }
        v.finish().verdict().unwrap().map(|report| report.entries)
    };
    assert_eq!(verify(&lines).unwrap(), head.size);
    // Entry lines by their sequence number, for naming the entry a flip lands in.
    let seq_of_line: Vec<Option<u64>> = parsed
        .iter()
        .map(|p| match p {
            Some(ExportLine::Entry(e)) => Some(e.seq),
            _ => None,
        })
        .collect();
    assert!(
        seq_of_line.iter().flatten().count() >= 38,
        "decisions, the policy load and change, and ingested events are all in the log"
    );

    // What an export says: its entries in order, and each checkpoint with the number of
    // entries before it.
    type Meaning = (Vec<docket_ledger::Entry>, Vec<(usize, String)>);
    let meaning = |lines: &[String]| -> Option<Meaning> {
        let mut entries = Vec::new();
        let mut checkpoints = Vec::new();
        for line in lines {
            match parse_line(line).ok()? {
                ExportLine::Entry(e) => entries.push(e),
                ExportLine::Checkpoint(note) => checkpoints.push((entries.len(), note)),
                ExportLine::Header { .. } => {}
            }
        }
        Some((entries, checkpoints))
    };
    let (genuine_entries, genuine_checkpoints) = meaning(&lines).unwrap();
    // The same entries, the same last checkpoint, and only genuine checkpoints at their genuine
    // places: at most a checkpoint line dropped or repeated between others.
    let same_entries = |mutated: &[String]| {
        meaning(mutated).is_some_and(|(entries, checkpoints)| {
            mutated.first() == lines.first()
                && entries == genuine_entries
                && checkpoints.last() == genuine_checkpoints.last()
                && checkpoints.iter().all(|c| genuine_checkpoints.contains(c))
        })
    };
    let cases: usize = std::env::var("DOCKET_SERVED_TAMPER_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(400);
    let mut rng = StdRng::seed_from_u64(0x7a3e);
    let (mut detected, mut unchanged) = (0, 0);
    let mut detected_by_kind = std::collections::BTreeMap::<String, usize>::new();
    for case in 0..cases {
        let mut mutated = lines.clone();
        let k = rng.random_range(1..lines.len());
        let mut flipped_entry = None;
        let what = match rng.random_range(0..5u32) {
            0 | 1 => {
                let mut bytes = mutated[k].clone().into_bytes();
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8u32);
                mutated[k] = String::from_utf8_lossy(&bytes).into_owned();
                flipped_entry = seq_of_line[k];
                format!("flip in line {k} at byte {at}")
            }
            2 => {
                mutated.remove(k);
                format!("drop line {k}")
            }
            3 => {
                mutated.insert(k, lines[k].clone());
                format!("duplicate line {k}")
            }
            _ if k + 1 < lines.len() => {
                mutated.swap(k, k + 1);
                format!("swap lines {k} and {}", k + 1)
            }
            _ => {
                mutated.truncate(k);
                format!("truncate to {k} lines")
            }
        };
        let verdict = verify(&mutated);
        if same_entries(&mutated) {
            // A checkpoint line dropped or repeated between others: every entry is still there
            // and signed by a later checkpoint, so the log must still verify.
            assert!(
                verdict.is_ok(),
                "case {case} ({what}) changed no entry yet failed"
            );
            unchanged += 1;
            continue;
        }
        let err = match verdict {
            Ok(n) => panic!("case {case} ({what}) was not detected ({n} entries verified)"),
            Err(err) => err,
        };
        if let Some(seq) = flipped_entry {
            assert!(
                matches!(err.location, Location::Entry(at) if at == seq),
                "case {case} ({what}) was named at {:?}, not entry {seq}: {}",
                err.location,
                err.detail
            );
        }
        detected += 1;
        let kind = what.split(' ').next().unwrap_or_default().to_string();
        *detected_by_kind.entry(kind).or_default() += 1;
    }
    eprintln!(
        "served-log tamper suite: {detected} of {cases} mutations detected; {unchanged} changed no entry (a checkpoint line dropped or repeated) and still verified"
    );
    // Every kind of mutation was made and caught: a generator that stopped producing one (or
    // produced only harmless ones) would otherwise pass unnoticed.
    for kind in ["flip", "drop", "duplicate", "swap", "truncate"] {
        assert!(
            detected_by_kind.get(kind).is_some_and(|&n| n > 0),
            "no {kind} mutation was detected: {detected_by_kind:?}"
        );
    }
    assert!(
        unchanged * 4 < cases,
        "{unchanged} of {cases} mutations changed no entry: the suite barely tampers"
    );
}

/// An upload whose sender's deadline (`x-docket-deadline-ns`) has passed when the writer reaches
/// it is not sealed (504): the sender already acted as if it were not. One within its deadline
/// is sealed as usual; a malformed deadline is a 400.
#[test]
fn an_upload_past_its_senders_deadline_is_not_sealed() {
    let dir = scratch("deadline");
    let server = Server::start(&dir, &[]);
    let c = client();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let upload = |id: &str, deadline: &str| {
        c.post(server.url("/logs"))
            .bearer_auth(server.token())
            .header("x-docket-deadline-ns", deadline)
            .body(format!(
                r#"[{{"decision_id":"{id}","path":"a","result":true}}]"#
            ))
            .send()
            .unwrap()
    };
    let late = upload("late-1", &(now_ns - 1_000_000_000).to_string());
    assert_eq!(late.status().as_u16(), 504);
    assert!(late.text().unwrap().contains("nothing was sealed"));
    let timely = upload("timely-1", &(now_ns + 60_000_000_000).to_string());
    assert_eq!(timely.status().as_u16(), 200);
    assert_eq!(upload("bad-1", "soon").status().as_u16(), 400);
    let found = |id: &str| {
        c.get(server.url(&format!("/v1/log/decisions/{id}")))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        (found("late-1"), found("timely-1"), found("bad-1")),
        (404, 200, 404)
    );
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("docket_expired_uploads_total 1"),
        "{metrics}"
    );
    server.stop();
    verify_dir(&dir);
}

/// `docket eval` and `docket serve` load the same files the same way: the same policy version
/// and the same `load` record (issue 22: they once sealed different digests for the same files).
#[test]
fn eval_and_serve_give_the_same_files_the_same_policy_version() {
    let dir = scratch("same-version");
    let examples = crate::common::repo().join("examples/policies");
    // Two data files, so merging is part of what must agree.
    std::fs::write(dir.join("extra.json"), r#"{"extra": {"a": 1}}"#).unwrap();
    let (rbac, rbac_data, extra) = (
        examples.join("rbac.rego"),
        examples.join("rbac.json"),
        dir.join("extra.json"),
    );
    let out = crate::common::docket_command()
        .args(["keygen", "--out"])
        .arg(&dir)
        .args(["--stem", "eval", "--name", "docket.test/eval"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut eval = crate::common::docket_command()
        .args(["eval", "--path", "rbac/allow", "--input", "-", "--dir"])
        .arg(dir.join("eval-log"))
        .arg("--key")
        .arg(dir.join("eval.key"))
        .arg("--policy")
        .arg(&rbac)
        .arg("--data")
        .arg(&rbac_data)
        .arg("--data")
        .arg(&extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eval.stdin
        .take()
        .unwrap()
        .write_all(br#"{"user":"alice","action":"read","resource":{"type":"document"}}"#)
        .unwrap();
    let out = eval.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let exported = dir.join("eval.jsonl");
    let out = crate::common::docket_command()
        .args(["log", "export"])
        .arg(dir.join("eval-log"))
        .arg("-o")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success());
    let load = std::fs::read_to_string(&exported)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["kind"] == "policy-change")
        .map(|l| serde_json::from_str::<Value>(l["record"].as_str().unwrap()).unwrap())
        .expect("a load record");

    let args: Vec<String> = [&rbac, &rbac_data, &extra]
        .iter()
        .flat_map(|p| ["--policy".to_string(), p.display().to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&dir, &args);
    let served: Value = client()
        .get(server.url("/v1/log"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(load["op"], "load");
    assert_eq!(load["policy_version"], served["policy_version"]);
    assert_eq!(load["data"]["extra"], json!({"a": 1}));
}

/// Every answer is JSON in OPA's error shape, for a route or a method docket does not have too,
/// and the trailing-slash spellings OPA's clients use are served.
#[test]
fn unknown_routes_and_methods_answer_in_opas_error_shape() {
    let dir = crate::common::scratch("serve-routes");
    let s = crate::common::Server::start(&dir, &[]);
    let c = reqwest::blocking::Client::new();
    let json = |r: reqwest::blocking::Response| -> (u16, serde_json::Value) {
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    };
    let (status, body) = json(c.get(s.url("/v1/nothing/here")).send().unwrap());
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("resource_not_found")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing/here"),
        "{body}"
    );
    let (status, body) = json(
        c.delete(s.url("/v1/log/checkpoint"))
            .bearer_auth(s.token())
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    let (status, body) = json(c.get(s.url("/v1/policies/")).send().unwrap());
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"].as_array().is_some_and(|p| !p.is_empty()),
        "{body}"
    );
    let (status, body) = json(c.get(s.url("/v1/data/")).send().unwrap());
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["rbac"].is_object(), "{body}");
    assert!(s.stop().success());
}

#[test]
fn data_patches_apply_all_or_none_and_are_sealed_first() {
    let dir = scratch("data-patch");
    let server = Server::start(&dir, &[]);
    let c = client();
    let token = server.token();
    let module = "package tenants\n\nallow if input.tenant in data.tenants.active\n";
    let put = c
        .put(server.url("/v1/policies/tenants.rego"))
        .bearer_auth(&token)
        .body(module)
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let put = c
        .put(server.url("/v1/data/tenants"))
        .bearer_auth(&token)
        .json(&json!({"active": ["acme"]}))
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 204);
    let patch = |body: Value, auth: bool| {
        let mut request = c.patch(server.url("/v1/data/tenants")).json(&body);
        if auth {
            request = request.bearer_auth(&token);
        }
        json_of(request.send().unwrap())
    };
    let allowed = |tenant: &str| {
        decide(&c, &server, "tenants/allow", &json!({"tenant": tenant})).1["result"] == json!(true)
    };
    // As OPA: `add` appends with `-`, `replace` needs the target; applied in order.
    let ops = json!([
        {"op": "add", "path": "/active/-", "value": "globex"},
        {"op": "replace", "path": "/active/0", "value": "initech"}
    ]);
    assert_eq!(patch(ops.clone(), false).0, 401);
    assert_eq!(patch(ops.clone(), true).0, 204);
    assert!(allowed("globex") && allowed("initech") && !allowed("acme"));
    // All or none: a later operation on a missing path refuses the whole patch (404).
    let (status, err) = patch(
        json!([
            {"op": "add", "path": "/active/-", "value": "hooli"},
            {"op": "replace", "path": "/missing", "value": 1}
        ]),
        true,
    );
    assert_eq!(status, 404, "{err}");
    assert!(!allowed("hooli"));
    // Not an operation OPA's data patches have: 400.
    let (status, err) = patch(json!([{"op": "move", "from": "/a", "path": "/b"}]), true);
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("unsupported op"),
        "{err}"
    );
    // Sealed before it took effect, operations and all.
    let entries = crate::common::all_entries(&c, &server);
    let patches: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "policy-change" && e["record"]["op"] == "patch_data")
        .map(|e| &e["record"])
        .collect();
    assert_eq!(patches.len(), 1, "only the applied patch is sealed");
    assert_eq!(patches[0]["path"], "/tenants");
    assert_eq!(patches[0]["patch"], ops);
}

/// What `GET /v1/log/decisions/{id}` answers is a proof anyone can check offline with the log's
/// key alone (`docket log check-proof`): the entry's bytes, its inclusion proof and the signed
/// checkpoint. A changed byte of the entry is caught.
#[test]
fn a_decision_lookup_is_a_proof_checked_offline() {
    let dir = scratch("check-proof");
    let server = Server::start(&dir, &[]);
    let answer: Value = Client::new()
        .post(server.url("/v1/data/rbac/allow"))
        .json(&json!({"input": {"user": "alice", "action": "read",
            "resource": {"type": "document", "id": "d1"}}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = answer["decision_id"].as_str().unwrap();
    let lookup = server.decision_bundle(id);
    assert!(server.stop().success());
    let check = |document: &Value| {
        let file = dir.join("lookup.json");
        std::fs::write(&file, document.to_string()).unwrap();
        let out = crate::common::docket_command()
            .args(["log", "check-proof"])
            .arg(&file)
            .arg("--pub")
            .arg(dir.join("data/docket.pub"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = check(&lookup);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the entry's bytes hash to it"), "{out}");
    // One byte of the record changed in the entry's encoding.
    let mut bytes = B64
        .decode(lookup["entry"]["encoded"].as_str().unwrap())
        .unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let mut altered = lookup.clone();
    altered["entry"]["encoded"] = B64.encode(&bytes).into();
    let (code, out) = check(&altered);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("REJECTED"), "{out}");
}
