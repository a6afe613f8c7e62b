//! Builds the docket component (crates/docket-component) for wasm32-wasip2 and hands its path
//! to the host as DOCKET_COMPONENT_WASM, so `cargo build -p docket` alone yields a working
//! binary. It also builds the browser verifier (crates/docket-web) for wasm32-unknown-unknown
//! and runs wasm-bindgen on it (DOCKET_WEB_DIR), for the page `docket serve` serves at /ui.
//! The nested cargo uses its own target directory (`<target>/wasm`) so it never waits on the
//! lock of the build that runs this script.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const WEB_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "component";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in [
        "crates/docket-component",
        "crates/docket-web/src",
        "crates/docket-web/Cargo.toml",
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

    let wasm = match env::var("DOCKET_COMPONENT_WASM_OVERRIDE") {
        Ok(path) => PathBuf::from(path),
        Err(_) => build_wasm(&workspace, &wasm_target_dir, "docket-component", TARGET),
    };
    println!("cargo:rustc-env=DOCKET_COMPONENT_WASM={}", wasm.display());

    let web_wasm = build_wasm(&workspace, &wasm_target_dir, "docket-web", WEB_TARGET);
    let web_dir = PathBuf::from(env::var("OUT_DIR").unwrap()).join("web");
    std::fs::create_dir_all(&web_dir).unwrap();
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&web_wasm)
        .web(true)
        .expect("wasm-bindgen web mode")
        .typescript(false)
        .generate(&web_dir)
        .unwrap_or_else(|e| panic!("wasm-bindgen on {}: {e}", web_wasm.display()));
    println!("cargo:rustc-env=DOCKET_WEB_DIR={}", web_dir.display());
}

/// `cargo build -p <package> --target <target> --profile component` in the nested target dir;
/// returns the .wasm.
fn build_wasm(workspace: &Path, wasm_target_dir: &Path, package: &str, target: &str) -> PathBuf {
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
fn ensure_target_installed(target: &str) {
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
