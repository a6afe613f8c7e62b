//! What docket checks and adjusts in a module before regorus sees it.
//!
//! - A call to an OPA builtin that docket does not support is refused at load, naming it, so a
//!   policy never evaluates to a silently different answer (or fails only at decision time).
//! - `some x in <collection>` over a value that is not a collection iterates nothing in OPA
//!   (the body is undefined); regorus raises an error. The collection is wrapped in a call to
//!   docket's `__docket_iterable`, which passes collections through and turns anything else
//!   into an empty array, so regorus iterates nothing as well.
//! - The dynamic operands of a negated literal are bound before it, as OPA's compiler does
//!   (`negation`), so `not f(input.missing)` is undefined as in OPA, not `true`.
//! - A comprehension's `some x` over the rule's own `x` is renamed (`shadow`), which regorus's
//!   scheduler otherwise refuses for the whole package.
//! - The `input` references OPA's rule index looks up before a body runs are looked up first
//!   (`index_guard`), so a rule OPA never evaluates raises none of its errors.
//!
//! The module's digest and stored text stay the original source; only the engine gets the
//! adjusted text. regorus's own parser (`regorus::unstable`, pinned with the crate's version)
//! gives the syntax tree; a module it cannot parse is passed through untouched so regorus's
//! error message reaches the user.

use regorus::unstable::{Expr, Literal, Module, Parser, Query, Rule, RuleHead, Source};
use regorus::utils::get_path_string;

mod index_guard;
mod negation;
mod shadow;
mod vm_fragment;

pub(crate) use vm_fragment::{VmModule, VmRule};

/// The name of docket's iteration guard (an extension registered in `builtins`).
pub(crate) const ITERABLE_GUARD: &str = "__docket_iterable";

/// OPA v1.20 builtins that docket does not support, with the reason. Everything OPA has that
/// is neither here nor unsupported is evaluated (docs/conformance.md lists both sides).
pub const UNSUPPORTED_BUILTINS: &[(&str, &str)] = &[
    ("crypto.parse_private_keys", CRYPTO),
    ("crypto.x509.parse_and_verify_certificates", CRYPTO),
    (
        "crypto.x509.parse_and_verify_certificates_with_options",
        CRYPTO,
    ),
    ("crypto.x509.parse_certificate_request", CRYPTO),
    ("crypto.x509.parse_certificates", CRYPTO),
    ("crypto.x509.parse_keypair", CRYPTO),
    ("crypto.x509.parse_rsa_private_key", CRYPTO),
    ("io.jwt.encode_sign", CRYPTO),
    ("io.jwt.encode_sign_raw", CRYPTO),
    ("http.send", IO),
    ("net.lookup_ip_addr", IO),
    ("providers.aws.sign_req", CRYPTO),
    ("net.cidr_overlap", DEPRECATED),
    ("graphql.is_valid", MISSING),
    ("graphql.parse", MISSING),
    ("graphql.parse_and_verify", MISSING),
    ("graphql.parse_query", MISSING),
    ("graphql.parse_schema", MISSING),
    ("graphql.schema_is_valid", MISSING),
    ("rego.metadata.chain", MISSING),
    ("rego.metadata.rule", MISSING),
    ("rego.parse_module", MISSING),
    ("json.match_schema", OFF),
    ("json.verify_schema", OFF),
    ("yaml.marshal", OFF),
    ("yaml.unmarshal", OFF),
    ("yaml.is_valid", OFF),
    ("strings.render_template", MISSING),
    ("regex.globs_match", MISSING),
    ("all", DEPRECATED),
    ("any", DEPRECATED),
    ("re_match", DEPRECATED),
    ("set_diff", DEPRECATED),
    ("plus", OPERATOR),
    ("minus", OPERATOR),
    ("mul", OPERATOR),
    ("div", OPERATOR),
    ("rem", OPERATOR),
    ("and", OPERATOR),
    ("or", OPERATOR),
    ("eq", OPERATOR),
    ("equal", OPERATOR),
    ("neq", OPERATOR),
    ("lt", OPERATOR),
    ("lte", OPERATOR),
    ("gt", OPERATOR),
    ("gte", OPERATOR),
    ("assign", OPERATOR),
    ("internal.member_2", OPERATOR),
    ("internal.member_3", OPERATOR),
];

const CRYPTO: &str =
    "docket does not yet sign tokens or parse certificates and private keys for policies";
const IO: &str = "a decision that does I/O could not be reproduced from its sealed entry";
const MISSING: &str = "regorus does not implement it";
const OFF: &str = "docket builds regorus without JSON Schema and YAML";
const DEPRECATED: &str = "it is deprecated in OPA; use the Rego v1 form";
const OPERATOR: &str =
    "write the operator itself (`+`, `==`, `in`, ...) instead of its function name";

/// A module as docket hands it to regorus's two evaluators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// For the interpreter: iterated collections guarded, negated operands bound.
    pub interpreter: String,
    /// For the bytecode VM's engine: the source as written when the module is in the VM
    /// fragment (the VM iterates a non-collection as nothing by itself, and the fragment has
    /// no negation the rewrite would change), the interpreter's text otherwise.
    pub vm_text: String,
    /// Whether the module's rules may run on the VM (`vm_fragment`).
    pub vm: VmModule,
}

/// The source regorus should compile, or an error naming the first unsupported builtin call.
pub(crate) fn prepare(id: &str, source: &str) -> Result<Prepared, String> {
    let Some(module) = parse(id, source) else {
        return Ok(Prepared {
            interpreter: source.to_string(),
            vm_text: source.to_string(),
            vm: VmModule::unparsed(),
        });
    };
    let mut walk = Walk {
        source,
        ..Walk::default()
    };
    walk.module(&module);
    let local_names = local_names(&module);
    for (name, line) in &walk.calls {
        let first = name.split('.').next().unwrap_or_default();
        if local_names.iter().any(|n| n == first) {
            continue; // the module's own rule, function or import shadows the builtin
        }
        if let Some((_, why)) = UNSUPPORTED_BUILTINS.iter().find(|(n, _)| n == name) {
            return Err(format!(
                "line {line} calls `{name}`, an OPA builtin docket does not support ({why}); \
                 docs/conformance.md lists the builtins docket evaluates"
            ));
        }
    }
    let vm = vm_fragment::check(&module, &local_names);
    // Most modules need neither rewrite: then the first parse is the only one.
    let interpreter = if walk.iterated.is_empty() && walk.negations.is_empty() {
        source.to_string()
    } else {
        bind_negated_operands(id, guard_iterations(source, &walk.iterated), false)
    };
    let interpreter = rename_shadowing(id, &module, source, interpreter);
    let interpreter = guard_indexed_references(id, &module, source, interpreter);
    let vm_text = if !vm.any_rule_in_fragment() {
        interpreter.clone()
    } else if walk.negations.is_empty() {
        source.to_string()
    } else {
        bind_negated_operands(id, source.to_string(), true)
    };
    Ok(Prepared {
        interpreter,
        vm_text,
        vm,
    })
}

/// Renames the variables comprehensions declare over the rule's own (`shadow`) in the
/// interpreter's text.
fn rename_shadowing(id: &str, module: &Module, source: &str, text: String) -> String {
    rewrite_with(id, module, source, text, |m, t| {
        let renames = shadow::find(m, t);
        (!renames.is_empty()).then(|| shadow::rewrite(t, renames))
    })
}

/// Adds OPA's index lookups to the interpreter's text as guards (`index_guard`).
fn guard_indexed_references(id: &str, module: &Module, source: &str, text: String) -> String {
    rewrite_with(id, module, source, text, |m, t| {
        let guards = index_guard::find(m, t);
        (!guards.is_empty()).then(|| index_guard::rewrite(t, &guards))
    })
}

/// One more rewrite of the interpreter's text: `rewrite` gets the module and the text its spans
/// point into (`text` parsed again when an earlier rewrite changed it) and answers the new text,
/// or `None` when nothing needs changing. A result that does not parse (a bug) is dropped and
/// the text before it kept.
fn rewrite_with(
    id: &str,
    module: &Module,
    source: &str,
    text: String,
    rewrite: impl Fn(&Module, &str) -> Option<String>,
) -> String {
    // Most modules need nothing: decided on the parse already made.
    if rewrite(module, source).is_none() {
        return text;
    }
    let reparsed;
    let module = if text == source {
        module
    } else {
        match parse(id, &text) {
            Some(m) => {
                reparsed = m;
                &reparsed
            }
            None => return text,
        }
    };
    match rewrite(module, &text) {
        Some(new) if parse(id, &new).is_some() => new,
        _ => text,
    }
}

/// The module as regorus parses it (Rego v1, as regorus's engine and OPA 1.x do); `None` when
/// it does not parse, so that regorus reports the error itself.
fn parse(id: &str, source: &str) -> Option<Module> {
    let parsed = Source::from_contents(id.to_string(), source.to_string()).ok()?;
    Parser::new(&parsed)
        .and_then(|mut p| {
            p.enable_rego_v1()?;
            p.parse()
        })
        .ok()
}

/// Binds the operands of negated literals before them (see `negation`), pass after pass: a
/// negation inside an operand of another (in a comprehension) is rewritten on the next pass.
/// `checked`: for the bytecode VM (`negation::rewrite`).
fn bind_negated_operands(id: &str, mut text: String, checked: bool) -> String {
    let mut counter = 0;
    // The text before the last rewrite: the fallback should a rewrite not parse (a bug).
    let mut previous: Option<String> = None;
    // Each pass rewrites at least one literal, and nesting is shallow; the bound is a backstop.
    for _ in 0..64 {
        let Some(module) = parse(id, &text) else {
            debug_assert!(
                previous.is_none(),
                "the negation rewrite broke the module:\n{text}"
            );
            return previous.unwrap_or(text);
        };
        let mut walk = Walk {
            source: &text,
            ..Walk::default()
        };
        walk.module(&module);
        if walk.negations.is_empty() {
            return text;
        }
        let rewritten = negation::rewrite(&text, &walk.negations, &mut counter, checked);
        previous = Some(std::mem::replace(&mut text, rewritten));
    }
    text
}

/// Wraps each iterated collection (byte ranges, possibly nested) in the iteration guard.
fn guard_iterations(source: &str, ranges: &[(usize, usize)]) -> String {
    let mut inserts: Vec<(usize, bool)> = Vec::new();
    for &(start, end) in ranges {
        if start < end && end <= source.len() {
            inserts.push((start, true));
            inserts.push((end, false));
        }
    }
    // Back to front, so earlier offsets stay valid; at one offset a closing parenthesis goes
    // before an opening call.
    inserts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = source.to_string();
    for (at, open) in inserts {
        if open {
            out.insert_str(at, &format!("{ITERABLE_GUARD}("));
        } else {
            out.insert(at, ')');
        }
    }
    out
}

/// What a module defines: its package's path under `data` (`["rbac"]` for `package rbac`)
/// and the first segment of each rule's name; `None` if it does not parse.
pub(crate) fn definitions(id: &str, source: &str) -> Option<(Vec<String>, Vec<String>)> {
    let module = parse(id, source)?;
    let package = get_path_string(&module.package.refr, None).ok()?;
    let package: Vec<String> = package.split('.').map(str::to_string).collect();
    let rules = module.policy.iter().filter_map(|r| rule_name(r)).collect();
    Some((package, rules))
}

/// The data paths (`pkg/test_x`) of a module's test rules as OPA finds them: rules (not
/// functions) whose name starts with `test_`, and, apart, those starting with `todo_test_`,
/// which OPA reports as skipped; each once, in the order the module defines them.
pub(crate) fn test_rules(id: &str, source: &str) -> Option<(Vec<String>, Vec<String>)> {
    let module = parse(id, source)?;
    let package = get_path_string(&module.package.refr, None)
        .ok()?
        .replace('.', "/");
    let (mut tests, mut skipped) = (Vec::new(), Vec::new());
    for rule in &module.policy {
        if let Rule::Spec {
            head: RuleHead::Func { .. },
            ..
        } = rule.as_ref()
        {
            continue;
        }
        let Some(name) = rule_name(rule) else {
            continue;
        };
        let list = if name.starts_with("test_") {
            &mut tests
        } else if name.starts_with("todo_test_") {
            &mut skipped
        } else {
            continue;
        };
        let path = format!("{package}/{name}");
        if !list.contains(&path) {
            list.push(path);
        }
    }
    Some((tests, skipped))
}

/// The first segment of a rule's name (`allow`, `roles` of `roles[r]`, `a` of `a.b.c`).
fn rule_name(rule: &Rule) -> Option<String> {
    let refr = match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
        Rule::Default { refr, .. } => refr,
    };
    let path = get_path_string(refr, None).ok()?;
    Some(path.split('.').next().unwrap_or_default().to_string())
}

/// First path segments of everything the module defines or imports under a local name.
fn local_names(module: &Module) -> Vec<String> {
    let mut names: Vec<String> = module.policy.iter().filter_map(|r| rule_name(r)).collect();
    for import in &module.imports {
        match &import.r#as {
            Some(alias) => names.push(alias.text().to_string()),
            None => {
                if let Ok(path) = get_path_string(&import.refr, None) {
                    names.push(path.rsplit('.').next().unwrap_or_default().to_string());
                }
            }
        }
    }
    names
}

#[derive(Default)]
struct Walk<'a> {
    /// The text the module was parsed from.
    source: &'a str,
    /// Called function names, with the line of the call.
    calls: Vec<(String, u32)>,
    /// Byte ranges of the collections of `some .. in` literals.
    iterated: Vec<(usize, usize)>,
    /// Negated literals whose operands must be bound before them.
    negations: Vec<negation::Negation>,
}

impl Walk<'_> {
    fn module(&mut self, module: &Module) {
        for rule in &module.policy {
            match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            self.expr(refr);
                            if let Some(a) = assign {
                                self.expr(&a.value);
                            }
                        }
                        RuleHead::Set { refr, key, .. } => {
                            self.expr(refr);
                            if let Some(k) = key {
                                self.expr(k);
                            }
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            self.expr(refr);
                            args.iter().for_each(|a| self.expr(a));
                            if let Some(a) = assign {
                                self.expr(&a.value);
                            }
                        }
                    }
                    for body in bodies {
                        if let Some(a) = &body.assign {
                            self.expr(&a.value);
                        }
                        let unbraced = negation::unbraced(self.source, &body.query);
                        self.query(&body.query, unbraced);
                    }
                }
                Rule::Default { value, args, .. } => {
                    args.iter().for_each(|a| self.expr(a));
                    self.expr(value);
                }
            }
        }
    }

    /// `unbraced_rule_body`: a rule body written as one literal after `if`.
    fn query(&mut self, query: &Query, unbraced_rule_body: bool) {
        for stmt in &query.stmts {
            self.negations
                .extend(negation::negation(stmt, unbraced_rule_body));
            for w in &stmt.with_mods {
                self.expr(&w.refr);
                self.expr(&w.r#as);
            }
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.expr(k);
                    }
                    self.expr(value);
                    let span = collection.span();
                    self.iterated.push((span.start as usize, span.end as usize));
                    self.expr(collection);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
                Literal::Every { domain, query, .. } => {
                    self.expr(domain);
                    self.query(query, false);
                }
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        if let Expr::Call { span, fcn, .. } = expr
            && let Ok(name) = get_path_string(fcn, None)
        {
            self.calls.push((name, span.line));
        }
        let (exprs, queries) = children(expr);
        exprs.into_iter().for_each(|e| self.expr(e));
        queries.into_iter().for_each(|q| self.query(q, false));
    }
}

/// The sub-expressions and sub-queries of `expr`.
pub(super) fn children(expr: &Expr) -> (Vec<&Expr>, Vec<&Query>) {
    let mut e: Vec<&Expr> = Vec::new();
    let mut q: Vec<&Query> = Vec::new();
    match expr {
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            e.extend(items.iter().map(|i| i.as_ref()))
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                e.push(k);
                e.push(v);
            }
        }
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            e.push(term);
            q.push(query);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            e.push(key);
            e.push(value);
            q.push(query);
        }
        Expr::Call { fcn, params, .. } => {
            e.push(fcn);
            e.extend(params.iter().map(|p| p.as_ref()));
        }
        Expr::UnaryExpr { expr, .. } => e.push(expr),
        Expr::RefDot { refr, .. } => e.push(refr),
        Expr::RefBrack { refr, index, .. } => {
            e.push(refr);
            e.push(index);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            e.push(lhs);
            e.push(rhs);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                e.push(k);
            }
            e.push(value);
            e.push(collection);
        }
        _ => {}
    }
    (e, q)
}
