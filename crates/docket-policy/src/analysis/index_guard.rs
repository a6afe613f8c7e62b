//! OPA's rule indexing, as it shows from outside: a rule is not evaluated at all when a plain
//! reference to `input` that its body depends on is undefined.
//!
//! OPA indexes a rule by the references its body (and its value) read, and looks them up before
//! it runs the body; a rule whose indexed reference is undefined is skipped. So in
//!
//! ```text
//! x if { round(input.m) >= 1; count(input.q) > 0 }
//! ```
//!
//! with `input.m` an array and no `input.q`, OPA answers undefined, where an engine that runs the
//! literals in order (regorus) stops at `round`'s type error. docket makes the same lookups first,
//! as guards at the head of the body: `_ = input.q` holds exactly when `input.q` is defined, so a
//! guard changes nothing else.
//!
//! Which references act so, checked case by case against the real engine (v1.20): a reference
//! rooted at `input` whose every step is a name or a number (`input.q`, `input.q.r`,
//! `input.xs[0]`), found in the rule's value (`x := f(input.q)`) or in a body literal, alone,
//! compared with something that is not a reference (`input.q > 3`), as an argument at any depth
//! (`startswith(upper(input.q), "a")`), as the value of an assignment, or as the domain of
//! `every`. Not: a reference under `not`, in a literal with `with`, in `input.q == input.z`
//! (a reference on each side), with a variable step (`input.q[_]`), as the collection of
//! `some .. in`, inside a comprehension or `every`'s body. Each body of a rule with `else` is
//! guarded by its own references and its own value's, never by another body's (OPA evaluates a
//! first body whose references are defined even when an `else` body's are not). No guard is
//! added to a default rule, or for a partial set's element.
//!
//! The index also holds the value a body compares such a reference with: a literal `input.q ==
//! "a"` (or `=`, either way round, with a scalar or an array of scalars) keeps the rule out when
//! `input.q` holds another value, so `r if { count(input.x) > 0; input.s == "a" }` is undefined
//! for `{"x": 5, "s": "c"}` in OPA, where the literals in order stop at `count`'s type error.
//! docket copies each such literal to the head of its body, before the other literals; it can
//! only fail, never raise an error, so that changes nothing else. Not: under `not`, with
//! `with`, `!=`, `<`, a reference on both sides, a reference into `data`.
//!
//! The guards are added to the text for the interpreter only. The bytecode VM runs the module
//! as written; a builtin error there sends the query to the interpreter, which has the guards,
//! so both paths answer the same.

use regorus::unstable::{AssignOp, BoolOp, Expr, Literal, Module, Query, Rule, RuleHead};

/// Where to put one body's guards, and which references they check (their source text).
pub(super) struct Guards {
    /// The body: its byte range, and whether it is written in braces; `None` for a rule
    /// written without one (`x := f(input.q)`).
    body: Option<((usize, usize), bool)>,
    /// Where the head ends, for a rule written without a body.
    head_end: usize,
    refs: Vec<String>,
    /// Indexed equalities (`input.q == "a"`), as written, to check first.
    equalities: Vec<String>,
}

/// The guards each body of `module` needs (bodies needing none are left out). Each body of a
/// rule with `else` is guarded by what it and its own value read, never by another's.
pub(super) fn find(module: &Module, source: &str) -> Vec<Guards> {
    let mut out = Vec::new();
    for rule in &module.policy {
        let Rule::Spec { head, bodies, .. } = rule.as_ref() else {
            continue;
        };
        let (head_value, head_end) = match head {
            RuleHead::Compr { assign, span, .. } | RuleHead::Func { assign, span, .. } => {
                (assign.as_ref().map(|a| &a.value), span.end as usize)
            }
            RuleHead::Set { span, .. } => (None, span.end as usize),
        };
        let mut add = |body: Option<((usize, usize), bool)>,
                       mut refs: Vec<String>,
                       equalities: Vec<String>| {
            refs.sort();
            refs.dedup();
            if !refs.is_empty() || !equalities.is_empty() {
                out.push(Guards {
                    body,
                    head_end,
                    refs,
                    equalities,
                });
            }
        };
        if bodies.is_empty() {
            if let Some(value) = head_value {
                let mut refs = Vec::new();
                collect(value, source, &mut refs);
                add(None, refs, Vec::new());
            }
            continue;
        }
        for (i, body) in bodies.iter().enumerate() {
            let mut refs = Vec::new();
            let value = if i == 0 {
                head_value
            } else {
                body.assign.as_ref().map(|a| &a.value)
            };
            if let Some(value) = value {
                collect(value, source, &mut refs);
            }
            let mut equalities = Vec::new();
            literals(&body.query, source, &mut refs, &mut equalities);
            let span = &body.query.span;
            let braced = source.as_bytes().get(span.start as usize) == Some(&b'{');
            add(
                Some(((span.start as usize, span.end as usize), braced)),
                refs,
                equalities,
            );
        }
    }
    out
}

/// The text with every rule's guards at the head of its body.
pub(super) fn rewrite(source: &str, guards: &[Guards]) -> String {
    // (offset, text to insert) back to front, so earlier offsets stay valid.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for g in guards {
        let checks: Vec<String> = g
            .refs
            .iter()
            .map(|r| format!("_ = {r}"))
            .chain(g.equalities.iter().cloned())
            .collect();
        match g.body {
            Some(((start, _), true)) => {
                inserts.push((start + 1, format!(" {};", checks.join("; "))))
            }
            Some(((start, end), false)) => {
                inserts.push((end, " }".to_string()));
                inserts.push((start, format!("{{ {}; ", checks.join("; "))));
            }
            None => inserts.push((g.head_end, format!(" if {{ {} }}", checks.join("; ")))),
        }
    }
    inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let mut out = source.to_string();
    for (at, text) in inserts {
        if at <= out.len() {
            out.insert_str(at, &text);
        }
    }
    out
}

fn literals(query: &Query, source: &str, refs: &mut Vec<String>, equalities: &mut Vec<String>) {
    for stmt in &query.stmts {
        if !stmt.with_mods.is_empty() {
            continue;
        }
        match &stmt.literal {
            Literal::Expr { expr, .. } => {
                if let Some((lhs, rhs)) = equality(expr)
                    && let Some((reference, value)) = match (lhs, rhs) {
                        (r, v) | (v, r) if plain_input_ref(r) && constant(v) => Some((r, v)),
                        _ => None,
                    }
                    && let (Some(reference), Some(value)) =
                        (text_of(reference, source), constant_text(value, source))
                {
                    equalities.push(format!("{reference} == {value}"));
                }
                if let Some(check) = indexed_glob(expr, source) {
                    equalities.push(check);
                }
                let both_refs = equality(expr).is_some_and(|(l, r)| is_ref(l) && is_ref(r));
                if !both_refs {
                    collect(expr, source, refs);
                }
            }
            Literal::Every { domain, .. } => collect(domain, source, refs),
            Literal::SomeVars { .. } | Literal::SomeIn { .. } | Literal::NotExpr { .. } => {}
        }
    }
}

/// `glob.match(pattern, delimiters, input.ref)` as OPA's index holds it: a constant pattern
/// whose every part between delimiters is `*` or has no glob syntax, constant delimiters (none
/// meaning `.`), a plain `input` reference. The index keeps the rule out when the reference
/// holds no string or one the pattern does not match; the check written for that, to run
/// first: `is_string(input.ref); glob.match(...)`.
fn indexed_glob(expr: &Expr, source: &str) -> Option<String> {
    let Expr::Call { fcn, params, .. } = expr else {
        return None;
    };
    if text_of(fcn, source)? != "glob.match" {
        return None;
    }
    let [pattern, delimiters, reference] = params.as_slice() else {
        return None;
    };
    let (Expr::String { value, .. } | Expr::RawString { value, .. }) = pattern.as_ref() else {
        return None;
    };
    let pattern_text = value.as_string().ok()?.to_string();
    let Expr::Array { items, .. } = delimiters.as_ref() else {
        return None;
    };
    let mut delims = Vec::new();
    for item in items {
        let (Expr::String { value, .. } | Expr::RawString { value, .. }) = item.as_ref() else {
            return None;
        };
        delims.push(value.as_string().ok()?.to_string());
    }
    if !plain_input_ref(reference) {
        return None;
    }
    let splitters: Vec<&str> = if delims.is_empty() {
        vec!["."]
    } else {
        delims.iter().map(String::as_str).collect()
    };
    let mut parts = vec![pattern_text.as_str()];
    for d in splitters.iter().filter(|d| !d.is_empty()) {
        parts = parts.iter().flat_map(|p| p.split(d)).collect();
    }
    let plain = |p: &&str| *p == "*" || !p.contains(['*', '?', '[', ']', '{', '}', '\\']);
    if !parts.iter().all(plain) {
        return None;
    }
    let reference = text_of(reference, source)?;
    Some(format!(
        "is_string({reference}); glob.match({}, {}, {reference})",
        constant_text(pattern, source)?,
        constant_text(delimiters, source)?
    ))
}

/// A scalar, or an array of scalars: a value OPA's index compares a reference with.
fn constant(expr: &Expr) -> bool {
    match expr {
        Expr::Array { items, .. } => items.iter().all(|i| scalar(i)),
        other => scalar(other),
    }
}

fn scalar(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. }
    )
}

fn text_of(expr: &Expr, source: &str) -> Option<String> {
    let span = expr.span();
    source
        .get(span.start as usize..span.end as usize)
        .map(str::to_string)
}

/// A constant written out again: a string as JSON (its span leaves out the quotes), any other
/// scalar as written.
fn constant_text(expr: &Expr, source: &str) -> Option<String> {
    match expr {
        Expr::String { value, .. } | Expr::RawString { value, .. } => {
            serde_json::to_string(value.as_string().ok()?.as_ref()).ok()
        }
        Expr::Array { items, .. } => {
            let items: Option<Vec<String>> =
                items.iter().map(|i| constant_text(i, source)).collect();
            Some(format!("[{}]", items?.join(", ")))
        }
        other => text_of(other, source),
    }
}

/// The two sides of `a == b` or `a = b`.
fn equality(expr: &Expr) -> Option<(&Expr, &Expr)> {
    match expr {
        Expr::BoolExpr {
            op: BoolOp::Eq,
            lhs,
            rhs,
            ..
        }
        | Expr::AssignExpr {
            op: AssignOp::Eq,
            lhs,
            rhs,
            ..
        } => Some((lhs, rhs)),
        _ => None,
    }
}

fn is_ref(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::RefDot { .. } | Expr::RefBrack { .. } | Expr::Var { .. }
    )
}

/// The plain `input` references in `expr`, outside comprehensions.
fn collect(expr: &Expr, source: &str, refs: &mut Vec<String>) {
    match expr {
        Expr::RefDot { .. } | Expr::RefBrack { .. } => {
            if plain_input_ref(expr) {
                let span = expr.span();
                if let Some(text) = source.get(span.start as usize..span.end as usize) {
                    refs.push(text.to_string());
                }
            } else if let Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } = expr
                && !rooted_at_input(refr)
            {
                // A reference with a variable step is not looked up by the index, nor is its
                // `input` prefix (`input.q[_]`); what a reference is taken from may hold
                // references that are (`split(input.t, "-")[1]`).
                collect(refr, source, refs);
            }
        }
        // What a comprehension reads is not looked up for the rule around it.
        Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {}
        _ => {
            let (exprs, _) = super::children(expr);
            exprs.into_iter().for_each(|e| collect(e, source, refs));
        }
    }
}

/// A reference chain starting at `input`, whatever its steps.
fn rooted_at_input(expr: &Expr) -> bool {
    match expr {
        Expr::Var { value, .. } => value.as_string().is_ok_and(|s| s.as_ref() == "input"),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => rooted_at_input(refr),
        _ => false,
    }
}

/// `input` followed by names and numbers only (`input.q.r`, `input.xs[0]`).
fn plain_input_ref(expr: &Expr) -> bool {
    match expr {
        Expr::Var { value, .. } => value.as_string().is_ok_and(|s| s.as_ref() == "input"),
        Expr::RefDot { refr, .. } => plain_input_ref(refr),
        Expr::RefBrack { refr, index, .. } => {
            matches!(index.as_ref(), Expr::Number { .. }) && plain_input_ref(refr)
        }
        _ => false,
    }
}
