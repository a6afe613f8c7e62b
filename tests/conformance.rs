//! docket decides as the real OPA engine does: the conformance suite (`tests/conformance/`,
//! docs/conformance.md) through the policy crate natively and through the component in wasmtime.
//!
//! Each run prints agreement per policy and overall, and every difference with an example. It
//! fails when any policy agrees on fewer decisions than `tests/conformance/level.json` records
//! (docs/conformance.md names every remaining difference). After an improvement, record the
//! new level with
//! `DOCKET_CONFORMANCE_RECORD=1 cargo test --release -p docket-tests --test cross conformance::`.

#[path = "conformance/suite.rs"]
mod suite;

use docket_policy::{PathCounts, PolicyEngine};
use docket_runtime::{Runtime, Verdict};
use suite::{Outcome, Report, Suite};

fn native_engine(suite: &Suite, vm: bool) -> PolicyEngine {
    let mut engine = PolicyEngine::new();
    engine.set_vm_enabled(vm);
    for (id, source) in &suite.modules {
        engine.add_policy(id, source).unwrap();
    }
    engine.add_data(&suite.data).unwrap();
    engine
}

/// The native run's report, every answer in the suite's order, and which path gave them.
struct NativeRun {
    report: Report,
    answers: Vec<(String, String, Outcome)>,
    paths: PathCounts,
}

/// Through the policy crate natively: on the VM path where docket chooses it (`vm`), or on the
/// interpreter alone.
fn run_native(suite: &Suite, vm: bool) -> NativeRun {
    let mut engine = native_engine(suite, vm);
    let mut answers = Vec::new();
    let mut paths = PathCounts::default();
    let report = suite::run(suite, |path, input| {
        // A panic inside regorus is a trap in the component; natively it is caught here so the
        // suite reports it as a difference instead of stopping.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.evaluate(path, Some(input))
        }));
        let outcome = match answer {
            Ok(answer) => Outcome::from_docket(answer.map(|d| d.result).map_err(|e| e.to_string())),
            Err(_) => {
                let counts = engine.path_counts();
                paths.vm += counts.vm;
                paths.interpreter += counts.interpreter;
                paths.fallback += counts.fallback;
                engine = native_engine(suite, vm);
                Outcome::Error("panic in the policy engine".into())
            }
        };
        answers.push((path.to_string(), input.to_string(), outcome.clone()));
        outcome
    });
    let counts = engine.path_counts();
    paths.vm += counts.vm;
    paths.interpreter += counts.interpreter;
    paths.fallback += counts.fallback;
    NativeRun {
        report,
        answers,
        paths,
    }
}

/// The VM path is used only where it answers as the interpreter does: on every decision of the
/// suite, docket with the VM path gives exactly the interpreter's answer (values, undefined,
/// and errors with their messages), and the VM answers most of them.
#[test]
fn the_vm_path_answers_exactly_as_the_interpreter() {
    let suite = Suite::load();
    let interpreter = run_native(&suite, false);
    let with_vm = run_native(&suite, true);
    assert_eq!(interpreter.paths.vm, 0);
    let mut differences = Vec::new();
    for ((path, input, expected), (_, _, got)) in interpreter.answers.iter().zip(&with_vm.answers) {
        if expected != got {
            differences.push(format!(
                "{path} on {}\n    interpreter: {}\n    with VM:     {}",
                suite::truncate(input, 160),
                expected.short(),
                got.short()
            ));
        }
    }
    let PathCounts {
        vm,
        interpreter: interp,
        fallback,
    } = with_vm.paths;
    let total = (vm + interp + fallback).max(1);
    println!(
        "evaluation paths over {} documents: VM {vm} ({:.1}%), interpreter {interp} ({:.1}%), \
         VM error then interpreter {fallback} ({:.1}%)",
        total,
        100.0 * vm as f64 / total as f64,
        100.0 * interp as f64 / total as f64,
        100.0 * fallback as f64 / total as f64,
    );
    assert!(
        differences.is_empty(),
        "{} decisions differ between the VM path and the interpreter:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

fn run_component(suite: &Suite) -> Report {
    let cache = std::env::temp_dir().join("docket-test-component-cache");
    let runtime = Runtime::new(Some(&cache)).unwrap();
    let fresh_instance = || {
        let mut instance = runtime.instantiate().unwrap();
        for (id, source) in &suite.modules {
            instance.add_policy(id, source).unwrap();
        }
        instance.add_data(&suite.data).unwrap();
        instance
    };
    let mut instance = fresh_instance();
    suite::run(suite, |path, input| {
        match instance.evaluate(path, Some(input)).verdict() {
            Ok(answer) => {
                Outcome::from_docket(answer.map(|d| d.result).map_err(|e| format!("{e:?}")))
            }
            // A trap (a limit) ends the instance: count it as an error and continue in a new one.
            Err(trap) => {
                instance = fresh_instance();
                Outcome::Error(format!("trap: {trap:#}"))
            }
        }
    })
}

#[test]
fn docket_agrees_with_opa_on_the_conformance_suite() {
    let suite = Suite::load();
    assert!(
        suite.decisions() > 10_000,
        "the suite's expected files are missing"
    );
    let mut levels = suite::Levels::load();

    let native = run_native(&suite, true).report;
    native.print("native");
    let component = run_component(&suite);
    component.print("component");

    // The component runs the same crate: it must give the same answers, difference for
    // difference, not merely the same score.
    let native_diffs: Vec<_> = native
        .differences
        .iter()
        .map(|d| (&d.query, &d.input))
        .collect();
    let component_diffs: Vec<_> = component
        .differences
        .iter()
        .map(|d| (&d.query, &d.input))
        .collect();
    assert_eq!(
        native_diffs, component_diffs,
        "the component and the native crate differ from OPA on different decisions"
    );

    let mut failures = levels.check("native", &native);
    failures.extend(levels.check("component", &component));
    levels.save();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
