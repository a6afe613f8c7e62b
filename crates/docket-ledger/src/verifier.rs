//! The streaming verifier: feed it a log's entries and checkpoints in order; it keeps O(log n)
//! state and reports the FIRST thing wrong, where it is and why. See `docs/log-format.md` §8.

use crate::checkpoint::SignedCheckpoint;
use crate::entry::{
    DecodeError, Entry, EntryKind, LeafForm, MAX_INLINE_RECORD_LEN, entry_signature_message,
};
use crate::hash::Hash;
use crate::keys::PublicKey;
use crate::merkle::Frontier;
use crate::prune::check_prune_record;
use crate::record::{GenesisRecord, KeyRotationRecord, LOG_FORMAT, SigningMode};
use crate::sealer::{ChainState, check_record};
use std::fmt;

/// What is wrong. Each failure has one name, so tools and tests can rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The bytes are not an entry, checkpoint or export line at all.
    Malformed,
    /// The entry's sequence number is not its position: an entry was dropped, duplicated,
    /// reordered or inserted.
    WrongSequence,
    /// The entry's `prev` is not the hash of the entry before it.
    BrokenLink,
    /// The stored entry hash is not the hash of the entry's body: the entry was altered.
    BadHash,
    /// The record is not what its kind requires.
    BadRecord,
    /// Entry 0 is not a well-formed genesis entry.
    BadGenesis,
    /// The log was started by a key other than the one the verifier trusts.
    UntrustedKey,
    /// The entry names a key that is not the log's key in force.
    UnknownKey,
    /// An entry that must be signed on its own carries no signature.
    MissingSignature,
    /// An entry or checkpoint signature does not verify.
    BadSignature,
    /// An entry's timestamp is earlier than the one before it.
    TimestampRegression,
    /// A checkpoint does not describe the log as verified so far (origin, size or root).
    CheckpointMismatch,
    /// The log ends before everything in it is signed, or before a trusted checkpoint's size.
    Truncated,
    /// An entry's payload was removed but no prune entry of the log authorizes it.
    UnauthorizedPrune,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Malformed => "malformed",
            Failure::WrongSequence => "wrong-sequence",
            Failure::BrokenLink => "broken-link",
            Failure::BadHash => "bad-hash",
            Failure::BadRecord => "bad-record",
            Failure::BadGenesis => "bad-genesis",
            Failure::UntrustedKey => "untrusted-key",
            Failure::UnknownKey => "unknown-key",
            Failure::MissingSignature => "missing-signature",
            Failure::BadSignature => "bad-signature",
            Failure::TimestampRegression => "timestamp-regression",
            Failure::CheckpointMismatch => "checkpoint-mismatch",
            Failure::Truncated => "truncated",
            Failure::UnauthorizedPrune => "unauthorized-prune",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The entry at this position of the log (its sequence number, if it were right).
    Entry(u64),
    /// The checkpoint that followed this many entries.
    Checkpoint(u64),
    /// The end of the log.
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub location: Location,
    pub failure: Failure,
    pub detail: String,
}

/// `entry N`, `checkpoint after N entries` or `end of log` (log-format §8).
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Entry(seq) => write!(f, "entry {seq}"),
            Location::Checkpoint(size) => write!(f, "checkpoint after {size} entries"),
            Location::End => f.write_str("end of log"),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.failure, self.detail)
    }
}

impl std::error::Error for VerifyError {}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    pub root: Hash,
    pub checkpoints: u64,
    /// The size of the last checkpoint verified.
    pub last_checkpoint_size: u64,
    pub first_timestamp_ns: u64,
    pub last_timestamp_ns: u64,
    /// Entries per kind, in `EntryKind::KNOWN` order (pruned entries included).
    pub kinds: [u64; 7],
    /// Entries whose payload was pruned.
    pub pruned_entries: u64,
    /// The log's prune entries, in order, with what each authorized.
    pub prunes: Vec<PruneSummary>,
    /// Every key the log has used, the genesis key first.
    pub keys: Vec<PublicKey>,
    /// The size of the trusted tree head or checkpoint the log was required to reach, if any.
    pub trusted_size: Option<u64>,
    /// The state to continue the log from.
    pub state: ChainState,
}

/// A prune entry as the verifier found it: signed, within retention, and the pruned entries it
/// accounts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneSummary {
    /// The prune entry's own position and timestamp.
    pub seq: u64,
    pub timestamp_ns: u64,
    /// The range it examined, inclusive; it authorizes the pruned entries within its runs.
    pub first: u64,
    pub last: u64,
    /// The payloads it says it removed, and how many of them the log shows pruned (fewer when a
    /// prune was interrupted after its entry was sealed, or the log was copied in between).
    pub entries: u64,
    pub pruned_found: u64,
    /// The policy versions whose retention rules allowed it.
    pub policy_versions: Vec<String>,
}

impl Report {
    pub fn count(&self, kind: EntryKind) -> u64 {
        EntryKind::KNOWN
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.kinds[i])
    }
}

/// The checks of one entry that do not depend on the entries before it: decoding, hashing the
/// body, checking the record, and the entry's signature under the key the caller expects to be in
/// force. They are most of the work of verifying a log, so a verifier with several cores can run
/// [`precheck`] on many entries at once and push the results in order with
/// [`Verifier::push_prechecked`]; the sequential part (sequence, links, keys in force,
/// timestamps, the tree) stays in the [`Verifier`].
#[derive(Clone, Debug)]
pub struct Prechecked {
    decoded: Result<Entry, DecodeError>,
    computed_hash: Hash,
    record_check: Result<(), String>,
    /// The key the signature was checked under, and whether it verified.
    signature_checked: Option<(PublicKey, bool)>,
}

/// Runs the independent checks of one binary entry. `key` is the key expected to be in force
/// (the log's key); without one, or if the key in force turns out to differ, the signature is
/// checked when the entry is pushed.
pub fn precheck(bytes: &[u8], key: Option<&PublicKey>) -> Prechecked {
    match Entry::decode(bytes) {
        Ok(entry) => {
            // A pruned entry has no body left: its hash is taken as stored and bound by the
            // checkpoints after it (see `Verifier::accept`).
            let (computed_hash, record_check) = if entry.is_pruned() {
                (entry.hash, Ok(()))
            } else {
                (entry.compute_hash(), check_record(&entry.record))
            };
            let signature_checked = match (key, &entry.signature) {
                (Some(key), Some(sig)) => Some((
                    key.clone(),
                    key.verify(&entry_signature_message(&entry.hash), sig),
                )),
                _ => None,
            };
            Prechecked {
                decoded: Ok(entry),
                computed_hash,
                record_check,
                signature_checked,
            }
        }
        Err(e) => Prechecked {
            decoded: Err(e),
            computed_hash: Hash::ZERO,
            record_check: Ok(()),
            signature_checked: None,
        },
    }
}

/// A streaming verifier. Push entries and checkpoints in log order, then call [`Verifier::finish`].
/// After the first failure every call returns that failure again.
pub struct Verifier {
    trusted: PublicKey,
    expected_origin: Option<String>,
    trusted_checkpoint: Option<(u64, Hash)>,
    root_at_trusted_size: Option<Hash>,
    /// A whole checkpoint note to reach ([`Verifier::expect_checkpoint`]), and what was found
    /// wrong with it when the log reached its size.
    trusted_note: Option<SignedCheckpoint>,
    trusted_note_failure: Option<(Failure, String)>,
    state: Option<ChainState>,
    frontier: Frontier,
    keys: Vec<PublicKey>,
    first_unsigned: Option<u64>,
    checkpoints: u64,
    last_checkpoint_size: u64,
    first_timestamp_ns: u64,
    kinds: [u64; 7],
    /// Runs (first, last) of pruned entries that no prune entry has authorized yet. A prune
    /// entry always follows the entries it prunes, so the check is deferred to it.
    unauthorized_pruned: Vec<(u64, u64)>,
    /// The first pruned entry no checkpoint has bound yet (its hash cannot be recomputed, so
    /// only a Merkle root over it can vouch for it).
    first_unbound_pruned: Option<u64>,
    pruned_entries: u64,
    prunes: Vec<PruneSummary>,
    /// One bit per entry read, set for entries of a prunable kind (decisions and ingested
    /// events): a prune entry's ranges may hold only those (§4.8), and the entries they name are
    /// all behind it.
    prunable: Vec<u64>,
    failed: Option<VerifyError>,
}

impl Verifier {
    /// A verifier that trusts `genesis_key`: the log must have been started by it.
    pub fn new(genesis_key: PublicKey) -> Verifier {
        Verifier {
            trusted: genesis_key,
            expected_origin: None,
            trusted_checkpoint: None,
            root_at_trusted_size: None,
            trusted_note: None,
            trusted_note_failure: None,
            state: None,
            frontier: Frontier::new(),
            keys: Vec::new(),
            first_unsigned: None,
            checkpoints: 0,
            last_checkpoint_size: 0,
            first_timestamp_ns: 0,
            kinds: [0; 7],
            unauthorized_pruned: Vec::new(),
            first_unbound_pruned: None,
            pruned_entries: 0,
            prunable: Vec::new(),
            prunes: Vec::new(),
            failed: None,
        }
    }

    /// Requires the log's origin to be this one (e.g. from an export header).
    pub fn expect_origin(&mut self, origin: &str) {
        self.expected_origin = Some(origin.to_string());
    }

    /// Requires the log to extend a tree head obtained elsewhere (e.g. the latest checkpoint a
    /// witness or the server published): catches truncation at a checkpoint boundary.
    pub fn expect_tree_head(&mut self, size: u64, root: Hash) {
        self.trusted_checkpoint = Some((size, root));
    }

    /// Requires the log to reach a checkpoint kept from before (a rollback to an older, shorter
    /// log is then **truncated**): at its size the log's root must be its root, its origin the
    /// log's, and it must be signed by the key in force there (after a key rotation, the new
    /// key), as §8 requires of every checkpoint. Fails only if the note is not a checkpoint.
    pub fn expect_checkpoint(&mut self, note: &str) -> Result<(), String> {
        let signed = SignedCheckpoint::parse(note).map_err(|e| e.0)?;
        if signed.checkpoint.size == 0 {
            return Err("a checkpoint of the empty tree commits to nothing".into());
        }
        self.trusted_checkpoint = Some((signed.checkpoint.size, signed.checkpoint.root));
        self.trusted_note = Some(signed);
        Ok(())
    }

    /// Entries verified so far.
    pub fn entries(&self) -> u64 {
        self.frontier.size()
    }

    fn fail(
        &mut self,
        location: Location,
        failure: Failure,
        detail: impl Into<String>,
    ) -> VerifyError {
        let error = VerifyError {
            location,
            failure,
            detail: detail.into(),
        };
        self.failed = Some(error.clone());
        error
    }

    /// Decodes a binary entry and pushes it.
    pub fn push_entry_bytes(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        self.push_prechecked(&precheck(bytes, None))
    }

    /// Pushes an entry whose independent checks [`precheck`] has already done (possibly on
    /// another thread). The verdict is exactly that of [`Verifier::push_entry_bytes`] on the
    /// same bytes: a signature checked under a key other than the one in force is checked again.
    pub fn push_prechecked(&mut self, prechecked: &Prechecked) -> Result<(), VerifyError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match &prechecked.decoded {
            Ok(entry) => self.accept(entry, Some(prechecked)),
            Err(e) => {
                let at = Location::Entry(self.entries());
                Err(self.fail(at, Failure::Malformed, e.0.clone()))
            }
        }
    }

    /// Reports a line or frame that could not be read as the next entry.
    pub fn push_malformed(&mut self, detail: impl Into<String>) -> VerifyError {
        if let Some(error) = &self.failed {
            return error.clone();
        }
        let at = Location::Entry(self.entries());
        self.fail(at, Failure::Malformed, detail)
    }

    pub fn push_entry(&mut self, entry: &Entry) -> Result<(), VerifyError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.accept(entry, None)
    }

    /// Log-format §8's steps for one entry, in the document's order: one function so that the
    /// order of the checks, which decides which failure is reported, reads as the spec does.
    fn accept(&mut self, entry: &Entry, pre: Option<&Prechecked>) -> Result<(), VerifyError> {
        let position = self.entries();
        let at = Location::Entry(position);
        // Order matters: structure first (sequence, link, hash), then meaning. A change to any
        // hashed byte other than seq and prev is therefore always reported as bad-hash.
        if entry.seq != position {
            let detail = format!(
                "sequence number {} where {position} was expected: an entry was dropped, \
                 duplicated, reordered or inserted",
                entry.seq
            );
            return Err(self.fail(at, Failure::WrongSequence, detail));
        }
        let expected_prev = self.state.as_ref().map_or(Hash::ZERO, |s| s.head);
        if entry.prev != expected_prev {
            let detail = if position == 0 {
                "the genesis entry's prev must be all zeros".to_string()
            } else {
                format!(
                    "prev {} is not the hash of entry {} ({expected_prev})",
                    entry.prev,
                    position - 1
                )
            };
            return Err(self.fail(at, Failure::BrokenLink, detail));
        }
        if entry.is_pruned() {
            // Nothing left to hash. The stored hash stands in the chain (the next full entry's
            // prev commits to it) and in the tree (every later checkpoint's root does); a prune
            // entry later in the log must authorize it (see `finish`).
            if !entry.kind.is_prunable() {
                let detail = format!(
                    "a {} entry's record was removed; only decision and ingested payloads are \
                     ever pruned",
                    entry.kind
                );
                return Err(self.fail(at, Failure::BadRecord, detail));
            }
        } else {
            let computed = pre.map_or_else(|| entry.compute_hash(), |p| p.computed_hash);
            if computed != entry.hash {
                let detail = format!(
                    "stored hash {} but the entry hashes to {computed}: its contents were altered",
                    entry.hash
                );
                return Err(self.fail(at, Failure::BadHash, detail));
            }
            if entry.leaf == LeafForm::Digest && entry.record.len() <= MAX_INLINE_RECORD_LEN {
                let detail = format!(
                    "the entry is in the digest form but its {}-byte record fits in its body \
                     (the digest form is only for records over {MAX_INLINE_RECORD_LEN} bytes)",
                    entry.record.len()
                );
                return Err(self.fail(at, Failure::Malformed, detail));
            }
            let record_check = match pre {
                Some(p) => p.record_check.clone(),
                None => check_record(&entry.record),
            };
            if let Err(why) = record_check {
                return Err(self.fail(at, Failure::BadRecord, why));
            }
        }
        let signature_checked = pre.and_then(|p| p.signature_checked.clone());
        if position == 0 {
            self.accept_genesis(entry, signature_checked)?;
        } else {
            self.accept_next(entry, signature_checked)?;
        }
        self.frontier.push(entry.hash);
        if let Some((size, _)) = self.trusted_checkpoint
            && size == self.frontier.size()
        {
            self.root_at_trusted_size = Some(self.frontier.root());
            if let (Some(note), Some(state)) = (&self.trusted_note, &self.state) {
                self.trusted_note_failure = if note.checkpoint.origin != state.origin {
                    Some((
                        Failure::CheckpointMismatch,
                        format!(
                            "the trusted checkpoint belongs to another log (origin {:?}; this log's is {:?})",
                            note.checkpoint.origin, state.origin
                        ),
                    ))
                } else if !note.is_signed_by(&state.key) {
                    Some((
                        Failure::BadSignature,
                        format!(
                            "the trusted checkpoint is not signed by the key in force at size {size} ({})",
                            state.key.to_vkey()
                        ),
                    ))
                } else {
                    None
                };
            }
        }
        let kind_index = EntryKind::KNOWN
            .iter()
            .position(|k| *k == entry.kind)
            .expect("checked");
        self.kinds[kind_index] += 1;
        if position.is_multiple_of(64) {
            self.prunable.push(0);
        }
        if entry.kind.is_prunable() {
            self.prunable[(position / 64) as usize] |= 1 << (position % 64);
        }
        if entry.is_pruned() {
            self.pruned_entries += 1;
            self.first_unbound_pruned.get_or_insert(position);
            match self.unauthorized_pruned.last_mut() {
                Some((_, last)) if *last + 1 == position => *last = position,
                _ => self.unauthorized_pruned.push((position, position)),
            }
        }
        if entry.signature.is_some() {
            // A signed entry commits, through its prev link, to every entry before it.
            self.first_unsigned = None;
        } else if self.first_unsigned.is_none() {
            self.first_unsigned = Some(position);
        }
        Ok(())
    }

    fn check_signature(
        &mut self,
        entry: &Entry,
        key: &PublicKey,
        required: bool,
        checked: Option<(PublicKey, bool)>,
    ) -> Result<(), VerifyError> {
        let at = Location::Entry(entry.seq);
        let verifies = |sig: &[u8; 64]| match &checked {
            Some((checked_key, verdict)) if checked_key == key => *verdict,
            _ => key.verify(&entry_signature_message(&entry.hash), sig),
        };
        match &entry.signature {
            Some(sig) if verifies(sig) => Ok(()),
            Some(_) => {
                let detail = format!(
                    "the signature does not verify under key {} ({})",
                    key.id(),
                    key.name()
                );
                Err(self.fail(at, Failure::BadSignature, detail))
            }
            None if required => {
                let detail = format!("a {} entry must carry its own signature", entry.kind);
                Err(self.fail(at, Failure::MissingSignature, detail))
            }
            None => Ok(()),
        }
    }

    fn accept_genesis(
        &mut self,
        entry: &Entry,
        signature_checked: Option<(PublicKey, bool)>,
    ) -> Result<(), VerifyError> {
        let at = Location::Entry(0);
        if entry.kind != EntryKind::Genesis {
            let detail = format!(
                "entry 0 is a {} entry; a log starts with its genesis entry",
                entry.kind
            );
            return Err(self.fail(at, Failure::BadGenesis, detail));
        }
        let record: GenesisRecord = match serde_json::from_slice(&entry.record) {
            Ok(r) => r,
            Err(e) => {
                return Err(self.fail(at, Failure::BadGenesis, format!("genesis record: {e}")));
            }
        };
        if record.docket_log != LOG_FORMAT {
            let detail = format!(
                "log format {:?}; this verifier reads {LOG_FORMAT:?}",
                record.docket_log
            );
            return Err(self.fail(at, Failure::BadGenesis, detail));
        }
        let key = match PublicKey::from_vkey(&record.key) {
            Ok(k) => k,
            Err(e) => return Err(self.fail(at, Failure::BadGenesis, format!("genesis key: {e}"))),
        };
        if let Some(origin) = &self.expected_origin
            && origin != &record.origin
        {
            let detail = format!(
                "the log's origin is {:?}, expected {origin:?}",
                record.origin
            );
            return Err(self.fail(at, Failure::BadGenesis, detail));
        }
        if crate::sealer::check_origin(&record.origin).is_err() {
            return Err(self.fail(
                at,
                Failure::BadGenesis,
                format!("invalid origin {:?}", record.origin),
            ));
        }
        if key != self.trusted {
            let detail = format!(
                "the log was started by key {} but the trusted key is {}",
                key.to_vkey(),
                self.trusted.to_vkey()
            );
            return Err(self.fail(at, Failure::UntrustedKey, detail));
        }
        if entry.key_id != key.id() {
            let detail = format!(
                "entry names key {} but the genesis key is {}",
                entry.key_id,
                key.id()
            );
            return Err(self.fail(at, Failure::UnknownKey, detail));
        }
        self.check_signature(entry, &key, true, signature_checked)?;
        self.first_timestamp_ns = entry.timestamp_ns;
        self.keys.push(key.clone());
        self.state = Some(ChainState {
            origin: record.origin,
            signing: record.signing,
            instance_id: record.labels.id,
            chain_id: entry.hash,
            size: 1,
            head: entry.hash,
            last_timestamp_ns: entry.timestamp_ns,
            key,
            frontier: Frontier::new(),
        });
        Ok(())
    }

    fn accept_next(
        &mut self,
        entry: &Entry,
        signature_checked: Option<(PublicKey, bool)>,
    ) -> Result<(), VerifyError> {
        let at = Location::Entry(entry.seq);
        let state = self.state.as_ref().expect("genesis accepted");
        let key = state.key.clone();
        let signing = state.signing;
        let last_ts = state.last_timestamp_ns;
        match entry.kind {
            EntryKind::Genesis => {
                return Err(self.fail(
                    at,
                    Failure::BadRecord,
                    "a second genesis entry inside the log",
                ));
            }
            EntryKind::Unknown(b) => {
                return Err(self.fail(at, Failure::BadRecord, format!("unknown entry kind {b}")));
            }
            _ => {}
        }
        if entry.key_id != key.id() {
            let detail = format!(
                "entry names key {} but the key in force is {} ({})",
                entry.key_id,
                key.id(),
                key.name()
            );
            return Err(self.fail(at, Failure::UnknownKey, detail));
        }
        let required = entry.kind.always_signed() || signing == SigningMode::Entry;
        self.check_signature(entry, &key, required, signature_checked)?;
        if entry.timestamp_ns < last_ts {
            let detail = format!(
                "timestamp {} is earlier than the previous entry's {last_ts}",
                entry.timestamp_ns
            );
            return Err(self.fail(at, Failure::TimestampRegression, detail));
        }
        if entry.kind == EntryKind::Prune {
            match check_prune_record(&entry.record, entry.seq, entry.timestamp_ns) {
                Ok(record) => {
                    if let Some(seq) = self.first_unprunable(&record.ranges) {
                        let detail = format!(
                            "prune record: its ranges name entry {seq}, which is neither a \
                             decision nor an ingested event; only their payloads are pruned"
                        );
                        return Err(self.fail(at, Failure::BadRecord, detail));
                    }
                    self.authorize_prune(entry, record)
                }
                Err(why) => return Err(self.fail(at, Failure::BadRecord, why)),
            }
        }
        let mut next_key = None;
        if entry.kind == EntryKind::KeyRotation {
            let parsed = serde_json::from_slice::<KeyRotationRecord>(&entry.record)
                .map_err(|e| e.to_string())
                .and_then(|r| PublicKey::from_vkey(&r.new_key).map_err(|e| e.to_string()));
            match parsed {
                Ok(k) => next_key = Some(k),
                Err(e) => {
                    return Err(self.fail(at, Failure::BadRecord, format!("key rotation: {e}")));
                }
            }
        }
        let state = self.state.as_mut().expect("genesis accepted");
        state.size += 1;
        state.head = entry.hash;
        state.last_timestamp_ns = entry.timestamp_ns;
        if let Some(k) = next_key {
            state.key = k.clone();
            self.keys.push(k);
        }
        Ok(())
    }

    /// The first entry in `ranges` (all before the current entry) of a kind never pruned.
    fn first_unprunable(&self, ranges: &[(u64, u64)]) -> Option<u64> {
        ranges.iter().find_map(|&(first, last)| {
            (first..=last).find(|&seq| {
                let word = self.prunable.get((seq / 64) as usize).copied().unwrap_or(0);
                word & (1 << (seq % 64)) == 0
            })
        })
    }

    /// Takes the pruned entries within a prune entry's range off the unauthorized list.
    fn authorize_prune(&mut self, entry: &Entry, record: crate::prune::PruneRecord) {
        let mut found = 0;
        for &(first, last) in &record.ranges {
            let mut remaining = Vec::with_capacity(self.unauthorized_pruned.len() + 1);
            for &(run_first, run_last) in &self.unauthorized_pruned {
                if run_last < first || run_first > last {
                    remaining.push((run_first, run_last));
                    continue;
                }
                found += run_last.min(last) - run_first.max(first) + 1;
                if run_first < first {
                    remaining.push((run_first, first - 1));
                }
                if run_last > last {
                    remaining.push((last + 1, run_last));
                }
            }
            self.unauthorized_pruned = remaining;
        }
        self.prunes.push(PruneSummary {
            seq: entry.seq,
            timestamp_ns: entry.timestamp_ns,
            first: record.first,
            last: record.last,
            entries: record.entries,
            pruned_found: found,
            policy_versions: record.policy_versions,
        });
    }

    /// Pushes a signed checkpoint note. It must describe the log exactly as pushed so far.
    pub fn push_checkpoint(&mut self, note: &str) -> Result<(), VerifyError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let size = self.entries();
        let at = Location::Checkpoint(size);
        let signed = match SignedCheckpoint::parse(note) {
            Ok(s) => s,
            Err(e) => return Err(self.fail(at, Failure::Malformed, e.0)),
        };
        let Some(state) = self.state.as_ref() else {
            return Err(self.fail(
                at,
                Failure::CheckpointMismatch,
                "a checkpoint before the genesis entry",
            ));
        };
        let checkpoint = &signed.checkpoint;
        if checkpoint.origin != state.origin {
            let detail = format!(
                "origin {:?} is not the log's {:?}",
                checkpoint.origin, state.origin
            );
            return Err(self.fail(at, Failure::CheckpointMismatch, detail));
        }
        if checkpoint.size != size {
            let detail = format!(
                "the checkpoint is for a tree of {} entries but it follows entry {}",
                checkpoint.size,
                size as i128 - 1
            );
            return Err(self.fail(at, Failure::CheckpointMismatch, detail));
        }
        let root = self.frontier.root();
        if checkpoint.root != root {
            let detail = format!(
                "root {} but the entries so far give {root}",
                checkpoint.root
            );
            return Err(self.fail(at, Failure::CheckpointMismatch, detail));
        }
        let key = state.key.clone();
        if !signed.is_signed_by(&key) {
            let detail = format!(
                "no valid signature by the key in force {} ({})",
                key.id(),
                key.name()
            );
            return Err(self.fail(at, Failure::BadSignature, detail));
        }
        self.checkpoints += 1;
        self.last_checkpoint_size = size;
        self.first_unsigned = None;
        self.first_unbound_pruned = None;
        Ok(())
    }

    /// Ends the log: everything must be signed, and the log must reach any trusted tree head.
    pub fn finish(mut self) -> Result<Report, VerifyError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let entries = self.entries();
        let Some(mut state) = self.state.take() else {
            return Err(self.fail(Location::End, Failure::Truncated, "the log has no entries"));
        };
        if let Some(first) = self.first_unsigned {
            let detail = format!(
                "entries {first} to {} are covered by no signature: the log was cut after them, \
                 or the checkpoint sealing them is missing",
                entries - 1
            );
            return Err(self.fail(Location::Entry(first), Failure::Truncated, detail));
        }
        if let Some(first) = self.first_unbound_pruned {
            let detail = format!(
                "entry {first} is pruned and no checkpoint after it binds its hash: the log was \
                 cut after it, or its checkpoints are missing"
            );
            return Err(self.fail(Location::Entry(first), Failure::Truncated, detail));
        }
        if let Some(&(first, last)) = self.unauthorized_pruned.first() {
            let detail = format!(
                "entries {first} to {last} have had their payloads removed, but no prune entry \
                 authorizes it: the log was tampered with"
            );
            return Err(self.fail(Location::Entry(first), Failure::UnauthorizedPrune, detail));
        }
        if let Some((size, root)) = self.trusted_checkpoint {
            match self.root_at_trusted_size {
                None => {
                    let detail = format!(
                        "the log has {entries} entries but the trusted checkpoint commits to {size}"
                    );
                    return Err(self.fail(Location::End, Failure::Truncated, detail));
                }
                Some(found) if found != root => {
                    let detail = format!(
                        "at size {size} the log's root is {found}, the trusted checkpoint says {root}"
                    );
                    return Err(self.fail(
                        Location::Checkpoint(size),
                        Failure::CheckpointMismatch,
                        detail,
                    ));
                }
                Some(_) => {}
            }
            if let Some((failure, detail)) = self.trusted_note_failure.take() {
                return Err(self.fail(Location::Checkpoint(size), failure, detail));
            }
        }
        state.frontier = self.frontier.clone();
        Ok(Report {
            entries,
            root: self.frontier.root(),
            checkpoints: self.checkpoints,
            last_checkpoint_size: self.last_checkpoint_size,
            first_timestamp_ns: self.first_timestamp_ns,
            last_timestamp_ns: state.last_timestamp_ns,
            kinds: self.kinds,
            pruned_entries: self.pruned_entries,
            prunes: self.prunes,
            keys: self.keys,
            trusted_size: self.trusted_checkpoint.map(|(size, _)| size),
            state,
        })
    }
}
