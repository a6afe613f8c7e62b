//! Builds the browser verifier (crates/docket-web) for wasm32-unknown-unknown and runs
//! wasm-bindgen on it; the output directory is handed to this crate as DOCKET_WEB_DIR, for the
//! page `docket serve` serves at /ui.

use std::env;
use std::path::PathBuf;

fn main() {
    let workspace = docket_build::workspace_root();
    docket_build::rerun_if_changed(
        &workspace,
        &[
            "crates/docket-web/src",
            "crates/docket-web/Cargo.toml",
            "crates/docket-ledger",
            "Cargo.lock",
        ],
    );
    let web_wasm = docket_build::build_wasm(
        &workspace,
        &docket_build::wasm_target_dir(&workspace),
        "docket-web",
        "wasm32-unknown-unknown",
    );
    let web_dir = PathBuf::from(env::var("OUT_DIR").expect("run by cargo")).join("web");
    std::fs::create_dir_all(&web_dir).expect("create OUT_DIR/web");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&web_wasm)
        .web(true)
        .expect("wasm-bindgen web mode")
        .typescript(false)
        .generate(&web_dir)
        .unwrap_or_else(|e| panic!("wasm-bindgen on {}: {e}", web_wasm.display()));
    println!("cargo:rustc-env=DOCKET_WEB_DIR={}", web_dir.display());
}
