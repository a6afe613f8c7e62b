//! Entry records: the JSON objects entries carry. See `docs/log-format.md` §4.
//!
//! Records are written once, compactly, with a fixed key order, and stored as bytes; nothing
//! ever re-serializes them. Decision records use OPA's decision-log field names.

use crate::hash::{Hash, sha256};
use crate::masking::{self, LogRules, MaskSalt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The format version a genesis record declares.
pub const LOG_FORMAT: &str = "v1";

/// How entries are signed; fixed for a log by its genesis record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigningMode {
    /// Entries are hash-chained and covered by signed checkpoints issued at every commit;
    /// only genesis and key-rotation entries carry their own signature.
    Checkpoint,
    /// Every entry carries its own signature, in addition to checkpoints.
    Entry,
}

impl SigningMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningMode::Checkpoint => "checkpoint",
            SigningMode::Entry => "entry",
        }
    }
}

/// Labels identifying the instance that sealed an entry (OPA's `labels`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub id: String,
    pub version: String,
}

/// The record of entry 0. Every field is required and no other is allowed (log-format §4.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRecord {
    pub docket_log: String,
    pub origin: String,
    /// The log's first signing key, as a note verifier key.
    pub key: String,
    pub signing: SigningMode,
    pub labels: Labels,
}

/// The record of a key-rotation entry, signed by the outgoing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotationRecord {
    /// The incoming key, as a note verifier key.
    pub new_key: String,
}

/// The policy version a decision was made under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `sha256:<hex>` over the exact loaded modules and data (§5 of the format).
    pub digest: String,
    /// An optional operator-supplied label, e.g. a git revision.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revision: Option<String>,
}

/// A policy decision ready to be sealed. `input` and `result` are JSON texts; `result` is
/// `None` when the policy's answer was undefined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The data path queried, slash-separated, as OPA logs it (e.g. `rbac/allow`).
    pub path: String,
    pub input: Option<String>,
    pub result: Option<String>,
    pub policy_version: PolicyVersion,
    /// What the logging rules (`data.system.log`) decided for it: none by default.
    pub log: LogRules,
}

#[derive(Serialize)]
struct DecisionRecordOut<'a> {
    decision_id: &'a str,
    timestamp: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    erased: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    masked: &'a [String],
    #[serde(skip_serializing_if = "Commitments::is_empty")]
    commitments: Commitments<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retain_until: Option<String>,
    labels: &'a Labels,
    policy_version: &'a PolicyVersion,
}

/// (path, commitment) pairs written as one JSON object, in the order the rules applied.
struct Commitments<'a>(&'a [(String, String)]);

impl Commitments<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Commitments<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (path, commitment) in self.0 {
            map.serialize_entry(path, commitment)?;
        }
        map.end()
    }
}

/// Why a record could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

fn raw_json<'a>(what: &str, text: &'a str) -> Result<&'a RawValue, RecordError> {
    crate::json::check(text)
        .map_err(|e| RecordError(format!("decision {what} is not valid JSON: {e}")))?;
    serde_json::from_str::<&RawValue>(text)
        .map_err(|e| RecordError(format!("decision {what} is not valid JSON: {e}")))
}

/// Writes a decision record. The input and result texts are validated and re-emitted without
/// insignificant whitespace, so the record is compact however the caller formatted them. The
/// decision's mask rules are applied (with salts from `salt`, returned for the caller to keep
/// apart) and its retention becomes `retain_until`.
pub fn decision_record(
    decision: &Decision,
    decision_id: &str,
    timestamp_ns: u64,
    labels: &Labels,
    salt: &mut dyn FnMut() -> [u8; 32],
) -> Result<(Vec<u8>, Vec<MaskSalt>), RecordError> {
    let compact =
        |what: &str, text: &Option<String>| -> Result<Option<Box<RawValue>>, RecordError> {
            text.as_deref()
                .map(|t| {
                    raw_json(what, t)?;
                    Ok(RawValue::from_string(minify_json(t))
                        .expect("whitespace removal keeps JSON valid"))
                })
                .transpose()
        };
    let mut input = compact("input", &decision.input)?;
    let mut result = compact("result", &decision.result)?;
    let mut masked = masking::Masked::default();
    if !decision.log.mask.is_empty() {
        masked = masking::apply(
            input.as_deref().map(RawValue::get),
            result.as_deref().map(RawValue::get),
            &decision.log.mask,
            salt,
        )
        .map_err(|e| RecordError(e.0))?;
        let raw = |text: &Option<String>| {
            text.clone()
                .map(|t| RawValue::from_string(t).expect("masking keeps JSON valid"))
        };
        input = raw(&masked.input);
        result = raw(&masked.result);
    }
    let timestamp = rfc3339(timestamp_ns);
    let record = DecisionRecordOut {
        decision_id,
        timestamp: &timestamp,
        path: &decision.path,
        input: input.as_deref(),
        result: result.as_deref(),
        erased: &masked.erased,
        masked: &masked.masked,
        commitments: Commitments(&masked.commitments),
        retain_until: retain_until(timestamp_ns, decision.log.retention_ns),
        labels,
        policy_version: &decision.policy_version,
    };
    Ok((
        serde_json::to_vec(&record).expect("records serialize"),
        masked.salts,
    ))
}

/// The `retain_until` of a record sealed (or sent) at `timestamp_ns` under a retention of
/// `retention_ns` (log-format §4.6): the earliest time its payload may be pruned. `None` keeps
/// it for ever.
pub fn retain_until(timestamp_ns: u64, retention_ns: Option<u64>) -> Option<String> {
    retention_ns.map(|r| rfc3339(timestamp_ns.saturating_add(r)))
}

/// Removes insignificant whitespace from valid JSON text, keeping everything else (key order,
/// number spelling, string escapes) exactly as written. Works on bytes: JSON whitespace and the
/// quote and backslash are ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII.
pub fn minify_json(text: &str) -> String {
    let bytes = text.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        return text.to_string();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were removed")
}

/// A UUIDv7 decision id: the entry's millisecond timestamp, then 74 bits of
/// SHA-256("docket/decision-id/v1\0" ‖ chain id ‖ seq). Unique within a log (seq differs) and
/// across logs (the chain id, the genesis hash, differs), time-ordered by millisecond, and
/// deterministic, so the same log state always produces the same bytes.
pub fn decision_id(chain_id: &Hash, seq: u64, timestamp_ns: u64) -> String {
    let digest = sha256(&[b"docket/decision-id/v1\0", &chain_id.0, &seq.to_be_bytes()]);
    let millis = (timestamp_ns / 1_000_000) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest.0[..10]);
    bytes[6] = 0x70 | (bytes[6] & 0x0F); // version 7
    bytes[8] = 0x80 | (bytes[8] & 0x3F); // RFC 9562 variant
    uuid_text(&bytes)
}

/// A random UUIDv4 (RFC 9562 §5.4) from 16 random bytes: the version and variant bits are set.
pub fn uuid_v4(random: [u8; 16]) -> String {
    let mut bytes = random;
    bytes[6] = 0x40 | (bytes[6] & 0x0F); // version 4
    bytes[8] = 0x80 | (bytes[8] & 0x3F); // RFC 9562 variant
    uuid_text(&bytes)
}

/// A UUID's text form: lowercase hex in groups of 8-4-4-4-12 digits.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The decision id a decision entry is found by: its record's, or, once the entry is pruned
/// and its record gone, the id §4.2 derives from the chain id, sequence number and timestamp,
/// which is what the record held when docket sealed it. `None` for entries of other kinds, and
/// for a record that holds no id.
pub fn entry_decision_id(entry: &crate::Entry, chain_id: &Hash) -> Option<String> {
    if entry.kind != crate::EntryKind::Decision {
        return None;
    }
    if entry.is_pruned() {
        return Some(decision_id(chain_id, entry.seq, entry.timestamp_ns));
    }
    record_decision_id(&entry.record)
}

/// The `decision_id` a record (a decision's, or an ingested OPA event) holds, if any.
pub fn record_decision_id(record: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WithId {
        decision_id: Option<String>,
    }
    serde_json::from_slice::<WithId>(record)
        .ok()
        .and_then(|r| r.decision_id)
}

/// RFC 3339 UTC with nine fractional digits, e.g. `2026-11-23T19:58:00.123456789Z`.
pub fn rfc3339(timestamp_ns: u64) -> String {
    format!(
        "{}.{:09}Z",
        date_time(timestamp_ns / 1_000_000_000),
        timestamp_ns % 1_000_000_000
    )
}

/// A time in whole POSIX seconds (a witness cosignature's) in RFC 3339 UTC without a fraction:
/// `2026-11-28T00:03:24Z`.
pub fn rfc3339_seconds(secs: u64) -> String {
    format!("{}Z", date_time(secs))
}

/// `YYYY-MM-DDTHH:MM:SS` of POSIX seconds, UTC.
fn date_time(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_seconds_are_written_without_a_fraction() {
        assert_eq!(rfc3339_seconds(1_795_823_348), "2026-11-27T23:49:08Z");
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_795_823_348_000_000_000),
            "2026-11-27T23:49:08.000000000Z"
        );
    }

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            rfc3339(1_795_464_000_123_456_789),
            "2026-11-23T20:00:00.123456789Z"
        );
    }

    #[test]
    fn random_uuids_carry_version_4_and_the_rfc_9562_variant() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn decision_ids_are_uuid_v7_and_time_ordered() {
        let chain = Hash([7; 32]);
        let a = decision_id(&chain, 1, 1_795_464_000_000_000_000);
        let b = decision_id(&chain, 2, 1_795_464_000_001_000_000);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(a < b);
        assert_ne!(decision_id(&chain, 1, 0), decision_id(&chain, 2, 0));
    }

    #[test]
    fn a_decision_is_found_by_its_id_before_and_after_pruning() {
        use crate::sealer::{GenesisParams, SealedDecision, Sealer};
        let key = crate::SecretKey::from_seed("k", &[3; 32]).unwrap();
        let params = GenesisParams {
            origin: "docket.test/ids".into(),
            instance_id: "i".into(),
            signing: SigningMode::Checkpoint,
        };
        let (mut sealer, genesis) =
            Sealer::genesis(key, params, 1_795_464_000_000_000_000).unwrap();
        let decision = Decision {
            path: "rbac/allow".into(),
            input: Some("{}".into()),
            result: Some("true".into()),
            policy_version: PolicyVersion {
                digest: "sha256:00".into(),
                revision: None,
            },
            log: LogRules::default(),
        };
        let no_salt = &mut || unreachable!("nothing is masked");
        for now in [1_795_464_000_123_456_789, 1_795_464_000_123_456_000] {
            let SealedDecision::Sealed {
                entry, decision_id, ..
            } = sealer.seal_decision(&decision, now, no_salt).unwrap()
            else {
                panic!("not dropped");
            };
            assert_eq!(
                entry_decision_id(&entry, &genesis.hash).as_deref(),
                Some(decision_id.as_str())
            );
            let pruned = entry.pruned();
            assert!(pruned.record.is_empty());
            assert_eq!(
                entry_decision_id(&pruned, &genesis.hash).as_deref(),
                Some(decision_id.as_str())
            );
        }
        assert_eq!(entry_decision_id(&genesis, &genesis.hash), None);
    }

    #[test]
    fn decision_records_are_compact_and_omit_undefined_results() {
        let labels = Labels {
            id: "i".into(),
            version: "0.1.0".into(),
        };
        let decision = Decision {
            path: "rbac/allow".into(),
            input: Some("{ \"user\" : \"alice\" }".into()),
            result: None,
            policy_version: PolicyVersion {
                digest: "sha256:00".into(),
                revision: None,
            },
            log: LogRules::default(),
        };
        let no_salt = &mut || unreachable!("nothing is masked");
        let (record, salts) = decision_record(&decision, "id", 0, &labels, no_salt).unwrap();
        assert!(salts.is_empty());
        assert_eq!(
            String::from_utf8(record).unwrap(),
            r#"{"decision_id":"id","timestamp":"1970-01-01T00:00:00.000000000Z","path":"rbac/allow","input":{"user":"alice"},"labels":{"id":"i","version":"0.1.0"},"policy_version":{"digest":"sha256:00"}}"#
        );
        let bad = Decision {
            input: Some("{".into()),
            ..decision
        };
        assert!(
            decision_record(&bad, "id", 0, &labels, no_salt)
                .unwrap_err()
                .0
                .contains("input")
        );
    }

    #[test]
    fn minify_keeps_strings_escapes_and_unicode() {
        assert_eq!(
            minify_json("{ \"a b\" : [1, \"\\\" x\" ], \"é\":\"\t\" }"),
            "{\"a b\":[1,\"\\\" x\"],\"é\":\"\t\"}"
        );
        assert_eq!(minify_json("[1.50,1e3]"), "[1.50,1e3]");
    }
}
