//! `docket eval`: evaluate a query as `opa eval` does, or, with a log, decide once, seal the
//! decision, append it durably and print it.

use super::{instance_id, load_runtime};
use anyhow::{Context, Result, anyhow, bail};
use docket_ledger::PublicKey;
use docket_runtime::log::{AuditLog, NewLog, read_public_key, read_secret_key};
use docket_runtime::{self as runtime, Runtime};
use docket_server as serve;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The query, a data reference as `opa eval` takes it (`data.rbac.allow`), or docket's
    /// path form (`rbac/allow`).
    #[arg(conflicts_with = "path")]
    query: Option<String>,
    /// Policy (.rego) and data (.json) files or directories, as `opa eval -d`; repeatable.
    #[arg(short = 'd', long = "data")]
    data: Vec<PathBuf>,
    /// Rego policy files or directories (the same as --data for .rego files).
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// An OPA bundle (.tar.gz or directory) as PATH or NAME=PATH, as `opa eval -b`; repeatable.
    #[arg(short = 'b', long = "bundle")]
    bundles: Vec<String>,
    #[command(flatten)]
    verification: super::bundles::VerificationArgs,
    /// The data path to evaluate in docket's form, e.g. rbac/allow (or give the query).
    #[arg(long)]
    path: Option<String>,
    /// Input JSON file; `-` reads standard input, as does no --input when input is piped in.
    #[arg(short = 'i', long)]
    input: Option<PathBuf>,
    /// Output without a log: `json` (`opa eval`'s result shape), `pretty` or `raw` (the
    /// value alone).
    #[arg(short = 'f', long, value_enum, default_value = "json")]
    format: Format,
    /// Seal the decision into this log directory (created on first use). Without it the
    /// query is only evaluated: nothing is written.
    #[arg(long, requires = "key")]
    dir: Option<PathBuf>,
    /// With --dir: the log's secret key file (from `docket keygen`).
    #[arg(long, requires = "dir")]
    key: Option<PathBuf>,
    /// With --dir: the public key the log was started with (defaults to --key's).
    #[arg(long = "pub", requires = "dir")]
    public: Option<PathBuf>,
    /// With --dir: keep the salts of values masked by the logging rules in this file
    /// (appended), apart from the log; without it masked values can never be revealed.
    #[arg(long, requires = "dir")]
    salts: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Pretty,
    Raw,
}

/// docket's path (`rbac/allow`) for a query: `data.rbac.allow`, `data`, or a path already.
fn query_path(query: &str) -> Result<String> {
    let query = query.trim();
    let reference = if query == "data" {
        return Ok(String::new());
    } else if let Some(rest) = query.strip_prefix("data.") {
        rest
    } else if !query.contains('.') {
        return Ok(query.trim_matches('/').to_string());
    } else {
        bail!(
            "the query {query:?} is neither a data reference (data.rbac.allow) nor a path \
             (rbac/allow); docket eval evaluates documents under data, not arbitrary Rego queries"
        )
    };
    let segments: Vec<&str> = reference.split('.').collect();
    let plain = |s: &&str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !segments.iter().all(plain) {
        bail!(
            "the query {query:?} is not a plain data reference (data.a.b with names of letters, \
             digits and _); for other names use the path form (a/b-c)"
        );
    }
    Ok(segments.join("/"))
}

/// The input document's text: the --input file, standard input for `-`, or standard input
/// when it is piped in and no --input is given; `None` when there is none.
fn read_input(input: Option<&Path>) -> Result<Option<String>> {
    let from_stdin = || -> Result<Option<String>> {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(Some(s))
    };
    match input {
        Some(p) if p == Path::new("-") => from_stdin(),
        Some(p) => Ok(Some(
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )),
        None if std::io::stdin().is_terminal() => Ok(None),
        None => from_stdin(),
    }
}

/// The sentence for a path that names nothing loaded.
fn names_nothing(path: &str) -> anyhow::Error {
    anyhow!(
        "data.{} names no package, rule or data document of the loaded policies and data \
         (a typo?): its value is always undefined, and docket does not evaluate or seal such a \
         query; check the package and rule names",
        path.replace('/', ".")
    )
}

pub fn run(args: EvalArgs) -> Result<i32> {
    let path = match (&args.query, &args.path) {
        (Some(q), _) => query_path(q)?,
        (None, Some(p)) => p.trim_matches('/').to_string(),
        (None, None) => {
            bail!("give the query to evaluate, e.g. docket eval -d policy.rego 'data.rbac.allow'")
        }
    };
    let files: Vec<PathBuf> = args.policies.iter().chain(&args.data).cloned().collect();
    if files.is_empty() && args.bundles.is_empty() {
        bail!("give the policies to evaluate with -d (files or directories of .rego and .json)");
    }
    match (&args.dir, &args.key) {
        (Some(dir), Some(key)) => seal(&args, dir, key, &path, &files),
        _ => evaluate(&args, &path, &files),
    }
}

/// Evaluates without a log, as `opa eval` does: nothing is written.
fn evaluate(args: &EvalArgs, path: &str, files: &[PathBuf]) -> Result<i32> {
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate()?;
    let set = policy_set(args, files)?;
    set.load_into(&mut instance)
        .map_err(|e| anyhow!("the policies do not load: {e}; fix them and retry"))?;
    if !instance.defines(path)? {
        return Err(names_nothing(path));
    }
    let input = read_input(args.input.as_deref())?;
    instance.gather_prints(true)?;
    let decision = instance.evaluate(path, input.as_deref());
    // print() output goes to standard error, as opa eval writes it, also when evaluation fails.
    for line in instance.take_prints()? {
        eprintln!("{line}");
    }
    let decision = decision?;
    let query = if path.is_empty() {
        "data".to_string()
    } else {
        format!("data.{}", path.replace('/', "."))
    };
    let Some(result) = decision.result else {
        match args.format {
            Format::Json => println!("{{}}"),
            Format::Pretty => println!("undefined"),
            Format::Raw => {}
        }
        return Ok(0);
    };
    // The value is printed from its own text, so an integer beyond 64 bits keeps its digits
    // (a serde_json value would round it to an f64).
    let raw = serde_json::value::RawValue::from_string(result.clone())?;
    match args.format {
        Format::Json => {
            let shape = EvalOutput {
                result: [QueryResult {
                    expressions: [Expression {
                        value: &raw,
                        text: &query,
                        location: Location { row: 1, col: 1 },
                    }],
                }],
            };
            println!("{}", serde_json::to_string_pretty(&shape)?);
        }
        Format::Pretty => println!("{}", docket_wire::pretty_json(&result)),
        Format::Raw => match serde_json::from_str::<String>(&result) {
            Ok(s) => println!("{s}"),
            Err(_) => println!("{result}"),
        },
    }
    Ok(0)
}

/// `opa eval`'s output shape for one defined value.
#[derive(serde::Serialize)]
struct EvalOutput<'a> {
    result: [QueryResult<'a>; 1],
}

#[derive(serde::Serialize)]
struct QueryResult<'a> {
    expressions: [Expression<'a>; 1],
}

#[derive(serde::Serialize)]
struct Expression<'a> {
    value: &'a serde_json::value::RawValue,
    text: &'a str,
    location: Location,
}

#[derive(serde::Serialize)]
struct Location {
    row: u32,
    col: u32,
}

/// Decides once, seals the decision into the log in `dir`, and prints it.
fn seal(args: &EvalArgs, dir: &Path, key: &Path, path: &str, files: &[PathBuf]) -> Result<i32> {
    let secret = read_secret_key(key)?;
    let genesis = match &args.public {
        Some(p) => read_public_key(p)?,
        None => secret.public().clone(),
    };
    // Read and checked before the log is touched: a mistake here writes nothing.
    let input_text = read_input(args.input.as_deref())?;
    let runtime = load_runtime()?;
    let (mut log, recorded_version) = open_or_create(dir, &runtime, &genesis, &secret)?;
    if let Some(salts) = &args.salts {
        log.keep_salts_in(docket_store::salts::SaltFile::open(salts)?);
    }
    // The same loading as `docket serve`'s (one data document merged from the data
    // files), so the same files give the same policy version in both.
    let set = policy_set(args, files)?;
    let version = set
        .load_into(log.instance())
        .map_err(|e| anyhow!("the policies do not load: {e}; fix them and retry"))?;
    if !log.instance().defines(path)? {
        return Err(names_nothing(path));
    }
    // A policy set the log has not seen (first use, or the files changed since the
    // last eval) is itself an entry, sealed before the decision it governs.
    if recorded_version.as_deref() != Some(version.digest.as_str()) {
        log.record(
            runtime::EntryKind::PolicyChange,
            &serve::load_record(&set, &version),
        )?;
    }
    log.instance().gather_prints(true)?;
    let sealed = log.decide(path, input_text.as_deref());
    for line in log.instance().take_prints()? {
        eprintln!("{line}");
    }
    let sealed = sealed?;
    log.commit()?;
    // The result from its own text, so an integer beyond 64 bits keeps its digits.
    let result = sealed
        .result
        .clone()
        .map(serde_json::value::RawValue::from_string)
        .transpose()?;
    let out = match &sealed.entry {
        Some(e) => SealedOutput {
            decision_id: Some(&e.decision_id),
            seq: Some(e.seq),
            entry_hash: Some(&e.entry_hash),
            dropped: None,
            result: result.as_deref(),
        },
        None => SealedOutput {
            decision_id: None,
            seq: None,
            entry_hash: None,
            dropped: Some("by the logging rules; counted in a tally entry"),
            result: result.as_deref(),
        },
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(0)
}

/// The policy files and bundles given, loaded as `docket serve` loads them.
fn policy_set(args: &EvalArgs, files: &[PathBuf]) -> Result<docket_server::policies::PolicySet> {
    let bundles: Vec<(String, PathBuf)> = args
        .bundles
        .iter()
        .map(|b| serve::bundle::parse_bundle_arg(b))
        .collect();
    serve::load_policy_sources(files, &bundles, args.verification.config()?.as_ref(), None)
}

/// What a sealing `docket eval` prints: the entry, or that the logging rules dropped the
/// decision, and the result when defined.
#[derive(serde::Serialize)]
struct SealedOutput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a serde_json::value::RawValue>,
}

/// Opens the log in `dir` (or starts one, named after the key), with the policy version its last
/// policy-change entry recorded, if any.
fn open_or_create(
    dir: &Path,
    runtime: &Runtime,
    genesis: &PublicKey,
    secret: &docket_ledger::SecretKey,
) -> Result<(AuditLog, Option<String>)> {
    let new = NewLog {
        origin: None,
        signing: runtime::SigningMode::Checkpoint,
        instance_id: &instance_id(),
        replica: None,
    };
    let opened = AuditLog::open_or_create(dir, runtime, genesis, secret, &new)?;
    let recovery = &opened.recovery;
    if recovery.truncated_bytes > 0 {
        eprintln!(
            "recovered {}: cut {} bytes of an unfinished commit ({} unacknowledged entries)",
            dir.display(),
            recovery.truncated_bytes,
            recovery.unsealed_entries_dropped
        );
    }
    let recorded = docket_runtime::log::last_policy_version(&opened.frames);
    Ok((opened.log, recorded))
}
