//! `docket verify`: a log directory or an export, against the log's genesis key.

use super::load_runtime;
use anyhow::{Context, Result, anyhow, bail};
use docket_ledger::EntryKind;
use docket_ledger::report::{Summary, failure_json, rejection_json};
use docket_ledger::{Entry, PublicKey};
use docket_runtime::log::{read_public_key, verify_frames};
use docket_runtime::{self as runtime, CallError, Verdict, VerifyError};
use docket_store as store;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct VerifyArgs {
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
}

pub fn run(args: VerifyArgs) -> Result<i32> {
    verify(
        &args.path,
        &args.public,
        args.checkpoint.as_deref(),
        &args.checkpoint_keys,
        args.json,
    )
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
        println!("{}", rejection_json(failure, message));
    } else {
        println!("REJECTED: {message}");
    }
    1
}

/// The verifier's failure: printed as `REJECTED: …` (or JSON with where and why), exit 1.
fn failed(json: bool, e: &VerifyError) -> i32 {
    if json {
        println!("{}", failure_json(e));
    } else {
        println!("REJECTED: {e}");
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
    let text = path.to_string_lossy();
    if text.starts_with("http://") || text.starts_with("https://") {
        bail!(
            "{text} is a URL; docket verify reads a log directory or an export file. Fetch an \
             export first, or open the server's verifier page at {}/ui/",
            text.trim_end_matches('/')
        );
    }
    // `docket serve`'s data directory holds the log in log/: point there.
    if path.is_dir() && !store::is_log_dir(path) && store::is_log_dir(&path.join("log")) {
        bail!(
            "{} is not a log directory but holds one: docket verify {}",
            path.display(),
            path.join("log").display()
        );
    }
    let key = read_public_key(public)?;
    let trusted = checkpoint.map(read_trusted_checkpoint).transpose()?;
    let extra_keys = checkpoint_keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate()?;
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
        let result = verify_frames(&mut instance, &key, &frames, head, |n| bar.set_position(n));
        bar.finish_and_clear();
        result.verdict()?
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
        verify_export_lines(&mut instance, &key, &lines, head).verdict()?
    };
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            return Ok(failed(json, &e));
        }
    };
    if let Some(trusted) = &trusted {
        // The log verified, so the keys it used are its own: one of them, or a key the user
        // named, must have signed the head it was held to.
        let mut keys = report
            .keys
            .iter()
            .map(|k| Ok(PublicKey::from_vkey(k)?))
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
    print_verified(&report, started.elapsed(), trusted.as_ref(), json);
    Ok(0)
}

/// Pushes an export's lines through a verifier in the component, stopping at the first failure.
fn verify_export_lines(
    instance: &mut runtime::Instance,
    key: &PublicKey,
    lines: &[&str],
    head: Option<(u64, &[u8])>,
) -> Result<runtime::Report, CallError<VerifyError>> {
    let bar = progress_bar(lines.len() as u64);
    let mut verifier = instance
        .verifier_held_to(&key.to_vkey(), head)
        .map_err(CallError::widen)?;
    for (i, line) in lines.iter().enumerate() {
        verifier.push_export_line(line)?;
        if i.is_multiple_of(4096) {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    verifier.finish()
}

/// Prints what a verification established, as a sentence or as JSON (the ledger's one report
/// shape, `docket_ledger::report`, plus the seconds it took).
fn print_verified(
    report: &runtime::Report,
    elapsed: std::time::Duration,
    trusted: Option<&docket_ledger::SignedCheckpoint>,
    json: bool,
) {
    let summary = Summary::from(report);
    if json {
        let mut out = summary.json();
        out["seconds"] = serde_json::json!(elapsed.as_secs_f64());
        println!("{out}");
    } else {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        println!(
            "verified: {} ({}), {}, root {}, keys {}, in {:.3} s",
            plural(summary.entries, "entry", "entries"),
            plural(summary.count(EntryKind::Decision), "decision", "decisions"),
            plural(summary.checkpoints, "checkpoint", "checkpoints"),
            summary.root,
            summary.keys.join(", "),
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
        if let Some(trusted) = trusted {
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
