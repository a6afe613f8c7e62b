//! Reading the log and proving things about it: entries by seq and by decision_id, the latest
//! checkpoint, inclusion and consistency proofs, the genesis key, and C2SP tlog-tiles
//! (`/checkpoint`, `/tile/<L>/<N>`, `/tile/entries/<N>`). Only durable entries are visible.

use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::Entry;
use docket_ledger::record::rfc3339;
use docket_runtime::log::hex;
use docket_wire::{TILE_WIDTH, parse_tile};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;

/// A log this API serves: the node's own, through its appender, or another log of its fleet
/// (`crate::fleet`). Only durable entries are visible in either.
pub(crate) trait LogSource: Send + Sync {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, crate::appender::LogView>;
    /// The encoded entry `seq`, if the log has it.
    fn entry(&self, seq: u64) -> anyhow::Result<Option<Vec<u8>>>;
}

impl LogSource for AppState {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, crate::appender::LogView> {
        self.appender.view()
    }

    fn entry(&self, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
        self.appender.reader().read_entry(seq)
    }
}

/// At most this many entries per `GET /v1/log/entries`.
const MAX_PAGE: u64 = 1000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/log", get(summary))
        .route("/v1/log/entries", get(entries))
        .route("/v1/log/entries/{seq}", get(entry_by_seq))
        .route("/v1/log/entries/{seq}/record", get(record_by_seq))
        .route("/v1/log/decisions/{id}", get(entry_by_decision_id))
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/witnessed", get(witnessed))
        .route("/v1/log/public-key", get(public_key))
        .route("/v1/log/keys", get(keys))
        .route("/v1/log/proof/inclusion", get(inclusion))
        .route("/v1/log/proof/consistency", get(consistency))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*rest}", get(tile))
}

async fn summary(State(state): State<Arc<AppState>>) -> Response {
    let view = state.appender.view();
    axum::Json(json!({
        "size": view.checkpoint_size,
        "checkpoint": view.checkpoint,
        "genesis_key": state.genesis_key,
        "key": view.key_in_force().map_or(state.genesis_key.as_str(), |k| k.vkey.as_str()),
        "policy_version": crate::version_json(&state.pool.current().version),
    }))
    .into_response()
}

pub(crate) fn read_entry(
    log: &(impl LogSource + ?Sized),
    seq: u64,
) -> AppResult<Option<(Vec<u8>, Entry)>> {
    let Some(bytes) = log
        .entry(seq)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?
    else {
        return Ok(None);
    };
    let entry = Entry::decode(&bytes)
        .map_err(|e| ApiError::internal(format!("entry {seq} does not decode: {e}")))?;
    Ok(Some((bytes, entry)))
}

/// Decision `id`, entry `seq` of `log`, with its inclusion proof against the log's latest
/// checkpoint and that checkpoint.
pub(crate) fn decision_json(
    log: &(impl LogSource + ?Sized),
    id: &str,
    seq: u64,
) -> AppResult<Value> {
    let (size, note, proof) = {
        let view = log.view();
        let size = view.checkpoint_size;
        let proof = view
            .tree
            .inclusion_proof(seq, size)
            .expect("an indexed entry is inside the checkpoint");
        (size, view.checkpoint.clone(), proof)
    };
    let (bytes, entry) = read_entry(log, seq)?
        .ok_or_else(|| ApiError::internal(format!("entry {seq} is missing")))?;
    let mut entry = entry_json(&bytes, &entry);
    // A pruned decision has no record left to name it; it was found by the id it had.
    entry["decision_id"] = Value::String(id.to_string());
    Ok(json!({
        "entry": entry,
        "inclusion_proof": {
            "leaf_index": seq,
            "tree_size": size,
            "hashes": proof.iter().map(|h| B64.encode(h.0)).collect::<Vec<_>>(),
        },
        "checkpoint": note,
    }))
}

/// An entry as JSON: its fields, its record as JSON, and its exact encoding in base64.
pub(crate) fn entry_json(bytes: &[u8], entry: &Entry) -> Value {
    let record: Value = match std::str::from_utf8(&entry.record)
        .ok()
        .and_then(|t| RawValue::from_string(t.to_string()).ok())
    {
        Some(raw) => serde_json::to_value(raw).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let mut out = json!({
        "seq": entry.seq,
        "kind": entry.kind.name(),
        "timestamp": rfc3339(entry.timestamp_ns),
        "hash": hex(&entry.hash.0),
        "prev": hex(&entry.prev.0),
        "record": record,
        "encoded": B64.encode(bytes),
    });
    if let Some(id) = record_decision_id(&out["record"]) {
        out["decision_id"] = Value::String(id);
    }
    if let Some(length) = entry.pruned {
        // Pruned under retention (log-format §3.5): the hash stays, the record is gone.
        out["pruned"] = Value::Bool(true);
        out["record_length"] = length.into();
    }
    out
}

fn record_decision_id(record: &Value) -> Option<String> {
    record.get("decision_id")?.as_str().map(str::to_string)
}

#[derive(Deserialize)]
struct Page {
    start: Option<u64>,
    limit: Option<u64>,
}

async fn entries(
    State(state): State<Arc<AppState>>,
    Query(page): Query<Page>,
) -> AppResult<Response> {
    let start = page.start.unwrap_or(0);
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let size = state.appender.view().checkpoint_size;
    let end = start.saturating_add(limit).min(size);
    let state2 = Arc::clone(&state);
    let list = tokio::task::spawn_blocking(move || -> AppResult<Vec<Value>> {
        (start..end)
            .map(|seq| {
                let (bytes, entry) = read_entry(&*state2, seq)?
                    .ok_or_else(|| ApiError::internal(format!("entry {seq} is missing")))?;
                Ok(entry_json(&bytes, &entry))
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("{e}")))??;
    Ok(axum::Json(json!({"size": size, "start": start, "entries": list})).into_response())
}

async fn entry_by_seq(
    State(state): State<Arc<AppState>>,
    Path(seq): Path<u64>,
) -> AppResult<Response> {
    let (bytes, entry) = read_entry(&*state, seq)?
        .ok_or_else(|| ApiError::not_found(format!("the log has no entry {seq} yet")))?;
    Ok(axum::Json(entry_json(&bytes, &entry)).into_response())
}

/// The record's exact bytes: what a client that read a digest-form body (log-format §3.6) from an
/// entry bundle hashes to compare with the SHA-256 the body holds.
async fn record_by_seq(
    State(state): State<Arc<AppState>>,
    Path(seq): Path<u64>,
) -> AppResult<Response> {
    let (_, entry) = read_entry(&*state, seq)?
        .ok_or_else(|| ApiError::not_found(format!("the log has no entry {seq} yet")))?;
    if entry.is_pruned() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "record_pruned",
            format!(
                "entry {seq}'s record was pruned under retention; its hash stays in the log (/v1/log/entries/{seq})"
            ),
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        entry.record,
    )
        .into_response())
}

/// The entry of a decision with its inclusion proof against the latest checkpoint: everything
/// a client needs to check, offline, that the decision it was given is in the log.
async fn entry_by_decision_id(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let seq =
        *state.appender.view().decision_ids.get(&id).ok_or_else(|| {
            ApiError::not_found(format!("no decision with id {id} is in the log"))
        })?;
    let mut out = decision_json(&*state, &id, seq)?;
    // Trusted time: the first witnessed checkpoint holding the entry, with a proof against it.
    if let Some(witnessed) = state.cosignatures.covering(seq) {
        let proof = state
            .appender
            .view()
            .tree
            .inclusion_proof(seq, witnessed.checkpoint.size);
        let mut w = crate::witnessing::witnessed_json(&witnessed);
        w["inclusion_proof"] = json!(
            proof
                .unwrap_or_default()
                .iter()
                .map(|h| B64.encode(h.0))
                .collect::<Vec<_>>()
        );
        out["witnessed"] = w;
    }
    Ok(axum::Json(out).into_response())
}

/// The latest checkpoint, with the cosignatures witnesses have returned for it so far (C2SP:
/// extra signature lines; a client ignores those of witnesses it does not know).
async fn checkpoint(State(state): State<Arc<AppState>>) -> Response {
    let (note, size) = {
        let view = state.appender.view();
        (view.checkpoint.clone(), view.checkpoint_size)
    };
    let note = match (
        state.cosignatures.at(size),
        docket_ledger::SignedCheckpoint::parse(&note),
    ) {
        (Some(witnessed), Ok(signed)) if witnessed.text == signed.text => {
            let extra: Vec<_> = witnessed
                .cosignatures
                .into_iter()
                .map(|(_, _, s)| s)
                .collect();
            signed.with_signatures(&extra).unwrap_or(note)
        }
        _ => note,
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response()
}

#[derive(Deserialize)]
struct WitnessedQuery {
    quorum: Option<usize>,
}

/// The newest checkpoint carrying at least `quorum` (default 1) witness cosignatures: the note
/// with its cosignatures, and who cosigned it when.
async fn witnessed(
    State(state): State<Arc<AppState>>,
    Query(q): Query<WitnessedQuery>,
) -> AppResult<Response> {
    let quorum = q.quorum.unwrap_or(1);
    if state.cosignatures.witnesses().is_empty() {
        return Err(ApiError::not_found(
            "this server submits its checkpoints to no witness (docket serve --witness)",
        ));
    }
    let witnessed = state.cosignatures.newest(quorum).ok_or_else(|| {
        ApiError::not_found(format!(
            "no checkpoint carries {quorum} witness cosignatures yet"
        ))
    })?;
    Ok(axum::Json(crate::witnessing::witnessed_json(&witnessed)).into_response())
}

/// The key in force: the one `/checkpoint` is signed by. A client that trusts only the genesis
/// key follows the rotations to it (`/v1/log/keys`).
async fn public_key(State(state): State<Arc<AppState>>) -> Response {
    let view = state.appender.view();
    let key = view
        .key_in_force()
        .map_or(state.genesis_key.as_str(), |k| k.vkey.as_str());
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        format!("{key}\n"),
    )
        .into_response()
}

/// Every signing key of the log, oldest first, each with the entry that brought it into force
/// (0: genesis; else a key-rotation entry, signed by the key before it). docs/api.md
/// "Following a key rotation".
async fn keys(State(state): State<Arc<AppState>>) -> Response {
    let view = state.appender.view();
    let keys: Vec<Value> = view
        .keys
        .iter()
        .map(|k| json!({"key": k.vkey, "introduced_by": k.introduced_by}))
        .collect();
    axum::Json(json!({"genesis_key": state.genesis_key, "keys": keys})).into_response()
}

#[derive(Deserialize)]
pub(crate) struct InclusionQuery {
    seq: Option<u64>,
    decision_id: Option<String>,
    size: Option<u64>,
}

async fn inclusion(
    State(state): State<Arc<AppState>>,
    Query(q): Query<InclusionQuery>,
) -> AppResult<Response> {
    Ok(axum::Json(inclusion_json(&*state, &q)?).into_response())
}

pub(crate) fn inclusion_json(
    log: &(impl LogSource + ?Sized),
    q: &InclusionQuery,
) -> AppResult<Value> {
    let view = log.view();
    let seq = match (q.seq, &q.decision_id) {
        (Some(seq), None) => seq,
        (None, Some(id)) => *view.decision_ids.get(id).ok_or_else(|| {
            ApiError::not_found(format!("no decision with id {id} is in the log"))
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of seq and decision_id",
            ));
        }
    };
    let size = q.size.unwrap_or(view.checkpoint_size);
    if size > view.checkpoint_size {
        return Err(ApiError::bad_request(format!(
            "size {size} is beyond the latest checkpoint ({})",
            view.checkpoint_size
        )));
    }
    let proof = view.tree.inclusion_proof(seq, size).ok_or_else(|| {
        ApiError::bad_request(format!("entry {seq} is not inside a tree of size {size}"))
    })?;
    let leaf = view.tree.leaf(seq).expect("seq < size");
    Ok(json!({
        "leaf_index": seq,
        "tree_size": size,
        "leaf_hash": B64.encode(leaf.0),
        "hashes": proof.iter().map(|h| B64.encode(h.0)).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

async fn consistency(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ConsistencyQuery>,
) -> AppResult<Response> {
    Ok(axum::Json(consistency_json(&*state, &q)?).into_response())
}

pub(crate) fn consistency_json(
    log: &(impl LogSource + ?Sized),
    q: &ConsistencyQuery,
) -> AppResult<Value> {
    let view = log.view();
    let to = q.to.unwrap_or(view.checkpoint_size);
    if to > view.checkpoint_size || q.from > to {
        return Err(ApiError::bad_request(format!(
            "need from ≤ to ≤ {} (the latest checkpoint), got from={} to={to}",
            view.checkpoint_size, q.from
        )));
    }
    let proof = view
        .tree
        .consistency_proof(q.from, to)
        .expect("sizes checked");
    Ok(json!({
        "old_size": q.from,
        "new_size": to,
        "hashes": proof.iter().map(|h| B64.encode(h.0)).collect::<Vec<_>>(),
    }))
}

async fn tile(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    headers: axum::http::HeaderMap,
) -> AppResult<Response> {
    tile_response(state, &rest, &headers).await
}

/// A C2SP tile of `log`: hash tiles from its tree, entry bundles from its entries.
pub(crate) async fn tile_response<L: LogSource + ?Sized + 'static>(
    log: Arc<L>,
    rest: &str,
    headers: &axum::http::HeaderMap,
) -> AppResult<Response> {
    let address = parse_tile(rest).ok_or_else(|| {
        ApiError::not_found(format!(
            "/tile/{rest} is not a tile path (C2SP tlog-tiles: /tile/<L>/<N>[.p/<W>] or /tile/entries/<N>[.p/<W>])"
        ))
    })?;
    let want = address.width.unwrap_or(TILE_WIDTH) as usize;
    let missing = || ApiError::not_found(format!("/tile/{rest} does not exist yet"));
    let cache = if address.width.is_none() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    let body = match address.level {
        Some(level) => {
            let view = log.view();
            let hashes = view
                .tree
                .subtrees(8 * level as usize, address.first(), want);
            if hashes.len() != want {
                return Err(missing());
            }
            hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>()
        }
        None => {
            let first = address.first();
            if first.saturating_add(want as u64) > log.view().checkpoint_size {
                return Err(missing());
            }
            tokio::task::spawn_blocking(move || entry_bundle(&*log, first, want as u64))
                .await
                .map_err(|e| ApiError::internal(format!("{e}")))??
        }
    };
    let gzip = address.level.is_none()
        && headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(docket_wire::accepts_gzip);
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        if gzip { docket_wire::gzip(&body) } else { body },
    )
        .into_response();
    if address.level.is_none() {
        let headers = response.headers_mut();
        headers.insert(
            header::VARY,
            header::HeaderValue::from_static("accept-encoding"),
        );
        if gzip {
            headers.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
        }
    }
    Ok(response)
}

/// An entry bundle: each entry's body (its Merkle leaf input, log-format §3.2) prefixed by its
/// length as a big-endian u16, as tlog-tiles prescribes. A record too long for that is in the
/// digest form (§3.6): its 105-byte body holds the record's SHA-256, the record is at
/// `/v1/log/entries/{seq}/record`. A pruned entry has no body left: in its place is its pruned
/// encoding (log-format §3.5, starting `docket/pruned/v1`), which no client can mistake for a
/// body; its leaf hash is in the hash tiles, so every other entry of the bundle stays provable
/// (docs/api.md, "Tiles").
fn entry_bundle(log: &(impl LogSource + ?Sized), first: u64, count: u64) -> AppResult<Vec<u8>> {
    let mut out = Vec::new();
    for seq in first..first + count {
        let (bytes, entry) = read_entry(log, seq)?
            .ok_or_else(|| ApiError::internal(format!("entry {seq} is missing")))?;
        let body = if entry.is_pruned() {
            bytes
        } else {
            entry.body()
        };
        let len = u16::try_from(body.len()).map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "entry_too_large",
                format!(
                    "entry {seq} has a {}-byte body, more than a tlog-tiles bundle can frame (65,535): it was sealed before docket wrote long records in the digest form (log-format §3.6); read it from /v1/log/entries/{seq}",
                    body.len()
                ),
            )
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}
