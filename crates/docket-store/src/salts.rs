//! The mask-salt file: where the salts of values masked out of sealed decisions are kept, apart
//! from the log (docs/store-format.md, "Mask salts").
//!
//! A salt alone reveals nothing; with the masked value it proves the value against the sealed
//! commitment (`docket log reveal`). The file never holds a masked value. It is JSON Lines, one
//! salt per line, appended and fsync'd before the entries it belongs to are committed, so an
//! acknowledged masked value always has its salt on disk. A line whose entry never became
//! durable (a crash between the two writes) names a seq and entry hash that the log does not
//! have; lookups match both, so such a line is never used.
//!
//! Torn writes get the log's discipline: a failed append (a full disk) is cut back before the
//! error is returned, opening the file cuts a partial last line (never acknowledged: its commit
//! had not begun), and a lookup reads past any line it cannot parse, naming it, so one damaged
//! line never hides the salts after it.

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::fs::File;
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
    /// The length of the file's complete lines: where the next append starts.
    len: u64,
}

impl SaltFile {
    /// Opens (or creates, mode 0600) the salt file for appending.
    pub fn open(path: &Path) -> Result<SaltFile> {
        let file = crate::private::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the mask-salt file {}", path.display()))?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the mask-salt file {}", path.display()))?;
        // A last line without its newline is what an interrupted append leaves.
        let len = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1) as u64;
        if len < bytes.len() as u64 {
            tracing::warn!(
                file = %path.display(),
                bytes = bytes.len() as u64 - len,
                "cutting a partial last line from the mask-salt file (an interrupted append, never acknowledged)"
            );
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("repairing the mask-salt file {}", path.display()))?;
        }
        Ok(SaltFile {
            file,
            path: path.to_path_buf(),
            len,
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
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut what part of the lines reached the file, so the next append starts a line.
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all());
            return Err(e)
                .with_context(|| format!("writing the mask-salt file {}", self.path.display()));
        }
        self.len += text.len() as u64;
        Ok(())
    }
}

/// The salt of the value masked at `pointer` in the entry `seq` whose hash is `entry_hash`.
pub fn find(path: &Path, seq: u64, entry_hash: &str, pointer: &str) -> Result<[u8; 32]> {
    let file = File::open(path)
        .with_context(|| format!("opening the mask-salt file {}", path.display()))?;
    let mut damaged = Vec::new();
    for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let Ok(salt) = serde_json::from_slice::<SaltLine>(&line) else {
            damaged.push(n + 1);
            continue;
        };
        if salt.seq == seq && salt.entry_hash == entry_hash && salt.path == pointer {
            if !damaged.is_empty() {
                tracing::warn!(file = %path.display(), lines = ?damaged, "skipped damaged lines of the mask-salt file");
            }
            return decode_salt(&salt.salt);
        }
    }
    let damage = match damaged.as_slice() {
        [] => String::new(),
        lines => format!(
            " ({} damaged line(s) could not be read: {})",
            lines.len(),
            lines
                .iter()
                .take(10)
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(anyhow!(
        "{} holds no salt for {pointer} in entry {seq}{damage}; was the value masked with this salt file?",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> SaltLine {
        SaltLine {
            seq,
            entry_hash: format!("{seq:064x}"),
            decision_id: format!("d-{seq}"),
            path: "/input/ip".into(),
            salt: encode_salt(&[seq as u8; 32]),
        }
    }

    #[test]
    fn a_partial_line_is_cut_at_open_and_lookups_read_past_damage() {
        let dir = std::env::temp_dir().join(format!("docket-salts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mask-salts.jsonl");
        let mut file = SaltFile::open(&path).unwrap();
        file.append(&[line(1)]).unwrap();
        drop(file);
        // An append interrupted half-way (a full disk, a crash).
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(br#"{"seq":2,"entry_h"#);
        std::fs::write(&path, &bytes).unwrap();
        let mut file = SaltFile::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole as u64);
        file.append(&[line(3)]).unwrap();
        assert_eq!(
            find(&path, 3, &line(3).entry_hash, "/input/ip").unwrap(),
            [3; 32]
        );

        // A damaged line in the middle: the salts after it are still found, and a missing one
        // names the damage.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] = b'#';
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            find(&path, 3, &line(3).entry_hash, "/input/ip").unwrap(),
            [3; 32]
        );
        let missing = find(&path, 1, &line(1).entry_hash, "/input/ip").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("1 damaged line(s) could not be read: 1"),
            "{missing}"
        );
    }
}
