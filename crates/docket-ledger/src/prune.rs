//! Pruning under retention: which decision payloads may go, the record of the signed prune
//! entry that authorizes it, and the pruned entries that stay in their place, so the chain, the
//! Merkle tree and every checkpoint still verify. See `docs/log-format.md` §3.5 and §4.8.
//!
//! Only decision entries are ever pruned, and only once the retention their own record states
//! (`retain_until`, set by the logging rules of the policy version that sealed them) has passed.
//! A decision sealed with no retention is kept for ever: docket has no authority to remove it.

use crate::entry::{Entry, EntryKind};
use crate::record::rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The one thing a prune entry may authorize removing, named in its record.
pub const PRUNE_SCOPE: &str = "decision-payloads";

/// The record of a prune entry (kind 6), in the order written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecord {
    /// What is removed: always [`PRUNE_SCOPE`].
    pub prune: String,
    /// The range of entries examined, inclusive: every decision in it had expired.
    pub first: u64,
    pub last: u64,
    /// How many decision payloads in the range this prune removes.
    pub entries: u64,
    /// Exactly which: runs `[first, last]` (inclusive) of decision entries, in order. A
    /// verifier accepts a pruned entry only inside one of these, so a pruned entry cannot be
    /// passed off as a decision that was (its kind is no longer bound by its hash).
    pub ranges: Vec<(u64, u64)>,
    /// The digests of the policy versions whose logging rules set those entries' retention, in
    /// byte order.
    pub policy_versions: Vec<String>,
    /// The latest `retain_until` among them: never later than the prune entry's timestamp.
    pub latest_retain_until: String,
}

/// What a prune would do: its record, and the pruned form of every entry it removes a payload
/// from (in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunePlan {
    pub record: PruneRecord,
    pub pruned: Vec<Entry>,
}

/// Why a range may not be pruned. Nothing is removed when any entry of the range refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PruneRefusal {
    /// A decision whose retention has not passed.
    UnderRetention {
        seq: u64,
        retain_until: String,
        now: String,
    },
    /// A decision sealed without any retention: it is kept for ever.
    NoRetention { seq: u64 },
    /// The entries given are not one run of consecutive entries.
    NotContiguous { expected: u64, found: u64 },
    /// A decision record that does not say what pruning needs to know.
    BadRecord { seq: u64, why: String },
    /// Nothing in the range has a payload left to prune.
    Nothing,
}

impl fmt::Display for PruneRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PruneRefusal::UnderRetention {
                seq,
                retain_until,
                now,
            } => write!(
                f,
                "entry {seq} is under retention until {retain_until} (now {now}); it cannot be \
                 pruned before then"
            ),
            PruneRefusal::NoRetention { seq } => write!(
                f,
                "entry {seq} was sealed with no retention rule (data.system.log.retention), so it \
                 is kept for ever and cannot be pruned"
            ),
            PruneRefusal::NotContiguous { expected, found } => write!(
                f,
                "the entries to prune must be consecutive: entry {found} where {expected} was \
                 expected"
            ),
            PruneRefusal::BadRecord { seq, why } => {
                write!(f, "entry {seq}: cannot read its retention: {why}")
            }
            PruneRefusal::Nothing => f.write_str("nothing in the range is left to prune"),
        }
    }
}

impl std::error::Error for PruneRefusal {}

/// What pruning reads from a decision record or an ingested event.
#[derive(Deserialize)]
struct Retention {
    #[serde(default)]
    retain_until: Option<String>,
    policy_version: Option<PolicyDigest>,
}

#[derive(Deserialize)]
struct PolicyDigest {
    digest: String,
}

/// Whether `text` is a timestamp in the exact form docket writes (RFC 3339 UTC, nine fraction
/// digits: `2026-11-24T10:00:00.000000000Z`). Two such texts compare in time order as strings.
pub fn is_fixed_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 30
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            29 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Plans pruning `entries` (a run of consecutive entries of one log, e.g. a store segment's) at
/// time `now_ns`: every decision payload in the run goes, provided every decision in it has
/// expired, and with them the ingested events that carry a `retain_until` (a sender's retention,
/// e.g. the Envoy filter's) and are expired too. An ingested event without one is kept whole and
/// holds nothing back, as are other kinds of entry; entries already pruned are skipped.
pub fn plan(entries: &[Entry], now_ns: u64) -> Result<PrunePlan, PruneRefusal> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Err(PruneRefusal::Nothing);
    };
    let now = rfc3339(now_ns);
    let mut pruned: Vec<Entry> = Vec::new();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut policy_versions = BTreeSet::new();
    let mut latest_retain_until = String::new();
    for (offset, entry) in entries.iter().enumerate() {
        let expected = first.seq + offset as u64;
        if entry.seq != expected {
            return Err(PruneRefusal::NotContiguous {
                expected,
                found: entry.seq,
            });
        }
        if !entry.kind.is_prunable() || entry.is_pruned() {
            continue;
        }
        let retention: Retention =
            serde_json::from_slice(&entry.record).map_err(|e| PruneRefusal::BadRecord {
                seq: entry.seq,
                why: e.to_string(),
            })?;
        let retain_until = match (retention.retain_until, entry.kind) {
            (Some(retain_until), _) => retain_until,
            (None, EntryKind::Ingested) => continue,
            (None, _) => return Err(PruneRefusal::NoRetention { seq: entry.seq }),
        };
        if !is_fixed_rfc3339(&retain_until) {
            return Err(PruneRefusal::BadRecord {
                seq: entry.seq,
                why: format!("retain_until {retain_until:?} is not an RFC 3339 UTC timestamp"),
            });
        }
        if retain_until > now {
            return Err(PruneRefusal::UnderRetention {
                seq: entry.seq,
                retain_until,
                now,
            });
        }
        // A prune record names the policy versions whose retention it applied (at least one).
        let Some(version) = retention.policy_version else {
            return Err(PruneRefusal::BadRecord {
                seq: entry.seq,
                why: "it has a retain_until but no policy_version".into(),
            });
        };
        policy_versions.insert(version.digest);
        latest_retain_until = latest_retain_until.max(retain_until);
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == entry.seq => *last = entry.seq,
            _ => ranges.push((entry.seq, entry.seq)),
        }
        pruned.push(entry.pruned());
    }
    if pruned.is_empty() {
        return Err(PruneRefusal::Nothing);
    }
    Ok(PrunePlan {
        record: PruneRecord {
            prune: PRUNE_SCOPE.to_string(),
            first: first.seq,
            last: last.seq,
            entries: pruned.len() as u64,
            ranges,
            policy_versions: policy_versions.into_iter().collect(),
            latest_retain_until,
        },
        pruned,
    })
}

/// Checks a prune record as a verifier must (§8): the scope, a range of earlier entries, and a
/// retention that had passed when the prune entry was sealed.
pub fn check_prune_record(
    record: &[u8],
    seq: u64,
    timestamp_ns: u64,
) -> Result<PruneRecord, String> {
    let record: PruneRecord =
        serde_json::from_slice(record).map_err(|e| format!("prune record: {e}"))?;
    if record.prune != PRUNE_SCOPE {
        return Err(format!(
            "prune record: scope {:?}; only {PRUNE_SCOPE:?} exists",
            record.prune
        ));
    }
    if record.first > record.last || record.last >= seq {
        return Err(format!(
            "prune record: range {}..={} is not a range of entries before this one",
            record.first, record.last
        ));
    }
    let mut next = record.first;
    let mut total = 0u64;
    for &(a, b) in &record.ranges {
        if a < next || a > b || b > record.last {
            return Err(format!(
                "prune record: ranges must be ordered, disjoint runs within {}..={}; [{a}, {b}] \
                 is not",
                record.first, record.last
            ));
        }
        next = b + 1;
        total += b - a + 1;
    }
    if total != record.entries {
        return Err(format!(
            "prune record: its ranges hold {total} entries but it says {}",
            record.entries
        ));
    }
    if record.entries == 0 || record.policy_versions.is_empty() {
        return Err(
            "prune record: it must prune at least one entry and name the policy versions that \
             set their retention"
                .into(),
        );
    }
    let digest = |d: &str| {
        d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    };
    if !record.policy_versions.iter().all(|d| digest(d))
        || !record.policy_versions.windows(2).all(|w| w[0] < w[1])
    {
        return Err(format!(
            "prune record: policy_versions {:?} must be distinct sha256:<64 lower-case hex> \
             digests in byte order",
            record.policy_versions
        ));
    }
    if !is_fixed_rfc3339(&record.latest_retain_until) {
        return Err(format!(
            "prune record: latest_retain_until {:?} is not an RFC 3339 UTC timestamp",
            record.latest_retain_until
        ));
    }
    let sealed_at = rfc3339(timestamp_ns);
    if record.latest_retain_until > sealed_at {
        return Err(format!(
            "prune record: entries under retention until {} were pruned at {sealed_at}",
            record.latest_retain_until
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::KeyId;

    const NS: u64 = 1_000_000_000;

    fn decision(seq: u64, retain_until: Option<u64>, digest: &str) -> Entry {
        let retain = retain_until.map_or(String::new(), |t| {
            format!(r#","retain_until":"{}""#, rfc3339(t))
        });
        let record = format!(
            r#"{{"decision_id":"d{seq}","path":"p","result":true{retain},"policy_version":{{"digest":"{digest}"}}}}"#
        );
        Entry {
            seq,
            prev: Hash::ZERO,
            timestamp_ns: seq,
            kind: EntryKind::Decision,
            key_id: KeyId(1),
            record: record.into_bytes(),
            leaf: crate::entry::LeafForm::Record,
            hash: Hash([seq as u8; 32]),
            signature: None,
            pruned: None,
        }
    }

    fn other(seq: u64, kind: EntryKind) -> Entry {
        Entry {
            kind,
            record: b"{}".to_vec(),
            ..decision(seq, None, "x")
        }
    }

    fn ingested(seq: u64, retain_until: Option<u64>) -> Entry {
        Entry {
            kind: EntryKind::Ingested,
            ..decision(seq, retain_until, "sha256:e")
        }
    }

    #[test]
    fn ingested_events_with_a_retention_are_pruned_and_others_kept_without_holding_back() {
        let entries = vec![
            decision(4, Some(10 * NS), "sha256:b"),
            // An OPA upload carries no retention: kept whole, and it blocks nothing.
            Entry {
                record: br#"{"decision_id":"opa","path":"p"}"#.to_vec(),
                ..ingested(5, None)
            },
            ingested(6, Some(12 * NS)),
        ];
        let plan = plan(&entries, 20 * NS).unwrap();
        assert_eq!(plan.record.ranges, vec![(4, 4), (6, 6)]);
        assert_eq!(plan.record.latest_retain_until, rfc3339(12 * NS));
        assert_eq!(
            plan.record.policy_versions,
            vec!["sha256:b".to_string(), "sha256:e".to_string()]
        );
        // An ingested event still under its retention holds the run back, as a decision does.
        let refused = super::plan(&entries, 11 * NS).unwrap_err();
        assert!(
            matches!(refused, PruneRefusal::UnderRetention { seq: 6, .. }),
            "{refused}"
        );
    }

    #[test]
    fn expired_decisions_are_pruned_and_other_kinds_kept() {
        let entries = vec![
            decision(4, Some(10 * NS), "sha256:b"),
            other(5, EntryKind::PolicyChange),
            decision(6, Some(20 * NS), "sha256:a"),
            decision(7, Some(15 * NS), "sha256:b").pruned(),
            other(8, EntryKind::Tally),
        ];
        let plan = plan(&entries, 20 * NS).unwrap();
        assert_eq!(
            plan.record,
            PruneRecord {
                prune: PRUNE_SCOPE.into(),
                first: 4,
                last: 8,
                entries: 2,
                ranges: vec![(4, 4), (6, 6)],
                policy_versions: vec!["sha256:a".into(), "sha256:b".into()],
                latest_retain_until: rfc3339(20 * NS),
            }
        );
        let seqs: Vec<u64> = plan.pruned.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 6]);
        assert!(
            plan.pruned
                .iter()
                .all(|e| e.is_pruned() && e.record.is_empty())
        );
        assert_eq!(plan.pruned[0].hash, entries[0].hash);
        assert_eq!(
            plan.pruned[0].record_len() as usize,
            entries[0].record.len()
        );
    }

    #[test]
    fn one_entry_under_retention_refuses_the_whole_range() {
        let entries = vec![
            decision(1, Some(10 * NS), "d"),
            decision(2, Some(30 * NS), "d"),
        ];
        let refusal = plan(&entries, 20 * NS).unwrap_err();
        assert!(matches!(
            refusal,
            PruneRefusal::UnderRetention { seq: 2, .. }
        ));
        assert!(
            refusal
                .to_string()
                .contains("1970-01-01T00:00:30.000000000Z")
        );
        let entries = vec![decision(1, Some(10 * NS), "d"), decision(2, None, "d")];
        assert_eq!(
            plan(&entries, 20 * NS).unwrap_err(),
            PruneRefusal::NoRetention { seq: 2 }
        );
        assert_eq!(
            plan(&[other(1, EntryKind::Tally)], 20 * NS).unwrap_err(),
            PruneRefusal::Nothing
        );
        let gap = vec![decision(1, Some(0), "d"), decision(3, Some(0), "d")];
        assert!(matches!(
            plan(&gap, 20 * NS).unwrap_err(),
            PruneRefusal::NotContiguous {
                expected: 2,
                found: 3
            }
        ));
    }

    #[test]
    fn a_prune_record_is_checked_against_its_own_entry() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let entries = vec![decision(1, Some(10 * NS), &digest)];
        let record = serde_json::to_vec(&plan(&entries, 10 * NS).unwrap().record).unwrap();
        assert!(check_prune_record(&record, 2, 10 * NS).is_ok());
        // Policy versions must be digests, in byte order, and there must be one.
        let text = String::from_utf8(record.clone()).unwrap();
        for bad in [r#"["d"]"#, "[]", &format!(r#"["{digest}","{digest}"]"#)] {
            let changed = text.replace(&format!(r#"["{digest}"]"#), bad);
            let why = check_prune_record(changed.as_bytes(), 2, 10 * NS).unwrap_err();
            assert!(why.contains("policy"), "{bad}: {why}");
        }
        assert!(
            check_prune_record(&record, 2, 10 * NS - 1)
                .unwrap_err()
                .contains("under retention")
        );
        assert!(
            check_prune_record(&record, 1, 10 * NS)
                .unwrap_err()
                .contains("range")
        );
        assert!(check_prune_record(b"{\"prune\":\"all\"}", 2, 10 * NS).is_err());
        let overlapping = String::from_utf8(record)
            .unwrap()
            .replace(r#""ranges":[[1,1]]"#, r#""ranges":[[1,1],[1,1]]"#);
        assert!(
            check_prune_record(overlapping.as_bytes(), 2, 10 * NS)
                .unwrap_err()
                .contains("disjoint")
        );
    }

    #[test]
    fn fixed_rfc3339_is_recognized() {
        assert!(is_fixed_rfc3339(&rfc3339(1_764_000_000 * NS + 5)));
        assert!(!is_fixed_rfc3339("2026-11-24T10:00:00Z"));
        assert!(!is_fixed_rfc3339("2026-11-24 10:00:00.000000000Z"));
    }
}
