//! An audit log on disk: the component seals, the store persists. This is where the fail-closed
//! rule lives: a decision is sealed into a pending batch, and nothing about it may be acted on
//! until [`AuditLog::commit`] has made the batch and its checkpoint durable.

use crate::{CallError, Checkpoint, Decision, Instance, Report, Runtime, SealedEntry, VerifyError};
use anyhow::{Context, Result, anyhow, bail};
use docket_ledger::{PublicKey, SecretKey};
use docket_store::salts::{self, SaltFile, SaltLine};
use docket_store::{Frame, LogBackend, Recovery, Replica, SegmentInfo, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Reads a `.key` file (C2SP signer key).
pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    docket_store::private::check_secret(path, "a signing key")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    SecretKey::from_skey(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Reads a `.pub` file (C2SP verifier key).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    if text.trim_start().starts_with("PRIVATE+KEY+") {
        bail!(
            "{} holds a secret key; a public key is wanted here (the .pub file written beside it)",
            path.display()
        );
    }
    PublicKey::from_vkey(&text).map_err(|e| {
        anyhow!(
            "{} is not a public key (a .pub file from docket keygen, `name+id+base64`): {e}",
            path.display()
        )
    })
}

/// A name for a new key, and so for the log it starts: `<prefix>/<12 random hex digits>`, unique
/// per log as an origin should be (C2SP tlog-checkpoint), e.g. `docket.serve/2711d5a4caf4`.
pub fn fresh_name(prefix: &str) -> String {
    let mut label = [0u8; 6];
    rand::fill(&mut label);
    format!("{prefix}/{}", hex(&label))
}

/// Writes `<stem>.key` (mode 0600) and `<stem>.pub` for a new random key.
pub fn write_new_key(dir: &Path, stem: &str, key_name: &str) -> Result<SecretKey> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = SecretKey::from_seed(key_name, &seed)?;
    docket_store::private::create_dir_all(dir)?;
    let key_path = dir.join(format!("{stem}.key"));
    let pub_path = dir.join(format!("{stem}.pub"));
    if key_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key",
            key_path.display()
        );
    }
    let mut file = docket_store::private::options()
        .write(true)
        .create_new(true)
        .open(&key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    std::io::Write::write_all(&mut file, format!("{}\n", key.to_skey()).as_bytes())?;
    file.sync_all()?;
    std::fs::write(&pub_path, format!("{}\n", key.public().to_vkey()))?;
    Ok(key)
}

/// How many entries `verify_frames` hands the component per call. A call costs about as much
/// as an eighth of an entry's verification, so runs of entries, not single ones, cross into it.
pub const VERIFY_RUN: usize = 1024;

/// Feeds a log's frames to the component's verifier, optionally requiring the log to reach a
/// trusted tree head (size, root) obtained elsewhere.
pub fn verify_frames(
    instance: &mut Instance,
    genesis_key: &PublicKey,
    frames: &[Frame],
    trusted_head: Option<(u64, &[u8])>,
    mut progress: impl FnMut(u64),
) -> std::result::Result<Report, CallError<VerifyError>> {
    let mut verifier = instance
        .verifier_held_to(&genesis_key.to_vkey(), trusted_head)
        .map_err(CallError::widen)?;
    let mut entries = 0u64;
    let mut run: Vec<Vec<u8>> = Vec::with_capacity(VERIFY_RUN);
    // The run so far goes in before a checkpoint, when full, and at the end.
    let mut push_run = |verifier: &mut crate::VerifierHandle, run: &mut Vec<Vec<u8>>| {
        if run.is_empty() {
            return Ok(());
        }
        let pushed = verifier.push_entries(run);
        entries += run.len() as u64;
        progress(entries);
        run.clear();
        pushed
    };
    for frame in frames {
        match frame {
            Frame::Entry(bytes) => {
                run.push(bytes.clone());
                if run.len() == VERIFY_RUN {
                    push_run(&mut verifier, &mut run)?;
                }
            }
            Frame::Checkpoint(note) => {
                push_run(&mut verifier, &mut run)?;
                verifier.push_checkpoint(note)?;
            }
        }
    }
    push_run(&mut verifier, &mut run)?;
    verifier.finish()
}

/// The policy version digest the last policy-change entry among `frames` recorded: what the log
/// says is in force, so a writer seals a change only when it has one.
pub fn last_policy_version(frames: &[Frame]) -> Option<String> {
    frames.iter().rev().find_map(|frame| {
        let Frame::Entry(bytes) = frame else {
            return None;
        };
        let entry = docket_ledger::Entry::decode(bytes).ok()?;
        if entry.kind != docket_ledger::EntryKind::PolicyChange {
            return None;
        }
        let record: serde_json::Value = serde_json::from_slice(&entry.record).ok()?;
        record["policy_version"]["digest"]
            .as_str()
            .map(str::to_string)
    })
}

/// A decision handed to the log, acted on only once its batch is committed.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub result: Option<String>,
    /// Its entry; `None` when the logging rules dropped it (it is counted in a tally entry of
    /// the same commit).
    pub entry: Option<EntryRef>,
}

/// Where a decision was sealed.
#[derive(Debug, Clone)]
pub struct EntryRef {
    pub seq: u64,
    pub decision_id: String,
    pub entry_hash: String,
}

/// What one commit made durable.
#[derive(Debug, Clone)]
pub struct Commit {
    pub entries: Vec<SealedEntry>,
    /// The checkpoint covering them; `None` when there was nothing to commit.
    pub checkpoint: Option<Checkpoint>,
}

/// An opened log directory, with what recovery did and the frames it verified.
pub struct Opened {
    pub log: AuditLog,
    pub recovery: Recovery,
    pub report: Report,
    pub frames: Vec<Frame>,
}

/// How to start a log in a directory that holds none yet.
pub struct NewLog<'a> {
    /// The origin (its checkpoints' first line). `None`: the signing key's name, so the key
    /// that signs its checkpoints is named after the log, as C2SP recommends; every command
    /// that creates a key names it so (`fresh_name`, `docket keygen --name`, `--origin`).
    pub origin: Option<&'a str>,
    pub signing: crate::SigningMode,
    /// The sealing instance's id, recorded in the genesis `labels`.
    pub instance_id: &'a str,
    /// Where every commit goes before the log directory, the genesis commit included
    /// ([`docket_store::Replica`]: NATS JetStream); `None` for a log on this machine only.
    pub replica: Option<Arc<dyn Replica>>,
}

/// An audit log over a durable backend: the embedded segment [`Store`] by default.
pub struct AuditLog<B: LogBackend = Store> {
    store: B,
    instance: Instance,
    pending: Vec<SealedEntry>,
    /// Where mask salts are kept; `None` discards them (masked values can then never be
    /// revealed, which is a valid choice).
    salt_file: Option<SaltFile>,
    pending_salts: Vec<SaltLine>,
}

impl AuditLog<Store> {
    /// Starts a new log in `dir`: genesis entry and first checkpoint, durable before returning.
    pub fn create(
        dir: &Path,
        runtime: &Runtime,
        key: &SecretKey,
        origin: &str,
        instance_id: &str,
        signing: crate::SigningMode,
    ) -> Result<AuditLog> {
        AuditLog::create_replicated(dir, runtime, key, origin, instance_id, signing, None)
    }

    /// [`AuditLog::create`], every commit (the genesis first) sent to `replica` before the
    /// directory.
    pub fn create_replicated(
        dir: &Path,
        runtime: &Runtime,
        key: &SecretKey,
        origin: &str,
        instance_id: &str,
        signing: crate::SigningMode,
        replica: Option<Arc<dyn Replica>>,
    ) -> Result<AuditLog> {
        let mut store = Store::create(dir)?;
        if let Some(replica) = replica {
            store.replicate_to(replica);
        }
        let mut instance = runtime.instantiate()?;
        let genesis = instance
            .start_log(
                &key.seed(),
                key.public().name(),
                origin,
                instance_id,
                signing,
            )
            .map_err(|e| anyhow!("cannot start the log: {}", e))?;
        let checkpoint = instance.checkpoint()?;
        store.commit(&[&genesis.encoded], &checkpoint.note)?;
        Ok(AuditLog {
            store,
            instance,
            pending: Vec::new(),
            salt_file: None,
            pending_salts: Vec::new(),
        })
    }

    /// The one way a command gets at a log directory it may start: opens the log in `dir`
    /// (recovered and verified, as [`AuditLog::open_with_frames`]) or, if `dir` holds none,
    /// starts one as `new` says and opens it the same way. `eval`, `demo` and `docket serve`
    /// (at start and when its appender reopens the log after a failed write) come here;
    /// `rotate-key` and `log prune`, which need an existing log, call [`AuditLog::open`].
    pub fn open_or_create(
        dir: &Path,
        runtime: &Runtime,
        genesis_key: &PublicKey,
        key: &SecretKey,
        new: &NewLog<'_>,
    ) -> Result<Opened> {
        if !docket_store::is_log_dir(dir) {
            let origin = new.origin.unwrap_or(key.public().name());
            drop(AuditLog::create_replicated(
                dir,
                runtime,
                key,
                origin,
                new.instance_id,
                new.signing,
                new.replica.clone(),
            )?);
        }
        let mut opened = AuditLog::open_with_frames(dir, runtime, genesis_key, key)?;
        if let Some(replica) = &new.replica {
            opened.log.replicate_to(Arc::clone(replica));
        }
        Ok(opened)
    }

    /// Sends every later commit to `replica` before the log directory.
    pub fn replicate_to(&mut self, replica: Arc<dyn Replica>) {
        self.store.replicate_to(replica);
    }

    /// Opens `dir`: recovers the store, verifies the whole log through the component against
    /// the genesis key, and resumes sealing with `key` (the log's key in force).
    pub fn open(
        dir: &Path,
        runtime: &Runtime,
        genesis_key: &PublicKey,
        key: &SecretKey,
    ) -> Result<(AuditLog, Recovery, Report)> {
        let opened = AuditLog::open_with_frames(dir, runtime, genesis_key, key)?;
        Ok((opened.log, opened.recovery, opened.report))
    }

    /// [`AuditLog::open`], also handing back the verified frames (for building indexes).
    pub fn open_with_frames(
        dir: &Path,
        runtime: &Runtime,
        genesis_key: &PublicKey,
        key: &SecretKey,
    ) -> Result<Opened> {
        let (store, frames, recovery) = Store::open(dir)?;
        let mut instance = runtime.instantiate()?;
        let report =
            verify_frames(&mut instance, genesis_key, &frames, None, |_| {}).map_err(|e| {
                let e = match e {
                    CallError::Refused(e) => e,
                    stopped => return anyhow!(stopped),
                };
                use docket_ledger::Failure as F;
                // Two writers appending at once leave two interleaved histories: the first
                // entry of the second shows up as out of sequence or unlinked.
                let fork = match e.failure {
                    F::WrongSequence | F::BrokenLink => format!(
                        ". If two writers appended to it at once (a fork), `docket log \
                         split-fork {} --out DIR` writes each history as a log of its own, \
                         keeping every acknowledged entry (docs/store-format.md, \"Forks\")",
                        dir.display()
                    ),
                    _ => String::new(),
                };
                anyhow!(
                    "the log in {} does not verify: {}; it was not modified{fork}",
                    dir.display(),
                    e
                )
            })?;
        instance
            .resume_log(&key.seed(), key.public().name(), &report.state)
            .map_err(|e| anyhow!("cannot continue the log: {}", e))?;
        Ok(Opened {
            log: AuditLog {
                store,
                instance,
                pending: Vec::new(),
                salt_file: None,
                pending_salts: Vec::new(),
            },
            recovery,
            report,
            frames,
        })
    }

    /// A reader of the durable entries, for other threads.
    pub fn reader(&self) -> docket_store::StoreReader {
        self.store.reader()
    }

    /// Rolls segments over once they pass `bytes`: the unit pruning works in.
    pub fn set_segment_limit(&mut self, bytes: u64) {
        self.store.set_segment_limit(bytes);
    }

    /// Prunes the payloads of expired decisions, one sealed segment at a time
    /// (docs/log-format.md §4.8, docs/store-format.md "Pruning"). For each segment the component
    /// seals a prune entry, which it refuses if any decision in the segment is still under
    /// retention or has none; the prune entries are committed (durable, checkpointed) first,
    /// then each segment is rewritten with pruned entries in place of the full ones.
    ///
    /// `through`: prune exactly the segments holding entries up to this seq, and refuse (with
    /// nothing changed) if any of them may not be pruned. Without it, every sealed segment that
    /// may be pruned is, and the others are reported as kept, with the reason.
    ///
    /// `report` is the verification report of this log as opened: a prune entry committed
    /// before an interrupted rewrite is found there, and its rewrite is completed. On error the
    /// log must be reopened, as after a failed commit.
    pub fn prune(&mut self, report: &Report, through: Option<u64>) -> Result<Vec<SegmentPrune>> {
        if !self.pending.is_empty() {
            bail!("commit the pending entries before pruning");
        }
        if self.store.is_replicated() {
            bail!(
                "a log kept in NATS JetStream cannot be pruned yet: its stream is append-only \
                 (deny_delete), so the payloads would stay there (docs/store-format.md, \
                 \"NATS JetStream\"). Nothing was changed"
            );
        }
        let segments = self.store.segments();
        let (active, sealed) = segments.split_last().expect("a log has a segment");
        if let Some(seq) = through {
            if seq >= self.store.entries() {
                bail!(
                    "the log has {} entries; there is no entry {seq}",
                    self.store.entries()
                );
            }
            if seq >= active.first_seq {
                bail!(
                    "entry {seq} is in the segment still being written ({}); only sealed \
                     segments can be pruned. Nothing was changed",
                    segment_file_name(active)
                );
            }
        }
        let reader = self.store.reader();
        let mut outcomes = Vec::new();
        let mut rewrites: Vec<(SegmentInfo, BTreeMap<u64, Vec<u8>>)> = Vec::new();
        for segment in sealed.iter().filter(|s| s.entries > 0) {
            if through.is_some_and(|seq| segment.first_seq > seq) {
                break;
            }
            let last = segment.first_seq + segment.entries - 1;
            let encoded = (segment.first_seq..=last)
                .map(|seq| {
                    reader
                        .read_entry(seq)?
                        .with_context(|| format!("entry {seq} is missing from the store"))
                })
                .collect::<Result<Vec<_>>>()?;
            let name = segment_file_name(segment);
            // A prune entry already authorizes this segment: complete its rewrite if a crash
            // interrupted it, else there is nothing left to do.
            if let Some(earlier) = report
                .prunes
                .iter()
                .find(|p| p.first == segment.first_seq && p.last == last)
            {
                if earlier.pruned_found == earlier.entries {
                    outcomes.push(SegmentPrune::kept(segment, &name, "already pruned"));
                    continue;
                }
                let prune_entry = reader
                    .read_entry(earlier.seq)?
                    .with_context(|| format!("prune entry {} is missing", earlier.seq))?;
                let replacements = authorized_replacements(&prune_entry, &encoded)?;
                outcomes.push(SegmentPrune {
                    segment: name,
                    first: segment.first_seq,
                    last,
                    pruned: replacements.len() as u64,
                    prune_entry: Some(earlier.seq),
                    kept_because: None,
                });
                rewrites.push((segment.clone(), replacements));
                continue;
            }
            match self.instance.seal_prune(&encoded) {
                Ok(sealed_prune) => {
                    outcomes.push(SegmentPrune {
                        segment: name,
                        first: segment.first_seq,
                        last,
                        pruned: sealed_prune.pruned.len() as u64,
                        prune_entry: Some(sealed_prune.entry.seq),
                        kept_because: None,
                    });
                    let replacements = sealed_prune
                        .pruned_seqs
                        .into_iter()
                        .zip(sealed_prune.pruned)
                        .collect();
                    rewrites.push((segment.clone(), replacements));
                    self.pending.push(sealed_prune.entry);
                }
                Err(CallError::Refused(crate::SealError::Refused(why))) if through.is_some() => {
                    bail!(
                        "cannot prune through entry {}: in {name}, {why}. Nothing was changed",
                        through.unwrap_or_default()
                    )
                }
                Err(CallError::Refused(crate::SealError::Refused(why))) => {
                    outcomes.push(SegmentPrune::kept(segment, &name, &why));
                }
                Err(e) => bail!("sealing a prune entry for {name} failed: {}", e),
            }
        }
        for (segment, replacements) in &rewrites {
            check_replacements(&reader, segment, replacements)?;
        }
        // The authority first: only once the prune entries are durable may payloads go.
        self.commit()?;
        for (segment, replacements) in &rewrites {
            self.store.replace_entries(segment, replacements)?;
        }
        Ok(outcomes)
    }
}

/// What `prune` did with one sealed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentPrune {
    /// The segment file's name.
    pub segment: String,
    pub first: u64,
    pub last: u64,
    /// Decision payloads removed.
    pub pruned: u64,
    /// The prune entry that authorizes it (sealed now, or by an interrupted earlier prune).
    pub prune_entry: Option<u64>,
    /// Why the segment was kept whole.
    pub kept_because: Option<String>,
}

impl SegmentPrune {
    fn kept(segment: &SegmentInfo, name: &str, why: &str) -> SegmentPrune {
        SegmentPrune {
            segment: name.to_string(),
            first: segment.first_seq,
            last: segment.first_seq + segment.entries - 1,
            pruned: 0,
            prune_entry: None,
            kept_because: Some(why.to_string()),
        }
    }
}

fn segment_file_name(segment: &SegmentInfo) -> String {
    segment
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The pruned forms of the entries (of one segment, as stored) that a committed prune entry
/// authorizes and that are not pruned yet.
fn authorized_replacements(
    prune_entry: &[u8],
    encoded: &[Vec<u8>],
) -> Result<BTreeMap<u64, Vec<u8>>> {
    let prune_entry = docket_ledger::Entry::decode(prune_entry)
        .map_err(|e| anyhow!("the prune entry cannot be read: {e}"))?;
    let record: docket_ledger::prune::PruneRecord = serde_json::from_slice(&prune_entry.record)
        .context("the prune entry's record cannot be read")?;
    let mut replacements = BTreeMap::new();
    for bytes in encoded {
        let entry =
            docket_ledger::Entry::decode(bytes).map_err(|e| anyhow!("undecodable entry: {e}"))?;
        let authorized = record
            .ranges
            .iter()
            .any(|&(a, b)| (a..=b).contains(&entry.seq));
        if authorized && !entry.is_pruned() {
            replacements.insert(entry.seq, entry.pruned().encode());
        }
    }
    Ok(replacements)
}

impl<B: LogBackend> AuditLog<B> {
    pub fn instance(&mut self) -> &mut Instance {
        &mut self.instance
    }

    pub fn entries(&self) -> u64 {
        self.store.entries() + self.pending.len() as u64
    }

    /// Keeps the salts of masked values in `file` (appended, fsync'd before each commit).
    pub fn keep_salts_in(&mut self, file: SaltFile) {
        self.salt_file = Some(file);
    }

    /// Evaluates and seals one decision into the pending batch. Not durable until `commit`.
    pub fn decide(&mut self, path: &str, input: Option<&str>) -> Result<Sealed> {
        let decision = self
            .instance
            .evaluate(path, input)
            .map_err(|e| anyhow!("{}", e))?;
        self.seal(&decision)
    }

    /// Seals a decision evaluated elsewhere (e.g. by a pool of instances) into the pending
    /// batch, as its logging rules say: masked, or dropped and counted in the commit's tally.
    pub fn seal(&mut self, decision: &Decision) -> Result<Sealed> {
        let result = decision.result.clone();
        let Some(entry) = self
            .instance
            .seal_decision(decision)
            .map_err(|e| anyhow!("sealing failed: {}", e))?
        else {
            return Ok(Sealed {
                result,
                entry: None,
            });
        };
        let entry_ref = EntryRef {
            seq: entry.seq,
            decision_id: entry.decision_id.clone().unwrap_or_default(),
            entry_hash: hex(&entry.hash),
        };
        if self.salt_file.is_some() {
            self.pending_salts
                .extend(entry.salts.iter().map(|s| SaltLine {
                    seq: entry_ref.seq,
                    entry_hash: entry_ref.entry_hash.clone(),
                    decision_id: entry_ref.decision_id.clone(),
                    path: s.path.clone(),
                    salt: salts::encode_salt(&s.salt),
                }));
        }
        self.pending.push(entry);
        Ok(Sealed {
            result,
            entry: Some(entry_ref),
        })
    }

    /// Seals a caller-made record (e.g. a policy change) into the pending batch.
    pub fn record(&mut self, kind: crate::EntryKind, json: &str) -> Result<u64> {
        let entry = self
            .instance
            .seal_record(kind, json)
            .map_err(|e| anyhow!("sealing failed: {}", e))?;
        let seq = entry.seq;
        self.pending.push(entry);
        Ok(seq)
    }

    /// Hands the log over to `new_key`: a key-rotation entry signed by the current key, committed
    /// with a checkpoint signed by the new one. Returns the rotation entry's seq.
    pub fn rotate_key(&mut self, new_key: &SecretKey) -> Result<u64> {
        let entry = self
            .instance
            .rotate_key(&new_key.seed(), new_key.public().name())
            .map_err(|e| anyhow!("cannot rotate the key: {}", e))?;
        let seq = entry.seq;
        self.pending.push(entry);
        self.commit()?;
        Ok(seq)
    }

    /// The number of sealed entries waiting for `commit`.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Makes the pending batch durable with a checkpoint covering it, and returns it (empty
    /// when nothing was pending). On error nothing of the batch may be acknowledged, and the
    /// sealer has moved past entries that are not on disk: the log must be reopened.
    pub fn commit(&mut self) -> Result<Commit> {
        // Decisions dropped since the last commit are answered only with this commit, so their
        // tally is in it.
        if let Some(tally) = self.instance.seal_tally()? {
            self.pending.push(tally);
        }
        if self.pending.is_empty() {
            return Ok(Commit {
                entries: Vec::new(),
                checkpoint: None,
            });
        }
        let checkpoint = self.instance.checkpoint()?;
        // Salts first: a salt whose entry never lands is harmless (see `salts`), an entry whose
        // salt was lost could never be revealed.
        if let Some(file) = &mut self.salt_file {
            file.append(&self.pending_salts)?;
        }
        self.pending_salts.clear();
        let encoded: Vec<&[u8]> = self.pending.iter().map(|e| e.encoded.as_slice()).collect();
        self.store.commit(&encoded, &checkpoint.note)?;
        Ok(Commit {
            entries: std::mem::take(&mut self.pending),
            checkpoint: Some(checkpoint),
        })
    }
}

/// Lowercase hex, as docket prints hashes, ids and tokens.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Each replacement is the pruned form of the entry it replaces (the same header, hash and
/// signature): a segment rewrite may drop records, never change what an entry stands for.
fn check_replacements(
    reader: &docket_store::StoreReader,
    segment: &SegmentInfo,
    replacements: &BTreeMap<u64, Vec<u8>>,
) -> Result<()> {
    for (&seq, encoded) in replacements {
        let original = reader
            .read_entry(seq)?
            .with_context(|| format!("entry {seq} is missing from the store"))?;
        let same = match (
            docket_ledger::Entry::decode(encoded),
            docket_ledger::Entry::decode(&original),
        ) {
            (Ok(pruned), Ok(full)) => pruned.is_pruned_form_of(&full),
            _ => false,
        };
        if !same {
            bail!(
                "the replacement for entry {seq} is not its pruned form; {} was not rewritten",
                segment.path.display()
            );
        }
    }
    Ok(())
}
