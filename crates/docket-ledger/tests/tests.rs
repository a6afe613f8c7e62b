//! docket-ledger's integration tests, one binary with one module per area:
//! `cargo test -p docket-ledger --test ledger -- tamper::` runs one area.

mod common;

mod differential;
mod logging_rules;
mod pruning;
mod tamper;
mod trusted_checkpoint;
mod vectors;
