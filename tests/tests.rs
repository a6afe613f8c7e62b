//! Cross-crate tests, one binary with one module per area: the component against the native
//! crates (`component_matches_native`) and the OPA conformance suite (`conformance`).
//! `cargo test --release -p docket-tests --test cross -- conformance::` runs one area.

mod component_matches_native;
mod conformance;
mod wit_version;
