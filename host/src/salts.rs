//! The mask-salt file: where the salts of values masked out of sealed decisions are kept, apart
//! from the log (docs/store-format.md, "Mask salts").
//!
//! A salt alone reveals nothing; with the masked value it proves the value against the sealed
//! commitment (`docket log reveal`). The file never holds a masked value. It is JSON Lines, one
//! salt per line, appended and fsync'd before the entries it belongs to are committed, so an
//! acknowledged masked value always has its salt on disk. A line whose entry never became
//! durable (a crash between the two writes) names a seq and entry hash that the log does not
//! have; lookups match both, so such a line is never used.

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One line of the file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaltLine {
    pub seq: u64,
    /// Lower-case hex of the entry hash.
    pub entry_hash: String,
    pub decision_id: String,
    /// The JSON Pointer of the masked value.
    pub path: String,
    /// Base64 of the 32-byte salt.
    pub salt: String,
}

pub struct SaltFile {
    file: File,
    path: PathBuf,
}

impl SaltFile {
    /// Opens (or creates, mode 0600) the salt file for appending.
    pub fn open(path: &Path) -> Result<SaltFile> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .with_context(|| format!("opening the mask-salt file {}", path.display()))?;
        Ok(SaltFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends the lines and makes them durable.
    pub fn append(&mut self, lines: &[SaltLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&serde_json::to_string(line).expect("salt lines serialize"));
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing the mask-salt file {}", self.path.display()))
    }
}

/// The salt of the value masked at `pointer` in the entry `seq` whose hash is `entry_hash`.
pub fn find(path: &Path, seq: u64, entry_hash: &str, pointer: &str) -> Result<[u8; 32]> {
    let file = File::open(path)
        .with_context(|| format!("opening the mask-salt file {}", path.display()))?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let Ok(salt) = serde_json::from_str::<SaltLine>(&line) else {
            anyhow::bail!("{} line {} is not a salt line", path.display(), n + 1);
        };
        if salt.seq == seq && salt.entry_hash == entry_hash && salt.path == pointer {
            return decode_salt(&salt.salt);
        }
    }
    Err(anyhow!(
        "{} holds no salt for {pointer} in entry {seq}; was the value masked with this salt file?",
        path.display()
    ))
}

/// A salt given as base64 (32 bytes).
pub fn decode_salt(text: &str) -> Result<[u8; 32]> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| anyhow!("a mask salt is base64: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow!("a mask salt is 32 bytes, got {}", bytes.len()))
}

pub fn encode_salt(salt: &[u8]) -> String {
    STANDARD.encode(salt)
}
