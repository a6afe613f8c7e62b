//! The docket host: the wasmtime embedding of the component ([`runtime`]) and the wall clock it
//! seals by ([`clock`]), the durable store
//! ([`store`]), the audit log joining them ([`log`]), the HTTP server ([`serve`]) and the example policies
//! ([`examples`]).
//! The `docket` binary (src/main.rs) is the CLI over these. See ARCHITECTURE.md.

pub mod clock;
pub mod examples;
pub mod fork;
pub mod log;
pub mod runtime;
pub mod serve;
/// The store lives in its own crate (`crates/docket-store`), which the compiler keeps free of
/// wasmtime and of what an entry means; these names keep the host's paths to it short.
pub use docket_store as store;
pub use docket_store::{private, salts};
