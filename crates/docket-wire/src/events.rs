//! Decision events: the JSON objects of an OPA decision-log upload (`POST /logs`, docs/api.md),
//! as `docket serve` reads them ([`parse_events`]) and as docket's Envoy filter writes them
//! ([`decision_event`], [`dropped_event`], [`undelivered_event`]). Both directions of the shape
//! live here, once.

use crate::WireError;
use docket_ledger::record::{Decision, PolicyVersion, retain_until, rfc3339};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The fields of an uploaded event docket reads; the rest is sealed as sent.
#[derive(Deserialize)]
struct Event<'a> {
    decision_id: Option<serde_json::Value>,
    #[serde(default)]
    dropped: Option<serde_json::Value>,
    path: Option<serde_json::Value>,
    policy_version: Option<serde_json::Value>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    retain_until: Option<serde_json::Value>,
}

/// One event of an OPA decision-log upload, ready to seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestEvent {
    /// The event as sent, minified (`docket_ledger::record::minify_json`).
    pub json: String,
    pub decision_id: Option<String>,
    /// Set for a decision the sender's logging rules dropped ([`dropped_event`]): it is counted
    /// in the log's next tally entry, not sealed as an entry of its own.
    pub dropped: Option<DroppedDecision>,
}

/// What a tally counts of a dropped decision: its data path and the policy version that
/// dropped it (docs/log-format.md §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedDecision {
    pub path: String,
    pub policy_version: PolicyVersion,
}

/// Checks a whole upload before anything is sealed: a JSON array of objects, each with an
/// optional non-empty string `decision_id` and an optional `retain_until` in docket's timestamp
/// form; an event marked `"dropped": true` has a `path`, a `policy_version` and no `input` or
/// `result`.
pub fn parse_events(json: &[u8]) -> Result<Vec<IngestEvent>, WireError> {
    docket_ledger::json::check_bytes(json).map_err(|e| {
        WireError::BadRequest(format!(
            "the body is not a JSON array of decision events docket accepts: {e}; nothing was logged"
        ))
    })?;
    let items: Vec<&RawValue> = serde_json::from_slice(json).map_err(|e| {
        WireError::BadRequest(format!(
            "the body is not a JSON array of decision events ({e}); nothing was logged"
        ))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let text = raw.get();
            let fields: Event = serde_json::from_str(text)
                .ok()
                .filter(|_| text.trim_start().starts_with('{'))
                .ok_or_else(|| {
                    WireError::BadRequest(format!(
                        "event {i} is not a JSON object; nothing was logged"
                    ))
                })?;
            // A retention names when the payload may be pruned (log-format §4.8); one that
            // cannot be read would hold back the pruning of every entry near it.
            match &fields.retain_until {
                None => {}
                Some(serde_json::Value::String(t))
                    if docket_ledger::prune::is_fixed_rfc3339(t)
                        && policy_digest(&fields).is_some() => {}
                Some(serde_json::Value::String(t)) if docket_ledger::prune::is_fixed_rfc3339(t) => {
                    return Err(WireError::BadRequest(format!(
                        "event {i} has a retain_until but no policy_version with a sha256: \
                         digest (a prune names the policy whose retention it applied); nothing \
                         was logged"
                    )));
                }
                Some(other) => {
                    return Err(WireError::BadRequest(format!(
                        "event {i} has a retain_until {other} that is not a UTC timestamp in the \
                         form 2026-11-24T10:00:00.000000000Z; nothing was logged"
                    )));
                }
            }
            let dropped = match &fields.dropped {
                None | Some(serde_json::Value::Bool(false)) => None,
                Some(serde_json::Value::Bool(true)) => Some(dropped_decision(i, &fields)?),
                Some(_) => {
                    return Err(WireError::BadRequest(format!(
                        "event {i} has a `dropped` that is not true or false; nothing was logged"
                    )));
                }
            };
            let decision_id = match fields.decision_id {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(id)) if !id.is_empty() => Some(id),
                Some(_) => {
                    return Err(WireError::BadRequest(format!(
                        "event {i} has a decision_id that is not a non-empty string; nothing was logged"
                    )));
                }
            };
            // Every event is held to what sealing it requires before any is sealed, so a chunk
            // is sealed whole or not at all.
            let json = docket_ledger::record::minify_json(text);
            docket_ledger::sealer::check_record(json.as_bytes()).map_err(|why| {
                let why = format!("event {i} cannot be sealed: {why}; nothing was logged");
                if json.len() > docket_ledger::entry::MAX_RECORD_LEN {
                    WireError::TooLarge(why)
                } else {
                    WireError::BadRequest(why)
                }
            })?;
            Ok(IngestEvent {
                json,
                decision_id,
                dropped,
            })
        })
        .collect()
}

/// An event's `policy_version`, if it has one with a `sha256:` digest.
fn policy_digest(fields: &Event) -> Option<PolicyVersion> {
    fields
        .policy_version
        .clone()
        .and_then(|v| serde_json::from_value::<PolicyVersion>(v).ok())
        .filter(|v| v.digest.starts_with("sha256:"))
}

/// The path and policy version of an event marked dropped, or why it cannot be counted.
fn dropped_decision(i: usize, fields: &Event) -> Result<DroppedDecision, WireError> {
    let refuse = |what: &str| {
        WireError::BadRequest(format!(
            "event {i} is marked dropped but {what}; nothing was logged"
        ))
    };
    if fields.input.is_some() || fields.result.is_some() {
        return Err(refuse(
            "carries an input or a result (a dropped decision is counted, never sealed)",
        ));
    }
    let path = match &fields.path {
        Some(serde_json::Value::String(p)) if !p.is_empty() => p.clone(),
        _ => return Err(refuse("has no `path` string")),
    };
    let policy_version = policy_digest(fields)
        .ok_or_else(|| refuse("has no `policy_version` with a `sha256:` digest"))?;
    Ok(DroppedDecision {
        path,
        policy_version,
    })
}

/// A decision event in OPA's decision-log shape, so docket seals it as an `ingested` entry
/// (log-format §4.5) exactly as it seals real OPA's. A retention from the logging rules becomes
/// the event's `retain_until`, as in docket's own decision records, so the entry's payload may
/// be pruned once it has passed (log-format §4.8).
///
/// The decision's logging-rule masks are applied here, before the event leaves its writer, as
/// OPA applies them before it uploads: a masked value never leaves. Each leaves a salted
/// commitment (log-format §4.6) in the event's `commitments`, beside OPA's `erased` and
/// `masked`; the salt comes from `salt`, and the writer keeps none, so such values cannot be
/// revealed later. An error means the event cannot be written without the values it must not
/// carry.
///
/// A decision whose evaluation failed carries the failure as OPA's events do:
/// `"error": {"code": "internal_error", "message": ..}` (the code the Data API answers with).
pub fn decision_event(
    id: &str,
    labels: &Map<String, Value>,
    decision: &Decision,
    error: Option<&str>,
    timestamp_ns: u64,
    source: Option<&str>,
    salt: &mut dyn FnMut() -> [u8; 32],
) -> Result<Value, String> {
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
    };
    let mut masked = docket_ledger::masking::Masked::default();
    let (input, result) = if decision.log.mask.is_empty() {
        (parse(&decision.input), parse(&decision.result))
    } else {
        masked = docket_ledger::masking::apply(
            decision.input.as_deref(),
            decision.result.as_deref(),
            &decision.log.mask,
            salt,
        )
        .map_err(|e| format!("masking the decision: {e}"))?;
        (parse(&masked.input), parse(&masked.result))
    };
    let mut event = json!({
        "decision_id": id,
        "labels": labels,
        "path": decision.path,
        "input": input,
        "timestamp": rfc3339(timestamp_ns),
        "policy_version": decision.policy_version,
    });
    if let Some(result) = result {
        event["result"] = result;
    }
    if let Some(message) = error {
        event["error"] = json!({"code": "internal_error", "message": message});
    }
    if !masked.erased.is_empty() {
        event["erased"] = json!(masked.erased);
    }
    if !masked.masked.is_empty() {
        event["masked"] = json!(masked.masked);
    }
    if !masked.commitments.is_empty() {
        let commitments: Map<String, Value> = masked
            .commitments
            .iter()
            .map(|(path, c)| (path.clone(), json!(c)))
            .collect();
        event["commitments"] = Value::Object(commitments);
    }
    if let Some(source) = source {
        event["requested_by"] = json!(source);
    }
    if let Some(until) = retain_until(timestamp_ns, decision.log.retention_ns) {
        event["retain_until"] = json!(until);
    }
    Ok(event)
}

/// A decision the logging rules dropped (`data.system.log.drop`): `"dropped": true` with its
/// path and policy version and nothing of its input or result. docket counts it in the next
/// tally entry (log-format §4.7) instead of sealing it, and answers once that tally is durable,
/// so dropping is visible in the log, never silent.
pub fn dropped_event(
    id: &str,
    labels: &Map<String, Value>,
    decision: &Decision,
    timestamp_ns: u64,
) -> Value {
    json!({
        "decision_id": id,
        "labels": labels,
        "path": decision.path,
        "timestamp": rfc3339(timestamp_ns),
        "policy_version": decision.policy_version,
        "dropped": true,
    })
}

/// The notice a writer has sealed after it stopped waiting for a decision's seal and refused
/// the request (`503`): the decision `decision_id` was **not delivered** (docs/envoy.md).
pub fn undelivered_event(
    notice_id: &str,
    labels: &Map<String, Value>,
    decision_id: &str,
    why: &str,
    timestamp_ns: u64,
) -> Value {
    json!({
        "decision_id": notice_id,
        "labels": labels,
        "timestamp": rfc3339(timestamp_ns),
        "undelivered": {
            "decision_id": decision_id,
            "answer": 503,
            "reason": why,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket_ledger::masking::LogRules;

    fn decision(path: &str) -> Decision {
        Decision {
            path: path.into(),
            input: Some(r#"{"path":"/healthz"}"#.into()),
            result: Some("true".into()),
            policy_version: PolicyVersion {
                digest: format!("sha256:{}", "ab".repeat(32)),
                revision: Some("r1".into()),
            },
            log: LogRules {
                drop: true,
                ..LogRules::default()
            },
        }
    }

    #[test]
    fn a_decision_event_carries_its_retention_as_retain_until() {
        let mut d = decision("envoy/authz/decision");
        d.log.drop = false;
        d.log.retention_ns = Some(3_600_000_000_000);
        let event = decision_event("id", &Map::new(), &d, None, 0, None, &mut || [0; 32]).unwrap();
        assert_eq!(event["retain_until"], "1970-01-01T01:00:00.000000000Z");
        d.log.retention_ns = None;
        let event = decision_event("id", &Map::new(), &d, None, 0, None, &mut || [0; 32]).unwrap();
        assert!(event.get("retain_until").is_none(), "{event}");
    }

    #[test]
    fn a_dropped_event_reads_back_as_its_path_and_policy_version_only() {
        let d = decision("envoy/health");
        let event = dropped_event("id-1", &Map::new(), &d, 1_000);
        let body = serde_json::to_vec(&[event]).unwrap();
        let parsed = parse_events(&body).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].decision_id.as_deref(), Some("id-1"));
        assert_eq!(
            parsed[0].dropped,
            Some(DroppedDecision {
                path: "envoy/health".into(),
                policy_version: d.policy_version.clone(),
            })
        );
        assert!(!parsed[0].json.contains("healthz"), "nothing of the input");
    }

    #[test]
    fn an_event_marked_dropped_that_carries_data_or_lacks_its_version_is_refused() {
        let version = format!(r#"{{"digest":"sha256:{}"}}"#, "ab".repeat(32));
        for (body, says) in [
            (
                format!(
                    r#"[{{"dropped":true,"path":"a","policy_version":{version},"input":{{}}}}]"#
                ),
                "carries an input",
            ),
            (
                format!(r#"[{{"dropped":true,"policy_version":{version}}}]"#),
                "no `path`",
            ),
            (
                r#"[{"dropped":true,"path":"a","policy_version":{"digest":"x"}}]"#.to_string(),
                "no `policy_version`",
            ),
            (r#"[{"dropped":"yes"}]"#.to_string(), "not true or false"),
        ] {
            let err = parse_events(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
            assert!(err.contains("nothing was logged"), "{err}");
        }
        // A retention must be one pruning can read.
        for bad in [r#""2026-11-24""#, "12", r#""2026-11-24T10:00:00Z""#] {
            let body = format!(r#"[{{"decision_id":"a","retain_until":{bad}}}]"#);
            let err = parse_events(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("retain_until"), "{body}: {err}");
        }
        let until = r#""retain_until":"2026-11-24T10:00:00.000000000Z""#;
        let err = parse_events(format!(r#"[{{"decision_id":"a",{until}}}]"#).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no policy_version"), "{err}");
        let kept = parse_events(
            format!(r#"[{{"decision_id":"a",{until},"policy_version":{version}}}]"#).as_bytes(),
        );
        assert!(kept.is_ok(), "{kept:?}");
        // Without the marker (or with it false) an event is an ordinary one.
        let plain = parse_events(br#"[{"dropped":false,"path":"a","input":{}}]"#).unwrap();
        assert_eq!(plain[0].dropped, None);
    }
}
