//! `POST /logs` (and any configured path): OPA's decision-log uploads, sealed as `ingested`
//! entries. OPA sends a gzip'd JSON array of decision events and retries any chunk that does not
//! get a 2xx, so the answer is sent only after every event is durable, a chunk is all-or-nothing
//! as far as validation goes, and events already in the log (same decision_id) are skipped, so a
//! retried chunk is not sealed twice.

use super::appender::IngestEvent;
use super::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docket_ledger::record::minify_json;
use serde_json::json;
use serde_json::value::RawValue;
use std::io::Read;
use std::sync::Arc;

pub async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
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
        "gzip" => gunzip(&body, state.max_ingest_body).map_err(reject)?,
        "identity" | "" => body.to_vec(),
        other => {
            return Err(reject(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_parameter",
                format!("Content-Encoding {other:?} is not supported; send gzip or identity"),
            )));
        }
    };
    let events = parse_events(&json).map_err(reject)?;
    let count = events.len();
    let receipt = state.appender.ingest(events).await?;
    tracing::debug!(
        events = count,
        sealed = receipt.sealed.len(),
        duplicates = receipt.duplicates,
        "ingested"
    );
    Ok(axum::Json(json!({
        "sealed": receipt.sealed.len(),
        "duplicates": receipt.duplicates,
        "first_seq": receipt.sealed.first(),
        "last_seq": receipt.sealed.last(),
    }))
    .into_response())
}

/// Decompresses a gzip body, refusing more than `limit` bytes of output (a gzip bomb) and any
/// truncated or corrupt stream.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "it is truncated".to_string()
        } else {
            e.to_string()
        };
        ApiError::bad_request(format!(
            "the body is not a valid gzip stream ({why}); nothing was logged"
        ))
    })?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameter",
            format!("the upload decompresses to more than {limit} bytes; nothing was logged"),
        ));
    }
    Ok(out)
}

/// Checks the whole chunk before anything is sealed: a JSON array of objects.
fn parse_events(json: &[u8]) -> Result<Vec<IngestEvent>, ApiError> {
    let items: Vec<&RawValue> = serde_json::from_slice(json).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a JSON array of decision events ({e}); nothing was logged"
        ))
    })?;
    #[derive(serde::Deserialize)]
    struct Event {
        decision_id: Option<serde_json::Value>,
    }
    items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let text = raw.get();
            let fields: Event = serde_json::from_str(text)
                .ok()
                .filter(|_| text.trim_start().starts_with('{'))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "event {i} is not a JSON object; nothing was logged"
                    ))
                })?;
            let decision_id = match fields.decision_id {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(id)) if !id.is_empty() => Some(id),
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "event {i} has a decision_id that is not a non-empty string; nothing was logged"
                    )));
                }
            };
            Ok(IngestEvent {
                json: minify_json(text),
                decision_id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_is_bounded_and_truncation_is_named() {
        let body = gz(&[b' '; 10_000]);
        assert_eq!(gunzip(&body, 10_000).unwrap().len(), 10_000);
        let err = gunzip(&body, 9_999).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let err = gunzip(&body[..body.len() - 6], 10_000).unwrap_err();
        assert!(err.message.contains("truncated"), "{}", err.message);
        assert!(gunzip(b"not gzip", 100).is_err());
    }

    #[test]
    fn events_must_be_objects_with_string_ids() {
        let ok = parse_events(br#"[{"decision_id":"a","result": true}, {"x":1}]"#).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].json, r#"{"decision_id":"a","result":true}"#);
        assert_eq!(ok[0].decision_id.as_deref(), Some("a"));
        assert_eq!(ok[1].decision_id, None);
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"[{\"decision_id\":5}]",
            b"[{}",
            b"[[]]",
        ] {
            assert!(
                parse_events(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
