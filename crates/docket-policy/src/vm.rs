//! The bytecode-VM path: regorus's RVM, per query, where it gives the interpreter's answer.
//!
//! regorus compiles a rule and everything it depends on into a program for its register VM,
//! measured ~3× faster than its tree interpreter (BENCHMARKS.md). The VM differs from the
//! interpreter in known ways, so docket chooses per query (docs/conformance.md, "Evaluation
//! path"):
//!
//! - A query runs on the VM only if every module of its package, and of each package those
//!   modules refer to, is in the VM fragment (`analysis::vm_fragment`): the constructs the
//!   conformance suite showed the VM answering as the interpreter does, and none that can
//!   raise an error inside the VM (which the VM would swallow). Everything else stays with
//!   the interpreter, with the reason kept ([`EvaluationPath`]).
//! - Every builtin call is compiled as a host call: the VM suspends, docket answers with the
//!   same function the interpreter would call (docket's own where it has one, `builtins`,
//!   else regorus's), the VM resumes. A builtin's error ends the VM's run, and the
//!   interpreter answers instead, so an error, its message included, is always the
//!   interpreter's. So does any error the VM itself raises.
//! - A fragment module's program is compiled from its source as written: the VM iterates a
//!   non-collection as nothing by itself, so it needs no iteration guard.
//!
//! The conformance test runs every decision of the suite both ways and requires the same
//! answer from both paths, decision for decision.

use crate::analysis::{Prepared, VmModule, VmRule};
use crate::builtins;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::Instruction;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{ExecutionMode, ExecutionState, RegoVM, SuspendReason};
use regorus::unstable::{Expr, Ref, Source, Span};
use regorus::{Engine, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How many decisions each path answered since the policies last changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// Answered by the bytecode VM.
    pub vm: u64,
    /// Answered by the interpreter because the query is not run on the VM.
    pub interpreter: u64,
    /// Run on the VM, which raised an error; answered by the interpreter.
    pub fallback: u64,
}

/// Which evaluator answers a query, and why not the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvaluationPath {
    Vm,
    Interpreter { reason: String },
}

/// The VM side of a `PolicyEngine`: its own regorus engine over the VM's module texts, and one
/// VM per query, compiled on the query's first use.
pub(crate) struct VmPath {
    enabled: bool,
    /// Module id → the text the VM's engine compiles, and the module's fragment check.
    modules: BTreeMap<String, (String, VmModule)>,
    data: Vec<Value>,
    /// Built on first use after a change.
    engine: Option<Result<Engine, String>>,
    queries: HashMap<String, Query>,
    pub(crate) counts: PathCounts,
}

enum Query {
    Vm(Box<VmQuery>),
    Interpreter(String),
}

/// The VM's answer to one query.
pub(crate) enum VmAnswer {
    Value(Value),
    /// Not run on the VM, or the VM raised an error: ask the interpreter.
    AskInterpreter,
}

/// A run of the VM is bounded by the component's epoch deadline, as the interpreter's is; the
/// VM's own instruction budget (25,000 by default) would turn a long but legitimate
/// evaluation into a fallback.
const MAX_INSTRUCTIONS: usize = usize::MAX;

impl VmPath {
    pub(crate) fn new() -> VmPath {
        VmPath {
            enabled: true,
            modules: BTreeMap::new(),
            data: Vec::new(),
            engine: None,
            queries: HashMap::new(),
            counts: PathCounts::default(),
        }
    }

    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub(crate) fn set_module(&mut self, id: &str, prepared: &Prepared) {
        self.modules.insert(
            id.to_string(),
            (prepared.vm_text.clone(), prepared.vm.clone()),
        );
        self.changed();
    }

    pub(crate) fn remove_module(&mut self, id: &str) {
        self.modules.remove(id);
        self.changed();
    }

    pub(crate) fn add_data(&mut self, value: Value) {
        self.data.push(value);
        self.changed();
    }

    fn changed(&mut self) {
        self.engine = None;
        self.queries.clear();
        self.counts = PathCounts::default();
    }

    /// Which path `query` (a `data.` reference) takes, compiling it if this is its first use.
    pub(crate) fn path(&mut self, query: &str) -> EvaluationPath {
        if !self.enabled {
            return EvaluationPath::Interpreter {
                reason: "the VM path is switched off".into(),
            };
        }
        match self.query(query) {
            Query::Vm(_) => EvaluationPath::Vm,
            Query::Interpreter(reason) => EvaluationPath::Interpreter {
                reason: reason.clone(),
            },
        }
    }

    /// Evaluates `query` on the VM if it runs there.
    pub(crate) fn evaluate(&mut self, query: &str, input: &Value) -> VmAnswer {
        if !self.enabled {
            self.counts.interpreter += 1;
            return VmAnswer::AskInterpreter;
        }
        let answer = match self.query(query) {
            Query::Interpreter(_) => None,
            Query::Vm(compiled) => Some(compiled.run(input)),
        };
        match answer {
            None => {
                self.counts.interpreter += 1;
                VmAnswer::AskInterpreter
            }
            Some(Ok(value)) => {
                self.counts.vm += 1;
                VmAnswer::Value(value)
            }
            Some(Err(_)) => {
                self.counts.fallback += 1;
                VmAnswer::AskInterpreter
            }
        }
    }

    fn query(&mut self, query: &str) -> &mut Query {
        if !self.queries.contains_key(query) {
            let compiled = match reach(&self.modules, query) {
                Err(reason) => Query::Interpreter(reason),
                Ok(()) => match self.engine() {
                    Ok(engine) => compile(engine, query).map_or_else(Query::Interpreter, Query::Vm),
                    Err(reason) => Query::Interpreter(reason.clone()),
                },
            };
            self.queries.insert(query.to_string(), compiled);
        }
        self.queries.get_mut(query).expect("inserted above")
    }

    fn engine(&mut self) -> &mut Result<Engine, String> {
        let (modules, data) = (&self.modules, &self.data);
        self.engine
            .get_or_insert_with(|| build_engine(modules, data))
    }
}

impl Clone for VmPath {
    /// A clone starts with nothing compiled; it compiles its queries on their first use.
    fn clone(&self) -> VmPath {
        VmPath {
            enabled: self.enabled,
            modules: self.modules.clone(),
            data: self.data.clone(),
            engine: None,
            queries: HashMap::new(),
            counts: PathCounts::default(),
        }
    }
}

/// Checks that every rule `query` can reach is in the VM fragment: the rule it names, and,
/// transitively, every rule a reference in a reached rule can name.
fn reach(modules: &BTreeMap<String, (String, VmModule)>, query: &str) -> Result<(), String> {
    // Every rule definition: (full path, module id, module, rule).
    let rules: Vec<(String, &str, &VmModule, &VmRule)> = modules
        .iter()
        .flat_map(|(id, (_, module))| {
            module.rules.iter().map(move |(name, rule)| {
                (
                    format!("{}.{name}", module.package),
                    id.as_str(),
                    module,
                    rule,
                )
            })
        })
        .collect();
    if !rules.iter().any(|(path, ..)| path == query) {
        return Err(format!(
            "{query} is not a rule (a package or a value inside a rule)"
        ));
    }
    let mut seen = BTreeSet::from([query.to_string()]);
    let mut work = vec![query.to_string()];
    while let Some(path) = work.pop() {
        let definitions: Vec<_> = rules.iter().filter(|(p, ..)| *p == path).collect();
        if definitions.len() > 1 && definitions.iter().any(|(.., rule)| rule.complete) {
            return Err(format!(
                "{path} (reached from {query}) is a complete rule defined in more than one \
                 module, whose values could conflict"
            ));
        }
        for (_, id, module, rule) in definitions {
            if let Some(reason) = module.refusal.as_ref().or(rule.refusal.as_ref()) {
                return Err(format!(
                    "{path} (reached from {query}) is outside the VM fragment: module {id:?}, {reason}"
                ));
            }
            for reference in &rule.refs {
                for (other, ..) in &rules {
                    if (covers(reference, other) || covers(other, reference))
                        && seen.insert(other.clone())
                    {
                        work.push(other.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether the document at `prefix` contains the one at `path` (or is it).
fn covers(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn build_engine(
    modules: &BTreeMap<String, (String, VmModule)>,
    data: &[Value],
) -> Result<Engine, String> {
    let mut engine = crate::new_regorus_engine();
    for (id, (text, _)) in modules {
        engine
            .add_policy(id.clone(), text.clone())
            .map_err(|e| format!("module {id:?} does not compile for the VM: {e}"))?;
    }
    for value in data {
        engine
            .add_data(value.clone())
            .map_err(|e| format!("data rejected by the VM's engine: {e}"))?;
    }
    Ok(engine)
}

/// The VM for `query`, or why the query stays with the interpreter.
fn compile(engine: &mut Engine, query: &str) -> Result<Box<VmQuery>, String> {
    let compiled = engine
        .compile_with_entrypoint(&query.into())
        .map_err(|e| format!("regorus does not compile {query} for the VM: {e}"))?;
    let host_calls = host_calls();
    let program = Compiler::compile_from_policy_with_host_await(&compiled, &[query], &host_calls)
        .map_err(|e| format!("the VM's compiler refuses {query}: {e}"))?;
    let mut vm = RegoVM::new();
    vm.set_max_instructions(MAX_INSTRUCTIONS);
    // Every builtin is a host call, so this flag no longer concerns builtins. What it still
    // changes is how the VM compares values of different types and treats `null` as a
    // condition: without it, as the interpreter and OPA do (`1 < "a"` is true).
    vm.set_strict_builtin_errors(false);
    // Suspending costs a little on every call; a program without host calls runs straight.
    vm.set_execution_mode(if has_host_calls(&program) {
        ExecutionMode::Suspendable
    } else {
        ExecutionMode::RunToCompletion
    });
    vm.load_program(program);
    vm.set_data(engine.get_data())
        .map_err(|e| format!("the VM refuses the data for {query}: {e}"))?;
    Ok(Box::new(VmQuery {
        vm,
        builtins: BuiltinCaller::new()?,
    }))
}

/// (name, number of arguments) of every builtin: all of them are answered by docket.
fn host_calls() -> Vec<(&'static str, usize)> {
    let mut calls: BTreeMap<&str, usize> = regorus::unstable::BUILTINS
        .iter()
        .filter(|(name, _)| **name != "print")
        .map(|(name, (_, nargs))| (*name, usize::from(*nargs)))
        .collect();
    calls.extend(builtins::override_arities());
    calls.into_iter().collect()
}

fn has_host_calls(program: &Program) -> bool {
    program
        .instructions
        .iter()
        .any(|i| matches!(i, Instruction::HostAwait { .. }))
}

/// A query's compiled VM and what it needs to answer the VM's builtin calls.
struct VmQuery {
    vm: RegoVM,
    builtins: BuiltinCaller,
}

impl VmQuery {
    /// One run on `input`, answering the VM's host calls with docket's builtins.
    fn run(&mut self, input: &Value) -> Result<Value, String> {
        let vm = &mut self.vm;
        vm.set_input(input.clone());
        self.builtins.cache.clear();
        let mut value = vm
            .execute_entry_point_by_index(0)
            .map_err(|e| e.to_string())?;
        loop {
            let (name, args) = match vm.execution_state() {
                ExecutionState::Suspended {
                    reason:
                        SuspendReason::HostAwait {
                            argument,
                            identifier,
                            ..
                        },
                    ..
                } => (identifier.clone(), argument.clone()),
                ExecutionState::Suspended { reason, .. } => {
                    return Err(format!("the VM suspended unexpectedly: {reason:?}"));
                }
                _ => return Ok(value),
            };
            let name = name.as_string().map_err(|e| e.to_string())?;
            let args = args.as_array().map_err(|e| e.to_string())?.to_vec();
            // On an error the interpreter answers; the VM's next run starts afresh.
            let answer = self.builtins.call(name, &args)?;
            value = vm.resume(Some(answer)).map_err(|e| e.to_string())?;
        }
    }
}

/// Answers the VM's builtin calls: docket's implementation if it has one, else regorus's,
/// called as its interpreter calls it (strict errors).
struct BuiltinCaller {
    /// regorus's builtins take the call's source location and argument expressions, for their
    /// error messages. The VM's calls have none, and an error sends the query to the
    /// interpreter, which reports it with its own; placeholders, made once, stand in.
    span: Span,
    exprs: Vec<Ref<Expr>>,
    /// Answers of the builtins OPA evaluates once per query (`time.now_ns`, `rand.intn`,
    /// ...), as regorus's interpreter caches them; cleared for each run.
    cache: BTreeMap<(String, Vec<Value>), Value>,
}

impl BuiltinCaller {
    fn new() -> Result<BuiltinCaller, String> {
        let source =
            Source::from_contents("<vm>".into(), String::new()).map_err(|e| e.to_string())?;
        Ok(BuiltinCaller {
            span: Span {
                source,
                line: 1,
                col: 1,
                start: 0,
                end: 0,
            },
            exprs: Vec::new(),
            cache: BTreeMap::new(),
        })
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Result<Value, String> {
        if let Some(answer) = builtins::call_override(name, args) {
            return answer.map_err(|e| e.to_string());
        }
        let (function, _) = regorus::unstable::BUILTINS
            .get(name)
            .ok_or_else(|| format!("{name} is not a builtin"))?;
        let cache_key =
            regorus::unstable::must_cache(name).map(|_| (name.to_string(), args.to_vec()));
        if let Some(value) = cache_key.as_ref().and_then(|key| self.cache.get(key)) {
            return Ok(value.clone());
        }
        while self.exprs.len() < args.len() {
            self.exprs.push(Ref::new(Expr::Null {
                span: self.span.clone(),
                value: Value::Null,
                eidx: 0,
            }));
        }
        let value = function(&self.span, &self.exprs[..args.len()], args, true)
            .map_err(|e| e.to_string())?;
        if let Some(key) = cache_key {
            self.cache.insert(key, value.clone());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{EvaluationPath, PolicyEngine};

    const EXAMPLES: &[(&str, &str)] = &[
        (
            "rbac.rego",
            include_str!("../../../examples/policies/rbac.rego"),
        ),
        (
            "abac.rego",
            include_str!("../../../examples/policies/abac.rego"),
        ),
        (
            "health.rego",
            include_str!("../../../examples/policies/health.rego"),
        ),
        (
            "system-log.rego",
            include_str!("../../../examples/policies/system-log.rego"),
        ),
        (
            "authz.rego",
            include_str!("../../../examples/envoy/authz.rego"),
        ),
    ];
    const DATA: &[&str] = &[
        include_str!("../../../examples/policies/rbac.json"),
        include_str!("../../../examples/policies/abac.json"),
    ];

    fn engine(modules: &[(&str, &str)], data: &[&str]) -> PolicyEngine {
        let mut engine = PolicyEngine::new();
        for (id, source) in modules {
            engine.add_policy(id, source).unwrap();
        }
        for doc in data {
            engine.add_data(doc).unwrap();
        }
        engine
    }

    /// Both paths' answers (result or error text) to `path` on `input`.
    fn both(
        engine: &mut PolicyEngine,
        path: &str,
        input: Option<&str>,
    ) -> [Result<Option<String>, String>; 2] {
        let mut answer = |vm: bool| {
            engine.set_vm_enabled(vm);
            let a = engine.evaluate(path, input);
            engine.set_vm_enabled(true);
            a.map(|d| d.result).map_err(|e| e.to_string())
        };
        [answer(true), answer(false)]
    }

    #[test]
    fn the_examples_run_on_the_vm_and_answer_as_the_interpreter() {
        let mut engine = engine(EXAMPLES, DATA);
        let paths = [
            "rbac/allow",
            "rbac/reasons",
            "abac/allow",
            "health/live",
            "envoy/authz/decision",
            "system/log/mask",
            "system/log/drop",
            "system/log/retention",
        ];
        for path in paths {
            assert_eq!(engine.evaluation_path(path), EvaluationPath::Vm, "{path}");
        }
        // Well-formed requests and the malformed ones OPA and the interpreter answer
        // differently from a naive evaluator: missing fields, wrong types, no input at all.
        let inputs = [
            Some(r#"{"user":"alice","action":"read","resource":{"type":"document"}}"#),
            Some(r#"{"user":"bob","action":"delete","resource":{"type":"document"}}"#),
            Some(r#"{"user":"mallory","action":"read"}"#),
            Some(r#"{"user":7,"action":["read"],"resource":"document"}"#),
            Some(
                r#"{"subject":{"id":"u1","department":"eng","clearance":"secret"},"resource":{"classification":"secret","department":"eng","owner":"u2"},"action":"read","context":{"hour":10,"ip":"10.1.2.3"}}"#,
            ),
            Some(
                r#"{"subject":{"id":"u1","department":"eng","clearance":"secret"},"resource":{"classification":"secret","department":"eng","owner":"u2"},"action":"read","context":{"hour":10,"ip":17}}"#,
            ),
            Some(
                r#"{"subject":{"id":"u1","suspended":true},"resource":{"owner":"u1"},"action":"write"}"#,
            ),
            Some(
                r#"{"attributes":{"request":{"http":{"method":"GET"}}},"parsed_path":["public","x"]}"#,
            ),
            Some(r#"{"jwt":{"claims":{"roles":"admin"}}}"#),
            Some(r#"{"input":{"context":{"ip":"10.0.0.1"}},"path":"health/live","result":false}"#),
            Some("null"),
            Some("[]"),
            None,
        ];
        for input in inputs {
            for path in paths {
                let [vm, interpreter] = both(&mut engine, path, input);
                assert_eq!(vm, interpreter, "{path} on {input:?}");
            }
        }
        assert!(engine.path_counts().vm > 0);
    }

    #[test]
    fn queries_outside_the_fragment_stay_with_the_interpreter_saying_why() {
        let cases = [
            ("total := input.a + 1", "line 3: arithmetic"),
            ("f(x) := x\n\ntotal := f(1)", "a call to `f`, not a builtin"),
            ("total := [x | some x in input.a]", "a comprehension"),
            ("total if { x := input.a; x }", "an assignment"),
            (
                "total := 1 if input.a\n\ntotal := 2 if input.b",
                "defined more than once with different values",
            ),
            (
                "total := x if { some x in input.a }",
                "computes its value inside an iteration",
            ),
            ("total if { input.a[i] }", "indexed by `i`"),
            ("total if { every x in input.a { x } }", "`every`"),
            ("total if { input.a with input as {} }", "`with`"),
        ];
        for (rule, why) in cases {
            let source = format!("package p\n\n{rule}\n\nother := true\n");
            let mut engine = engine(&[("p.rego", &source)], &[]);
            match engine.evaluation_path("p/total") {
                EvaluationPath::Interpreter { reason } => {
                    assert!(reason.contains(why), "{rule}: {reason}");
                }
                EvaluationPath::Vm => panic!("{rule} runs on the VM"),
            }
            // A rule the refused one does not reach still runs on the VM.
            assert_eq!(
                engine.evaluation_path("p/other"),
                EvaluationPath::Vm,
                "{rule}"
            );
        }
        // Reaching a refused rule in another package refuses the query.
        let mut engine = engine(
            &[
                ("lib.rego", "package lib\n\nn := input.a * 2\n"),
                ("app.rego", "package app\n\nallow if data.lib.n > 2\n"),
            ],
            &[],
        );
        let EvaluationPath::Interpreter { reason } = engine.evaluation_path("app/allow") else {
            panic!("app/allow reaches arithmetic");
        };
        assert!(reason.contains("data.lib.n"), "{reason}");
        // A package split over modules: a rule reached in the other module counts, and a
        // complete rule defined in both modules could conflict.
        let mut split = self::engine(
            &[
                (
                    "a.rego",
                    "package p

allow if helper

both := true if input.a
",
                ),
                (
                    "b.rego",
                    "package p

helper if input.x + 1 > 2

both := 1 if input.b
",
                ),
            ],
            &[],
        );
        let EvaluationPath::Interpreter { reason } = split.evaluation_path("p/allow") else {
            panic!("p/allow reaches arithmetic in b.rego");
        };
        assert!(reason.contains("arithmetic"), "{reason}");
        let EvaluationPath::Interpreter { reason } = split.evaluation_path("p/both") else {
            panic!("p/both is defined in two modules");
        };
        assert!(reason.contains("more than one module"), "{reason}");
        // Packages and values inside rules are not rules.
        assert!(matches!(
            engine.evaluation_path("app"),
            EvaluationPath::Interpreter { .. }
        ));
    }

    #[test]
    fn an_error_on_the_vm_is_the_interpreters_error() {
        let source = "package p\n\nallow if startswith(input.user, \"a\")\n\ndeny if not startswith(input.user, \"a\")\n";
        let mut engine = engine(&[("p.rego", source)], &[]);
        assert_eq!(engine.evaluation_path("p/allow"), EvaluationPath::Vm);
        for input in [r#"{"user": "alice"}"#, r#"{"user": 5}"#, "{}"] {
            for path in ["p/allow", "p/deny"] {
                let [vm, interpreter] = both(&mut engine, path, Some(input));
                assert_eq!(vm, interpreter, "{path} on {input}");
            }
        }
        // `startswith(5, "a")` raised an error: the VM's run was discarded.
        assert!(
            engine.path_counts().fallback >= 2,
            "{:?}",
            engine.path_counts()
        );
        let [vm, _] = both(&mut engine, "p/allow", Some(r#"{"user": 5}"#));
        assert!(vm.unwrap_err().contains("startswith"));
    }

    #[test]
    fn changing_policies_or_data_recompiles() {
        let mut engine = engine(&[("p.rego", "package p\n\nallow if data.flag\n")], &[]);
        assert_eq!(engine.evaluate("p/allow", None).unwrap().result, None);
        engine.add_data(r#"{"flag": true}"#).unwrap();
        assert_eq!(
            engine.evaluate("p/allow", None).unwrap().result.as_deref(),
            Some("true")
        );
        engine
            .add_policy("p.rego", "package p\n\nallow if not data.flag\n")
            .unwrap();
        assert_eq!(engine.evaluate("p/allow", None).unwrap().result, None);
        assert_eq!(engine.path_counts().vm, 1);
        let mut clone = engine.clone();
        assert_eq!(clone.evaluation_path("p/allow"), EvaluationPath::Vm);
        engine.remove_policy("p.rego").unwrap();
        assert!(matches!(
            engine.evaluation_path("p/allow"),
            EvaluationPath::Interpreter { .. }
        ));
    }
}
