//! Which modules' rules may run on regorus's bytecode VM: the VM fragment of Rego.
//!
//! regorus 0.14's VM answers differently from its interpreter in ways the conformance suite
//! measured (docs/conformance.md, "Evaluation path"): an error inside a rule body makes the
//! body undefined instead of failing the query; a conflict between complete-rule values is
//! undefined instead of an error; `x := <undefined>` succeeds; and it gives other answers for
//! comprehensions, functions, `else`, `every`, `with` and partial objects. The fragment is
//! an allow-list that steers clear of all of them:
//!
//! - rules: defaults with a constant value, complete rules and partial sets (`contains`) with
//!   one-segment names; no functions, no `else`, no partial objects, no ref heads;
//! - a complete rule defined more than once has the same constant value in every definition,
//!   and one whose value is computed is defined once, without iteration, so it can never
//!   conflict;
//! - body literals: expressions, `some x in` / `some k, v in` with plain variables, and `not`
//!   over an expression with no operand the negation rewrite would bind; no `:=`/`=`, no
//!   `some x` declarations, no `every`, no `with`;
//! - expressions: scalars, variables, references indexed by constants, variables bound by an
//!   earlier `some .. in` or other references, collections of these, comparisons,
//!   membership, and calls to builtins (the VM hands every builtin call back to docket, so a
//!   builtin's error ends the VM's run and the interpreter answers); no arithmetic, set
//!   operators or comprehensions;
//! - imports: only `rego.v1` and `future.keywords`.
//!
//! A query runs on the VM only if every module of its package, and of every package those
//! modules refer to under `data`, is in the fragment (`crate::vm`).

use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};
use regorus::utils::get_path_string;
use std::collections::{BTreeMap, BTreeSet};

/// What the VM path needs to know about one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmModule {
    /// The module's package as a data reference (`data.rbac`).
    pub package: String,
    /// Why none of the module's rules may run on the VM (an import, a parse error).
    pub refusal: Option<String>,
    /// Rule name → whether it is in the fragment and what it refers to.
    pub rules: BTreeMap<String, VmRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VmRule {
    /// Why the rule stays with the interpreter; `None` if every definition is in the fragment.
    pub refusal: Option<String>,
    /// What its definitions refer to, as data references: the constant prefixes of references
    /// under `data` (`data.rbac_data.roles`) and each variable as a rule of the package
    /// (`data.rbac.user_roles`; a variable that names no rule reaches nothing). The package's
    /// other modules are not known here, so every variable is kept.
    pub refs: BTreeSet<String>,
    /// A complete rule (or default): one defined in two modules could conflict unseen.
    pub complete: bool,
}

impl VmModule {
    /// A module regorus's parser refused: regorus reports the error when it is loaded.
    pub(crate) fn unparsed() -> VmModule {
        VmModule {
            package: String::new(),
            refusal: Some("the module does not parse".into()),
            rules: BTreeMap::new(),
        }
    }

    pub(crate) fn any_rule_in_fragment(&self) -> bool {
        self.refusal.is_none() && self.rules.values().any(|r| r.refusal.is_none())
    }
}

/// `local_names`: the first segments of what the module defines or imports.
pub(crate) fn check(module: &Module, local_names: &[String]) -> VmModule {
    let package = get_path_string(&module.package.refr, Some("data")).unwrap_or_default();
    let mut check = Check {
        builtins: builtin_names(),
        local_names,
        data_refs: BTreeSet::new(),
        vars: BTreeSet::new(),
    };
    let refusal = module.imports.iter().find_map(|import| {
        let path = get_path_string(&import.refr, None).unwrap_or_default();
        let allowed =
            path == "rego.v1" || path == "future.keywords" || path.starts_with("future.keywords.");
        (!allowed).then(|| outside(import.span.line, "an import other than rego.v1"))
    });
    let mut rules: BTreeMap<String, VmRule> = BTreeMap::new();
    let mut complete = CompleteRules::new();
    for rule in &module.policy {
        let Some(name) = rule_name(rule) else {
            return VmModule {
                package,
                refusal: Some(outside(
                    rule.span().line,
                    "a rule head with a reference (`a.b := ..`)",
                )),
                rules: BTreeMap::new(),
            };
        };
        check.data_refs.clear();
        check.vars.clear();
        let verdict = check.rule(rule, &name, &mut complete);
        let entry = rules.entry(name).or_default();
        entry.complete |= matches!(
            rule.as_ref(),
            Rule::Default { .. }
                | Rule::Spec {
                    head: RuleHead::Compr { .. },
                    ..
                }
        );
        if let Err(reason) = verdict {
            entry.refusal.get_or_insert(reason);
        }
        entry.refs.extend(check.data_refs.iter().cloned());
        entry
            .refs
            .extend(check.vars.iter().map(|v| format!("{package}.{v}")));
    }
    // A complete rule never conflicts: one definition computing one value, or one constant.
    for (name, definitions) in &complete {
        let (first, line, iterates) = &definitions[0];
        let conflict = if definitions.len() == 1 {
            (first.is_none() && *iterates)
                .then(|| format!("rule `{name}` computes its value inside an iteration"))
        } else if first.is_none() || definitions.iter().any(|(v, _, _)| v != first) {
            Some(format!(
                "rule `{name}` is defined more than once with different values"
            ))
        } else {
            None
        };
        if let (Some(why), Some(rule)) = (conflict, rules.get_mut(name)) {
            rule.refusal.get_or_insert(outside(*line, &why));
        }
    }
    VmModule {
        package,
        refusal,
        rules,
    }
}

/// Complete rules by name: each definition's value if constant, its line, and whether its body
/// iterates.
type CompleteRules = BTreeMap<String, Vec<(Option<String>, u32, bool)>>;

/// The one-segment name of a rule; `None` for a ref head (`a.b := ..`).
fn rule_name(rule: &Rule) -> Option<String> {
    let refr = match rule {
        Rule::Default { refr, .. } => refr,
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
    };
    match refr.as_ref() {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.to_string()),
        _ => None,
    }
}

/// Every builtin the VM may call: regorus's and docket's own.
fn builtin_names() -> BTreeSet<&'static str> {
    regorus::unstable::BUILTINS
        .keys()
        .copied()
        .chain(crate::builtins::override_names())
        .filter(|name| *name != "print")
        .collect()
}

struct Check<'a> {
    builtins: BTreeSet<&'static str>,
    local_names: &'a [String],
    /// The current rule's constant references under `data`.
    data_refs: BTreeSet<String>,
    /// The current rule's variables (some of which name the package's rules).
    vars: BTreeSet<String>,
}

/// A refusal: what is outside the fragment, and where.
fn outside(line: u32, what: &str) -> String {
    format!("line {line}: {what}")
}

impl Check<'_> {
    fn rule(
        &mut self,
        rule: &Rule,
        name: &str,
        complete: &mut CompleteRules,
    ) -> Result<(), String> {
        match rule {
            Rule::Default {
                span, args, value, ..
            } => {
                if !args.is_empty() {
                    return Err(outside(span.line, "a default function"));
                }
                if constant(value).is_none() {
                    return Err(outside(span.line, "a default value that is not a constant"));
                }
                Ok(())
            }
            Rule::Spec { span, head, bodies } => {
                let line = span.line;
                if bodies.iter().any(|b| b.is_else || b.assign.is_some()) {
                    return Err(outside(line, "an `else`"));
                }
                match head {
                    RuleHead::Func { .. } => Err(outside(line, "a function")),
                    RuleHead::Set { key, .. } => {
                        let Some(key) = key else {
                            return Err(outside(line, "a partial set without `contains`"));
                        };
                        for body in bodies {
                            let bound = self.query(&body.query, line)?;
                            self.expr(key, &bound)?;
                        }
                        Ok(())
                    }
                    RuleHead::Compr { assign, .. } => {
                        let value = match assign {
                            Some(a) => constant(&a.value),
                            None => Some("true".to_string()),
                        };
                        let mut iterates = false;
                        for body in bodies {
                            let bound = self.query(&body.query, line)?;
                            iterates |= !bound.is_empty();
                            if let Some(a) = assign {
                                self.expr(&a.value, &bound)?;
                            }
                        }
                        if bodies.is_empty()
                            && let Some(a) = assign
                        {
                            self.expr(&a.value, &BTreeSet::new())?;
                        }
                        let definitions = complete.entry(name.to_string()).or_default();
                        for _ in 0..bodies.len().max(1) {
                            definitions.push((value.clone(), line, iterates));
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// Checks a body; returns the variables its `some .. in` literals bind.
    fn query(&mut self, query: &Query, line: u32) -> Result<BTreeSet<String>, String> {
        let mut bound = BTreeSet::new();
        for stmt in &query.stmts {
            let line = stmt.span.line.max(line);
            if !stmt.with_mods.is_empty() {
                return Err(outside(line, "`with`"));
            }
            match &stmt.literal {
                Literal::SomeVars { .. } => {
                    return Err(outside(line, "a `some x` declaration"));
                }
                Literal::Every { .. } => return Err(outside(line, "`every`")),
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    self.expr(collection, &bound)?;
                    for var in key.iter().chain(std::iter::once(value)) {
                        match var.as_ref() {
                            Expr::Var { value, .. }
                                if value.as_string().is_ok_and(|v| &**v != "_") =>
                            {
                                bound.insert(
                                    value.as_string().map(|s| s.to_string()).unwrap_or_default(),
                                );
                            }
                            _ => {
                                return Err(outside(
                                    line,
                                    "`some .. in` binding something other than a variable",
                                ));
                            }
                        }
                    }
                }
                Literal::Expr { expr, .. } => {
                    if matches!(expr.as_ref(), Expr::AssignExpr { .. }) {
                        return Err(outside(line, "an assignment (`:=` or `=`)"));
                    }
                    self.expr(expr, &bound)?;
                }
                // Its operands are bound before it in the VM's text too, each followed by a
                // check that it is defined (`negation::rewrite`).
                Literal::NotExpr { expr, .. } => self.expr(expr, &bound)?,
            }
        }
        Ok(bound)
    }

    fn expr(&mut self, expr: &Expr, bound: &BTreeSet<String>) -> Result<(), String> {
        let line = expr.span().line;
        match expr {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => Ok(()),
            Expr::Var { value, .. } => {
                let name = value.as_string().map(|s| s.to_string()).unwrap_or_default();
                if name == "_" {
                    return Err(outside(line, "the wildcard `_`"));
                }
                self.vars.insert(name);
                Ok(())
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().try_for_each(|i| self.expr(i, bound))
            }
            Expr::Object { fields, .. } => fields.iter().try_for_each(|(_, k, v)| {
                self.expr(k, bound)?;
                self.expr(v, bound)
            }),
            Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {
                Err(outside(line, "a comprehension"))
            }
            Expr::Call { fcn, params, .. } => {
                let name = get_path_string(fcn, None).unwrap_or_default();
                let first = name.split('.').next().unwrap_or_default();
                if !self.builtins.contains(name.as_str())
                    || self.local_names.iter().any(|n| n == first)
                {
                    return Err(outside(line, &format!("a call to `{name}`, not a builtin")));
                }
                params.iter().try_for_each(|p| self.expr(p, bound))
            }
            Expr::UnaryExpr { expr, .. } => match expr.as_ref() {
                Expr::Number { .. } => Ok(()),
                _ => Err(outside(line, "arithmetic")),
            },
            Expr::RefDot { .. } | Expr::RefBrack { .. } => self.reference(expr, bound),
            Expr::ArithExpr { .. } => Err(outside(line, "arithmetic")),
            Expr::BinExpr { .. } => Err(outside(line, "a set operator (`|`, `&`)")),
            Expr::AssignExpr { .. } => Err(outside(line, "an assignment (`:=` or `=`)")),
            Expr::BoolExpr { lhs, rhs, .. } => {
                self.expr(lhs, bound)?;
                self.expr(rhs, bound)
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k, bound)?;
                }
                self.expr(value, bound)?;
                self.expr(collection, bound)
            }
        }
    }

    /// A reference: its indexes checked, and its constant prefix under `data` recorded.
    fn reference(&mut self, expr: &Expr, bound: &BTreeSet<String>) -> Result<(), String> {
        // Down to the root, collecting the segments; a dynamic index ends the constant prefix.
        let mut segments: Vec<Option<String>> = Vec::new();
        let mut node = expr;
        loop {
            match node {
                Expr::RefDot { refr, field, .. } => {
                    segments.push(field.1.as_string().ok().map(|s| s.to_string()));
                    node = refr;
                }
                Expr::RefBrack { refr, index, .. } => {
                    match index.as_ref() {
                        Expr::String { value, .. } | Expr::RawString { value, .. } => {
                            segments.push(value.as_string().ok().map(|s| s.to_string()));
                        }
                        Expr::Var { value, .. } => {
                            let name = value.as_string().map(|s| s.to_string()).unwrap_or_default();
                            if !bound.contains(&name) {
                                return Err(outside(
                                    index.span().line,
                                    &format!(
                                        "a reference indexed by `{name}`, which no `some .. in` binds"
                                    ),
                                ));
                            }
                            segments.push(None);
                        }
                        other => {
                            self.expr(other, bound)?;
                            segments.push(None);
                        }
                    }
                    node = refr;
                }
                Expr::Var { value, .. } => {
                    let name = value.as_string().map(|s| s.to_string()).unwrap_or_default();
                    if name == "data" {
                        let mut path = String::from("data");
                        for segment in segments.iter().rev() {
                            match segment {
                                Some(s) => {
                                    path.push('.');
                                    path.push_str(s);
                                }
                                None => break,
                            }
                        }
                        self.data_refs.insert(path);
                    } else {
                        self.vars.insert(name);
                    }
                    return Ok(());
                }
                other => return self.expr(other, bound),
            }
        }
    }
}

/// A canonical text of the value if it is a constant (scalars and collections of constants),
/// so that two definitions' values compare equal exactly when they are the same value.
fn constant(expr: &Expr) -> Option<String> {
    Some(match expr {
        Expr::String { value, .. }
        | Expr::RawString { value, .. }
        | Expr::Number { value, .. }
        | Expr::Bool { value, .. }
        | Expr::Null { value, .. } => serde_json::to_string(value).ok()?,
        Expr::Array { items, .. } => {
            let items = items
                .iter()
                .map(|i| constant(i))
                .collect::<Option<Vec<_>>>()?;
            format!("[{}]", items.join(","))
        }
        Expr::Set { items, .. } => {
            let items = items
                .iter()
                .map(|i| constant(i))
                .collect::<Option<BTreeSet<_>>>()?;
            format!("set({})", items.into_iter().collect::<Vec<_>>().join(","))
        }
        Expr::Object { fields, .. } => {
            let mut object = BTreeMap::new();
            for (_, k, v) in fields {
                object.insert(constant(k)?, constant(v)?);
            }
            let fields: Vec<String> = object.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", fields.join(","))
        }
        _ => return None,
    })
}
