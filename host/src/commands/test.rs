//! `docket test`: run the policies' Rego tests as `opa test` runs them. Nothing is sealed.
//!
//! A test is a rule (not a function) whose name starts with `test_`, in any loaded module; it
//! passes when its value is `true`, fails when it is anything else or undefined, and is an error
//! when its evaluation fails. `todo_test_` rules are skipped, as OPA skips them.

use super::load_runtime;
use anyhow::{Context, Result, anyhow};
use docket_server as serve;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Policy (.rego) and data (.json) files or directories, loaded as `docket eval -d`
    /// and `opa test` load them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print every test's result, and the `print()` output of each, not only the failures.
    #[arg(short, long)]
    verbose: bool,
    /// Run only the tests whose name (`data.pkg.test_x`) this regular expression matches.
    #[arg(short, long)]
    run: Option<String>,
}

enum Outcome {
    Pass,
    /// The value the test had instead of `true`; `None` for undefined.
    Fail(Option<String>),
    Error(String),
}

struct TestResult {
    name: String,
    outcome: Outcome,
    took: Duration,
    prints: Vec<String>,
}

const RULE: &str =
    "--------------------------------------------------------------------------------";

pub fn run(args: TestArgs) -> Result<i32> {
    let filter = args
        .run
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| anyhow!("--run is not a regular expression: {e}"))?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate()?;
    let set = serve::load_policy_set(&args.paths, None)?;
    set.load_into(&mut instance)
        .map_err(|e| anyhow!("the policies do not load: {e}; fix them and retry"))?;
    let (tests, skipped) = instance.test_rules()?;
    let name = |path: &str| format!("data.{}", path.replace('/', "."));
    let selected = |path: &&String| filter.as_ref().is_none_or(|f| f.is_match(&name(path)));
    let tests: Vec<&String> = tests.iter().filter(selected).collect();
    let skipped: Vec<&String> = skipped.iter().filter(selected).collect();
    if tests.is_empty() && skipped.is_empty() {
        println!("no tests found (rules named test_*)");
        return Ok(0);
    }

    instance.gather_prints(true)?;
    let mut results = Vec::with_capacity(tests.len());
    for path in tests {
        let started = Instant::now();
        let decision = instance.evaluate(path, None);
        let took = started.elapsed();
        let prints = instance.take_prints()?;
        let outcome = match decision {
            Ok(d) if d.result.as_deref() == Some("true") => Outcome::Pass,
            Ok(d) => Outcome::Fail(d.result),
            Err(e) => Outcome::Error(e.to_string()),
        };
        results.push(TestResult {
            name: name(path),
            outcome,
            took,
            prints,
        });
    }

    let failed: Vec<&TestResult> = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Pass))
        .collect();
    if !failed.is_empty() && !args.verbose {
        println!("FAILURES\n{RULE}");
        for r in &failed {
            print_result(r, true);
        }
        println!("SUMMARY\n{RULE}");
    }
    for r in &results {
        if args.verbose || !matches!(r.outcome, Outcome::Pass) {
            print_result(r, args.verbose);
        }
    }
    for path in &skipped {
        println!("{}: SKIPPED", name(path));
    }
    let count = |pass: bool, error: bool| {
        results
            .iter()
            .filter(|r| match r.outcome {
                Outcome::Pass => pass,
                Outcome::Fail(_) => !pass && !error,
                Outcome::Error(_) => error,
            })
            .count()
    };
    let total = results.len() + skipped.len();
    println!("{RULE}");
    for (label, n) in [
        ("PASS", count(true, false)),
        ("FAIL", count(false, false)),
        ("SKIPPED", skipped.len()),
        ("ERROR", count(false, true)),
    ] {
        if n > 0 {
            println!("{label}: {n}/{total}");
        }
    }
    std::io::Write::flush(&mut std::io::stdout()).context("writing the results")?;
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn print_result(r: &TestResult, details: bool) {
    let took = format!("{:.3}ms", r.took.as_secs_f64() * 1000.0);
    match &r.outcome {
        Outcome::Pass => println!("{}: PASS ({took})", r.name),
        Outcome::Fail(value) => {
            println!("{}: FAIL ({took})", r.name);
            if details {
                match value {
                    Some(v) => println!("  its value is {v}, not true"),
                    None => println!("  it is undefined"),
                }
            }
        }
        Outcome::Error(e) => {
            println!("{}: ERROR ({took})", r.name);
            if details {
                for line in e.lines() {
                    println!("  {line}");
                }
            }
        }
    }
    if details {
        for line in &r.prints {
            println!("  {line}");
        }
    }
}
