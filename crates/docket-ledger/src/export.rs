//! The self-contained export: JSON Lines a browser or a script can verify with nothing but the
//! log's public key. See `docs/log-format.md` §7.
//!
//! ```text
//! {"docket_export":"v1","origin":"…"}                               header, first line
//! {"seq":0,"prev":"…","timestamp":"…","kind":"genesis",…}            one line per entry
//! {"checkpoint":"<origin>\n<size>\n<root>\n\n— <name> <sig>\n"}      after the entry it ends at
//! ```

use crate::entry::{DecodeError, Entry, EntryKind, LeafForm};
use crate::hash::Hash;
use crate::keys::KeyId;
use crate::verifier::{Report, Verifier, VerifyError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

pub const EXPORT_FORMAT: &str = "v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    docket_export: String,
    origin: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine {
    seq: u64,
    prev: String,
    /// Nanoseconds since the epoch, as a decimal string (JSON numbers lose precision past 2^53).
    timestamp: String,
    kind: String,
    key_id: String,
    /// The record's exact bytes, as a JSON string: UTF-8-encoding the decoded string gives them
    /// back. Absent when the entry is pruned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    record: Option<String>,
    /// `"digest"` for an entry sealed in the digest form (§3.6); absent for the record form.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    form: Option<String>,
    /// For a pruned entry (§3.5), in place of `record`: the length of the record it had.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pruned: Option<u32>,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    signature: Option<String>,
}

/// One line of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportLine {
    Header { origin: String },
    Entry(Entry),
    Checkpoint(String),
}

pub fn header_line(origin: &str) -> String {
    serde_json::to_string(&HeaderLine {
        docket_export: EXPORT_FORMAT.into(),
        origin: origin.into(),
    })
    .expect("serializes")
}

pub fn checkpoint_line(note: &str) -> String {
    serde_json::to_string(&CheckpointLine {
        checkpoint: note.into(),
    })
    .expect("serializes")
}

/// The export line of an entry. Records are valid UTF-8 by construction; an entry whose record
/// is not (it cannot have been sealed by docket) is written with U+FFFD and fails verification.
pub fn entry_line(entry: &Entry) -> String {
    let line = EntryLine {
        seq: entry.seq,
        prev: entry.prev.to_hex(),
        timestamp: entry.timestamp_ns.to_string(),
        kind: match entry.kind {
            EntryKind::Unknown(b) => format!("unknown-{b}"),
            k => k.name().to_string(),
        },
        key_id: entry.key_id.to_hex(),
        record: (!entry.is_pruned()).then(|| String::from_utf8_lossy(&entry.record).into_owned()),
        form: (entry.leaf == LeafForm::Digest).then(|| "digest".to_string()),
        pruned: entry.pruned,
        hash: entry.hash.to_hex(),
        signature: entry.signature.map(|s| BASE64.encode(s)),
    };
    serde_json::to_string(&line).expect("serializes")
}

fn bad(why: impl Into<String>) -> DecodeError {
    DecodeError(why.into())
}

/// Parses one export line (without its newline).
pub fn parse_line(line: &str) -> Result<ExportLine, DecodeError> {
    crate::json::check(line).map_err(|e| bad(format!("not a JSON object docket accepts: {e}")))?;
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let as_value = serde_json::Value::Object(value);
    if as_value.get("checkpoint").is_some() {
        let c: CheckpointLine =
            serde_json::from_value(as_value).map_err(|e| bad(format!("checkpoint line: {e}")))?;
        return Ok(ExportLine::Checkpoint(c.checkpoint));
    }
    if as_value.get("docket_export").is_some() {
        let h: HeaderLine =
            serde_json::from_value(as_value).map_err(|e| bad(format!("header line: {e}")))?;
        if h.docket_export != EXPORT_FORMAT {
            return Err(bad(format!(
                "export format {:?}; this reader knows {EXPORT_FORMAT:?}",
                h.docket_export
            )));
        }
        return Ok(ExportLine::Header { origin: h.origin });
    }
    let e: EntryLine =
        serde_json::from_value(as_value).map_err(|e| bad(format!("entry line: {e}")))?;
    let hash_field = |name: &str, text: &str| {
        Hash::from_hex(text)
            .ok_or_else(|| bad(format!("{name} {text:?} is not 64 lower-case hex digits")))
    };
    // One spelling per value: digits only, and no leading zero (a reader that compares the
    // text and one that compares the number must agree).
    let timestamp_ns = e
        .timestamp
        .parse::<u64>()
        .ok()
        .filter(|_| e.timestamp.bytes().all(|b| b.is_ascii_digit()))
        .filter(|_| e.timestamp == "0" || !e.timestamp.starts_with('0'))
        .ok_or_else(|| {
            bad(format!(
                "timestamp {:?} is not a decimal count of nanoseconds",
                e.timestamp
            ))
        })?;
    // `unknown-<byte>` spells only a byte §3.4 leaves undefined, in plain decimal: one spelling
    // per kind byte, so a defined kind cannot be smuggled in as an "unknown" one.
    let kind = EntryKind::from_name(&e.kind)
        .or_else(|| {
            e.kind
                .strip_prefix("unknown-")
                .filter(|b| b == &"0" || !b.starts_with('0'))
                .and_then(|b| b.parse::<u8>().ok())
                .map(EntryKind::from_byte)
                .filter(|k| matches!(k, EntryKind::Unknown(_)))
        })
        .ok_or_else(|| bad(format!("unknown entry kind {:?}", e.kind)))?;
    let key_id = KeyId::from_hex(&e.key_id)
        .ok_or_else(|| bad(format!("key id {:?} is not 8 hex digits", e.key_id)))?;
    let signature = match e.signature {
        None => None,
        Some(text) => Some(
            BASE64
                .decode(&text)
                .ok()
                .and_then(|raw| <[u8; 64]>::try_from(raw).ok())
                .ok_or_else(|| bad("signature is not 64 bytes of base64"))?,
        ),
    };
    let record = match (e.record, e.pruned) {
        (Some(record), None) if record.len() > crate::entry::MAX_RECORD_LEN => {
            return Err(bad(format!(
                "a record of {} bytes is longer than the {}-byte limit",
                record.len(),
                crate::entry::MAX_RECORD_LEN
            )));
        }
        (Some(record), None) => record.into_bytes(),
        (None, Some(len)) if len as usize > crate::entry::MAX_RECORD_LEN => {
            return Err(bad(format!(
                "a pruned record of {len} bytes is longer than the {}-byte limit",
                crate::entry::MAX_RECORD_LEN
            )));
        }
        (None, Some(_)) => Vec::new(),
        (Some(_), Some(_)) => return Err(bad("an entry line has `record` or `pruned`, not both")),
        (None, None) => return Err(bad("an entry line needs `record` (or `pruned`)")),
    };
    let leaf = match (e.form.as_deref(), e.pruned) {
        (None, _) => LeafForm::Record,
        (Some("digest"), None) => LeafForm::Digest,
        (Some("digest"), Some(_)) => {
            return Err(bad(
                "a pruned entry line has no `form`: its hash is taken as stored",
            ));
        }
        (Some(other), _) => {
            return Err(bad(format!(
                "entry form {other:?}; the only form an export names is \"digest\""
            )));
        }
    };
    Ok(ExportLine::Entry(Entry {
        seq: e.seq,
        prev: hash_field("prev", &e.prev)?,
        timestamp_ns,
        kind,
        key_id,
        record,
        leaf,
        hash: hash_field("hash", &e.hash)?,
        signature,
        pruned: e.pruned,
    }))
}

/// Feeds export lines to a verifier in a streaming fashion. The caller owns the I/O: this takes
/// lines as they are read, keeping only the verifier's O(log n) state.
pub struct ExportVerifier {
    verifier: Verifier,
    line: u64,
    saw_header: bool,
}

impl ExportVerifier {
    pub fn new(verifier: Verifier) -> ExportVerifier {
        ExportVerifier {
            verifier,
            line: 0,
            saw_header: false,
        }
    }

    pub fn entries(&self) -> u64 {
        self.verifier.entries()
    }

    /// The verifier underneath, for callers that mix export lines with binary entries.
    pub fn verifier_mut(&mut self) -> &mut Verifier {
        &mut self.verifier
    }

    /// Pushes one line (a trailing `\n` or `\r\n` is ignored). A blank line is malformed.
    pub fn push_line(&mut self, line: &str) -> Result<(), VerifyError> {
        self.push_line_entry(line).map(|_| ())
    }

    /// [`ExportVerifier::push_line`], also returning the entry the line held once the verifier
    /// has accepted it: what a reader may show of the log is read from accepted entries only.
    pub fn push_line_entry(&mut self, line: &str) -> Result<Option<Entry>, VerifyError> {
        self.line += 1;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let number = self.line;
        if line.trim().is_empty() {
            return Err(self.verifier.push_malformed(format!(
                "line {number} is blank; an export has one JSON object on every line"
            )));
        }
        match parse_line(line) {
            Ok(ExportLine::Header { origin }) if !self.saw_header && number == 1 => {
                self.saw_header = true;
                self.verifier.expect_origin(&origin);
                Ok(None)
            }
            Ok(ExportLine::Header { .. }) => Err(self.verifier.push_malformed(format!(
                "line {number}: a header may only be the first line"
            ))),
            Ok(_) if !self.saw_header => Err(self.verifier.push_malformed(format!(
                "line {number}: an export starts with its {{\"docket_export\":…}} header"
            ))),
            Ok(ExportLine::Entry(entry)) => self.verifier.push_entry(&entry).map(|()| Some(entry)),
            Ok(ExportLine::Checkpoint(note)) => self.verifier.push_checkpoint(&note).map(|()| None),
            Err(e) => Err(self.verifier.push_malformed(format!("line {number}: {e}"))),
        }
    }

    pub fn finish(self) -> Result<Report, VerifyError> {
        self.verifier.finish()
    }
}

/// Writes a whole export of `entries`, with each checkpoint note placed after the entry it ends
/// at. `checkpoints` pairs each note with its tree size.
pub fn write_export(origin: &str, entries: &[Entry], checkpoints: &[(u64, String)]) -> String {
    let mut out = header_line(origin);
    out.push('\n');
    let mut pending = checkpoints.iter().peekable();
    for entry in entries {
        out.push_str(&entry_line(entry));
        out.push('\n');
        while let Some((_, note)) = pending.next_if(|(size, _)| *size == entry.seq + 1) {
            out.push_str(&checkpoint_line(note));
            out.push('\n');
        }
    }
    out
}
