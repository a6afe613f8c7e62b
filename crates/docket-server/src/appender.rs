//! The one writer of a served log: a thread that owns the [`AuditLog`], takes each batch of
//! waiting requests from the group-commit queue ([`crate::queue`]), seals it, commits it with
//! one checkpoint and one fsync, and only then answers. Readers see a [`LogView`] that is
//! updated after each durable commit, so nothing that is not on disk is ever served or
//! acknowledged.

use crate::metrics::Metrics;
use crate::queue::{self, Queue};
use anyhow::{Result, anyhow, bail};
use docket_ledger::Entry;
use docket_ledger::merkle::Tree;
use docket_runtime::log::{AuditLog, Sealed, hex};
use docket_runtime::{Decision, EntryKind, SealedEntry};
use docket_store::{Frame, StoreReader};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub use crate::queue::CommitPolicy;

/// Why an append was not acknowledged. The log on disk is intact in every case.
#[derive(Debug, Clone)]
pub enum AppendError {
    /// The request itself was refused (e.g. a record the sealer rejects).
    Rejected(String),
    /// The log could not be written; nothing of the batch was acknowledged.
    Unavailable(String),
    /// The sender's deadline had passed when the writer reached the job: nothing was sealed,
    /// since the sender has already acted as if it were not (docs/api.md, "Deadlines").
    Expired(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Rejected(m) | AppendError::Unavailable(m) | AppendError::Expired(m) => {
                f.write_str(m)
            }
        }
    }
}

/// An ingested batch, as acknowledged.
#[derive(Debug, Clone, Default)]
pub struct IngestReceipt {
    /// Seqs of the sealed events, in the order given.
    pub sealed: Vec<u64>,
    /// Events skipped because an event with the same decision_id is already in the log (OPA
    /// re-sends a chunk whose acknowledgement it did not see).
    pub duplicates: usize,
    /// Events marked dropped by their sender's logging rules: counted in the commit's tally
    /// entry, not sealed one by one.
    pub dropped: usize,
}

/// An ingested event: its compact JSON and its decision_id, if it has one.
pub use docket_wire::IngestEvent;

enum Job {
    Decision {
        decision: Decision,
        queued: Instant,
        reply: oneshot::Sender<Result<Sealed, AppendError>>,
    },
    Record {
        kind: EntryKind,
        json: String,
        reply: oneshot::Sender<Result<u64, AppendError>>,
    },
    Ingest {
        events: Vec<IngestEvent>,
        /// Unix nanoseconds after which the sender no longer waits: not sealed after it.
        deadline_ns: Option<u64>,
        reply: oneshot::Sender<Result<IngestReceipt, AppendError>>,
    },
}

impl Job {
    fn fail(self, e: AppendError) {
        // A requester that went away needs no answer.
        let _ = match self {
            Job::Decision { reply, .. } => reply.send(Err(e)).map_err(|_| ()),
            Job::Record { reply, .. } => reply.send(Err(e)).map_err(|_| ()),
            Job::Ingest { reply, .. } => reply.send(Err(e)).map_err(|_| ()),
        };
    }
}

/// What readers may see of the log: only durable entries.
pub struct LogView {
    pub tree: Tree,
    /// decision_id → seq, for decisions sealed here and ingested events.
    pub decision_ids: HashMap<String, u64>,
    /// The latest durable checkpoint note and the tree size it covers.
    pub checkpoint: String,
    pub checkpoint_size: u64,
    /// Bytes of encoded entries.
    pub entry_bytes: u64,
    /// The log's signing keys in the order they took effect: the genesis key from entry 0, and
    /// each key-rotation entry's new key from the entry after it. The last is in force.
    pub keys: Vec<KeyInForce>,
    /// The genesis entry's hash, once seen.
    chain_id: Option<docket_ledger::Hash>,
}

/// A signing key of the log and where it took effect.
#[derive(Clone, Debug)]
pub struct KeyInForce {
    /// The note verifier key.
    pub vkey: String,
    /// The entry that introduced it: 0 for the genesis key, else the key-rotation entry.
    pub introduced_by: u64,
}

impl LogView {
    /// Builds the view of a log from its verified frames.
    pub fn from_frames(frames: &[Frame]) -> Result<LogView> {
        let mut view = LogView {
            tree: Tree::new(),
            decision_ids: HashMap::new(),
            checkpoint: String::new(),
            checkpoint_size: 0,
            entry_bytes: 0,
            keys: Vec::new(),
            chain_id: None,
        };
        view.extend(frames)?;
        Ok(view)
    }

    /// Adds the frames that follow the ones the view was built from.
    pub fn extend(&mut self, frames: &[Frame]) -> Result<()> {
        for frame in frames {
            match frame {
                Frame::Entry(bytes) => {
                    let entry = Entry::decode(bytes)
                        .map_err(|e| anyhow!("entry {}: {e}", self.tree.size()))?;
                    let seq = self.tree.size();
                    // Frames read from elsewhere (a fleet's stream) are not verified here; an
                    // entry out of place is refused, never indexed where it does not belong.
                    if entry.seq != seq {
                        bail!("entry {} arrives where entry {seq} belongs", entry.seq);
                    }
                    // The genesis entry's hash, which pruned decisions' ids derive from.
                    let chain_id = *self.chain_id.get_or_insert(entry.hash);
                    if let Some(id) = indexed_decision_id(&entry, &chain_id) {
                        self.decision_ids.insert(id, seq);
                    }
                    if let Some(vkey) = introduced_key(&entry) {
                        self.keys.push(KeyInForce {
                            vkey,
                            introduced_by: seq,
                        });
                    }
                    self.tree.push(entry.hash);
                    self.entry_bytes += bytes.len() as u64;
                }
                Frame::Checkpoint(note) => {
                    self.checkpoint = note.clone();
                    self.checkpoint_size = self.tree.size();
                }
            }
        }
        Ok(())
    }

    /// The key that signs the log's checkpoints now.
    pub fn key_in_force(&self) -> Option<&KeyInForce> {
        self.keys.last()
    }

    fn apply(&mut self, entries: &[SealedEntry], ingested_ids: &[(u64, String)], note: &str) {
        for entry in entries {
            if let Some(id) = &entry.decision_id {
                self.decision_ids.insert(id.clone(), entry.seq);
            }
            self.tree.push(docket_ledger::Hash(
                entry
                    .hash
                    .as_slice()
                    .try_into()
                    .expect("32-byte entry hash"),
            ));
            self.entry_bytes += entry.encoded.len() as u64;
        }
        for (seq, id) in ingested_ids {
            self.decision_ids.insert(id.clone(), *seq);
        }
        self.checkpoint = note.to_string();
        self.checkpoint_size = self.tree.size();
    }
}

/// The decision_id a lookup should find an entry by: a decision's own (derived, once pruned),
/// or an ingested event's.
fn indexed_decision_id(entry: &Entry, chain_id: &docket_ledger::Hash) -> Option<String> {
    use docket_ledger::EntryKind as K;
    match entry.kind {
        K::Decision => docket_ledger::record::entry_decision_id(entry, chain_id),
        K::Ingested => docket_ledger::record::record_decision_id(&entry.record),
        _ => None,
    }
}

/// The signing key an entry brings into force: the genesis record's key, a rotation's new key.
/// The log was verified before it is served, so these records parse.
fn introduced_key(entry: &Entry) -> Option<String> {
    use docket_ledger::EntryKind as K;
    use docket_ledger::record::{GenesisRecord, KeyRotationRecord};
    match entry.kind {
        K::Genesis => serde_json::from_slice::<GenesisRecord>(&entry.record)
            .ok()
            .map(|r| r.key),
        K::KeyRotation => serde_json::from_slice::<KeyRotationRecord>(&entry.record)
            .ok()
            .map(|r| r.new_key),
        _ => None,
    }
}

/// Reopens the log after a failed commit: recovery cuts what never became durable and the
/// component re-verifies the rest. Returns the log and a view built from its frames.
pub type Reopen = Box<dyn FnMut() -> Result<(AuditLog, LogView)> + Send>;

/// The handle requests use to append; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
    view: Arc<RwLock<LogView>>,
    /// Replaced when the log is reopened after a failed commit.
    reader: Arc<RwLock<StoreReader>>,
    failure: Arc<RwLock<Option<String>>>,
    /// The size of the latest durable checkpoint, for whoever follows the log (the witness
    /// client).
    checkpoints: tokio::sync::watch::Receiver<u64>,
}

/// Reads the log's durable view and learns of each new checkpoint (see [`Appender::follower`]).
#[derive(Clone)]
pub struct LogFollower {
    view: Arc<RwLock<LogView>>,
    checkpoints: tokio::sync::watch::Receiver<u64>,
}

impl LogFollower {
    pub fn view(&self) -> std::sync::RwLockReadGuard<'_, LogView> {
        self.view.read().expect("view lock")
    }

    /// The size of the latest durable checkpoint, changing with each commit; closed when the
    /// writer stops.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<u64> {
        self.checkpoints.clone()
    }
}

/// The appender thread; joining it waits for the last commit.
pub struct AppenderThread(std::thread::JoinHandle<()>);

impl AppenderThread {
    /// Waits until every queued request is committed and the thread has stopped (after all
    /// [`Appender`] handles are dropped).
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Appender {
    /// Starts the writer thread over an open log whose frames built `view`.
    pub fn start(
        log: AuditLog,
        view: LogView,
        policy: CommitPolicy,
        metrics: Arc<Metrics>,
        reopen: Reopen,
    ) -> (Appender, AppenderThread) {
        let (tx, queue) = queue::channel(policy, batch_entries);
        let reader = Arc::new(RwLock::new(log.reader()));
        let view = Arc::new(RwLock::new(view));
        metrics.observe_log(&view.read().expect("view lock"));
        let failure = Arc::new(RwLock::new(None));
        let (published, checkpoints) =
            tokio::sync::watch::channel(view.read().expect("view lock").checkpoint_size);
        let writer = Writer {
            published,
            log: Some(log),
            reopen,
            reader: Arc::clone(&reader),
            view: Arc::clone(&view),
            metrics,
            failed: Arc::clone(&failure),
        };
        let thread = std::thread::Builder::new()
            .name("docket-appender".into())
            .spawn(move || writer.run(queue))
            .expect("spawning the appender thread");
        (
            Appender {
                jobs: tx,
                view,
                reader,
                failure,
                checkpoints,
            },
            AppenderThread(thread),
        )
    }

    pub fn view(&self) -> std::sync::RwLockReadGuard<'_, LogView> {
        self.view.read().expect("view lock")
    }

    pub fn reader(&self) -> StoreReader {
        self.reader.read().expect("reader lock").clone()
    }

    /// A handle that follows the log's durable checkpoints without being able to append, so
    /// it does not keep the writer alive: when the writer stops, its followers are told.
    pub fn follower(&self) -> LogFollower {
        LogFollower {
            view: Arc::clone(&self.view),
            checkpoints: self.checkpoints.clone(),
        }
    }

    /// Why the log stopped accepting entries, if it did (a failed commit).
    pub fn failure(&self) -> Option<String> {
        self.failure.read().expect("failure lock").clone()
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, AppendError>>) -> Job,
    ) -> Result<T, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| AppendError::Unavailable("the log writer has stopped".into()))?;
        answer.await.map_err(|_| {
            AppendError::Unavailable("the log writer stopped before committing".into())
        })?
    }

    /// Seals a decision and returns once it is durable.
    pub async fn decision(&self, decision: Decision) -> Result<Sealed, AppendError> {
        let queued = Instant::now();
        self.submit(|reply| Job::Decision {
            decision,
            queued,
            reply,
        })
        .await
    }

    /// Seals a record of a caller's kind (a policy change) and returns its seq once durable.
    pub async fn record(&self, kind: EntryKind, json: String) -> Result<u64, AppendError> {
        self.submit(|reply| Job::Record { kind, json, reply }).await
    }

    /// Seals ingested events, skipping ones already in the log, and returns once durable.
    /// Seals OPA decision events. With `deadline_ns`, the events are sealed only if the writer
    /// reaches them before that wall-clock time; later, nothing is sealed and the answer is
    /// [`AppendError::Expired`].
    pub async fn ingest(
        &self,
        events: Vec<IngestEvent>,
        deadline_ns: Option<u64>,
    ) -> Result<IngestReceipt, AppendError> {
        self.submit(|reply| Job::Ingest {
            events,
            deadline_ns,
            reply,
        })
        .await
    }
}

/// What a batch has sealed so far: the replies that wait for its commit, and the decision_ids of
/// the events it ingested (for deduplication within the batch and for the view).
#[derive(Default)]
struct SealedBatch {
    replies: Vec<Reply>,
    ingested_ids: Vec<(u64, String)>,
}

enum Reply {
    Decision(
        oneshot::Sender<Result<Sealed, AppendError>>,
        Sealed,
        Instant,
    ),
    Record(oneshot::Sender<Result<u64, AppendError>>, u64),
    Ingest(
        oneshot::Sender<Result<IngestReceipt, AppendError>>,
        IngestReceipt,
    ),
}

struct Writer {
    published: tokio::sync::watch::Sender<u64>,
    /// `None` after a failed commit, until the log is reopened.
    log: Option<AuditLog>,
    reopen: Reopen,
    reader: Arc<RwLock<StoreReader>>,
    view: Arc<RwLock<LogView>>,
    metrics: Arc<Metrics>,
    /// Set when a commit failed (a full disk, a read-only or failing device): the sealer is past
    /// entries that may not be on disk, so the log is closed and nothing is appended until it has
    /// been reopened from disk, which is tried again before each later batch.
    failed: Arc<RwLock<Option<String>>>,
}

impl Writer {
    fn run(mut self, mut queue: Queue<Job>) {
        while let Some(batch) = queue.next_batch() {
            self.commit_batch(batch);
        }
    }

    /// After a failed commit: reopen the log from disk. On success the failure is cleared and
    /// the view rebuilt (a batch whose commit failed may or may not have reached the disk; what
    /// recovery keeps is sealed and verified, what it cuts was never acknowledged).
    fn recover(&mut self) -> Result<(), String> {
        if self.log.is_none() {
            let why = self
                .failed
                .read()
                .expect("failure lock")
                .clone()
                .unwrap_or_default();
            match (self.reopen)() {
                Ok((log, view)) => {
                    tracing::warn!(
                        entries = view.tree.size(),
                        "the log was reopened after a failed commit; appending again"
                    );
                    *self.reader.write().expect("reader lock") = log.reader();
                    let size = view.checkpoint_size;
                    *self.view.write().expect("view lock") = view;
                    self.published.send_replace(size);
                    self.metrics
                        .observe_log(&self.view.read().expect("view lock"));
                    *self.failed.write().expect("failure lock") = None;
                    self.log = Some(log);
                }
                Err(e) => {
                    return Err(format!(
                        "the log is not accepting entries since a write failed ({why}); reopening it failed too ({e:#}); it is retried on the next request"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Seals a batch, commits it with one checkpoint and one fsync, then answers every job.
    /// Between sealing and answering nothing may be acknowledged: the replies wait in `sealed`
    /// until the commit is durable, and a failed commit fails every one of them.
    fn commit_batch(&mut self, batch: Vec<Job>) {
        if let Err(why) = self.recover() {
            let e = AppendError::Unavailable(why);
            for job in batch {
                job.fail(e.clone());
            }
            return;
        }
        // Taken for the batch; put back only if the commit succeeds.
        let mut log = self.log.take().expect("recovered");
        let mut sealed = SealedBatch::default();
        for job in batch {
            self.seal_job(&mut log, job, &mut sealed);
        }
        let started = Instant::now();
        match log.commit() {
            Ok(commit) => {
                self.log = Some(log);
                // No checkpoint: nothing was sealed (every job was rejected or a duplicate).
                if let Some(checkpoint) = commit.checkpoint {
                    self.metrics
                        .observe_commit(commit.entries.len(), started.elapsed());
                    let mut view = self.view.write().expect("view lock");
                    view.apply(&commit.entries, &sealed.ingested_ids, &checkpoint.note);
                    self.metrics.observe_log(&view);
                    self.published.send_replace(view.checkpoint_size);
                }
                self.answer(sealed.replies);
            }
            Err(e) => {
                // Release the lock and the sealer first; `recover` reopens from what is on disk.
                drop(log);
                self.close(&format!("{e:#}"), sealed.replies);
            }
        }
    }

    /// Seals one job into the open commit: its reply waits in `sealed`, or it is refused now.
    fn seal_job(&self, log: &mut AuditLog, job: Job, sealed: &mut SealedBatch) {
        match job {
            Job::Decision {
                decision,
                queued,
                reply,
            } => match log.seal(&decision) {
                Ok(entry) => sealed.replies.push(Reply::Decision(reply, entry, queued)),
                Err(e) => {
                    let _ = reply.send(Err(AppendError::Rejected(format!("{e:#}"))));
                }
            },
            Job::Record { kind, json, reply } => match log.record(kind, &json) {
                Ok(seq) => sealed.replies.push(Reply::Record(reply, seq)),
                Err(e) => {
                    let _ = reply.send(Err(AppendError::Rejected(format!("{e:#}"))));
                }
            },
            Job::Ingest {
                events,
                deadline_ns,
                reply,
            } => match self.seal_ingest(log, events, deadline_ns, sealed) {
                Ok(receipt) => sealed.replies.push(Reply::Ingest(reply, receipt)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    /// Seals ingested events, skipping any whose decision_id the log (or this batch) already
    /// holds. Events sealed before a failure are committed with the batch; a retry of the whole
    /// chunk skips them as duplicates.
    fn seal_ingest(
        &self,
        log: &mut AuditLog,
        events: Vec<IngestEvent>,
        deadline_ns: Option<u64>,
        sealed: &mut SealedBatch,
    ) -> Result<IngestReceipt, AppendError> {
        let now_ns = docket_runtime::clock::system_now().as_nanos() as u64;
        if let Some(deadline) = deadline_ns
            && now_ns > deadline
        {
            let late_ms = (now_ns - deadline) / 1_000_000;
            return Err(AppendError::Expired(format!(
                "the sender's deadline passed {late_ms} ms before these events could be sealed; \
                 nothing was sealed"
            )));
        }
        let mut receipt = IngestReceipt::default();
        for event in events {
            if let Some(dropped) = event.dropped {
                log.seal(&dropped_decision(dropped))
                    .map_err(|e| AppendError::Rejected(format!("{e:#}")))?;
                receipt.dropped += 1;
                continue;
            }
            if let Some(id) = &event.decision_id {
                let seen = self
                    .view
                    .read()
                    .expect("view lock")
                    .decision_ids
                    .contains_key(id)
                    || sealed.ingested_ids.iter().any(|(_, i)| i == id);
                if seen {
                    receipt.duplicates += 1;
                    continue;
                }
            }
            let seq = log
                .record(EntryKind::Ingested, &event.json)
                .map_err(|e| AppendError::Rejected(format!("{e:#}")))?;
            receipt.sealed.push(seq);
            if let Some(id) = event.decision_id {
                sealed.ingested_ids.push((seq, id));
            }
        }
        Ok(receipt)
    }

    /// After a failed commit: nothing of the batch is acknowledged, and the log stays closed
    /// until `recover` reopens it (the sealer has moved past entries that may not be on disk).
    fn close(&self, why: &str, replies: Vec<Reply>) {
        tracing::error!(error = %why, "commit failed; the log is closed and will be reopened before the next batch");
        self.metrics.commit_failures.inc();
        let err = AppendError::Unavailable(format!(
            "the decision could not be made durable ({why}); it was not logged, so it is not answered"
        ));
        for reply in replies {
            let _ = match reply {
                Reply::Decision(tx, ..) => tx.send(Err(err.clone())).map_err(|_| ()),
                Reply::Record(tx, _) => tx.send(Err(err.clone())).map_err(|_| ()),
                Reply::Ingest(tx, _) => tx.send(Err(err.clone())).map_err(|_| ()),
            };
        }
        *self.failed.write().expect("failure lock") = Some(why.to_string());
    }

    fn answer(&self, replies: Vec<Reply>) {
        for reply in replies {
            let _ = match reply {
                Reply::Decision(tx, sealed, queued) => {
                    self.metrics.observe_decision(&sealed, queued.elapsed());
                    tx.send(Ok(sealed)).map_err(|_| ())
                }
                Reply::Record(tx, seq) => tx.send(Ok(seq)).map_err(|_| ()),
                Reply::Ingest(tx, receipt) => {
                    self.metrics.ingested.inc_by(receipt.sealed.len() as u64);
                    tx.send(Ok(receipt)).map_err(|_| ())
                }
            };
        }
    }
}

/// A decision its sender's logging rules dropped, as the sealer counts it: the tally records
/// its path and policy version (log-format §4.7), and nothing else of it reaches the log.
fn dropped_decision(dropped: docket_wire::DroppedDecision) -> Decision {
    Decision {
        path: dropped.path,
        input: None,
        result: None,
        policy_version: docket_runtime::PolicyVersion {
            digest: dropped.policy_version.digest,
            revision: dropped.policy_version.revision,
        },
        log: docket_runtime::LogRules {
            drop: true,
            mask: Vec::new(),
            retention_ns: None,
        },
    }
}

fn batch_entries(job: &Job) -> usize {
    match job {
        Job::Ingest { events, .. } => events.len().max(1),
        _ => 1,
    }
}

/// Lowercase hex of an entry hash, as the API prints it.
pub fn hash_hex(hash: &docket_ledger::Hash) -> String {
    hex(&hash.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket_ledger::sealer::{GenesisParams, Sealer};

    /// Frames read from a fleet's stream are not verified where they are indexed: an entry that
    /// arrives twice, or out of order, is refused rather than given a position it does not have.
    #[test]
    fn a_view_refuses_an_entry_out_of_place() {
        let key = docket_ledger::SecretKey::from_seed("view.test/log", &[4; 32]).unwrap();
        let params = GenesisParams {
            origin: "view.test/log".into(),
            instance_id: "t".into(),
            signing: docket_ledger::SigningMode::Checkpoint,
        };
        let t = 1_795_464_000_000_000_000;
        let (mut sealer, genesis) = Sealer::genesis(key, params, t).unwrap();
        let record = |i: u64| format!(r#"{{"op":"test","n":{i}}}"#).into_bytes();
        let entries: Vec<Frame> = std::iter::once(genesis)
            .chain((1..4).map(|i| {
                sealer
                    .seal_record(docket_ledger::EntryKind::PolicyChange, record(i), t + i)
                    .unwrap()
            }))
            .map(|e| Frame::Entry(e.encode()))
            .collect();
        let mut view = LogView::from_frames(&entries[..3]).unwrap();
        assert_eq!(view.tree.size(), 3);
        let again = view.extend(&entries[2..3]).unwrap_err().to_string();
        assert!(
            again.contains("entry 2 arrives where entry 3 belongs"),
            "{again}"
        );
        let twice = view.extend(&[entries[3].clone(), entries[3].clone()]);
        assert!(twice.is_err(), "the second copy of entry 3");
        assert!(LogView::from_frames(&entries).is_ok());
    }
}
