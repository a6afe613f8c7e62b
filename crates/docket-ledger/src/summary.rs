//! What a reader shows of one entry: its seq, kind, time, path, outcome and decision id, read
//! from the entry itself (its verified bytes), never from fields a server or a file sends beside
//! them. The verifier page's table and chart are built from these.

use crate::entry::{Entry, EntryKind};
use serde::Serialize;
use serde_json::Value;

/// One entry as a table row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntrySummary {
    pub seq: u64,
    pub kind: String,
    /// RFC 3339, nanoseconds.
    pub time: String,
    /// The decision's path, with any character that could make it look like another path
    /// (controls, bidirectional overrides, zero-width and other invisible characters) written
    /// as `\u{…}`; a path that is not a string is shown as its JSON text.
    pub path: String,
    /// `allow`, `deny`, `undefined` (no result), `other`, `pruned`, or empty for entries that
    /// are not decisions.
    pub outcome: &'static str,
    pub decision_id: String,
    /// Why a value shown may mislead, e.g. `path is not a string`; empty when nothing is odd.
    pub warnings: Vec<String>,
}

/// Characters that change how text looks without looking like anything themselves.
fn deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// `text` with every deceptive character written as `\u{…}`, and whether there was one.
fn shown(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut odd = false;
    for c in text.chars() {
        if deceptive(c) {
            odd = true;
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    (out, odd)
}

fn outcome(kind: EntryKind, record: Option<&Value>, pruned: bool) -> &'static str {
    if pruned {
        return "pruned";
    }
    if !matches!(kind, EntryKind::Decision | EntryKind::Ingested) {
        return "";
    }
    let Some(result) = record.and_then(|r| r.get("result")) else {
        return "undefined";
    };
    match result {
        Value::Bool(true) => "allow",
        Value::Bool(false) => "deny",
        Value::Object(o) => match o.get("allowed") {
            Some(Value::Bool(true)) => "allow",
            Some(Value::Bool(false)) => "deny",
            _ => "other",
        },
        _ => "other",
    }
}

/// The row for `entry`. Call it only for an entry the verifier has accepted.
pub fn summarize(entry: &Entry) -> EntrySummary {
    let record: Option<Value> = serde_json::from_slice(&entry.record).ok();
    let mut warnings = Vec::new();
    let path = match record.as_ref().and_then(|r| r.get("path")) {
        None => String::new(),
        Some(Value::String(path)) => {
            let (path, odd) = shown(path);
            if odd {
                warnings.push(
                    "path holds invisible or direction-changing characters (shown as \\u{…})"
                        .to_string(),
                );
            }
            if !path.is_ascii() {
                warnings.push("path holds non-ASCII characters".to_string());
            }
            path
        }
        Some(other) => {
            warnings.push("path is not a string".to_string());
            other.to_string()
        }
    };
    let decision_id = match record.as_ref().and_then(|r| r.get("decision_id")) {
        None => String::new(),
        Some(Value::String(id)) => {
            let (id, odd) = shown(id);
            if odd {
                warnings.push("decision id holds invisible characters".to_string());
            }
            id
        }
        Some(other) => {
            warnings.push("decision id is not a string".to_string());
            other.to_string()
        }
    };
    EntrySummary {
        seq: entry.seq,
        kind: entry.kind.to_string(),
        time: crate::record::rfc3339(entry.timestamp_ns),
        path,
        outcome: outcome(entry.kind, record.as_ref(), entry.pruned.is_some()),
        decision_id,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::KeyId;

    fn entry(kind: EntryKind, record: &str) -> Entry {
        Entry {
            seq: 7,
            prev: Hash::ZERO,
            timestamp_ns: 1_700_000_000_000_000_000,
            kind,
            key_id: KeyId(0),
            record: record.as_bytes().to_vec(),
            leaf: crate::entry::LeafForm::Record,
            hash: Hash::ZERO,
            signature: None,
            pruned: None,
        }
    }

    #[test]
    fn rows_say_what_the_entry_says_and_flag_what_could_mislead() {
        let row = summarize(&entry(
            EntryKind::Decision,
            r#"{"decision_id":"d1","path":"rbac/allow","result":{"allowed":false}}"#,
        ));
        assert_eq!((row.outcome, row.path.as_str()), ("deny", "rbac/allow"));
        assert!(row.warnings.is_empty());
        let row = summarize(&entry(
            EntryKind::Ingested,
            r#"{"path":"rbac\u202e/wolla","result":true}"#,
        ));
        assert_eq!(row.path, "rbac\\u{202e}/wolla");
        assert_eq!(row.outcome, "allow");
        assert!(row.warnings[0].contains("direction-changing"));
        let row = summarize(&entry(EntryKind::Ingested, r#"{"path":42}"#));
        assert_eq!((row.path.as_str(), row.outcome), ("42", "undefined"));
        assert_eq!(row.warnings, vec!["path is not a string"]);
        let row = summarize(&entry(EntryKind::Ingested, r#"{"path":"rb\u0430c/allow"}"#));
        assert!(
            row.warnings[0].contains("non-ASCII"),
            "a homoglyph: {row:?}"
        );
    }
}
