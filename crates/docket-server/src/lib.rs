//! `docket serve`: an OPA-compatible decision point whose every answer is sealed and durable
//! before it is sent, a sink for real OPA's decision logs, and a read-and-proof API over the log.
//! The HTTP API is specified in `docs/api.md`.
//!
//! Threads: tokio serves HTTP; evaluations run on a bounded pool of component instances
//! ([`policies::EvalPool`]); one appender thread seals and commits ([`appender`]).
//!
//! API boundary: [`start`] with a [`ServeConfig`] is what the `docket` binary uses; the
//! modules are public for the tests and benchmarks. [`examples`] holds the example policies,
//! served when no `--policy` is given.

pub mod appender;
pub mod bundle;
pub mod bundle_service;
pub mod cors;
pub mod examples;
pub mod fleet;
pub mod guard;
pub mod http;
mod ingest;
mod log_api;
pub mod metrics;
mod opa_api;
pub mod policies;
pub mod queue;
pub mod status;
pub mod ui;
pub mod witness;
pub mod witnessing;

use anyhow::{Context, Result, anyhow, bail};
use appender::{Appender, CommitPolicy, LogView};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use docket_runtime::log::{AuditLog, read_public_key, read_secret_key, write_new_key};
use docket_runtime::{self as runtime, EntryKind, Runtime};
use docket_store::salts::SaltFile;
use metrics::Metrics;
use policies::{EvalPool, Generation, PolicySet};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Everything `docket serve` is configured with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// Holds the key (`docket.key`, `docket.pub`), the write token and the log (`log/`).
    pub dir: PathBuf,
    /// Rego files, JSON data files, or directories of them; empty (and no bundles) serves the
    /// examples.
    pub policies: Vec<PathBuf>,
    /// OPA bundles (name, `.tar.gz` or directory), loaded beside `policies`.
    pub bundles: Vec<(String, PathBuf)>,
    /// How signed bundles are verified; with it, unsigned bundles are refused.
    pub bundle_verification: Option<bundle::Verification>,
    /// Bundles downloaded from bundle servers before the start and polled after it.
    pub remote_bundles: Vec<bundle_service::RemoteBundle>,
    pub bundle_polling: bundle_service::Polling,
    /// The bearer token write endpoints require; `None` uses (or creates) `<dir>/token`.
    pub token: Option<String>,
    /// A bearer token reading entries requires (the write token is accepted too); `None`:
    /// reading is open.
    pub read_token: Option<String>,
    /// Concurrent evaluations per lane (component instances in the pool).
    pub workers: usize,
    /// How long an evaluation runs before it moves from the ordinary to the long lane.
    pub eval_grace: std::time::Duration,
    pub commit: CommitPolicy,
    /// Largest accepted request body for decisions, policies and data.
    pub max_body: usize,
    /// Largest accepted decision-log upload, compressed and decompressed.
    pub max_ingest_body: usize,
    /// The data path `POST /` evaluates.
    pub default_decision: String,
    /// Paths that accept OPA decision-log uploads.
    pub ingest_paths: Vec<String>,
    pub signing: runtime::SigningMode,
    pub revision: Option<String>,
    /// Where the salts of masked values are kept; `None`: `<dir>/mask-salts.jsonl`, beside the
    /// key and apart from the log.
    pub salts: Option<PathBuf>,
    /// Log segments roll over past this many bytes: the unit `docket log prune` works in.
    pub segment_bytes: u64,
    /// Largest decision input sealed, in bytes.
    pub max_input: usize,
    /// Connections and timeouts.
    pub limits: http::Limits,
    /// Who may write, and how much.
    pub admission: guard::AdmissionConfig,
    /// The origin line of a new log's checkpoints, and its new key's name (C2SP: a log's origin
    /// should be its URL without the scheme). `None`: `docket.serve/<12 random hex digits>`.
    pub origin: Option<String>,
    /// Witnesses to submit checkpoints to, and how often.
    pub witnesses: Vec<witnessing::WitnessTarget>,
    pub witness_pacing: witnessing::WitnessPacing,
    /// Origins whose scripts may read the log's API from a browser (`--allow-origin`).
    pub allowed_origins: Vec<String>,
    /// Keep the log in NATS JetStream (docs/store-format.md, "NATS JetStream"): every commit is
    /// acknowledged by the stream before the data directory, which becomes a copy rebuilt from
    /// the stream at each start. `None`: the data directory is the log.
    pub nats: Option<NatsLog>,
}

/// Where `docket serve` keeps its log in JetStream, and what it requires of the stream.
#[derive(Clone, Debug)]
pub struct NatsLog {
    pub location: docket_nats::Location,
    pub requirements: docket_nats::Requirements,
    pub durability: docket_nats::Durability,
}

/// `docket serve`'s defaults, one constant each: [`ServeConfig::default`] and the CLI's flags
/// (`commands/serve.rs`) both read them.
pub mod defaults {
    /// Where `docket serve` listens.
    pub const ADDR: &str = "127.0.0.1:8181";
    /// The data directory: key, tokens, salts and the log.
    pub const DIR: &str = "docket-data";
    /// Largest request body, in bytes (decisions, policies, data).
    pub const MAX_BODY: usize = 4 << 20;
    /// Largest decision-log upload, in bytes, compressed and decompressed.
    pub const MAX_INGEST_BODY: usize = 64 << 20;
    /// The data path `POST /` evaluates.
    pub const DEFAULT_DECISION: &str = "system/main";
    /// Where OPA's decision-log uploads are accepted.
    pub const INGEST_PATH: &str = "/logs";
    /// Largest decision input sealed, in bytes.
    pub const MAX_INPUT: usize = 1 << 20;
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            addr: defaults::ADDR.parse().expect("a socket address"),
            dir: PathBuf::from(defaults::DIR),
            policies: Vec::new(),
            bundles: Vec::new(),
            bundle_verification: None,
            remote_bundles: Vec::new(),
            bundle_polling: bundle_service::Polling::default(),
            token: None,
            read_token: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            eval_grace: policies::DEFAULT_GRACE,
            commit: CommitPolicy::default(),
            max_body: defaults::MAX_BODY,
            max_ingest_body: defaults::MAX_INGEST_BODY,
            default_decision: defaults::DEFAULT_DECISION.into(),
            ingest_paths: vec![defaults::INGEST_PATH.into()],
            signing: runtime::SigningMode::Checkpoint,
            revision: None,
            segment_bytes: docket_store::SEGMENT_LIMIT,
            salts: None,
            max_input: defaults::MAX_INPUT,
            limits: http::Limits::default(),
            admission: guard::AdmissionConfig::default(),
            origin: None,
            witnesses: Vec::new(),
            witness_pacing: witnessing::WitnessPacing::default(),
            nats: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub pool: Arc<EvalPool>,
    pub appender: Appender,
    pub metrics: Arc<Metrics>,
    /// Serializes policy and data changes: check, seal, publish.
    pub policy_writer: Mutex<()>,
    pub token: String,
    pub read_token: Option<String>,
    pub default_decision: String,
    pub genesis_key: String,
    pub max_body: usize,
    pub max_ingest_body: usize,
    /// Largest decision input, in bytes.
    pub max_input: usize,
    pub ingest_paths: Vec<String>,
    pub admission: guard::Admission,
    /// The witnesses' cosignatures on the log's checkpoints.
    pub cosignatures: Arc<witnessing::Cosignatures>,
    /// What `GET /v1/status` reports (bundle downloads and activations).
    pub status: status::Status,
    /// What `GET /v1/config` reports: the configuration in force, without secrets.
    pub active_config: serde_json::Value,
    /// Every log of the node's JetStream stream, followed (`--nats`), for `/v1/fleet`.
    pub fleet: Option<Arc<fleet::Fleet>>,
}

impl AppState {
    /// True if the request carries the configured bearer token.
    pub fn token_matches(&self, headers: &HeaderMap) -> bool {
        same_token(bearer(headers), &self.token)
    }

    /// True if the request may read entries: reading is open, or it carries the read token or
    /// the write token.
    pub fn may_read(&self, headers: &HeaderMap) -> bool {
        match &self.read_token {
            None => true,
            Some(read) => same_token(bearer(headers), read) || self.token_matches(headers),
        }
    }

    /// Refuses a write without the configured bearer token.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.token_matches(headers) {
            return Ok(());
        }
        let given = bearer(headers);
        self.metrics.rejected_requests.inc();
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if given.is_empty() {
                "this endpoint changes the log or the policy and needs `Authorization: Bearer <token>` (the token is in the server's data directory, file `token`, unless --token-file was given)"
            } else {
                "the bearer token is not the server's write token"
            },
        ))
    }
}

/// Compared in constant time.
fn same_token(given: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// An error in OPA's shape: `{"code": …, "message": …}` with optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "resource_not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal_error", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(errors) = self.errors {
            body["errors"] = errors;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<docket_wire::WireError> for ApiError {
    fn from(e: docket_wire::WireError) -> ApiError {
        match e {
            docket_wire::WireError::BadRequest(m) => ApiError::bad_request(m),
            docket_wire::WireError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_parameter", m)
            }
        }
    }
}

impl From<appender::AppendError> for ApiError {
    fn from(e: appender::AppendError) -> ApiError {
        match e {
            appender::AppendError::Rejected(m) => ApiError::bad_request(m),
            appender::AppendError::Unavailable(m) => ApiError::unavailable(m),
            appender::AppendError::Expired(m) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", m)
            }
        }
    }
}

/// Reads the policy files and directories given on the command line (or the examples), as OPA
/// loads them: a directory is read whole, recursively; a module's id is its path under the
/// directory given (`rbac.rego`, `team/rbac.rego`); a data file's document is placed at its
/// directory's path under that directory (`team/roles/data.json` at `data.team.roles`, a file
/// at the top at the root of `data`), objects merging key by key. A file given by itself is a
/// module named by its file name, or data at the root.
pub fn load_policy_set(paths: &[PathBuf], revision: Option<String>) -> Result<PolicySet> {
    load_policy_sources(paths, &[], None, revision)
}

/// [`load_policy_set`] with OPA bundles (name, `.tar.gz` or directory) beside the files
/// (`bundle.rs`). Without `revision`, one bundle's revision labels the policy version, and
/// several bundles' are listed as `name=revision,…`.
pub fn load_policy_sources(
    paths: &[PathBuf],
    bundles: &[(String, PathBuf)],
    verification: Option<&bundle::Verification>,
    revision: Option<String>,
) -> Result<PolicySet> {
    let mut set = if paths.is_empty() && !bundles.is_empty() {
        PolicySet::default()
    } else {
        load_files(paths)?
    };
    bundle::load_bundles(&mut set, bundles, verification)?;
    set.revision = revision.or_else(|| bundle::revision_of(&set));
    Ok(set)
}

fn load_files(paths: &[PathBuf]) -> Result<PolicySet> {
    let mut set = PolicySet::default();
    if paths.is_empty() {
        for p in examples::DEFAULTS {
            set.modules.insert(p.id.to_string(), p.source.to_string());
            merge_data(&mut set, p.data, Path::new(p.id), &[])?;
        }
        return Ok(set);
    }
    for path in paths {
        if path.is_dir() {
            load_tree(&mut set, path, &[])?;
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            load_file(&mut set, path, &name, &[])?;
        }
    }
    Ok(set)
}

/// Everything under `dir`, whose path under the directory given is `prefix`.
fn load_tree(set: &mut PolicySet, dir: &Path, prefix: &[String]) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort();
    for entry in entries {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if entry.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            load_tree(set, &entry, &inner)?;
        } else if entry
            .extension()
            .is_some_and(|x| x == "rego" || x == "json" || x == "yaml" || x == "yml")
        {
            let id = prefix
                .iter()
                .map(String::as_str)
                .chain([name.as_str()])
                .collect::<Vec<_>>()
                .join("/");
            load_file(set, &entry, &id, prefix)?;
        }
        // Any other file is not OPA's to load either.
    }
    Ok(())
}

/// One policy or data file: a module named `id`, or data placed at `prefix`.
fn load_file(set: &mut PolicySet, file: &Path, id: &str, prefix: &[String]) -> Result<()> {
    match file.extension().and_then(|x| x.to_str()) {
        Some("rego") => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the policy file {}", file.display()))?;
            if set.modules.insert(id.to_string(), text).is_some() {
                bail!(
                    "two policy files have the module id {id} (a module's id is its path under \
                     the directory given); give their common parent directory instead, or \
                     rename one"
                );
            }
        }
        Some("json") => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the data file {}", file.display()))?;
            merge_data(set, &text, file, prefix)?;
        }
        Some("yaml" | "yml") => bail!(
            "{}: docket does not read YAML data files yet (its YAML reader would read some \
             values otherwise than OPA's YAML 1.1, such as yes and no); convert it to JSON",
            file.display()
        ),
        _ => bail!(
            "{}: expected a .rego policy or a .json data file",
            file.display()
        ),
    }
    Ok(())
}

/// Merges the JSON document in `text` into `data` at `prefix`, key by key, as OPA merges data
/// files; the same key with two values that are not both objects is refused.
fn merge_data(set: &mut PolicySet, text: &str, file: &Path, prefix: &[String]) -> Result<()> {
    docket_ledger::json::check(text)
        .map_err(|e| anyhow!("{} is not valid JSON: {e}", file.display()))?;
    if let Some(n) = docket_ledger::json::integer_beyond_64_bits(text) {
        bail!("{}: {}", file.display(), policies::integer_too_large(n));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    let Some((last, parents)) = prefix.split_last() else {
        let serde_json::Value::Object(map) = value else {
            bail!(
                "{}: a data file at the top of a policy directory must hold a JSON object",
                file.display()
            );
        };
        return merge_object(&mut set.data, map, file, "");
    };
    let mut node = &mut set.data;
    let mut at = String::new();
    for key in parents {
        at = format!("{at}/{key}");
        let child = node
            .entry(key.clone())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        let serde_json::Value::Object(child) = child else {
            bail!(
                "{}: data at {at} is already set by another data file and is not an object",
                file.display()
            );
        };
        node = child;
    }
    let mut wrapped = serde_json::Map::new();
    wrapped.insert(last.clone(), value);
    merge_object(node, wrapped, file, &at)
}

fn merge_object(
    into: &mut serde_json::Map<String, serde_json::Value>,
    from: serde_json::Map<String, serde_json::Value>,
    file: &Path,
    at: &str,
) -> Result<()> {
    for (key, value) in from {
        let here = format!("{at}/{key}");
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
            }
            (Some(serde_json::Value::Object(existing)), serde_json::Value::Object(more)) => {
                merge_object(existing, more, file, &here)?;
            }
            (Some(_), _) => bail!(
                "{}: data at {} is already set by another data file",
                file.display(),
                here.trim_start_matches('/')
            ),
        }
    }
    Ok(())
}

/// The policy-change record of log-format §4.4 for a full load.
pub fn load_record(set: &PolicySet, version: &runtime::PolicyVersion) -> String {
    load_record_value(set, &version_json(version)).to_string()
}

/// [`load_record`] as JSON, with the policy version already in its JSON form.
pub fn load_record_value(set: &PolicySet, version: &serde_json::Value) -> serde_json::Value {
    let mut record = json!({
        "op": "load",
        "modules": set.modules,
        "data": set.data,
        "policy_version": version,
    });
    if !set.bundles.is_empty() {
        record["bundles"] = json!(set.bundles);
    }
    record
}

pub fn version_json(version: &runtime::PolicyVersion) -> serde_json::Value {
    match &version.revision {
        Some(r) => json!({"digest": version.digest, "revision": r}),
        None => json!({"digest": version.digest}),
    }
}

fn read_or_create_token(dir: &Path) -> Result<String> {
    let path = dir.join("token");
    if path.exists() {
        docket_store::private::check_secret(&path, "the write token")?;
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string();
        if token.len() < 16 {
            bail!(
                "{} holds a token shorter than 16 characters; replace it",
                path.display()
            );
        }
        return Ok(token);
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let token = docket_runtime::log::hex(&bytes);
    let mut file = docket_store::private::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// A started server: its address, and a handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Server {
    /// Stops accepting, finishes in-flight requests, commits what is queued, and waits.
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.map_err(|e| anyhow!("server task: {e}"))?
    }

    /// Waits until the server stops by itself (a signal).
    pub async fn wait(self) -> Result<()> {
        let Server { shutdown, task, .. } = self;
        let result = task.await.map_err(|e| anyhow!("server task: {e}"))?;
        drop(shutdown);
        result
    }
}

/// Binds, opens (or creates) the data directory and log, loads and seals the policy set, and
/// serves until `stop` or SIGINT/SIGTERM. Longer than most functions here because it is the
/// start-up sequence, read top to bottom in the order it must happen; each step is a call.
pub async fn start(config: ServeConfig, runtime: Arc<Runtime>) -> Result<Server> {
    // The address first: a server that cannot listen (the port is taken) must stop before it
    // opens the log, so a failed start seals nothing.
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another server running there? Choose another with --addr; nothing was written",
                config.addr
            )
        })?;
    // The policies next, read and checked before anything is created: files or a bundle that
    // do not load stop the start with nothing written.
    let fetched = bundle_service::fetch_initial(&config.dir, &config.remote_bundles).await?;
    let mut bundles = config.bundles.clone();
    bundles.extend(
        fetched
            .iter()
            .map(|(name, path, _)| (name.clone(), path.clone())),
    );
    let set = load_policy_sources(
        &config.policies,
        &bundles,
        config.bundle_verification.as_ref(),
        config.revision.clone(),
    )?;
    // Compiled on a scratch instance too, so a module that does not compile stops the start
    // before the data directory is touched.
    let metrics = Arc::new(Metrics::new());
    let scratch = EvalPool::new(
        Arc::clone(&runtime),
        Generation {
            number: 0,
            set: PolicySet::default(),
            version: runtime::PolicyVersion {
                digest: String::new(),
                revision: None,
            },
        },
        config.workers,
        config.eval_grace,
    );
    let (version, warm) = scratch
        .check(&set)
        .map_err(|e| anyhow!("the policies do not load: {e}"))?;
    let dir = &config.dir;
    let (key, genesis_key, token) = open_data_dir(&config)?;
    let replica = match config.nats.clone() {
        Some(nats) => Some(tokio::task::spawn_blocking(move || connect_nats(&nats)).await??),
        None => None,
    };
    let fleet = match (&config.nats, &replica) {
        (Some(nats), Some(log)) => {
            watch_replicas(nats, Arc::clone(log), Arc::clone(&metrics));
            let fleet = Arc::new(fleet::Fleet::new(&nats.location));
            fleet::start(Arc::clone(&fleet), Arc::downgrade(log));
            Some(fleet)
        }
        _ => None,
    };
    let served = Arc::new(ServedLog {
        replica,
        dir: dir.join("log"),
        runtime: Arc::clone(&runtime),
        genesis: genesis_key.clone(),
        key: key.clone(),
        salts: config
            .salts
            .clone()
            .unwrap_or_else(|| dir.join("mask-salts.jsonl")),
        segment_bytes: config.segment_bytes,
        origin: config.origin.clone(),
        signing: config.signing,
    });
    let genesis_vkey = genesis_key.to_vkey();
    let (log, view) = open_served_log(Arc::clone(&served), &config).await?;
    let origin = view.checkpoint.lines().next().unwrap_or("").to_string();

    let cosignatures = Arc::new(witnessing::Cosignatures::open(
        &dir.join("log"),
        config.witnesses.iter().map(|w| w.key.clone()).collect(),
        &view,
    )?);
    // A reopen never starts a log: a directory that vanished under a running server is an
    // error to report, not a reason to begin a new chain in its place.
    let reopen: appender::Reopen = Box::new(move || served.open(Start::OpenOnly));
    let (appender, appender_thread) =
        Appender::start(log, view, config.commit, Arc::clone(&metrics), reopen);
    appender
        .record(EntryKind::PolicyChange, load_record(&set, &version))
        .await
        .map_err(|e| anyhow!("sealing the policy load: {e}"))?;
    metrics.policy_changes.inc();
    tracing::info!(version = %version.digest, modules = set.modules.len(), "policies loaded and sealed");
    let pool = Arc::new(scratch);
    pool.publish(
        Generation {
            number: 1,
            set,
            version,
        },
        warm,
    );

    let mut instance_id = [0u8; 16];
    rand::fill(&mut instance_id);
    let status = status::Status::new(&hex::encode(instance_id));
    let started = std::time::SystemTime::now();
    for name in pool.current().set.bundles.keys() {
        status.bundle(name, |b| b.last_successful_activation = Some(started));
    }
    for remote in &config.remote_bundles {
        status.bundle(&remote.name, |b| {
            b.last_request = Some(started);
            b.last_successful_request = Some(started);
            b.last_successful_download = Some(started);
        });
    }
    let active_config = active_config(&config, status.labels(), &origin);
    let state = Arc::new(AppState {
        fleet,
        status,
        active_config,
        pool,
        appender,
        metrics,
        policy_writer: Mutex::new(()),
        token,
        read_token: config.read_token.clone(),
        default_decision: config.default_decision.clone(),
        genesis_key: genesis_vkey,
        max_body: config.max_body,
        max_ingest_body: config.max_ingest_body,
        max_input: config.max_input,
        ingest_paths: config.ingest_paths.clone(),
        admission: guard::Admission::new(config.admission.clone()),
        cosignatures: Arc::clone(&cosignatures),
    });
    bundle_service::start(
        Arc::clone(&state),
        config.dir.clone(),
        config
            .remote_bundles
            .iter()
            .cloned()
            .zip(fetched.into_iter().map(|(_, _, etag)| etag))
            .collect(),
        config.bundle_polling,
        config.bundle_verification.clone(),
        config.revision.clone(),
    );
    witnessing::start(
        config.witnesses.clone(),
        state.appender.follower(),
        cosignatures,
        config.witness_pacing,
        Arc::clone(&state.metrics),
    );
    let app = router(Arc::clone(&state), &config);
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut limits = config.limits;
    let capacity = http::connection_capacity();
    if limits.max_connections > capacity {
        tracing::warn!(
            requested = limits.max_connections,
            capacity,
            "--max-connections lowered to fit the open-file limit"
        );
        limits.max_connections = capacity;
    }
    let metrics = Arc::clone(&state.metrics);
    // Armed here, before `start` returns and the caller announces the server: a SIGTERM sent
    // the moment it is up must stop it gracefully, not kill it with the default action.
    let signals = ShutdownSignals::arm()?;
    let task = tokio::spawn(async move {
        http::serve(listener, app, limits, metrics, async move {
            tokio::select! {
                _ = stopped => {}
                _ = signals.received() => {}
            }
            tracing::info!("shutting down: finishing requests, committing the queue");
        })
        .await;
        // The router (and its appender handles) is gone; this is the last handle.
        drop(state);
        tokio::task::spawn_blocking(move || appender_thread.join())
            .await
            .map_err(|e| anyhow!("appender thread: {e}"))?;
        tracing::info!("stopped; every acknowledged entry is committed");
        Ok(())
    });
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}

/// The data directory's key (created, named after the origin, on the first start), the genesis
/// public key and the write token.
fn open_data_dir(
    config: &ServeConfig,
) -> Result<(docket_ledger::SecretKey, docket_ledger::PublicKey, String)> {
    let dir = &config.dir;
    docket_store::private::create_dir_all(dir)?;
    let key_path = dir.join("docket.key");
    if let Some(origin) = &config.origin
        && (origin.is_empty() || origin.contains('+') || origin.chars().any(char::is_whitespace))
    {
        bail!(
            "--origin {origin:?} cannot name a log: it is also the signing key's name, which must be non-empty without spaces or '+' (e.g. --origin log.example.com/docket)"
        );
    }
    let key = if key_path.exists() {
        read_secret_key(&key_path)?
    } else {
        // The key is named after the log's origin, as C2SP tlog-checkpoint recommends.
        let name = config
            .origin
            .clone()
            .unwrap_or_else(|| docket_runtime::log::fresh_name("docket.serve"));
        let key = write_new_key(dir, "docket", &name)?;
        tracing::info!(key = %key_path.display(), "created a signing key");
        key
    };
    let genesis_key = read_public_key(&dir.join("docket.pub"))?;
    let token = match &config.token {
        Some(t) => t.clone(),
        None => read_or_create_token(dir)?,
    };
    Ok((key, genesis_key, token))
}

/// Opens (on the first start, creates) the served log, and holds it to `--origin` if given.
async fn open_served_log(
    served: Arc<ServedLog>,
    config: &ServeConfig,
) -> Result<(AuditLog, LogView)> {
    let (log, view) =
        tokio::task::spawn_blocking(move || served.open(Start::OpenOrCreate)).await??;
    let origin = view.checkpoint.lines().next().unwrap_or("").to_string();
    if let Some(wanted) = &config.origin
        && *wanted != origin
    {
        bail!(
            "the log in {} has the origin {origin:?}; --origin {wanted:?} cannot change it (an origin is fixed when a log is created: drop the flag, or start a new data directory)",
            config.dir.display()
        );
    }
    tracing::info!(entries = view.tree.size(), %origin, dir = %config.dir.display(), "log open and verified");
    Ok((log, view))
}

/// SIGTERM and SIGINT, caught from the moment they are armed.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn arm() -> Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// The configuration `GET /v1/config` reports, in OPA's shape where OPA has one
/// (`labels`, `default_decision`, `bundles.<name>.resource`) and docket's own under `docket`.
/// Nothing secret: no tokens, keys or verification keys.
fn active_config(
    config: &ServeConfig,
    labels: &serde_json::Value,
    origin: &str,
) -> serde_json::Value {
    let bundles: serde_json::Map<String, serde_json::Value> = config
        .remote_bundles
        .iter()
        .map(|b| (b.name.clone(), serde_json::json!({ "resource": b.url })))
        .chain(config.bundles.iter().map(|(name, path)| {
            (
                name.clone(),
                serde_json::json!({ "resource": format!("file://{}", path.display()) }),
            )
        }))
        .collect();
    serde_json::json!({
        "labels": labels,
        "default_decision": format!("/{}", config.default_decision.trim_start_matches('/')),
        "bundles": bundles,
        "docket": {
            "origin": origin,
            "log": config.nats.as_ref().map_or_else(
                || serde_json::json!({ "store": "directory", "dir": config.dir.join("log") }),
                |n| serde_json::json!({
                    "store": "nats-jetstream",
                    "location": n.location.to_string(),
                    "replicas": n.requirements.replicas,
                    "fsync_checked": n.durability.required,
                }),
            ),
            "witnesses": config.witnesses.iter().map(|w| &w.url).collect::<Vec<_>>(),
            "ingest_paths": config.ingest_paths,
            "signing": match config.signing {
                runtime::SigningMode::Entry => "entry",
                runtime::SigningMode::Checkpoint => "checkpoint",
            },
        },
    })
}

/// Connects to the stream that keeps the log, checked as `nats` requires.
fn connect_nats(nats: &NatsLog) -> Result<Arc<docket_nats::JetStreamLog>> {
    let log =
        docket_nats::JetStreamLog::open(&nats.location, nats.requirements, &nats.durability, true)?;
    if let Some(warning) = log.durability_warning() {
        tracing::warn!(log = %nats.location, "{warning}");
    }
    tracing::info!(log = %nats.location, "connected to NATS JetStream");
    Ok(Arc::new(log))
}

/// How often the stream's replicas are compared ([`docket_nats::ReplicaWatch`]).
const REPLICA_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Compares the stream's replicas, as each server's monitoring endpoint reports them, every
/// [`REPLICA_WATCH_INTERVAL`]; each alarm is logged as an error and counted
/// (`docket_nats_replica_alarms`). Runs only where the endpoints are known (`--nats-monitor`),
/// for as long as the log is held.
fn watch_replicas(nats: &NatsLog, log: Arc<docket_nats::JetStreamLog>, metrics: Arc<Metrics>) {
    let monitors = nats.durability.monitors.clone();
    if monitors.is_empty() {
        return;
    }
    let stream = nats.location.stream.clone();
    let log = Arc::downgrade(&log);
    tokio::spawn(async move {
        let mut watch = docket_nats::ReplicaWatch::default();
        loop {
            tokio::time::sleep(REPLICA_WATCH_INTERVAL).await;
            let Some(acknowledged) = log.upgrade().map(|l| l.acknowledged_sequence()) else {
                return;
            };
            let (monitors, stream) = (monitors.clone(), stream.clone());
            let Ok(states) = tokio::task::spawn_blocking(move || {
                docket_nats::replica_states(&monitors, &stream)
            })
            .await
            else {
                return;
            };
            let states: Vec<_> = states
                .into_iter()
                .filter_map(|s| {
                    s.map_err(|e| tracing::warn!(error = %format!("{e:#}"), "a NATS server's replica state could not be read"))
                        .ok()
                })
                .collect();
            let tails = match log.upgrade() {
                Some(log) => tokio::task::spawn_blocking(move || log.replica_tails())
                    .await
                    .unwrap_or_default(),
                None => return,
            };
            let tails: Vec<_> = tails.into_iter().filter_map(Result::ok).collect();
            let mut alarms = watch.check(&states, acknowledged);
            alarms.extend(watch.check_tails(&tails));
            for alarm in alarms {
                metrics.nats_replica_alarms.inc();
                tracing::error!(alarm = %alarm, "JetStream replicas disagree");
            }
        }
    });
}

/// How the served log is opened: at start, and again by the appender after a failed commit.
struct ServedLog {
    /// The JetStream log every commit goes to first, and the directory is rebuilt from.
    replica: Option<Arc<docket_nats::JetStreamLog>>,
    dir: PathBuf,
    runtime: Arc<Runtime>,
    genesis: docket_ledger::PublicKey,
    key: docket_ledger::SecretKey,
    salts: PathBuf,
    segment_bytes: u64,
    /// How the log is started if the directory holds none (the first start).
    origin: Option<String>,
    signing: runtime::SigningMode,
}

/// Whether [`ServedLog::open`] may start a log: only at the server's start.
#[derive(Clone, Copy)]
enum Start {
    OpenOrCreate,
    OpenOnly,
}

impl ServedLog {
    /// Opens the log (recovery cuts an unfinished commit; the component verifies every entry),
    /// starting it on the first start, with its salt file and segment limit, and builds the
    /// view readers see.
    fn open(&self, start: Start) -> Result<(AuditLog, LogView)> {
        if let Some(replica) = &self.replica {
            self.sync_from_jetstream(replica)?;
        }
        let replica = self
            .replica
            .clone()
            .map(|r| r as Arc<dyn docket_store::Replica>);
        let opened = match start {
            Start::OpenOrCreate => {
                let new = docket_runtime::log::NewLog {
                    origin: self.origin.as_deref(),
                    signing: self.signing,
                    instance_id: &instance_label(),
                    replica,
                };
                AuditLog::open_or_create(&self.dir, &self.runtime, &self.genesis, &self.key, &new)
            }
            Start::OpenOnly => {
                AuditLog::open_with_frames(&self.dir, &self.runtime, &self.genesis, &self.key).map(
                    |mut opened| {
                        if let Some(replica) = replica {
                            opened.log.replicate_to(replica);
                        }
                        opened
                    },
                )
            }
        }
        .map_err(|e| match &self.replica {
            Some(r) => e.context(format!(
                "the log {} (a node continuing a log from JetStream needs that log's key: \
                 docket.key and docket.pub of the node that started it, in {})",
                r.location(),
                self.dir.parent().unwrap_or(&self.dir).display()
            )),
            None => e,
        })?;
        if opened.recovery.truncated_bytes > 0 {
            tracing::warn!(
                bytes = opened.recovery.truncated_bytes,
                unsealed_entries = opened.recovery.unsealed_entries_dropped,
                "recovered the log: cut an unfinished commit (never acknowledged)"
            );
        }
        let view = LogView::from_frames(&opened.frames)?;
        let mut log = opened.log;
        log.keep_salts_in(SaltFile::open(&self.salts)?);
        log.set_segment_limit(self.segment_bytes);
        Ok((log, view))
    }
}

impl ServedLog {
    /// Reads the log from JetStream (the record) and makes the log directory a copy of it,
    /// which sets where the next commit must go. After a failed commit this is what rereads
    /// the tail: whatever landed, by this node or another, is in the copy before the next write.
    fn sync_from_jetstream(&self, replica: &docket_nats::JetStreamLog) -> Result<()> {
        let read = replica.read()?;
        let synced = docket_nats::sync_log_dir(&self.dir, &read, replica.location())?;
        if let Some(aside) = &synced.moved_aside {
            tracing::warn!(
                moved_to = %aside.display(),
                "the log directory held commits JetStream does not; it was moved aside and rebuilt from JetStream"
            );
        }
        tracing::info!(
            log = %replica.location(),
            messages = read.messages,
            bytes = read.bytes,
            commits_copied = synced.commits_copied,
            "log read from JetStream"
        );
        Ok(())
    }
}

fn instance_label() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}/serve", host.trim())
}

fn router(state: Arc<AppState>, config: &ServeConfig) -> Router {
    let mut ingest = Router::new();
    for path in &config.ingest_paths {
        ingest = ingest.route(path, axum::routing::post(ingest::upload));
    }
    let ingest = ingest.layer(DefaultBodyLimit::max(config.max_ingest_body));
    Router::new()
        .merge(opa_api::routes())
        .merge(log_api::routes())
        .merge(fleet::routes())
        .merge(ui::routes())
        .layer(DefaultBodyLimit::max(config.max_body))
        .merge(ingest)
        // Every answer is JSON in OPA's error shape, a route docket does not have included.
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(config.allowed_origins.clone()),
            cors::cors,
        ))
        .with_state(state)
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "{} is not a route of docket serve (docs/api.md lists them: OPA's /v1/data, \
         /v1/policies, /v1/status, /v1/config, /health, /metrics, decision-log uploads, and \
         /v1/log, /v1/fleet, /tile, /ui)",
        uri.path()
    ))
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} {} is not supported by docket serve (docs/api.md)",
            uri.path()
        ),
    )
}
