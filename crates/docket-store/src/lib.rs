//! The embedded durable store: append-only segment files of CRC-checked frames in a log
//! directory, one writer at a time, fsync'd group commits. Format: `docs/store-format.md`.
//!
//! The store knows frames, not meaning: entries arrive already sealed by the component, and
//! recovery hands the frames back to the component's verifier.
//!
//! Also here, because they are files of a log directory with the same discipline (private
//! modes, fsync before acknowledging, torn tails cut at open): the mask-salt file ([`salts`])
//! and the private-file helpers ([`private`]).

pub mod files;
pub mod private;
pub mod salts;

use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub const FRAME_ENTRY: u8 = 1;
pub const FRAME_CHECKPOINT: u8 = 2;
/// Segments roll over (after a checkpoint) once they pass this size, unless the writer sets
/// another ([`Store::set_segment_limit`]).
pub const SEGMENT_LIMIT: u64 = 64 << 20;
/// No single frame may exceed this (an entry's record is at most 16 MiB).
const MAX_FRAME: usize = 17 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Entry(Vec<u8>),
    Checkpoint(String),
}

impl Frame {
    /// The bytes this frame takes in a segment: length, type, payload and CRC.
    pub fn encoded_len(&self) -> usize {
        9 + match self {
            Frame::Entry(b) => b.len(),
            Frame::Checkpoint(n) => n.len(),
        }
    }

    /// The encoded entry this frame holds, if it holds one.
    pub fn entry(&self) -> Option<&[u8]> {
        match self {
            Frame::Entry(bytes) => Some(bytes),
            Frame::Checkpoint(_) => None,
        }
    }
}

/// What opening found and repaired.
#[derive(Debug, Default, Clone)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment (a torn frame or an unfinished commit).
    pub truncated_bytes: u64,
    /// Entry frames cut because no checkpoint sealed them (their commit never finished).
    pub unsealed_entries_dropped: u64,
}

/// Where sealed entries are made durable. The audit log needs only this; the embedded
/// [`Store`] implements it over files: `commit` returns only once the batch and its checkpoint
/// are durable, and recovery hands back the durable frames in order (see [`Store::open`]). A
/// replicated store (NATS JetStream, `docket-nats`) is not a second implementation but a
/// [`Replica`] of the store's: every commit reaches it first, and the log directory is rebuilt
/// from it.
pub trait LogBackend {
    /// Makes a batch of encoded entries and the checkpoint covering them durable, in order.
    fn commit(&mut self, entries: &[&[u8]], checkpoint_note: &str) -> Result<()>;
    /// The number of durable entries.
    fn entries(&self) -> u64;
}

impl LogBackend for Store {
    fn commit(&mut self, entries: &[&[u8]], checkpoint_note: &str) -> Result<()> {
        Store::commit(self, entries, checkpoint_note)
    }

    fn entries(&self) -> u64 {
        Store::entries(self)
    }
}

/// A second store each commit is made durable in before the log directory: a replicated stream
/// (`docket-nats`, NATS JetStream). The log directory then holds a copy that can be rebuilt from
/// the replica alone; the replica is the record.
pub trait Replica: Send + Sync {
    /// Makes one commit (its frames, encoded as in a segment: entries then the checkpoint) durable
    /// after every commit before it, or fails with nothing of it acknowledged. A failure may
    /// leave the commit stored all the same (an acknowledgement lost on the way back); the
    /// writer then rereads the replica before writing again.
    fn replicate(&self, commit: &[u8]) -> Result<()>;
}

/// An open log directory, holding its writer lock.
pub struct Store {
    dir: PathBuf,
    _lock: File,
    /// Where each commit goes first, if anywhere ([`Replica`]).
    replica: Option<Arc<dyn Replica>>,
    segment: File,
    segment_len: u64,
    /// The size after which the segment rolls over: the unit `docket log prune` works in.
    segment_limit: u64,
    /// Entries in the store (the next entry's seq).
    entries: u64,
    locations: Arc<RwLock<Locations>>,
}

/// Where each durable entry's bytes lie, so readers can fetch entries by seq without scanning.
/// Rebuilt on open (which reads every frame anyway); 16 bytes per entry.
#[derive(Default)]
struct Locations {
    /// Segment files in order.
    segments: Vec<PathBuf>,
    /// Per entry: (segment index, payload offset, payload length).
    entries: Vec<(u32, u64, u32)>,
}

/// One segment file and the entries it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// The seq of its first entry (its name).
    pub first_seq: u64,
    /// How many entries it holds.
    pub entries: u64,
}

/// A read-only view of a store's durable entries, safe to use from any thread while the writer
/// appends. It sees an entry only once its commit is durable.
#[derive(Clone)]
pub struct StoreReader {
    locations: Arc<RwLock<Locations>>,
}

impl StoreReader {
    /// The number of durable entries.
    pub fn entries(&self) -> u64 {
        self.locations.read().expect("locations lock").entries.len() as u64
    }

    /// The encoded entry `seq`, read from its segment.
    pub fn read_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let (path, offset, len) = {
            let locations = self.locations.read().expect("locations lock");
            let Some(&(segment, offset, len)) = locations.entries.get(seq as usize) else {
                return Ok(None);
            };
            (locations.segments[segment as usize].clone(), offset, len)
        };
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut bytes = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, offset)
            .with_context(|| format!("reading entry {seq} from {}", path.display()))?;
        Ok(Some(bytes))
    }
}

/// Payload offsets of the frames of one segment, in the order `scan_segment` returns them.
fn frame_offsets(frames: &[Frame]) -> Vec<u64> {
    let mut at = 0u64;
    frames
        .iter()
        .map(|f| {
            let payload = at + 5;
            at += f.encoded_len() as u64;
            payload
        })
        .collect()
}

fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The segment files of a log directory, in order.
pub fn segment_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let seg_dir = segments_dir(dir);
    let mut paths: Vec<PathBuf> = fs::read_dir(&seg_dir)
        .with_context(|| {
            format!(
                "{} is not a docket log directory (no segments/)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    Ok(paths)
}

pub fn is_log_dir(dir: &Path) -> bool {
    segments_dir(dir).is_dir()
}

fn encode_frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// The frames of one segment's bytes, the length of its good prefix, and why the rest (if any)
/// could not be read.
pub fn scan_segment(bytes: &[u8]) -> (Vec<Frame>, usize, Option<String>) {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 9 {
            return (
                frames,
                at,
                Some(format!("a partial frame header of {} bytes", rest.len())),
            );
        }
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if len > MAX_FRAME {
            return (frames, at, Some(format!("a frame length of {len} bytes")));
        }
        if rest.len() < 9 + len {
            return (
                frames,
                at,
                Some(format!(
                    "a frame of {len} bytes cut short at {} bytes",
                    rest.len() - 9
                )),
            );
        }
        let kind = rest[4];
        let payload = &rest[5..5 + len];
        let stored = u32::from_be_bytes(rest[5 + len..9 + len].try_into().unwrap());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(payload);
        if crc.finalize() != stored {
            return (
                frames,
                at,
                Some("a frame whose checksum does not match".into()),
            );
        }
        let frame = match kind {
            FRAME_ENTRY => Frame::Entry(payload.to_vec()),
            FRAME_CHECKPOINT => match String::from_utf8(payload.to_vec()) {
                Ok(note) => Frame::Checkpoint(note),
                Err(_) => {
                    return (
                        frames,
                        at,
                        Some("a checkpoint frame that is not UTF-8".into()),
                    );
                }
            },
            other => return (frames, at, Some(format!("a frame of unknown type {other}"))),
        };
        frames.push(frame);
        at += 9 + len;
    }
    (frames, at, None)
}

/// Damage found in a log directory: bytes that cannot be read and cannot be a torn write. The
/// message names the file, the offset and the last entry that is still good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage(pub String);

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damage {}

/// The end of the last segment that no finished commit covers: what a crash during a commit
/// leaves. Opening for writing cuts it; nothing in it was ever acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// The length the segment keeps: the end of its last checkpoint frame.
    pub keep: u64,
    /// The bytes after `keep`.
    pub bytes: u64,
    /// Complete entry frames among them (their checkpoint was never written).
    pub unsealed_entries: u64,
    /// What made the end unreadable, when a frame was.
    pub problem: Option<String>,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ends in an unfinished commit: {} bytes after byte {}",
            self.path.display(),
            self.bytes,
            self.keep
        )?;
        if self.unsealed_entries > 0 {
            write!(
                f,
                " ({} entr{} no checkpoint covers)",
                self.unsealed_entries,
                if self.unsealed_entries == 1 {
                    "y"
                } else {
                    "ies"
                }
            )?;
        }
        if let Some(problem) = &self.problem {
            write!(f, ", ending in {problem}")?;
        }
        Ok(())
    }
}

/// A log directory's segments as they are on disk, checked: every segment's name against the
/// entries before it, every frame of every segment but the last, and the end of the last
/// segment told apart into a finished log and a torn tail. Nothing is changed.
#[derive(Debug)]
pub struct DirScan {
    /// Each segment's path and its frames; the last segment's stop at its last checkpoint.
    pub segments: Vec<(PathBuf, Vec<Frame>)>,
    /// What a crash left after the last finished commit.
    pub tail: Option<TornTail>,
}

impl DirScan {
    /// Every committed frame, in order.
    pub fn frames(&self) -> Vec<Frame> {
        self.segments
            .iter()
            .flat_map(|(_, frames)| frames.iter().cloned())
            .collect()
    }

    /// The committed entries.
    pub fn entries(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|(_, frames)| frames)
            .filter(|f| matches!(f, Frame::Entry(_)))
            .count() as u64
    }
}

/// The bytes of a segment holding `frames`, in order: what [`scan_segment`] reads back.
pub fn encode_segment(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for frame in frames {
        match frame {
            Frame::Entry(entry) => encode_frame(FRAME_ENTRY, entry, &mut bytes),
            Frame::Checkpoint(note) => encode_frame(FRAME_CHECKPOINT, note.as_bytes(), &mut bytes),
        }
    }
    bytes
}

/// The first sequence number a segment's file name claims, if it is a well-formed name.
pub fn segment_first_seq(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Where, after byte `from`, a complete and CRC-valid checkpoint frame starts, if anywhere: a
/// finished commit after unreadable bytes, which a torn write cannot leave.
fn checkpoint_frame_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(8)).find(|&at| {
        if bytes[at + 4] != FRAME_CHECKPOINT {
            return false;
        }
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME || at + 9 + len > bytes.len() {
            return false;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[at + 4..at + 5 + len]);
        crc.finalize().to_be_bytes() == bytes[at + 5 + len..at + 9 + len]
    })
}

/// The tree size the `checkpoint` copy records. It is written only after the commit it records
/// is durable, so the segments must hold at least that many entries: fewer means acknowledged
/// entries are missing. A copy that cannot be read proves nothing (it is not fsync'd).
fn recorded_tree_size(dir: &Path) -> Option<u64> {
    let note = fs::read_to_string(dir.join("checkpoint")).ok()?;
    let mut lines = note.lines();
    lines.next()?;
    lines.next()?.parse().ok()
}

/// Reads and checks a log directory's segments (see [`DirScan`]). `Ok(Err(damage))` when the
/// files hold damage that is not a torn write; `Err` when they cannot be read at all.
pub fn scan_dir(dir: &Path) -> Result<std::result::Result<DirScan, Damage>> {
    let paths = segment_paths(dir)?;
    if paths.is_empty() {
        bail!("{} has no segment files", dir.display());
    }
    let mut segments = Vec::with_capacity(paths.len());
    let mut entries = 0u64;
    let mut tail = None;
    for (i, path) in paths.iter().enumerate() {
        let last_good = |entries: u64| match entries {
            0 => "no entry before it is good".to_string(),
            n => format!("the last good entry is {}", n - 1),
        };
        match segment_first_seq(path) {
            Some(first) if first == entries => {}
            claimed => {
                return Ok(Err(Damage(format!(
                    "{} is not where its name says: {}, but the segments before it hold {entries} entries; \
                     a stray or misnamed file in segments/ (move it out) or missing segments (restore them); {}",
                    path.display(),
                    match claimed {
                        Some(first) => format!("its name claims its first entry is {first}"),
                        None => "its name is not the 20-digit seq of its first entry".into(),
                    },
                    last_good(entries)
                ))));
            }
        }
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (mut frames, good, problem) = scan_segment(&bytes);
        let is_last = i + 1 == paths.len();
        let count = |frames: &[Frame]| {
            frames
                .iter()
                .filter(|f| matches!(f, Frame::Entry(_)))
                .count() as u64
        };
        if let Some(problem) = &problem {
            let followed_by = if !is_last {
                Some(format!("{} more segment(s)", paths.len() - i - 1))
            } else {
                checkpoint_frame_after(&bytes, good)
                    .map(|at| format!("a complete commit at byte {at}"))
            };
            if let Some(after) = followed_by {
                return Ok(Err(Damage(format!(
                    "the log is damaged: {problem} in {} at byte {good}, followed by {after}, so it is \
                     not an unfinished write; {}; restore the file from a copy (`docket log export` \
                     keeps what verifies)",
                    path.display(),
                    last_good(entries + count(&frames))
                ))));
            }
        }
        if !is_last {
            entries += count(&frames);
            segments.push((path.clone(), frames));
            continue;
        }
        // The last segment: what follows its last checkpoint frame was never acknowledged.
        let mut keep = frames.len();
        while keep > 0 && matches!(frames[keep - 1], Frame::Entry(_)) {
            keep -= 1;
        }
        let unsealed_entries = (frames.len() - keep) as u64;
        frames.truncate(keep);
        let keep_bytes: usize = frames.iter().map(Frame::encoded_len).sum();
        entries += count(&frames);
        if keep_bytes < bytes.len() {
            tail = Some(TornTail {
                path: path.clone(),
                keep: keep_bytes as u64,
                bytes: (bytes.len() - keep_bytes) as u64,
                unsealed_entries,
                problem: problem.clone(),
            });
        }
        segments.push((path.clone(), frames));
    }
    if let Some(recorded) = recorded_tree_size(dir)
        && recorded > entries
    {
        let last = paths.last().expect("a segment");
        return Ok(Err(Damage(format!(
            "the log is damaged: the checkpoint file records {recorded} committed entries but the \
             segments hold {entries}{}: acknowledged entries are missing from the end of {}; \
             restore the segments from a copy",
            match &tail {
                Some(tail) => format!(" before {tail}"),
                None => String::new(),
            },
            last.display()
        ))));
    }
    Ok(Ok(DirScan { segments, tail }))
}

/// Reads every committed frame of a log directory without taking the lock (for verification,
/// export and reading). Damage is an error; a torn tail is left out and returned.
pub fn read_frames(dir: &Path) -> Result<(Vec<Frame>, Option<TornTail>)> {
    let scan = scan_dir(dir)?.map_err(anyhow::Error::new)?;
    Ok((scan.frames(), scan.tail))
}

/// The latest committed checkpoint note of a log directory, read from its segments (the
/// `checkpoint` file is only a convenience copy).
pub fn latest_checkpoint(dir: &Path) -> Result<Option<String>> {
    let (frames, _) = read_frames(dir)?;
    Ok(frames.into_iter().rev().find_map(|f| match f {
        Frame::Checkpoint(note) => Some(note),
        Frame::Entry(_) => None,
    }))
}

/// Writes `frames` as a new log directory at `dir` (which must not hold a log yet): one segment
/// holding every frame, the `checkpoint` copy, all fsync'd. For logs assembled from existing
/// frames (`docket log split-fork`); writers use [`Store::create`] and commits.
pub fn write_log_dir(dir: &Path, frames: &[Frame]) -> Result<()> {
    if is_log_dir(dir) {
        bail!("{} already holds a docket log", dir.display());
    }
    crate::private::create_dir_all(&segments_dir(dir))?;
    let bytes = encode_segment(frames);
    let path = segments_dir(dir).join(segment_name(0));
    let mut file = crate::private::options()
        .create_new(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(Frame::Checkpoint(note)) = frames
        .iter()
        .rev()
        .find(|f| matches!(f, Frame::Checkpoint(_)))
    {
        let copy = dir.join("checkpoint");
        fs::write(&copy, note).with_context(|| format!("writing {}", copy.display()))?;
        File::open(&copy)?.sync_all()?;
    }
    sync_dir(&segments_dir(dir))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?
        .sync_all()
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// How long a held lock is waited for before the log is called in use by another writer.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Takes the single-writer lock: an exclusive `flock` on the log directory itself, which no
/// file operation inside it can remove (a lock on a file in it would end with an `rm`). `LOCK`
/// only tells people which process holds it.
pub fn take_lock(dir: &Path) -> Result<File> {
    let handle = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // A lock is also held, for a moment, by a child process this one is starting: between
    // fork and exec the child shares the open directory. A writer is only refused once the
    // lock stays held past that window.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    while handle.try_lock().is_err() {
        if std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        }
        let holder = fs::read_to_string(dir.join("LOCK")).unwrap_or_default();
        bail!(
            "the directory {} is in use by another writer (process {}); stop it or use another --dir",
            dir.display(),
            match holder.trim() {
                "" => "unknown",
                pid => pid,
            }
        );
    }
    let path = dir.join("LOCK");
    fs::write(&path, std::process::id().to_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(handle)
}

impl Store {
    /// Creates a new, empty log directory (which must not hold a log yet) and locks it.
    pub fn create(dir: &Path) -> Result<Store> {
        if is_log_dir(dir) {
            bail!(
                "{} already holds a docket log; open it instead",
                dir.display()
            );
        }
        crate::private::create_dir_all(&segments_dir(dir))?;
        let lock = take_lock(dir)?;
        let path = segments_dir(dir).join(segment_name(0));
        let segment = crate::private::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        sync_dir(&segments_dir(dir))?;
        sync_dir(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            replica: None,
            segment,
            segment_len: 0,
            segment_limit: SEGMENT_LIMIT,
            entries: 0,
            locations: Arc::new(RwLock::new(Locations {
                segments: vec![path],
                entries: Vec::new(),
            })),
        })
    }

    /// Opens an existing log directory for writing: takes the lock, cuts a torn tail and any
    /// entries no checkpoint sealed, and returns every remaining frame for verification.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Frame>, Recovery)> {
        if !is_log_dir(dir) {
            bail!(
                "{} holds no docket log (no segments/ directory)",
                dir.display()
            );
        }
        let lock = take_lock(dir)?;
        let scan = scan_dir(dir)?.map_err(|damage| {
            anyhow::Error::new(damage).context(format!(
                "{} cannot be opened for writing; nothing was changed",
                dir.display()
            ))
        })?;
        let mut recovery = Recovery::default();
        let (last, _) = scan.segments.last().expect("scan_dir finds a segment");
        let last = last.clone();
        let mut last_len = fs::metadata(&last)
            .with_context(|| format!("reading {}", last.display()))?
            .len();
        if let Some(tail) = &scan.tail {
            // Only ever what no finished commit covers (scan_dir refuses anything else).
            let file = OpenOptions::new().write(true).open(&tail.path)?;
            file.set_len(tail.keep)?;
            file.sync_all()?;
            recovery.truncated_bytes = tail.bytes;
            recovery.unsealed_entries_dropped = tail.unsealed_entries;
            last_len = tail.keep;
        }
        let mut locations = Locations::default();
        let mut frames = Vec::new();
        for (path, mut got) in scan.segments {
            let segment = locations.segments.len() as u32;
            locations.segments.push(path);
            for (frame, offset) in got.iter().zip(frame_offsets(&got)) {
                if let Frame::Entry(bytes) = frame {
                    locations
                        .entries
                        .push((segment, offset, bytes.len() as u32));
                }
            }
            frames.append(&mut got);
        }
        let entries = locations.entries.len() as u64;
        let segment = OpenOptions::new().append(true).open(&last)?;
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            replica: None,
            segment,
            segment_len: last_len,
            segment_limit: SEGMENT_LIMIT,
            entries,
            locations: Arc::new(RwLock::new(locations)),
        };
        // The `checkpoint` file is a convenience copy that commits replace without fsync; after
        // a crash it may be stale or empty, so rewrite it durably from the last frame.
        if let Some(Frame::Checkpoint(note)) = frames
            .iter()
            .rev()
            .find(|f| matches!(f, Frame::Checkpoint(_)))
        {
            store.write_latest_checkpoint(note, true)?;
        }
        Ok((store, frames, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rolls segments over once they pass `bytes` (at least one commit per segment). Smaller
    /// segments let retention prune sooner; nothing else depends on the size.
    pub fn set_segment_limit(&mut self, bytes: u64) {
        self.segment_limit = bytes.max(1);
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// A reader of the durable entries for other threads.
    pub fn reader(&self) -> StoreReader {
        StoreReader {
            locations: Arc::clone(&self.locations),
        }
    }

    /// Sends every later commit to `replica` before it is written here ([`Replica`]).
    pub fn replicate_to(&mut self, replica: Arc<dyn Replica>) {
        self.replica = Some(replica);
    }

    /// Whether commits go to a [`Replica`] first.
    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// Makes a batch durable: its entries, then the checkpoint covering them, one write and one
    /// fsync (after the replica holds it, if there is one). Returns only once the data is on
    /// disk; only then may the entries be acknowledged.
    pub fn commit(&mut self, entries: &[&[u8]], checkpoint_note: &str) -> Result<()> {
        let mut buf = Vec::with_capacity(
            entries.iter().map(|e| e.len() + 9).sum::<usize>() + checkpoint_note.len() + 9,
        );
        for entry in entries {
            encode_frame(FRAME_ENTRY, entry, &mut buf);
        }
        encode_frame(FRAME_CHECKPOINT, checkpoint_note.as_bytes(), &mut buf);
        if let Some(replica) = &self.replica {
            replica.replicate(&buf)?;
        }
        self.segment
            .write_all(&buf)
            .context("writing to the log segment")?;
        self.segment
            .sync_data()
            .context("fsync of the log segment")?;
        {
            let mut locations = self.locations.write().expect("locations lock");
            let segment = (locations.segments.len() - 1) as u32;
            let mut at = self.segment_len;
            for entry in entries {
                locations
                    .entries
                    .push((segment, at + 5, entry.len() as u32));
                at += 9 + entry.len() as u64;
            }
        }
        self.segment_len += buf.len() as u64;
        self.entries += entries.len() as u64;
        // The batch is durable now. The convenience copy failing (a full disk) must not turn a
        // durable commit into a reported failure; open rewrites the copy anyway.
        if let Err(e) = self.write_latest_checkpoint(checkpoint_note, false) {
            tracing::warn!(error = %format!("{e:#}"), "could not update the checkpoint file; the log itself is intact");
        }
        if self.segment_len >= self.segment_limit {
            self.roll_segment()?;
        }
        Ok(())
    }

    /// The segment files in order with the entries each holds. The last one is being written;
    /// every other one is sealed (it ends with a checkpoint frame and is never appended to).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let locations = self.locations.read().expect("locations lock");
        let mut counts = vec![0u64; locations.segments.len()];
        for &(segment, _, _) in &locations.entries {
            counts[segment as usize] += 1;
        }
        let mut first_seq = 0;
        locations
            .segments
            .iter()
            .zip(counts)
            .map(|(path, entries)| {
                let info = SegmentInfo {
                    path: path.clone(),
                    first_seq,
                    entries,
                };
                first_seq += entries;
                info
            })
            .collect()
    }

    /// Replaces entries of a sealed segment by other encodings of the same entries (pruned
    /// forms, docs/log-format.md §3.5): writes the whole segment anew beside the old one, fsyncs
    /// it, renames it over the old one and fsyncs the directory, so a crash leaves either the
    /// old segment or the new one, never a mix. The store does not read entries: the caller
    /// has checked that each replacement stands for the entry it replaces, and has made the
    /// authority for the change (a prune entry) durable first.
    pub fn replace_entries(
        &mut self,
        segment: &SegmentInfo,
        replacements: &std::collections::BTreeMap<u64, Vec<u8>>,
    ) -> Result<()> {
        let index = {
            let locations = self.locations.read().expect("locations lock");
            let index = locations
                .segments
                .iter()
                .position(|p| *p == segment.path)
                .with_context(|| {
                    format!("{} is not a segment of this log", segment.path.display())
                })?;
            if index + 1 == locations.segments.len() {
                bail!(
                    "{} is the segment being written; only sealed segments are rewritten",
                    segment.path.display()
                );
            }
            index
        };
        let bytes = fs::read(&segment.path)
            .with_context(|| format!("reading {}", segment.path.display()))?;
        let (frames, good, problem) = scan_segment(&bytes);
        if let Some(problem) = problem {
            bail!(
                "{} is damaged at byte {good} ({problem}); it was not rewritten",
                segment.path.display()
            );
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut seq = segment.first_seq;
        for frame in &frames {
            match frame {
                Frame::Entry(original) => {
                    let encoded = replacements.get(&seq).unwrap_or(original);
                    encode_frame(FRAME_ENTRY, encoded, &mut out);
                    seq += 1;
                }
                Frame::Checkpoint(note) => {
                    encode_frame(FRAME_CHECKPOINT, note.as_bytes(), &mut out)
                }
            }
        }
        if let Some((&beyond, _)) = replacements.range(seq..).next() {
            bail!("entry {beyond} is not in {}", segment.path.display());
        }
        let tmp = segment.path.with_extension("seg.rewrite");
        let mut file = crate::private::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&out)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &segment.path)
            .with_context(|| format!("replacing {}", segment.path.display()))?;
        sync_dir(&segments_dir(&self.dir))?;
        let (frames, _, _) = scan_segment(&out);
        let mut locations = self.locations.write().expect("locations lock");
        let offsets = frames
            .iter()
            .zip(frame_offsets(&frames))
            .filter_map(|(frame, offset)| match frame {
                Frame::Entry(bytes) => Some((offset, bytes.len() as u32)),
                Frame::Checkpoint(_) => None,
            });
        let first = segment.first_seq as usize;
        for (slot, (offset, len)) in locations.entries[first..].iter_mut().zip(offsets) {
            *slot = (index as u32, offset, len);
        }
        Ok(())
    }

    /// Replaces the `checkpoint` file atomically (rename). Commits skip the fsyncs: the
    /// checkpoint frame in the segment is what makes a commit durable, and `open` rewrites this
    /// copy from it with `durable` set.
    fn write_latest_checkpoint(&self, note: &str, durable: bool) -> Result<()> {
        crate::files::replace_file(&self.dir.join("checkpoint"), note.as_bytes(), durable)
    }

    fn roll_segment(&mut self) -> Result<()> {
        let path = segments_dir(&self.dir).join(segment_name(self.entries));
        self.segment = crate::private::options()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(&segments_dir(&self.dir))?;
        self.segment_len = 0;
        self.locations
            .write()
            .expect("locations lock")
            .segments
            .push(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_located() {
        let mut buf = Vec::new();
        encode_frame(FRAME_ENTRY, b"abc", &mut buf);
        encode_frame(FRAME_CHECKPOINT, b"note\n", &mut buf);
        let (frames, good, problem) = scan_segment(&buf);
        assert_eq!(
            frames,
            vec![
                Frame::Entry(b"abc".to_vec()),
                Frame::Checkpoint("note\n".into())
            ]
        );
        assert_eq!((good, problem), (buf.len(), None));
        let (frames, good, problem) = scan_segment(&buf[..buf.len() - 2]);
        assert_eq!((frames.len(), good), (1, 12));
        assert!(problem.unwrap().contains("cut short"));
        let mut flipped = buf.clone();
        flipped[6] ^= 1;
        let (frames, good, problem) = scan_segment(&flipped);
        assert_eq!((frames.len(), good), (0, 0));
        assert!(problem.unwrap().contains("checksum"));
    }
}
