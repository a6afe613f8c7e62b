// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

use anyhow::Result;
use std::path::Path;

fn main() -> Result<()> {
    // Copy hooks to appropriate location so that git will run them.
    // In git worktrees, .git is a symlink and the following commands fail.
    if Path::new(".git").is_dir() {
        if !Path::new("./.git/hooks").exists() {
            std::fs::create_dir_all("./.git/hooks")?;
        }
        std::fs::copy("./scripts/pre-commit", "./.git/hooks/pre-commit")?;
        std::fs::copy("./scripts/pre-push", "./.git/hooks/pre-push")?;
    }

    // Supply information as compile-time environment variables.
    #[cfg(feature = "opa-runtime")]
    {
        // Allow build systems (e.g. vcpkg, CI) to inject the commit hash directly
        // via a GIT_HASH environment variable. If not set, attempt to read it from
        // git. Fall back to "unknown" when git is unavailable or there is no .git
        // directory (e.g. builds from source tarballs).
        // docket patch: never ask git. This copy lives inside docket's repository, where
        // `git rev-parse HEAD` would give docket's commit, changing `opa.runtime()` (and the
        // component's bytes) with every docket commit. The crates.io build says "unknown".
        let git_hash = std::env::var("GIT_HASH").unwrap_or_else(|_| "unknown".to_string());
        println!("cargo:rustc-env=GIT_HASH={git_hash}");
    }

    // Rerun only if build.rs changes.
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
