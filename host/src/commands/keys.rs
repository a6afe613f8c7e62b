//! `docket keygen` and `docket rotate-key`.

use super::load_runtime;
use anyhow::Result;
use docket_runtime::log::{AuditLog, fresh_name, read_public_key, read_secret_key, write_new_key};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory to write the key pair into.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// File stem of the key pair.
    #[arg(long, default_value = "docket")]
    stem: String,
    /// The key's name (C2SP key name, shown in checkpoint signatures), and the origin of a log
    /// it starts (`docket eval`): ideally the URL the log is served at without the scheme.
    /// Default: docket.local/<12 random hex digits>.
    #[arg(long)]
    name: Option<String>,
}

pub fn keygen(args: KeygenArgs) -> Result<i32> {
    let KeygenArgs { out, stem, name } = args;
    let name = name.unwrap_or_else(|| fresh_name("docket.local"));
    let key = write_new_key(&out, &stem, &name)?;
    eprintln!(
        "wrote {} (secret, 0600) and {}",
        out.join(format!("{stem}.key")).display(),
        out.join(format!("{stem}.pub")).display()
    );
    println!("{}", key.public().to_vkey());
    Ok(0)
}

#[derive(clap::Args)]
pub struct RotateKeyArgs {
    #[arg(long)]
    dir: PathBuf,
    /// The log's current key.
    #[arg(long)]
    key: PathBuf,
    /// The key to hand over to (from `docket keygen`).
    #[arg(long)]
    new_key: PathBuf,
    /// The log's genesis public key (defaults to the current key's).
    #[arg(long = "pub")]
    public: Option<PathBuf>,
}

pub fn rotate_key(args: RotateKeyArgs) -> Result<i32> {
    let RotateKeyArgs {
        dir,
        key,
        new_key,
        public,
    } = args;
    let current = read_secret_key(&key)?;
    let next = read_secret_key(&new_key)?;
    let genesis = match public {
        Some(p) => read_public_key(&p)?,
        None => current.public().clone(),
    };
    let runtime = load_runtime()?;
    let (mut log, _, _) = AuditLog::open(&dir, &runtime, &genesis, &current)?;
    let seq = log.rotate_key(&next)?;
    println!(
        "entry {seq}: the log is now signed by {}",
        next.public().to_vkey()
    );
    Ok(0)
}
