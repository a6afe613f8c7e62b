//! `docket verify`: a log directory or an export, against the log's genesis key.

use super::load_runtime;
use anyhow::{Context, Result, anyhow, bail};
use docket_ledger::EntryKind;
use docket_ledger::cosignature::{Cosigned, CosignerKey};
use docket_ledger::report::{Summary, failure_json, rejection_json};
use docket_ledger::witness::{WitnessPolicy, WitnessedHead};
use docket_ledger::{Entry, PublicKey, SignedCheckpoint};
use docket_runtime::log::{read_public_key, verify_frames};
use docket_runtime::{self as runtime, CallError, Verdict, VerifyError};
use docket_server::witnessing::StoredCosignature;
use docket_store as store;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A log directory, a .jsonl export, or a log in NATS JetStream
    /// (nats://HOST:PORT[,HOST:PORT…]/STREAM/LOG, as `docket serve --nats` wrote it).
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
    /// A witness whose cosignatures count (its witness.pub, or the key text); repeatable. The
    /// log must then reach a checkpoint that --quorum of them cosigned, which nobody holding
    /// only the log's key can forge.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned (default: a majority of them).
    #[arg(long)]
    quorum: Option<usize>,
    /// A checkpoint note carrying cosignatures, e.g. from a witness's /checkpoint?origin=… or a
    /// server's /v1/log/witnessed; repeatable. A log directory's own cosignatures.jsonl is
    /// always read too.
    #[arg(long = "cosigned")]
    cosigned: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> Result<i32> {
    let policy = witness_policy(&args.witnesses, args.quorum)?;
    if policy.is_some() && args.checkpoint.is_some() {
        bail!(
            "give --checkpoint or --witness, not both: each names the checkpoint the log is held \
             to (verify twice to check both)"
        );
    }
    if policy.is_none() && (!args.cosigned.is_empty() || args.quorum.is_some()) {
        bail!(
            "--cosigned and --quorum count the cosignatures of --witness keys: name the witnesses"
        );
    }
    verify(
        &args.path,
        &args.public,
        args.checkpoint.as_deref(),
        &args.checkpoint_keys,
        policy.map(|p| (p, args.cosigned)),
        args.json,
    )
}

/// The witness keys and quorum given on the command line.
fn witness_policy(keys: &[String], quorum: Option<usize>) -> Result<Option<WitnessPolicy>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let witnesses = keys
        .iter()
        .map(|k| read_cosigner_key(k))
        .collect::<Result<Vec<_>>>()?;
    let quorum = quorum.unwrap_or(witnesses.len() / 2 + 1);
    if quorum == 0 || quorum > witnesses.len() {
        bail!(
            "--quorum {quorum} must be between 1 and the number of --witness keys ({})",
            witnesses.len()
        );
    }
    Ok(Some(WitnessPolicy { witnesses, quorum }))
}

/// A `--witness` argument: a witness.pub file or the key text.
pub fn read_cosigner_key(arg: &str) -> Result<CosignerKey> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
    } else {
        arg.to_string()
    };
    CosignerKey::from_vkey(&text).map_err(|e| anyhow!("--witness {arg}: {e}"))
}

/// Every note with cosignatures at hand: the log directory's `cosignatures.jsonl` and the
/// `--cosigned` files (a note, or the JSON of `/v1/log/witnessed`).
fn cosigned_notes(path: &Path, files: &[PathBuf]) -> Result<Vec<SignedCheckpoint>> {
    let mut notes = Vec::new();
    if path.is_dir() {
        let stored = docket_store::files::JsonLines::<StoredCosignature>::read(
            &path.join("cosignatures.jsonl"),
        )?;
        for line in stored {
            if let Ok(note) =
                SignedCheckpoint::parse(&format!("{}\n{}\n", line.checkpoint, line.cosignature))
            {
                notes.push(note);
            }
        }
    }
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let note = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("note").and_then(|n| n.as_str()).map(str::to_string))
            .unwrap_or(text);
        notes.push(SignedCheckpoint::parse(&note).map_err(|e| {
            anyhow!(
                "{} is not a checkpoint note with cosignatures: {e}",
                file.display()
            )
        })?);
    }
    Ok(notes)
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
    witnessing: Option<(WitnessPolicy, Vec<PathBuf>)>,
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
    // A log in JetStream is read whole, then verified as a directory's frames are.
    let jetstream = match super::nats::read_frames(path) {
        Ok(frames) => frames,
        Err(e) => match e.downcast_ref::<store::Damage>() {
            Some(damage) => return Ok(rejected(json, "damaged", &damage.to_string())),
            None => return Err(e),
        },
    };
    let key = read_public_key(public)?;
    let trusted = checkpoint.map(read_trusted_checkpoint).transpose()?;
    let extra_keys = checkpoint_keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate()?;
    let started = Instant::now();
    // With a witness policy the log is held to the largest checkpoint a quorum cosigned.
    let witnessed = match &witnessing {
        Some((policy, files)) => {
            let notes = cosigned_notes(path, files)?;
            let origin = if let Some(frames) = &jetstream {
                log_origin(frames)
            } else if path.is_dir() {
                first_segment_origin(path)
            } else {
                export_origin(path)
            };
            let Some(origin) = origin else {
                return Ok(rejected(
                    json,
                    "not-witnessed",
                    "the log's origin cannot be read from its first entry, so no cosignature can \
                     be matched to it",
                ));
            };
            match policy.strongest(&origin, &notes) {
                Ok(head) => Some((head, policy.witnesses.len(), policy.quorum)),
                Err(why) => return Ok(rejected(json, "not-witnessed", &why)),
            }
        }
        None => None,
    };
    let head = match (&trusted, &witnessed) {
        (Some(t), _) => Some((t.checkpoint.size, t.checkpoint.root.0.as_slice())),
        (None, Some((w, _, _))) => Some((w.checkpoint.size, w.checkpoint.root.0.as_slice())),
        (None, None) => None,
    };
    let mut torn = None;
    let frames = match jetstream {
        Some(frames) => Some(frames),
        None if path.is_dir() => {
            let scan = match store::scan_dir(path)? {
                Ok(scan) => scan,
                Err(damage) => return Ok(rejected(json, "damaged", &damage.to_string())),
            };
            torn = scan.tail.clone();
            Some(scan.frames())
        }
        None => None,
    };
    let outcome = if let Some(frames) = frames {
        if let (Some(trusted), Some(origin)) = (&trusted, log_origin(&frames))
            && let Err(e) = trusted.check_origin(&origin)
        {
            return Ok(rejected(json, "foreign-checkpoint", &e.to_string()));
        }
        let total = frames.iter().filter(|f| f.entry().is_some()).count() as u64;
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
            let code = failed(json, &e);
            if let (Some((head, _, _)), false) = (&witnessed, json) {
                println!(
                    "(the checkpoint of size {} it was held to is cosigned by witnesses {})",
                    head.checkpoint.size,
                    cosigner_list(&head.cosigned)
                );
            }
            return Ok(code);
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
    print_verified(
        &report,
        started.elapsed(),
        trusted.as_ref(),
        witnessed.as_ref(),
        json,
    );
    Ok(0)
}

/// The origin the genesis entry states, read from the first segment alone (the verifier then
/// checks the genesis entry with the rest).
fn first_segment_origin(dir: &Path) -> Option<String> {
    let first = store::segment_paths(dir).ok()?.into_iter().next()?;
    let bytes = std::fs::read(first).ok()?;
    let (frames, _, _) = store::scan_segment(&bytes);
    log_origin(&frames)
}

/// The origin an export's header line states.
fn export_origin(path: &Path) -> Option<String> {
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::fs::File::open(path).ok()?),
        &mut first,
    )
    .ok()?;
    match docket_ledger::export::parse_line(first.trim_end_matches('\n')) {
        Ok(docket_ledger::export::ExportLine::Header { origin }) => Some(origin),
        _ => None,
    }
}

fn cosigner_list(cosigned: &[Cosigned]) -> String {
    cosigned
        .iter()
        .map(|c| {
            format!(
                "{} at {}",
                c.witness,
                docket_ledger::record::rfc3339_seconds(c.timestamp)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    witnessed: Option<&(WitnessedHead, usize, usize)>,
    json: bool,
) {
    let summary = Summary::from(report);
    if json {
        let mut out = summary.json();
        out["seconds"] = serde_json::json!(elapsed.as_secs_f64());
        out["witnessed"] = match witnessed {
            Some((head, of, quorum)) => serde_json::json!({
                "size": head.checkpoint.size,
                "quorum": quorum,
                "witnesses": of,
                "cosignatures": head.cosigned.iter().map(|c| serde_json::json!({
                    "witness": c.witness,
                    "time": docket_ledger::record::rfc3339_seconds(c.timestamp),
                })).collect::<Vec<_>>(),
            }),
            None => serde_json::Value::Null,
        };
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
        match witnessed {
            Some((head, of, quorum)) => {
                let size = head.checkpoint.size;
                println!(
                    "witnessed: the first {} in the checkpoint of size {size}, cosigned by {} of {of} \
                     witnesses (quorum {quorum}): {}",
                    plural(size, "entry is", "entries are"),
                    head.cosigned.len(),
                    cosigner_list(&head.cosigned)
                );
                if summary.entries > size {
                    println!(
                        "the {} after it {} signed by the log's key alone",
                        plural(summary.entries - size, "entry", "entries"),
                        if summary.entries - size == 1 {
                            "is"
                        } else {
                            "are"
                        }
                    );
                }
            }
            None => println!(
                "self-signed only: no witness cosignature was checked (--witness, --quorum), so \
                 whoever holds the log's key could have rewritten it and signed it again"
            ),
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
