//! Rego evaluation for docket, over `regorus`.
//!
//! A [`PolicyEngine`] holds policy modules and data documents, knows its policy version (a digest
//! over exactly what was loaded, `docs/log-format.md` §5) and turns a path and an input into a
//! [`Decision`] ready to be sealed.
//!
//! Architecture invariant: this crate does no I/O. Policies, data and input arrive as text.
//!
//! regorus features are chosen in `Cargo.toml` and listed in `docs/policy.md`: every builtin
//! family real policies use (strings, regex, glob, time, json, encodings, net, semver, uuid,
//! units), without `http.send` (I/O), `crypto` (not in regorus by design) and `jsonschema`/`yaml`
//! (large, rarely used in authorization).

pub mod analysis;
pub mod builtins;
mod json_value;
pub mod log_rules;
mod vm;

pub use vm::{EvaluationPath, PathCounts};

use docket_ledger::hash::sha256;
use docket_ledger::record::PolicyVersion;
use docket_ledger::{Decision, LogRules, MaskRule};
use regorus::{Engine, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Domain tag of the policy version digest.
pub const POLICY_DIGEST_TAG: &[u8; 25] = b"docket/policy-version/v1\0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A module failed to parse or compile.
    Parse { id: String, message: String },
    /// A data document is not a JSON object, or conflicts with data already loaded.
    Data(String),
    /// The input is not valid JSON.
    Input(String),
    /// Evaluation failed (a conflict, a builtin error, a time limit).
    Evaluation(String),
    /// No policy with this id is loaded.
    NotFound(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Parse { id, message } => {
                write!(f, "policy {id:?} does not compile: {message}")
            }
            PolicyError::Data(m) => write!(f, "data rejected: {m}"),
            PolicyError::Input(m) => write!(f, "input is not valid JSON: {m}"),
            PolicyError::Evaluation(m) => write!(f, "evaluation failed: {m}"),
            PolicyError::NotFound(id) => write!(f, "no policy with id {id:?} is loaded"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Policies and data, ready to decide.
#[derive(Clone)]
pub struct PolicyEngine {
    engine: Engine,
    /// Module id → source, sorted by id (the digest's order).
    modules: BTreeMap<String, String>,
    /// Data documents, exactly as given, in load order.
    data: Vec<String>,
    revision: Option<String>,
    version: PolicyVersion,
    /// Ids of the modules in the logging rules' package (`system.log`).
    log_rule_modules: BTreeSet<String>,
    /// The bytecode VM, for the queries it answers as the interpreter does (`vm`).
    vm: vm::VmPath,
    /// Whether `print()` output is kept for [`PolicyEngine::take_prints`] (off by default:
    /// a server never reads it, and it must not accumulate).
    gather_prints: bool,
}

impl Default for PolicyEngine {
    fn default() -> Self {
        PolicyEngine::new()
    }
}

impl PolicyEngine {
    pub fn new() -> PolicyEngine {
        let mut engine = PolicyEngine {
            engine: new_regorus_engine(),
            modules: BTreeMap::new(),
            data: Vec::new(),
            revision: None,
            version: PolicyVersion {
                digest: String::new(),
                revision: None,
            },
            log_rule_modules: BTreeSet::new(),
            vm: vm::VmPath::new(),
            gather_prints: false,
        };
        engine.refresh_version();
        engine
    }

    /// Adds (or replaces) a Rego v1 module. Returns its package, e.g. `data.rbac`.
    pub fn add_policy(&mut self, id: &str, source: &str) -> Result<String, PolicyError> {
        check_nesting(source).map_err(|message| PolicyError::Parse {
            id: id.to_string(),
            message,
        })?;
        let prepared = analysis::prepare(id, source).map_err(|message| PolicyError::Parse {
            id: id.to_string(),
            message,
        })?;
        let package = if self.modules.contains_key(id) {
            // regorus cannot unload a module: rebuild without the old one, keep the old engine
            // if the new source is bad.
            let mut modules = self.modules.clone();
            modules.insert(id.to_string(), source.to_string());
            let (engine, packages) = build_engine(&modules, &self.data)?;
            self.engine = engine;
            self.engine.set_gather_prints(self.gather_prints);
            self.modules = modules;
            packages.get(id).cloned().unwrap_or_default()
        } else {
            let package = self
                .engine
                .add_policy(id.to_string(), prepared.interpreter.clone())
                .map_err(|e| PolicyError::Parse {
                    id: id.to_string(),
                    message: e.to_string(),
                })?;
            self.modules.insert(id.to_string(), source.to_string());
            package
        };
        self.vm.set_module(id, &prepared);
        if package == log_rules::PACKAGE {
            self.log_rule_modules.insert(id.to_string());
        } else {
            self.log_rule_modules.remove(id);
        }
        self.refresh_version();
        Ok(package)
    }

    pub fn remove_policy(&mut self, id: &str) -> Result<(), PolicyError> {
        if !self.modules.contains_key(id) {
            return Err(PolicyError::NotFound(id.to_string()));
        }
        let mut modules = self.modules.clone();
        modules.remove(id);
        let (engine, _) = build_engine(&modules, &self.data)?;
        self.engine = engine;
        self.engine.set_gather_prints(self.gather_prints);
        self.modules = modules;
        self.log_rule_modules.remove(id);
        self.vm.remove_module(id);
        self.refresh_version();
        Ok(())
    }

    /// Merges a JSON object into `data`.
    pub fn add_data(&mut self, json: &str) -> Result<(), PolicyError> {
        docket_ledger::json::check(json).map_err(|e| PolicyError::Data(e.to_string()))?;
        let value = Value::from_json_str(json)
            .map_err(|e| PolicyError::Data(format!("not valid JSON: {e}")))?;
        if value.as_object().is_err() {
            return Err(PolicyError::Data(
                "a data document must be a JSON object".into(),
            ));
        }
        self.engine
            .add_data(value.clone())
            .map_err(|e| PolicyError::Data(e.to_string()))?;
        self.vm.add_data(value);
        self.data.push(json.to_string());
        self.refresh_version();
        Ok(())
    }

    /// Sets the operator's revision label (e.g. a git commit) carried in the policy version.
    pub fn set_revision(&mut self, revision: Option<String>) {
        self.revision = revision;
        self.version.revision = self.revision.clone();
    }

    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// Ids and sources of the loaded modules, sorted by id.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.modules
            .iter()
            .map(|(id, src)| (id.as_str(), src.as_str()))
    }

    /// Keeps the output of `print()` calls for [`PolicyEngine::take_prints`] (as `opa eval`
    /// shows it), or stops keeping it. A policy's `print()` runs on the interpreter: the VM
    /// fragment leaves it out.
    pub fn set_gather_prints(&mut self, on: bool) {
        self.gather_prints = on;
        self.engine.set_gather_prints(on);
    }

    /// The `print()` lines of the evaluations since the last call (`<module>:<line>: <text>`).
    pub fn take_prints(&mut self) -> Vec<String> {
        self.engine.take_prints().unwrap_or_default()
    }

    /// The test rules of the loaded modules, as `opa test` finds them: `(tests, skipped)`,
    /// data paths (`pkg/test_x`) by module id, then in each module's order; `skipped` are the
    /// `todo_test_` rules.
    pub fn test_rules(&self) -> (Vec<String>, Vec<String>) {
        let (mut tests, mut skipped) = (Vec::new(), Vec::new());
        for (id, source) in &self.modules {
            if let Some((t, s)) = analysis::test_rules(id, source) {
                tests.extend(t);
                skipped.extend(s);
            }
        }
        (tests, skipped)
    }

    /// Whether `path` (slash-separated under `data`) names something the loaded policies or
    /// data define: a package or a package above one, a rule (or a document inside a rule's
    /// value), or a document of the data. A typo (`rbac/alow`) names nothing: evaluating it is
    /// always undefined, which a caller sealing decisions should refuse rather than record.
    pub fn defines(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            return true;
        }
        let in_modules = self.modules.iter().any(|(id, source)| {
            let Some((package, rules)) = analysis::definitions(id, source) else {
                return false;
            };
            let shared = segments.len().min(package.len());
            if segments[..shared] != package[..shared] {
                return false;
            }
            // A package, a package above one, or a rule of this package (and anything inside
            // its value).
            segments.len() <= package.len() || rules.iter().any(|r| r == segments[package.len()])
        });
        in_modules
            || self.data.iter().any(|json| {
                let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(json) else {
                    return false;
                };
                for segment in &segments {
                    match doc {
                        serde_json::Value::Object(mut map) => match map.remove(*segment) {
                            Some(inner) => doc = inner,
                            None => return false,
                        },
                        // Inside an array or a scalar: the rest is evaluated, not looked up.
                        _ => return true,
                    }
                }
                true
            })
    }

    /// Evaluates the document at `path` (slash-separated under `data`, as in OPA's Data API:
    /// `rbac/allow` is `data.rbac.allow`) against `input` (JSON text), giving the decision to
    /// seal. An undefined document gives a decision without a result. If logging rules are
    /// loaded (the `system.log` package), they are evaluated on the decision too.
    pub fn evaluate(&mut self, path: &str, input: Option<&str>) -> Result<Decision, PolicyError> {
        let input_value = match input {
            // One reading of the input for deciding, masking and sealing: docket's JSON rule
            // first (duplicate names would be read one way here and another by the masker).
            Some(text) => {
                docket_ledger::json::check(text).map_err(|e| PolicyError::Input(e.to_string()))?;
                json_value::read(text).map_err(|e| PolicyError::Input(e.to_string()))?
            }
            None => Value::Undefined,
        };
        let value = self.document(data_ref(path), &input_value)?;
        let result = match &value {
            Value::Undefined => None,
            v => {
                Some(serde_json::to_string(v).map_err(|e| PolicyError::Evaluation(e.to_string()))?)
            }
        };
        let path = path.trim_matches('/').to_string();
        let log = self.log_rules(&path, &input_value, &value)?;
        Ok(Decision {
            path,
            input: input.map(str::to_string),
            result,
            policy_version: self.version.clone(),
            log,
        })
    }

    /// The decision to record when evaluating `path` on `input` failed: no result, and the
    /// logging rules as they decide for an undefined answer, so what they mask is masked on
    /// this path too. When the logging rules cannot decide either (or the input is not JSON),
    /// the whole input is removed: what it needed masked is unknown, and a value a mask rule
    /// exists for must not reach the log because evaluation failed.
    pub fn failed_decision(&mut self, path: &str, input: Option<&str>) -> Decision {
        let path = path.trim_matches('/').to_string();
        let input_value = match input {
            Some(text) => docket_ledger::json::check(text)
                .ok()
                .and_then(|()| Value::from_json_str(text).ok()),
            None => Some(Value::Undefined),
        };
        let log = input_value
            .and_then(|input| self.log_rules(&path, &input, &Value::Undefined).ok())
            .unwrap_or_else(|| LogRules {
                mask: vec![MaskRule::Remove {
                    path: "/input".into(),
                }],
                ..LogRules::default()
            });
        Decision {
            path,
            input: input.map(str::to_string),
            result: None,
            policy_version: self.version.clone(),
            log,
        }
    }

    /// What `data.system.log` decides for the decision on `path` with `input` and `result`
    /// (nothing, when no logging rules are loaded).
    fn log_rules(
        &mut self,
        path: &str,
        input: &Value,
        result: &Value,
    ) -> Result<LogRules, PolicyError> {
        if self.log_rule_modules.is_empty() {
            return Ok(LogRules::default());
        }
        let event = log_rules::event(path, input, result);
        let rule = |name: &str| format!("{}.{name}", log_rules::PACKAGE);
        let drop = self.document(rule("drop"), &event)?;
        let mask = self.document(rule("mask"), &event)?;
        let retention = self.document(rule("retention"), &event)?;
        log_rules::interpret(&drop, &mask, &retention)
    }

    /// Whether evaluations of `path` run on the bytecode VM or the interpreter, and why not
    /// the VM. Compiles the path's VM program if this is its first use.
    pub fn evaluation_path(&mut self, path: &str) -> EvaluationPath {
        self.vm.path(&data_ref(path))
    }

    /// Switches the bytecode VM path on (the default) or off: off, every query is answered by
    /// the interpreter. The answers are the same either way; benchmarks and the conformance
    /// test compare the two.
    pub fn set_vm_enabled(&mut self, enabled: bool) {
        self.vm.set_enabled(enabled);
    }

    /// How many documents each path answered since the policies or data last changed.
    pub fn path_counts(&self) -> PathCounts {
        self.vm.counts
    }

    /// The value of a document under `data` for `input`; undefined if it has none.
    fn document(&mut self, query: String, input: &Value) -> Result<Value, PolicyError> {
        if let vm::VmAnswer::Value(value) = self.vm.evaluate(&query, input) {
            return Ok(value);
        }
        self.engine.set_input(input.clone());
        // eval_rule is the fast path; it refuses packages, unknown paths and ref-head rules,
        // which the general query handles.
        if let Ok(value) = self.engine.eval_rule(query.clone()) {
            return Ok(value);
        }
        let results = self.engine.eval_query(query, false).map_err(|e| {
            PolicyError::Evaluation(in_written_source(&e.to_string(), &self.modules))
        })?;
        Ok(results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map_or(Value::Undefined, |e| e.value))
    }

    fn refresh_version(&mut self) {
        self.version = PolicyVersion {
            digest: policy_digest(
                self.modules.iter().map(|(i, s)| (i.as_str(), s.as_str())),
                &self.data,
            ),
            revision: self.revision.clone(),
        };
    }
}

/// A regorus engine with docket's own builtins in place of regorus's where they differ from OPA.
fn new_regorus_engine() -> Engine {
    let mut engine = Engine::new();
    builtins::register(&mut engine);
    engine
}

fn build_engine(
    modules: &BTreeMap<String, String>,
    data: &[String],
) -> Result<(Engine, BTreeMap<String, String>), PolicyError> {
    let mut engine = new_regorus_engine();
    let mut packages = BTreeMap::new();
    for (id, source) in modules {
        let prepared = analysis::prepare(id, source).map_err(|message| PolicyError::Parse {
            id: id.clone(),
            message,
        })?;
        let package = engine
            .add_policy(id.clone(), prepared.interpreter)
            .map_err(|e| PolicyError::Parse {
                id: id.clone(),
                message: e.to_string(),
            })?;
        packages.insert(id.clone(), package);
    }
    for doc in data {
        let value = json_value::read(doc).map_err(|e| PolicyError::Data(e.to_string()))?;
        engine
            .add_data(value)
            .map_err(|e| PolicyError::Data(e.to_string()))?;
    }
    Ok((engine, packages))
}

/// The deepest nesting of `[ ]` and `{ }` a module may have.
///
/// regorus's parser tries a comprehension before an array, set or object at every bracket and
/// backtracks, so its time doubles with each level: measured natively, 16 levels parse in
/// ~45 ms, 18 in ~200 ms, 31 did not finish in 10 s (found by the `policy_loader` fuzz target).
/// Real policies nest a handful of levels; a deeper module is refused before it reaches the
/// parser, so a policy upload cannot stall the server.
pub const MAX_BRACKET_NESTING: usize = 16;

/// Refuses a module whose brackets nest deeper than [`MAX_BRACKET_NESTING`]. Strings, raw
/// strings and comments are skipped; unbalanced brackets are left for the parser to report.
fn check_nesting(source: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            // A comment runs to the end of its line.
            '#' => line += usize::from(chars.by_ref().any(|c| c == '\n')),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    match c {
                        '`' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_BRACKET_NESTING {
                    return Err(format!(
                        "brackets nest more than {MAX_BRACKET_NESTING} levels deep at line {line}; \
                         docket refuses deeper nesting because parsing time grows exponentially \
                         with it: move inner parts into helper rules"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// An evaluation error from regorus, pointed at the module as its author wrote it.
///
/// regorus reports `--> file:line:col`, the line, a caret and `error: why`, about the text it
/// ran, which docket's rewrites (`analysis`) may have added to: guards such as `_ = input.x;`
/// or `__docket_iterable(..)` the author never wrote, and columns that point past them. Lines
/// are never added, so the line is the author's: the error becomes `file:line: why` (OPA's
/// shape) with the author's own line beneath it, and the column is kept only when that line was
/// not rewritten. Anything else passes unchanged.
fn in_written_source(message: &str, modules: &BTreeMap<String, String>) -> String {
    let parsed = (|| {
        let location = message
            .lines()
            .find_map(|l| l.trim().strip_prefix("--> "))?;
        let (file_line, column) = location.rsplit_once(':')?;
        let (file, line) = file_line.rsplit_once(':')?;
        let line_number: usize = line.parse().ok()?;
        let why_at = message.find("\nerror: ")?;
        let why = message[why_at + "\nerror: ".len()..].trim_end();
        let written = modules
            .get(file)?
            .lines()
            .nth(line_number.checked_sub(1)?)?;
        let ran = message
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{line_number} | ")))
            .or_else(|| {
                message
                    .lines()
                    .find_map(|l| l.trim_start().strip_prefix(&format!("{line_number} |")))
            })?;
        let at = if ran.trim_end() == written.trim_end() {
            format!("{file}:{line_number}:{column}")
        } else {
            format!("{file}:{line_number}")
        };
        Some(format!(
            "{at}: {why}\n  {line_number} | {}",
            written.trim_end()
        ))
    })();
    parsed.unwrap_or_else(|| message.to_string())
}

/// The policy version digest (`docs/log-format.md` §5):
/// SHA-256(tag ‖ u32 module count ‖ per module sorted by id: u32 len ‖ id ‖ u32 len ‖ source
/// ‖ u32 data count ‖ per data document in load order: u32 len ‖ bytes), as `sha256:<hex>`.
pub fn policy_digest<'a>(
    modules: impl Iterator<Item = (&'a str, &'a str)>,
    data: &[String],
) -> String {
    let mut modules: Vec<(&str, &str)> = modules.collect();
    modules.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut buf = Vec::new();
    buf.extend_from_slice(POLICY_DIGEST_TAG);
    buf.extend_from_slice(&(modules.len() as u32).to_be_bytes());
    for (id, source) in &modules {
        for part in [id.as_bytes(), source.as_bytes()] {
            buf.extend_from_slice(&(part.len() as u32).to_be_bytes());
            buf.extend_from_slice(part);
        }
    }
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for doc in data {
        buf.extend_from_slice(&(doc.len() as u32).to_be_bytes());
        buf.extend_from_slice(doc.as_bytes());
    }
    format!("sha256:{}", sha256(&[&buf]).to_hex())
}

/// `rbac/allow` → `data.rbac.allow`; segments that are not identifiers use bracket notation.
pub fn data_ref(path: &str) -> String {
    let mut query = String::from("data");
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let is_ident = segment
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_ident {
            query.push('.');
            query.push_str(segment);
        } else {
            query.push('[');
            query.push_str(&serde_json::to_string(segment).expect("strings serialize"));
            query.push(']');
        }
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC: &str = r#"package rbac
default allow := false
allow if { some g in data.grants[input.user]; g == input.action }
"#;

    #[test]
    fn evaluates_rules_packages_and_undefined() {
        let mut engine = PolicyEngine::new();
        assert_eq!(engine.add_policy("rbac.rego", RBAC).unwrap(), "data.rbac");
        engine.add_data(r#"{"grants":{"alice":["read"]}}"#).unwrap();
        let d = engine
            .evaluate("rbac/allow", Some(r#"{"user":"alice","action":"read"}"#))
            .unwrap();
        assert_eq!(d.result.as_deref(), Some("true"));
        let d = engine
            .evaluate("rbac/allow", Some(r#"{"user":"bob","action":"read"}"#))
            .unwrap();
        assert_eq!(d.result.as_deref(), Some("false"));
        let d = engine
            .evaluate("rbac", Some(r#"{"user":"alice","action":"read"}"#))
            .unwrap();
        assert_eq!(d.result.as_deref(), Some(r#"{"allow":true}"#));
        let d = engine.evaluate("rbac/nothing", None).unwrap();
        assert_eq!(d.result, None);
    }

    /// `data.a.x` for `input` in a module of `rules` (package `a`): its JSON text, `None` when
    /// undefined, `"error"` when evaluation fails.
    fn answer(rules: &str, input: &str) -> Option<String> {
        let mut engine = PolicyEngine::new();
        engine
            .add_policy("a.rego", &format!("package a\n\n{rules}\n"))
            .unwrap();
        match engine.evaluate("a/x", Some(input)) {
            Ok(d) => d.result,
            Err(_) => Some("error".to_string()),
        }
    }

    /// A rule whose body reads an undefined plain `input` reference is not evaluated at all in
    /// OPA, so a builtin error in it is never raised (`analysis::index_guard`). Each case with
    /// the answer the real OPA engine (v1.20) gave for `{"m": []}` (no `q`): `None` undefined,
    /// `Some(..)` a value, "error" the builtin's error.
    #[test]
    fn undefined_indexed_references_skip_the_rule_as_in_opa() {
        let cases: &[(&str, Option<&str>)] = &[
            ("x if { round(input.m) >= 1; input.q }", None),
            ("x if { round(input.m) >= 1; count(input.q) > 0 }", None),
            (
                "x if { round(input.m) >= 1; startswith(upper(input.q), \"a\") }",
                None,
            ),
            ("x if { round(input.m) >= 1; input.q.r.s }", None),
            ("x if { round(input.m) >= 1; input.q > 3 }", None),
            ("x := y if { round(input.m) >= 1; y := input.q }", None),
            ("x := 5 if { round(input.m) >= 1; input.q }", None),
            (
                "f(a) := 1 if { round(input.m) >= 1; input.q }\nx := f(1)",
                None,
            ),
            ("x := input.q if { round(input.m) >= 1 }", None),
            ("x := round(input.m) + count(input.q)", None),
            (
                "x if { round(input.m) >= 1; every y in input.q { y > 1 } }",
                None,
            ),
            (
                "x contains 1 if { round(input.m) >= 1; input.q }",
                Some("[]"),
            ),
            ("x if { round(input.m) >= 1; not input.q }", Some("error")),
            ("x if { round(input.m) >= 1; input.q[_] }", Some("error")),
            ("x := [1 | round(input.m) >= 1; input.q]", Some("error")),
            (
                "x if { round(input.m) >= 1; input.q with input.z as 1 }",
                Some("error"),
            ),
            (
                "x if { round(input.m) >= 1; input.q == input.z }",
                Some("error"),
            ),
            (
                "x if { round(input.m) >= 1; some y in input.q }",
                Some("error"),
            ),
            (
                "x := 1 if { round(input.m) >= 1 } else := 2 if { input.q }",
                Some("error"),
            ),
            ("x if { round(input.m) >= 1; 1 == 2 }", Some("error")),
            ("x if { round(input.m) >= 1; input.xs[0] > 1 }", None),
            (
                "x := 1 if { false } else := 2 if { round(input.m) >= 1; input.q }",
                None,
            ),
            (
                "x := 1 if { false } else := input.q if { round(input.m) >= 1 }",
                None,
            ),
            (
                "x := 1 if { false } else := 2 if { round(input.m) >= 1 } else := 3",
                Some("error"),
            ),
        ];
        for (rule, opa) in cases {
            assert_eq!(answer(rule, r#"{"m": []}"#).as_deref(), *opa, "{rule}");
        }
    }

    /// A literal comparing a plain `input` reference with a constant is looked up by OPA's
    /// index before the body runs (`analysis::index_guard`); each answer OPA v1.20's, for an
    /// input whose compared values all differ and whose `x` makes `count` fail.
    #[test]
    fn indexed_equalities_skip_the_rule_as_in_opa() {
        let cases: &[(&str, Option<&str>)] = &[
            ("x if { count(input.x) > 0; input.b == false }", None),
            ("x if { count(input.x) > 0; input.s == \"a\" }", None),
            ("x if { count(input.x) > 0; \"a\" == input.s }", None),
            ("x if { count(input.x) > 0; input.s = \"a\" }", None),
            ("x if { count(input.x) > 0; input.n == 1 }", None),
            ("x if { count(input.x) > 0; input.arr == [1] }", None),
            ("x if { count(input.x) > 0; input.o.k == \"a\" }", None),
            ("x if { count(input.x) > 0; input.xs[0] == \"a\" }", None),
            ("x if { count(input.x) > 0; input.s == null }", None),
            ("x := 5 if { count(input.x) > 0; input.s == \"a\" }", None),
            ("x if { z := count(input.x); input.s == \"a\" }", None),
            (
                "f(y) if { count(input.x) > y; input.s == \"a\" }\nx if { f(0) }",
                None,
            ),
            (
                "x contains 1 if { count(input.x) > 0; input.s == \"a\" }",
                Some("[]"),
            ),
            (
                "x := 1 if { count(input.x) > 0; input.s == \"a\" } else := 2",
                Some("2"),
            ),
            ("x if { count(input.x) > 0; input.n > 3 }", Some("error")),
            (
                "x if { count(input.x) > 0; input.s == input.t }",
                Some("error"),
            ),
            (
                "x if { count(input.x) > 0; not input.s == \"a\" }",
                Some("error"),
            ),
            (
                "x if { count(input.x) > 0; input.s != \"a\" }",
                Some("error"),
            ),
            (
                "c := \"zz\"\nx if { count(input.x) > 0; data.a.c == \"a\" }",
                Some("error"),
            ),
            (
                "x if { count(input.x) > 0; input.s == \"a\" with input.zz as 1 }",
                Some("error"),
            ),
        ];
        let input = r#"{"x": 5, "b": "true", "s": "c", "t": "d", "n": 2.0, "arr": [2],
            "o": {"k": "c"}, "xs": ["c"]}"#;
        for (rule, opa) in cases {
            assert_eq!(answer(rule, input).as_deref(), *opa, "{rule}");
        }
    }

    /// `glob.match` with a constant pattern is looked up by OPA's index too: a rule whose
    /// reference holds no string is not evaluated (undefined), where the builtin alone raises
    /// its type error. Each answer OPA v1.20's for `{"h": [1, "a"]}`.
    #[test]
    fn indexed_glob_matches_skip_the_rule_as_in_opa() {
        let cases: &[(&str, Option<&str>)] = &[
            ("glob.match(\"api.*\", [], input.h)", None),
            ("glob.match(\"*.example.com\", [\".\"], input.h)", None),
            ("glob.match(\"api.*\", [\".\"], input.h)", None),
            ("glob.match(\"*\", [], input.h)", None),
            ("glob.match(\"a.b\", [], input.h)", None),
            ("glob.match(\"a:*\", [\":\"], input.h)", None),
            ("glob.match(\"x.*.y\", [\".\"], input.h)", None),
            ("glob.match(\"api.*\", [], input.h[0])", None),
            ("glob.match(\"a*\", [], input.h)", Some("error")),
            ("glob.match(\"a*\", [\".\"], input.h)", Some("error")),
            ("glob.match(\"a.*\", null, input.h)", Some("error")),
            ("glob.match(\"api.**\", [\".\"], input.h)", Some("error")),
            ("glob.match(\"a?\", [], input.h)", Some("error")),
            ("glob.match(\"[ab].c\", [], input.h)", Some("error")),
            ("glob.match(\"{a,b}.c\", [], input.h)", Some("error")),
        ];
        for (call, opa) in cases {
            let rule = format!("x if {{ {call} }}");
            assert_eq!(
                answer(&rule, r#"{"h": [1, "a"]}"#).as_deref(),
                *opa,
                "{call}"
            );
        }
    }

    #[test]
    fn evaluation_errors_point_at_the_line_the_author_wrote() {
        let mut engine = PolicyEngine::new();
        let source = "package a\n\nx if {\n\tcount(input.x) > 0\n}\n\ny if { count(input.x) > 0; input.s }\n";
        engine.add_policy("a.rego", source).unwrap();
        // Line 4 ran as written: its column is kept.
        let err = engine
            .evaluate("a/x", Some(r#"{"x": 5}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "evaluation failed: a.rego:4:10: count: operand 1 must be one of {array, object, set, \
             string} but got number\n  4 | \tcount(input.x) > 0"
        );
        // Line 7 ran with docket's guards (`_ = input.s; ...`): the author's line, no column.
        let err = engine
            .evaluate("a/y", Some(r#"{"x": 5, "s": true}"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("evaluation failed: a.rego:7: count: operand 1 must be"),
            "{err}"
        );
        assert!(
            err.ends_with("\n  7 | y if { count(input.x) > 0; input.s }") && !err.contains("_ ="),
            "{err}"
        );
    }

    /// A comprehension's `some x` shadows the rule's `x` (`analysis::shadow`); each case with
    /// the answer the real OPA engine (v1.20) gave.
    #[test]
    fn a_comprehension_may_declare_a_variable_the_rule_uses() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "r contains x if { some x in input.xs; count([x | some x in [1]; x > 0]) > 0 }",
                "a/r",
                r#"{"xs": [5]}"#,
                "[5]",
            ),
            (
                "r := [[x, y] | some x in [1, 2]; y := [x | some x in [7]]]",
                "a/r",
                "{}",
                "[[1,[7]],[2,[7]]]",
            ),
            (
                "r := {x: v | some x, v in {\"a\": 1}} if { x := 3; x > 1 }",
                "a/r",
                "{}",
                r#"{"a":1}"#,
            ),
            (
                "q := [x | some x in [1]; other := [x | x := 2]]",
                "a/q",
                "{}",
                "[1]",
            ),
            (
                "r contains x if { some x in input.xs; y := [x | x > 0] }",
                "a/r",
                r#"{"xs": [1]}"#,
                "[1]",
            ),
        ];
        for (rule, path, input, opa) in cases {
            let mut engine = PolicyEngine::new();
            engine
                .add_policy("a.rego", &format!("package a\n\n{rule}\n"))
                .unwrap();
            let got = engine.evaluate(path, Some(input)).map(|d| d.result);
            assert_eq!(
                got.as_ref().ok().and_then(|r| r.as_deref()),
                Some(*opa),
                "{rule}: {got:?}"
            );
        }
    }

    #[test]
    fn version_tracks_exactly_what_is_loaded() {
        let mut a = PolicyEngine::new();
        let empty = a.version().digest.clone();
        a.add_policy("rbac.rego", RBAC).unwrap();
        let with_policy = a.version().digest.clone();
        assert_ne!(empty, with_policy);
        a.add_data(r#"{"grants":{}}"#).unwrap();
        assert_ne!(a.version().digest, with_policy);
        a.remove_policy("rbac.rego").unwrap();
        let mut b = PolicyEngine::new();
        b.add_data(r#"{"grants":{}}"#).unwrap();
        assert_eq!(a.version().digest, b.version().digest);
        assert!(a.version().digest.starts_with("sha256:"));
    }

    #[test]
    fn bad_policy_data_and_input_give_clear_errors_and_change_nothing() {
        let mut engine = PolicyEngine::new();
        engine.add_policy("rbac.rego", RBAC).unwrap();
        let before = engine.version().clone();
        let err = engine
            .add_policy("bad.rego", "package bad\nallow if {")
            .unwrap_err();
        assert!(
            matches!(err, PolicyError::Parse { ref id, .. } if id == "bad.rego"),
            "{err}"
        );
        let err = engine
            .add_policy("rbac.rego", "package rbac\nallow if {")
            .unwrap_err();
        assert!(matches!(err, PolicyError::Parse { .. }), "{err}");
        assert!(matches!(engine.add_data("[1]"), Err(PolicyError::Data(_))));
        for bad_input in ["{", "77e777", r#"{"n": -1e400}"#] {
            assert!(
                matches!(
                    engine.evaluate("rbac/allow", Some(bad_input)),
                    Err(PolicyError::Input(_))
                ),
                "{bad_input}"
            );
        }
        assert_eq!(engine.version(), &before);
        assert!(
            engine
                .evaluate("rbac/allow", Some(r#"{"user":"x"}"#))
                .is_ok()
        );
    }

    #[test]
    fn deeply_nested_brackets_are_refused_before_the_parser() {
        let mut engine = PolicyEngine::new();
        let at_limit = format!("package p\nx := {}1{}", "[".repeat(16), "]".repeat(16));
        engine.add_policy("ok.rego", &at_limit).unwrap();
        let before = engine.version().clone();
        // 31 unclosed brackets: the fuzzer's input that kept regorus's parser busy for minutes.
        for source in [
            format!("package p\nx := {}1", "[".repeat(31)),
            format!("package p\n\nx := {}", "{[".repeat(9)),
        ] {
            let err = engine.add_policy("deep.rego", &source).unwrap_err();
            assert!(
                err.to_string().contains("more than 16 levels deep at line"),
                "{err}"
            );
        }
        assert_eq!(engine.version(), &before);
        // Brackets inside strings, raw strings and comments do not count.
        let quoted = format!(
            "package q\n# {}\ns := \"{}\"\nr := `{}`\n",
            "[".repeat(40),
            "{".repeat(40),
            "[".repeat(40)
        );
        engine.add_policy("quoted.rego", &quoted).unwrap();
    }

    #[test]
    fn unicode_regex_classes_work() {
        let mut engine = PolicyEngine::new();
        engine
            .add_policy("re.rego", "package re\nok if regex.match(`^\\p{L}+\\d$`, input.s)\nascii if regex.match(`^\\w+\\d$`, input.s)\nci if regex.match(`(?i)^abc$`, input.s)")
            .unwrap();
        let d = engine.evaluate("re/ok", Some(r#"{"s":"héllo1"}"#)).unwrap();
        assert_eq!(d.result.as_deref(), Some("true"));
        // Go's `\w` is ASCII, so OPA (v1.20) leaves this undefined.
        let d = engine
            .evaluate("re/ascii", Some(r#"{"s":"héllo1"}"#))
            .unwrap();
        assert_eq!(d.result.as_deref(), None);
        let d = engine.evaluate("re/ci", Some(r#"{"s":"ABC"}"#)).unwrap();
        assert_eq!(d.result.as_deref(), Some("true"));
    }

    #[test]
    fn defines_names_packages_rules_and_data_not_typos() {
        let mut engine = PolicyEngine::new();
        engine
            .add_policy(
                "rbac.rego",
                "package app.rbac\nimport rego.v1\nallow if input.x\nroles[r] := 1 if some r in input.r\n",
            )
            .unwrap();
        engine
            .add_data(r#"{"users": {"alice": {"admin": true}}, "list": [1]}"#)
            .unwrap();
        for yes in [
            "",
            "app",
            "app/rbac",
            "app/rbac/allow",
            "app/rbac/roles/x",
            "users",
            "users/alice/admin",
            "list/0",
        ] {
            assert!(engine.defines(yes), "{yes}");
        }
        for no in [
            "rbac/allow",
            "app/rbac/alow",
            "app/other",
            "users/bob",
            "nothing",
        ] {
            assert!(!engine.defines(no), "{no}");
        }
    }

    #[test]
    fn data_refs_quote_non_identifiers() {
        assert_eq!(data_ref("rbac/allow"), "data.rbac.allow");
        assert_eq!(data_ref("/a/b-c/"), r#"data.a["b-c"]"#);
        assert_eq!(data_ref(""), "data");
    }
}

#[cfg(test)]
mod load_checks {
    use super::*;

    #[test]
    fn unsupported_builtins_are_refused_at_load_naming_them() {
        for (name, _) in analysis::UNSUPPORTED_BUILTINS {
            let mut engine = PolicyEngine::new();
            let source = format!("package p\n\nx if {{\n\t{name}(input.a)\n}}\n");
            let err = engine.add_policy("p.rego", &source).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("line 4 calls `{name}`")),
                "{name}: {text}"
            );
            assert_eq!(engine.modules().count(), 0);
        }
        // A module's own function or import of that name is not the builtin.
        let mut engine = PolicyEngine::new();
        engine
            .add_policy(
                "own.rego",
                "package own\n\nany(xs) := count(xs) > 0\n\nx := any([1])\n",
            )
            .unwrap();
        assert_eq!(
            engine.evaluate("own/x", None).unwrap().result.as_deref(),
            Some("true")
        );
    }

    #[test]
    fn iterating_a_non_collection_is_undefined_as_in_opa() {
        let mut engine = PolicyEngine::new();
        engine
            .add_policy(
                "it.rego",
                "package it\n\nfirst_big := x if { some x in input.xs; x > 1 }\n\nall := [x | some x in input.xs]\n\nnested := [x | some x in [y | some y in input.xs]]\n",
            )
            .unwrap();
        for (input, first_big, all) in [
            (r#"{"xs": [1, 5]}"#, Some("5"), "[1,5]"),
            (r#"{"xs": "str"}"#, None, "[]"),
            (r#"{"xs": 7}"#, None, "[]"),
        ] {
            let d = engine.evaluate("it/first_big", Some(input)).unwrap();
            assert_eq!(d.result.as_deref(), first_big, "{input}");
            let d = engine.evaluate("it/all", Some(input)).unwrap();
            assert_eq!(d.result.as_deref(), Some(all), "{input}");
            let d = engine.evaluate("it/nested", Some(input)).unwrap();
            assert_eq!(d.result.as_deref(), Some(all), "{input}");
        }
        // The version digest is over the source as written, not docket's adjusted text.
        let mut other = PolicyEngine::new();
        other.add_policy("it.rego", "package it\n\nfirst_big := x if { some x in input.xs; x > 1 }\n\nall := [x | some x in input.xs]\n\nnested := [x | some x in [y | some y in input.xs]]\n").unwrap();
        assert_eq!(engine.version(), other.version());
        assert!(!engine.modules().next().unwrap().1.contains("__docket"));
    }

    /// Each expectation was printed by the real OPA engine (v1.20), with `input.x` undefined,
    /// `input.m` = `{}` and `data.users` = `{"a": true}`: OPA binds a negated expression's
    /// dynamic operands outside the negation.
    #[test]
    fn a_negation_over_an_undefined_operand_is_as_in_opa() {
        let cases = [
            ("not input.x", Some("true")),
            ("not input.x == 1", Some("true")),
            ("not input.x = 1", Some("true")),
            ("not 1 == input.x", Some("true")),
            ("not input.a.b", Some("true")),
            ("not g", Some("true")),
            ("not h(1)", Some("true")),
            ("not count([y | y := input.x]) > 0", Some("true")),
            (r#"not object.get(input, "x", 1) == 2"#, Some("true")),
            (r#"not startswith(input.x, "a")"#, None),
            ("not data.users[input.x]", None),
            ("not count(input.x) > 0", None),
            ("not f(input.x)", None),
            ("not input.m[input.x]", None),
            ("not data.users[input.x].admin", None),
            (r#"not lower(input.x) == "a""#, None),
            ("not input.x != 1", None),
            ("not input.x in {1}", None),
            ("not 0 in input.x", None),
            ("not [input.x] == [1]", None),
            (r#"not {"k": input.x} == {}"#, None),
            ("not input.x + 1 > 2", None),
            ("not data.users[lower(input.x)]", None),
            (r#"not startswith(data.users[input.x], "a")"#, None),
            ("not true == input.m[input.x]", None),
            ("not f(input.x) with input.x as 1", None),
            ("not f(input.x) with input.x as 2", Some("true")),
            // A bare rule name is a reference OPA binds like `data.p.w` (issue 23, class 2).
            (r#"not w in {"a"}"#, None),
            (r#"not startswith(w, "M")"#, None),
            ("not w == 1", Some("true")),
            ("not w", Some("true")),
        ];
        for (literal, expected) in cases {
            for body in [format!("{{\n\t{literal}\n}}"), literal.to_string()] {
                let source = format!(
                    "package p\n\nf(v) if v == 1\n\ng if input.x == 1\n\nh(_) := input.x\n\nw := input.x\n\nx if {body}\n"
                );
                let mut engine = PolicyEngine::new();
                engine.add_policy("p.rego", &source).unwrap();
                engine.add_data(r#"{"users": {"a": true}}"#).unwrap();
                let d = engine.evaluate("p/x", Some(r#"{"m": {}}"#)).unwrap();
                assert_eq!(d.result.as_deref(), expected, "{source}");
            }
        }
        // A local variable is bound when the negation is reached: binding it changes nothing
        // (OPA: true).
        let mut engine = PolicyEngine::new();
        engine
            .add_policy(
                "l.rego",
                "package l\n\nimport rego.v1\n\ne if {\n\tsome v in [\"q\"]\n\tnot v in {\"a\"}\n}\n",
            )
            .unwrap();
        assert_eq!(
            engine.evaluate("l/e", None).unwrap().result.as_deref(),
            Some("true")
        );
        // Inside comprehensions and `every` too (answers printed by OPA): the bodies are
        // undefined, so `nested` counts an empty comprehension.
        let source = "package q\n\nxs := [y | some y in input.l; not startswith(y, input.p)]\n\nall if every y in input.l { not startswith(y, input.p) }\n\nnested := [y | some y in input.l; not count([z | z := y; not startswith(z, input.p)]) > 0]\n";
        let mut engine = PolicyEngine::new();
        engine.add_policy("q.rego", source).unwrap();
        let input = Some(r#"{"l": ["ab", "cd"]}"#);
        let xs = engine.evaluate("q/xs", input).unwrap();
        assert_eq!(xs.result.as_deref(), Some("[]"));
        assert_eq!(engine.evaluate("q/all", input).unwrap().result, None);
        let nested = engine.evaluate("q/nested", input).unwrap();
        assert_eq!(nested.result.as_deref(), Some(r#"["ab","cd"]"#));
        // With every operand defined, the answers are the usual ones.
        let input = Some(r#"{"l": ["ab", "cd"], "p": "a"}"#);
        let xs = engine.evaluate("q/xs", input).unwrap();
        assert_eq!(xs.result.as_deref(), Some(r#"["cd"]"#));
        assert_eq!(engine.evaluate("q/all", input).unwrap().result, None);
        let nested = engine.evaluate("q/nested", input).unwrap();
        assert_eq!(nested.result.as_deref(), Some(r#"["ab"]"#));
    }
}
