//! One module per subcommand: its clap arguments and what it does. `main.rs` parses the
//! command line and dispatches here; what the commands share is below.

pub mod bundles;
pub mod check;
pub mod demo;
pub mod eval;
pub mod keys;
pub mod log;
pub mod nats;
pub mod serve;
pub mod test;
pub mod verify;
pub mod witness;

use anyhow::{Result, anyhow};
use docket_ledger::Entry;
use docket_runtime::Runtime;
use docket_runtime::log::hex;

/// The component, compiled or loaded from the per-user cache, as the embedding API loads it
/// (`docket_embed::runtime`, `docket_embed::cache_dir`).
pub fn load_runtime() -> Result<Runtime> {
    docket_embed::runtime().map_err(|e| anyhow!("{e}"))
}

/// Logs of the long-running commands (`serve`, `witness`) to stderr, `DOCKET_LOG` filtering
/// them (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

pub fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    hex(&bytes)
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry> {
    Entry::decode(bytes).map_err(|e| anyhow!("undecodable entry: {e}"))
}

/// Entry `seq` of a log's frames, decoded; `None` if the log is shorter.
pub fn entry_at(frames: &[docket_store::Frame], seq: u64) -> Result<Option<Entry>> {
    frames
        .iter()
        .filter_map(docket_store::Frame::entry)
        .nth(usize::try_from(seq).unwrap_or(usize::MAX))
        .map(decode_entry)
        .transpose()
}
