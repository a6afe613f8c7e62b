//! The checks behind docket's fuzz targets. Each takes the fuzzer's bytes, drives one of
//! docket's parsers or its verifier, and panics on anything that must not happen: a panic
//! inside docket, a tampered log that verifies, an entry that decodes but does not encode back
//! to the same bytes, a bad policy that changes the engine. The targets in `fuzz_targets/` are
//! one line each; `cargo test` here replays every file under `regressions/` (crashes found by the
//! fuzzer, kept as regression tests) and the seeds on stable Rust.
//!
//! Run: `just fuzz` (every target for a bounded time), or
//! `cargo +nightly fuzz run --fuzz-dir tests/fuzz -O log_decoder -- -max_total_time=60`.

use docket_ledger::export::{self, ExportVerifier};
use docket_ledger::merkle::Frontier;
use docket_ledger::record::{Decision, PolicyVersion, SigningMode};
use docket_ledger::{
    Entry, GenesisParams, Hash, PublicKey, Sealer, SecretKey, SignedCheckpoint, Verifier,
};
use docket_policy::PolicyEngine;
use std::sync::OnceLock;

/// A small genuine log: entries (encoded), checkpoint notes after some of them, its export, and
/// the tree root at every size.
pub struct GenuineLog {
    pub key: PublicKey,
    pub entries: Vec<Vec<u8>>,
    /// (size, note): the checkpoint that follows entry `size - 1`.
    pub checkpoints: Vec<(u64, String)>,
    pub export: String,
    pub roots: Vec<Hash>,
}

const ORIGIN: &str = "docket.test/fuzz";

fn build_log(mode: SigningMode) -> GenuineLog {
    let key = SecretKey::from_seed("docket-fuzz", &[3; 32]).expect("valid key name");
    let params = GenesisParams {
        origin: ORIGIN.into(),
        instance_id: "fuzz-1".into(),
        signing: mode,
    };
    let t0 = 1_795_464_000_000_000_000u64;
    let (mut sealer, genesis) = Sealer::genesis(key.clone(), params, t0).expect("genesis");
    let mut entries = vec![genesis.clone()];
    let mut checkpoints = Vec::new();
    for i in 1..=12u64 {
        let decision = Decision {
            path: "rbac/allow".into(),
            input: Some(format!(r#"{{"user":"u{i}","action":"read","note":"é\n"}}"#)),
            result: (i % 4 != 0).then(|| (i % 3 == 0).to_string()),
            policy_version: PolicyVersion {
                digest: format!("sha256:{}", "cd".repeat(32)),
                revision: Some("r7".into()),
            },
            log: Default::default(),
        };
        let entry = if i == 7 {
            sealer
                .rotate_key(
                    SecretKey::from_seed("docket-fuzz-2", &[4; 32]).expect("valid key name"),
                    t0 + i,
                )
                .expect("rotation")
        } else {
            sealer
                .seal_decision(&decision, t0 + i, &mut || [0; 32])
                .expect("seal")
                .into_entry()
                .expect("nothing is dropped")
        };
        entries.push(entry);
        if i % 5 == 0 || i == 12 {
            let (checkpoint, note) = sealer.checkpoint();
            checkpoints.push((checkpoint.size, note));
        }
    }
    let mut frontier = Frontier::new();
    let mut roots = vec![frontier.root()];
    for e in &entries {
        frontier.push(e.hash);
        roots.push(frontier.root());
    }
    GenuineLog {
        key: key.public().clone(),
        export: export::write_export(ORIGIN, &entries, &checkpoints),
        entries: entries.iter().map(Entry::encode).collect(),
        checkpoints,
        roots,
    }
}

/// The genuine logs, one per signing mode, built once per process.
pub fn genuine(mode: SigningMode) -> &'static GenuineLog {
    static CHECKPOINT: OnceLock<GenuineLog> = OnceLock::new();
    static ENTRY: OnceLock<GenuineLog> = OnceLock::new();
    match mode {
        SigningMode::Checkpoint => CHECKPOINT.get_or_init(|| build_log(mode)),
        SigningMode::Entry => ENTRY.get_or_init(|| build_log(mode)),
    }
}

/// Applies `data` as edits (3 bytes each: a 16-bit position, a byte to XOR in) to `bytes`.
fn apply_edits(bytes: &mut [u8], data: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for edit in data.chunks_exact(3) {
        let at = u16::from_le_bytes([edit[0], edit[1]]) as usize % bytes.len();
        bytes[at] ^= edit[2];
    }
}

/// Verifies entries and checkpoints both ways (entry by entry, and prechecked); both must agree.
fn verify_log(
    key: &PublicKey,
    entries: &[Vec<u8>],
    checkpoints: &[(u64, String)],
) -> Result<docket_ledger::Report, docket_ledger::VerifyError> {
    let run = |prechecked: bool| {
        let mut verifier = Verifier::new(key.clone());
        let mut notes = checkpoints.iter().peekable();
        for (i, bytes) in entries.iter().enumerate() {
            if prechecked {
                verifier.push_prechecked(&docket_ledger::precheck(bytes, Some(key)))?;
            } else {
                verifier.push_entry_bytes(bytes)?;
            }
            while let Some((_, note)) = notes.next_if(|(size, _)| *size == i as u64 + 1) {
                verifier.push_checkpoint(note)?;
            }
        }
        verifier.finish()
    };
    let one = run(false);
    assert_eq!(one, run(true), "prechecked verification disagrees");
    one
}

/// Reads the first byte of a log target's input: bit 0 says whether the rest edits a genuine
/// log (or is raw material), bit 1 picks the genuine log's signing mode.
fn select_log(data: &[u8]) -> Option<(bool, &[u8], &'static GenuineLog)> {
    let (&selector, rest) = data.split_first()?;
    let mode = if selector & 2 == 0 {
        SigningMode::Checkpoint
    } else {
        SigningMode::Entry
    };
    Some((selector & 1 == 1, rest, genuine(mode)))
}

/// Target `log_decoder`: binary entries and the verifier.
///
/// First byte even: the rest is one entry's bytes. If it decodes, it must encode back to the
/// same bytes (one encoding per entry), and the verifier must take it without panicking.
/// First byte odd: the rest are edits to a genuine log's entries (mode by the second bit). If
/// any byte changed, the log must not verify.
pub fn log_decoder(data: &[u8]) {
    let Some((edit_genuine, rest, log)) = select_log(data) else {
        return;
    };
    if !edit_genuine {
        if let Ok(entry) = Entry::decode(rest) {
            assert_eq!(
                entry.encode(),
                rest,
                "an entry decoded but re-encodes differently"
            );
        }
        let _ = docket_ledger::precheck(rest, Some(&log.key));
        let mut verifier = Verifier::new(log.key.clone());
        let _ = verifier.push_entry_bytes(rest);
        return;
    }
    let lengths: Vec<usize> = log.entries.iter().map(Vec::len).collect();
    let mut flat = log.entries.concat();
    apply_edits(&mut flat, rest);
    let mut entries = Vec::new();
    let mut at = 0;
    for len in lengths {
        entries.push(flat[at..at + len].to_vec());
        at += len;
    }
    let changed = entries != log.entries;
    let verdict = verify_log(&log.key, &entries, &log.checkpoints);
    assert!(
        !changed || verdict.is_err(),
        "a log with changed bytes verified"
    );
    assert!(changed || verdict.is_ok(), "the genuine log did not verify");
}

/// Target `export_parser`: export lines, checkpoint notes and the export verifier.
///
/// First byte even: the rest is export text. First byte odd: edits to a genuine export. Either
/// way, parsing must not panic, and if the text verifies under the genuine key it must describe
/// a prefix of the genuine log: its root is the genuine root at that size.
pub fn export_parser(data: &[u8]) {
    let Some((edit_genuine, rest, log)) = select_log(data) else {
        return;
    };
    let text = if !edit_genuine {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut bytes = log.export.clone().into_bytes();
        apply_edits(&mut bytes, rest);
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let _ = SignedCheckpoint::parse(&text);
    let mut verifier = ExportVerifier::new(Verifier::new(log.key.clone()));
    let mut failed = false;
    for line in text.lines() {
        let _ = export::parse_line(line);
        if !failed && verifier.push_line(line).is_err() {
            failed = true;
        }
    }
    if failed {
        return;
    }
    if let Ok(report) = verifier.finish() {
        let size = report.entries as usize;
        assert!(
            size < log.roots.len() && report.root == log.roots[size],
            "an export that is not a prefix of the genuine log verified ({size} entries)"
        );
    }
}

/// Target `policy_loader`: Rego modules, data documents and inputs.
///
/// The bytes split at 0xFF into a module, a data document, an input and a path. Loading and
/// evaluating must not panic; a module or data document that is refused must leave the engine's
/// policy version as it was.
pub fn policy_loader(data: &[u8]) {
    let mut parts = data.split(|b| *b == 0xFF).map(String::from_utf8_lossy);
    let module = parts.next().unwrap_or_default();
    let document = parts.next().unwrap_or_default();
    let input = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let mut engine = PolicyEngine::new();
    let before = engine.version().clone();
    let package = match engine.add_policy("fuzz.rego", &module) {
        Ok(package) => package,
        Err(_) => {
            assert_eq!(
                engine.version(),
                &before,
                "a refused module changed the engine"
            );
            return;
        }
    };
    let loaded = engine.version().clone();
    if engine.add_data(&document).is_err() {
        assert_eq!(engine.version(), &loaded, "refused data changed the engine");
    }
    let package_path = package.trim_start_matches("data").replace('.', "/");
    for query in [path.as_ref(), package_path.as_str()] {
        let _ = engine.evaluate(query, Some(&input));
        let _ = engine.evaluate(query, None);
    }
}

/// Target `http_requests`: what `docket serve` reads from a request before acting on it.
///
/// The first byte picks the reader: a gzip'd decision-log upload, a plain one, a Data API body,
/// a `POST /` body, a tile address (which must format back to the same path), a data path.
pub fn http_requests(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => {
            if let Ok(json) = docket_wire::gunzip(rest, 1 << 16) {
                check_events(&json);
            }
        }
        1 => check_events(rest),
        2 => {
            if let Ok(Some(input)) = docket_wire::data_request_input(rest) {
                check_json(&input);
            }
        }
        3 => {
            if let Ok(Some(input)) = docket_wire::default_decision_input(rest) {
                check_json(&input);
            }
        }
        4 => {
            let path = String::from_utf8_lossy(rest);
            if let Some(address) = docket_wire::parse_tile(&path) {
                assert_eq!(
                    tile_path(&address),
                    path,
                    "a tile address that is not canonical"
                );
                assert_eq!(address.path(), path, "docket-wire writes another spelling");
                // Every leaf the tile covers has a u64 index, or the server's arithmetic on
                // the address wraps and answers with another tile's bytes.
                let per_hash = 256u128.checked_pow(u32::from(address.level.unwrap_or(0)));
                let hashes = u128::from(address.index) * 256 + u128::from(address.width.unwrap_or(256));
                assert!(
                    per_hash.and_then(|p| hashes.checked_mul(p)).is_some_and(|leaves| leaves - 1 <= u128::from(u64::MAX)),
                    "a tile address past the last possible leaf"
                );
                assert_eq!(address.first(), address.index * 256);
            }
        }
        _ => {
            let path = String::from_utf8_lossy(rest);
            for segment in docket_wire::data_path(&path) {
                assert!(!segment.is_empty() && !segment.contains('/'));
            }
        }
    }
}

/// The text handed on as an input is JSON. JSON's grammar puts no bound on numbers
/// (`77e777` is JSON), so a number beyond f64 passes here; the policy engine then refuses the
/// input with a clear error (docket-policy's tests).
fn check_json(text: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        assert!(
            e.to_string().starts_with("number out of range"),
            "the input handed on is not JSON: {e}"
        );
    }
}

fn check_events(json: &[u8]) {
    if let Ok(events) = docket_wire::parse_events(json) {
        for event in events {
            let value: serde_json::Value =
                serde_json::from_str(&event.json).expect("a sealed event is JSON");
            let object = value.as_object().expect("a sealed event is an object");
            match &event.decision_id {
                Some(id) => assert_eq!(object.get("decision_id"), Some(&id.as_str().into())),
                None => assert!(
                    object
                        .get("decision_id")
                        .is_none_or(serde_json::Value::is_null)
                ),
            }
        }
    }
}

/// A tile path written as C2SP tlog-tiles writes it, independently of the parser.
fn tile_path(address: &docket_wire::TileAddress) -> String {
    let mut out = match address.level {
        Some(level) => level.to_string(),
        None => "entries".to_string(),
    };
    let digits = address.index.to_string();
    let padded = format!("{:0>width$}", digits, width = digits.len().div_ceil(3) * 3);
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).expect("digits"))
        .collect();
    for (i, group) in groups.iter().enumerate() {
        out.push('/');
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(group);
    }
    if let Some(width) = address.width {
        out.push_str(&format!(".p/{width}"));
    }
    out
}

/// Seed inputs for each target: genuine material the fuzzer starts from (`just fuzz` writes
/// them to the corpus directory first).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let log = genuine(SigningMode::Checkpoint);
    let with = |selector: u8, bytes: &[u8]| [&[selector][..], bytes].concat();
    match target {
        "log_decoder" => {
            let mut seeds: Vec<Vec<u8>> = log.entries.iter().map(|e| with(0, e)).collect();
            seeds.push(vec![1]);
            seeds.push(vec![3, 10, 0, 1]);
            seeds
        }
        "export_parser" => vec![with(0, log.export.as_bytes()), vec![1], vec![3, 200, 0, 4]],
        "policy_loader" => {
            let module = "package rbac\nimport rego.v1\ndefault allow := false\nallow if { some g in data.grants[input.user]; g == input.action }\nreasons contains msg if { not allow; msg := sprintf(\"%v may not %v\", [input.user, input.action]) }\n";
            let doc = r#"{"grants":{"alice":["read"]}}"#;
            let input = r#"{"user":"alice","action":"read"}"#;
            vec![
                [module, doc, input, "rbac/allow"]
                    .map(str::as_bytes)
                    .join(&0xFF),
            ]
        }
        "http_requests" => vec![
            with(1, br#"[{"decision_id":"a","path":"x/y","result":true}]"#),
            with(2, br#"{"input":{"user":"alice"}}"#),
            with(3, br#"{"user":"alice"}"#),
            with(4, b"1/x001/x234/067.p/17"),
            with(5, b"rbac/allow"),
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A fuzz target's check.
    type Check = fn(&[u8]);

    const TARGETS: [(&str, Check); 4] = [
        ("log_decoder", log_decoder),
        ("export_parser", export_parser),
        ("policy_loader", policy_loader),
        ("http_requests", http_requests),
    ];

    #[test]
    fn genuine_logs_verify() {
        for mode in [SigningMode::Checkpoint, SigningMode::Entry] {
            let log = genuine(mode);
            verify_log(&log.key, &log.entries, &log.checkpoints).unwrap();
        }
    }

    #[test]
    fn seeds_pass_every_check() {
        for (target, check) in TARGETS {
            let seeds = seeds(target);
            assert!(!seeds.is_empty(), "{target} has no seeds");
            for seed in seeds {
                check(&seed);
            }
        }
    }

    /// Every input the fuzzer ever crashed on stays fixed.
    #[test]
    fn regressions_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        let mut replayed = 0;
        for (target, check) in TARGETS {
            // Every target has a folder (kept with a .gitkeep): a missing one is a renamed
            // target or a lost folder, not a reason to replay nothing.
            let dir = std::fs::read_dir(root.join(target))
                .unwrap_or_else(|e| panic!("regressions/{target}: {e}"));
            for file in dir {
                let path = file.unwrap().path();
                if path.file_name().is_some_and(|n| n == ".gitkeep") {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                assert!(outcome.is_ok(), "{} fails again", path.display());
                replayed += 1;
            }
        }
        // The saved crashes (RELIABILITY.md lists them) are all found.
        assert!(replayed >= 3, "only {replayed} regression inputs found under {root:?}");
    }

    /// `just fuzz` writes the seeds to DOCKET_FUZZ_SEEDS/<target>/ before fuzzing.
    #[test]
    #[ignore = "run by `just fuzz`"]
    fn write_seeds() {
        let root = std::path::PathBuf::from(std::env::var("DOCKET_FUZZ_SEEDS").unwrap());
        for (target, _) in TARGETS {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds(target).iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
    }

    #[test]
    fn a_tampered_log_is_caught_by_the_oracle() {
        // The oracle itself must be able to fail: a log edit that changes a byte is reported.
        let log = genuine(SigningMode::Checkpoint);
        let mut entries = log.entries.clone();
        entries[3][80] ^= 1;
        assert!(verify_log(&log.key, &entries, &log.checkpoints).is_err());
        assert_eq!(
            tile_path(&docket_wire::parse_tile("0/x001/002").unwrap()),
            "0/x001/002"
        );
    }
}
