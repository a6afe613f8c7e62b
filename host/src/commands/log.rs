//! `docket log …`: show, export, checkpoint, split-fork, prove, prune, reveal.

use super::{decode_entry, entry_at, load_runtime};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use docket_ledger::export::{checkpoint_line, entry_line, header_line};
use docket_runtime::Verdict;
use docket_runtime::log::{AuditLog, read_public_key, read_secret_key, verify_frames};
use docket_store as store;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print entries as export lines. Example: docket log show log --from 10 --count 5
    Show {
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 20)]
        count: u64,
    },
    /// Write the self-contained export (JSON Lines) of a log directory, or of a log in NATS
    /// JetStream (nats://HOST:PORT/STREAM/LOG). Example: docket log export log -o log.jsonl
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
        /// A witness whose cosignatures count (its witness.pub, or the key text); repeatable.
        /// The first checkpoint in the log's cosignatures.jsonl that holds the entry and that a
        /// given witness cosigned bounds when it was sealed: "no later than", by that witness.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// The log's public key (a .pub file): the checkpoint's signature is checked with it
        /// before the proof is printed.
        #[arg(long = "pub")]
        public: Option<PathBuf>,
    },
    /// Check, offline, a proof that an entry is in a log, against the log's key: the output
    /// of `docket log prove`, or a server's GET /v1/log/decisions/{id} answer (hashes in hex or
    /// base64). Exit 0 and "proven" if it holds, 1 and "REJECTED" with the reason if not.
    /// Example: docket log check-proof proof.json --pub docket.pub
    CheckProof {
        /// The proof document (JSON); - reads standard input.
        proof: PathBuf,
        /// The log's public key (a .pub file); repeatable, for a log whose key was rotated.
        #[arg(long = "pub", required = true)]
        public: Vec<PathBuf>,
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
        /// Check this machine's clock against a witness's first (<witness key>@<http URL>, as
        /// `docket serve --witness`; repeatable): the witness cosigns the log's latest checkpoint
        /// afresh, and a clock more than two minutes ahead of the witness's refuses the prune.
        /// A clock the witnesses vouch for needs no --idle-log.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
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

pub fn run(cmd: LogCommand) -> Result<i32> {
    match cmd {
        LogCommand::Show { dir, from, count } => {
            let (frames, _) = store::read_frames(&dir)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for bytes in frames
                .iter()
                .filter_map(store::Frame::entry)
                .skip(from as usize)
                .take(count as usize)
            {
                writeln!(out, "{}", entry_line(&decode_entry(bytes)?))?;
            }
            Ok(0)
        }
        LogCommand::Export { dir, output } => export(&dir, output.as_deref()),
        LogCommand::Prove {
            dir,
            seq,
            decision_id,
            witnesses,
            public,
        } => prove(
            &dir,
            seq,
            decision_id.as_deref(),
            &witnesses,
            public.as_deref(),
        ),
        LogCommand::CheckProof { proof, public } => check_proof(&proof, &public),
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
            witnesses,
        } => prune(&dir, &key, public.as_deref(), through, idle_log, &witnesses),
        LogCommand::SplitFork { dir, out } => {
            for history in docket_runtime::fork::split(&dir, &out)? {
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

/// `docket log export`: the self-contained JSON Lines export of every sealed entry.
fn export(dir: &Path, output: Option<&Path>) -> Result<i32> {
    let (frames, torn) = match super::nats::read_frames(dir)? {
        Some(frames) => (frames, None),
        None => store::read_frames(dir)?,
    };
    if torn.is_some() {
        eprintln!("note: the log ends in an unfinished commit; it is left out of the export");
    }
    let mut out: Box<dyn Write> = match output {
        // An export holds every record, unmasked inputs included: owner-only, as the
        // log's segments are.
        Some(p) => Box::new(std::io::BufWriter::new(
            docket_store::private::options()
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
    let record: docket_ledger::record::GenesisRecord = serde_json::from_slice(&genesis.record)?;
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

/// How far ahead of a witness's clock `docket log prune --witness` lets this machine's be.
const WITNESS_CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(120);

/// Has each witness cosign the log's latest checkpoint afresh (keeping the cosignatures in the
/// log's cosignatures.jsonl) and compares this machine's clock with the witness's time: ahead by
/// more than [`WITNESS_CLOCK_SLACK`] is an error that stops the prune. True when every witness
/// vouches for the clock.
fn check_clock_with_witnesses(
    dir: &Path,
    witnesses: &[docket_server::witnessing::WitnessTarget],
    now: std::time::Duration,
) -> Result<bool> {
    let (frames, _) = store::read_frames(dir)?;
    let mut leaves = Vec::new();
    let mut note = None;
    for frame in &frames {
        match frame {
            store::Frame::Entry(bytes) => leaves.push(decode_entry(bytes)?.hash),
            store::Frame::Checkpoint(n) => note = Some(n.clone()),
        }
    }
    let note = note.ok_or_else(|| anyhow!("{} has no checkpoint yet", dir.display()))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = docket_server::witnessing::http_client(std::time::Duration::from_secs(10));
    let (mut file, _) =
        store::files::JsonLines::<docket_server::witnessing::StoredCosignature>::open(
            &dir.join("cosignatures.jsonl"),
        )?;
    for target in witnesses {
        let name = target.key.name();
        let (time, stored) = tokio
            .block_on(docket_server::witnessing::fresh_cosignature(
                &client, target, &note, &leaves,
            ))
            .map_err(|why| {
                anyhow!(
                    "cannot check this machine's clock against witness {name} ({why}); nothing \
                     was pruned (without --witness the prune trusts this clock alone)"
                )
            })?;
        file.append(&[stored])?;
        let witness_time = std::time::Duration::from_secs(time);
        if now > witness_time + WITNESS_CLOCK_SLACK {
            bail!(
                "this machine's clock reads {}, {} s ahead of witness {name}'s ({}): retention \
                 would be judged too early; set the clock right; nothing was pruned",
                docket_ledger::record::rfc3339(now.as_nanos() as u64),
                (now - witness_time).as_secs(),
                docket_ledger::record::rfc3339_seconds(time)
            );
        }
        println!(
            "clock checked against witness {name}: it reads {} (this machine: {})",
            docket_ledger::record::rfc3339_seconds(time),
            docket_ledger::record::rfc3339(now.as_nanos() as u64)
        );
    }
    Ok(true)
}

/// How far past a log's newest entry `docket log prune` trusts the clock without `--idle-log`.
const PRUNE_CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(86_400);

fn prune(
    dir: &Path,
    key: &Path,
    public: Option<&Path>,
    through: Option<u64>,
    idle_log: bool,
    witnesses: &[String],
) -> Result<i32> {
    let witnesses = witnesses
        .iter()
        .map(|w| docket_server::witnessing::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>>>()?;
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
    let now = docket_runtime::clock::SteadyClock::now();
    let vouched = !witnesses.is_empty() && check_clock_with_witnesses(dir, &witnesses, now)?;
    let newest = std::time::Duration::from_nanos(report.last_timestamp_ns);
    if !idle_log && !vouched && now > newest + PRUNE_CLOCK_SLACK {
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
    // The value is JSON text, as it stood in the input: a bare word is a mistake in the
    // command, not a wrong value, and must not be answered "not proved".
    if serde_json::from_str::<serde_json::Value>(value).is_err() {
        bail!(
            "--value {value:?} is not JSON text; give the masked value as it stood in the input, \
             a string with its quotes: --value '\"{value}\"'"
        );
    }
    let genesis = read_public_key(public)?;
    let (frames, _) = store::read_frames(dir)?;
    let runtime = load_runtime()?;
    let mut instance = runtime.instantiate()?;
    // The whole log first: a value proved against an entry of a tampered log proves nothing.
    let report = verify_frames(&mut instance, &genesis, &frames, None, |_| {})
        .verdict()?
        .map_err(|e| {
            anyhow!(
                "the log does not verify ({}); nothing in it can be proved",
                e
            )
        })?;
    let entry = entry_at(&frames, seq)?.ok_or_else(|| {
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
        (Some(text), _) => docket_store::salts::decode_salt(text)?,
        (None, Some(file)) => docket_store::salts::find(file, seq, &entry.hash.to_hex(), pointer)?,
        (None, None) => bail!("give --salt or --salts"),
    };
    match instance
        .check_reveal(&entry.record, pointer, value, &salt)
        .verdict()?
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

fn prove(
    dir: &Path,
    seq: Option<u64>,
    decision_id: Option<&str>,
    witnesses: &[String],
    public: Option<&Path>,
) -> Result<i32> {
    let witnesses = witnesses
        .iter()
        .map(|k| super::verify::read_cosigner_key(k))
        .collect::<Result<Vec<_>>>()?;
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
    let mut instance = runtime.instantiate()?;
    instance
        .verify_inclusion(
            &leaves[index].0,
            index as u64,
            size as u64,
            &proof_bytes,
            &signed.checkpoint.root.0,
        )
        .map_err(|e| anyhow!("the computed proof does not verify: {e}"))?;
    let mut out = serde_json::json!({
        "seq": index,
        "entry_hash": leaves[index].to_hex(),
        "tree_size": size,
        "root": signed.checkpoint.root.to_hex(),
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "checkpoint": note,
    });
    // With the key, the proof is checked as a stranger would check it before it is printed.
    if let Some(public) = public {
        let key = read_public_key(public)?;
        let proven = docket_ledger::proof::ProofClaim::from_json(&out)
            .and_then(|claim| claim.check(std::slice::from_ref(&key)))
            .map_err(|why| {
                anyhow!(
                    "the proof does not hold against {}: {why}",
                    public.display()
                )
            })?;
        out["signed_by"] = proven.signed_by.into();
    }
    if !witnesses.is_empty() {
        let all: Vec<docket_ledger::Hash> = entries.iter().map(|e| e.hash).collect();
        out["witnessed"] = witnessed_bound(dir, &all, index, &witnesses)?;
    }
    println!("{out}");
    Ok(0)
}

/// `docket log check-proof`: a proof document checked offline against the log's key(s).
fn check_proof(proof: &Path, public: &[PathBuf]) -> Result<i32> {
    let text = if proof == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read_to_string(proof).with_context(|| format!("reading {}", proof.display()))?
    };
    let document: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not JSON ({e}): give the output of `docket log prove` or a server's \
             /v1/log/decisions/{{id}} answer",
            proof.display()
        )
    })?;
    let keys = public
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let verdict = docket_ledger::proof::ProofClaim::from_json(&document)
        .map_err(|why| format!("the proof document cannot be read: {why}"))
        .and_then(|claim| claim.check(&keys));
    match verdict {
        Ok(proven) => {
            println!(
                "proven: entry {} ({}) is in the tree of {} entries of log {}, whose checkpoint is signed by {}{}",
                proven.seq,
                proven.entry_hash.to_hex(),
                proven.tree_size,
                proven.origin,
                proven.signed_by,
                if proven.entry_checked {
                    "; the entry's bytes hash to it"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        Err(why) => {
            println!("REJECTED: {why}");
            Ok(1)
        }
    }
}

/// The first checkpoint holding entry `index` that one of `witnesses` cosigned, as found in the
/// log's cosignatures.jsonl and checked against the log itself: who cosigned it when (the
/// earliest time is the bound), and the entry's inclusion proof in it. `null` when no given
/// witness has cosigned a checkpoint that holds the entry.
fn witnessed_bound(
    dir: &Path,
    leaves: &[docket_ledger::Hash],
    index: usize,
    witnesses: &[docket_ledger::CosignerKey],
) -> Result<serde_json::Value> {
    let stored = store::files::JsonLines::<docket_server::witnessing::StoredCosignature>::read(
        &dir.join("cosignatures.jsonl"),
    )?;
    let mut best: Option<(
        docket_ledger::Checkpoint,
        Vec<docket_ledger::cosignature::Cosigned>,
    )> = None;
    for line in stored {
        let Ok(note) = docket_ledger::SignedCheckpoint::parse(&format!(
            "{}\n{}\n",
            line.checkpoint, line.cosignature
        )) else {
            continue;
        };
        let size = note.checkpoint.size as usize;
        if size <= index || size > leaves.len() {
            continue;
        }
        let cosigned = note.cosignatures(witnesses);
        if cosigned.is_empty() {
            continue;
        }
        match &mut best {
            Some((c, _)) if c.size == note.checkpoint.size && c.root != note.checkpoint.root => {
                bail!(
                    "given witnesses cosigned two different roots for tree size {}: the log forked, \
                     or a witness is dishonest",
                    c.size
                )
            }
            Some((c, list)) if c.size == note.checkpoint.size => {
                for found in cosigned {
                    if !list.iter().any(|have| have.witness == found.witness) {
                        list.push(found);
                    }
                }
            }
            Some((c, _)) if c.size < note.checkpoint.size => {}
            _ => best = Some((note.checkpoint, cosigned)),
        }
    }
    let Some((checkpoint, cosigned)) = best else {
        return Ok(serde_json::Value::Null);
    };
    let size = checkpoint.size as usize;
    if docket_ledger::merkle::root(&leaves[..size]) != checkpoint.root {
        bail!(
            "{} holds a cosigned root for tree size {size} that this log does not have: the log \
             was rewritten after it was witnessed (docket verify --witness says more)",
            dir.join("cosignatures.jsonl").display()
        );
    }
    let time = |t: u64| docket_ledger::record::rfc3339_seconds(t);
    let proof = docket_ledger::merkle::inclusion_proof(&leaves[..checkpoint.size as usize], index)
        .expect("index within the tree");
    Ok(serde_json::json!({
        "tree_size": checkpoint.size,
        "root": checkpoint.root.to_hex(),
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "cosignatures": cosigned.iter().map(|c| serde_json::json!({
            "witness": c.witness,
            "time": time(c.timestamp),
        })).collect::<Vec<_>>(),
        "no_later_than": cosigned.iter().map(|c| c.timestamp).min().map(time),
    }))
}
