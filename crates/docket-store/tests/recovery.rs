//! The store on its own (no wasmtime, no sealing): entries are opaque bytes to it, so these
//! tests commit arbitrary payloads and check, byte by byte, what a crash at every point of a
//! commit leaves, and that damage which is not a torn write is refused with nothing changed
//! (docs/store-format.md, "Recovery").

use docket_store::{Frame, Store, StoreReader, encode_segment, scan_segment, segment_paths};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docket-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A checkpoint note as the store reads one: its second line is the tree size.
fn note(size: u64) -> String {
    format!("docket.test/store\n{size}\nroot-{size}\n\n— docket.test/store sig\n")
}

fn entry(seq: u64) -> Vec<u8> {
    // Lengths vary so frame boundaries fall at varied offsets.
    format!("entry {seq} {}", "x".repeat((seq as usize * 7) % 23)).into_bytes()
}

/// Commits `batches` batches of entries, numbered on from the store's size.
fn commit_batches(store: &mut Store, batches: &[u64]) {
    for &n in batches {
        let first = store.entries();
        let entries: Vec<Vec<u8>> = (first..first + n).map(entry).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        store.commit(&refs, &note(first + n)).unwrap();
    }
}

/// The frames a log of `sizes` commits holds: each commit's entries, then its checkpoint.
fn expected_frames(sizes: &[u64]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut seq = 0;
    for &n in sizes {
        for s in seq..seq + n {
            frames.push(Frame::Entry(entry(s)));
        }
        seq += n;
        frames.push(Frame::Checkpoint(note(seq)));
    }
    frames
}

fn read_all(reader: &StoreReader) -> Vec<Vec<u8>> {
    (0..reader.entries())
        .map(|seq| reader.read_entry(seq).unwrap().unwrap())
        .collect()
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut paths = segment_paths(dir).unwrap();
    assert_eq!(paths.len(), 1);
    paths.pop().unwrap()
}

#[test]
fn commits_read_back_and_reopen_as_written() {
    let dir = scratch("reopen");
    let mut store = Store::create(&dir).unwrap();
    commit_batches(&mut store, &[1, 3, 2]);
    assert_eq!(store.entries(), 6);
    let reader = store.reader();
    assert_eq!(read_all(&reader), (0..6).map(entry).collect::<Vec<_>>());
    drop(store);
    let (store, frames, recovery) = Store::open(&dir).unwrap();
    assert_eq!(frames, expected_frames(&[1, 3, 2]));
    assert_eq!(
        (recovery.truncated_bytes, recovery.unsealed_entries_dropped),
        (0, 0)
    );
    assert_eq!(
        read_all(&store.reader()),
        (0..6).map(entry).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("checkpoint")).unwrap(),
        note(6)
    );
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_log() {
    let dir = scratch("lock");
    let mut store = Store::create(&dir).unwrap();
    commit_batches(&mut store, &[2]);
    let second = Store::open(&dir).err().expect("the log is locked");
    assert!(format!("{second:#}").contains("lock"), "{second:#}");
    drop(store);
    Store::open(&dir).unwrap();
}

/// A crash at every byte of the last commit: the commit before it is what opening keeps, the
/// cut bytes are reported, and the log takes new commits after it.
#[test]
fn a_crash_at_any_byte_of_a_commit_recovers_the_commit_before_it() {
    let dir = scratch("torn");
    let mut store = Store::create(&dir).unwrap();
    commit_batches(&mut store, &[2, 3]);
    drop(store);
    let segment = only_segment(&dir);
    let before = std::fs::read(&segment).unwrap();
    let mut store = Store::open(&dir).unwrap().0;
    commit_batches(&mut store, &[4]);
    drop(store);
    let after = std::fs::read(&segment).unwrap();
    assert_eq!(after[..before.len()], before[..]);
    for cut in before.len()..after.len() {
        let case = scratch("torn-case");
        std::fs::create_dir_all(case.join("segments")).unwrap();
        let case_segment = case.join("segments").join(segment.file_name().unwrap());
        std::fs::write(&case_segment, &after[..cut]).unwrap();
        // The convenience copy is replaced only after a commit is durable: it still names 5.
        std::fs::write(case.join("checkpoint"), note(5)).unwrap();
        let (mut store, frames, recovery) = Store::open(&case).unwrap();
        assert_eq!(frames, expected_frames(&[2, 3]), "cut at byte {cut}");
        assert_eq!(
            recovery.truncated_bytes,
            (cut - before.len()) as u64,
            "cut at byte {cut}"
        );
        // Whole entry frames of the unfinished commit are counted as dropped, never kept.
        let whole_entries = scan_segment(&after[before.len()..cut])
            .0
            .iter()
            .filter(|f| matches!(f, Frame::Entry(_)))
            .count() as u64;
        assert_eq!(
            recovery.unsealed_entries_dropped, whole_entries,
            "cut at byte {cut}"
        );
        assert_eq!(
            std::fs::read(&case_segment).unwrap(),
            before,
            "cut at byte {cut}"
        );
        commit_batches(&mut store, &[1]);
        drop(store);
        let (_, frames, _) = Store::open(&case).unwrap();
        assert_eq!(frames, expected_frames(&[2, 3, 1]), "cut at byte {cut}");
    }
}

/// A changed byte anywhere in a finished commit is damage, not a torn write: opening refuses,
/// names where, and leaves every file as it was.
#[test]
fn damage_inside_finished_commits_is_refused_and_nothing_is_changed() {
    let dir = scratch("damage");
    let mut store = Store::create(&dir).unwrap();
    commit_batches(&mut store, &[2, 3, 1]);
    drop(store);
    let segment = only_segment(&dir);
    let genuine = std::fs::read(&segment).unwrap();
    let last_commit = genuine.len() - encode_segment(&expected_frames(&[2, 3, 1])[7..]).len();
    let mut refused = 0;
    for at in 0..last_commit {
        let mut bytes = genuine.clone();
        bytes[at] ^= 0x20;
        std::fs::write(&segment, &bytes).unwrap();
        let err = Store::open(&dir)
            .err()
            .unwrap_or_else(|| panic!("a flip at byte {at} of a finished commit was accepted"));
        let text = format!("{err:#}");
        assert!(text.contains("nothing was changed"), "byte {at}: {text}");
        assert_eq!(std::fs::read(&segment).unwrap(), bytes, "byte {at}");
        refused += 1;
    }
    assert_eq!(refused, last_commit);
    std::fs::write(&segment, &genuine).unwrap();
    Store::open(&dir).unwrap();
}

/// Entries cut from the end of a log whose `checkpoint` copy says they were committed are
/// acknowledged entries gone missing: refused, not silently "recovered".
#[test]
fn a_log_shorter_than_its_recorded_checkpoint_is_refused() {
    let dir = scratch("short");
    let mut store = Store::create(&dir).unwrap();
    commit_batches(&mut store, &[2, 3]);
    drop(store);
    let segment = only_segment(&dir);
    let bytes = std::fs::read(&segment).unwrap();
    let first_commit = encode_segment(&expected_frames(&[2])).len();
    std::fs::write(&segment, &bytes[..first_commit + 4]).unwrap();
    let err = format!("{:#}", Store::open(&dir).err().expect("refused"));
    assert!(err.contains("records 5 committed entries"), "{err}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes[..first_commit + 4]);
}

#[test]
fn segments_roll_over_and_a_sealed_segment_is_rewritten_whole() {
    let dir = scratch("segments");
    let mut store = Store::create(&dir).unwrap();
    store.set_segment_limit(64);
    commit_batches(&mut store, &[2, 2, 2]);
    let segments = store.segments();
    assert_eq!(segments.len(), 4, "{segments:?}");
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.first_seq, s.entries))
            .collect::<Vec<_>>(),
        vec![(0, 2), (2, 2), (4, 2), (6, 0)]
    );
    // Replacing entry 3 (in the second segment) by other bytes: the store does not read them.
    let replacement = b"entry 3, another encoding".to_vec();
    let replacements = BTreeMap::from([(3u64, replacement.clone())]);
    store.replace_entries(&segments[1], &replacements).unwrap();
    assert_eq!(store.reader().read_entry(3).unwrap().unwrap(), replacement);
    assert_eq!(store.reader().read_entry(2).unwrap().unwrap(), entry(2));
    // The segment being written is never rewritten.
    assert!(
        store
            .replace_entries(&segments[3], &BTreeMap::new())
            .is_err()
    );
    drop(store);
    let (_, frames, _) = Store::open(&dir).unwrap();
    let mut expected = expected_frames(&[2, 2, 2]);
    expected[4] = Frame::Entry(replacement);
    assert_eq!(frames, expected);
}
