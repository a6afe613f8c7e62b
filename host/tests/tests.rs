//! The `docket` binary's integration tests, one binary (linking wasmtime, tokio and axum once)
//! with one module per area. `cargo test -p docket --test cli -- serve::` runs one area.

mod common;

mod bundles;
mod c2sp;
mod crash;
mod disk;
mod envoy;
mod evidence;
mod hostile;
mod limits;
mod log_end_to_end;
mod logging_rules;
mod nats;
mod pruning;
mod serve;
mod witness;
