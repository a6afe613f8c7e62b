//! `docket demo`: the main job on embedded defaults.

use super::{entry_at, instance_id, load_runtime};
use anyhow::{Result, anyhow, bail};
use docket_runtime::log::{AuditLog, NewLog, fresh_name, hex, verify_frames, write_new_key};
use docket_runtime::{self as runtime, Verdict};
use docket_server as serve;
use docket_server::examples::{HEALTH, Requests};
use docket_store as store;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where to keep the key and the log (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of generated requests.
    #[arg(long, default_value_t = 5000)]
    count: u64,
    /// Entries per group commit (one checkpoint and one fsync each).
    #[arg(long, default_value_t = 256)]
    batch: usize,
}

pub fn run(args: DemoArgs) -> Result<i32> {
    demo(args.dir, args.count, args.batch)
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
    let (runtime, key, mut log) = start_log(&dir)?;

    let sealing = Instant::now();
    let run = seal_requests(&mut log, count, batch)?;
    let Run {
        allowed,
        denied,
        dropped,
        commits,
        masked_example,
    } = run;
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
    let mut instance = runtime.instantiate()?;
    let report = verify_frames(&mut instance, key.public(), &frames, None, |_| {})
        .verdict()?
        .map_err(|e| anyhow!("the fresh log does not verify: {e}"))?;
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

    if let Some((seq, ip)) = &masked_example {
        show_masking(&mut instance, &frames, &dir, *seq, ip)?;
    }

    let tampered = tamper_copy(&runtime, &dir, key.public(), entries / 2)?;

    println!();
    println!(
        "summary: {count} requests ({allowed} allowed, {denied} denied, {dropped} health checks dropped by the logging rules) at {:.0} decisions/s end to end; log {} KiB in {} entries; verify {:.0} ms; total {:.1} s",
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
        "check it yourself: {} verify {} --pub {}",
        // The binary that ran, which `cargo run` does not put on PATH.
        std::env::current_exe().map_or_else(|_| "docket".into(), |p| p.display().to_string()),
        log_dir.display(),
        pub_path.display()
    );
    Ok(0)
}

/// Loads the component, writes a key pair and starts the log under `dir` with the example
/// policies recorded, as `docket serve` loads and records them.
fn start_log(dir: &Path) -> Result<(runtime::Runtime, docket_ledger::SecretKey, AuditLog)> {
    let log_dir = dir.join("log");
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
    let key = write_new_key(dir, "demo", &fresh_name("docket.demo"))?;
    let salt_path = dir.join("mask-salts.jsonl");
    println!(
        "  key: {} (secret, 0600) and demo.pub",
        dir.join("demo.key").display()
    );

    let new = NewLog {
        origin: None,
        signing: runtime::SigningMode::Checkpoint,
        instance_id: &instance_id(),
        replica: None,
    };
    let mut log = AuditLog::open_or_create(&log_dir, &runtime, key.public(), &key, &new)?.log;
    log.keep_salts_in(docket_store::salts::SaltFile::open(&salt_path)?);
    let set = serve::load_policy_set(&[], None)?;
    let version = set.load_into(log.instance())?;
    log.record(
        runtime::EntryKind::PolicyChange,
        &serve::load_record(&set, &version),
    )?;
    log.commit()?;
    println!(
        "  policies: rbac.rego, abac.rego with data, health.rego, and the logging rules system-log.rego (mask the request's address, drop health checks); version {}",
        version.digest
    );
    Ok((runtime, key, log))
}

/// What sealing the generated requests gave.
#[derive(Default)]
struct Run {
    allowed: u64,
    denied: u64,
    /// Health checks, dropped by the logging rules and counted in tally entries.
    dropped: u64,
    commits: u64,
    /// The first masked decision, to reveal after the run: (seq, the address masked out).
    masked_example: Option<(u64, String)>,
}

/// Decides, seals and appends `count` generated requests, committing every `batch`.
fn seal_requests(log: &mut AuditLog, count: u64, batch: usize) -> Result<Run> {
    let mut requests = Requests::new(2026);
    let mut run = Run::default();
    for i in 0..count {
        // One request in ten is a liveness probe, which the logging rules drop.
        let sealed = if i % 10 == 9 {
            log.decide(HEALTH.path, None)?
        } else {
            let (path, input) = requests.next_request();
            let sealed = log.decide(path, Some(&input))?;
            if let (None, Some(entry)) = (&run.masked_example, &sealed.entry) {
                let ip =
                    serde_json::from_str::<serde_json::Value>(&input)?["context"]["ip"].clone();
                if !ip.is_null() {
                    run.masked_example = Some((entry.seq, ip.to_string()));
                }
            }
            sealed
        };
        match (&sealed.entry, sealed.result.as_deref()) {
            (None, _) => run.dropped += 1,
            (Some(_), Some("true")) => run.allowed += 1,
            (Some(_), _) => run.denied += 1,
        }
        if ((i + 1) as usize).is_multiple_of(batch) {
            log.commit()?;
            run.commits += 1;
        }
    }
    log.commit()?;
    run.commits += 1;
    Ok(run)
}

/// Shows that the masked address is not in the log, only a commitment its salt proves.
fn show_masking(
    instance: &mut runtime::Instance,
    frames: &[store::Frame],
    dir: &Path,
    seq: u64,
    ip: &str,
) -> Result<()> {
    let log_dir = dir.join("log");
    let salt_path = dir.join("mask-salts.jsonl");
    let entry = entry_at(frames, seq)?.ok_or_else(|| anyhow!("entry {seq} is missing"))?;
    let salt =
        docket_store::salts::find(&salt_path, seq, &entry.hash.to_hex(), "/input/context/ip")?;
    let right = instance
        .check_reveal(&entry.record, "/input/context/ip", ip, &salt)
        .verdict()?;
    let wrong = instance
        .check_reveal(&entry.record, "/input/context/ip", "\"10.0.0.1\"", &salt)
        .verdict()?;
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
    Ok(())
}

/// Copies the log and flips one byte inside the record of entry `target_seq`, then shows the
/// verifier catching it; returns the copy's directory.
fn tamper_copy(
    runtime: &runtime::Runtime,
    dir: &Path,
    key: &docket_ledger::PublicKey,
    target_seq: u64,
) -> Result<PathBuf> {
    let tampered = dir.join("tampered");
    copy_dir(&dir.join("log"), &tampered)?;
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
    let mut instance = runtime.instantiate()?;
    match verify_frames(&mut instance, key, &frames, None, |_| {}).verdict()? {
        Ok(_) => bail!("tampering went undetected; this is a bug"),
        Err(e) => println!(
            "  tampered copy ({what} of entry {target_seq} changed, frame checksum fixed up): REJECTED: {}",
            e
        ),
    }

    Ok(tampered)
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
