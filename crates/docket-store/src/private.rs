//! Files that hold secrets or evidence are private to their owner: the signing key, the write
//! token and the mask salts (secrets), the log's segments (every unmasked input). docket creates
//! them owner-only (directories 0700, files 0600) and, as ssh does, refuses to use a secret that
//! others can read.

use anyhow::{Context, Result, bail};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// `create_dir_all`, creating every missing directory with mode 0700.
pub fn create_dir_all(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Open options that create files with mode 0600.
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// Refuses a secret file that its group or others may read or write.
pub fn check_secret(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} ({what}) has mode {mode:04o}: others on this machine may read it; \
             make it private with `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    Ok(())
}
