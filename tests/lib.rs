//! Cross-crate tests live beside this file; see Cargo.toml.
