//! `docket`: seal every policy decision into a verifiable log. See `docket --help`.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use docket::examples::{HEALTH, Requests};
use docket::log::{AuditLog, hex, read_public_key, read_secret_key, verify_frames, write_new_key};
use docket::runtime::{self, Runtime};
use docket::serve;
use docket::store;
use docket_ledger::export::{checkpoint_line, entry_line, header_line};
use docket_ledger::{Entry, PublicKey};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(name = "docket", version, about = "Every policy decision, sealed into a log anyone can verify.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an Ed25519 key pair: <stem>.key (0600, secret) and <stem>.pub.
    ///
    /// Example: docket keygen --out keys --name audit.example
    Keygen {
        /// Directory to write the key pair into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// File stem of the key pair.
        #[arg(long, default_value = "docket")]
        stem: String,
        /// The key's name (C2SP key name, shown in checkpoint signatures).
        #[arg(long, default_value = "docket.local")]
        name: String,
    },
    /// Evaluate a policy on an input, seal the decision, append it durably, print it.
    ///
    /// Example: echo '{"user":"bob","action":"read","resource":{"type":"document"}}' |
    ///   docket eval --dir log --key docket.key --policy examples/policies/rbac.rego
    ///   --data examples/policies/rbac.json --path rbac/allow
    Eval {
        /// Log directory (created on first use).
        #[arg(long)]
        dir: PathBuf,
        /// Secret key file (from `docket keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Public key the log was started with (defaults to the .pub beside --key).
        #[arg(long = "pub")]
        public: Option<PathBuf>,
        /// Rego policy files.
        #[arg(long = "policy", required = true)]
        policies: Vec<PathBuf>,
        /// JSON data documents.
        #[arg(long = "data")]
        data: Vec<PathBuf>,
        /// Data path to evaluate, e.g. rbac/allow.
        #[arg(long)]
        path: String,
        /// Input JSON file; `-` or absent reads standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Keep the salts of values masked by the logging rules in this file (appended), apart
        /// from the log; without it they are discarded and masked values cannot be revealed.
        #[arg(long)]
        salts: Option<PathBuf>,
    },
    /// Verify a log directory or an export file against the log's genesis public key.
    ///
    /// Exit 0 with a summary; 1 naming the first bad entry and why, damage in the files (file,
    /// offset, last good entry), or a log directory that ends in an unfinished commit.
    /// Example: docket verify log --pub docket.pub
    Verify {
        /// A log directory or a .jsonl export.
        path: PathBuf,
        #[arg(long = "pub")]
        public: PathBuf,
        /// Also require the log to reach this signed checkpoint (e.g. one published earlier). It
        /// must be of this log (same origin) and signed by a key of the log or --checkpoint-key.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Another key whose signature makes --checkpoint trusted (a .pub file; repeatable).
        #[arg(long = "checkpoint-key")]
        checkpoint_keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hand a log over to a new signing key: a rotation entry signed by the current key, after
    /// which the new key signs. Afterwards pass the genesis key with --pub to eval and verify.
    ///
    /// Example: docket rotate-key --dir log --key old.key --new-key new.key --pub genesis.pub
    RotateKey {
        #[arg(long)]
        dir: PathBuf,
        /// The log's current key.
        #[arg(long)]
        key: PathBuf,
        /// The key to hand over to (from `docket keygen`).
        #[arg(long)]
        new_key: PathBuf,
        /// The log's genesis public key (defaults to the current key's).
        #[arg(long = "pub")]
        public: Option<PathBuf>,
    },
    /// Inspect a log directory: entries, export, the latest checkpoint.
    #[command(subcommand)]
    Log(LogCommand),
    /// Serve OPA's REST API with every decision sealed and durable before it is answered, accept
    /// OPA decision-log uploads at /logs, and serve the log with proofs (docs/api.md).
    ///
    /// With no flags it serves the example policies on 127.0.0.1:8181 and keeps its key, write
    /// token and log under ./docket-data.
    ///
    /// Example: docket serve --policy policies/ --addr 127.0.0.1:8181
    ///          curl -s localhost:8181/v1/data/rbac/allow -H 'Content-Type: application/json' -d '{"input":{"user":"alice","action":"read","resource":{"type":"document","id":"d1"}}}'
    Serve(Box<ServeArgs>),
    /// Write the browser log verifier (the page `docket serve` shows at /ui) as plain files,
    /// for any static web server.
    ///
    /// Example: docket ui --out site && python3 -m http.server -d site
    Ui {
        #[arg(long, default_value = "docket-ui")]
        out: PathBuf,
    },
    /// The main job on embedded defaults: seal and verify thousands of decisions, then show
    /// that tampering is caught.
    ///
    /// Example: docket demo --count 5000
    Demo {
        /// Where to keep the key and the log (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of generated requests.
        #[arg(long, default_value_t = 5000)]
        count: u64,
        /// Entries per group commit (one checkpoint and one fsync each).
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print entries as export lines. Example: docket log show log --from 10 --count 5
    Show {
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 20)]
        count: u64,
    },
    /// Write the self-contained export (JSON Lines). Example: docket log export log -o log.jsonl
    Export {
        dir: PathBuf,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the latest signed checkpoint. Example: docket log checkpoint log
    Checkpoint { dir: PathBuf },
    /// Separate a forked log (two writers appended at once) into one log directory per history,
    /// each keeping the shared prefix and every entry its writer acknowledged, each verifying on
    /// its own. The forked directory is only read.
    /// Example: docket log split-fork log --out log-histories
    SplitFork {
        dir: PathBuf,
        /// Where to write history-1 (the one from genesis), history-2, …
        #[arg(long)]
        out: PathBuf,
    },
    /// Prove an entry is in the log: an RFC 9162 inclusion proof against the latest checkpoint,
    /// checked before it is printed. Example: docket log prove log --seq 42
    Prove {
        dir: PathBuf,
        /// The entry's sequence number.
        #[arg(
            long,
            conflicts_with = "decision_id",
            required_unless_present = "decision_id"
        )]
        seq: Option<u64>,
        /// Or the decision id of a decision entry.
        #[arg(long)]
        decision_id: Option<String>,
    },
    /// Remove the payloads of decisions whose retention has passed, keeping their hashes, so the
    /// log and every checkpoint still verify ("pruned under retention policy version X").
    ///
    /// Works one sealed segment at a time: a segment is pruned only when every decision in it
    /// has passed its `retain_until` (set by the logging rules, data.system.log.retention); a
    /// decision sealed without retention is kept for ever. Each prune is first sealed as a
    /// signed prune entry, then the segment is rewritten. Needs the log's key and the log
    /// directory to itself (stop `docket serve` first).
    /// Example: docket log prune docket-data/log --key docket-data/docket.key
    Prune {
        dir: PathBuf,
        /// The log's current key (the prune entry is signed).
        #[arg(long)]
        key: PathBuf,
        /// The log's genesis public key (defaults to the current key's).
        #[arg(long = "pub")]
        public: Option<PathBuf>,
        /// Prune exactly the segments holding entries up to this seq, and refuse, changing
        /// nothing, if any of them is still under retention.
        #[arg(long)]
        through: Option<u64>,
        /// The log has been idle: prune by this machine's clock even though it reads more than
        /// a day after the log's newest entry (without it, such a clock is taken to be wrong).
        #[arg(long)]
        idle_log: bool,
    },
    /// Prove what a masked value was: the log verifies, and the value with its salt gives the
    /// commitment sealed in the entry. Exit 0 when it proves out, 1 when it does not.
    /// Example: docket log reveal log --pub docket.pub --seq 7 --path /input/user/email
    /// --value '"alice@example.com"' --salts mask-salts.jsonl
    Reveal {
        dir: PathBuf,
        /// The log's genesis public key.
        #[arg(long = "pub")]
        public: PathBuf,
        /// The decision entry's sequence number.
        #[arg(long)]
        seq: u64,
        /// The JSON Pointer that was masked (as in the record's `commitments`).
        #[arg(long)]
        path: String,
        /// The value, as JSON text (a string needs its quotes: '"alice@example.com"').
        #[arg(long)]
        value: String,
        /// The salt, base64.
        #[arg(long, conflicts_with = "salts", required_unless_present = "salts")]
        salt: Option<String>,
        /// Or the mask-salt file to look the salt up in.
        #[arg(long)]
        salts: Option<PathBuf>,
    },
}

/// `docket serve`'s flags (boxed in [`Command::Serve`]: they outweigh every other command's).
#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; bind beyond loopback only behind TLS.
    #[arg(long, default_value = "127.0.0.1:8181")]
    addr: std::net::SocketAddr,
    /// Data directory: key, write token and log (created on first start, reused after).
    #[arg(long, default_value = "docket-data")]
    dir: PathBuf,
    /// A .rego or .json file, or a directory of them; repeatable. Default: the examples.
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// A file holding the bearer token for write endpoints (default: <dir>/token, created
    /// on first start). The DOCKET_TOKEN environment variable also sets it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Concurrent evaluations per lane (component instances). Default: the number of CPUs.
    #[arg(long)]
    workers: Option<usize>,
    /// An evaluation still running after this many ms (default 25) moves from the ordinary lane
    /// to the long lane, so slow or runaway policies and large inputs cannot hold every worker.
    #[arg(long)]
    eval_grace_ms: Option<u64>,
    /// At most this many entries per group commit (one fsync and one signed checkpoint).
    #[arg(long, default_value_t = 1024)]
    commit_max_entries: usize,
    /// Wait up to this many microseconds for more requests before committing a batch
    /// (0: commit as soon as the queue is empty).
    #[arg(long, default_value_t = 0)]
    commit_max_delay_us: u64,
    /// The data path `POST /` evaluates.
    #[arg(long, default_value = "system/main")]
    default_decision: String,
    /// Paths accepting OPA decision-log uploads (OPA's service resource); repeatable.
    #[arg(long = "ingest-path", default_value = "/logs")]
    ingest_paths: Vec<String>,
    /// Largest request body in bytes (decisions, policies, data).
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Largest decision-log upload in bytes, compressed and decompressed.
    #[arg(long, default_value_t = 64 << 20)]
    max_ingest_body: usize,
    /// A revision label recorded with the policy version (e.g. a git commit).
    #[arg(long)]
    revision: Option<String>,
    /// Sign every entry, not only each commit's checkpoint (fixed when the log is created).
    #[arg(long)]
    sign_entries: bool,
    /// Keep the salts of values masked by the logging rules here (default:
    /// <dir>/mask-salts.jsonl, apart from the log); `docket log reveal` reads them.
    #[arg(long)]
    salts: Option<PathBuf>,
    /// Roll log segments over past this many bytes. Retention prunes whole sealed
    /// segments (`docket log prune`), so smaller segments let expired entries go sooner.
    #[arg(long, default_value_t = docket::store::SEGMENT_LIMIT)]
    segment_bytes: u64,
    /// Largest decision input sealed, in bytes (default 1 MiB); larger inputs get 413.
    #[arg(long)]
    max_input_bytes: Option<usize>,
    /// Open connections at most (default 1024, and always below the open-file limit).
    /// Past it, the connection idle longest is closed, or the newcomer gets 503.
    #[arg(long)]
    max_connections: Option<usize>,
    /// A request head must arrive within this many ms of its first byte (default 10000).
    #[arg(long)]
    header_timeout_ms: Option<u64>,
    /// A request body must arrive within this many ms of its head (default 60000), else 408.
    #[arg(long)]
    body_timeout_ms: Option<u64>,
    /// Close a keep-alive connection idle for this many ms (default 75000).
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// A file holding a read token (mode 0600, 16+ characters): reading entries (/v1/log,
    /// /v1/log/entries, /v1/log/decisions, /tile/entries) then needs it or the write token as a
    /// bearer token. Checkpoints, hash tiles, proofs and keys stay public.
    #[arg(long)]
    read_token_file: Option<PathBuf>,
    /// On SIGTERM, let requests in flight finish for up to this many ms (default 10000).
    #[arg(long)]
    shutdown_timeout_ms: Option<u64>,
    /// A host name requests may be addressed to (beside IP addresses and localhost), for
    /// callers without the token; repeatable. Requests naming other hosts get 421.
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Bytes of request bodies held at once over all requests (default 256 MiB).
    #[arg(long)]
    body_budget_bytes: Option<usize>,
    /// Per-client quota: bytes of decision input per second a client without the token
    /// may have sealed (default 0: no quota). Past it, 429.
    #[arg(long, default_value_t = 0)]
    client_rate: u64,
    /// The most a client may have sealed in one burst under --client-rate (default 16 MiB).
    #[arg(long)]
    client_burst: Option<u64>,
    /// A new log's origin (its checkpoints' first line and its key's name), ideally the
    /// URL it is served at without the scheme, e.g. log.example.com/docket. Default:
    /// docket.serve/<random>. Fixed when the log is created.
    #[arg(long)]
    origin: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    // A closed stdout (`docket verify log --pub k.pub | head -1`) ends a command quietly, as it
    // ends `cat`: the default SIGPIPE action instead of Rust's panic on EPIPE. `docket serve`
    // keeps SIGPIPE ignored: a client hanging up must never stop the server.
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("docket: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Keygen { out, stem, name } => {
            let key = write_new_key(&out, &stem, &name)?;
            eprintln!(
                "wrote {} (secret, 0600) and {}",
                out.join(format!("{stem}.key")).display(),
                out.join(format!("{stem}.pub")).display()
            );
            println!("{}", key.public().to_vkey());
            Ok(0)
        }
        Command::Eval {
            dir,
            key,
            public,
            policies,
            data,
            path,
            input,
            salts,
        } => {
            let secret = read_secret_key(&key)?;
            let genesis = match public {
                Some(p) => read_public_key(&p)?,
                None => secret.public().clone(),
            };
            let runtime = load_runtime()?;
            let (mut log, recorded_version) = open_or_create(&dir, &runtime, &genesis, &secret)?;
            if let Some(salts) = &salts {
                log.keep_salts_in(docket::salts::SaltFile::open(salts)?);
            }
            // The same loading as `docket serve`'s (one data document merged from the data
            // files), so the same files give the same policy version in both.
            let files: Vec<PathBuf> = policies.iter().chain(&data).cloned().collect();
            let set = serve::load_policy_set(&files, None)?;
            let version = set.load_into(log.instance())?.map_err(|e| {
                anyhow!(
                    "the policies do not load: {}; fix them and retry",
                    runtime::describe_policy_error(&e)
                )
            })?;
            // A policy set the log has not seen (first use, or the files changed since the
            // last eval) is itself an entry, sealed before the decision it governs.
            if recorded_version.as_deref() != Some(version.digest.as_str()) {
                log.record(
                    runtime::EntryKind::PolicyChange,
                    &serve::load_record(&set, &version),
                )?;
            }
            let input_text = match input.as_deref() {
                Some(p) if p != Path::new("-") => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                _ => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let sealed = log.decide(&path, Some(&input_text))?;
            log.commit()?;
            let result: serde_json::Value = match &sealed.result {
                Some(r) => serde_json::from_str(r)?,
                None => serde_json::Value::Null,
            };
            let mut out = match &sealed.entry {
                Some(e) => {
                    serde_json::json!({"decision_id": e.decision_id, "seq": e.seq, "entry_hash": e.entry_hash})
                }
                None => {
                    serde_json::json!({"dropped": "by the logging rules; counted in a tally entry"})
                }
            };
            if sealed.result.is_some() {
                out["result"] = result;
            }
            println!("{out}");
            Ok(0)
        }
        Command::Verify {
            path,
            public,
            checkpoint,
            checkpoint_keys,
            json,
        } => verify(
            &path,
            &public,
            checkpoint.as_deref(),
            &checkpoint_keys,
            json,
        ),
        Command::RotateKey {
            dir,
            key,
            new_key,
            public,
        } => {
            let current = read_secret_key(&key)?;
            let next = read_secret_key(&new_key)?;
            let genesis = match public {
                Some(p) => read_public_key(&p)?,
                None => current.public().clone(),
            };
            let runtime = load_runtime()?;
            let (mut log, _, _) = AuditLog::open(&dir, &runtime, &genesis, &current)?;
            let seq = log.rotate_key(&next)?;
            println!(
                "entry {seq}: the log is now signed by {}",
                next.public().to_vkey()
            );
            Ok(0)
        }
        Command::Log(cmd) => log_command(cmd),
        Command::Demo { dir, count, batch } => demo(dir, count, batch),
        Command::Ui { out } => {
            serve::ui::write_files(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote the log verifier page to {}", out.display());
            Ok(0)
        }
        Command::Serve(args) => {
            let ServeArgs {
                addr,
                dir,
                policies,
                token_file,
                workers,
                eval_grace_ms,
                commit_max_entries,
                commit_max_delay_us,
                default_decision,
                ingest_paths,
                max_body,
                max_ingest_body,
                revision,
                sign_entries,
                salts,
                segment_bytes,
                max_input_bytes,
                max_connections,
                header_timeout_ms,
                body_timeout_ms,
                idle_timeout_ms,
                shutdown_timeout_ms,
                allowed_hosts,
                body_budget_bytes,
                client_rate,
                client_burst,
                origin,
                read_token_file,
            } = *args;
            let read_token = read_token_file
                .map(|path| {
                    docket::private::check_secret(&path, "the read token")
                        .and_then(|()| Ok(std::fs::read_to_string(&path)?))
                        .with_context(|| format!("reading the read token file {}", path.display()))
                        .map(|t| t.trim().to_string())
                })
                .transpose()?;
            if read_token.as_ref().is_some_and(|t| t.len() < 16) {
                bail!("the read token must be at least 16 characters");
            }
            let token = match (token_file, std::env::var("DOCKET_TOKEN").ok()) {
                (Some(path), _) => Some(
                    docket::private::check_secret(&path, "the write token")
                        .and_then(|()| Ok(std::fs::read_to_string(&path)?))
                        .with_context(|| format!("reading the token file {}", path.display()))?
                        .trim()
                        .to_string(),
                ),
                (None, Some(token)) => Some(token),
                (None, None) => None,
            };
            if token.as_ref().is_some_and(|t| t.len() < 16) {
                bail!("the write token must be at least 16 characters");
            }
            let defaults = serve::ServeConfig::default();
            let ms = std::time::Duration::from_millis;
            let limits = serve::http::Limits {
                max_connections: max_connections.unwrap_or(defaults.limits.max_connections),
                header_timeout: header_timeout_ms.map_or(defaults.limits.header_timeout, ms),
                body_timeout: body_timeout_ms.map_or(defaults.limits.body_timeout, ms),
                idle_timeout: idle_timeout_ms.map_or(defaults.limits.idle_timeout, ms),
                shutdown_timeout: shutdown_timeout_ms.map_or(defaults.limits.shutdown_timeout, ms),
            };
            let admission = serve::guard::AdmissionConfig {
                allowed_hosts,
                body_budget: body_budget_bytes.unwrap_or(defaults.admission.body_budget),
                client_rate,
                client_burst: client_burst.unwrap_or(defaults.admission.client_burst),
            };
            let config = serve::ServeConfig {
                read_token,
                origin,
                max_input: max_input_bytes.unwrap_or(defaults.max_input),
                limits,
                admission,
                addr,
                dir,
                policies,
                token,
                workers: workers.unwrap_or(defaults.workers),
                eval_grace: eval_grace_ms.map_or(defaults.eval_grace, ms),
                commit: serve::appender::CommitPolicy {
                    max_entries: commit_max_entries.max(1),
                    max_delay: std::time::Duration::from_micros(commit_max_delay_us),
                },
                max_body,
                max_ingest_body,
                default_decision,
                ingest_paths,
                salts,
                segment_bytes,
                signing: if sign_entries {
                    runtime::SigningMode::Entry
                } else {
                    runtime::SigningMode::Checkpoint
                },
                revision,
            };
            serve_command(config)
        }
    }
}

fn serve_command(config: serve::ServeConfig) -> Result<i32> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = std::sync::Arc::new(load_runtime()?);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let token_in_dir = config.token.is_none();
    tokio.block_on(async move {
        let dir = config.dir.clone();
        let server = serve::start(config, runtime).await?;
        // Tests and scripts wait for this line.
        println!("docket serve: listening on http://{}", server.addr);
        if token_in_dir {
            println!(
                "docket serve: data in {}; write token in {}",
                dir.display(),
                dir.join("token").display()
            );
        }
        std::io::stdout().flush()?;
        server.wait().await?;
        Ok(0)
    })
}

/// The compiled component is cached per user, keyed by its hash and the engine configuration.
fn cache_dir() -> PathBuf {
    std::env::var_os("DOCKET_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("docket")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/docket")))
        .unwrap_or_else(|| std::env::temp_dir().join("docket-cache"))
}

fn load_runtime() -> Result<Runtime> {
    Runtime::new(Some(&cache_dir())).map_err(|e| anyhow!("loading the docket component: {e}"))
}

/// Opens the log in `dir` (or starts one), with the policy version its last policy-change entry
/// recorded, if any.
fn open_or_create(
    dir: &Path,
    runtime: &Runtime,
    genesis: &PublicKey,
    secret: &docket_ledger::SecretKey,
) -> Result<(AuditLog, Option<String>)> {
    if store::is_log_dir(dir) {
        let opened = AuditLog::open_with_frames(dir, runtime, genesis, secret)?;
        let recorded = docket::log::last_policy_version(&opened.frames);
        let (log, recovery) = (opened.log, opened.recovery);
        if recovery.truncated_bytes > 0 {
            eprintln!(
                "recovered {}: cut {} bytes of an unfinished commit ({} unacknowledged entries)",
                dir.display(),
                recovery.truncated_bytes,
                recovery.unsealed_entries_dropped
            );
        }
        Ok((log, recorded))
    } else {
        let origin = format!("docket.local/{}", &hex(&genesis.bytes()[..8]));
        let log = AuditLog::create(
            dir,
            runtime,
            secret,
            &origin,
            &instance_id(),
            runtime::SigningMode::Checkpoint,
        )?;
        Ok((log, None))
    }
}

fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    hex(&bytes)
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = if total >= 50_000 {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} entries ({per_sec})")
            .expect("valid template"),
    );
    bar
}

/// A verdict other than "verified": printed as `REJECTED: …` (or JSON), exit 1.
fn rejected(json: bool, failure: &str, message: &str) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": false, "failure": failure, "error": message})
        );
    } else {
        println!("REJECTED: {message}");
    }
    1
}

fn verify(
    path: &Path,
    public: &Path,
    checkpoint: Option<&Path>,
    checkpoint_keys: &[PathBuf],
    json: bool,
) -> Result<i32> {
    let key = read_public_key(public)?;
    let trusted = checkpoint.map(read_trusted_checkpoint).transpose()?;
    let extra_keys = checkpoint_keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate().map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    let head = trusted
        .as_ref()
        .map(|t| (t.checkpoint.size, t.checkpoint.root.0.as_slice()));
    let mut torn = None;
    let outcome = if path.is_dir() {
        let scan = match store::scan_dir(path)? {
            Ok(scan) => scan,
            Err(damage) => return Ok(rejected(json, "damaged", &damage.to_string())),
        };
        torn = scan.tail.clone();
        let frames = scan.frames();
        if let (Some(trusted), Some(origin)) = (&trusted, log_origin(&frames))
            && let Err(e) = trusted.check_origin(&origin)
        {
            return Ok(rejected(json, "foreign-checkpoint", &e.to_string()));
        }
        let total = scan.entries();
        let bar = progress_bar(total);
        let result = verify_frames(&mut instance, &key, &frames, head, |n| bar.set_position(n))?;
        bar.finish_and_clear();
        result
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        if let (Some(trusted), Some(first)) = (&trusted, lines.first())
            && let Ok(docket_ledger::export::ExportLine::Header { origin }) =
                docket_ledger::export::parse_line(first)
            && let Err(e) = trusted.check_origin(&origin)
        {
            return Ok(rejected(json, "foreign-checkpoint", &e.to_string()));
        }
        let bar = progress_bar(lines.len() as u64);
        let mut verifier = instance
            .verifier(&key.to_vkey())
            .map_err(|e| anyhow!("{e}"))?;
        if let Some((size, root)) = head {
            verifier
                .expect_tree_head(size, root)
                .map_err(|e| anyhow!("{e}"))?;
        }
        let mut failed = None;
        for (i, line) in lines.iter().enumerate() {
            if let Err(e) = verifier
                .push_export_line(line)
                .map_err(|e| anyhow!("{e}"))?
            {
                failed = Some(e);
                break;
            }
            if i.is_multiple_of(4096) {
                bar.set_position(i as u64);
            }
        }
        bar.finish_and_clear();
        match failed {
            Some(e) => Err(e),
            None => verifier.finish().map_err(|e| anyhow!("{e}"))?,
        }
    };
    let elapsed = started.elapsed();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            return Ok(rejected(json, e.failure.name(), &e.to_string()));
        }
    };
    if let Some(trusted) = &trusted {
        // The log verified, so the keys it used are its own: one of them, or a key the user
        // named, must have signed the head it was held to.
        let mut keys = report
            .keys
            .iter()
            .map(|k| PublicKey::from_vkey(k).map_err(|e| anyhow!("{e}")))
            .collect::<Result<Vec<_>>>()?;
        keys.extend(extra_keys);
        if let Err(e) = trusted.check_signed_by_any(&keys) {
            return Ok(rejected(json, "untrusted-checkpoint", &e.to_string()));
        }
    }
    if let Some(torn) = &torn {
        return Ok(rejected(
            json,
            "unfinished-commit",
            &format!(
                "the log's {} committed entries verify, but {torn}: a crash during a commit left \
                 it and nothing in it was acknowledged; the next writer to open the log cuts it",
                report.entries
            ),
        ));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "entries": report.entries, "decisions": report.decisions,
                "checkpoints": report.checkpoints, "root": hex(&report.root),
                "keys": report.keys, "pruned_entries": report.pruned_entries,
                "prunes": report.prunes.iter().map(|p| serde_json::json!({
                    "seq": p.seq, "first": p.first, "last": p.last,
                    "entries": p.entries, "pruned_found": p.pruned_found,
                    "policy_versions": p.policy_versions,
                    "at": docket_ledger::record::rfc3339(p.timestamp_ns),
                })).collect::<Vec<_>>(),
                "seconds": elapsed.as_secs_f64(),
                "trusted_checkpoint_size": trusted.as_ref().map(|t| t.checkpoint.size),
            })
        );
    } else {
        println!(
            "verified: {} entries ({} decisions), {} checkpoints, root {}, keys {}, in {:.3} s",
            report.entries,
            report.decisions,
            report.checkpoints,
            hex(&report.root),
            report.keys.join(", "),
            elapsed.as_secs_f64()
        );
        for p in &report.prunes {
            println!(
                "pruned: entries {}..={}: {} payloads removed under retention policy version {} (prune entry {}, {})",
                p.first,
                p.last,
                p.pruned_found,
                p.policy_versions.join(", "),
                p.seq,
                docket_ledger::record::rfc3339(p.timestamp_ns)
            );
        }
        if let Some(trusted) = &trusted {
            println!(
                "consistent with the trusted checkpoint at size {} ({})",
                trusted.checkpoint.size,
                trusted
                    .signatures
                    .iter()
                    .map(|s| s.key_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(0)
}

/// The origin a log's genesis entry records, if its first frame is a readable genesis entry
/// (if not, the verifier says what is wrong with it).
fn log_origin(frames: &[store::Frame]) -> Option<String> {
    let Some(store::Frame::Entry(bytes)) = frames.first() else {
        return None;
    };
    let entry = Entry::decode(bytes).ok()?;
    serde_json::from_slice::<docket_ledger::record::GenesisRecord>(&entry.record)
        .ok()
        .map(|r| r.origin)
}

fn read_trusted_checkpoint(path: &Path) -> Result<docket_ledger::SignedCheckpoint> {
    let note =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    docket_ledger::SignedCheckpoint::parse(&note)
        .map_err(|e| anyhow!("{} is not a signed checkpoint note: {e}", path.display()))
}

fn decode_entry(bytes: &[u8]) -> Result<Entry> {
    Entry::decode(bytes).map_err(|e| anyhow!("undecodable entry: {e}"))
}

fn log_command(cmd: LogCommand) -> Result<i32> {
    match cmd {
        LogCommand::Show { dir, from, count } => {
            let (frames, _) = store::read_frames(&dir)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for bytes in frames
                .iter()
                .filter_map(|f| match f {
                    store::Frame::Entry(b) => Some(b),
                    _ => None,
                })
                .skip(from as usize)
                .take(count as usize)
            {
                writeln!(out, "{}", entry_line(&decode_entry(bytes)?))?;
            }
            Ok(0)
        }
        LogCommand::Export { dir, output } => {
            let (frames, torn) = store::read_frames(&dir)?;
            if torn.is_some() {
                eprintln!(
                    "note: the log ends in an unfinished commit; it is left out of the export"
                );
            }
            let mut out: Box<dyn Write> = match &output {
                // An export holds every record, unmasked inputs included: owner-only, as the
                // log's segments are.
                Some(p) => Box::new(std::io::BufWriter::new(
                    docket::private::options()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let genesis = match frames.first() {
                Some(store::Frame::Entry(b)) => decode_entry(b)?,
                _ => bail!("{} has no genesis entry", dir.display()),
            };
            let record: docket_ledger::record::GenesisRecord =
                serde_json::from_slice(&genesis.record)?;
            writeln!(out, "{}", header_line(&record.origin))?;
            // Entries after the last checkpoint are not yet sealed: they are left out.
            let last_checkpoint = frames
                .iter()
                .rposition(|f| matches!(f, store::Frame::Checkpoint(_)))
                .unwrap_or(0);
            let mut written = 0u64;
            for frame in &frames[..=last_checkpoint] {
                match frame {
                    store::Frame::Entry(b) => {
                        writeln!(out, "{}", entry_line(&decode_entry(b)?))?;
                        written += 1;
                    }
                    store::Frame::Checkpoint(n) => writeln!(out, "{}", checkpoint_line(n))?,
                }
            }
            out.flush()?;
            if let Some(p) = output {
                eprintln!("exported {written} entries to {}", p.display());
            }
            Ok(0)
        }
        LogCommand::Prove {
            dir,
            seq,
            decision_id,
        } => prove(&dir, seq, decision_id.as_deref()),
        LogCommand::Reveal {
            dir,
            public,
            seq,
            path,
            value,
            salt,
            salts,
        } => reveal(
            &dir,
            &public,
            seq,
            &path,
            &value,
            salt.as_deref(),
            salts.as_deref(),
        ),
        LogCommand::Prune {
            dir,
            key,
            public,
            through,
            idle_log,
        } => prune(&dir, &key, public.as_deref(), through, idle_log),
        LogCommand::SplitFork { dir, out } => {
            for history in docket::fork::split(&dir, &out)? {
                match history.forked_at {
                    None => println!(
                        "{}: {} entries, the history from genesis",
                        history.dir.display(),
                        history.entries
                    ),
                    Some(at) => println!(
                        "{}: {} entries, forked off after entry {}",
                        history.dir.display(),
                        history.entries,
                        at - 1
                    ),
                }
            }
            println!(
                "each verifies on its own (docket verify DIR --pub KEY); keep the one to continue \
                 in place of {} and archive the others: they hold acknowledged decisions too",
                dir.display()
            );
            Ok(0)
        }
        LogCommand::Checkpoint { dir } => {
            let note = store::latest_checkpoint(&dir)?
                .with_context(|| format!("{} has no checkpoint yet", dir.display()))?;
            print!("{note}");
            Ok(0)
        }
    }
}

/// How far past a log's newest entry `docket log prune` trusts the clock without `--idle-log`.
const PRUNE_CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(86_400);

fn prune(
    dir: &Path,
    key: &Path,
    public: Option<&Path>,
    through: Option<u64>,
    idle_log: bool,
) -> Result<i32> {
    let secret = read_secret_key(key)?;
    let genesis = match public {
        Some(p) => read_public_key(p)?,
        None => secret.public().clone(),
    };
    let runtime = load_runtime()?;
    let (mut log, _, report) = AuditLog::open(dir, &runtime, &genesis, &secret)?;
    // Retention is judged by this clock (the component reads the same steady clock): one that
    // is far ahead would remove payloads still under retention, so a clock much later than the
    // log's newest entry must be vouched for.
    let now = wasmtime_wasi::HostWallClock::now(&docket::clock::SteadyClock);
    let newest = std::time::Duration::from_nanos(report.last_timestamp_ns);
    if !idle_log && now > newest + PRUNE_CLOCK_SLACK {
        bail!(
            "this machine's clock reads {}, {} days after the log's newest entry ({}); if the \
             clock is right and the log has been idle, pass --idle-log; nothing was pruned",
            docket_ledger::record::rfc3339(now.as_nanos() as u64),
            (now - newest).as_secs() / 86_400,
            docket_ledger::record::rfc3339(report.last_timestamp_ns)
        );
    }
    let outcomes = log.prune(&report, through)?;
    let mut pruned = 0;
    for o in &outcomes {
        match (&o.kept_because, o.prune_entry) {
            (None, Some(entry)) => {
                pruned += o.pruned;
                println!(
                    "pruned {}: entries {}..={}, {} decision payloads removed (prune entry {entry})",
                    o.segment, o.first, o.last, o.pruned
                );
            }
            (why, _) => println!(
                "kept {}: entries {}..={}: {}",
                o.segment,
                o.first,
                o.last,
                why.as_deref().unwrap_or("")
            ),
        }
    }
    println!(
        "{pruned} payloads pruned; the segment being written is never pruned{}",
        if outcomes.is_empty() {
            " (no sealed segment yet)"
        } else {
            ""
        }
    );
    Ok(0)
}

fn reveal(
    dir: &Path,
    public: &Path,
    seq: u64,
    pointer: &str,
    value: &str,
    salt: Option<&str>,
    salt_file: Option<&Path>,
) -> Result<i32> {
    let genesis = read_public_key(public)?;
    let (frames, _) = store::read_frames(dir)?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate().map_err(|e| anyhow!("{e}"))?;
    // The whole log first: a value proved against an entry of a tampered log proves nothing.
    let report = verify_frames(&mut instance, &genesis, &frames, None, |_| {})?.map_err(|e| {
        anyhow!(
            "the log does not verify ({}); nothing in it can be proved",
            e
        )
    })?;
    let entry = frames
        .iter()
        .filter_map(|f| match f {
            store::Frame::Entry(b) => Some(b),
            store::Frame::Checkpoint(_) => None,
        })
        .nth(seq as usize)
        .map(|b| decode_entry(b))
        .transpose()?
        .ok_or_else(|| {
            anyhow!(
                "the log has {} entries; there is no entry {seq}",
                report.entries
            )
        })?;
    if entry.kind != docket_ledger::EntryKind::Decision {
        bail!("entry {seq} is a {} entry, not a decision", entry.kind);
    }
    if entry.is_pruned() {
        bail!(
            "entry {seq} was pruned under retention: its record, and the commitment a value \
             could be proved against, are gone"
        );
    }
    let salt = match (salt, salt_file) {
        (Some(text), _) => docket::salts::decode_salt(text)?,
        (None, Some(file)) => docket::salts::find(file, seq, &entry.hash.to_hex(), pointer)?,
        (None, None) => bail!("give --salt or --salts"),
    };
    match instance
        .check_reveal(&entry.record, pointer, value, &salt)
        .map_err(|e| anyhow!("{e}"))?
    {
        Ok(()) => {
            println!(
                "proved: entry {seq} (hash {}) of a log that verifies ({} entries) committed {pointer} = {value}",
                entry.hash.to_hex(),
                report.entries
            );
            Ok(0)
        }
        Err(why) => {
            println!("not proved: {why}");
            Ok(1)
        }
    }
}

fn prove(dir: &Path, seq: Option<u64>, decision_id: Option<&str>) -> Result<i32> {
    let (frames, _) = store::read_frames(dir)?;
    let mut entries = Vec::new();
    let mut checkpoint = None;
    for frame in &frames {
        match frame {
            store::Frame::Entry(b) => entries.push(decode_entry(b)?),
            store::Frame::Checkpoint(n) => checkpoint = Some(n.clone()),
        }
    }
    let note = checkpoint.ok_or_else(|| anyhow!("{} has no checkpoint yet", dir.display()))?;
    let signed = docket_ledger::SignedCheckpoint::parse(&note)
        .map_err(|e| anyhow!("latest checkpoint: {e}"))?;
    let size = signed.checkpoint.size as usize;
    let index = match (seq, decision_id) {
        (Some(s), _) => s as usize,
        (None, Some(id)) => {
            let chain_id = entries.first().map(|genesis| genesis.hash);
            chain_id
                .and_then(|chain_id| {
                    entries.iter().position(|e| {
                        docket_ledger::record::entry_decision_id(e, &chain_id).as_deref()
                            == Some(id)
                    })
                })
                .ok_or_else(|| anyhow!("no decision with id {id} in {}", dir.display()))?
        }
        (None, None) => bail!("give --seq or --decision-id"),
    };
    if index >= size {
        bail!(
            "entry {index} is not covered by the latest checkpoint (size {size}): it is not yet sealed, or does not exist"
        );
    }
    let leaves: Vec<docket_ledger::Hash> = entries[..size].iter().map(|e| e.hash).collect();
    let proof =
        docket_ledger::merkle::inclusion_proof(&leaves, index).expect("index within the tree");
    let proof_bytes: Vec<Vec<u8>> = proof.iter().map(|h| h.0.to_vec()).collect();
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate().map_err(|e| anyhow!("{e}"))?;
    instance
        .verify_inclusion(
            &leaves[index].0,
            index as u64,
            size as u64,
            &proof_bytes,
            &signed.checkpoint.root.0,
        )
        .map_err(|e| anyhow!("{e}"))?
        .map_err(|e| anyhow!("the computed proof does not verify: {e}"))?;
    println!(
        "{}",
        serde_json::json!({
            "seq": index,
            "entry_hash": leaves[index].to_hex(),
            "tree_size": size,
            "root": signed.checkpoint.root.to_hex(),
            "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            "checkpoint": note,
        })
    );
    Ok(0)
}

fn demo(dir: Option<PathBuf>, count: u64, batch: usize) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis();
            std::env::temp_dir().join(format!("docket-demo-{stamp}"))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let log_dir = dir.join("log");
    if store::is_log_dir(&log_dir) {
        bail!(
            "{} already holds a demo log; pick a new --dir",
            log_dir.display()
        );
    }
    println!("docket demo in {}", dir.display());

    let started = Instant::now();
    let runtime = load_runtime()?;
    let load = runtime.load_info().clone();
    println!(
        "  component: {} in {:.1} ms ({} KiB)",
        if load.from_cache {
            "loaded from cache"
        } else {
            "compiled (cached for next time)"
        },
        load.elapsed.as_secs_f64() * 1e3,
        runtime::COMPONENT_WASM.len() / 1024
    );
    let key = write_new_key(&dir, "demo", "docket.demo")?;
    let salt_path = dir.join("mask-salts.jsonl");
    println!(
        "  key: {} (secret, 0600) and demo.pub",
        dir.join("demo.key").display()
    );

    let origin = format!("docket.demo/{}", &hex(&key.public().bytes()[..6]));
    let mut log = AuditLog::create(
        &log_dir,
        &runtime,
        &key,
        &origin,
        &instance_id(),
        runtime::SigningMode::Checkpoint,
    )?;
    log.keep_salts_in(docket::salts::SaltFile::open(&salt_path)?);
    // The examples, loaded and recorded as `docket serve` loads and records them.
    let set = serve::load_policy_set(&[], None)?;
    let version = set
        .load_into(log.instance())?
        .map_err(|e| anyhow!("{}", runtime::describe_policy_error(&e)))?;
    log.record(
        runtime::EntryKind::PolicyChange,
        &serve::load_record(&set, &version),
    )?;
    log.commit()?;
    println!(
        "  policies: rbac.rego, abac.rego with data, health.rego, and the logging rules system-log.rego (mask the request's address, drop health checks); version {}",
        version.digest
    );

    let mut requests = Requests::new(2026);
    let (mut allowed, mut denied, mut dropped, mut commits) = (0u64, 0u64, 0u64, 0u64);
    // The first masked decision, to reveal after the run: (seq, the address masked out).
    let mut masked_example: Option<(u64, String)> = None;
    let sealing = Instant::now();
    for i in 0..count {
        // One request in ten is a liveness probe, which the logging rules drop.
        let sealed = if i % 10 == 9 {
            log.decide(HEALTH.path, None)?
        } else {
            let (path, input) = requests.next_request();
            let sealed = log.decide(path, Some(&input))?;
            if let (None, Some(entry)) = (&masked_example, &sealed.entry) {
                let ip =
                    serde_json::from_str::<serde_json::Value>(&input)?["context"]["ip"].clone();
                if !ip.is_null() {
                    masked_example = Some((entry.seq, ip.to_string()));
                }
            }
            sealed
        };
        match (&sealed.entry, sealed.result.as_deref()) {
            (None, _) => dropped += 1,
            (Some(_), Some("true")) => allowed += 1,
            (Some(_), _) => denied += 1,
        }
        if ((i + 1) as usize).is_multiple_of(batch) {
            log.commit()?;
            commits += 1;
        }
    }
    log.commit()?;
    commits += 1;
    let sealing = sealing.elapsed();
    let entries = log.entries();
    drop(log);
    println!(
        "  decided, sealed and durably appended {count} requests in {:.2} s: {:.0} decisions/s ({allowed} allowed, {denied} denied, {dropped} health checks dropped and counted in signed tally entries; {commits} group commits, one fsync and one signed checkpoint each)",
        sealing.as_secs_f64(),
        count as f64 / sealing.as_secs_f64()
    );

    let pub_path = dir.join("demo.pub");
    let verifying = Instant::now();
    let (frames, _) = store::read_frames(&log_dir)?;
    let mut instance = runtime.instantiate().map_err(|e| anyhow!("{e}"))?;
    let report = verify_frames(&mut instance, key.public(), &frames, None, |_| {})?
        .map_err(|e| anyhow!("the fresh log does not verify: {}", e))?;
    let verify_time = verifying.elapsed();
    let log_bytes: u64 = store::segment_paths(&log_dir)?
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    println!(
        "  verified {} entries and {} checkpoints in {:.3} s ({:.0} entries/s); root {}",
        report.entries,
        report.checkpoints,
        verify_time.as_secs_f64(),
        report.entries as f64 / verify_time.as_secs_f64(),
        hex(&report.root)
    );

    // Masking: the address is not in the log, only a commitment; its salt is in the salt file.
    if let Some((seq, ip)) = &masked_example {
        let entry = frames
            .iter()
            .filter_map(|f| match f {
                store::Frame::Entry(b) => Some(b),
                store::Frame::Checkpoint(_) => None,
            })
            .nth(*seq as usize)
            .map(|b| decode_entry(b))
            .transpose()?
            .ok_or_else(|| anyhow!("entry {seq} is missing"))?;
        let salt =
            docket::salts::find(&salt_path, *seq, &entry.hash.to_hex(), "/input/context/ip")?;
        let right = instance
            .check_reveal(&entry.record, "/input/context/ip", ip, &salt)
            .map_err(|e| anyhow!("{e}"))?;
        let wrong = instance
            .check_reveal(&entry.record, "/input/context/ip", "\"10.0.0.1\"", &salt)
            .map_err(|e| anyhow!("{e}"))?;
        println!(
            "  masked: entry {seq} holds a salted commitment, not the address {ip}; revealed with its salt it {}, a wrong address {}",
            if right.is_ok() {
                "proves out"
            } else {
                "FAILS (a bug)"
            },
            if wrong.is_err() {
                "does not"
            } else {
                "ALSO PROVES (a bug)"
            },
        );
        println!(
            "          try: docket log reveal {} --pub {} --seq {seq} --path /input/context/ip --value '{ip}' --salts {}",
            log_dir.display(),
            dir.join("demo.pub").display(),
            salt_path.display()
        );
    }

    // Tamper with a copy: flip one byte inside a decision record in the middle of the log.
    let tampered = dir.join("tampered");
    copy_dir(&log_dir, &tampered)?;
    let target_seq = entries / 2;
    // The segment holding it: the last whose name (its first seq) is not past it. A log of a
    // million decisions spans several segments.
    let (segment, first_seq) = store::segment_paths(&tampered)?
        .into_iter()
        .filter_map(|path| Some((store::segment_first_seq(&path)?, path)))
        .take_while(|(first, _)| *first <= target_seq)
        .map(|(first, path)| (path, first))
        .last()
        .ok_or_else(|| anyhow!("no segment holds entry {target_seq}"))?;
    // Rewritten through the store's own frame encoder, so every frame's checksum is right, as
    // an attacker with write access would leave it: only the log's cryptography can tell.
    let (mut frames, _, _) = store::scan_segment(&std::fs::read(&segment)?);
    let entry = frames
        .iter_mut()
        .filter_map(|frame| match frame {
            store::Frame::Entry(bytes) => Some(bytes),
            store::Frame::Checkpoint(_) => None,
        })
        .nth((target_seq - first_seq) as usize)
        .ok_or_else(|| anyhow!("entry {target_seq} not found in {}", segment.display()))?;
    // A byte inside the record (it follows the 73-byte header in either body form).
    entry[docket_ledger::entry::BODY_HEADER_LEN + 20] ^= 0x01;
    let what = "one byte of the decision record";
    std::fs::write(&segment, store::encode_segment(&frames))?;
    let (frames, _) = store::read_frames(&tampered)?;
    let mut instance = runtime.instantiate().map_err(|e| anyhow!("{e}"))?;
    match verify_frames(&mut instance, key.public(), &frames, None, |_| {})? {
        Ok(_) => bail!("tampering went undetected; this is a bug"),
        Err(e) => println!(
            "  tampered copy ({what} of entry {target_seq} changed, frame checksum fixed up): REJECTED: {}",
            e
        ),
    }

    println!();
    println!(
        "summary: {count} decisions ({allowed} allow, {denied} deny) at {:.0} decisions/s end to end; log {} KiB in {} entries; verify {:.0} ms; total {:.1} s",
        count as f64 / sealing.as_secs_f64(),
        log_bytes / 1024,
        entries,
        verify_time.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64()
    );
    println!(
        "files: log {} · key {} · tampered copy {}",
        log_dir.display(),
        pub_path.display(),
        tampered.display()
    );
    println!(
        "check it yourself: docket verify {} --pub {}",
        log_dir.display(),
        pub_path.display()
    );
    Ok(0)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
