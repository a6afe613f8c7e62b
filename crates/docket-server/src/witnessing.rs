//! The log's side of witnessing: `docket serve` submits its checkpoints to the configured
//! witnesses (C2SP `tlog-witness`), keeps the cosignatures they return, and serves them.
//!
//! One task per witness follows the appender's checkpoints. It sends the newest one, with a
//! consistency proof from the size the witness last cosigned, at most once per interval (under
//! load, checkpoints in between are skipped: the next one covers them), and learns the witness's
//! size from a 409. Witnessing never touches the decision path: an answer waits for its fsync,
//! never for a witness; an outage only delays cosignatures, with backoff.
//!
//! Cosignatures are appended and fsync'd to `<log dir>/cosignatures.jsonl` (one line per
//! cosignature: the checkpoint note text and the signature line), and indexed by tree size.
//!
//! **Architecture invariant:** only a cosignature that verifies under a configured witness key on
//! a checkpoint this log signed is stored; and at start the stored cosignatures are checked
//! against the log: a witnessed root the log does not have means the log was rewritten or
//! replaced, and the server refuses to start on it.

use crate::appender::{LogFollower, LogView};
use crate::metrics::{Metrics, WitnessLabels};
use anyhow::{Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::checkpoint::{NoteSignature, parse_signature_lines};
use docket_ledger::cosignature::CosignerKey;
use docket_ledger::witness::AddCheckpoint;
use docket_ledger::{Checkpoint, SignedCheckpoint};
use docket_store::files::JsonLines;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A witness the log submits to: its cosigner key and its submission prefix (`http://host:port`).
#[derive(Clone, Debug)]
pub struct WitnessTarget {
    pub key: CosignerKey,
    pub url: String,
}

impl WitnessTarget {
    /// Reads `<witness vkey>@<http URL>`, the form of `docket serve --witness`.
    pub fn parse(text: &str) -> Result<WitnessTarget> {
        let Some(at) = text.find("@http://").or_else(|| text.find("@https://")) else {
            bail!(
                "--witness {text:?} must be <witness key>@<URL>, e.g. \
                 witness.example/w1+1a2b3c4d+BASE64@http://witness.example:7380 \
                 (`docket witness` prints its key)"
            );
        };
        let (vkey, url) = (&text[..at], &text[at + 1..]);
        if url.starts_with("https://") {
            bail!(
                "--witness {url}: docket's witness client speaks plain HTTP only; reach an HTTPS \
                 witness through a local TLS proxy (e.g. stunnel or Envoy) and give its http:// address"
            );
        }
        let key = CosignerKey::from_vkey(vkey).map_err(|e| anyhow::anyhow!("--witness: {e}"))?;
        Ok(WitnessTarget {
            key,
            url: url.trim_end_matches('/').to_string(),
        })
    }
}

/// One line of `cosignatures.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCosignature {
    /// The checkpoint's note text (origin, size, root lines), exactly as cosigned.
    pub checkpoint: String,
    /// The witness's note signature line, without its newline.
    pub cosignature: String,
}

/// A checkpoint and the witnesses' cosignatures on it.
#[derive(Clone, Debug)]
pub struct Witnessed {
    pub checkpoint: Checkpoint,
    pub text: String,
    /// (witness name, POSIX seconds, the signature)
    pub cosignatures: Vec<(String, u64, NoteSignature)>,
}

/// The cosignatures a log holds, durable and indexed by tree size.
pub struct Cosignatures {
    witnesses: Vec<CosignerKey>,
    file: Mutex<JsonLines<StoredCosignature>>,
    by_size: RwLock<BTreeMap<u64, Witnessed>>,
}

impl Cosignatures {
    /// Opens `<log dir>/cosignatures.jsonl` and checks every cosignature a configured witness
    /// made against the log in `view` (see the module's invariant).
    pub fn open(
        log_dir: &Path,
        witnesses: Vec<CosignerKey>,
        view: &LogView,
    ) -> Result<Cosignatures> {
        let path = log_dir.join("cosignatures.jsonl");
        let (file, stored) = JsonLines::<StoredCosignature>::open(&path)?;
        let cosignatures = Cosignatures {
            witnesses,
            file: Mutex::new(file),
            by_size: RwLock::new(BTreeMap::new()),
        };
        for line in stored {
            let Some((checkpoint, signature, witness, time)) = cosignatures.check(&line) else {
                continue;
            };
            match view.tree.root_at(checkpoint.size) {
                Some(root) if root == checkpoint.root => {}
                Some(_) => bail!(
                    "witness {witness} cosigned a root for tree size {} that this log does not have: \
                     the log in {} was rewritten or replaced after it was witnessed; it is not \
                     served (verify it with `docket verify --witness`)",
                    checkpoint.size,
                    log_dir.display()
                ),
                None => bail!(
                    "witness {witness} cosigned tree size {}, but this log has only {} entries: \
                     entries were lost or the log in {} was replaced; it is not served",
                    checkpoint.size,
                    view.tree.size(),
                    log_dir.display()
                ),
            }
            cosignatures.index(checkpoint, &line.checkpoint, witness, time, signature);
        }
        Ok(cosignatures)
    }

    /// The checkpoint, signature, witness name and time of a stored line, if a configured
    /// witness made it.
    fn check(&self, line: &StoredCosignature) -> Option<(Checkpoint, NoteSignature, String, u64)> {
        let checkpoint = Checkpoint::parse_body(&line.checkpoint).ok()?;
        let signature = parse_signature_lines(&line.cosignature).ok()?.pop()?;
        self.witnesses.iter().find_map(|w| {
            w.verify(&line.checkpoint, &signature).map(|time| {
                (
                    checkpoint.clone(),
                    signature.clone(),
                    w.name().to_string(),
                    time,
                )
            })
        })
    }

    fn index(
        &self,
        checkpoint: Checkpoint,
        text: &str,
        witness: String,
        time: u64,
        sig: NoteSignature,
    ) {
        let mut by_size = self.by_size.write().expect("cosignature index");
        let entry = by_size.entry(checkpoint.size).or_insert_with(|| Witnessed {
            checkpoint,
            text: text.to_string(),
            cosignatures: Vec::new(),
        });
        if entry.text == text && !entry.cosignatures.iter().any(|(w, _, _)| *w == witness) {
            entry.cosignatures.push((witness, time, sig));
        }
    }

    /// Stores a witness's answer to a checkpoint: every line that verifies under its key.
    /// Returns how many were stored.
    fn store(
        &self,
        witness: &CosignerKey,
        note: &SignedCheckpoint,
        lines: &[NoteSignature],
    ) -> Result<usize> {
        let valid: Vec<(NoteSignature, u64)> = lines
            .iter()
            .filter_map(|s| witness.verify(&note.text, s).map(|t| (s.clone(), t)))
            .take(1)
            .collect();
        let stored: Vec<StoredCosignature> = valid
            .iter()
            .map(|(s, _)| StoredCosignature {
                checkpoint: note.text.clone(),
                cosignature: s.line().trim_end().to_string(),
            })
            .collect();
        if stored.is_empty() {
            return Ok(0);
        }
        self.file
            .lock()
            .expect("cosignature file")
            .append(&stored)?;
        for (s, time) in valid {
            self.index(
                note.checkpoint.clone(),
                &note.text,
                witness.name().to_string(),
                time,
                s,
            );
        }
        Ok(stored.len())
    }

    /// The cosignatures on the checkpoint of `size`, if any.
    pub fn at(&self, size: u64) -> Option<Witnessed> {
        self.by_size
            .read()
            .expect("cosignature index")
            .get(&size)
            .cloned()
    }

    /// The newest checkpoint with at least `quorum` cosignatures.
    pub fn newest(&self, quorum: usize) -> Option<Witnessed> {
        self.by_size
            .read()
            .expect("cosignature index")
            .values()
            .rev()
            .find(|w| w.cosignatures.len() >= quorum.max(1))
            .cloned()
    }

    /// The first witnessed checkpoint that contains entry `seq`: its cosignatures bound when
    /// the entry existed, on clocks other than the log's.
    pub fn covering(&self, seq: u64) -> Option<Witnessed> {
        self.by_size
            .read()
            .expect("cosignature index")
            .range(seq + 1..)
            .next()
            .map(|(_, w)| w.clone())
    }

    /// The largest size `witness` cosigned, where its client resumes.
    fn last_cosigned_by(&self, witness: &str) -> u64 {
        self.by_size
            .read()
            .expect("cosignature index")
            .values()
            .rev()
            .find(|w| w.cosignatures.iter().any(|(name, _, _)| name == witness))
            .map_or(0, |w| w.checkpoint.size)
    }

    pub fn witnesses(&self) -> &[CosignerKey] {
        &self.witnesses
    }
}

/// How often at most a witness is sent a checkpoint, and how it backs off.
#[derive(Clone, Copy, Debug)]
pub struct WitnessPacing {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
}

impl Default for WitnessPacing {
    fn default() -> Self {
        WitnessPacing {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Starts one task per witness; they stop when the appender's checkpoints stop (the server
/// shuts down).
pub fn start(
    targets: Vec<WitnessTarget>,
    log: LogFollower,
    cosignatures: Arc<Cosignatures>,
    pacing: WitnessPacing,
    metrics: Arc<Metrics>,
) {
    let client = http_client(pacing.timeout);
    for target in targets {
        let old_size = cosignatures.last_cosigned_by(target.key.name());
        metrics
            .witness_cosigned_size
            .get_or_create(&WitnessLabels {
                witness: target.key.name().to_string(),
            })
            .set(old_size);
        let follower = Follower {
            metrics: Arc::clone(&metrics),
            old_size,
            target,
            log: log.clone(),
            cosignatures: Arc::clone(&cosignatures),
            client: client.clone(),
            pacing,
        };
        tokio::spawn(follower.run());
    }
}

struct Follower {
    metrics: Arc<Metrics>,
    target: WitnessTarget,
    log: LogFollower,
    cosignatures: Arc<Cosignatures>,
    client: reqwest::Client,
    pacing: WitnessPacing,
    /// The size the witness last cosigned, as far as this client knows.
    old_size: u64,
}

/// What one submission came to.
enum Outcome {
    Cosigned,
    /// 409: the witness has another size; resend at once with it.
    Resync,
    Failed(String),
}

impl Follower {
    async fn run(mut self) {
        let mut checkpoints = self.log.checkpoints();
        let mut backoff = Duration::ZERO;
        let mut resyncs = 0;
        loop {
            let size = *checkpoints.borrow_and_update();
            if size == 0
                || (size == self.old_size
                    && self.cosignatures.at(size).is_some_and(|w| {
                        w.cosignatures
                            .iter()
                            .any(|(n, _, _)| n == self.target.key.name())
                    }))
            {
                // Nothing new to witness: wait for the next checkpoint.
                if checkpoints.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let started = tokio::time::Instant::now();
            let labels = WitnessLabels {
                witness: self.target.key.name().to_string(),
            };
            let outcome = self.submit().await;
            match &outcome {
                Outcome::Cosigned => {
                    self.metrics
                        .witness_cosigned_size
                        .get_or_create(&labels)
                        .set(self.old_size);
                }
                Outcome::Failed(_) => {
                    self.metrics.witness_failures.get_or_create(&labels).inc();
                }
                Outcome::Resync => {}
            }
            match outcome {
                Outcome::Cosigned => {
                    backoff = Duration::ZERO;
                    resyncs = 0;
                    tokio::time::sleep_until(started + self.pacing.interval).await;
                }
                Outcome::Resync if resyncs < 3 => resyncs += 1,
                Outcome::Resync => {
                    resyncs = 0;
                    backoff = next_backoff(backoff, self.pacing.max_backoff);
                    tokio::time::sleep(backoff).await;
                }
                Outcome::Failed(why) => {
                    backoff = next_backoff(backoff, self.pacing.max_backoff);
                    tracing::warn!(
                        witness = self.target.key.name(),
                        url = self.target.url,
                        retry_in_ms = backoff.as_millis() as u64,
                        "witness: {why}"
                    );
                    tokio::time::sleep(backoff).await;
                }
            }
            if checkpoints.has_changed().is_err() {
                return;
            }
        }
    }

    /// Sends the newest checkpoint with a proof from `old_size`.
    async fn submit(&mut self) -> Outcome {
        let (note, request) = {
            let view = self.log.view();
            let size = view.checkpoint_size;
            if self.old_size > size {
                return Outcome::Failed(format!(
                    "the witness has cosigned tree size {}, larger than this log's {size}: \
                     this log lost entries or is not the log the witness follows",
                    self.old_size
                ));
            }
            let proof = if self.old_size == 0 {
                Vec::new()
            } else {
                view.tree
                    .consistency_proof(self.old_size, size)
                    .expect("sizes checked")
            };
            let note = view.checkpoint.clone();
            let request = AddCheckpoint {
                old_size: self.old_size,
                proof,
                note: note.clone(),
            };
            (note, request)
        };
        let Ok(signed) = SignedCheckpoint::parse(&note) else {
            return Outcome::Failed("the log's own checkpoint does not parse".into());
        };
        match post_checkpoint(&self.client, &self.target, &request).await {
            Err(why) => Outcome::Failed(why),
            Ok(WitnessAnswer::Cosigned(lines)) => {
                match self.cosignatures.store(&self.target.key, &signed, &lines) {
                    Ok(0) => {
                        Outcome::Failed("it answered without a valid cosignature by its key".into())
                    }
                    Ok(_) => {
                        self.old_size = signed.checkpoint.size;
                        Outcome::Cosigned
                    }
                    Err(e) => Outcome::Failed(format!("storing its cosignature failed: {e:#}")),
                }
            }
            Ok(WitnessAnswer::Conflict(size)) if size > signed.checkpoint.size => {
                self.old_size = size;
                Outcome::Failed(format!(
                    "the witness has cosigned tree size {size}, beyond this log's {}: this log \
                     lost entries or a fork of it was shown to the witness",
                    signed.checkpoint.size
                ))
            }
            Ok(WitnessAnswer::Conflict(size)) if size == self.old_size => Outcome::Failed(format!(
                "the witness refused checkpoint {} at its own size {size}: it holds another \
                 root for this log (a fork)",
                signed.checkpoint.size
            )),
            Ok(WitnessAnswer::Conflict(size)) => {
                self.old_size = size;
                Outcome::Resync
            }
        }
    }
}

/// The HTTP client witness requests go through (plain HTTP, keep-alive).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("an HTTP client without TLS builds")
}

/// A witness's answer to `add-checkpoint` that the protocol lets a client act on.
pub enum WitnessAnswer {
    /// 200: its signature lines (not yet checked).
    Cosigned(Vec<NoteSignature>),
    /// 409: the size it last cosigned.
    Conflict(u64),
}

/// Sends one `add-checkpoint` request. Any answer but 200 and a well-formed 409 is an error,
/// a sentence naming the status and the witness's reason.
pub async fn post_checkpoint(
    client: &reqwest::Client,
    target: &WitnessTarget,
    request: &AddCheckpoint,
) -> Result<WitnessAnswer, String> {
    let response = client
        .post(format!("{}/add-checkpoint", target.url))
        .header("content-type", "text/plain; charset=utf-8")
        .body(request.encode())
        .send()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    match status {
        200 => parse_signature_lines(body.trim_end_matches('\n'))
            .map(WitnessAnswer::Cosigned)
            .map_err(|e| format!("its answer is not signature lines: {e}")),
        409 => body
            .trim_end()
            .parse::<u64>()
            .map(WitnessAnswer::Conflict)
            .map_err(|_| format!("409 without a size: {}", body.trim())),
        _ => Err(format!("{status}: {}", body.trim())),
    }
}

/// Asks `target` for a fresh cosignature on the checkpoint `note` (of a log whose leaf hashes
/// are `leaves`), resynchronising on a 409 as the protocol says, and returns the witness's time
/// in it: a reading of a clock the log's operator does not control. `docket log prune` checks
/// its own clock against it. The cosignature is also returned, for the log to keep.
pub async fn fresh_cosignature(
    client: &reqwest::Client,
    target: &WitnessTarget,
    note: &str,
    leaves: &[docket_ledger::Hash],
) -> Result<(u64, StoredCosignature), String> {
    let signed = SignedCheckpoint::parse(note).map_err(|e| format!("the log's checkpoint: {e}"))?;
    let size = signed.checkpoint.size;
    let mut old_size = 0;
    for _ in 0..3 {
        let proof = if old_size == 0 {
            Vec::new()
        } else {
            docket_ledger::merkle::consistency_proof(&leaves[..size as usize], old_size as usize)
                .ok_or_else(|| {
                    format!("the witness has cosigned size {old_size}, beyond this log's {size}")
                })?
        };
        let request = AddCheckpoint {
            old_size,
            proof,
            note: note.to_string(),
        };
        match post_checkpoint(client, target, &request).await? {
            WitnessAnswer::Cosigned(lines) => {
                return lines
                    .iter()
                    .find_map(|s| {
                        target.key.verify(&signed.text, s).map(|t| {
                            (
                                t,
                                StoredCosignature {
                                    checkpoint: signed.text.clone(),
                                    cosignature: s.line().trim_end().to_string(),
                                },
                            )
                        })
                    })
                    .ok_or_else(|| "it answered without a valid cosignature by its key".into());
            }
            WitnessAnswer::Conflict(size_seen) if size_seen > size => {
                return Err(format!(
                    "the witness has cosigned tree size {size_seen}, beyond this log's {size}: this \
                     log lost entries or a fork of it was shown to the witness"
                ));
            }
            WitnessAnswer::Conflict(size_seen) if size_seen == old_size => {
                return Err(format!(
                    "the witness holds another root for size {size_seen} of this log (a fork)"
                ));
            }
            WitnessAnswer::Conflict(size_seen) => old_size = size_seen,
        }
    }
    Err("the witness kept changing its size".into())
}

fn next_backoff(current: Duration, max: Duration) -> Duration {
    let doubled = if current.is_zero() {
        Duration::from_millis(250)
    } else {
        current * 2
    };
    let capped = doubled.min(max);
    // Up to a quarter of jitter, so many logs recovering together do not stampede a witness.
    let jitter = capped.mul_f64(rand::random::<f64>() * 0.25);
    capped + jitter
}

/// A witnessed checkpoint as JSON: the note with its cosignatures, and each witness and time.
pub fn witnessed_json(w: &Witnessed) -> serde_json::Value {
    let mut note = format!("{}\n", w.text);
    for (_, _, s) in &w.cosignatures {
        note.push_str(&s.line());
    }
    let earliest = w.cosignatures.iter().map(|(_, t, _)| *t).min();
    serde_json::json!({
        "size": w.checkpoint.size,
        "root": B64.encode(w.checkpoint.root.0),
        "note": note,
        "cosignatures": w.cosignatures.iter().map(|(name, time, _)| serde_json::json!({
            "witness": name,
            "time": docket_ledger::record::rfc3339_seconds(*time),
        })).collect::<Vec<_>>(),
        "no_later_than": earliest.map(docket_ledger::record::rfc3339_seconds),
    })
}
