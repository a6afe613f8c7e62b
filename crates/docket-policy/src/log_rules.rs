//! The logging rules: Rego in the `system.log` package that decides, per decision, what the
//! audit log keeps (docs/policy.md, "Logging rules").
//!
//! - `data.system.log.drop`: `true` drops the decision from the log; the sealer counts it in a
//!   signed tally instead.
//! - `data.system.log.mask`: a set of JSON Pointers under `/input` or `/result` to erase, or
//!   `{"op": "remove" | "upsert", "path": .., "value": ..}` objects, as OPA defines them.
//! - `data.system.log.retention`: how long the entry must be kept, as a duration (`"2160h"`,
//!   `"90d"`); undefined keeps it indefinitely.
//!
//! Each rule sees the decision as OPA's masking policies see the decision-log event:
//! `input.path`, `input.input`, `input.result` (absent when undefined). The rules are ordinary
//! modules: their source is in the policy version digest, and loading or changing them is a
//! policy change like any other.

use crate::{PolicyError, builtins};
use docket_ledger::{LogRules, MaskRule};
use regorus::Value;

/// The package of the logging rules.
pub const PACKAGE: &str = "data.system.log";

/// The event the rules see, built from the decision's already-parsed values.
pub(crate) fn event(path: &str, input: &Value, result: &Value) -> Value {
    let mut event = Value::new_object();
    let fields = event.as_object_mut().expect("a new object");
    fields.insert(Value::from("path"), Value::from(path));
    if *input != Value::Undefined {
        fields.insert(Value::from("input"), input.clone());
    }
    if *result != Value::Undefined {
        fields.insert(Value::from("result"), result.clone());
    }
    event
}

/// Reads the three rules' values (undefined when a rule is absent or does not apply).
pub(crate) fn interpret(
    drop: &Value,
    mask: &Value,
    retention: &Value,
) -> Result<LogRules, PolicyError> {
    Ok(LogRules {
        drop: *drop == Value::Bool(true),
        mask: mask_rules(mask)?,
        retention_ns: retention_ns(retention)?,
    })
}

fn error(rule: &str, why: String) -> PolicyError {
    PolicyError::Evaluation(format!(
        "logging rule {PACKAGE}.{rule}: {why}; the decision was not logged, so it is not answered"
    ))
}

fn mask_rules(mask: &Value) -> Result<Vec<MaskRule>, PolicyError> {
    let items: Vec<&Value> = match mask {
        Value::Undefined => return Ok(Vec::new()),
        Value::Set(items) => items.iter().collect(),
        Value::Array(items) => items.iter().collect(),
        other => {
            return Err(error(
                "mask",
                format!(
                    "must be a set of JSON Pointers or {{op, path, value}} objects, got {other}"
                ),
            ));
        }
    };
    items.into_iter().map(mask_rule).collect()
}

fn mask_rule(item: &Value) -> Result<MaskRule, PolicyError> {
    let bad = |why: &str| error("mask", format!("{why}: {item}"));
    match item {
        Value::String(path) => Ok(MaskRule::Remove {
            path: path.to_string(),
        }),
        Value::Object(fields) => {
            let field = |name: &str| fields.get(&Value::from(name));
            let Some(Value::String(path)) = field("path") else {
                return Err(bad("a mask object needs a string `path`"));
            };
            let path = path.to_string();
            match field("op") {
                Some(Value::String(op)) if &**op == "remove" => Ok(MaskRule::Remove { path }),
                Some(Value::String(op)) if &**op == "upsert" => {
                    let value = field("value").ok_or_else(|| bad("an upsert needs a `value`"))?;
                    let value = value
                        .to_json_str()
                        .map_err(|e| bad(&format!("the upsert value is not JSON ({e})")))?;
                    Ok(MaskRule::Upsert { path, value })
                }
                _ => Err(bad("`op` must be \"remove\" or \"upsert\"")),
            }
        }
        _ => Err(bad(
            "each mask must be a JSON Pointer string or an {op, path, value} object",
        )),
    }
}

fn retention_ns(retention: &Value) -> Result<Option<u64>, PolicyError> {
    match retention {
        Value::Undefined => Ok(None),
        Value::String(_) => {
            let ns = builtins::duration_ns(retention).map_err(|e| {
                error(
                    "retention",
                    format!("{e} (write e.g. \"2160h\" or \"90d\")"),
                )
            })?;
            u64::try_from(ns)
                .map(Some)
                .map_err(|_| error("retention", format!("{retention} is negative")))
        }
        other => Err(error(
            "retention",
            format!("must be a duration string such as \"90d\", got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::{PolicyEngine, PolicyError};
    use docket_ledger::{LogRules, MaskRule};

    const RULES: &str = r#"package system.log

drop if input.path == "health/live"

mask contains "/input/user/email"

mask contains {"op": "upsert", "path": "/input/user/name", "value": "**"} if input.input.user.name

retention := "90d" if input.result == false
"#;

    #[test]
    fn rules_in_system_log_decide_drop_mask_and_retention() {
        let mut engine = PolicyEngine::new();
        engine
            .add_policy(
                "app.rego",
                "package app\n\nallow := input.user.name == \"alice\"\n",
            )
            .unwrap();
        assert!(engine.evaluate("app/allow", Some("{}")).unwrap().log == Default::default());
        engine.add_policy("log.rego", RULES).unwrap();
        let d = engine
            .evaluate(
                "app/allow",
                Some(r#"{"user":{"name":"bob","email":"b@x"}}"#),
            )
            .unwrap();
        assert_eq!(d.result.as_deref(), Some("false"));
        assert!(!d.log.drop);
        assert_eq!(
            d.log.mask,
            [
                MaskRule::Remove {
                    path: "/input/user/email".into()
                },
                MaskRule::Upsert {
                    path: "/input/user/name".into(),
                    value: "\"**\"".into()
                },
            ]
        );
        assert_eq!(d.log.retention_ns, Some(90 * 86_400 * 1_000_000_000));
        let health = engine.evaluate("health/live", None).unwrap();
        assert!(health.log.drop);
        assert_eq!(health.log.retention_ns, None);
        // The rules are part of the policy version; removing them turns them off.
        let with_rules = engine.version().digest.clone();
        engine.remove_policy("log.rego").unwrap();
        assert_ne!(engine.version().digest, with_rules);
        assert!(!engine.evaluate("health/live", None).unwrap().log.drop);
    }

    #[test]
    fn a_failed_evaluation_still_gets_its_masks_or_loses_its_whole_input() {
        let mut engine = PolicyEngine::new();
        // Two values for one complete rule: an evaluation error for bob.
        let conflict = "package app\n\nallow := true if input.user.name == \"bob\"\n\nallow := false if input.user.email\n";
        engine.add_policy("app.rego", conflict).unwrap();
        let input = r#"{"user":{"name":"bob","email":"b@x"}}"#;
        assert!(matches!(
            engine.evaluate("app/allow", Some(input)),
            Err(PolicyError::Evaluation(_))
        ));
        // No logging rules: nothing to apply.
        let failed = engine.failed_decision("/app/allow", Some(input));
        assert_eq!(failed.path, "app/allow");
        assert_eq!(failed.result, None);
        assert_eq!(failed.input.as_deref(), Some(input));
        assert_eq!(failed.log, LogRules::default());
        assert_eq!(failed.policy_version, *engine.version());

        // The logging rules decide as for an undefined answer.
        engine.add_policy("log.rego", RULES).unwrap();
        let failed = engine.failed_decision("app/allow", Some(input));
        assert_eq!(
            failed.log.mask,
            [
                MaskRule::Remove {
                    path: "/input/user/email".into()
                },
                MaskRule::Upsert {
                    path: "/input/user/name".into(),
                    value: "\"**\"".into()
                },
            ]
        );
        assert_eq!(
            failed.log.retention_ns, None,
            "the result is undefined, not false"
        );

        // Logging rules that cannot decide, or an input that is not JSON: the input goes.
        let remove_input = [MaskRule::Remove {
            path: "/input".into(),
        }];
        assert_eq!(
            engine.failed_decision("app/allow", Some("{")).log.mask,
            remove_input
        );
        engine
            .add_policy("broken.rego", "package system.log\n\nretention := 5\n")
            .unwrap();
        let failed = engine.failed_decision("app/allow", Some(input));
        assert_eq!(failed.log.mask, remove_input);
        assert!(!failed.log.drop);
    }

    #[test]
    fn a_malformed_rule_is_an_error_naming_it() {
        for (rule, expected) in [
            (
                "mask := 5",
                "logging rule data.system.log.mask: must be a set",
            ),
            ("mask contains 5", "each mask must be a JSON Pointer"),
            (
                r#"mask contains {"op": "erase", "path": "/input"}"#,
                "`op` must be",
            ),
            (
                r#"retention := "forever""#,
                "logging rule data.system.log.retention",
            ),
            ("retention := 5", "must be a duration string"),
        ] {
            let mut engine = PolicyEngine::new();
            engine
                .add_policy("log.rego", &format!("package system.log\n\n{rule}\n"))
                .unwrap();
            let Err(PolicyError::Evaluation(message)) = engine.evaluate("app/allow", None) else {
                panic!("{rule}: not an evaluation error");
            };
            assert!(message.contains(expected), "{rule}: {message}");
        }
    }
}
