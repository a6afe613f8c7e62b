//! Builds the docket component (crates/docket-component) for wasm32-wasip2 and hands its path
//! to this crate as DOCKET_COMPONENT_WASM, so `cargo build -p docket` alone yields a working
//! binary. DOCKET_COMPONENT_WASM_OVERRIDE embeds a given .wasm instead (used to test a planted
//! fault in the component).

use std::env;
use std::path::PathBuf;

fn main() {
    let workspace = docket_build::workspace_root();
    docket_build::rerun_if_changed(
        &workspace,
        &[
            "crates/docket-component",
            "crates/docket-ledger",
            "crates/docket-policy",
            "vendor/regorus",
            "wit",
            "Cargo.lock",
        ],
    );
    println!("cargo:rerun-if-env-changed=DOCKET_COMPONENT_WASM_OVERRIDE");
    let wasm = match env::var("DOCKET_COMPONENT_WASM_OVERRIDE") {
        Ok(path) => PathBuf::from(path),
        Err(_) => docket_build::build_wasm(
            &workspace,
            &docket_build::wasm_target_dir(&workspace),
            "docket-component",
            "wasm32-wasip2",
        ),
    };
    println!("cargo:rustc-env=DOCKET_COMPONENT_WASM={}", wasm.display());
}
