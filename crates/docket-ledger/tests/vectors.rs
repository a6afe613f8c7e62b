//! The test vectors of `docs/log-format.md` §11: produced by this crate, checked byte for byte.
//! Regenerate with `DOCKET_REGENERATE_VECTORS=1 cargo test -p docket-ledger --test ledger vectors::`.

use crate::common::*;
use docket_ledger::entry::MAX_INLINE_RECORD_LEN;
use docket_ledger::export::{ExportVerifier, write_export};
use docket_ledger::merkle::{self, consistency_proof, inclusion_proof};
use docket_ledger::record::SigningMode;
use docket_ledger::{Entry, Hash, LeafForm, Verifier};
use serde_json::json;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    // From the environment `cargo test` runs tests in, not compiled in: a binary cached in a
    // shared target directory may run from another checkout.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../../tests/vectors")
}

fn split(items: &[Item]) -> (Vec<Entry>, Vec<(u64, String)>) {
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    for item in items {
        match item {
            Item::Entry(e) => entries.push(e.clone()),
            Item::Checkpoint { size, note } => checkpoints.push((*size, note.clone())),
        }
    }
    (entries, checkpoints)
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

/// Every file of the vector set, by name, as produced now.
fn produce() -> Vec<(&'static str, String)> {
    let origin = "docket.example/vectors";
    let built = build(origin, "vectors", SigningMode::Checkpoint, 9, 4, Some(6));
    let (entries, checkpoints) = split(&built.items);
    let entry_mode = build(origin, "vectors", SigningMode::Entry, 9, 4, Some(6));
    let (entries_e, checkpoints_e) = split(&entry_mode.items);

    let leaves: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
    let n = leaves.len();
    let sizes: Vec<u64> = checkpoints.iter().map(|(s, _)| *s).collect();
    let mut consistency = Vec::new();
    for (i, &m) in sizes.iter().enumerate() {
        for &to in &sizes[i..] {
            let proof = consistency_proof(&leaves[..to as usize], m as usize).unwrap();
            consistency.push(json!({"old_size": m, "new_size": to, "proof": hexes(&proof)}));
        }
    }
    let export = write_export(origin, &entries, &checkpoints);
    let tampered: Vec<serde_json::Value> = tampered_copies(&built)
        .into_iter()
        .map(|(what, items)| {
            let err = verify(&items, &built.genesis_key, Some((built.final_size, built.final_root))).unwrap_err();
            json!({"mutation": what, "failure": err.failure.name(), "location": format!("{:?}", err.location)})
        })
        .collect();
    let expected = json!({
        "origin": origin,
        "genesis_key": built.genesis_key.to_vkey(),
        "entries": entries.iter().map(|e| json!({
            "seq": e.seq,
            "body": hex_of(&e.body()),
            "hash": e.hash.to_hex(),
            "encoded": hex_of(&e.encode()),
        })).collect::<Vec<_>>(),
        "roots": (0..=n).map(|s| json!({"size": s, "root": merkle::root(&leaves[..s]).to_hex()})).collect::<Vec<_>>(),
        "inclusion": (0..n).map(|i| json!({"index": i, "size": n, "proof": hexes(&inclusion_proof(&leaves, i).unwrap())})).collect::<Vec<_>>(),
        "consistency": consistency,
        "checkpoints": checkpoints.iter().map(|(s, note)| json!({"size": s, "note": note})).collect::<Vec<_>>(),
        "tampered": tampered,
    });
    let (pruned_items, pruned_key) = pruned_log();
    let (pruned_entries, pruned_checkpoints) = split(&pruned_items);
    let pruned_export = write_export(PRUNED_ORIGIN, &pruned_entries, &pruned_checkpoints);
    let report = verify(&pruned_items, &pruned_key, None).unwrap();
    let pruned_tampered: Vec<serde_json::Value> = [3u64, 6]
        .iter()
        .map(|&seq| {
            let err = verify(&falsely_pruned(&pruned_items, seq), &pruned_key, None).unwrap_err();
            json!({"mutation": format!("entry {seq} made to look like a pruned decision"),
                   "seq": seq, "failure": err.failure.name(), "location": format!("{:?}", err.location)})
        })
        .collect();
    let pruned_expected = json!({
        "origin": PRUNED_ORIGIN,
        "entries": report.entries,
        "root": report.root.to_hex(),
        "pruned_entries": report.pruned_entries,
        "prunes": report.prunes.iter().map(|p| json!({
            "seq": p.seq, "first": p.first, "last": p.last, "entries": p.entries,
            "pruned_found": p.pruned_found, "policy_versions": p.policy_versions,
        })).collect::<Vec<_>>(),
        "tampered": pruned_tampered,
    });
    let (digest_entries, digest_checkpoints) = digest_log();
    let digest_leaves: Vec<Hash> = digest_entries.iter().map(|e| e.hash).collect();
    let digest_expected = json!({
        "origin": DIGEST_ORIGIN,
        "entries": digest_entries.iter().map(|e| {
            // A digest-form body is 105 bytes and given whole; a record-form body is given by its
            // length and SHA-256 (the export line holds the record).
            let body = e.body();
            let mut v = json!({
                "seq": e.seq,
                "form": format!("{:?}", e.leaf).to_lowercase(),
                "record_length": e.record.len(),
                "body_length": body.len(),
                "body_sha256": hex_of(&sha256(&body)),
                "hash": e.hash.to_hex(),
            });
            if e.leaf == LeafForm::Digest {
                v["body"] = json!(hex_of(&body));
                v["record_sha256"] = json!(hex_of(&sha256(&e.record)));
            }
            v
        }).collect::<Vec<_>>(),
        "root": merkle::root(&digest_leaves).to_hex(),
    });
    let genesis_secret = key("docket-test", "vectors");
    let rotated = key("docket-test-2", "vectors-rotated");
    vec![
        ("genesis.key", format!("{}\n", genesis_secret.to_skey())),
        (
            "genesis.pub",
            format!("{}\n", genesis_secret.public().to_vkey()),
        ),
        ("rotated.pub", format!("{}\n", rotated.public().to_vkey())),
        ("log.jsonl", export),
        (
            "log-entry-mode.jsonl",
            write_export(origin, &entries_e, &checkpoints_e),
        ),
        (
            "expected.json",
            format!("{}\n", serde_json::to_string_pretty(&expected).unwrap()),
        ),
        ("log-pruned.jsonl", pruned_export),
        (
            "log-digest.jsonl",
            write_export(DIGEST_ORIGIN, &digest_entries, &digest_checkpoints),
        ),
        (
            "digest.json",
            format!(
                "{}\n",
                serde_json::to_string_pretty(&digest_expected).unwrap()
            ),
        ),
        (
            "rejected.json",
            format!("{}\n", serde_json::to_string_pretty(&rejected()).unwrap()),
        ),
        (
            "pruned.json",
            format!(
                "{}\n",
                serde_json::to_string_pretty(&pruned_expected).unwrap()
            ),
        ),
    ]
}

const PRUNED_ORIGIN: &str = "docket.example/vectors-pruned";
const DIGEST_ORIGIN: &str = "docket.example/vectors-digest";

/// A `put_data` policy-change record of exactly `len` bytes.
fn record_of_len(len: usize) -> Vec<u8> {
    let with = |pad: usize| {
        format!(
            r#"{{"op":"put_data","path":"/pad","value":"{}","policy_version":{{"digest":"sha256:{}"}}}}"#,
            "p".repeat(pad),
            "ab".repeat(32)
        )
    };
    let record = with(len - with(0).len());
    assert_eq!(record.len(), len);
    record.into_bytes()
}

/// A log with the two body forms at their boundary (log-format §3.6): entry 1 holds the longest
/// record a body may (65,462 bytes), entry 2 one byte more, sealed in the digest form, entry 3 a
/// decision as usual.
fn digest_log() -> (Vec<Entry>, Vec<(u64, String)>) {
    let signer = key("docket-test", "vectors");
    let params = docket_ledger::GenesisParams {
        origin: DIGEST_ORIGIN.into(),
        instance_id: "instance-vectors".into(),
        signing: SigningMode::Entry,
    };
    let (mut sealer, genesis) = docket_ledger::Sealer::genesis(signer, params, T0).unwrap();
    let mut entries = vec![genesis];
    for (i, len) in [MAX_INLINE_RECORD_LEN, MAX_INLINE_RECORD_LEN + 1]
        .into_iter()
        .enumerate()
    {
        let now = T0 + (i as u64 + 1) * 1_000_000;
        let entry = sealer
            .seal_record(
                docket_ledger::EntryKind::PolicyChange,
                record_of_len(len),
                now,
            )
            .unwrap();
        entries.push(entry);
    }
    entries.push(
        sealer
            .seal_decision(&decision(3), T0 + 3_000_000, &mut || [9; 32])
            .unwrap()
            .into_entry()
            .unwrap(),
    );
    let (c, note) = sealer.checkpoint();
    (entries, vec![(c.size, note)])
}

/// A log whose expired decisions were pruned (log-format §3.5, §4.8): decisions 1, 4, 5 and an
/// ingested event 2 kept one second, a policy change at 3, decision 6 kept a year; ten seconds
/// later a prune entry (7) removes the payloads of 1..=5 that expired.
fn pruned_log() -> (Vec<Item>, docket_ledger::PublicKey) {
    let signer = key("docket-test", "vectors");
    let genesis_key = signer.public().clone();
    let params = docket_ledger::GenesisParams {
        origin: PRUNED_ORIGIN.into(),
        instance_id: "instance-vectors".into(),
        signing: SigningMode::Checkpoint,
    };
    let (mut sealer, genesis) = docket_ledger::Sealer::genesis(signer, params, T0).unwrap();
    let mut items = vec![Item::Entry(genesis)];
    let ms = 1_000_000;
    for i in 1..=6u64 {
        let now = T0 + i * ms;
        let entry = if i == 3 {
            sealer
                .seal_record(
                    docket_ledger::EntryKind::PolicyChange,
                    br#"{"policy_change":"vectors"}"#.to_vec(),
                    now,
                )
                .unwrap()
        } else if i == 2 {
            // An event a sender (the Envoy filter) sealed with its own retention.
            let record = json!({
                "decision_id": "00000000-0000-4000-8000-000000000002",
                "path": "envoy/authz/decision",
                "result": {"allowed": true},
                "timestamp": docket_ledger::record::rfc3339(now),
                "retain_until": docket_ledger::record::rfc3339(now + 1_000_000_000),
                "policy_version": decision(i).policy_version,
            });
            sealer
                .seal_record(
                    docket_ledger::EntryKind::Ingested,
                    record.to_string().into_bytes(),
                    now,
                )
                .unwrap()
        } else {
            let mut d = decision(i);
            d.log.retention_ns = Some(if i == 6 { 365 * 86_400 } else { 1 } * 1_000_000_000);
            sealer
                .seal_decision(&d, now, &mut || [9; 32])
                .unwrap()
                .into_entry()
                .unwrap()
        };
        items.push(Item::Entry(entry));
        if i == 5 || i == 6 {
            let (c, note) = sealer.checkpoint();
            items.push(Item::Checkpoint { size: c.size, note });
        }
    }
    let (to_prune, _) = split(&items);
    let (prune, pruned) = sealer
        .seal_prune(&to_prune[1..=5], T0 + 10_000 * ms)
        .unwrap();
    items.push(Item::Entry(prune));
    let (c, note) = sealer.checkpoint();
    items.push(Item::Checkpoint { size: c.size, note });
    for item in &mut items {
        if let Item::Entry(e) = item
            && let Some(p) = pruned.iter().find(|p| p.seq == e.seq)
        {
            *e = p.clone();
        }
    }
    (items, genesis_key)
}

/// Logs that a verifier must reject, each for one reason (log-format §4, §8, §10), with the
/// failure and location docket's verifier gives. `tests/independent_verifier.py` must agree.
fn rejected() -> serde_json::Value {
    use docket_ledger::EntryKind::{Decision, Genesis, KeyRotation, PolicyChange, Prune};
    let signer = key("docket-test", "vectors");
    let origin = "docket.example/rejected";
    let genesis = genesis_record(&signer, origin);
    let g: Raw = (Genesis, &genesis, true);
    let decision = r#"{"decision_id":"d1","path":"rbac/allow","result":true,"retain_until":"2026-11-23T00:00:00.000000000Z","labels":{"id":"vectors","version":"0.1.0"},"policy_version":{"digest":"sha256:abababababababababababababababababababababababababababababababab"}}"#;
    let prune = |ranges: &str, versions: &str| {
        format!(
            r#"{{"prune":"decision-payloads","first":1,"last":2,"entries":{},"ranges":{ranges},"policy_versions":{versions},"latest_retain_until":"2026-11-23T00:00:00.000000000Z"}}"#,
            if ranges == "[[1,2]]" { 2 } else { 1 }
        )
    };
    let digest = r#"["sha256:abababababababababababababababababababababababababababababababab"]"#;
    let over_policy_change = prune("[[1,2]]", digest);
    let no_versions = prune("[[1,1]]", "[]");
    let unsigned_prune = prune("[[1,1]]", digest);
    let deep = format!(r#"{{"deep":{}{}}}"#, "[".repeat(100), "]".repeat(100));
    let extra_genesis = genesis.replacen('{', r#"{"extra":true,"#, 1);
    let no_labels = json!({"docket_log": "v1", "origin": origin, "key": signer.public().to_vkey(),
                           "signing": "checkpoint"})
    .to_string();
    let zero_width = "docket.example/\u{200b}rejected";
    let zero_width_genesis = genesis_record(&signer, zero_width);
    // The identity point (y = 1) is of small order: no signature verifies under it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak_id = docket_ledger::KeyId::compute("weak", &identity);
    let weak = format!(
        "weak+{}+{}",
        weak_id.to_hex(),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [&[1u8][..], &identity].concat()
        )
    );
    let to_weak = json!({"new_key": weak}).to_string();
    let next = key("docket-test-2", "vectors-rotated");
    let to_next = json!({"new_key": next.public().to_vkey()}).to_string();
    let policy_change = r#"{"op":"put_data","path":"/a","value":1,"policy_version":{"digest":"sha256:abababababababababababababababababababababababababababababababab"}}"#;

    let mut cases: Vec<(&str, String)> = vec![
        (
            "a record with a repeated name",
            resealed(
                &signer,
                origin,
                &[
                    g,
                    (
                        Decision,
                        r#"{"path":"rbac/allow","path":"admin","result":true}"#,
                        false,
                    ),
                ],
                &signer,
            ),
        ),
        (
            "a record nested 101 deep",
            resealed(&signer, origin, &[g, (Decision, &deep, false)], &signer),
        ),
        (
            "a record with a lone surrogate escape",
            resealed(
                &signer,
                origin,
                &[g, (Decision, r#"{"s":"\ud800"}"#, false)],
                &signer,
            ),
        ),
        (
            "a record with a number beyond a double",
            resealed(
                &signer,
                origin,
                &[g, (Decision, r#"{"n":1e400}"#, false)],
                &signer,
            ),
        ),
        (
            "a genesis record with an unknown field",
            resealed(&signer, origin, &[(Genesis, &extra_genesis, true)], &signer),
        ),
        (
            "a genesis record without labels",
            resealed(&signer, origin, &[(Genesis, &no_labels, true)], &signer),
        ),
        (
            "an origin with a zero-width space",
            resealed(
                &signer,
                zero_width,
                &[(Genesis, &zero_width_genesis, true)],
                &signer,
            ),
        ),
        (
            "an unsigned prune entry",
            resealed(
                &signer,
                origin,
                &[
                    g,
                    (Decision, decision, false),
                    (Prune, &unsigned_prune, false),
                ],
                &signer,
            ),
        ),
        (
            "a prune over a policy-change entry",
            resealed(
                &signer,
                origin,
                &[
                    g,
                    (Decision, decision, false),
                    (PolicyChange, policy_change, false),
                    (Prune, &over_policy_change, true),
                ],
                &signer,
            ),
        ),
        (
            "a prune naming no policy version",
            resealed(
                &signer,
                origin,
                &[g, (Decision, decision, false), (Prune, &no_versions, true)],
                &signer,
            ),
        ),
        (
            "a rotation to a small-order key",
            resealed(
                &signer,
                origin,
                &[g, (KeyRotation, &to_weak, true)],
                &signer,
            ),
        ),
        (
            "a checkpoint after a rotation signed by the outgoing key",
            resealed(
                &signer,
                origin,
                &[g, (KeyRotation, &to_next, true)],
                &signer,
            ),
        ),
    ];
    // Export lines that read two ways, or not at all.
    let good = resealed(&signer, origin, &[g, (Decision, decision, false)], &signer);
    let lines: Vec<&str> = good.lines().collect();
    let edited = |f: &dyn Fn(&mut Vec<String>)| {
        let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        f(&mut lines);
        lines.join("\n") + "\n"
    };
    cases.push((
        "an export line with a repeated field",
        edited(&|l| {
            l[2] = l[2].replacen(
                r#""kind":"decision""#,
                r#""kind":"decision","kind":"tally""#,
                1,
            )
        }),
    ));
    cases.push((
        "a blank line in an export",
        edited(&|l| l.insert(2, String::new())),
    ));
    cases.push((
        "a timestamp with a leading zero",
        edited(&|l| l[2] = l[2].replacen(r#""timestamp":""#, r#""timestamp":"0"#, 1)),
    ));
    // Disagreements the differential test (tests/differential.rs) found, kept.
    cases.push((
        "a defined kind spelled unknown-1",
        edited(&|l| l[2] = l[2].replacen(r#""kind":"decision""#, r#""kind":"unknown-1""#, 1)),
    ));
    cases.push((
        "entry 0 of another kind",
        resealed(&signer, origin, &[(Decision, &genesis, true)], &signer),
    ));
    cases.push((
        "a second genesis entry",
        resealed(&signer, origin, &[g, g], &signer),
    ));
    let other_origin = genesis_record(&signer, "docket.example/other");
    cases.push((
        "a genesis origin other than the export header's",
        resealed(&signer, origin, &[(Genesis, &other_origin, true)], &signer),
    ));
    let cases: Vec<serde_json::Value> = cases
        .into_iter()
        .map(|(what, export)| {
            let mut verifier = ExportVerifier::new(Verifier::new(signer.public().clone()));
            let mut result = Ok(());
            for line in export.lines() {
                result = verifier.push_line(line);
                if result.is_err() {
                    break;
                }
            }
            let err = match result {
                Err(e) => e,
                Ok(()) => verifier.finish().expect_err(what),
            };
            json!({"case": what, "failure": err.failure.name(), "location": err.location.to_string(), "export": export})
        })
        .collect();
    json!({"genesis_key": signer.public().to_vkey(), "cases": cases})
}

/// The pruned log with one more entry made to look pruned: `seq`, as a decision.
fn falsely_pruned(items: &[Item], seq: u64) -> Vec<Item> {
    let mut items = items.to_vec();
    for item in &mut items {
        if let Item::Entry(e) = item
            && e.seq == seq
        {
            *e = e.pruned();
            e.kind = docket_ledger::EntryKind::Decision;
        }
    }
    items
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    docket_ledger::hash::sha256(&[bytes]).0
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tampered_copies(built: &Built) -> Vec<(&'static str, Vec<Item>)> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Vec<Item>)| {
        let mut items = built.items.clone();
        f(&mut items);
        items
    };
    let entry_index = |items: &[Item], seq: u64| {
        items
            .iter()
            .position(|i| matches!(i, Item::Entry(e) if e.seq == seq))
            .unwrap()
    };
    out.push((
        "record byte of entry 3 flipped",
        with(&|items| {
            let k = entry_index(items, 3);
            if let Item::Entry(e) = &mut items[k] {
                e.record[10] ^= 1;
            }
        }),
    ));
    out.push((
        "entry 5 dropped",
        with(&|items| {
            let k = entry_index(items, 5);
            items.remove(k);
        }),
    ));
    out.push((
        "entries 2 and 3 swapped",
        with(&|items| {
            let (a, b) = (entry_index(items, 2), entry_index(items, 3));
            items.swap(a, b);
        }),
    ));
    out.push((
        "final checkpoint removed",
        with(&|items| {
            items.pop();
        }),
    ));
    out
}

#[test]
fn vectors_match_what_the_code_produces() {
    let dir = vectors_dir();
    let regenerate = std::env::var_os("DOCKET_REGENERATE_VECTORS").is_some();
    for (name, content) in produce() {
        let path = dir.join(name);
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &content).unwrap();
            continue;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing; regenerate with DOCKET_REGENERATE_VECTORS=1",
                path.display()
            )
        });
        assert_eq!(
            stored, content,
            "{name} differs from what the code produces: the format changed"
        );
    }
}

#[test]
fn the_stored_export_verifies_with_the_stored_key() {
    let dir = vectors_dir();
    let vkey = std::fs::read_to_string(dir.join("genesis.pub")).unwrap();
    for file in ["log.jsonl", "log-entry-mode.jsonl"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut verifier = ExportVerifier::new(Verifier::new(
            docket_ledger::PublicKey::from_vkey(&vkey).unwrap(),
        ));
        for line in text.lines() {
            verifier.push_line(line).unwrap();
        }
        let report = verifier.finish().unwrap();
        assert_eq!(report.entries, 10, "{file}");
        assert_eq!(report.keys.len(), 2, "{file}");
    }
    let text = std::fs::read_to_string(dir.join("log-pruned.jsonl")).unwrap();
    let mut verifier = ExportVerifier::new(Verifier::new(
        docket_ledger::PublicKey::from_vkey(&vkey).unwrap(),
    ));
    for line in text.lines() {
        verifier.push_line(line).unwrap();
    }
    let report = verifier.finish().unwrap();
    assert_eq!((report.entries, report.pruned_entries), (8, 4));
    assert_eq!(report.prunes[0].pruned_found, 4);

    let text = std::fs::read_to_string(dir.join("log-digest.jsonl")).unwrap();
    let mut verifier = ExportVerifier::new(Verifier::new(
        docket_ledger::PublicKey::from_vkey(&vkey).unwrap(),
    ));
    let mut forms = Vec::new();
    for line in text.lines() {
        if let Some(entry) = verifier.push_line_entry(line).unwrap() {
            forms.push((entry.leaf, entry.body().len()));
        }
    }
    assert_eq!(verifier.finish().unwrap().entries, 4);
    assert_eq!(forms[1], (LeafForm::Record, 65_535));
    assert_eq!(forms[2], (LeafForm::Digest, 105));
}
