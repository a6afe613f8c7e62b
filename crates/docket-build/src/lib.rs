//! Build-script helpers shared by the crates that embed a wasm build of another workspace crate:
//! `docket-runtime` embeds the component (wasm32-wasip2), `docket-server` the browser verifier
//! (wasm32-unknown-unknown). The nested cargo uses its own target directory (`<target>/wasm`)
//! so it never waits on the lock of the build that runs the build script.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile wasm builds use (`[profile.component]` in the workspace manifest).
pub const PROFILE: &str = "component";

/// The workspace root, from the calling crate's `CARGO_MANIFEST_DIR` (`crates/<name>`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists() || dir.join("wit").is_dir())
        .expect("the crate lives inside the docket workspace")
        .to_path_buf()
}

/// Asks cargo to rerun the build script when anything under these workspace paths changes.
///
/// The paths are given relative to the calling crate (cargo resolves them against the package
/// root), not absolute: a target directory shared by two checkouts (CI's cache, a fresh clone
/// beside a working copy) would otherwise watch the files of whichever checkout built last, and
/// embed a stale component in the other.
pub fn rerun_if_changed(workspace: &Path, watched: &[&str]) {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let depth = manifest_dir
        .strip_prefix(workspace)
        .expect("the crate lives inside the workspace")
        .components()
        .count();
    let up = "../".repeat(depth);
    for path in watched {
        println!("cargo:rerun-if-changed={up}{path}");
    }
}

/// `<target>/wasm`: the outer build's target directory (CARGO_TARGET_DIR or `<workspace>/target`)
/// with `wasm` appended.
pub fn wasm_target_dir(workspace: &Path) -> PathBuf {
    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace.join(p)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    target_root.join("wasm")
}

/// `cargo build -p <package> --target <target> --profile component` in the nested target dir;
/// returns the .wasm.
pub fn build_wasm(
    workspace: &Path,
    wasm_target_dir: &Path,
    package: &str,
    target: &str,
) -> PathBuf {
    ensure_target_installed(target);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--package",
            package,
            "--target",
            target,
            "--profile",
            PROFILE,
        ])
        .env("CARGO_TARGET_DIR", wasm_target_dir);
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("failed to run cargo for {package}: {e}"));
    assert!(status.success(), "building {package} for {target} failed");
    let wasm = wasm_target_dir
        .join(target)
        .join(PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        wasm.exists(),
        "the {package} build did not produce {}",
        wasm.display()
    );
    wasm
}

/// rustup does not always install the targets named in rust-toolchain.toml; add it if missing.
pub fn ensure_target_installed(target: &str) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()));
    if libdir.as_deref().is_some_and(Path::exists) {
        return;
    }
    println!("cargo:warning=installing the {target} Rust target (rustup target add {target})");
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        panic!(
            "the {target} target is missing and `rustup target add {target}` failed; run it by hand"
        );
    }
}
