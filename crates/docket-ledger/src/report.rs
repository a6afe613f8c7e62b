//! The verdict of a verification as JSON: one shape for every shell that prints one
//! (`docket verify --json`, the browser page, the component's callers), written here once.
//!
//! ```text
//! {"ok":true,"entries":…,"root":"<hex>","checkpoints":…,"last_checkpoint_size":…,
//!  "first_timestamp":"<RFC 3339>","last_timestamp":…,"kinds":{"genesis":1,"decision":…,…},
//!  "pruned_entries":…,"prunes":[{"seq","at","first","last","entries","pruned_found",
//!  "policy_versions"}…],"keys":["<vkey>"…],"origin":"…","trusted_size":<n>|null}
//! {"ok":false,"failure":"bad-hash","location":"entry","seq":12,"detail":"…","message":"entry 12: bad-hash: …"}
//! ```
//!
//! A shell may add fields of its own (`seconds`); it never renames these.

use crate::entry::EntryKind;
use crate::hash::Hash;
use crate::record::rfc3339;
use crate::verifier::{Location, PruneSummary, Report, VerifyError};
use serde_json::{Value, json};

/// What a verification established, as every shell reports it: the [`Report`] without the
/// state a writer resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub root: Hash,
    pub checkpoints: u64,
    pub last_checkpoint_size: u64,
    pub first_timestamp_ns: u64,
    pub last_timestamp_ns: u64,
    /// Entries per kind, in [`EntryKind::KNOWN`] order.
    pub kinds: [u64; 7],
    pub pruned_entries: u64,
    pub prunes: Vec<PruneSummary>,
    /// Every key the log used, the genesis key first, as note verifier keys.
    pub keys: Vec<String>,
    pub origin: String,
    pub trusted_size: Option<u64>,
}

impl Summary {
    pub fn count(&self, kind: EntryKind) -> u64 {
        EntryKind::KNOWN
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.kinds[i])
    }

    pub fn json(&self) -> Value {
        let kinds: serde_json::Map<String, Value> = EntryKind::KNOWN
            .iter()
            .map(|k| (k.name().to_string(), json!(self.count(*k))))
            .collect();
        json!({
            "ok": true,
            "entries": self.entries,
            "root": self.root.to_string(),
            "checkpoints": self.checkpoints,
            "last_checkpoint_size": self.last_checkpoint_size,
            "first_timestamp": rfc3339(self.first_timestamp_ns),
            "last_timestamp": rfc3339(self.last_timestamp_ns),
            "kinds": kinds,
            "pruned_entries": self.pruned_entries,
            "prunes": self.prunes.iter().map(|p| json!({
                "seq": p.seq,
                "at": rfc3339(p.timestamp_ns),
                "first": p.first,
                "last": p.last,
                "entries": p.entries,
                "pruned_found": p.pruned_found,
                "policy_versions": p.policy_versions,
            })).collect::<Vec<_>>(),
            "keys": self.keys,
            "origin": self.origin,
            "trusted_size": self.trusted_size,
        })
    }
}

impl From<&Report> for Summary {
    fn from(r: &Report) -> Summary {
        Summary {
            entries: r.entries,
            root: r.root,
            checkpoints: r.checkpoints,
            last_checkpoint_size: r.last_checkpoint_size,
            first_timestamp_ns: r.first_timestamp_ns,
            last_timestamp_ns: r.last_timestamp_ns,
            kinds: r.kinds,
            pruned_entries: r.pruned_entries,
            prunes: r.prunes.clone(),
            keys: r.keys.iter().map(|k| k.to_vkey()).collect(),
            origin: r.state.origin.clone(),
            trusted_size: r.trusted_size,
        }
    }
}

/// `{"ok": false, "failure", "message"}`: a verdict other than "verified" that is not the
/// verifier's own (damaged files, a checkpoint of another log, an unfinished commit).
pub fn rejection_json(failure: &str, message: &str) -> Value {
    json!({"ok": false, "failure": failure, "message": message})
}

/// The verifier's failure: its name, where (`entry`, `checkpoint` after `seq` entries, or
/// `end`), the detail, and the whole sentence as `message`.
pub fn failure_json(e: &VerifyError) -> Value {
    let (at, seq) = match e.location {
        Location::Entry(seq) => ("entry", Some(seq)),
        Location::Checkpoint(size) => ("checkpoint", Some(size)),
        Location::End => ("end", None),
    };
    let mut out = rejection_json(e.failure.name(), &e.to_string());
    out["location"] = json!(at);
    out["seq"] = json!(seq);
    out["detail"] = json!(e.detail);
    out
}

/// The verdict as JSON: [`Summary::json`] or [`failure_json`].
pub fn verdict_json(result: &Result<Summary, VerifyError>) -> Value {
    match result {
        Ok(summary) => summary.json(),
        Err(e) => failure_json(e),
    }
}
