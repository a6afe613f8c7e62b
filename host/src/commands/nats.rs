//! The flags that put a log in NATS JetStream (`docket serve --nats`), shared by the commands
//! that take them.

use anyhow::{Result, bail};
use docket_nats::{Durability, Location, Requirements};

#[derive(clap::Args, Default)]
pub struct NatsArgs {
    /// Keep the log in NATS JetStream, at nats://HOST:PORT[,HOST:PORT…]/STREAM/LOG: every
    /// commit is acknowledged by the stream (fenced, so two writers can never fork the log)
    /// before the data directory, which becomes a copy rebuilt from the stream at each start.
    /// Each node of a fleet writes its own LOG; a node that dies is replaced by one with the
    /// same LOG and key (docs/store-format.md, "NATS JetStream").
    #[arg(long)]
    nats: Option<String>,
    /// Servers that must hold each acknowledged commit: the stream's replicas (created so,
    /// checked if it exists).
    #[arg(long, default_value_t = docket_nats::DEFAULT_REPLICAS)]
    nats_replicas: usize,
    /// A NATS server's monitoring endpoint (http://HOST:8222), once per server: each must
    /// report that it fsyncs before it acknowledges (`jetstream { sync_interval: always }`).
    #[arg(long = "nats-monitor")]
    nats_monitors: Vec<String>,
    /// Serve even if the servers cannot be shown to fsync before they acknowledge (no or too
    /// few --nats-monitor, or a server without sync_interval: always); logged as a warning.
    #[arg(long)]
    nats_unchecked_fsync: bool,
}

impl NatsArgs {
    /// The JetStream log these flags name, if any.
    pub fn config(self) -> Result<Option<docket_server::NatsLog>> {
        let Some(url) = self.nats else {
            if !self.nats_monitors.is_empty()
                || self.nats_unchecked_fsync
                || self.nats_replicas != docket_nats::DEFAULT_REPLICAS
            {
                bail!("--nats-replicas, --nats-monitor and --nats-unchecked-fsync go with --nats");
            }
            return Ok(None);
        };
        if self.nats_replicas == 0 {
            bail!("--nats-replicas 0: at least one server must hold each commit");
        }
        let durability = Durability {
            monitors: self.nats_monitors,
            required: !self.nats_unchecked_fsync,
        };
        Ok(Some(docket_server::NatsLog {
            location: Location::parse(&url)?,
            requirements: Requirements {
                replicas: self.nats_replicas,
            },
            durability,
        }))
    }
}

/// The frames of a log named by `source` if it is a JetStream address (nats://…), read whole;
/// `None` for anything else (a directory or a file). Damage in the stream is an error holding a
/// [`docket_store::Damage`].
pub fn read_frames(source: &std::path::Path) -> Result<Option<Vec<docket_store::Frame>>> {
    let text = source.to_string_lossy();
    if !text.starts_with("nats://") {
        return Ok(None);
    }
    let location = Location::parse(&text)?;
    let log = docket_nats::JetStreamLog::open_for_reading(&location)?;
    Ok(Some(log.read()?.frames))
}
