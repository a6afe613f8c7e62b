//! Witnesses (issue 26): three real `docket witness` processes on loopback, one of them down, and
//! a real `docket serve` submitting to them under load; a forked, a rolled-back and a rewritten
//! log refused by the witnesses, with the evidence kept; `docket verify --witness --quorum`
//! accepting the genuine log and rejecting the rewritten one that `docket verify` alone accepts;
//! and the cosignature format checked by an independent implementation (the `sigsum` crate).

use crate::common::{Server, docket_command, log_size, rbac_policies, scratch};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::hash::{leaf_hash, sha256};
use docket_ledger::witness::AddCheckpoint;
use docket_ledger::{Checkpoint, Hash, SecretKey, SignedCheckpoint};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `docket witness` process.
struct Witness {
    child: Child,
    url: String,
    /// Its cosigner verifier key (witness.pub).
    vkey: String,
    dir: PathBuf,
}

impl Witness {
    fn start(dir: &Path, name: Option<&str>, logs: &[String]) -> Witness {
        Witness::start_at(dir, name, logs, "127.0.0.1:0")
    }

    fn start_at(dir: &Path, name: Option<&str>, logs: &[String], addr: &str) -> Witness {
        let mut command = docket_command();
        command.args(["witness", "--addr", addr, "--dir"]).arg(dir);
        if let Some(name) = name {
            command.args(["--name", name]);
        }
        for log in logs {
            command.args(["--log", log]);
        }
        std::fs::create_dir_all(dir).unwrap();
        let stderr = std::fs::File::create(dir.with_extension("stderr")).unwrap();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut vkey = String::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "docket witness exited before listening: {}",
                    std::fs::read_to_string(dir.with_extension("stderr")).unwrap_or_default()
                );
            };
            if let Some(key) = line.strip_prefix("docket witness: key ") {
                vkey = key.to_string();
            }
            if let Some(url) = line.strip_prefix("docket witness: listening on ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        assert_eq!(
            std::fs::read_to_string(dir.join("witness.pub"))
                .unwrap()
                .trim(),
            vkey,
            "witness.pub holds the key it announces"
        );
        Witness {
            child,
            url,
            vkey,
            dir: dir.to_path_buf(),
        }
    }

    /// SIGKILL: no chance to finish anything.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }

    fn add_checkpoint(&self, request: &AddCheckpoint) -> (u16, String) {
        let response = Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(request.encode())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    }

    fn misbehaviour(&self) -> Vec<Value> {
        let v: Value = reqwest::blocking::get(format!("{}/misbehaviour", self.url))
            .unwrap()
            .json()
            .unwrap();
        v["misbehaviour"].as_array().unwrap().clone()
    }
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server's newest 2-of-3 cosigned checkpoint has `size` entries.
fn cosigned_at(c: &Client, server: &Server, size: u64, what: &str) -> Value {
    wait_for(what, Duration::from_secs(90), || {
        let v: Value = c
            .get(server.url("/v1/log/witnessed?quorum=2"))
            .send()
            .ok()?
            .json()
            .ok()?;
        (v["size"].as_u64() == Some(size)).then_some(v)
    })
}

fn verify(log: &Path, public: &Path, extra: &[&str]) -> (bool, String) {
    let out: Output = docket_command()
        .arg("verify")
        .arg(log)
        .arg("--pub")
        .arg(public)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn keygen(dir: &Path, stem: &str, name: &str) {
    let out = docket_command()
        .args(["keygen", "--out"])
        .arg(dir)
        .args(["--stem", stem, "--name", name])
        .output()
        .unwrap();
    crate::common::succeeded(&out);
}

#[test]
fn three_witnesses_one_down_a_forked_and_a_rewritten_log() {
    let dir = scratch("witness");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let origin = "witness.test/log";
    keygen(&data, "docket", origin);
    let log_pub = data.join("docket.pub");
    let log_spec = log_pub.to_string_lossy().to_string();
    let w1 = Witness::start(
        &dir.join("w1"),
        Some("w1.test/witness"),
        std::slice::from_ref(&log_spec),
    );
    let w2 = Witness::start(
        &dir.join("w2"),
        Some("w2.test/witness"),
        std::slice::from_ref(&log_spec),
    );
    // The third is down for the whole run: its key is known, its address refuses connections.
    let w3 = Witness::start(
        &dir.join("w3"),
        Some("w3.test/witness"),
        std::slice::from_ref(&log_spec),
    );
    let (w3_vkey, w3_url) = (w3.vkey.clone(), w3.url.clone());
    w3.stop();
    let policies = rbac_policies(&dir);
    let policy_arg = policies.to_string_lossy().to_string();
    let witness_args: Vec<String> = [
        (&w1.vkey, &w1.url),
        (&w2.vkey, &w2.url),
        (&w3_vkey, &w3_url),
    ]
    .iter()
    .flat_map(|(k, u)| ["--witness".to_string(), format!("{k}@{u}")])
    .collect();
    let mut args: Vec<&str> = vec!["--policy", &policy_arg, "--witness-interval-ms", "20"];
    args.extend(witness_args.iter().map(String::as_str));
    let server = Server::start(&dir, &args);

    // Decisions under load from four clients.
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let url = server.url("/v1/data/rbac/allow");
                s.spawn(move || {
                    let c = Client::new();
                    (0..150)
                        .map(|i| {
                            let v: Value = c
                                .post(&url)
                                .json(
                                    &json!({"input": {"user": format!("u{t}-{i}"), "action": "read",
                                    "resource": {"type": "document", "id": "d1"}}}),
                                )
                                .send()
                                .unwrap()
                                .json()
                                .unwrap();
                            v["decision_id"].as_str().unwrap().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 600);
    let c = Client::new();
    let size = log_size(&c, &server);
    // The two live witnesses catch up with the final checkpoint; the dead one costs nothing.
    let witnessed = cosigned_at(
        &c,
        &server,
        size,
        "2-of-3 cosignatures on the final checkpoint",
    );
    assert_eq!(witnessed["cosignatures"].as_array().unwrap().len(), 2);
    // /checkpoint carries the cosignatures as extra signature lines.
    let note = c
        .get(server.url("/checkpoint"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let signed = SignedCheckpoint::parse(&note).unwrap();
    assert_eq!(signed.signatures.len(), 3, "{note}");
    // A generic C2SP client (Go's golang.org/x/mod/sumdb/note and tlog) opens that note, its
    // cosignature lines from keys it does not know being ignored, and proves every entry.
    let go = crate::c2sp::interop(&server, None);
    assert_eq!(go["proved"], go["size"], "{go}");
    // A witness killed under load: decisions go on, and once it is back on its address it
    // resumes from its own state and catches up.
    let (w2_dir, w2_addr) = (
        w2.dir.clone(),
        w2.url.trim_start_matches("http://").to_string(),
    );
    w2.kill();
    for i in 0..100 {
        let r = c
            .post(server.url("/v1/data/rbac/allow"))
            .json(&json!({"input": {"user": format!("late-{i}"), "action": "read"}}))
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "a decision failed while a witness was down"
        );
    }
    let size = log_size(&c, &server);
    let w2 = Witness::start_at(&w2_dir, None, std::slice::from_ref(&log_spec), &w2_addr);
    let witnessed = cosigned_at(&c, &server, size, "the restarted witness to catch up");
    // Trusted time on a decision: the first witnessed checkpoint holding it.
    let bundle = server.decision_bundle(&ids[0]);
    let w = &bundle["witnessed"];
    assert!(
        w["no_later_than"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && !t.contains('.')),
        "whole seconds, as the cosignature has them: {bundle}"
    );
    assert!(w["size"].as_u64().unwrap() > bundle["entry"]["seq"].as_u64().unwrap());
    let proof: Vec<Hash> = w["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    let entry_hash = Hash::from_hex(bundle["entry"]["hash"].as_str().unwrap()).unwrap();
    let root = Hash::from_slice(&B64.decode(w["root"].as_str().unwrap()).unwrap()).unwrap();
    docket_ledger::merkle::verify_inclusion(
        &entry_hash,
        bundle["entry"]["seq"].as_u64().unwrap(),
        w["size"].as_u64().unwrap(),
        &proof,
        &root,
    )
    .expect("the decision is proven in the witnessed checkpoint");
    assert_eq!(server.stop().code(), Some(0));

    // The genuine log verifies under the witness policy; without one the report says it is
    // self-signed only.
    let log = data.join("log");
    let keys: Vec<String> = [&w1.vkey, &w2.vkey, &w3_vkey]
        .iter()
        .flat_map(|k| ["--witness".to_string(), k.to_string()])
        .collect();
    let mut witness_policy: Vec<&str> = keys.iter().map(String::as_str).collect();
    witness_policy.extend(["--quorum", "2"]);
    let (ok, out) = verify(&log, &log_pub, &witness_policy);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("witnessed: the first {size} entries are in the checkpoint of size {size}, cosigned by 2 of 3 witnesses")),
        "{out}"
    );
    let (ok, out) = verify(&log, &log_pub, &[]);
    assert!(ok && out.contains("self-signed only"), "{out}");
    // `docket log prove --witness` bounds a decision's time offline, from the log directory.
    let out = docket_command()
        .args(["log", "prove"])
        .arg(&log)
        .args([
            "--decision-id",
            &ids[0],
            "--witness",
            &w1.vkey,
            "--witness",
            &w3_vkey,
        ])
        .output()
        .unwrap();
    crate::common::succeeded(&out);
    let proven: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bound = &proven["witnessed"];
    assert!(
        bound["tree_size"].as_u64().unwrap() > proven["seq"].as_u64().unwrap(),
        "{proven}"
    );
    assert_eq!(bound["cosignatures"][0]["witness"], "w1.test/witness");
    assert!(bound["no_later_than"].is_string(), "{proven}");
    // `docket log prune --witness`: the witness cosigns afresh and vouches for this clock; a
    // clock ten days ahead (libfaketime) is refused before anything is pruned.
    let prune = |offset: &str| {
        let file = dir.join("faketime");
        std::fs::write(&file, format!("{offset}\n")).unwrap();
        docket_command()
            .args(["log", "prune"])
            .arg(&log)
            .arg("--key")
            .arg(data.join("docket.key"))
            .args(["--witness", &format!("{}@{}", w1.vkey, w1.url)])
            .envs(crate::evidence::faketime_env(&file))
            .output()
            .unwrap()
    };
    let lines_before = std::fs::read_to_string(log.join("cosignatures.jsonl"))
        .unwrap()
        .lines()
        .count();
    let ahead = prune("+10d");
    let text = String::from_utf8_lossy(&ahead.stderr);
    assert!(
        !ahead.status.success() && text.contains("ahead of witness w1.test/witness"),
        "{text}"
    );
    let right = prune("+0");
    assert!(
        right.status.success()
            && String::from_utf8_lossy(&right.stdout)
                .contains("clock checked against witness w1.test/witness"),
        "{}{}",
        String::from_utf8_lossy(&right.stdout),
        String::from_utf8_lossy(&right.stderr)
    );
    // Both fresh cosignatures were kept as evidence beside the log.
    let lines_after = std::fs::read_to_string(log.join("cosignatures.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines_after, lines_before + 2);
    // A quorum of three cannot be met with one witness down.
    let mut all_three = witness_policy.clone();
    *all_three.last_mut().unwrap() = "3";
    let (ok, out) = verify(&log, &log_pub, &all_three);
    assert!(!ok && out.contains("signed by its operator alone"), "{out}");

    // The operator rewrites history with the log's own key: a new log of the same origin, longer
    // than the witnessed one, keeping the cosignatures file.
    let rewritten = dir.join("rewritten");
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        r#"{"user":"mallory","action":"delete","resource":{"type":"document","id":"d1"}}"#,
    )
    .unwrap();
    let mut sealed = 0;
    while sealed <= size {
        let out = docket_command()
            .args(["eval", "-d"])
            .arg(&policies)
            .arg("-i")
            .arg(&input)
            .arg("data.rbac.allow")
            .arg("--dir")
            .arg(&rewritten)
            .arg("--key")
            .arg(data.join("docket.key"))
            .output()
            .unwrap();
        crate::common::succeeded(&out);
        sealed = std::fs::read_to_string(rewritten.join("checkpoint"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
    }
    std::fs::copy(
        log.join("cosignatures.jsonl"),
        rewritten.join("cosignatures.jsonl"),
    )
    .unwrap();
    let (ok, out) = verify(&rewritten, &log_pub, &[]);
    assert!(ok, "docket verify alone accepts the rewritten log: {out}");
    let (ok, out) = verify(&rewritten, &log_pub, &witness_policy);
    assert!(
        !ok && out.contains("REJECTED") && out.contains("cosigned by witnesses"),
        "{out}"
    );
    // Without the cosignatures, the rewrite is self-signed only: not witnessed.
    std::fs::remove_file(rewritten.join("cosignatures.jsonl")).unwrap();
    let (ok, out) = verify(&rewritten, &log_pub, &witness_policy);
    assert!(
        !ok && out.contains("REJECTED") && out.contains("signed by its operator alone"),
        "{out}"
    );
    // And `docket serve` refuses to serve a log its witnesses' cosignatures contradict.
    std::fs::copy(
        log.join("cosignatures.jsonl"),
        rewritten.join("cosignatures.jsonl"),
    )
    .unwrap();
    std::fs::rename(&log, dir.join("genuine")).unwrap();
    std::fs::rename(&rewritten, &log).unwrap();
    let out = docket_command()
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(&data)
        .args(["--policy", &policy_arg])
        .args(witness_args.iter().map(String::as_str))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("was rewritten or replaced after it was witnessed"),
        "{text}"
    );

    // The witnesses themselves refuse a fork, a rollback and a rewritten extension, and keep
    // each as evidence, across a restart.
    let key =
        SecretKey::from_skey(&std::fs::read_to_string(data.join("docket.key")).unwrap()).unwrap();
    let genuine = SignedCheckpoint::parse(witnessed["note"].as_str().unwrap())
        .unwrap()
        .checkpoint;
    let sign = |size: u64, root: Hash| {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        }
        .sign(&key)
    };
    let fork = AddCheckpoint {
        old_size: size,
        proof: vec![],
        note: sign(size, sha256(&[b"another history"])),
    };
    let (status, body) = w1.add_checkpoint(&fork);
    assert_eq!((status, body.trim()), (409, size.to_string().as_str()));
    let rollback = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        note: sign(size - 1, sha256(&[b"an older history"])),
    };
    assert_eq!(w1.add_checkpoint(&rollback).0, 409);
    let extension = AddCheckpoint {
        old_size: size,
        proof: vec![sha256(&[b"not a proof"])],
        note: sign(size + 5, sha256(&[b"a rewritten history"])),
    };
    assert_eq!(w1.add_checkpoint(&extension).0, 422);
    // The genuine checkpoint again is fine (same size, same root), and a foreign key is refused.
    let again = AddCheckpoint {
        old_size: size,
        proof: vec![],
        note: sign(size, genuine.root),
    };
    assert_eq!(w2.add_checkpoint(&again).0, 200);
    let stranger = SecretKey::from_seed(origin, &[7; 32]).unwrap();
    let foreign = AddCheckpoint {
        old_size: size,
        proof: vec![],
        note: Checkpoint {
            origin: origin.to_string(),
            size: size + 1,
            root: Hash::ZERO,
        }
        .sign(&stranger),
    };
    assert_eq!(w2.add_checkpoint(&foreign).0, 403);
    let kinds = |w: &Witness| {
        let mut k: Vec<String> = w
            .misbehaviour()
            .iter()
            .map(|m| m["kind"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&w1), ["fork", "inconsistent", "rollback"]);
    // Every live witness refuses them alike.
    assert_eq!(w2.add_checkpoint(&fork).0, 409);
    assert_eq!(w2.add_checkpoint(&rollback).0, 409);
    assert_eq!(w2.add_checkpoint(&extension).0, 422);
    assert_eq!(kinds(&w2), ["fork", "inconsistent", "rollback"]);
    // Sent again, the fork is refused again and recorded once.
    assert_eq!(w1.add_checkpoint(&fork).0, 409);
    let w1_dir = w1.dir.clone();
    w1.stop();
    let w1 = Witness::start(&w1_dir, None, &[log_spec]);
    assert_eq!(kinds(&w1), ["fork", "inconsistent", "rollback"]);
    assert_eq!(
        w1.add_checkpoint(&fork).0,
        409,
        "the state survived the restart"
    );
    let evidence = w1.misbehaviour();
    let fork_evidence = evidence.iter().find(|m| m["kind"] == "fork").unwrap();
    // The evidence is self-contained: both notes verify under the log's key and differ in root.
    let a = SignedCheckpoint::parse(fork_evidence["witnessed"].as_str().unwrap()).unwrap();
    let b = SignedCheckpoint::parse(fork_evidence["offered"].as_str().unwrap()).unwrap();
    assert!(a.is_signed_by(key.public()) && b.is_signed_by(key.public()));
    assert_eq!(a.checkpoint.size, b.checkpoint.size);
    assert_ne!(a.checkpoint.root, b.checkpoint.root);
    w1.stop();
    w2.stop();
}

/// `cosignature/v1` as an independent implementation reads it: the `sigsum` crate builds the
/// cosigned message from a Sigsum tree head itself and checks a real `docket witness`'s
/// cosignature in a Sigsum proof of logging, under a Sigsum policy naming the witness.
#[test]
fn the_sigsum_crate_verifies_a_docket_witness_cosignature() {
    let dir = scratch("witness-sigsum");
    // A Sigsum-shaped log: its origin is sigsum.org/v1/tree/<hex SHA-256 of its key>.
    let seed = [42u8; 32];
    let public = *SecretKey::from_seed("x", &seed).unwrap().public().bytes();
    let origin = format!("sigsum.org/v1/tree/{}", sha256(&[&public]).to_hex());
    let log_key = SecretKey::from_seed(&origin, &seed).unwrap();
    let witness = Witness::start(
        &dir.join("w"),
        Some("sigsum-interop.test/witness"),
        &[log_key.public().to_vkey()],
    );
    // One leaf: a submitter's signed checksum of a message, as Sigsum logs it.
    let submitter = SecretKey::from_seed("submitter", &[9; 32]).unwrap();
    let data = b"docket cosignature interop\n";
    let message = sha256(&[data]);
    let checksum = sha256(&[&message.0]);
    let leaf_signature =
        submitter.sign(&[b"sigsum.org/v1/tree-leaf\0".as_slice(), &checksum.0].concat());
    let submitter_hash = sha256(&[submitter.public().bytes()]);
    let leaf = [&checksum.0[..], &leaf_signature, &submitter_hash.0].concat();
    let root = leaf_hash(&leaf);
    let note = Checkpoint {
        origin: origin.clone(),
        size: 1,
        root,
    }
    .sign(&log_key);
    let (status, body) = witness.add_checkpoint(&AddCheckpoint {
        old_size: 0,
        proof: vec![],
        note: note.clone(),
    });
    assert_eq!(status, 200, "{body}");
    let cosignature = docket_ledger::checkpoint::parse_signature_lines(body.trim_end())
        .unwrap()
        .remove(0);
    let blob = &cosignature.signature;
    let timestamp = u64::from_be_bytes(blob[..8].try_into().unwrap());
    let log_signature = &SignedCheckpoint::parse(&note).unwrap().signatures[0].signature;
    let witness_key = docket_ledger::CosignerKey::from_vkey(&witness.vkey).unwrap();
    let witness_public = B64
        .decode(witness.vkey.splitn(3, '+').nth(2).unwrap())
        .unwrap()[1..]
        .to_vec();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let proof = |cosig: &[u8]| {
        format!(
            "version=2\nlog={}\nleaf={} {}\n\nsize=1\nroot_hash={}\nsignature={}\ncosignature={} {timestamp} {}\n\nleaf_index=0\n",
            hex(&sha256(&[&public]).0),
            hex(&submitter_hash.0),
            hex(&leaf_signature),
            hex(&root.0),
            hex(log_signature),
            hex(&sha256(&[&witness_public]).0),
            hex(cosig),
        )
    };
    let policy = sigsum::Policy::parse(&format!(
        "log {}\nwitness W {}\nquorum W\n",
        hex(&public),
        hex(&witness_public)
    ))
    .unwrap();
    let check = |ascii: &str| {
        let signature = sigsum::SigsumSignature::from_ascii(ascii).unwrap();
        sigsum::verify(
            &sigsum::Hash::new(data),
            &signature,
            &[(*submitter.public().bytes()).into()],
            &policy,
        )
    };
    check(&proof(&blob[8..])).expect("sigsum accepts the docket witness's cosignature");
    // The check can fail: a cosignature with one bit changed is refused by sigsum, and by docket.
    let mut bad = blob[8..].to_vec();
    bad[0] ^= 1;
    assert!(check(&proof(&bad)).is_err());
    assert_eq!(
        witness_key.verify(&SignedCheckpoint::parse(&note).unwrap().text, &cosignature),
        Some(timestamp)
    );
    witness.stop();
}
