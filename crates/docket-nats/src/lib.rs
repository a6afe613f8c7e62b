//! A docket log replicated on NATS JetStream (docs/store-format.md, "NATS JetStream").
//!
//! One stream holds the logs of a fleet, one subject per log (`<STREAM>.<log>`). Each commit of
//! a log (its entries and the checkpoint covering them, encoded exactly as in a segment file) is
//! published as one message, or as one atomic batch (ADR-50) when it is larger than a message
//! may be, fenced with `Nats-Expected-Last-Subject-Sequence` so that a writer that is not at the
//! log's end cannot append: two writers can never fork a log. The stream's settings are checked
//! before anything is written, and a stream that could lose or remove messages is refused.
//!
//! The log directory of a `docket serve` on JetStream is a copy rebuilt from the stream
//! ([`sync_log_dir`]); every commit reaches the stream before the directory
//! ([`docket_store::Replica`]), so a node that dies is replaced by one with an empty directory
//! and the same key. docket's own hash chain, signatures and Merkle tree stay the source of
//! trust: what is read back from the stream is verified like any log.
//!
//! The client is async (`async-nats`); this crate keeps it on a runtime of its own, so the
//! store's writer, a plain thread, calls it synchronously.

use anyhow::{Context, Result, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use docket_store::Frame;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// An atomic batch holds at most this many messages (nats-server's limit, ADR-50).
const MAX_BATCH_MESSAGES: usize = 1000;
/// Room left in each message for its headers.
const HEADER_ROOM: usize = 1024;
/// How long one request to the cluster may take before the commit is called failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a log lives in JetStream: `nats://host:port[,host:port…]/STREAM/LOG`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The servers to connect to (any one will do; the client follows the cluster).
    pub servers: Vec<String>,
    /// The stream holding the fleet's logs.
    pub stream: String,
    /// This log's name: the last token of its subject.
    pub log: String,
}

impl Location {
    /// Reads `nats://host:port[,host:port…]/STREAM/LOG`.
    pub fn parse(url: &str) -> Result<Location> {
        let rest = url.strip_prefix("nats://").ok_or_else(|| {
            anyhow!("{url} is not a JetStream log address: write nats://HOST:PORT/STREAM/LOG")
        })?;
        let mut parts = rest.splitn(3, '/');
        let hosts = parts.next().unwrap_or_default();
        let (Some(stream), Some(log)) = (parts.next(), parts.next()) else {
            bail!(
                "{url} names no stream and log: write nats://HOST:PORT/STREAM/LOG \
                 (e.g. nats://127.0.0.1:4222/DOCKET/node-1)"
            );
        };
        let servers = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("nats://{h}"))
            .collect::<Vec<_>>();
        if servers.is_empty() {
            bail!("{url} names no server: write nats://HOST:PORT/STREAM/LOG");
        }
        Location::new(servers, stream, log)
    }

    /// A location from its parts, each checked.
    pub fn new(servers: Vec<String>, stream: &str, log: &str) -> Result<Location> {
        check_token("stream", stream)?;
        check_token("log", log)?;
        Ok(Location {
            servers,
            stream: stream.to_string(),
            log: log.to_string(),
        })
    }

    /// The subject this log's commits are published on.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.stream, self.log)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self
            .servers
            .iter()
            .map(|s| s.strip_prefix("nats://").unwrap_or(s))
            .collect();
        write!(f, "nats://{}/{}/{}", hosts.join(","), self.stream, self.log)
    }
}

/// Stream and log names become subject tokens and stream names: letters, digits, `-` and `_`.
fn check_token(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "{name:?} cannot be a {what} name: use 1 to 64 letters, digits, '-' or '_' \
             (it becomes part of a NATS subject)"
        );
    }
    Ok(())
}

/// What a docket log needs of its stream. [`Requirements::check`] refuses a stream that does
/// not meet them; [`JetStreamLog::open`] creates the stream with them if it does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirements {
    /// Servers that must hold every acknowledged commit (the stream's replicas).
    pub replicas: usize,
}

/// The replicas a log's stream has unless the operator says otherwise: a majority survives one
/// server lost.
pub const DEFAULT_REPLICAS: usize = 3;

impl Default for Requirements {
    fn default() -> Self {
        Requirements {
            replicas: DEFAULT_REPLICAS,
        }
    }
}

/// How docket learns that the servers fsync a message before acknowledging it, which no client
/// request can tell: by each server's monitoring endpoint (`/varz` shows `sync_always` when the
/// server runs with `jetstream { sync_interval: always }`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// Every server's monitoring endpoint (`http://host:8222`); at least as many as the
    /// stream's required replicas.
    pub monitors: Vec<String>,
    /// Whether servers that cannot be shown to fsync before acknowledging are refused (the
    /// default), or only warned about (`--nats-unchecked-fsync`: the operator's explicit word).
    pub required: bool,
}

impl Durability {
    /// Servers each shown by its monitoring endpoint to fsync before acknowledging.
    pub fn checked(monitors: Vec<String>) -> Durability {
        Durability {
            monitors,
            required: true,
        }
    }

    /// Checks the servers: `Ok(None)` when they fsync before acknowledging; otherwise the
    /// problem, as an error when it is `required`, else as a warning to log.
    pub fn check(&self, requirements: &Requirements) -> Result<Option<String>> {
        match self.problem(requirements) {
            None => Ok(None),
            Some(problem) if self.required => Err(anyhow!(
                "{problem}; or accept servers whose fsync is not checked with --nats-unchecked-fsync"
            )),
            Some(problem) => Ok(Some(format!(
                "{problem} (accepted: --nats-unchecked-fsync); an acknowledged commit may be lost in a power cut"
            ))),
        }
    }

    fn problem(&self, requirements: &Requirements) -> Option<String> {
        if self.monitors.len() < requirements.replicas {
            return Some(format!(
                "{} monitoring endpoint(s) given for {} required replicas: name every server's \
                 (--nats-monitor http://HOST:8222, once per server) so docket can check that \
                 each fsyncs before it acknowledges",
                self.monitors.len(),
                requirements.replicas
            ));
        }
        for monitor in &self.monitors {
            let varz = match monitor_get(monitor, "/varz") {
                Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok(),
                Ok(_) => None,
                Err(e) => return Some(format!("{e:#}")),
            };
            let Some(varz) = varz else {
                return Some(format!(
                    "{monitor}/varz did not answer with the server's settings: is it a NATS \
                     monitoring endpoint?"
                ));
            };
            let config = &varz["jetstream"]["config"];
            if config.is_null() {
                return Some(format!("the server at {monitor} does not run JetStream"));
            }
            if config["sync_always"].as_bool() != Some(true) {
                return Some(format!(
                    "the server at {monitor} fsyncs only every {}s, so it may acknowledge a \
                     commit it then loses in a power cut: run it with `jetstream {{ \
                     sync_interval: always }}`",
                    config["sync_interval"].as_u64().unwrap_or(0) / 1_000_000_000
                ));
            }
        }
        None
    }
}

/// One GET to a NATS monitoring endpoint (plain HTTP/1.0 on loopback or a private network):
/// its status and body.
pub fn monitor_get(base: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{base} is not a monitoring endpoint: write http://HOST:PORT"))?
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)
        .with_context(|| format!("cannot reach the NATS monitoring endpoint {base}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading {base}{path}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{base}{path} did not answer HTTP"))?;
    Ok((status, body.to_string()))
}

impl Requirements {
    /// The configuration docket creates a stream with.
    pub fn stream_config(&self, name: &str) -> stream::Config {
        stream::Config {
            name: name.to_string(),
            description: Some(
                "docket decision logs: one subject per log (docs/store-format.md)".into(),
            ),
            subjects: vec![format!("{name}.*")],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    /// Why `config` cannot hold a docket log with the durability docket promises, if it
    /// cannot: one sentence per problem, each saying what to change.
    pub fn check(&self, config: &stream::Config) -> Vec<String> {
        let name = &config.name;
        let mut problems = Vec::new();
        if config.storage != stream::StorageType::File {
            problems.push(format!(
                "stream {name} keeps messages in memory: a restart loses them; a docket log needs file storage"
            ));
        }
        if config.num_replicas < self.replicas {
            problems.push(format!(
                "stream {name} has {} replica(s), fewer than the {} required: a commit would be acknowledged before enough servers hold it (lower the requirement explicitly with --nats-replicas if that is what you mean)",
                config.num_replicas, self.replicas
            ));
        }
        if config.persist_mode == Some(stream::PersistenceMode::Async) {
            problems.push(format!(
                "stream {name} acknowledges writes before storing them (persist_mode async); a docket log needs the default mode"
            ));
        }
        if !config.deny_delete || !config.deny_purge {
            problems.push(format!(
                "stream {name} allows messages to be deleted or purged; a docket log needs deny_delete and deny_purge"
            ));
        }
        if config.allow_rollup {
            problems.push(format!(
                "stream {name} allows rollups, which delete every earlier message of a subject; a docket log needs allow_rollup off"
            ));
        }
        if config.max_age != Duration::ZERO
            || config.max_messages > 0
            || config.max_bytes > 0
            || config.max_messages_per_subject > 0
        {
            problems.push(format!(
                "stream {name} has a limit (max_age, max_msgs, max_bytes or max_msgs_per_subject) that would remove or refuse a log's messages; a docket log needs them unlimited (docket prunes payloads itself)"
            ));
        }
        if config.retention != stream::RetentionPolicy::Limits {
            problems.push(format!(
                "stream {name} removes messages once consumed (interest or work-queue retention); a docket log needs limits retention"
            ));
        }
        if config.sealed {
            problems.push(format!("stream {name} is sealed: nothing can be appended"));
        }
        if config.mirror.is_some() {
            problems.push(format!(
                "stream {name} is a mirror; docket writes to the stream it mirrors"
            ));
        }
        if !config.allow_atomic_publish {
            problems.push(format!(
                "stream {name} does not allow atomic batch publishing (allow_atomic), which a commit larger than one message needs"
            ));
        }
        let subject_covered = config
            .subjects
            .iter()
            .any(|s| s == &format!("{name}.*") || s == &format!("{name}.>"));
        if !subject_covered {
            problems.push(format!(
                "stream {name} does not take the subjects {name}.* that docket logs are published on"
            ));
        }
        problems
    }
}

/// A log's commits as the stream holds them.
#[derive(Debug, Default)]
pub struct Read {
    pub frames: Vec<Frame>,
    /// The stream sequence of the log's last message (0: the log has none).
    pub last_sequence: u64,
    /// Messages read.
    pub messages: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// One log in a JetStream stream, connected, its stream checked.
pub struct JetStreamLog {
    /// The client's own runtime (always `Some`; taken only by `drop`).
    runtime: Option<tokio::runtime::Runtime>,
    client: async_nats::Client,
    context: jetstream::Context,
    location: Location,
    /// Largest payload the servers take.
    max_payload: usize,
    /// The stream sequence this writer believes is the log's last: the fence of its next
    /// commit. Set by [`JetStreamLog::read`], advanced by each commit.
    last: Mutex<Option<u64>>,
    /// Why the servers' durability was not shown, when the operator accepted that.
    durability_warning: Option<String>,
}

impl JetStreamLog {
    /// Connects to `location`'s servers, checks `durability`, and checks its stream against
    /// `requirements`; with `create`, a stream that does not exist is created with them.
    pub fn open(
        location: &Location,
        requirements: Requirements,
        durability: &Durability,
        create: bool,
    ) -> Result<Self> {
        let warning = durability.check(&requirements)?;
        let mut log = JetStreamLog::connect(location)?;
        log.durability_warning = warning;
        let shown = location.to_string();
        match log.stream_config()? {
            Some(config) => {
                let problems = requirements.check(&config);
                if !problems.is_empty() {
                    bail!(
                        "stream {} cannot hold a docket log: {}. Nothing was written",
                        location.stream,
                        problems.join("; ")
                    );
                }
            }
            None if create => {
                let js = log.context.clone();
                let config = requirements.stream_config(&location.stream);
                run(log.runtime(), async move { js.create_stream(config).await }).with_context(
                    || format!("cannot create stream {} on {shown}", location.stream),
                )?;
            }
            None => bail!(
                "there is no stream {} on {shown}: no docket log was ever written there",
                location.stream
            ),
        }
        Ok(log)
    }

    /// Connects to `location`'s servers to read its log, whatever the stream's settings: a
    /// log is verified by what it holds, not by how it is kept.
    pub fn open_for_reading(location: &Location) -> Result<Self> {
        let log = JetStreamLog::connect(location)?;
        if log.stream_config()?.is_none() {
            bail!(
                "there is no stream {} on {location}: no docket log was ever written there",
                location.stream
            );
        }
        Ok(log)
    }

    fn connect(location: &Location) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("docket-nats")
            .enable_all()
            .build()
            .context("starting the NATS client's runtime")?;
        let servers: Vec<async_nats::ServerAddr> = location
            .servers
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| anyhow!("{s} is not a NATS server address: {e}"))
            })
            .collect::<Result<_>>()?;
        let shown = location.to_string();
        let client = run(&runtime, async move {
            async_nats::ConnectOptions::new()
                .name("docket")
                .connection_timeout(Duration::from_secs(5))
                .request_timeout(Some(REQUEST_TIMEOUT))
                .connect(servers)
                .await
        })
        .with_context(|| {
            format!("cannot connect to the NATS servers of {shown}: are they running?")
        })?;
        let max_payload = client.server_info().max_payload;
        let context = {
            let _inside = runtime.enter();
            jetstream::new(client.clone())
        };
        Ok(JetStreamLog {
            runtime: Some(runtime),
            client,
            context,
            location: location.clone(),
            max_payload,
            last: Mutex::new(None),
            durability_warning: None,
        })
    }

    /// The stream's configuration, or `None` if there is no such stream.
    fn stream_config(&self) -> Result<Option<stream::Config>> {
        let js = self.context.clone();
        let stream_name = self.location.stream.clone();
        run(self.runtime(), async move {
            match js.get_stream(&stream_name).await {
                Ok(mut stream) => Ok(Some(stream.info().await?.config.clone())),
                Err(e)
                    if matches!(
                        e.kind(),
                        jetstream::context::GetStreamErrorKind::JetStream(ref j)
                            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(anyhow::Error::new(e)),
            }
        })
        .with_context(|| {
            format!(
                "cannot read stream {} of {}: is JetStream enabled on the servers?",
                self.location.stream, self.location
            )
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the log")
    }

    /// The log's last message as each of the location's servers answers for it: a client
    /// connected to that server alone asks for it by direct get, which NATS answers from the
    /// replica on that server when there is one (it prefers a local responder; the answer does
    /// not say which replica gave it). For [`ReplicaWatch::check_tails`].
    pub fn replica_tails(&self) -> Vec<Result<ReplicaTail>> {
        let subject = self.location.subject();
        let stream_name = self.location.stream.clone();
        self.location
            .servers
            .iter()
            .map(|server| {
                let (server, subject, stream_name) =
                    (server.clone(), subject.clone(), stream_name.clone());
                let shown = server.clone();
                run(self.runtime(), async move {
                    let client = async_nats::ConnectOptions::new()
                        .name("docket-replica-watch")
                        .connection_timeout(Duration::from_secs(5))
                        .request_timeout(Some(REQUEST_TIMEOUT))
                        .connect(server.as_str())
                        .await?;
                    let js = jetstream::new(client.clone());
                    let stream = js.get_stream(&stream_name).await?;
                    let last = stream.direct_get_last_for_subject(&subject).await;
                    let _ = client.drain().await;
                    let last = last?;
                    Ok::<_, anyhow::Error>(ReplicaTail {
                        server,
                        sequence: last.sequence,
                        hash: Sha256::digest(&last.payload).into(),
                    })
                })
                .with_context(|| format!("cannot read the log's last message through {shown}"))
            })
            .collect()
    }

    /// The stream sequence of the log's last commit as this writer last read or wrote it
    /// (`None` right after a failed commit, until the log is read again).
    pub fn acknowledged_sequence(&self) -> Option<u64> {
        *self.last.lock().expect("fence lock")
    }

    /// Why the servers may acknowledge before they fsync, if the operator accepted servers
    /// whose fsync was not shown ([`Durability::required`] false).
    pub fn durability_warning(&self) -> Option<&str> {
        self.durability_warning.as_deref()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Reads the whole log from the stream and sets the fence for the next commit to its end.
    /// Fails if the messages do not make whole commits (which JetStream's atomic publishing
    /// and docket's fence rule out; a damaged stream is reported, never repaired), with a
    /// [`docket_store::Damage`] error.
    pub fn read(&self) -> Result<Read> {
        let (bytes, last_sequence, messages) = self.read_subject(&self.location.log, 0)?;
        let shown = self.location.to_string();
        // Damage is told apart from a failure to read (a `docket_store::Damage` error), so a
        // verifier can report it as what the log holds.
        let (frames, used, problem) = docket_store::scan_segment(&bytes);
        if let Some(problem) = problem.filter(|_| used < bytes.len()) {
            return Err(docket_store::Damage(format!(
                "the log {shown} is damaged in JetStream at byte {used} of its messages: {problem}"
            ))
            .into());
        }
        if !bytes.is_empty() && !matches!(frames.last(), Some(Frame::Checkpoint(_))) {
            return Err(docket_store::Damage(format!(
                "the log {shown} in JetStream ends with entries no checkpoint covers, which a \
                 docket writer never publishes"
            ))
            .into());
        }
        *self.last.lock().expect("fence lock") = Some(last_sequence);
        Ok(Read {
            frames,
            last_sequence,
            messages,
            bytes: bytes.len() as u64,
        })
    }

    /// The names of every log in the stream (this one's included), in order.
    pub fn logs(&self) -> Result<Vec<String>> {
        let js = self.context.clone();
        let stream_name = self.location.stream.clone();
        let prefix = format!("{stream_name}.");
        let subjects = run(self.runtime(), async move {
            let stream = js.get_stream(&stream_name).await?;
            let mut info = stream
                .info_with_subjects(format!("{stream_name}.*"))
                .await?;
            let mut subjects = Vec::new();
            while let Some((subject, _count)) =
                futures_util::TryStreamExt::try_next(&mut info).await?
            {
                subjects.push(subject);
            }
            Ok::<_, anyhow::Error>(subjects)
        })
        .with_context(|| format!("cannot list the logs of stream {}", self.location.stream))?;
        let mut logs: Vec<String> = subjects
            .into_iter()
            .filter_map(|s| s.strip_prefix(&prefix).map(str::to_string))
            .collect();
        logs.sort();
        Ok(logs)
    }

    /// The bytes of log `log` (of this stream) published after stream sequence `after`, and
    /// the stream sequence of its last message (`after` when there is nothing new). The bytes
    /// continue the log's frames from where the earlier read ended; they are not checked.
    pub fn read_log_after(&self, log: &str, after: u64) -> Result<(Vec<u8>, u64)> {
        check_token("log", log)?;
        let (bytes, last, _) = self.read_subject(log, after)?;
        Ok((bytes, last.max(after)))
    }

    /// Every message of log `log`'s subject after stream sequence `after`, concatenated, with
    /// the sequence of the subject's last message and the number of messages read.
    fn read_subject(&self, log: &str, after: u64) -> Result<(Vec<u8>, u64, u64)> {
        let subject = format!("{}.{log}", self.location.stream);
        let js = self.context.clone();
        let stream_name = self.location.stream.clone();
        let shown = format!("nats://…/{}/{log}", self.location.stream);
        run(self.runtime(), async move {
            let stream = js.get_stream(&stream_name).await?;
            let last = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => message.sequence,
                Err(e)
                    if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    return Ok::<_, anyhow::Error>((Vec::new(), 0, 0));
                }
                Err(e) => return Err(e.into()),
            };
            if last <= after {
                return Ok((Vec::new(), last, 0));
            }
            let deliver_policy = if after == 0 {
                jetstream::consumer::DeliverPolicy::All
            } else {
                jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                }
            };
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    filter_subject: subject.clone(),
                    deliver_policy,
                    ..Default::default()
                })
                .await?;
            let mut incoming = consumer.messages().await?;
            let mut bytes = Vec::new();
            let mut messages = 0u64;
            // An ordered consumer that is reset (a leader change, a missed heartbeat) starts
            // again after the last message it delivered, which the client may deliver twice:
            // each stream sequence is taken once, in increasing order.
            let mut read_up_to = after;
            while let Some(message) = incoming.next().await {
                let message = message?;
                let sequence = message.info().map_err(|e| anyhow!("{e}"))?.stream_sequence;
                if sequence <= read_up_to {
                    continue;
                }
                read_up_to = sequence;
                bytes.extend_from_slice(&message.payload);
                messages += 1;
                if sequence >= last {
                    break;
                }
            }
            Ok((bytes, last, messages))
        })
        .with_context(|| format!("cannot read the log {shown}"))
    }

    /// Publishes one commit after the log's last message, as one message or one atomic batch;
    /// returns once the stream acknowledged it (a quorum of its replicas holds it). Fails if
    /// another writer appended since this one read or wrote the log, with nothing appended.
    pub fn append(&self, commit: &[u8]) -> Result<()> {
        let mut fence = self.last.lock().expect("fence lock");
        let Some(last) = *fence else {
            bail!("the log must be read from JetStream before it is appended to");
        };
        // Until this commit is acknowledged, where the log ends is unknown.
        *fence = None;
        let chunk = self.max_payload.saturating_sub(HEADER_ROOM).max(1);
        let pieces: Vec<&[u8]> = commit.chunks(chunk).collect();
        if pieces.len() > MAX_BATCH_MESSAGES {
            bail!(
                "a commit of {} bytes needs more than {MAX_BATCH_MESSAGES} messages of {chunk} bytes, \
                 more than one atomic batch may hold; raise the servers' max_payload or commit \
                 smaller batches",
                commit.len()
            );
        }
        let subject = self.location.subject();
        let client = self.client.clone();
        let owned: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let batch_id = hex::encode(&Sha256::digest(commit)[..16]);
        let shown = self.location.to_string();
        let sequence = run(self.runtime(), async move {
            let count = owned.len();
            let mut acked = None;
            for (i, piece) in owned.into_iter().enumerate() {
                let mut headers = HeaderMap::new();
                if i == 0 {
                    headers.insert(
                        "Nats-Expected-Last-Subject-Sequence",
                        last.to_string().as_str(),
                    );
                }
                headers.insert("Nats-Msg-Id", hex::encode(Sha256::digest(&piece)).as_str());
                if count > 1 {
                    headers.insert("Nats-Batch-Id", batch_id.as_str());
                    headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                    if i + 1 == count {
                        headers.insert("Nats-Batch-Commit", "1");
                    }
                }
                let reply = client
                    .request_with_headers(subject.clone(), headers, piece.into())
                    .await?;
                if i + 1 < count {
                    // A message inside a batch is answered with nothing, or with an error.
                    if !reply.payload.is_empty() {
                        publish_ack(&reply.payload)?;
                    }
                    continue;
                }
                acked = Some(publish_ack(&reply.payload)?);
            }
            acked.ok_or_else(|| anyhow!("an empty commit"))
        })
        .with_context(|| format!("the commit was not acknowledged by {shown}"))?;
        *fence = Some(sequence);
        Ok(())
    }
}

impl Drop for JetStreamLog {
    /// Stops the client's runtime without waiting for it: a log may be dropped on an async
    /// thread (a server whose start failed), where waiting is not allowed.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl docket_store::Replica for JetStreamLog {
    fn replicate(&self, commit: &[u8]) -> Result<()> {
        self.append(commit)
    }
}

/// The stream sequence a publish acknowledgement reports, or the error it reports, in words.
fn publish_ack(payload: &[u8]) -> Result<u64> {
    let ack: serde_json::Value = serde_json::from_slice(payload).map_err(|_| {
        anyhow!(
            "the server answered the publish with something other than an acknowledgement: {}",
            String::from_utf8_lossy(payload)
        )
    })?;
    if let Some(error) = ack.get("error") {
        let code = error.get("err_code").and_then(|c| c.as_u64()).unwrap_or(0);
        let description = error
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("no description");
        if code == 10071 {
            // JSStreamWrongLastSequenceErr: the fence held.
            bail!(
                "another writer appended to this log since it was read ({description}); it \
                 must be read again before it is written"
            );
        }
        bail!("JetStream refused the commit: {description} (error {code})");
    }
    if ack.get("duplicate").and_then(|d| d.as_bool()) == Some(true) {
        bail!(
            "JetStream already holds this commit (a duplicate); the log must be read again \
             before it is written"
        );
    }
    ack.get("seq")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| anyhow!("the acknowledgement names no sequence: {ack}"))
}

/// Runs `future` on the client's runtime and waits for it from this (non-async) thread.
fn run<T: Send + 'static, E: Into<anyhow::Error> + Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = std::result::Result<T, E>> + Send + 'static,
) -> Result<T> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = send.send(future.await.map_err(Into::into));
    });
    receive
        .recv()
        .map_err(|_| anyhow!("the NATS client's runtime stopped"))?
}

/// One server's replica of a stream, as its monitoring endpoint (`/jsz?streams=true`) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    /// The server's name (`server_name` in its configuration), or its endpoint if unnamed.
    pub server: String,
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Whether this server leads the stream's group.
    pub leader: bool,
}

/// The replica of `stream` each monitoring endpoint's server holds (servers holding none are
/// left out), or why an endpoint could not tell.
pub fn replica_states(monitors: &[String], stream: &str) -> Vec<Result<ReplicaState>> {
    let mut states = Vec::new();
    for monitor in monitors {
        let state = (|| {
            let (status, body) = monitor_get(monitor, "/jsz?streams=true")?;
            let jsz: serde_json::Value = serde_json::from_str(&body)
                .ok()
                .filter(|_| status == 200)
                .ok_or_else(|| {
                    anyhow!("{monitor}/jsz answered {status} without JetStream's state")
                })?;
            let varz_name = monitor_get(monitor, "/varz")
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| v["server_name"].as_str().map(str::to_string))
                .unwrap_or_else(|| monitor.clone());
            let detail = jsz["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
                .find(|d| d["name"] == stream);
            Ok(detail.map(|d| {
                let n = |k: &str| d["state"][k].as_u64().unwrap_or(0);
                ReplicaState {
                    leader: d["cluster"]["leader"].as_str() == Some(varz_name.as_str()),
                    server: varz_name.clone(),
                    messages: n("messages"),
                    bytes: n("bytes"),
                    first_seq: n("first_seq"),
                    last_seq: n("last_seq"),
                }
            }))
        })();
        match state {
            Ok(Some(state)) => states.push(Ok(state)),
            Ok(None) => {}
            Err(e) => states.push(Err(e)),
        }
    }
    states
}

/// The last message of a log as one server answers for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaTail {
    /// The server asked (its client URL).
    pub server: String,
    /// The stream sequence of the log's last message.
    pub sequence: u64,
    /// SHA-256 of that message's payload.
    pub hash: [u8; 32],
}

/// Watches a stream's replicas for what JetStream's own replication does not promise to catch
/// (Jepsen, NATS 2.12.1: acknowledged writes lost after power loss and minority corruption):
/// replicas at the same sequence that hold different contents, a replica whose last sequence
/// goes back, and a leader behind what the writer was acknowledged.
#[derive(Debug, Default)]
pub struct ReplicaWatch {
    highest: std::collections::HashMap<String, u64>,
}

impl ReplicaWatch {
    /// Compares the log's last message as several servers answered for it: at one sequence,
    /// the payloads must be the same bytes. One sentence per alarm.
    pub fn check_tails(&self, tails: &[ReplicaTail]) -> Vec<String> {
        let mut alarms = Vec::new();
        for (i, a) in tails.iter().enumerate() {
            for b in &tails[i + 1..] {
                if a.sequence == b.sequence && a.hash != b.hash {
                    alarms.push(format!(
                        "the log's message at sequence {} differs as {} and {} answer for it (SHA-256 {} against {}): a replica holds other bytes than the others",
                        a.sequence,
                        a.server,
                        b.server,
                        hex::encode(a.hash),
                        hex::encode(b.hash)
                    ));
                }
            }
        }
        alarms
    }

    /// Compares `states` (one check's reading) with each other and with earlier readings;
    /// `acknowledged` is the stream sequence of the writer's last acknowledged commit. Returns
    /// one sentence per alarm.
    pub fn check(&mut self, states: &[ReplicaState], acknowledged: Option<u64>) -> Vec<String> {
        let mut alarms = Vec::new();
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                if (a.first_seq, a.last_seq) == (b.first_seq, b.last_seq)
                    && (a.messages, a.bytes) != (b.messages, b.bytes)
                {
                    alarms.push(format!(
                        "replicas on {} and {} both hold sequences {}..={} but differ ({} messages, {} bytes against {} messages, {} bytes): one of them is damaged",
                        a.server, b.server, a.first_seq, a.last_seq, a.messages, a.bytes, b.messages, b.bytes
                    ));
                }
            }
        }
        for state in states {
            let highest = self.highest.entry(state.server.clone()).or_insert(0);
            if state.last_seq < *highest {
                alarms.push(format!(
                    "the replica on {} went back from sequence {} to {}: it lost messages it held (a disk lost or damaged, or writes it acknowledged before they were on disk)",
                    state.server, highest, state.last_seq
                ));
            }
            *highest = (*highest).max(state.last_seq);
            if let Some(acknowledged) = acknowledged
                && state.leader
                && state.last_seq < acknowledged
            {
                alarms.push(format!(
                    "the stream's leader {} ends at sequence {}, before sequence {} it acknowledged to this writer: acknowledged commits are missing",
                    state.server, state.last_seq, acknowledged
                ));
            }
        }
        alarms
    }
}

/// What [`sync_log_dir`] did to the log directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Commits copied from the stream into the directory.
    pub commits_copied: u64,
    /// Where a local log that was not a prefix of the stream's was moved (kept, never deleted).
    pub moved_aside: Option<std::path::PathBuf>,
}

/// Makes the log directory `dir` hold exactly the commits `read` holds (the stream's): nothing
/// to do if it does; the missing commits appended if it holds a prefix of them; otherwise the
/// directory is moved aside (kept for inspection) and written afresh from the stream. A stream
/// with no commits leaves `dir` alone, but refuses a `dir` that holds a log, which would be a
/// log JetStream never saw.
pub fn sync_log_dir(dir: &Path, read: &Read, location: &Location) -> Result<Synced> {
    let mut synced = Synced::default();
    if read.frames.is_empty() {
        if docket_store::is_log_dir(dir) {
            bail!(
                "{} holds a log that is not in JetStream ({location} is empty); docket does not \
                 upload a local log: start with an empty data directory, or serve this one \
                 without --nats",
                dir.display()
            );
        }
        return Ok(synced);
    }
    if docket_store::is_log_dir(dir) {
        let (mut store, local, _recovery) = docket_store::Store::open(dir)?;
        if read.frames.starts_with(&local) {
            for commit in split_commits(&read.frames[local.len()..]) {
                let entries: Vec<&[u8]> = commit.iter().filter_map(|f| f.entry()).collect();
                let Some(Frame::Checkpoint(note)) = commit.last() else {
                    unreachable!("split_commits ends each commit with its checkpoint");
                };
                store.commit(&entries, note)?;
                synced.commits_copied += 1;
            }
            return Ok(synced);
        }
        drop(store);
        let aside = dir.with_file_name(format!(
            "{}.not-in-jetstream-{}",
            dir.file_name()
                .map_or_else(|| "log".into(), |n| n.to_string_lossy()),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        std::fs::rename(dir, &aside)
            .with_context(|| format!("moving {} aside to {}", dir.display(), aside.display()))?;
        synced.moved_aside = Some(aside);
    }
    docket_store::write_log_dir(dir, &read.frames)?;
    synced.commits_copied = split_commits(&read.frames).len() as u64;
    Ok(synced)
}

/// Frames grouped into commits: entries up to and including each checkpoint.
fn split_commits(frames: &[Frame]) -> Vec<&[Frame]> {
    let mut commits = Vec::new();
    let mut start = 0;
    for (i, frame) in frames.iter().enumerate() {
        if matches!(frame, Frame::Checkpoint(_)) {
            commits.push(&frames[start..=i]);
            start = i + 1;
        }
    }
    commits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_and_print_back() {
        let l = Location::parse("nats://a:4222,b:4223/DOCKET/node-1").unwrap();
        assert_eq!(l.servers, vec!["nats://a:4222", "nats://b:4223"]);
        assert_eq!(l.subject(), "DOCKET.node-1");
        assert_eq!(l.to_string(), "nats://a:4222,b:4223/DOCKET/node-1");
        for bad in [
            "http://a/S/L",
            "nats://a:4222",
            "nats://a:4222/S",
            "nats:///S/L",
            "nats://a/S/l.x",
            "nats://a/S*/L",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("Error {"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_stream_docket_creates_meets_its_own_requirements() {
        let r = Requirements { replicas: 3 };
        assert_eq!(r.check(&r.stream_config("DOCKET")), Vec::<String>::new());
    }

    #[test]
    fn streams_that_could_lose_a_commit_are_refused_with_a_reason() {
        let r = Requirements { replicas: 3 };
        let good = r.stream_config("DOCKET");
        let cases: Vec<(&str, stream::Config)> = vec![
            (
                "memory",
                stream::Config {
                    storage: stream::StorageType::Memory,
                    ..good.clone()
                },
            ),
            (
                "replica",
                stream::Config {
                    num_replicas: 1,
                    ..good.clone()
                },
            ),
            (
                "persist_mode",
                stream::Config {
                    persist_mode: Some(stream::PersistenceMode::Async),
                    ..good.clone()
                },
            ),
            (
                "deny_delete",
                stream::Config {
                    deny_delete: false,
                    ..good.clone()
                },
            ),
            (
                "deny_delete",
                stream::Config {
                    deny_purge: false,
                    ..good.clone()
                },
            ),
            (
                "rollup",
                stream::Config {
                    allow_rollup: true,
                    ..good.clone()
                },
            ),
            (
                "max_age",
                stream::Config {
                    max_age: Duration::from_secs(3600),
                    ..good.clone()
                },
            ),
            (
                "max_age",
                stream::Config {
                    max_messages_per_subject: 10,
                    ..good.clone()
                },
            ),
            (
                "retention",
                stream::Config {
                    retention: stream::RetentionPolicy::WorkQueue,
                    ..good.clone()
                },
            ),
            (
                "sealed",
                stream::Config {
                    sealed: true,
                    ..good.clone()
                },
            ),
            (
                "allow_atomic",
                stream::Config {
                    allow_atomic_publish: false,
                    ..good.clone()
                },
            ),
            (
                "subjects",
                stream::Config {
                    subjects: vec!["other.>".into()],
                    ..good.clone()
                },
            ),
        ];
        for (word, config) in cases {
            let problems = r.check(&config);
            assert_eq!(problems.len(), 1, "{word}: {problems:?}");
            assert!(problems[0].contains(word), "{word}: {problems:?}");
        }
    }

    fn state(server: &str, first: u64, last: u64, bytes: u64, leader: bool) -> ReplicaState {
        ReplicaState {
            server: server.into(),
            messages: last + 1 - first,
            bytes,
            first_seq: first,
            last_seq: last,
            leader,
        }
    }

    #[test]
    fn replicas_that_differ_go_back_or_lose_acknowledged_commits_raise_alarms() {
        let mut watch = ReplicaWatch::default();
        // Healthy: a follower lagging is normal.
        let healthy = [
            state("n1", 1, 10, 100, true),
            state("n2", 1, 10, 100, false),
            state("n3", 1, 8, 80, false),
        ];
        assert!(watch.check(&healthy, Some(10)).is_empty());
        // Same sequences, other bytes.
        let damaged = [state("n1", 1, 10, 100, true), state("n2", 1, 10, 99, false)];
        let alarms = watch.check(&damaged, Some(10));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(alarms[0].contains("n1 and n2"), "{alarms:?}");
        // A replica going back.
        let back = [state("n1", 1, 12, 120, true), state("n3", 1, 3, 30, false)];
        let alarms = watch.check(&back, Some(12));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(
            alarms[0].contains("n3 went back from sequence 8 to 3"),
            "{alarms:?}"
        );
        // The leader behind what was acknowledged (and going back itself).
        let lost = [state("n2", 1, 11, 110, true)];
        let alarms = watch.check(&lost, Some(12));
        assert!(
            alarms
                .iter()
                .any(|a| a.contains("acknowledged commits are missing")),
            "{alarms:?}"
        );
    }

    #[test]
    fn tails_that_differ_at_one_sequence_raise_an_alarm() {
        let tail = |server: &str, sequence, byte| ReplicaTail {
            server: server.into(),
            sequence,
            hash: [byte; 32],
        };
        let watch = ReplicaWatch::default();
        assert!(
            watch
                .check_tails(&[tail("a", 5, 1), tail("b", 5, 1), tail("c", 4, 9)])
                .is_empty()
        );
        let alarms = watch.check_tails(&[tail("a", 5, 1), tail("b", 5, 2)]);
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(
            alarms[0].contains("sequence 5 differs as a and b"),
            "{alarms:?}"
        );
    }

    #[test]
    fn commits_split_at_checkpoints() {
        let e = |b: u8| Frame::Entry(vec![b]);
        let c = |s: &str| Frame::Checkpoint(s.into());
        let frames = vec![e(0), c("a"), e(1), e(2), c("b"), c("c")];
        let commits = split_commits(&frames);
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[1], &frames[2..5]);
        assert_eq!(commits[2], &frames[5..6]);
    }
}
