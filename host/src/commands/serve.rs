//! `docket serve` (its flags, turned into a `ServeConfig`) and `docket ui`.

use super::load_runtime;
use anyhow::{Context, Result, bail};
use docket_runtime as runtime;
use docket_server as serve;
use std::io::Write;
use std::path::PathBuf;

/// `docket serve`'s flags (boxed in [`Command::Serve`]: they outweigh every other command's).
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on: IP:PORT or localhost:PORT; bind beyond loopback only behind TLS.
    #[arg(long, default_value = serve::defaults::ADDR, value_parser = parse_addr)]
    addr: std::net::SocketAddr,
    /// Data directory: key, write token and log (created on first start, reused after).
    #[arg(long, default_value = serve::defaults::DIR)]
    dir: PathBuf,
    /// A .rego or .json file, or a directory of them; repeatable. Default: the examples.
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// An OPA bundle (a .tar.gz from `opa build`, or a directory) as PATH or NAME=PATH;
    /// repeatable. Its revision labels the policy version; its name, revision, roots and every
    /// file's SHA-256 are sealed with the policy set.
    /// A bundle server's URL works too (NAME=http://…): the bundle is downloaded before the
    /// start and polled after it (If-None-Match), each new version activated atomically and
    /// sealed, or refused with the refusal sealed.
    #[arg(long = "bundle")]
    bundles: Vec<String>,
    /// Seconds between polls of a bundle server, at least (OPA's min_delay_seconds).
    #[arg(long, default_value_t = 60.0)]
    bundle_min_delay_seconds: f64,
    /// Seconds between polls of a bundle server, at most (OPA's max_delay_seconds).
    #[arg(long, default_value_t = 120.0)]
    bundle_max_delay_seconds: f64,
    #[command(flatten)]
    verification: super::bundles::VerificationArgs,
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
    #[arg(long, default_value_t = serve::appender::CommitPolicy::DEFAULT_MAX_ENTRIES)]
    commit_max_entries: usize,
    /// Wait up to this many microseconds for more requests before committing a batch
    /// (0: commit as soon as the queue is empty).
    #[arg(long, default_value_t = 0)]
    commit_max_delay_us: u64,
    /// The data path `POST /` evaluates.
    #[arg(long, default_value = serve::defaults::DEFAULT_DECISION)]
    default_decision: String,
    /// Paths accepting OPA decision-log uploads (OPA's service resource); repeatable.
    #[arg(long = "ingest-path", default_value = serve::defaults::INGEST_PATH)]
    ingest_paths: Vec<String>,
    /// Largest request body in bytes (decisions, policies, data).
    #[arg(long, default_value_t = serve::defaults::MAX_BODY)]
    max_body: usize,
    /// Largest decision-log upload in bytes, compressed and decompressed.
    #[arg(long, default_value_t = serve::defaults::MAX_INGEST_BODY)]
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
    #[arg(long, default_value_t = docket_store::SEGMENT_LIMIT)]
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
    /// A witness to submit checkpoints to, as <witness key>@<http URL> (the key from the
    /// witness's witness.pub); repeatable. Cosignatures are kept in <dir>/log/cosignatures.jsonl
    /// and served on /checkpoint and /v1/log/witnessed; decisions never wait for a witness.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Send each witness a checkpoint at most this often, in ms (default 500).
    #[arg(long)]
    witness_interval_ms: Option<u64>,
    #[command(flatten)]
    nats: super::nats::NatsArgs,
    /// An origin (https://host[:port], or null for a page opened from a file) whose scripts
    /// may read the log's API from a browser, e.g. a verifier page hosted elsewhere; reads
    /// only (GET, HEAD); repeatable.
    #[arg(long = "allow-origin", value_parser = serve::cors::parse_origin)]
    allowed_origins: Vec<String>,
}

/// A positive number of seconds as a duration.
fn seconds(flag: &str, value: f64) -> Result<std::time::Duration> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{flag} {value} must be a positive number of seconds");
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

/// `--addr`: an IP address and port, or `localhost:PORT` (the loopback address). OPA's `:PORT`
/// means every interface; docket asks for that to be spelled out.
fn parse_addr(text: &str) -> std::result::Result<std::net::SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port number (0 to 65535)"))
    };
    if let Some(p) = text.strip_prefix("localhost:") {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port(p)?)));
    }
    if let Some(p) = text.strip_prefix(':') {
        port(p)?;
        return Err(format!(
            "{text:?} would listen on every interface (OPA's meaning); say which: \
             --addr 127.0.0.1:{p} for this machine only, or --addr 0.0.0.0:{p} for every \
             interface (put TLS in front: docket serves plain HTTP)"
        ));
    }
    Err(format!(
        "{text:?} is not an address to listen on: give IP:PORT (127.0.0.1:8181, [::1]:8181) or \
         localhost:PORT"
    ))
}

pub fn run(args: Box<ServeArgs>) -> Result<i32> {
    let ServeArgs {
        addr,
        dir,
        policies,
        bundles,
        bundle_min_delay_seconds,
        bundle_max_delay_seconds,
        verification,
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
        witnesses,
        witness_interval_ms,
        nats,
        allowed_origins,
    } = *args;
    let witnesses = witnesses
        .iter()
        .map(|w| serve::witnessing::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>>>()?;
    let read_token = read_token_file
        .map(|path| {
            docket_store::private::check_secret(&path, "the read token")
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
            docket_store::private::check_secret(&path, "the write token")
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
    let mut local_bundles = Vec::new();
    let mut remote_bundles = Vec::new();
    for arg in &bundles {
        let (name, path) = serve::bundle::parse_bundle_arg(arg);
        let text = path.to_string_lossy().to_string();
        if text.starts_with("https://") {
            bail!(
                "--bundle {arg}: docket's bundle client speaks plain HTTP only; reach an HTTPS \
                 bundle server through a local TLS proxy and give its http:// address"
            );
        }
        if text.starts_with("http://") {
            remote_bundles.push(serve::bundle_service::RemoteBundle { name, url: text });
        } else {
            local_bundles.push((name, path));
        }
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
        bundles: local_bundles,
        remote_bundles,
        bundle_polling: serve::bundle_service::Polling {
            min_delay: seconds("--bundle-min-delay-seconds", bundle_min_delay_seconds)?,
            max_delay: seconds("--bundle-max-delay-seconds", bundle_max_delay_seconds)?,
        },
        bundle_verification: verification.config()?,
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
        witnesses,
        witness_pacing: serve::witnessing::WitnessPacing {
            interval: witness_interval_ms.map_or(defaults.witness_pacing.interval, ms),
            ..defaults.witness_pacing
        },
        nats: nats.config()?,
        allowed_origins,
    };
    serve_command(config)
}

fn serve_command(config: serve::ServeConfig) -> Result<i32> {
    super::init_tracing();
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

#[derive(clap::Args)]
pub struct UiArgs {
    #[arg(long, default_value = "docket-ui")]
    out: PathBuf,
}

pub fn ui(args: UiArgs) -> Result<i32> {
    serve::ui::write_files(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote the log verifier page to {}", args.out.display());
    Ok(0)
}
