//! `POST /logs` (and any configured path): OPA's decision-log uploads, sealed as `ingested`
//! entries. OPA sends a gzip'd JSON array of decision events and retries any chunk that does not
//! get a 2xx, so the answer is sent only after every event is durable, a chunk is all-or-nothing
//! as far as validation goes, and events already in the log (same decision_id) are skipped, so a
//! retried chunk is not sealed twice.

use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docket_wire::{gunzip, parse_events};
use serde_json::json;
use std::sync::Arc;

/// A sender that stops waiting at some time says when (Unix nanoseconds): events the writer
/// reaches after it are not sealed (504), so a decision the sender gave up on is never recorded
/// as if it had taken effect. The Envoy filter sends it (docs/api.md, "Deadlines").
pub const DEADLINE_HEADER: &str = "x-docket-deadline-ns";

pub async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The token was checked before the body was read (guard::admit).
    let reject = |e: ApiError| {
        state.metrics.rejected_requests.inc();
        e
    };
    let body = body.map_err(|e| {
        reject(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameter",
            format!(
                "the upload is larger than the server accepts ({} bytes; {e}); lower the decision-log upload_size_limit_bytes",
                state.max_ingest_body
            ),
        ))
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let json = match encoding.as_str() {
        "gzip" => gunzip(&body, state.max_ingest_body).map_err(|e| reject(e.into()))?,
        "identity" | "" => body.to_vec(),
        other => {
            return Err(reject(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_parameter",
                format!("Content-Encoding {other:?} is not supported; send gzip or identity"),
            )));
        }
    };
    let events = parse_events(&json).map_err(|e| reject(e.into()))?;
    let deadline_ns = match headers.get(DEADLINE_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    reject(ApiError::bad_request(format!(
                        "{DEADLINE_HEADER} must be a Unix time in nanoseconds; nothing was logged"
                    )))
                })?,
        ),
    };
    let count = events.len();
    let receipt = state
        .appender
        .ingest(events, deadline_ns)
        .await
        .inspect_err(|e| {
            if matches!(e, crate::appender::AppendError::Expired(_)) {
                state.metrics.expired_uploads.inc();
            }
        })?;
    tracing::debug!(
        events = count,
        sealed = receipt.sealed.len(),
        duplicates = receipt.duplicates,
        dropped = receipt.dropped,
        "ingested"
    );
    Ok(axum::Json(json!({
        "sealed": receipt.sealed.len(),
        "duplicates": receipt.duplicates,
        "dropped": receipt.dropped,
        "first_seq": receipt.sealed.first(),
        "last_seq": receipt.sealed.last(),
    }))
    .into_response())
}
