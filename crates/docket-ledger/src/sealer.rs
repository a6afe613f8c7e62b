//! The sealer: turns records into chained, signed entries and issues checkpoints.
//!
//! It holds the chain head and the signing key and does no I/O: the caller supplies the time and
//! persists what it returns. Its state can be read out ([`ChainState`]) and resumed from.

use crate::checkpoint::Checkpoint;
use crate::entry::{Entry, EntryKind, LeafForm, MAX_RECORD_LEN, entry_signature_message};
use crate::hash::Hash;
use crate::keys::{PublicKey, SecretKey};
use crate::masking::MaskSalt;
use crate::merkle::Frontier;
use crate::record::{
    Decision, GenesisRecord, KeyRotationRecord, LOG_FORMAT, Labels, SigningMode, decision_id,
    decision_record, rfc3339,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The version label docket writes into records.
pub const DOCKET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything needed to continue a log: what the verifier reports at its end and what a sealer
/// resumes from. It holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainState {
    pub origin: String,
    pub signing: SigningMode,
    /// The instance id from the genesis record, written into every decision's labels.
    pub instance_id: String,
    /// The genesis entry's hash: the log's identity.
    pub chain_id: Hash,
    /// The number of entries, which is also the next sequence number.
    pub size: u64,
    /// The hash of the last entry.
    pub head: Hash,
    pub last_timestamp_ns: u64,
    /// The key in force: it signs the next entry and checkpoint.
    pub key: PublicKey,
    pub frontier: Frontier,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The key given does not belong to the log (its public key differs from the one in force).
    KeyMismatch {
        expected: String,
        found: String,
    },
    InvalidOrigin(String),
    InvalidRecord(String),
    InvalidState(String),
    /// The log's own rules forbid it (e.g. pruning an entry still under retention).
    Refused(String),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::KeyMismatch { expected, found } => write!(
                f,
                "the signing key does not match the log: the log's key in force is {expected}, \
                 the key given is {found}; use the log's current key file"
            ),
            SealError::InvalidOrigin(why) => write!(f, "invalid log origin: {why}"),
            SealError::InvalidRecord(why) => write!(f, "invalid record: {why}"),
            SealError::InvalidState(why) => write!(f, "invalid chain state: {why}"),
            SealError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl std::error::Error for SealError {}

/// A log origin is one line of printable text (it becomes the first line of every checkpoint).
pub fn check_origin(origin: &str) -> Result<(), SealError> {
    if origin.is_empty() || origin.len() > 256 {
        return Err(SealError::InvalidOrigin("must be 1 to 256 bytes".into()));
    }
    // Visible ASCII only: no spaces, no controls, and nothing that renders as something else
    // (a zero-width space or a homoglyph would make two origins look the same).
    if !origin.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SealError::InvalidOrigin(format!(
            "{origin:?} must be visible ASCII (bytes 0x21 to 0x7E: no spaces, controls or \
             non-ASCII characters), e.g. a schema-less URL such as docket.example/audit"
        )));
    }
    Ok(())
}

/// Parameters of a new log.
#[derive(Clone, Debug)]
pub struct GenesisParams {
    pub origin: String,
    pub instance_id: String,
    pub signing: SigningMode,
}

pub struct Sealer {
    key: SecretKey,
    state: ChainState,
    labels: Labels,
    /// Decisions the logging rules dropped since the last tally entry.
    dropped: Tally,
}

/// What [`Sealer::seal_decision`] did with a decision.
// Returned by value once per decision and matched at once; boxing the entry would add an
// allocation to the sealing hot path to shrink a value that never sits in a collection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SealedDecision {
    Sealed {
        entry: Entry,
        decision_id: String,
        /// One per value masked out of the record, for the caller to keep apart from the log.
        salts: Vec<MaskSalt>,
    },
    /// The logging rules dropped it: not sealed, counted in the next tally entry.
    Dropped,
}

impl SealedDecision {
    /// The sealed entry; `None` for a dropped decision.
    pub fn into_entry(self) -> Option<Entry> {
        match self {
            SealedDecision::Sealed { entry, .. } => Some(entry),
            SealedDecision::Dropped => None,
        }
    }
}

/// Dropped decisions not yet sealed in a tally entry (docs/log-format.md §4.7).
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    paths: BTreeMap<String, u64>,
    policy_versions: BTreeSet<String>,
    first_ns: u64,
    last_ns: u64,
}

#[derive(serde::Serialize)]
struct TallyRecord<'a> {
    tally: &'static str,
    count: u64,
    paths: &'a BTreeMap<String, u64>,
    policy_versions: &'a BTreeSet<String>,
    first: String,
    last: String,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Starts a new log: returns the sealer and the genesis entry (seq 0, signed).
    pub fn genesis(
        key: SecretKey,
        params: GenesisParams,
        now_ns: u64,
    ) -> Result<(Sealer, Entry), SealError> {
        check_origin(&params.origin)?;
        let labels = Labels {
            id: params.instance_id.clone(),
            version: DOCKET_VERSION.to_string(),
        };
        let record = GenesisRecord {
            docket_log: LOG_FORMAT.to_string(),
            origin: params.origin.clone(),
            key: key.public().to_vkey(),
            signing: params.signing,
            labels: labels.clone(),
        };
        let state = ChainState {
            origin: params.origin,
            signing: params.signing,
            instance_id: params.instance_id,
            chain_id: Hash::ZERO,
            size: 0,
            head: Hash::ZERO,
            last_timestamp_ns: 0,
            key: key.public().clone(),
            frontier: Frontier::new(),
        };
        let mut sealer = Sealer {
            key,
            state,
            labels,
            dropped: Tally::default(),
        };
        let record = serde_json::to_vec(&record).expect("records serialize");
        let entry = sealer.append(EntryKind::Genesis, record, now_ns);
        sealer.state.chain_id = entry.hash;
        Ok((sealer, entry))
    }

    /// Continues a log from its state. The key must be the log's key in force.
    pub fn resume(key: SecretKey, state: ChainState) -> Result<Sealer, SealError> {
        if key.public() != &state.key {
            return Err(SealError::KeyMismatch {
                expected: state.key.to_vkey(),
                found: key.public().to_vkey(),
            });
        }
        if state.size == 0 || state.frontier.size() != state.size {
            return Err(SealError::InvalidState(format!(
                "a log of {} entries with a tree of {} leaves cannot be continued",
                state.size,
                state.frontier.size()
            )));
        }
        let labels = Labels {
            id: state.instance_id.clone(),
            version: DOCKET_VERSION.to_string(),
        };
        Ok(Sealer {
            key,
            state,
            labels,
            dropped: Tally::default(),
        })
    }

    pub fn state(&self) -> &ChainState {
        &self.state
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// Seals a decision as its logging rules say: writes its record (assigning its decision id,
    /// masking what the rules mask, with salts drawn from `salt`) and appends the entry, or, if
    /// the rules drop it, counts it for the next tally entry.
    pub fn seal_decision(
        &mut self,
        decision: &Decision,
        now_ns: u64,
        salt: &mut dyn FnMut() -> [u8; 32],
    ) -> Result<SealedDecision, SealError> {
        let timestamp_ns = self.next_timestamp(now_ns);
        if decision.log.drop {
            let tally = &mut self.dropped;
            if tally.count == 0 {
                tally.first_ns = timestamp_ns;
            }
            tally.count += 1;
            tally.last_ns = timestamp_ns;
            *tally.paths.entry(decision.path.clone()).or_default() += 1;
            if !tally
                .policy_versions
                .contains(&decision.policy_version.digest)
            {
                let digest = decision.policy_version.digest.clone();
                tally.policy_versions.insert(digest);
            }
            return Ok(SealedDecision::Dropped);
        }
        let id = decision_id(&self.state.chain_id, self.state.size, timestamp_ns);
        let (record, salts) = decision_record(decision, &id, timestamp_ns, &self.labels, salt)
            .map_err(|e| SealError::InvalidRecord(e.0))?;
        let entry = self.append(EntryKind::Decision, record, timestamp_ns);
        Ok(SealedDecision::Sealed {
            entry,
            decision_id: id,
            salts,
        })
    }

    /// Seals the tally of decisions dropped since the last one, if any were: a writer calls
    /// this before every commit, so a dropped decision is answered only once its count is as
    /// durable as an entry would have been.
    pub fn seal_tally(&mut self, now_ns: u64) -> Option<Entry> {
        if self.dropped.count == 0 {
            return None;
        }
        let tally = std::mem::take(&mut self.dropped);
        let record = TallyRecord {
            tally: "dropped",
            count: tally.count,
            paths: &tally.paths,
            policy_versions: &tally.policy_versions,
            first: rfc3339(tally.first_ns),
            last: rfc3339(tally.last_ns),
        };
        let record = serde_json::to_vec(&record).expect("records serialize");
        Some(self.append(EntryKind::Tally, record, now_ns))
    }

    /// The number of dropped decisions waiting for a tally entry.
    pub fn dropped_pending(&self) -> u64 {
        self.dropped.count
    }

    /// Seals a caller-made record of a kind that needs no special handling (policy changes,
    /// ingested events, tallies). The record must be a JSON object.
    pub fn seal_record(
        &mut self,
        kind: EntryKind,
        record: Vec<u8>,
        now_ns: u64,
    ) -> Result<Entry, SealError> {
        if !matches!(
            kind,
            EntryKind::Decision | EntryKind::PolicyChange | EntryKind::Ingested | EntryKind::Tally
        ) {
            return Err(SealError::InvalidRecord(format!(
                "{kind} entries are made by the sealer itself, not from a caller's record"
            )));
        }
        check_record(&record).map_err(SealError::InvalidRecord)?;
        Ok(self.append(kind, record, now_ns))
    }

    /// Hands the log over to a new key: appends a key-rotation entry signed by the current key,
    /// then signs everything after it with the new one.
    pub fn rotate_key(&mut self, new_key: SecretKey, now_ns: u64) -> Result<Entry, SealError> {
        if new_key.public() == self.key.public() {
            return Err(SealError::KeyMismatch {
                expected: "a key different from the one in force".into(),
                found: new_key.public().to_vkey(),
            });
        }
        let record = KeyRotationRecord {
            new_key: new_key.public().to_vkey(),
        };
        let record = serde_json::to_vec(&record).expect("records serialize");
        let entry = self.append(EntryKind::KeyRotation, record, now_ns);
        self.state.key = new_key.public().clone();
        self.key = new_key;
        Ok(entry)
    }

    /// Seals a prune entry authorizing the removal of the payloads of the expired decisions in
    /// `entries` (a run of this log's consecutive entries, as stored), and returns it with the
    /// pruned forms of those entries for the caller to store in their place. Retention is
    /// checked against the prune entry's own timestamp, as a verifier checks it. Refused, with
    /// nothing sealed, if any decision in the run is still under retention or has none.
    ///
    /// Retention is judged by `now_ns` itself, never by a timestamp raised to the log's latest:
    /// if an entry is stamped later than `now_ns`, a clock was wrong (one that jumped ahead
    /// when the entry was sealed, or this one, behind), and a prune decided by either could
    /// remove payloads still under retention, so it is refused.
    pub fn seal_prune(
        &mut self,
        entries: &[Entry],
        now_ns: u64,
    ) -> Result<(Entry, Vec<Entry>), SealError> {
        if let Some(last) = entries.last()
            && last.seq >= self.state.size
        {
            return Err(SealError::InvalidRecord(format!(
                "entry {} is not in the log (it has {} entries)",
                last.seq, self.state.size
            )));
        }
        if now_ns < self.state.last_timestamp_ns {
            return Err(SealError::Refused(format!(
                "the log's newest entry is stamped {}, later than the clock's {}: a clock jumped \
                 ahead when it was sealed, or this one is behind; retention is not judged by \
                 either, so nothing is pruned",
                crate::record::rfc3339(self.state.last_timestamp_ns),
                crate::record::rfc3339(now_ns)
            )));
        }
        let timestamp_ns = now_ns;
        let plan = crate::prune::plan(entries, timestamp_ns)
            .map_err(|refusal| SealError::Refused(refusal.to_string()))?;
        let record = serde_json::to_vec(&plan.record).expect("records serialize");
        Ok((self.append(EntryKind::Prune, record, now_ns), plan.pruned))
    }

    /// The current tree head, signed by the key in force, as a C2SP signed note.
    pub fn checkpoint(&self) -> (Checkpoint, String) {
        let checkpoint = Checkpoint {
            origin: self.state.origin.clone(),
            size: self.state.size,
            root: self.state.frontier.root(),
        };
        let note = checkpoint.sign(&self.key);
        (checkpoint, note)
    }

    /// Timestamps never go backwards within a log, even if the clock does.
    fn next_timestamp(&self, now_ns: u64) -> u64 {
        now_ns.max(self.state.last_timestamp_ns)
    }

    fn append(&mut self, kind: EntryKind, record: Vec<u8>, now_ns: u64) -> Entry {
        let timestamp_ns = self.next_timestamp(now_ns);
        let mut entry = Entry {
            seq: self.state.size,
            prev: self.state.head,
            timestamp_ns,
            kind,
            key_id: self.key.public().id(),
            leaf: LeafForm::for_record_len(record.len()),
            record,
            hash: Hash::ZERO,
            signature: None,
            pruned: None,
        };
        entry.hash = entry.compute_hash();
        if kind.always_signed() || self.state.signing == SigningMode::Entry {
            entry.signature = Some(self.key.sign(&entry_signature_message(&entry.hash)));
        }
        self.state.size += 1;
        self.state.head = entry.hash;
        self.state.last_timestamp_ns = timestamp_ns;
        self.state.frontier.push(entry.hash);
        entry
    }
}

/// A record is a UTF-8 JSON object of at most [`MAX_RECORD_LEN`] bytes that meets docket's JSON
/// rule ([`crate::json`]).
pub fn check_record(record: &[u8]) -> Result<(), String> {
    if record.len() > MAX_RECORD_LEN {
        return Err(format!(
            "record of {} bytes exceeds the {MAX_RECORD_LEN}-byte limit",
            record.len()
        ));
    }
    let first = record.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("record is not a JSON object".into());
    }
    crate::json::check_bytes(record).map_err(|e| format!("record is not valid JSON: {e}"))
}
