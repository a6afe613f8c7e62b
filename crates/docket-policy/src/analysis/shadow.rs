//! A comprehension that declares with `some` a variable the rule around it also uses.
//!
//! In OPA the comprehension's `some x` is a new variable that shadows the rule's `x`:
//!
//! ```text
//! r contains x if { some x in input.xs; count([x | some x in [1]; x > 0]) > 0 }
//! ```
//!
//! is `[5]` for `xs = [5]`. regorus's scheduler refuses it (`var x used before definition`), and
//! refuses it for the whole package, so every query of the module fails. docket renames the
//! comprehension's variable (`__docket_s1`) throughout the comprehension, in the text the
//! interpreter runs; a comprehension inside it that declares the name again keeps its own.

use super::children;
use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};
use std::collections::BTreeSet;

/// Prefix of the names the rewrite introduces.
const RENAMED: &str = "__docket_s";

/// The renames `module` needs: byte ranges of variable occurrences and their new names.
pub(super) fn find(module: &Module, source: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut counter = 0;
    for rule in &module.policy {
        let Rule::Spec { head, bodies, .. } = rule.as_ref() else {
            continue;
        };
        let mut outer = BTreeSet::new();
        let mut comprehensions = Vec::new();
        let head_exprs: Vec<&Expr> = match head {
            RuleHead::Compr { refr, assign, .. } => {
                let mut v = vec![refr.as_ref()];
                v.extend(assign.iter().map(|a| a.value.as_ref()));
                v
            }
            RuleHead::Set { refr, key, .. } => {
                let mut v = vec![refr.as_ref()];
                v.extend(key.iter().map(|k| k.as_ref()));
                v
            }
            RuleHead::Func {
                refr, args, assign, ..
            } => {
                let mut v = vec![refr.as_ref()];
                v.extend(args.iter().map(|a| a.as_ref()));
                v.extend(assign.iter().map(|a| a.value.as_ref()));
                v
            }
        };
        for e in head_exprs {
            outside(e, source, &mut outer, &mut comprehensions);
        }
        for body in bodies {
            if let Some(a) = &body.assign {
                outside(&a.value, source, &mut outer, &mut comprehensions);
            }
            query_outside(&body.query, source, &mut outer, &mut comprehensions);
        }
        for c in comprehensions {
            comprehension(c, source, &outer, &mut counter, &mut out);
        }
    }
    out
}

/// The text with the renames applied.
pub(super) fn rewrite(source: &str, mut renames: Vec<(usize, usize, String)>) -> String {
    renames.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    renames.dedup_by_key(|(start, _, _)| *start);
    let mut out = source.to_string();
    for (start, end, name) in renames {
        if start <= end && end <= out.len() {
            out.replace_range(start..end, &name);
        }
    }
    out
}

fn text<'a>(source: &'a str, span: &regorus::unstable::Span) -> &'a str {
    source
        .get(span.start as usize..span.end as usize)
        .unwrap_or_default()
}

/// Variable names used outside comprehensions, and the comprehensions found.
fn outside<'m>(
    expr: &'m Expr,
    source: &str,
    names: &mut BTreeSet<String>,
    found: &mut Vec<&'m Expr>,
) {
    match expr {
        Expr::Var { span, .. } => {
            names.insert(text(source, span).to_string());
        }
        Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {
            found.push(expr)
        }
        _ => {
            let (exprs, queries) = children(expr);
            for e in exprs {
                outside(e, source, names, found);
            }
            for q in queries {
                query_outside(q, source, names, found);
            }
        }
    }
}

fn query_outside<'m>(
    query: &'m Query,
    source: &str,
    names: &mut BTreeSet<String>,
    found: &mut Vec<&'m Expr>,
) {
    let parts = parts(query);
    names.extend(parts.declared.iter().map(|v| text(source, v).to_string()));
    parts
        .exprs
        .into_iter()
        .for_each(|e| outside(e, source, names, found));
    parts
        .queries
        .into_iter()
        .for_each(|q| query_outside(q, source, names, found));
}

/// What a query's literals hold: the variables `some x` declares (their spans), the
/// expressions (`with` values included) and the queries of `every`.
struct Parts<'m> {
    declared: Vec<&'m regorus::unstable::Span>,
    exprs: Vec<&'m Expr>,
    queries: Vec<&'m Query>,
}

fn parts(query: &Query) -> Parts<'_> {
    let mut p = Parts {
        declared: Vec::new(),
        exprs: Vec::new(),
        queries: Vec::new(),
    };
    for stmt in &query.stmts {
        p.exprs
            .extend(stmt.with_mods.iter().map(|w| w.r#as.as_ref()));
        match &stmt.literal {
            Literal::SomeVars { vars, .. } => p.declared.extend(vars.iter()),
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                p.exprs.extend(key.iter().map(|k| k.as_ref()));
                p.exprs.push(value);
                p.exprs.push(collection);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => p.exprs.push(expr),
            Literal::Every { domain, query, .. } => {
                p.exprs.push(domain);
                p.queries.push(query);
            }
        }
    }
    p
}

/// Renames, inside comprehension `c`, the variables its query declares with `some` that are
/// also used around it; then does the same for the comprehensions inside it.
fn comprehension(
    c: &Expr,
    source: &str,
    around: &BTreeSet<String>,
    counter: &mut usize,
    out: &mut Vec<(usize, usize, String)>,
) {
    let (terms, query): (Vec<&Expr>, &Query) = match c {
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            (vec![term.as_ref()], query.as_ref())
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => (vec![key.as_ref(), value.as_ref()], query.as_ref()),
        _ => return,
    };
    let declared = declared(query, source);
    // Everything used in this comprehension (outside the ones inside it) is "around" them.
    let mut inner_names = around.clone();
    let mut inner = Vec::new();
    for t in &terms {
        outside(t, source, &mut inner_names, &mut inner);
    }
    query_outside(query, source, &mut inner_names, &mut inner);
    for name in declared.intersection(around) {
        *counter += 1;
        let fresh = format!("{RENAMED}{counter}");
        let mut spans = Vec::new();
        for t in &terms {
            occurrences(t, name, source, &mut spans);
        }
        query_occurrences(query, name, source, &mut spans);
        out.extend(spans.into_iter().map(|(s, e)| (s, e, fresh.clone())));
    }
    for c in inner {
        comprehension(c, source, &inner_names, counter, out);
    }
}

/// The names a query declares with `some`.
fn declared(query: &Query, source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { vars, .. } => {
                names.extend(vars.iter().map(|v| text(source, v).to_string()))
            }
            Literal::SomeIn { key, value, .. } => {
                for e in key.iter().chain(std::iter::once(value)) {
                    if let Expr::Var { span, .. } = e.as_ref() {
                        names.insert(text(source, span).to_string());
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// Where `name` occurs, not counting comprehensions that declare it again.
fn occurrences(expr: &Expr, name: &str, source: &str, spans: &mut Vec<(usize, usize)>) {
    match expr {
        Expr::Var { span, .. } if text(source, span) == name => {
            spans.push((span.start as usize, span.end as usize))
        }
        Expr::ArrayCompr { query, .. }
        | Expr::SetCompr { query, .. }
        | Expr::ObjectCompr { query, .. }
            if declared(query, source).contains(name) => {}
        _ => {
            let (exprs, queries) = children(expr);
            for e in exprs {
                occurrences(e, name, source, spans);
            }
            for q in queries {
                query_occurrences(q, name, source, spans);
            }
        }
    }
}

fn query_occurrences(query: &Query, name: &str, source: &str, spans: &mut Vec<(usize, usize)>) {
    let parts = parts(query);
    for v in parts.declared {
        if text(source, v) == name {
            spans.push((v.start as usize, v.end as usize));
        }
    }
    parts
        .exprs
        .into_iter()
        .for_each(|e| occurrences(e, name, source, spans));
    parts
        .queries
        .into_iter()
        .for_each(|q| query_occurrences(q, name, source, spans));
}
