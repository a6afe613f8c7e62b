//! docket's verifier against an independent one (`tests/independent_verifier.py`, written from
//! `docs/log-format.md` alone) on generated logs: a base log exercising every kind of entry is
//! mutated in one or two seeded ways, every hash, link and signature is then made right again
//! (what a forger holding the key would do), and both verifiers must give the same verdict, to
//! the failure name and its location. Any disagreement is a bug in one of them or a gap in the
//! document; keep it as a vector in `tests/vectors/rejected.json` once decided.
//!
//! Cases: `DOCKET_DIFFERENTIAL_CASES` (default 400). Needs `python3` with `cryptography`
//! (installed by `tests/setup-python.sh`, which the test command runs first).

use crate::common::{T0, key};
use docket_ledger::entry::MAX_INLINE_RECORD_LEN;
use docket_ledger::entry::entry_signature_message;
use docket_ledger::export::{ExportVerifier, write_export};
use docket_ledger::{Checkpoint, Entry, EntryKind, Hash, LeafForm, SecretKey, Verifier};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A small deterministic generator (SplitMix64): the cases must be the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn pick_str<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// One entry before sealing: kind byte, record text, whether it carries a signature, which key
/// (0: genesis key, 1: the key rotated to) seals it, and its timestamp.
#[derive(Clone, Debug)]
struct Spec {
    kind: u8,
    record: String,
    signed: bool,
    signer: usize,
    timestamp_ns: u64,
    /// The body's form when not the one a sealer picks for the record's length (§3.6).
    form: Option<LeafForm>,
}

const ORIGIN: &str = "docket.example/differential";
const DIGEST: &str = "sha256:abababababababababababababababababababababababababababababababab";
const SECOND: u64 = 1_000_000_000;

fn keys() -> [SecretKey; 2] {
    [
        key("docket-test", "differential"),
        key("docket-test-2", "differential-rotated"),
    ]
}

fn decision(id: &str, retain_until: &str) -> String {
    json!({"decision_id": id, "timestamp": "2026-11-23T00:00:00.000000000Z", "path": "rbac/allow",
           "input": {"user": "alice", "n": 1}, "result": {"allowed": true}, "retain_until": retain_until,
           "labels": {"id": "differential", "version": "0.1.0"}, "policy_version": {"digest": DIGEST}})
    .to_string()
}

/// Genesis, two expired decisions, a policy change, an ingested event, a tally, a rotation, a
/// decision under the new key, and a prune of the first two decisions.
fn base(keys: &[SecretKey; 2]) -> Vec<Spec> {
    let spec = |kind: EntryKind, record: String, signed: bool, signer: usize, i: u64| Spec {
        kind: kind.byte(),
        record,
        signed,
        signer,
        timestamp_ns: T0 + i * SECOND,
        form: None,
    };
    let retain = docket_ledger::record::rfc3339(T0 + 3 * SECOND);
    vec![
        spec(
            EntryKind::Genesis,
            json!({"docket_log": "v1", "origin": ORIGIN, "key": keys[0].public().to_vkey(),
                   "signing": "checkpoint", "labels": {"id": "differential", "version": "0.1.0"}})
            .to_string(),
            true,
            0,
            0,
        ),
        spec(EntryKind::Decision, decision("d1", &retain), false, 0, 1),
        spec(EntryKind::Decision, decision("d2", &retain), false, 0, 2),
        spec(
            EntryKind::PolicyChange,
            json!({"op": "put_data", "path": "/a", "value": [1, 2.5, "x"], "policy_version": {"digest": DIGEST}})
                .to_string(),
            false,
            0,
            3,
        ),
        spec(
            EntryKind::Ingested,
            r#"{"decision_id":"opa-1","path":"rbac/allow","result":true}"#.into(),
            false,
            0,
            4,
        ),
        spec(
            EntryKind::Tally,
            r#"{"dropped":3,"first":"2026-11-23T00:00:00.000000000Z"}"#.into(),
            false,
            0,
            5,
        ),
        spec(
            EntryKind::KeyRotation,
            json!({"new_key": keys[1].public().to_vkey()}).to_string(),
            true,
            0,
            6,
        ),
        spec(EntryKind::Decision, decision("d3", &retain), false, 1, 7),
        spec(
            EntryKind::Prune,
            json!({"prune": "decision-payloads", "first": 1, "last": 2, "entries": 2, "ranges": [[1, 2]],
                   "policy_versions": [DIGEST], "latest_retain_until": retain})
            .to_string(),
            true,
            1,
            8,
        ),
    ]
}

/// Seals the specs: every hash, link and signature right, one checkpoint at the end signed by
/// `checkpoint_signer`.
fn seal(specs: &[Spec], keys: &[SecretKey; 2], checkpoint_signer: usize) -> String {
    let mut entries = Vec::new();
    let mut prev = Hash::ZERO;
    for (seq, s) in specs.iter().enumerate() {
        let signer = &keys[s.signer];
        let mut entry = Entry {
            seq: seq as u64,
            prev,
            timestamp_ns: s.timestamp_ns,
            kind: EntryKind::from_byte(s.kind),
            key_id: signer.public().id(),
            record: s.record.as_bytes().to_vec(),
            leaf: s.form.unwrap_or(LeafForm::for_record_len(s.record.len())),
            hash: Hash::ZERO,
            signature: None,
            pruned: None,
        };
        entry.hash = entry.compute_hash();
        if s.signed {
            entry.signature = Some(signer.sign(&entry_signature_message(&entry.hash)));
        }
        prev = entry.hash;
        entries.push(entry);
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size: leaves.len() as u64,
        root: docket_ledger::merkle::root(&leaves),
    }
    .sign(&keys[checkpoint_signer]);
    write_export(ORIGIN, &entries, &[(leaves.len() as u64, note)])
}

/// Adds `"name":value` as the first member of a JSON object's text.
fn with_member(record: &str, member: &str) -> String {
    match record.strip_prefix('{') {
        Some("}") => format!("{{{member}}}"),
        Some(rest) => format!("{{{member},{rest}"),
        None => record.to_string(),
    }
}

fn mutate_record(rng: &mut Rng, specs: &mut [Spec], keys: &[SecretKey; 2]) -> String {
    let i = rng.below(specs.len());
    let record = specs[i].record.clone();
    let depth = *rng.pick(&[98usize, 99, 100, 101, 150]);
    let weak = {
        let mut point = [0u8; 32];
        point[0] = 1; // the identity: small order
        let id = docket_ledger::KeyId::compute("weak", &point);
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [&[1u8][..], &point].concat(),
        );
        format!("weak+{}+{b64}", id.to_hex())
    };
    let (what, changed) = match rng.below(19) {
        0 => ("a repeated name", with_member(&record, r#""x":1,"x":2"#)),
        1 => {
            // Repeat an existing member (the record's first one).
            let first = record
                .strip_prefix('{')
                .and_then(|r| r.split(',').next())
                .unwrap_or("")
                .trim_end_matches('}')
                .to_string();
            ("a repeated existing member", with_member(&record, &first))
        }
        2 => (
            "nesting",
            with_member(
                &record,
                &format!(r#""d":{}{}"#, "[".repeat(depth - 1), "]".repeat(depth - 1)),
            ),
        ),
        3 => (
            "a surrogate escape",
            with_member(
                &record,
                rng.pick_str(&[
                    r#""s":"\ud800""#,
                    r#""s":"\udc00x""#,
                    r#""s":"\ud83d\ude00""#,
                    r#""\ud800":1"#,
                ]),
            ),
        ),
        4 => (
            "a number",
            with_member(
                &record,
                rng.pick_str(&[
                    r#""n":1e308"#,
                    r#""n":1e309"#,
                    r#""n":-1E+400"#,
                    r#""n":123456789012345678901234567890"#,
                    r#""n":1e-400"#,
                ]),
            ),
        ),
        5 => (
            "not an object",
            rng.pick_str(&["[]", "\"x\"", "{", "", " {}", "{} ", "null"])
                .to_string(),
        ),
        6 => ("an extra member", with_member(&record, r#""extra":true"#)),
        7 => (
            "a member removed",
            // Drop the first member.
            match record.find(',') {
                Some(at) => format!("{{{}", &record[at + 1..]),
                None => "{}".to_string(),
            },
        ),
        8 => (
            "another origin",
            record.replace(
                ORIGIN,
                rng.pick_str(&[
                    "docket.example/\u{200b}differential",
                    "docket.example/ differential",
                    "docket.example/différential",
                    "docket.example/other",
                    "",
                ]),
            ),
        ),
        9 => (
            "a rotation key",
            record.replace(
                &keys[1].public().to_vkey(),
                rng.pick_str(&[weak.as_str(), "not-a-key", "docket-test-2+00000000+AQ=="]),
            ),
        ),
        10 => (
            "prune ranges",
            record.replace(
                "[[1,2]]",
                rng.pick_str(&["[[1,3]]", "[[2,1]]", "[[1,1],[1,2]]", "[[0,2]]", "[]"]),
            ),
        ),
        11 => (
            "prune policy versions",
            record.replace(
                &format!(r#"["{DIGEST}"]"#),
                rng.pick_str(&[
                    "[]",
                    r#"["sha256:ab"]"#,
                    &format!(r#"["{DIGEST}","{DIGEST}"]"#),
                    &format!(r#"["{}","{DIGEST}"]"#, DIGEST.replace('a', "f")),
                    &format!(r#"["{DIGEST}","{}"]"#, DIGEST.replace('a', "f")),
                ]),
            ),
        ),
        12 => (
            "prune count",
            record.replace(r#""entries":2"#, r#""entries":3"#),
        ),
        13 => (
            "a retention later than the prune",
            record.replace(
                &docket_ledger::record::rfc3339(T0 + 3 * SECOND),
                &docket_ledger::record::rfc3339(T0 + 100 * SECOND),
            ),
        ),
        14 => ("the signature dropped", {
            specs[i].signed = !specs[i].signed;
            record
        }),
        15 => ("the kind changed", {
            specs[i].kind = *rng.pick(&[0u8, 1, 2, 3, 6, 7, 200]);
            record
        }),
        17 => {
            // Padded to the longest record a body holds, one byte more, or well past it: the
            // sealer's form changes at the boundary (§3.6).
            let target = MAX_INLINE_RECORD_LEN + *rng.pick(&[0usize, 1, 4096]);
            let bare = with_member(&record, r#""pad":"""#);
            let pad = "p".repeat(target.saturating_sub(bare.len()));
            (
                "a record at the body limit",
                with_member(&record, &format!(r#""pad":"{pad}""#)),
            )
        }
        18 => {
            // The other form than the sealer's: the digest form for a record that fits, or a
            // long record held in its body (as logs sealed before the digest form hold them).
            let target = *rng.pick(&[0usize, MAX_INLINE_RECORD_LEN + 1]);
            let bare = with_member(&record, r#""pad":"""#);
            let pad = "p".repeat(target.saturating_sub(bare.len()));
            let padded = if target == 0 {
                record
            } else {
                with_member(&record, &format!(r#""pad":"{pad}""#))
            };
            specs[i].form = Some(match LeafForm::for_record_len(padded.len()) {
                LeafForm::Record => LeafForm::Digest,
                LeafForm::Digest => LeafForm::Record,
            });
            ("the other body form", padded)
        }
        _ => ("the clock went back", {
            specs[i].timestamp_ns = T0 - SECOND;
            record
        }),
    };
    specs[i].record = changed;
    format!("entry {i}: {what}")
}

fn mutate_export(rng: &mut Rng, export: &str) -> (String, String) {
    let mut lines: Vec<String> = export.lines().map(str::to_string).collect();
    let i = 1 + rng.below(lines.len() - 1);
    let what = match rng.below(8) {
        0 => {
            lines.insert(i, String::new());
            "a blank line"
        }
        1 => {
            lines[i] = lines[i].replacen(r#""timestamp":""#, r#""timestamp":"0"#, 1);
            "a leading zero"
        }
        2 => {
            lines[i] = lines[i].replacen(r#""seq":"#, r#""seq":99,"seq":"#, 1);
            "a repeated field"
        }
        3 => {
            let kind = *rng.pick(&["foo", "unknown-9", "unknown-1", "Decision"]);
            lines[i] = lines[i].replacen(r#""kind":""#, &format!(r#""kind":"{kind}","x":""#), 1);
            "an odd kind"
        }
        4 => {
            lines[i] = lines[i].replacen('{', r#"{"extra":1,"#, 1);
            "an extra field"
        }
        5 => {
            lines[i] = lines[i].replacen(r#""record":"#, r#""pruned":5,"record":"#, 1);
            "record and pruned"
        }
        6 => {
            let form = *rng.pick(&["digest", "record", "Digest"]);
            lines[i] = lines[i].replacen(r#""hash":"#, &format!(r#""form":"{form}","hash":"#), 1);
            "a form named"
        }
        _ => {
            lines[i] = format!(" {} ", lines[i]);
            "spaces around a line"
        }
    };
    (format!("line {i}: {what}"), lines.join("\n") + "\n")
}

/// docket's verdict on an export: `ok`, or the failure and where.
fn docket_verdict(export: &str, genesis: &SecretKey) -> Value {
    let mut verifier = ExportVerifier::new(Verifier::new(genesis.public().clone()));
    for line in export.lines() {
        if let Err(e) = verifier.push_line(line) {
            return json!({"failure": e.failure.name(), "location": e.location.to_string()});
        }
    }
    match verifier.finish() {
        Ok(_) => json!({"ok": true}),
        Err(e) => json!({"failure": e.failure.name(), "location": e.location.to_string()}),
    }
}

#[test]
fn docket_and_the_independent_verifier_agree_on_generated_forgeries() {
    let cases: usize = std::env::var("DOCKET_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(400);
    let keys = keys();
    let mut rng = Rng(0xd0c4e7);
    let mut generated = Vec::with_capacity(cases);
    for _ in 0..cases {
        let mut specs = base(&keys);
        let mut what = Vec::new();
        let mut checkpoint_signer = 1;
        for _ in 0..1 + rng.below(2) {
            if rng.below(12) == 0 {
                checkpoint_signer = 0;
                what.push("the checkpoint signed by the outgoing key".to_string());
            } else {
                what.push(mutate_record(&mut rng, &mut specs, &keys));
            }
        }
        let mut export = seal(&specs, &keys, checkpoint_signer);
        if rng.below(4) == 0 {
            let (how, edited) = mutate_export(&mut rng, &export);
            what.push(how);
            export = edited;
        }
        let verdict = docket_verdict(&export, &keys[0]);
        generated.push(json!({"case": what.join("; "), "export": export, "docket": verdict}));
    }
    let genuine = docket_verdict(&seal(&base(&keys), &keys, 1), &keys[0]);
    assert_eq!(genuine, json!({"ok": true}), "the base log itself verifies");

    let repo = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../..");
    let file =
        std::env::temp_dir().join(format!("docket-differential-{}.json", std::process::id()));
    std::fs::write(
        &file,
        json!({"genesis_key": keys[0].public().to_vkey(), "cases": generated}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new("python3")
        .arg(repo.join("tests/independent_verifier.py"))
        .arg("--cases")
        .arg(&file)
        .output()
        .expect("running python3 tests/independent_verifier.py (tests/setup-python.sh installs what it needs)");
    assert!(
        out.status.success(),
        "the independent verifier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(theirs.len(), generated.len());
    let mut disagreements = Vec::new();
    let mut rejected = 0;
    for (case, python) in generated.iter().zip(&theirs) {
        if case["docket"] != *python {
            disagreements.push(format!(
                "{}: docket {} / independent {}",
                case["case"], case["docket"], python
            ));
        }
        if case["docket"].get("failure").is_some() {
            rejected += 1;
        }
    }
    let _ = std::fs::remove_file(&file);
    println!(
        "differential verification: {cases} generated forgeries, {rejected} rejected and {} accepted by both, {} disagreements",
        cases - rejected - disagreements.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {cases} cases disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        rejected * 2 > cases,
        "most forgeries must be rejected: {rejected} of {cases}"
    );
}
