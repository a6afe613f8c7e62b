//! The test vectors of `docs/log-format.md` §11: produced by this crate, checked byte for byte.
//! Regenerate with `DOCKET_REGENERATE_VECTORS=1 cargo test -p docket-ledger --test vectors`.

mod common;

use common::*;
use docket_ledger::export::{ExportVerifier, write_export};
use docket_ledger::merkle::{self, consistency_proof, inclusion_proof};
use docket_ledger::record::SigningMode;
use docket_ledger::{Entry, Hash, Verifier};
use serde_json::json;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
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
    ]
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
}
