//! Masking a decision before it is sealed, and proving a masked value later.
//!
//! The logging rules (`data.system.log.mask`, evaluated by `docket-policy`) name values under
//! `/input` and `/result` to erase or overwrite. Each value taken out of the record is replaced
//! by a **salted commitment**: SHA-256 over a domain tag, 32 random bytes (the salt) and the
//! value's JSON text. The sealed record holds the commitment, never the value; the salt goes back
//! to the caller, who keeps it apart from the log (or nowhere). Whoever holds the value and its
//! salt can later prove what the value was ([`check_reveal`]). `docs/log-format.md` §4.6.
//!
//! Editing works on JSON text: only the containers on a masked path are parsed, everything else
//! keeps its exact spelling (key order, number form), so a record changes only where a rule says.

use crate::hash::sha256;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Domain tag of a mask commitment.
pub const COMMITMENT_TAG: &[u8; 26] = b"docket/mask-commitment/v1\0";

/// One rule of `data.system.log.mask`, in OPA's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskRule {
    /// Take the value out (a JSON Pointer string, or `{"op": "remove", "path": ..}`).
    Remove { path: String },
    /// Put `value` (JSON text) at the path (`{"op": "upsert", "path": .., "value": ..}`).
    Upsert { path: String, value: String },
}

impl MaskRule {
    pub fn path(&self) -> &str {
        match self {
            MaskRule::Remove { path } | MaskRule::Upsert { path, .. } => path,
        }
    }
}

/// What the logging rules (`data.system.log`) decided for one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRules {
    /// Not sealed; counted in the next tally entry instead.
    pub drop: bool,
    /// Applied in order before sealing.
    pub mask: Vec<MaskRule>,
    /// How long the entry must be kept, in nanoseconds; `None` keeps it indefinitely.
    pub retention_ns: Option<u64>,
}

/// The salt of one masked value, for the caller to keep apart from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskSalt {
    /// The JSON Pointer of the value in the decision (`/input/user/email`).
    pub path: String,
    pub salt: [u8; 32],
}

/// A decision's input and result after masking, and what was done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Masked {
    pub input: Option<String>,
    pub result: Option<String>,
    /// Paths whose value was removed (OPA's `erased`), in the order applied.
    pub erased: Vec<String>,
    /// Paths whose value was set by an upsert (OPA's `masked`), in the order applied.
    pub masked: Vec<String>,
    /// (path, `sha256:<hex>` commitment) of every value taken out of the record.
    pub commitments: Vec<(String, String)>,
    pub salts: Vec<MaskSalt>,
}

/// A mask rule that cannot be applied as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskError(pub String);

impl fmt::Display for MaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MaskError {}

/// `sha256:<hex>` of SHA-256(tag ‖ salt ‖ value's JSON text).
pub fn commitment(salt: &[u8; 32], value_json: &str) -> String {
    format!(
        "sha256:{}",
        sha256(&[COMMITMENT_TAG, salt, value_json.as_bytes()]).to_hex()
    )
}

/// Splits a JSON Pointer (RFC 6901) into its document (`input` or `result`) and the unescaped
/// segments below it.
fn parse_pointer(pointer: &str) -> Result<(&'static str, Vec<String>), MaskError> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(MaskError(format!(
            "mask path {pointer:?} is not a JSON Pointer: it must start with /input or /result"
        )));
    };
    let mut segments = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"));
    let document = match segments.next().as_deref() {
        Some("input") => "input",
        Some("result") => "result",
        _ => {
            return Err(MaskError(format!(
                "mask path {pointer:?} must be under /input or /result"
            )));
        }
    };
    Ok((document, segments.collect()))
}

/// Applies the rules to a decision's input and result (JSON texts, already compact). Values
/// taken out are committed to with a salt from `salt`; a rule whose path does not exist in the
/// decision is skipped, as in OPA.
pub fn apply(
    input: Option<&str>,
    result: Option<&str>,
    rules: &[MaskRule],
    salt: &mut dyn FnMut() -> [u8; 32],
) -> Result<Masked, MaskError> {
    let mut out = Masked {
        input: input.map(str::to_string),
        result: result.map(str::to_string),
        ..Masked::default()
    };
    for rule in rules {
        let (document, segments) = parse_pointer(rule.path())?;
        let slot = match document {
            "input" => &mut out.input,
            _ => &mut out.result,
        };
        let new_value = match rule {
            MaskRule::Remove { .. } => None,
            MaskRule::Upsert { value, .. } => {
                serde_json::from_str::<&RawValue>(value).map_err(|e| {
                    MaskError(format!(
                        "mask upsert value for {:?} is not JSON: {e}",
                        rule.path()
                    ))
                })?;
                Some(crate::record::minify_json(value))
            }
        };
        let Some(old) = edit(slot, &segments, new_value.as_deref())? else {
            continue; // nothing there to remove, or no parent to upsert into
        };
        match rule {
            MaskRule::Remove { path } => out.erased.push(path.clone()),
            MaskRule::Upsert { path, .. } => out.masked.push(path.clone()),
        }
        // A second rule on the same path commits nothing new: the first commitment is to the
        // value the decision had.
        let committed = out.commitments.iter().any(|(p, _)| p == rule.path());
        if let Some(old) = old.filter(|_| !committed) {
            let s = salt();
            out.commitments
                .push((rule.path().to_string(), commitment(&s, &old)));
            out.salts.push(MaskSalt {
                path: rule.path().to_string(),
                salt: s,
            });
        }
    }
    Ok(out)
}

/// Removes (`new_value` = `None`) or sets the value at `segments` below a document. Returns
/// `None` when the rule does not apply, else `Some(previous value's JSON text, if any)`.
fn edit(
    document: &mut Option<String>,
    segments: &[String],
    new_value: Option<&str>,
) -> Result<Option<Option<String>>, MaskError> {
    let Some((last, parents)) = segments.split_last() else {
        // The whole document.
        return Ok(match (document.take(), new_value) {
            (None, None) => None,
            (old, Some(v)) => {
                *document = Some(v.to_string());
                Some(old)
            }
            (old, None) => Some(old),
        });
    };
    let Some(text) = document.as_deref() else {
        return Ok(None);
    };
    match edit_in(text, parents, last, new_value)? {
        Some((new_text, old)) => {
            *document = Some(new_text);
            Ok(Some(old))
        }
        None => Ok(None),
    }
}

/// An object's members or an array's elements, each as its exact JSON text.
enum Container {
    Object(Vec<(String, Box<RawValue>)>),
    Array(Vec<Box<RawValue>>),
}

struct ContainerVisitor;

impl<'de> Visitor<'de> for ContainerVisitor {
    type Value = Option<Container>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
            members.push(entry);
        }
        Ok(Some(Container::Object(members)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Box<RawValue>>()? {
            items.push(item);
        }
        Ok(Some(Container::Array(items)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `None` for a scalar.
fn container(text: &str) -> Result<Option<Container>, MaskError> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(ContainerVisitor)
        .map_err(|e| MaskError(format!("decision JSON could not be read: {e}")))
}

fn write_container(container: &Container) -> String {
    let mut out = String::new();
    match container {
        Container::Object(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("strings serialize"));
                out.push(':');
                out.push_str(value.get());
            }
            out.push('}');
        }
        Container::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(item.get());
            }
            out.push(']');
        }
    }
    out
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).expect("valid JSON text")
}

fn array_index(segment: &str, len: usize) -> Option<usize> {
    let valid = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    valid
        .then(|| segment.parse().ok())
        .flatten()
        .filter(|&i| i < len)
}

/// Edits inside `text`: descends `parents`, then removes or sets `last`. Returns the new text
/// and the previous value's text, or `None` when the path does not reach a container.
fn edit_in(
    text: &str,
    parents: &[String],
    last: &str,
    new_value: Option<&str>,
) -> Result<Option<(String, Option<String>)>, MaskError> {
    let Some(mut node) = container(text)? else {
        return Ok(None);
    };
    if let Some((next, rest)) = parents.split_first() {
        let child = match &mut node {
            Container::Object(members) => members
                .iter_mut()
                .find(|(k, _)| k == next)
                .map(|m| &mut m.1),
            Container::Array(items) => {
                let len = items.len();
                array_index(next, len).map(|i| &mut items[i])
            }
        };
        let Some(child) = child else {
            return Ok(None);
        };
        let Some((new_child, old)) = edit_in(child.get(), rest, last, new_value)? else {
            return Ok(None);
        };
        *child = raw(&new_child);
        return Ok(Some((write_container(&node), old)));
    }
    let old = match (&mut node, new_value) {
        (Container::Object(members), None) => {
            let Some(at) = members.iter().position(|(k, _)| k == last) else {
                return Ok(None);
            };
            Some(members.remove(at).1.get().to_string())
        }
        (Container::Object(members), Some(v)) => {
            match members.iter_mut().find(|(k, _)| k == last) {
                Some((_, value)) => Some(std::mem::replace(value, raw(v)).get().to_string()),
                None => {
                    members.push((last.to_string(), raw(v)));
                    None
                }
            }
        }
        (Container::Array(items), new_value) => {
            let Some(i) = array_index(last, items.len()) else {
                return Ok(None);
            };
            match new_value {
                None => Some(items.remove(i).get().to_string()),
                Some(v) => Some(std::mem::replace(&mut items[i], raw(v)).get().to_string()),
            }
        }
    };
    Ok(Some((write_container(&node), old)))
}

/// Why a revealed value does not prove out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevealError {
    /// The record has no commitment at that path.
    NoCommitment(String),
    /// The value and salt do not give the recorded commitment.
    Mismatch,
    /// The record or the value is not valid JSON.
    Malformed(String),
}

impl fmt::Display for RevealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevealError::NoCommitment(path) => write!(
                f,
                "the entry holds no commitment for {path:?}; its record's `commitments` name the masked paths"
            ),
            RevealError::Mismatch => f.write_str(
                "the value and salt do not match the commitment sealed in the entry: this is not the value that was masked (or not its salt)",
            ),
            RevealError::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RevealError {}

/// Checks that `value_json` with `salt` is what a decision record committed to at `path`. The
/// value is compared as compact JSON text (insignificant whitespace removed).
pub fn check_reveal(
    record: &[u8],
    path: &str,
    value_json: &str,
    salt: &[u8; 32],
) -> Result<(), RevealError> {
    #[derive(serde::Deserialize)]
    struct WithCommitments {
        #[serde(default)]
        commitments: std::collections::BTreeMap<String, String>,
    }
    let parsed: WithCommitments = serde_json::from_slice(record)
        .map_err(|e| RevealError::Malformed(format!("the entry's record is not JSON: {e}")))?;
    let Some(expected) = parsed.commitments.get(path) else {
        return Err(RevealError::NoCommitment(path.to_string()));
    };
    serde_json::from_str::<&RawValue>(value_json)
        .map_err(|e| RevealError::Malformed(format!("the revealed value is not JSON: {e}")))?;
    let value = crate::record::minify_json(value_json);
    if &commitment(salt, &value) == expected {
        Ok(())
    } else {
        Err(RevealError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> [u8; 32] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; 32]
        }
    }

    fn remove(path: &str) -> MaskRule {
        MaskRule::Remove { path: path.into() }
    }

    #[test]
    fn removes_and_upserts_keeping_everything_else_as_written() {
        let input =
            r#"{"user":{"name":"alice","email":"a@example.com"},"n":1.50,"tags":["x","y"]}"#;
        let rules = [
            remove("/input/user/email"),
            remove("/input/tags/0"),
            MaskRule::Upsert {
                path: "/input/user/name".into(),
                value: r#" "**REDACTED**" "#.into(),
            },
            remove("/input/absent"),
            remove("/result/x"),
        ];
        let masked = apply(Some(input), Some("true"), &rules, &mut counter()).unwrap();
        assert_eq!(
            masked.input.as_deref(),
            Some(r#"{"user":{"name":"**REDACTED**"},"n":1.50,"tags":["y"]}"#)
        );
        assert_eq!(masked.result.as_deref(), Some("true"));
        assert_eq!(masked.erased, ["/input/user/email", "/input/tags/0"]);
        assert_eq!(masked.masked, ["/input/user/name"]);
        assert_eq!(masked.commitments.len(), 3);
        assert_eq!(
            masked.commitments[0],
            (
                "/input/user/email".to_string(),
                commitment(&[1; 32], r#""a@example.com""#)
            )
        );
        assert_eq!(masked.salts[2].path, "/input/user/name");
        assert_eq!(masked.salts[2].salt, [3; 32]);
        // An upsert where nothing was adds the value and commits to nothing.
        let added = apply(
            Some("{}"),
            None,
            &[MaskRule::Upsert {
                path: "/input/flag".into(),
                value: "1".into(),
            }],
            &mut counter(),
        )
        .unwrap();
        assert_eq!(added.input.as_deref(), Some(r#"{"flag":1}"#));
        assert!(added.commitments.is_empty());
        // The whole result.
        let whole = apply(
            None,
            Some(r#"{"a":1}"#),
            &[remove("/result")],
            &mut counter(),
        )
        .unwrap();
        assert_eq!(whole.result, None);
        assert_eq!(whole.commitments[0].1, commitment(&[1; 32], r#"{"a":1}"#));
    }

    #[test]
    fn refuses_paths_outside_the_decision() {
        for path in ["input/x", "/labels/id", "", "/"] {
            let e = apply(Some("{}"), None, &[remove(path)], &mut counter()).unwrap_err();
            assert!(e.0.contains("/input or /result"), "{path}: {e}");
        }
    }

    #[test]
    fn a_revealed_value_proves_out_only_with_its_salt() {
        let record = format!(
            r#"{{"input":{{}},"commitments":{{"/input/email":"{}"}}}}"#,
            commitment(&[9; 32], r#""a@example.com""#)
        );
        let record = record.as_bytes();
        check_reveal(record, "/input/email", r#" "a@example.com" "#, &[9; 32]).unwrap();
        assert_eq!(
            check_reveal(record, "/input/email", r#""b@example.com""#, &[9; 32]),
            Err(RevealError::Mismatch)
        );
        assert_eq!(
            check_reveal(record, "/input/email", r#""a@example.com""#, &[8; 32]),
            Err(RevealError::Mismatch)
        );
        assert!(matches!(
            check_reveal(record, "/input/name", "1", &[9; 32]),
            Err(RevealError::NoCommitment(_))
        ));
    }
}
