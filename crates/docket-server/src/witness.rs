//! `docket witness`: a C2SP `tlog-witness` server, so organisations can witness each other's logs.
//!
//! It follows the logs it is configured with (origin and verifier keys), cosigns a checkpoint only
//! if it is consistent with the latest one it cosigned for that log (`cosignature/v1`, its own
//! Ed25519 key), and keeps, per log, only that latest checkpoint. The decision is
//! `docket_ledger::witness::decide`; this module adds the state on disk and HTTP.
//!
//! **Architecture invariant:** the check and the update are one step. A single lock is held from
//! reading a log's state to fsyncing the new one, and the cosignature is sent only after that
//! fsync: two requests can never both pass the check against the same old state (which would
//! let the second roll the first back), and a crash never leaves a cosignature the witness does
//! not remember.
//!
//! Files in its directory: `witness.key` (its signing key), `state.json` (origin → latest
//! cosigned checkpoint, replaced atomically), `misbehaviour.jsonl` (every signed checkpoint that
//! contradicted a cosigned one, appended and fsync'd before the refusal is sent).

use crate::http::Limits;
use crate::metrics::Metrics;
use crate::{Server, ShutdownSignals, http};
use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use docket_ledger::cosignature::CosignerKey;
use docket_ledger::witness::{AddCheckpoint, Answer, LogState, Misbehaviour, WitnessedLog, decide};
use docket_ledger::{SecretKey, SignedCheckpoint};
use docket_store::files::{JsonLines, read_json, write_json_atomically};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An `add-checkpoint` body is a few hundred bytes: 63 proof lines and a note with a handful of
/// signatures fit in far less than this.
const MAX_REQUEST: usize = 64 << 10;

pub struct WitnessConfig {
    pub addr: SocketAddr,
    /// Holds `state.json` and `misbehaviour.jsonl`.
    pub dir: PathBuf,
    pub key: SecretKey,
    pub logs: Vec<WitnessedLog>,
    pub limits: Limits,
}

/// The witness's memory: the latest cosigned checkpoint per origin, and what it refused as
/// misbehaviour. Only reached under [`Witness::state`]'s lock.
struct Memory {
    dir: PathBuf,
    logs: BTreeMap<String, LogState>,
    misbehaviour: JsonLines<Misbehaviour>,
    /// Offered checkpoints already in `misbehaviour.jsonl` (a log retrying is recorded once).
    recorded: HashSet<(String, String)>,
    _lock: std::fs::File,
}

impl Memory {
    fn open(dir: &Path) -> Result<Memory> {
        docket_store::private::create_dir_all(dir)?;
        let lock = docket_store::take_lock(dir)?;
        let logs = read_json(&dir.join("state.json"))?.unwrap_or_default();
        let (misbehaviour, seen) =
            JsonLines::<Misbehaviour>::open(&dir.join("misbehaviour.jsonl"))?;
        Ok(Memory {
            dir: dir.to_path_buf(),
            logs,
            misbehaviour,
            recorded: seen.into_iter().map(|m| (m.kind, m.offered)).collect(),
            _lock: lock,
        })
    }

    /// Makes `state` the log's latest cosigned checkpoint, durably, or changes nothing.
    fn remember(&mut self, origin: &str, state: LogState) -> Result<()> {
        let mut next = self.logs.clone();
        next.insert(origin.to_string(), state);
        write_json_atomically(&self.dir.join("state.json"), &next)?;
        self.logs = next;
        Ok(())
    }

    fn record(&mut self, evidence: &Misbehaviour) -> Result<()> {
        let key = (evidence.kind.clone(), evidence.offered.clone());
        if self.recorded.contains(&key) {
            return Ok(());
        }
        self.misbehaviour.append(std::slice::from_ref(evidence))?;
        self.recorded.insert(key);
        Ok(())
    }
}

struct Witness {
    key: SecretKey,
    cosigner: CosignerKey,
    logs: Vec<WitnessedLog>,
    state: Mutex<Memory>,
}

/// Opens the witness's directory (locking it), binds and serves until `stop` or a signal.
pub async fn start(config: WitnessConfig) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another server running there? Choose another with --addr",
                config.addr
            )
        })?;
    let memory = Memory::open(&config.dir)?;
    let witness = Arc::new(Witness {
        cosigner: CosignerKey::of(config.key.public()),
        key: config.key,
        logs: config.logs,
        state: Mutex::new(memory),
    });
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/checkpoint", get(latest))
        .route("/misbehaviour", get(misbehaviour))
        .route("/", get(about))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(Arc::clone(&witness));
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let signals = ShutdownSignals::arm()?;
    let metrics = Arc::new(Metrics::new());
    let limits = config.limits;
    let task = tokio::spawn(async move {
        http::serve(listener, app, limits, metrics, async move {
            tokio::select! {
                _ = stopped => {}
                _ = signals.received() => {}
            }
        })
        .await;
        Ok(())
    });
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    body.push('\n');
    text(status, "text/plain; charset=utf-8", body)
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return plain(StatusCode::BAD_REQUEST, "the request body is not UTF-8");
    };
    let request = match AddCheckpoint::parse(&body) {
        Ok(request) => request,
        Err(why) => return plain(StatusCode::BAD_REQUEST, why),
    };
    let decided = tokio::task::spawn_blocking(move || decide_and_remember(&witness, &request))
        .await
        .map_err(|e| anyhow!("{e}"))
        .and_then(|r| r);
    match decided {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "the witness could not persist its state"
            );
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the witness could not record its state, so it cosigned nothing: {e:#}"),
            )
        }
    }
}

/// Decides under the lock and persists before answering (the module's invariant).
fn decide_and_remember(witness: &Witness, request: &AddCheckpoint) -> Result<Response> {
    let mut memory = witness
        .state
        .lock()
        .map_err(|_| anyhow!("state lock poisoned"))?;
    let origin = docket_ledger::witness::request_origin(request).unwrap_or_default();
    let answer = decide(
        &witness.logs,
        memory.logs.get(&origin),
        request,
        now_seconds(),
        &witness.key,
    );
    if let Some(evidence) = answer.evidence() {
        tracing::warn!(
            origin,
            kind = evidence.kind,
            detail = evidence.detail,
            "misbehaviour"
        );
        memory.record(evidence)?;
    }
    Ok(match answer {
        Answer::Cosigned { state, signature } => {
            tracing::info!(origin, size = state.size, "cosigned");
            memory.remember(&origin, state)?;
            text(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                signature.line(),
            )
        }
        Answer::Conflict { size, why, .. } => {
            tracing::info!(origin, size, why, "conflict");
            text(
                StatusCode::CONFLICT,
                "text/x.tlog.size",
                format!("{size}\n"),
            )
        }
        Answer::BadProof { why, .. } => plain(StatusCode::UNPROCESSABLE_ENTITY, why),
        Answer::UnknownLog(why) => plain(StatusCode::NOT_FOUND, why),
        Answer::Unsigned(why) => plain(StatusCode::FORBIDDEN, why),
        Answer::BadRequest(why) => plain(StatusCode::BAD_REQUEST, why),
    })
}

#[derive(Deserialize)]
struct OriginQuery {
    origin: String,
}

/// `GET /checkpoint?origin=O`: the latest checkpoint cosigned for the log, with the log's
/// signatures and this witness's cosignature (the same bytes it answered with: Ed25519 is
/// deterministic and the state keeps the time), for monitors and verifiers.
async fn latest(State(witness): State<Arc<Witness>>, Query(q): Query<OriginQuery>) -> Response {
    let state = {
        let memory = witness.state.lock().expect("state lock");
        memory.logs.get(&q.origin).cloned()
    };
    let Some(state) = state else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("this witness has cosigned no checkpoint of {:?}", q.origin),
        );
    };
    let Ok(note) = SignedCheckpoint::parse(&state.checkpoint) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored checkpoint does not parse",
        );
    };
    let cosignature = docket_ledger::cosignature::cosign(&witness.key, &note.text, state.timestamp);
    match note.with_signatures(&[cosignature]) {
        Ok(body) => text(StatusCode::OK, "text/plain; charset=utf-8", body),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /misbehaviour`: every contradicting checkpoint this witness refused, as JSON.
async fn misbehaviour(State(witness): State<Arc<Witness>>) -> Response {
    let path = witness
        .state
        .lock()
        .expect("state lock")
        .dir
        .join("misbehaviour.jsonl");
    match JsonLines::<Misbehaviour>::read(&path) {
        Ok(list) => axum::Json(json!({"misbehaviour": list})).into_response(),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// `GET /`: who this witness is and what it follows.
async fn about(State(witness): State<Arc<Witness>>) -> Response {
    let memory = witness.state.lock().expect("state lock");
    let logs: Vec<_> = witness
        .logs
        .iter()
        .map(|log| {
            let state = memory.logs.get(&log.origin);
            json!({
                "origin": log.origin,
                "keys": log.keys.iter().map(|k| k.to_vkey()).collect::<Vec<_>>(),
                "size": state.map(|s| s.size),
                "cosigned_at": state.map(|s| s.timestamp),
            })
        })
        .collect();
    axum::Json(json!({
        "witness": witness.cosigner.to_vkey(),
        "logs": logs,
    }))
    .into_response()
}
