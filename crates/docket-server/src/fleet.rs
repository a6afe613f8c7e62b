//! The fleet's logs as one read API (`docket serve --nats`): every log in the node's JetStream
//! stream, its peers' followed from the stream and its own as its appender holds it, served
//! under `/v1/fleet`: the list of logs, a decision looked up by id in whichever log holds it,
//! and for each log its checkpoint, entries, inclusion and consistency proofs and C2SP tiles,
//! in the shapes of the node's own `/v1/log` API (docs/api.md, "The fleet").
//!
//! What is served of a peer's log is read from the stream, not verified by this node: a client checks the
//! proofs against the log's signed checkpoint and the log's key, as for any docket log, and
//! `docket verify nats://…` verifies a whole log. A log whose bytes do not scan is listed as
//! damaged and no longer followed.

use crate::appender::LogView;
use crate::log_api::{self, ConsistencyQuery, InclusionQuery, LogSource};
use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use docket_store::Frame;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How often the stream is read for new commits of every log.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// One log of the fleet, as far as it has been read: whole commits only.
pub struct FleetLog {
    view: RwLock<LogView>,
    entries: RwLock<Vec<Vec<u8>>>,
}

impl LogSource for FleetLog {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, LogView> {
        self.view.read().expect("fleet view lock")
    }

    fn entry(&self, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .entries
            .read()
            .expect("fleet entries lock")
            .get(seq as usize)
            .cloned())
    }
}

/// Where reading a log stopped.
#[derive(Default)]
struct Cursor {
    /// Bytes read after the last whole commit.
    pending: Vec<u8>,
    /// The stream sequence of the last message read.
    last_sequence: u64,
}

/// Every log of the stream, followed.
pub struct Fleet {
    stream: String,
    own: String,
    logs: RwLock<BTreeMap<String, Arc<FleetLog>>>,
    /// Logs whose bytes do not scan, and why; they are no longer followed.
    damaged: RwLock<BTreeMap<String, String>>,
}

impl Fleet {
    pub fn new(location: &docket_nats::Location) -> Fleet {
        Fleet {
            stream: location.stream.clone(),
            own: location.log.clone(),
            logs: RwLock::new(BTreeMap::new()),
            damaged: RwLock::new(BTreeMap::new()),
        }
    }

    fn log(&self, name: &str) -> Option<Arc<FleetLog>> {
        self.logs.read().expect("fleet lock").get(name).cloned()
    }

    /// Reads what each log of the stream gained since the last refresh (blocking).
    fn refresh(
        &self,
        js: &docket_nats::JetStreamLog,
        cursors: &mut HashMap<String, Cursor>,
    ) -> anyhow::Result<()> {
        for name in js.logs()? {
            // The node's own log is served from its verified copy, not read a second time.
            if name == self.own || self.damaged.read().expect("fleet lock").contains_key(&name) {
                continue;
            }
            let cursor = cursors.entry(name.clone()).or_default();
            let (bytes, last) = js.read_log_after(&name, cursor.last_sequence)?;
            cursor.last_sequence = last;
            if bytes.is_empty() {
                continue;
            }
            cursor.pending.extend_from_slice(&bytes);
            let (frames, used, problem) = docket_store::scan_segment(&cursor.pending);
            if let Some(problem) = problem.filter(|_| used < cursor.pending.len()) {
                // Atomic batches end every subject at a commit's end: bytes that do not scan
                // are damage, not an unfinished commit.
                tracing::error!(log = %name, "a log of the fleet is damaged in JetStream: {problem}");
                self.damaged.write().expect("fleet lock").insert(
                    name.clone(),
                    format!("damaged at byte {used} of what was read: {problem}"),
                );
                continue;
            }
            // Whole commits only: up to the last checkpoint frame.
            let Some(last_checkpoint) = frames
                .iter()
                .rposition(|f| matches!(f, Frame::Checkpoint(_)))
            else {
                continue;
            };
            let whole = &frames[..=last_checkpoint];
            let consumed: usize = whole.iter().map(Frame::encoded_len).sum();
            let log = self
                .logs
                .write()
                .expect("fleet lock")
                .entry(name.clone())
                .or_insert_with(|| {
                    Arc::new(FleetLog {
                        view: RwLock::new(LogView::from_frames(&[]).expect("an empty view")),
                        entries: RwLock::new(Vec::new()),
                    })
                })
                .clone();
            {
                let mut entries = log.entries.write().expect("fleet entries lock");
                let mut view = log.view.write().expect("fleet view lock");
                if let Err(e) = view.extend(whole) {
                    drop(view);
                    self.damaged
                        .write()
                        .expect("fleet lock")
                        .insert(name.clone(), format!("{e:#}"));
                    continue;
                }
                entries.extend(whole.iter().filter_map(|f| f.entry().map(<[u8]>::to_vec)));
            }
            cursor.pending.drain(..consumed);
        }
        Ok(())
    }
}

/// Follows the stream's logs for as long as the server holds the JetStream connection.
pub fn start(fleet: Arc<Fleet>, js: Weak<docket_nats::JetStreamLog>) {
    tokio::spawn(async move {
        let mut cursors = HashMap::new();
        loop {
            let Some(log) = js.upgrade() else { return };
            let fleet2 = Arc::clone(&fleet);
            let outcome = tokio::task::spawn_blocking(move || {
                let refreshed = fleet2.refresh(&log, &mut cursors);
                (refreshed, cursors)
            })
            .await;
            let Ok((refreshed, back)) = outcome else {
                return;
            };
            cursors = back;
            if let Err(e) = refreshed {
                tracing::warn!(error = %format!("{e:#}"), "reading the fleet's logs from JetStream failed; retrying");
            }
            tokio::time::sleep(REFRESH_INTERVAL).await;
        }
    });
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/fleet", get(list))
        .route("/v1/fleet/decisions/{id}", get(decision))
        .route("/v1/fleet/logs/{log}/checkpoint", get(checkpoint))
        .route("/v1/fleet/logs/{log}/entries/{seq}", get(entry))
        .route("/v1/fleet/logs/{log}/proof/inclusion", get(inclusion))
        .route("/v1/fleet/logs/{log}/proof/consistency", get(consistency))
        .route("/v1/fleet/logs/{log}/tile/{*rest}", get(tile))
}

type AppResult<T> = Result<T, ApiError>;

fn fleet(state: &AppState) -> AppResult<&Arc<Fleet>> {
    state.fleet.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "this server keeps its log in a directory, not in NATS JetStream: the fleet API \
             serves the logs of a stream (docket serve --nats)",
        )
    })
}

/// Log `name` of the fleet: the node's own, as its appender holds it, or a peer's as read.
fn fleet_log(state: &Arc<AppState>, name: &str) -> AppResult<Arc<dyn LogSource>> {
    let fleet = fleet(state)?;
    if name == fleet.own {
        return Ok(Arc::clone(state) as Arc<dyn LogSource>);
    }
    if let Some(why) = fleet.damaged.read().expect("fleet lock").get(name) {
        return Err(ApiError::internal(format!("the log {name} is {why}")));
    }
    match fleet.log(name) {
        Some(log) => Ok(log as Arc<dyn LogSource>),
        None => Err(ApiError::not_found(format!(
            "stream {} holds no log {name} (yet): GET /v1/fleet lists them",
            fleet.stream
        ))),
    }
}

/// Every log of the fleet read so far, the node's own included, by name.
fn all_logs(state: &Arc<AppState>, fleet: &Fleet) -> BTreeMap<String, Arc<dyn LogSource>> {
    let mut logs: BTreeMap<String, Arc<dyn LogSource>> = fleet
        .logs
        .read()
        .expect("fleet lock")
        .iter()
        .map(|(n, l)| (n.clone(), Arc::clone(l) as Arc<dyn LogSource>))
        .collect();
    logs.insert(fleet.own.clone(), Arc::clone(state) as Arc<dyn LogSource>);
    logs
}

async fn list(State(state): State<Arc<AppState>>) -> AppResult<Response> {
    let fleet = fleet(&state)?;
    let mut logs: Vec<Value> = all_logs(&state, fleet)
        .iter()
        .map(|(name, log)| {
            let view = log.view();
            json!({
                "log": name,
                "own": *name == fleet.own,
                "origin": view.checkpoint.lines().next().unwrap_or(""),
                "size": view.checkpoint_size,
                "checkpoint": view.checkpoint,
            })
        })
        .collect();
    for (name, why) in fleet.damaged.read().expect("fleet lock").iter() {
        logs.push(json!({ "log": name, "own": false, "damaged": why }));
    }
    Ok(axum::Json(json!({ "stream": fleet.stream, "logs": logs })).into_response())
}

async fn decision(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let fleet = fleet(&state)?;
    for (name, log) in all_logs(&state, fleet) {
        let seq = log.view().decision_ids.get(&id).copied();
        if let Some(seq) = seq {
            let mut out = log_api::decision_json(&*log, &id, seq)?;
            out["log"] = json!(name);
            return Ok(axum::Json(out).into_response());
        }
    }
    Err(ApiError::not_found(format!(
        "no decision with id {id} is in any log of stream {} read so far",
        fleet.stream
    )))
}

async fn checkpoint(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> AppResult<Response> {
    let log = fleet_log(&state, &name)?;
    let note = log.view().checkpoint.clone();
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

async fn entry(
    State(state): State<Arc<AppState>>,
    Path((name, seq)): Path<(String, u64)>,
) -> AppResult<Response> {
    let log = fleet_log(&state, &name)?;
    let (bytes, entry) = log_api::read_entry(&*log, seq)?
        .ok_or_else(|| ApiError::not_found(format!("the log {name} has no entry {seq} yet")))?;
    Ok(axum::Json(log_api::entry_json(&bytes, &entry)).into_response())
}

async fn inclusion(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<InclusionQuery>,
) -> AppResult<Response> {
    let log = fleet_log(&state, &name)?;
    Ok(axum::Json(log_api::inclusion_json(&*log, &q)?).into_response())
}

async fn consistency(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<ConsistencyQuery>,
) -> AppResult<Response> {
    let log = fleet_log(&state, &name)?;
    Ok(axum::Json(log_api::consistency_json(&*log, &q)?).into_response())
}

async fn tile(
    State(state): State<Arc<AppState>>,
    Path((name, rest)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> AppResult<Response> {
    let log = fleet_log(&state, &name)?;
    log_api::tile_response(log, &rest, &headers).await
}
