//! `docket check`: parse and load the policies as `docket serve` would, and report every module
//! that does not load (a syntax error, an unsafe variable, a call to a builtin docket does not
//! support), as `opa check` does. Nothing is evaluated or sealed.

use super::load_runtime;
use anyhow::Result;
use docket_server as serve;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Policy (.rego) and data (.json) files or directories, loaded as `docket eval -d` loads
    /// them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> Result<i32> {
    let set = match serve::load_policy_set(&args.paths, None) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(1);
        }
    };
    let runtime = load_runtime()?;
    let mut failures = 0;
    // Each module in an engine of its own: one module's error hides no other's.
    for (id, source) in &set.modules {
        let mut instance = runtime.instantiate()?;
        if let Err(e) = instance.add_policy(id, source) {
            eprintln!("{e}");
            failures += 1;
        }
    }
    if failures == 0 {
        let mut instance = runtime.instantiate()?;
        if let Err(e) = set.load_into(&mut instance) {
            eprintln!("{e}");
            failures += 1;
        }
    }
    if failures > 0 {
        eprintln!(
            "{failures} error{}: fix {} and check again",
            if failures == 1 { "" } else { "s" },
            if failures == 1 { "it" } else { "them" }
        );
        return Ok(1);
    }
    println!(
        "{} module{} and the data load without errors",
        set.modules.len(),
        if set.modules.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}
