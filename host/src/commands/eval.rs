//! `docket eval`: decide once, seal the decision, append it durably, print it.

use super::{instance_id, load_runtime};
use anyhow::{Context, Result, anyhow};
use docket::log::{AuditLog, NewLog, read_public_key, read_secret_key};
use docket::runtime::{self, Runtime};
use docket::serve;
use docket_ledger::PublicKey;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EvalArgs {
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
}

pub fn run(args: EvalArgs) -> Result<i32> {
    let EvalArgs {
        dir,
        key,
        public,
        policies,
        data,
        path,
        input,
        salts,
    } = args;
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
        Some(p) if p != Path::new("-") => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
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
    let recorded = docket::log::last_policy_version(&opened.frames);
    Ok((opened.log, recorded))
}
