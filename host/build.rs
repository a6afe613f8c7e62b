//! Builds the docket component (crates/docket-component) for wasm32-wasip2 and hands its path
//! to the host as DOCKET_COMPONENT_WASM, so `cargo build -p docket` alone yields a working
//! binary. The nested cargo uses its own target directory (`<target>/wasm`) so it never waits
//! on the lock of the build that runs this script.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "component";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in [
        "crates/docket-component",
        "crates/docket-ledger",
        "crates/docket-policy",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=DOCKET_COMPONENT_WASM_OVERRIDE");
    if let Ok(path) = env::var("DOCKET_COMPONENT_WASM_OVERRIDE") {
        println!("cargo:rustc-env=DOCKET_COMPONENT_WASM={path}");
        return;
    }

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
    let wasm_target_dir = target_root.join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    ensure_target_installed();

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--package",
            "docket-component",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .env("CARGO_TARGET_DIR", &wasm_target_dir);
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
        .expect("failed to run cargo for the docket component");
    assert!(
        status.success(),
        "building the docket component for {TARGET} failed"
    );

    let wasm = wasm_target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("docket_component.wasm");
    assert!(
        wasm.exists(),
        "the component build did not produce {}",
        wasm.display()
    );
    println!("cargo:rustc-env=DOCKET_COMPONENT_WASM={}", wasm.display());
}

/// rustup does not always install the targets named in rust-toolchain.toml; add it if missing.
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()));
    if libdir.as_deref().is_some_and(Path::exists) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} Rust target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed; run it by hand"
        );
    }
}
