//! docket's log verifier in the browser (and Node), built with wasm-bindgen over `docket-ledger`:
//! the same streaming verifier, checkpoint parser and RFC 9162 proof checks the component and
//! the host use, no logic of its own. Results cross to JavaScript as JSON text.
//!
//! Large exports stream through [`ExportVerifier::push_text`] in chunks of any size: only the
//! unfinished last line of a chunk is kept between calls, never the whole file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::checkpoint::SignedCheckpoint;
use docket_ledger::export::ExportVerifier as LedgerExportVerifier;
use docket_ledger::merkle::{verify_consistency, verify_inclusion};
use docket_ledger::report::{Summary, verdict_json};
use docket_ledger::verifier::{Report, VerifyError};
use docket_ledger::{Hash, PublicKey, Verifier};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

fn error(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

fn public_key(vkey: &str) -> Result<PublicKey, JsError> {
    PublicKey::from_vkey(vkey.trim()).map_err(|e| {
        error(format!(
            "the public key is not a docket/C2SP verifier key: {e}"
        ))
    })
}

/// The JSON report of a finished verification, in the ledger's one shape for every shell
/// (`docket_ledger::report`): `{"ok": true, …}` or `{"ok": false, "failure": …}`.
fn report_json(result: Result<Report, VerifyError>) -> Value {
    verdict_json(&result.map(|report| Summary::from(&report)))
}

/// Rows of accepted entries waiting for the page: JSON arrays
/// `[seq, kind, time, path, outcome, decision_id, warnings]`, compact because a page may hold a
/// million of them.
#[derive(Default)]
struct Rows(Vec<Value>);

impl Rows {
    fn push(&mut self, entry: &docket_ledger::Entry) {
        let s = docket_ledger::summary::summarize(entry);
        self.0.push(json!([
            s.seq,
            s.kind,
            s.time,
            s.path,
            s.outcome,
            s.decision_id,
            s.warnings
        ]));
    }

    fn take(&mut self) -> String {
        Value::Array(std::mem::take(&mut self.0)).to_string()
    }
}

/// Verifies a JSON Lines export (log-format §10) streamed in chunks.
#[wasm_bindgen]
pub struct ExportVerifier {
    inner: LedgerExportVerifier,
    partial: String,
    failed: Option<VerifyError>,
    lines: u64,
    rows: Rows,
}

#[wasm_bindgen]
impl ExportVerifier {
    /// A verifier trusting `genesis_vkey` (the log's `.pub` file contents).
    #[wasm_bindgen(constructor)]
    pub fn new(genesis_vkey: &str) -> Result<ExportVerifier, JsError> {
        Ok(ExportVerifier {
            inner: LedgerExportVerifier::new(Verifier::new(public_key(genesis_vkey)?)),
            partial: String::new(),
            failed: None,
            lines: 0,
            rows: Rows::default(),
        })
    }

    /// Also require the log to reach this signed tree head (size and base64 root).
    #[wasm_bindgen(js_name = expectTreeHead)]
    pub fn expect_tree_head(&mut self, size: u64, root_base64: &str) -> Result<(), JsError> {
        let root = decode_hash(root_base64)?;
        self.inner.verifier_mut().expect_tree_head(size, root);
        Ok(())
    }

    /// Also require the log to reach this checkpoint note, kept from before: its size and root,
    /// its origin, and a signature by the key in force at its size (log-format §8).
    #[wasm_bindgen(js_name = expectCheckpoint)]
    pub fn expect_checkpoint(&mut self, note: &str) -> Result<(), JsError> {
        self.inner
            .verifier_mut()
            .expect_checkpoint(note)
            .map_err(|e| error(format!("the trusted checkpoint is not a checkpoint: {e}")))
    }

    /// Feeds the next chunk of the export's text. Returns false once verification has failed
    /// (the caller may stop reading).
    #[wasm_bindgen(js_name = pushText)]
    pub fn push_text(&mut self, chunk: &str) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.partial.push_str(chunk);
        let mut consumed = 0;
        while let Some(end) = self.partial[consumed..].find('\n') {
            let line = &self.partial[consumed..consumed + end];
            consumed += end + 1;
            match push_line(&mut self.inner, line) {
                Ok(Some(entry)) => self.rows.push(&entry),
                Ok(None) => {}
                Err(e) => {
                    self.failed = Some(e);
                    self.partial.clear();
                    return false;
                }
            }
            self.lines += 1;
        }
        self.partial.drain(..consumed);
        true
    }

    /// Entries verified so far.
    pub fn entries(&self) -> u64 {
        self.inner.entries()
    }

    /// The rows of the entries accepted since the last call, as a JSON array of
    /// `[seq, kind, time, path, outcome, decision_id, warnings]`: decoded from the entries the
    /// verifier checked, so nothing shown comes from anywhere else. Call it before `finish`.
    #[wasm_bindgen(js_name = takeRows)]
    pub fn take_rows(&mut self) -> String {
        self.rows.take()
    }

    /// Ends the export: pushes an unfinished last line, if any. Call `takeRows` for its row,
    /// then `finish`.
    #[wasm_bindgen(js_name = endText)]
    pub fn end_text(&mut self) {
        if self.failed.is_none() && !self.partial.trim().is_empty() {
            let last = std::mem::take(&mut self.partial);
            match push_line(&mut self.inner, &last) {
                Ok(Some(entry)) => self.rows.push(&entry),
                Ok(None) => {}
                Err(e) => self.failed = Some(e),
            }
        }
    }

    /// Ends the export and returns the report as JSON text.
    pub fn finish(mut self) -> String {
        self.end_text();
        let result = match self.failed {
            Some(e) => Err(e),
            None => self.inner.finish(),
        };
        report_json(result).to_string()
    }
}

fn push_line(
    verifier: &mut LedgerExportVerifier,
    line: &str,
) -> Result<Option<docket_ledger::Entry>, VerifyError> {
    verifier.push_line_entry(line.trim_end_matches('\r'))
}

/// Verifies a log fetched from a docket server: encoded entries (base64) and checkpoint notes
/// pushed in log order.
#[wasm_bindgen]
pub struct LogVerifier {
    inner: Verifier,
    failed: Option<VerifyError>,
    rows: Rows,
}

#[wasm_bindgen]
impl LogVerifier {
    #[wasm_bindgen(constructor)]
    pub fn new(genesis_vkey: &str) -> Result<LogVerifier, JsError> {
        Ok(LogVerifier {
            inner: Verifier::new(public_key(genesis_vkey)?),
            failed: None,
            rows: Rows::default(),
        })
    }

    /// Also require the log to reach this signed tree head (size and base64 root): one the user
    /// kept from before, so a server showing an older, shorter log is caught (a rollback).
    #[wasm_bindgen(js_name = expectTreeHead)]
    pub fn expect_tree_head(&mut self, size: u64, root_base64: &str) -> Result<(), JsError> {
        let root = decode_hash(root_base64)?;
        self.inner.expect_tree_head(size, root);
        Ok(())
    }

    /// Also require the log to reach this checkpoint note, kept from before: its size and root,
    /// its origin, and a signature by the key in force at its size (log-format §8), so a
    /// rollback, another log's checkpoint, or one signed by a retired key is caught.
    #[wasm_bindgen(js_name = expectCheckpoint)]
    pub fn expect_checkpoint(&mut self, note: &str) -> Result<(), JsError> {
        self.inner
            .expect_checkpoint(note)
            .map_err(|e| error(format!("the trusted checkpoint is not a checkpoint: {e}")))
    }

    /// The next entry, as its binary encoding in base64 (the `encoded` field of docket's API).
    #[wasm_bindgen(js_name = pushEntry)]
    pub fn push_entry(&mut self, encoded_base64: &str) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let outcome = match B64.decode(encoded_base64) {
            Ok(bytes) => self.inner.push_entry_bytes(&bytes).map(|()| {
                // Accepted, so it decodes: the row is read from these very bytes.
                if let Ok(entry) = docket_ledger::Entry::decode(&bytes) {
                    self.rows.push(&entry);
                }
            }),
            Err(e) => Err(self
                .inner
                .push_malformed(format!("the entry is not base64: {e}"))),
        };
        self.record(outcome)
    }

    /// The rows of the entries accepted since the last call (see `ExportVerifier.takeRows`).
    #[wasm_bindgen(js_name = takeRows)]
    pub fn take_rows(&mut self) -> String {
        self.rows.take()
    }

    /// A signed checkpoint note, after the entries it covers.
    #[wasm_bindgen(js_name = pushCheckpoint)]
    pub fn push_checkpoint(&mut self, note: &str) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let outcome = self.inner.push_checkpoint(note);
        self.record(outcome)
    }

    fn record(&mut self, outcome: Result<(), VerifyError>) -> bool {
        match outcome {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    pub fn entries(&self) -> u64 {
        self.inner.entries()
    }

    pub fn finish(self) -> String {
        let result = match self.failed {
            Some(e) => Err(e),
            None => self.inner.finish(),
        };
        report_json(result).to_string()
    }
}

fn decode_hash(text: &str) -> Result<Hash, JsError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| error(format!("a hash is not base64: {e}")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| error("a hash must be 32 bytes"))?;
    Ok(Hash(bytes))
}

fn decode_hashes(list: &[String]) -> Result<Vec<Hash>, JsError> {
    list.iter().map(|h| decode_hash(h)).collect()
}

/// Checks a checkpoint note's signature against a verifier key; returns
/// `{"ok", "origin", "size", "root", "signer"}` as JSON text.
#[wasm_bindgen(js_name = verifyCheckpoint)]
pub fn verify_checkpoint(note: &str, vkey: &str) -> Result<String, JsError> {
    let key = public_key(vkey)?;
    let parsed =
        SignedCheckpoint::parse(note).map_err(|e| error(format!("not a checkpoint: {e}")))?;
    let ok = parsed.is_signed_by(&key);
    Ok(json!({
        "ok": ok,
        "origin": parsed.checkpoint.origin,
        "size": parsed.checkpoint.size,
        "root": B64.encode(parsed.checkpoint.root.0),
        "signer": if ok { Value::String(key.to_vkey()) } else { Value::Null },
    })
    .to_string())
}

/// Applies a witness policy (docs/witness.md §3): of `notes` (checkpoint notes carrying
/// cosignatures), those of `origin`, the largest checkpoint that at least `quorum` of
/// `witnesses` (cosignature/v1 verifier keys) validly cosigned. Returns JSON text
/// `{"ok": true, "size", "root" (base64), "cosigned": [{"witness", "time"}…]}` (hand size and
/// root to `expectTreeHead`), or `{"ok": false, "message"}`: the log is not witnessed.
#[wasm_bindgen(js_name = witnessedHead)]
pub fn witnessed_head(
    origin: &str,
    notes: Vec<String>,
    witnesses: Vec<String>,
    quorum: u32,
) -> Result<String, JsError> {
    let witnesses = witnesses
        .iter()
        .map(|k| {
            docket_ledger::CosignerKey::from_vkey(k)
                .map_err(|e| error(format!("a witness key is not a cosignature/v1 key: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if quorum == 0 || quorum as usize > witnesses.len() {
        return Err(error(format!(
            "the quorum must be between 1 and the number of witness keys ({})",
            witnesses.len()
        )));
    }
    let notes: Vec<SignedCheckpoint> = notes
        .iter()
        .map(|n| {
            let n = if n.ends_with('\n') {
                n.clone()
            } else {
                format!("{n}\n")
            };
            SignedCheckpoint::parse(&n)
                .map_err(|e| error(format!("a cosigned checkpoint is not a signed note: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let policy = docket_ledger::witness::WitnessPolicy {
        witnesses,
        quorum: quorum as usize,
    };
    Ok(match policy.strongest(origin, &notes) {
        Ok(head) => json!({
            "ok": true,
            "size": head.checkpoint.size,
            "root": B64.encode(head.checkpoint.root.0),
            "cosigned": head.cosigned.iter().map(|c| json!({
                "witness": c.witness,
                "time": docket_ledger::record::rfc3339_seconds(c.timestamp),
            })).collect::<Vec<_>>(),
        }),
        Err(message) => json!({"ok": false, "message": message}),
    }
    .to_string())
}

/// Checks an RFC 9162 inclusion proof (hashes in base64, as docket's API gives them).
#[wasm_bindgen(js_name = verifyInclusion)]
pub fn verify_inclusion_proof(
    leaf_base64: &str,
    index: u64,
    size: u64,
    proof_base64: Vec<String>,
    root_base64: &str,
) -> Result<bool, JsError> {
    let proof = decode_hashes(&proof_base64)?;
    Ok(verify_inclusion(
        &decode_hash(leaf_base64)?,
        index,
        size,
        &proof,
        &decode_hash(root_base64)?,
    )
    .is_ok())
}

/// Checks an RFC 9162 consistency proof between two tree heads.
#[wasm_bindgen(js_name = verifyConsistency)]
pub fn verify_consistency_proof(
    old_size: u64,
    new_size: u64,
    proof_base64: Vec<String>,
    old_root_base64: &str,
    new_root_base64: &str,
) -> Result<bool, JsError> {
    let proof = decode_hashes(&proof_base64)?;
    Ok(verify_consistency(
        old_size,
        new_size,
        &proof,
        &decode_hash(old_root_base64)?,
        &decode_hash(new_root_base64)?,
    )
    .is_ok())
}

#[cfg(test)]
mod tests {
    //! The bindings against the format's test vectors (tests/vectors), natively. Only success
    //! paths are called here: creating a `JsError` needs a JavaScript host.
    use super::*;

    /// `tests/vectors`, from the environment `cargo test` runs tests in (a binary cached in a
    /// shared target directory may run from another checkout than it was built in).
    fn vectors_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
            .join("../../tests/vectors")
    }

    fn vectors() -> (String, String, Value) {
        let dir = vectors_dir();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let expected: Value = serde_json::from_str(&read("expected.json")).unwrap();
        (read("log.jsonl"), read("genesis.pub"), expected)
    }

    fn b64_of_hex(hex: &str) -> String {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        B64.encode(bytes)
    }

    fn proof_b64(hashes: &Value) -> Vec<String> {
        hashes
            .as_array()
            .unwrap()
            .iter()
            .map(|h| b64_of_hex(h.as_str().unwrap()))
            .collect()
    }

    #[test]
    fn exports_verify_in_chunks_of_any_size_and_tampering_is_located() {
        let (log, vkey, expected) = vectors();
        for chunk in [1, 7, 64, 4096, log.len()] {
            let mut v = ExportVerifier::new(&vkey).unwrap();
            // The page hands over decoded text; split anywhere between characters.
            let mut at = 0;
            while at < log.len() {
                let mut end = (at + chunk).min(log.len());
                while !log.is_char_boundary(end) {
                    end += 1;
                }
                assert!(v.push_text(&log[at..end]));
                at = end;
            }
            let report: Value = serde_json::from_str(&v.finish()).unwrap();
            assert_eq!(report["ok"], true, "{report}");
            assert_eq!(
                report["entries"],
                expected["entries"].as_array().unwrap().len()
            );
        }
        // Flip one record byte of entry 3 (as the vectors' first tampered case does).
        let mut lines: Vec<String> = log.lines().map(str::to_string).collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("{\"seq\":3,"))
            .unwrap();
        lines[at] = lines[at].replacen("decision_id", "decision_iD", 1);
        let mut v = ExportVerifier::new(&vkey).unwrap();
        assert!(!v.push_text(&(lines.join("\n") + "\n")));
        let report: Value = serde_json::from_str(&v.finish()).unwrap();
        assert_eq!(
            (&report["ok"], &report["failure"], &report["seq"]),
            (&json!(false), &json!("bad-hash"), &json!(3))
        );
    }

    #[test]
    fn proofs_and_checkpoints_check_out_and_wrong_ones_do_not() {
        let (_, vkey, expected) = vectors();
        let roots: std::collections::HashMap<u64, String> = expected["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["size"].as_u64().unwrap(),
                    b64_of_hex(r["root"].as_str().unwrap()),
                )
            })
            .collect();
        let leaves: Vec<String> = expected["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| b64_of_hex(e["hash"].as_str().unwrap()))
            .collect();
        for p in expected["inclusion"].as_array().unwrap() {
            let (index, size) = (p["index"].as_u64().unwrap(), p["size"].as_u64().unwrap());
            let proof = proof_b64(&p["proof"]);
            let leaf = &leaves[index as usize];
            assert!(
                verify_inclusion_proof(leaf, index, size, proof.clone(), &roots[&size]).unwrap()
            );
            let other = &leaves[(index as usize + 1) % leaves.len()];
            if size > 1 {
                assert!(!verify_inclusion_proof(other, index, size, proof, &roots[&size]).unwrap());
            }
        }
        for p in expected["consistency"].as_array().unwrap() {
            let (old, new) = (
                p["old_size"].as_u64().unwrap(),
                p["new_size"].as_u64().unwrap(),
            );
            let proof = proof_b64(&p["proof"]);
            assert!(
                verify_consistency_proof(old, new, proof.clone(), &roots[&old], &roots[&new])
                    .unwrap()
            );
            if old > 0 && old < new {
                assert!(
                    !verify_consistency_proof(old, new, proof, &roots[&new], &roots[&new]).unwrap()
                );
            }
        }
        let note = expected["checkpoints"][0]["note"].as_str().unwrap();
        let head: Value = serde_json::from_str(&verify_checkpoint(note, &vkey).unwrap()).unwrap();
        assert_eq!((&head["ok"], &head["size"]), (&json!(true), &json!(5)));
        let rotated = std::fs::read_to_string(vectors_dir().join("rotated.pub")).unwrap();
        let head: Value =
            serde_json::from_str(&verify_checkpoint(note, &rotated).unwrap()).unwrap();
        assert_eq!(head["ok"], false);
    }
}
