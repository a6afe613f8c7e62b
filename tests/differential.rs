//! `docket-differential`: docket's side of the differential tester (`tests/differential/run.py`).
//!
//! Reads cases as JSON lines on standard input, `{"module": <Rego text>, "path": "pkg/rule",
//! "input": <JSON value, absent for none>}`, evaluates each with docket's policy crate natively
//! (the code the component is built from; the VM path where docket chooses it), and writes one
//! line per case: `{"value": v}`, `{"undefined": true}` or `{"error": "<message>"}`, the shapes
//! of the conformance suite's expected answers (docs/conformance.md). A module that does not load
//! answers every query on it with its error. Consecutive cases with the same module share one
//! engine, so a generator that writes a module's queries together pays for one load. Inputs
//! and values pass as their exact JSON text, so a number is never rounded on the way.

use docket_policy::PolicyEngine;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::io::{BufRead, BufWriter, Write};

#[derive(Deserialize)]
struct Case<'a> {
    #[serde(default)]
    module: String,
    #[serde(default)]
    path: String,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

fn main() {
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut loaded: Option<(String, Result<PolicyEngine, String>)> = None;
    for line in stdin.lines() {
        let line = line.expect("reading standard input");
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = match serde_json::from_str(&line) {
            Ok(case) => case,
            Err(e) => {
                eprintln!("docket-differential: a line is not JSON ({e}); each line is one case");
                std::process::exit(2);
            }
        };
        let Case {
            module,
            path,
            input,
        } = case;
        let path = path.as_str();
        let input = input.map(RawValue::get);
        if loaded.as_ref().is_none_or(|(m, _)| *m != module) {
            let mut engine = PolicyEngine::new();
            let engine = engine
                .add_policy("case.rego", &module)
                .map(|_| engine)
                .map_err(|e| e.to_string());
            loaded = Some((module, engine));
        }
        let answer = match &mut loaded.as_mut().expect("loaded above").1 {
            Err(e) => json!({ "error": e }),
            Ok(engine) => {
                // A panic inside regorus is a trap in the component: an error, not the end.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    engine.evaluate(path, input)
                }));
                match result {
                    Ok(Ok(decision)) => match decision.result {
                        // The value's own text: `json!` would read its numbers as `f64`s.
                        Some(text) => match RawValue::from_string(text) {
                            Ok(raw) => {
                                writeln!(out, r#"{{"value":{}}}"#, raw.get())
                                    .expect("writing standard output");
                                out.flush().expect("writing standard output");
                                continue;
                            }
                            Err(e) => json!({ "value": format!("not JSON: {e}") }),
                        },
                        None => json!({ "undefined": true }),
                    },
                    Ok(Err(e)) => json!({ "error": e.to_string() }),
                    Err(_) => {
                        // The engine's state is not to be trusted after a panic.
                        loaded = None;
                        json!({ "error": "panic in the policy engine" })
                    }
                }
            }
        };
        writeln!(out, "{answer}").expect("writing standard output");
        out.flush().expect("writing standard output");
    }
}
