//! OPA's evaluation order for the operands of a negated literal.
//!
//! OPA's compiler binds the dynamic operands of an expression to variables before the
//! expression (its `rewriteDynamics` and `expandExpr` stages), and for `not <expr>` those
//! bindings stay outside the negation. So when an operand is undefined the whole body is
//! undefined: `not startswith(input.user, "svc-")` with no `input.user` is undefined in OPA,
//! where regorus negates the undefined call and answers `true`.
//!
//! docket makes the same binding in the text it hands regorus:
//!
//! ```text
//! not startswith(input.user, "svc-")
//! __docket_n1 := input.user; not startswith(__docket_n1, "svc-")
//! ```
//!
//! Which operands OPA binds, checked against the real engine (v1.20):
//!
//! - a call (`startswith(..)`, `!=`, `<`, `in`, `+`, a module's function): every argument
//!   that is a reference, a call, or a collection holding one;
//! - unification (`=`, and `==`, which OPA rewrites to `=`): on each side, the bracketed
//!   operands of a reference (`data.users[input.user]` binds `input.user`) or, if the side is
//!   not a reference, the side as an argument (`[input.x] == [1]` binds `input.x`);
//! - a lone reference (`not data.users[input.user]`): its bracketed operands; `not input.x`
//!   itself binds nothing and stays `true` when `input.x` is undefined;
//! - a call nested anywhere in the expression (`not lower(input.x) == "a"`).
//!
//! Comprehension bodies are queries of their own and are rewritten there. Binding only the
//! outermost such operand is enough: an operand is undefined exactly when something it
//! contains is. A `with` on the literal is repeated on each binding, as OPA does. OPA refuses
//! unbound variables inside `not`, so a binding never iterates.

use regorus::unstable::{AssignOp, BoolOp, Expr, Literal, LiteralStmt, Query};

/// Prefix of the variables the rewrite introduces.
pub(super) const BOUND_OPERAND: &str = "__docket_n";

/// One negated literal to rewrite, as byte ranges of the text it was found in.
pub(super) struct Negation {
    /// The literal with its `with` modifiers.
    literal: (usize, usize),
    /// The operands to bind, outermost only, in source order.
    operands: Vec<(usize, usize)>,
    /// The literal's `with` modifiers, repeated on each binding.
    modifiers: Vec<(usize, usize)>,
    /// A rule body written as a single literal after `if` needs braces to hold the bindings.
    needs_braces: bool,
}

/// The negated literal in `stmt`, if it has operands to bind.
pub(super) fn negation(stmt: &LiteralStmt, in_rule_body_without_braces: bool) -> Option<Negation> {
    let Literal::NotExpr { expr, .. } = &stmt.literal else {
        return None;
    };
    let mut operands = Vec::new();
    negated_expression(expr, &mut operands);
    if operands.is_empty() {
        return None;
    }
    let modifiers: Vec<_> = stmt.with_mods.iter().map(|w| range(&w.span)).collect();
    let (start, mut end) = range(&stmt.span);
    end = modifiers.iter().map(|m| m.1).fold(end, usize::max);
    Some(Negation {
        literal: (start, end),
        operands,
        modifiers,
        needs_braces: in_rule_body_without_braces,
    })
}

/// Whether a query is a rule body written without braces (`allow if not f(input.x)`).
pub(super) fn unbraced(source: &str, query: &Query) -> bool {
    source.as_bytes().get(query.span.start as usize) != Some(&b'{')
}

/// Rewrites the negations whose literals do not overlap (an inner one inside an operand of an
/// outer one waits for the next pass); `counter` numbers the variables across passes.
///
/// `checked`: each binding is followed by a check that it holds a value (`x == x`). The
/// interpreter does not need it; regorus's bytecode VM does, because its `x := <undefined>`
/// succeeds when `x` is used only inside the negation.
pub(super) fn rewrite(
    source: &str,
    negations: &[Negation],
    counter: &mut usize,
    checked: bool,
) -> String {
    let mut chosen: Vec<&Negation> = Vec::new();
    for n in negations {
        let overlaps = chosen
            .iter()
            .any(|c| n.literal.0 < c.literal.1 && c.literal.0 < n.literal.1);
        if !overlaps {
            chosen.push(n);
        }
    }
    chosen.sort_by_key(|n| n.literal.0);
    let mut out = String::with_capacity(source.len() + 64 * chosen.len());
    let mut copied = 0;
    for n in chosen {
        out.push_str(&source[copied..n.literal.0]);
        let with: String = n
            .modifiers
            .iter()
            .map(|&(s, e)| format!(" {}", &source[s..e]))
            .collect();
        let mut bindings = String::new();
        let mut literal = String::new();
        let mut at = n.literal.0;
        for &(s, e) in &n.operands {
            *counter += 1;
            let name = format!("{BOUND_OPERAND}{counter}");
            bindings.push_str(&format!("{name} := {}{with}; ", &source[s..e]));
            if checked {
                bindings.push_str(&format!("{name} == {name}; "));
            }
            literal.push_str(&source[at..s]);
            literal.push_str(&name);
            at = e;
        }
        literal.push_str(&source[at..n.literal.1]);
        if n.needs_braces {
            out.push_str(&format!("{{ {bindings}{literal} }}"));
        } else {
            out.push_str(&bindings);
            out.push_str(&literal);
        }
        copied = n.literal.1;
    }
    out.push_str(&source[copied..]);
    out
}

/// A span's byte range, widened over the quotes of a string at either end: regorus's string
/// tokens span their contents only.
fn range(span: &regorus::unstable::Span) -> (usize, usize) {
    let text = span.source.contents().as_bytes();
    let is_quote = |i: usize| matches!(text.get(i), Some(b'"' | b'`'));
    let (mut start, mut end) = (span.start as usize, span.end as usize);
    if start > 0 && is_quote(start - 1) {
        start -= 1;
    }
    if is_quote(end) {
        end += 1;
    }
    (start, end)
}

/// The top level of a negated expression: a call, a unification or a lone term.
fn negated_expression(expr: &Expr, operands: &mut Vec<(usize, usize)>) {
    match expr {
        Expr::AssignExpr {
            op: AssignOp::Eq,
            lhs,
            rhs,
            ..
        }
        | Expr::BoolExpr {
            op: BoolOp::Eq,
            lhs,
            rhs,
            ..
        } => {
            unification_side(lhs, operands);
            unification_side(rhs, operands);
        }
        Expr::Call { params, .. } => params.iter().for_each(|p| argument(p, operands)),
        Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::BinExpr { lhs, rhs, .. } => {
            argument(lhs, operands);
            argument(rhs, operands);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                argument(k, operands);
            }
            argument(value, operands);
            argument(collection, operands);
        }
        other => unification_side(other, operands),
    }
}

/// A reference binds its bracketed operands; a comprehension nothing; anything else is bound
/// as an argument.
fn unification_side(expr: &Expr, operands: &mut Vec<(usize, usize)>) {
    match expr {
        Expr::RefDot { .. } | Expr::RefBrack { .. } => reference_operands(expr, operands),
        // A bare name is a reference without brackets (`not g`, `not g = 1`): nothing to bind.
        Expr::Var { .. } => {}
        Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {}
        other => argument(other, operands),
    }
}

fn reference_operands(expr: &Expr, operands: &mut Vec<(usize, usize)>) {
    match expr {
        Expr::RefDot { refr, .. } => reference_operands(refr, operands),
        Expr::RefBrack { refr, index, .. } => {
            reference_operands(refr, operands);
            argument(index, operands);
        }
        // A name as the subject (`input.x`, `w.y`, `v[0]`) is the reference's root: nothing to
        // bind (`not input.x` is `true` when `input.x` is undefined).
        Expr::Var { .. } => {}
        // The subject of a reference (`f(x)[0]`, `[1, 2][i]`) is bound when it is dynamic.
        other => argument(other, operands),
    }
}

/// An operand in argument position: references and calls are bound; collections are looked
/// into; scalars and comprehensions stay. A variable is bound too: a bare rule name is a
/// reference to the rule (`w` is `data.p.w`), which OPA binds like any other, so `not
/// startswith(w, "M")` is undefined when `w` is; a local variable is always bound when the
/// negation is reached, so binding it changes nothing.
fn argument(expr: &Expr, operands: &mut Vec<(usize, usize)>) {
    match expr {
        // `_` never is, and a variable of this rewrite already holds a bound operand.
        Expr::Var { span, .. } if span.text() != "_" && !span.text().starts_with(BOUND_OPERAND) => {
            operands.push(range(span))
        }
        Expr::RefDot { span, .. }
        | Expr::RefBrack { span, .. }
        | Expr::Call { span, .. }
        | Expr::BoolExpr { span, .. }
        | Expr::ArithExpr { span, .. }
        | Expr::BinExpr { span, .. }
        | Expr::Membership { span, .. } => operands.push(range(span)),
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().for_each(|i| argument(i, operands))
        }
        Expr::Object { fields, .. } => {
            for (_, key, value) in fields {
                argument(key, operands);
                argument(value, operands);
            }
        }
        Expr::UnaryExpr { expr, .. } => argument(expr, operands),
        Expr::String { .. }
        | Expr::RawString { .. }
        | Expr::Number { .. }
        | Expr::Bool { .. }
        | Expr::Null { .. }
        | Expr::Var { .. }
        | Expr::AssignExpr { .. }
        | Expr::ArrayCompr { .. }
        | Expr::SetCompr { .. }
        | Expr::ObjectCompr { .. } => {}
    }
}
