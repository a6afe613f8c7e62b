//! Cross-origin reads (`--allow-origin`): a verifier page hosted elsewhere (an auditor's own
//! copy of `docket ui --out`) may read the log's public and read-token API from the browser.
//! Only reads: `GET` and `HEAD`, with an `Authorization` header for the read token; writes and
//! decisions are never answered to another origin's script.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Checks an origin as `--allow-origin` takes it: `scheme://host[:port]` with no path, or
/// `null` (a page opened from `file://`, which browsers send as `Origin: null`).
pub fn parse_origin(text: &str) -> anyhow::Result<String> {
    if text == "null" {
        return Ok(text.to_string());
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace) =>
        {
            Ok(text.to_string())
        }
        _ => anyhow::bail!(
            "--allow-origin {text:?} is not an origin: give scheme://host[:port] as the browser \
             sends it (e.g. https://audit.example.com, no path or trailing slash), or null for \
             a page opened from a file"
        ),
    }
}

/// Answers preflights for allowed origins and marks their reads readable; everything else
/// passes unchanged (a browser then keeps another origin's script from reading the answer).
pub async fn cors(
    State(origins): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let is_read = |m: &Method| m == Method::GET || m == Method::HEAD;
    if request.method() == Method::OPTIONS
        && let Some(asked) = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let asked = asked.to_str().ok().and_then(|m| m.parse::<Method>().ok());
        return match (allowed, asked) {
            (Some(origin), Some(method)) if is_read(&method) => (
                StatusCode::NO_CONTENT,
                [
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
                    (
                        header::ACCESS_CONTROL_ALLOW_METHODS,
                        HeaderValue::from_static("GET, HEAD"),
                    ),
                    (
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        HeaderValue::from_static("authorization"),
                    ),
                    (
                        header::ACCESS_CONTROL_MAX_AGE,
                        HeaderValue::from_static("600"),
                    ),
                    (header::VARY, HeaderValue::from_static("origin")),
                ],
            )
                .into_response(),
            _ => crate::ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "cross-origin requests are answered only to origins named with --allow-origin, \
                 and only for reads (GET, HEAD)",
            )
            .into_response(),
        };
    }
    let read = is_read(request.method());
    let mut response = next.run(request).await;
    if let (Some(origin), true) = (allowed, read) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}
