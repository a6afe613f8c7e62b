//! `docket witness`: witness other logs (C2SP tlog-witness); see `docket_server::witness`.

use anyhow::{Context, Result, anyhow, bail};
use docket_ledger::PublicKey;
use docket_ledger::cosignature::CosignerKey;
use docket_ledger::witness::WitnessedLog;
use docket_runtime::log::{fresh_name, read_public_key, read_secret_key, write_new_key};
use docket_server as serve;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct WitnessArgs {
    /// Address to listen on (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:7380")]
    addr: std::net::SocketAddr,
    /// The witness's directory: its key (witness.key, created on the first start; witness.pub
    /// holds the key logs and verifiers configure), the latest checkpoint it cosigned per log
    /// (state.json) and what it refused as misbehaviour (misbehaviour.jsonl).
    #[arg(long, default_value = "docket-witness")]
    dir: PathBuf,
    /// The witness's name in its cosignatures, for a new key. Default:
    /// docket.witness/<12 random hex digits>.
    #[arg(long)]
    name: Option<String>,
    /// A log to witness: its checkpoint key (a .pub file or the key text), as KEY (the origin
    /// is the key's name, as for logs docket creates) or ORIGIN=KEY; repeatable, and repeat an
    /// origin to accept each of its keys (after a rotation).
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
}

/// A log's checkpoint key: a verifier key text, or a file holding one.
fn log_key(text: &str) -> Result<PublicKey> {
    if let Ok(key) = PublicKey::from_vkey(text) {
        return Ok(key);
    }
    let path = Path::new(text);
    if path.exists() {
        return read_public_key(path);
    }
    bail!("--log {text:?} is neither a log's public key (name+id+base64) nor a .pub file")
}

fn parse_logs(specs: &[String]) -> Result<Vec<WitnessedLog>> {
    let mut logs: Vec<WitnessedLog> = Vec::new();
    for spec in specs {
        // An origin has no '=' before the key; a key text has none either (33 bytes of base64
        // need no padding), but a file path might, so the origin form is tried first.
        let (origin, key) = match spec.split_once('=') {
            Some((origin, key)) if log_key(key).is_ok() => (origin.to_string(), log_key(key)?),
            _ => {
                let key = log_key(spec)?;
                (key.name().to_string(), key)
            }
        };
        docket_ledger::sealer::check_origin(&origin).map_err(|e| anyhow!("--log: {e}"))?;
        match logs.iter_mut().find(|l| l.origin == origin) {
            Some(log) => log.keys.push(key),
            None => logs.push(WitnessedLog {
                origin,
                keys: vec![key],
            }),
        }
    }
    Ok(logs)
}

pub fn run(args: WitnessArgs) -> Result<i32> {
    super::init_tracing();
    let logs = parse_logs(&args.logs)?;
    docket_store::private::create_dir_all(&args.dir)?;
    let key_path = args.dir.join("witness.key");
    let key = if key_path.exists() {
        if args.name.is_some() {
            bail!(
                "{} already holds this witness's key; --name only names a new key",
                key_path.display()
            );
        }
        read_secret_key(&key_path)?
    } else {
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| fresh_name("docket.witness"));
        let key = write_new_key(&args.dir, "witness", &name)?;
        // The .pub a log or verifier configures is the cosigner key (type 0x04), not the
        // note-signing form write_new_key wrote.
        std::fs::write(
            args.dir.join("witness.pub"),
            format!("{}\n", CosignerKey::of(key.public()).to_vkey()),
        )
        .context("writing witness.pub")?;
        key
    };
    let cosigner = CosignerKey::of(key.public());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async move {
        let server = serve::witness::start(serve::witness::WitnessConfig {
            addr: args.addr,
            dir: args.dir.clone(),
            key,
            logs: logs.clone(),
            limits: serve::http::Limits::default(),
        })
        .await?;
        // Tests and scripts wait for the listening line.
        println!("docket witness: key {}", cosigner.to_vkey());
        for log in &logs {
            println!("docket witness: following {}", log.origin);
        }
        println!("docket witness: listening on http://{}", server.addr);
        std::io::stdout().flush()?;
        server.wait().await?;
        Ok(0)
    })
}
