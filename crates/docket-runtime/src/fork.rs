//! Forks: a log directory two writers appended to at once (docs/store-format.md, "Forks").
//! Each writer's commits are whole (one write each) but interleaved in the file, so the log
//! verifies up to the fork and then fails (`wrong-sequence`, `broken-link`). Both writers
//! acknowledged their entries, so cutting either history would lose acknowledged decisions.
//! [`split`] separates the histories instead: each commit is followed to the history its first
//! entry links to (by `prev` and `seq`), and each history is written out as a complete log
//! directory of its own, sharing the prefix before the fork. Nothing is re-signed and no byte of
//! an entry or checkpoint changes, so each history verifies with the log's key as it stands.

use anyhow::{Context, Result, bail};
use docket_ledger::{Entry, Hash};
use docket_store::{self as store, Frame};
use std::path::{Path, PathBuf};

/// One history found in a forked log directory.
#[derive(Debug)]
pub struct History {
    /// Where it was written.
    pub dir: PathBuf,
    /// Its entries, the shared prefix included.
    pub entries: u64,
    /// The seq of its first entry after the shared prefix (the fork point), or `None` for the
    /// history that starts at genesis and was never forked off.
    pub forked_at: Option<u64>,
}

/// One commit: entry frames (decoded) and the checkpoint that ends it.
struct Commit {
    entries: Vec<(Vec<u8>, Entry)>,
    checkpoint: String,
}

struct Chain {
    frames: Vec<Frame>,
    hashes: Vec<Hash>,
    forked_at: Option<u64>,
}

impl Chain {
    /// Whether `entry` continues this chain.
    fn continued_by(&self, entry: &Entry) -> bool {
        entry.seq == self.hashes.len() as u64 && self.links(entry)
    }

    /// Whether `entry`'s prev is this chain's entry `seq - 1` (for seq 0, the zero hash).
    fn links(&self, entry: &Entry) -> bool {
        match entry.seq.checked_sub(1) {
            None => entry.prev == Hash::ZERO,
            Some(before) => self.hashes.get(before as usize) == Some(&entry.prev),
        }
    }

    /// The chain up to the checkpoint at size `size`, as a new chain forked there.
    fn prefix(&self, size: u64) -> Option<Chain> {
        let mut entries = 0u64;
        for (i, frame) in self.frames.iter().enumerate() {
            match frame {
                Frame::Entry(_) => entries += 1,
                Frame::Checkpoint(note) if entries == size => {
                    let covers = docket_ledger::SignedCheckpoint::parse(note)
                        .is_ok_and(|c| c.checkpoint.size == size);
                    if covers {
                        return Some(Chain {
                            frames: self.frames[..=i].to_vec(),
                            hashes: self.hashes[..size as usize].to_vec(),
                            forked_at: Some(size),
                        });
                    }
                }
                Frame::Checkpoint(_) => {}
            }
        }
        None
    }

    fn push(&mut self, commit: Commit) {
        for (bytes, entry) in commit.entries {
            self.hashes.push(entry.hash);
            self.frames.push(Frame::Entry(bytes));
        }
        self.frames.push(Frame::Checkpoint(commit.checkpoint));
    }
}

fn commits(frames: Vec<Frame>) -> Result<Vec<Commit>> {
    let mut commits = Vec::new();
    let mut entries = Vec::new();
    for frame in frames {
        match frame {
            Frame::Entry(bytes) => {
                let entry = Entry::decode(&bytes).map_err(|e| {
                    anyhow::anyhow!("an entry does not decode ({e}): damage, not a fork")
                })?;
                entries.push((bytes, entry));
            }
            Frame::Checkpoint(checkpoint) => commits.push(Commit {
                entries: std::mem::take(&mut entries),
                checkpoint,
            }),
        }
    }
    Ok(commits)
}

/// Separates the histories of the forked log in `dir` into `out/history-1`, `out/history-2`, …
/// (history 1 is the one that starts at genesis). `dir` is only read. Fails, writing nothing,
/// if the log is not a fork: damaged, or with a commit that links to no history.
pub fn split(dir: &Path, out: &Path) -> Result<Vec<History>> {
    let scan = store::scan_dir(dir)?.map_err(anyhow::Error::new)?;
    let mut chains: Vec<Chain> = Vec::new();
    for commit in commits(scan.frames())? {
        let Some((_, first)) = commit.entries.first() else {
            // A checkpoint without entries repeats the head of whichever history it signs.
            if let Some(chain) = chains.last_mut() {
                chain.frames.push(Frame::Checkpoint(commit.checkpoint));
            }
            continue;
        };
        let linked_within = commit
            .entries
            .windows(2)
            .all(|w| w[1].1.seq == w[0].1.seq + 1 && w[1].1.prev == w[0].1.hash);
        if !linked_within {
            bail!(
                "a commit starting at entry {} is not one chain of entries: damage, not a fork; nothing was written",
                first.seq
            );
        }
        if let Some(chain) = chains.iter_mut().find(|c| c.continued_by(first)) {
            chain.push(commit);
            continue;
        }
        let Some(mut fork) = chains
            .iter()
            .filter(|c| c.links(first))
            .find_map(|c| c.prefix(first.seq))
        else {
            if chains.is_empty() && first.seq == 0 {
                let mut genesis = Chain {
                    frames: Vec::new(),
                    hashes: Vec::new(),
                    forked_at: None,
                };
                genesis.push(commit);
                chains.push(genesis);
                continue;
            }
            bail!(
                "the commit with entry {} links to no history in {} (its prev {} is no entry's hash \
                 at that position): damage, not a fork; nothing was written",
                first.seq,
                dir.display(),
                first.prev
            );
        };
        fork.push(commit);
        chains.push(fork);
    }
    if chains.len() < 2 {
        bail!(
            "{} holds one history: it has not forked (if it does not verify, the damage is \
             elsewhere; `docket verify` names it); nothing was written",
            dir.display()
        );
    }
    let mut histories = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let target = out.join(format!("history-{}", i + 1));
        store::write_log_dir(&target, &chain.frames)
            .with_context(|| format!("writing {}", target.display()))?;
        histories.push(History {
            dir: target,
            entries: chain.hashes.len() as u64,
            forked_at: chain.forked_at,
        });
    }
    Ok(histories)
}
