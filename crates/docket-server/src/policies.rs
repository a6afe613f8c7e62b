//! The policy set a server decides with, and the pool of component instances that evaluate it.
//!
//! Every change makes a new [`Generation`]: its modules and data are sealed into the log (by the
//! caller, before the generation is published), and pooled instances built for an older
//! generation are rebuilt before their next evaluation. A decision carries the policy version of
//! the generation that made it, so the log ties every decision to the exact policy text.

use anyhow::{Result, anyhow};
use docket_runtime::{CallError, Decision, Instance, PolicyError, PolicyVersion, Runtime};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Modules by id and one data document: what an engine loads.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub modules: BTreeMap<String, String>,
    /// The whole `data` document (always an object). Loaded as a single document so every
    /// instance computes the same policy version digest.
    pub data: Map<String, Value>,
    pub revision: Option<String>,
    /// The OPA bundles the set was loaded from, by name (recorded in the policy-change entry).
    pub bundles: std::collections::BTreeMap<String, crate::bundle::BundleInfo>,
}

impl PolicySet {
    /// Sets `value` at the slash-separated `path` under `data` (the root when empty), creating
    /// objects on the way. Fails if the path runs through a non-object.
    pub fn put_data(&mut self, path: &[String], value: Value) -> Result<(), String> {
        let Some((last, parents)) = path.split_last() else {
            let Value::Object(map) = value else {
                return Err("the root data document must be a JSON object".into());
            };
            self.data = map;
            return Ok(());
        };
        let mut node = &mut self.data;
        for (depth, segment) in parents.iter().enumerate() {
            let child = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match child {
                Value::Object(map) => map,
                _ => {
                    return Err(format!(
                        "data/{} is not an object",
                        path[..=depth].join("/")
                    ));
                }
            };
        }
        node.insert(last.clone(), value);
        Ok(())
    }

    /// Removes the document at `path`; `false` if there was none.
    pub fn delete_data(&mut self, path: &[String]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            let had = !self.data.is_empty();
            self.data.clear();
            return had;
        };
        let mut node = &mut self.data;
        for segment in parents {
            match node.get_mut(segment) {
                Some(Value::Object(map)) => node = map,
                _ => return false,
            }
        }
        node.remove(last).is_some()
    }

    /// Applies a data patch as OPA's `PATCH /v1/data/{path}` does: JSON Patch operations `add`,
    /// `remove` and `replace`, each `path` under `base`; all of them or none. `add` needs the
    /// parent to exist (an object's key is set, an array's index inserts, `-` appends);
    /// `remove` and `replace` need the target to exist.
    pub fn patch_data(&mut self, base: &[String], ops: &[Value]) -> Result<(), PatchError> {
        let mut root = Value::Object(self.data.clone());
        for (i, op) in ops.iter().enumerate() {
            let invalid = |why: String| PatchError::Invalid(format!("operation {i}: {why}"));
            let kind = op
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("no \"op\" (add, remove or replace)".into()))?;
            let relative = op
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("no \"path\"".into()))?;
            let mut path = base.to_vec();
            path.extend(
                relative
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.replace("~1", "/").replace("~0", "~")),
            );
            let value = op.get("value").cloned();
            match kind {
                "add" | "replace" => {
                    let value =
                        value.ok_or_else(|| invalid(format!("{kind} needs a \"value\"")))?;
                    apply_set(&mut root, &path, value, kind == "add")?;
                }
                "remove" => apply_remove(&mut root, &path)?,
                other => {
                    return Err(invalid(format!(
                        "unsupported op {other:?}: OPA's data patches are add, remove and replace"
                    )));
                }
            }
        }
        match root {
            Value::Object(map) => {
                self.data = map;
                Ok(())
            }
            _ => Err(PatchError::Invalid(
                "the root data document must stay a JSON object".into(),
            )),
        }
    }

    /// Loads the set into an instance's engine.
    pub fn load_into(
        &self,
        instance: &mut Instance,
    ) -> Result<PolicyVersion, CallError<PolicyError>> {
        for (id, source) in &self.modules {
            instance.add_policy(id, source)?;
        }
        let data = serde_json::to_string(&self.data).expect("JSON values serialize");
        instance.add_data(&data)?;
        instance
            .set_revision(self.revision.as_deref())
            .map_err(CallError::widen)?;
        instance.policy_version().map_err(CallError::widen)
    }
}

/// Why a data document holding `n` (an integer beyond 64 bits) is refused: the data tree
/// (serde_json values) would round it, and the policy-change entry would seal another number
/// than the one given.
pub fn integer_too_large(n: &str) -> String {
    format!(
        "the integer {n} is beyond 64 bits, which docket's data documents cannot hold exactly \
         (it would be rounded, and sealed so); write it as a string"
    )
}

/// Why a data patch was refused: a path that does not exist (404), or a malformed patch (400).
#[derive(Debug, PartialEq, Eq)]
pub enum PatchError {
    NotFound(String),
    Invalid(String),
}

fn not_found(path: &[String]) -> PatchError {
    PatchError::NotFound(format!(
        "storage_not_found_error: /{}: document does not exist",
        path.join("/")
    ))
}

/// The container holding `path`'s last segment, if every step to it exists.
fn parent_of<'v>(root: &'v mut Value, path: &[String]) -> Result<&'v mut Value, PatchError> {
    let mut node = root;
    for (depth, segment) in path[..path.len() - 1].iter().enumerate() {
        node = match node {
            Value::Object(map) => map.get_mut(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| not_found(&path[..=depth]))?;
    }
    Ok(node)
}

fn apply_set(root: &mut Value, path: &[String], value: Value, add: bool) -> Result<(), PatchError> {
    let Some(last) = path.last() else {
        *root = value;
        return Ok(());
    };
    match parent_of(root, path)? {
        Value::Object(map) => {
            if !add && !map.contains_key(last) {
                return Err(not_found(path));
            }
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let index = if add && last == "-" {
                items.len()
            } else {
                last.parse::<usize>().map_err(|_| not_found(path))?
            };
            match (add, index.cmp(&items.len())) {
                (true, std::cmp::Ordering::Greater)
                | (false, std::cmp::Ordering::Greater | std::cmp::Ordering::Equal) => {
                    return Err(not_found(path));
                }
                (true, _) => items.insert(index, value),
                (false, _) => items[index] = value,
            }
        }
        _ => return Err(not_found(path)),
    }
    Ok(())
}

fn apply_remove(root: &mut Value, path: &[String]) -> Result<(), PatchError> {
    let Some(last) = path.last() else {
        *root = Value::Object(Map::new());
        return Ok(());
    };
    match parent_of(root, path)? {
        Value::Object(map) => map.remove(last).map(|_| ()).ok_or_else(|| not_found(path)),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                Ok(())
            }
            _ => Err(not_found(path)),
        },
        _ => Err(not_found(path)),
    }
}

/// One published policy set with the version its engines report.
pub struct Generation {
    pub number: u64,
    pub set: PolicySet,
    pub version: PolicyVersion,
}

/// Why an evaluation failed, in the terms a client can act on.
#[derive(Debug)]
pub enum EvalError {
    /// The policy rejected the input or failed while evaluating it.
    Policy(PolicyError),
    /// The component or the host failed (a limit, a trap, an I/O error).
    Internal(anyhow::Error),
}

impl From<CallError<PolicyError>> for EvalError {
    fn from(e: CallError<PolicyError>) -> EvalError {
        match e {
            CallError::Refused(e) => EvalError::Policy(e),
            stopped => EvalError::Internal(anyhow!(stopped)),
        }
    }
}

/// A bounded pool of component instances loaded with the current generation, in two lanes.
///
/// Every evaluation starts in the **ordinary lane** (`size` at once). One still running after
/// the grace period (a large input, a slow or runaway policy) moves to the **long lane**
/// (`3 × size` at once, within the runtime's instance slots), giving its ordinary slot back: so
/// heavy evaluations cannot hold every worker while ordinary decisions queue behind them. They
/// share the CPU with the ordinary ones instead, and every call is still bounded by the
/// runtime's time limit. When the long lane is full, a long evaluation keeps its ordinary slot
/// until there is room (BENCHMARKS.md, "Ordinary decisions beside heavy ones").
pub struct EvalPool {
    runtime: Arc<Runtime>,
    current: RwLock<Arc<Generation>>,
    idle: Mutex<Vec<(u64, Instance)>>,
    ordinary: Semaphore,
    long: Semaphore,
    grace: Duration,
}

/// How long an evaluation runs in the ordinary lane before it moves to the long lane: well
/// above an ordinary decision (a few ms, BENCHMARKS.md), well below the 2 s time limit.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(25);

impl EvalPool {
    /// A pool of at most `size` concurrent evaluations per lane over `generation`.
    pub fn new(
        runtime: Arc<Runtime>,
        generation: Generation,
        size: usize,
        grace: Duration,
    ) -> EvalPool {
        let size = size.max(1);
        // Instance slots beyond the lanes: the appender's instance and policy checks.
        let slots = (docket_runtime::POOL_SLOTS as usize).saturating_sub(8);
        let long = (3 * size).min(slots.saturating_sub(size)).max(1);
        EvalPool {
            runtime,
            current: RwLock::new(Arc::new(generation)),
            idle: Mutex::new(Vec::new()),
            ordinary: Semaphore::new(size),
            long: Semaphore::new(long),
            grace,
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read().expect("generation lock"))
    }

    /// Compiles `set` in a fresh instance: its version, or the policy error that rejects it.
    /// Nothing is published.
    pub fn check(
        &self,
        set: &PolicySet,
    ) -> Result<(PolicyVersion, Instance), CallError<PolicyError>> {
        let mut instance = self.runtime.instantiate().map_err(CallError::widen)?;
        let version = set.load_into(&mut instance)?;
        Ok((version, instance))
    }

    /// Makes `generation` the one new evaluations use; `warm` (built by [`EvalPool::check`])
    /// joins the pool.
    pub fn publish(&self, generation: Generation, warm: Instance) {
        let number = generation.number;
        *self.current.write().expect("generation lock") = Arc::new(generation);
        let mut idle = self.idle.lock().expect("pool lock");
        idle.retain(|(n, _)| *n == number);
        idle.push((number, warm));
    }

    /// Evaluates `data.<path>` on a pooled instance of the current generation.
    pub async fn evaluate(
        self: &Arc<Self>,
        path: String,
        input: Option<String>,
    ) -> Result<Decision, EvalError> {
        let closed = |e: tokio::sync::AcquireError| EvalError::Internal(e.into());
        let ordinary = self.ordinary.acquire().await.map_err(closed)?;
        let pool = Arc::clone(self);
        let mut task =
            tokio::task::spawn_blocking(move || pool.evaluate_blocking(&path, input.as_deref()));
        let finished = match tokio::time::timeout(self.grace, &mut task).await {
            Ok(finished) => finished,
            Err(_) => {
                // Long-running: take a long-lane slot, then give the ordinary one back.
                let _long = self.long.acquire().await.map_err(closed)?;
                drop(ordinary);
                task.await
            }
        };
        finished.map_err(|e| EvalError::Internal(anyhow!("evaluation task failed: {e}")))?
    }

    fn evaluate_blocking(&self, path: &str, input: Option<&str>) -> Result<Decision, EvalError> {
        let generation = self.current();
        let pooled = {
            let mut idle = self.idle.lock().expect("pool lock");
            let at = idle.iter().rposition(|(n, _)| *n == generation.number);
            at.map(|i| idle.swap_remove(i).1)
        };
        let mut instance = match pooled {
            Some(instance) => instance,
            None => {
                let mut instance = self.runtime.instantiate().map_err(CallError::widen)?;
                generation.set.load_into(&mut instance)?;
                instance
            }
        };
        let outcome = instance.evaluate(path, input);
        // A stopped call leaves the instance broken (its error says so): it is dropped, not
        // pooled. A policy error leaves it as it was.
        if !matches!(outcome, Err(CallError::Stopped(_))) {
            self.idle
                .lock()
                .expect("pool lock")
                .push((generation.number, instance));
        }
        Ok(outcome?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_as_opa_applies_them() {
        let mut set = PolicySet::default();
        set.put_data(&["a".into()], json!({"list": [1, 2], "x": 1}))
            .unwrap();
        let base = vec!["a".to_string()];
        set.patch_data(
            &base,
            &[
                json!({"op": "add", "path": "/list/-", "value": 3}),
                json!({"op": "add", "path": "/list/0", "value": 0}),
                json!({"op": "replace", "path": "/x", "value": 2}),
                json!({"op": "remove", "path": "/list/1"}),
                json!({"op": "add", "path": "/new~1key", "value": true}),
            ],
        )
        .unwrap();
        assert_eq!(
            Value::Object(set.data.clone()),
            json!({"a": {"list": [0, 2, 3], "x": 2, "new/key": true}})
        );
        let before = set.data.clone();
        for bad in [
            json!({"op": "replace", "path": "/nope", "value": 1}),
            json!({"op": "remove", "path": "/list/9"}),
            json!({"op": "add", "path": "/missing/child", "value": 1}),
        ] {
            assert!(
                matches!(
                    set.patch_data(&base, &[json!({"op": "remove", "path": "/x"}), bad.clone()]),
                    Err(PatchError::NotFound(_))
                ),
                "{bad}"
            );
            assert_eq!(set.data, before, "all or none: {bad}");
        }
        assert!(matches!(
            set.patch_data(&base, &[json!({"op": "copy", "path": "/x"})]),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            set.patch_data(&[], &[json!({"op": "replace", "path": "", "value": 1})]),
            Err(PatchError::Invalid(_))
        ));
    }
}
