//! Admission: what every request must satisfy before its body is read (docs/api.md, "Who may
//! write"). One middleware in front of every route:
//!
//! - **Token first.** A request that changes policy or data, or uploads decision logs, needs the
//!   bearer token; without it the answer is `401` before a byte of its body is read.
//! - **No writes from web pages.** A request without the token that would seal a decision (the
//!   Data API and `POST /`) must not come from another site: its `Host` must be an address or a
//!   name the server answers to (DNS rebinding), an `Origin` must be the server's own, a
//!   `Sec-Fetch-Site` must be `same-origin` or `none`, and a body must be declared JSON
//!   (`Content-Type: application/json`), which a page cannot send cross-site without a CORS
//!   preflight the server never grants. Reads are open, but the `Host` rule applies to them too,
//!   so a rebound name cannot read the log either.
//! - **Bounded bodies.** Bodies in flight share a byte budget; a request that would exceed it
//!   waits briefly, then gets `503`.
//! - **Per-client quota** (optional): a token bucket per client address on the bytes of input
//!   its decisions seal; past it, `429`.

use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Budgets are counted in KiB so that a `u32` of permits covers gigabytes.
const BUDGET_UNIT: usize = 1024;

/// How long a request waits for room in the body budget before a `503`.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// What admission is configured with.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Host names (beside IP literals and `localhost`) requests may be addressed to.
    pub allowed_hosts: Vec<String>,
    /// Bytes of request bodies the server holds at once, over all requests.
    pub body_budget: usize,
    /// Per-client bytes of decision input per second; 0: no quota.
    pub client_rate: u64,
    /// The most a client may write in one burst.
    pub client_burst: u64,
}

impl Default for AdmissionConfig {
    fn default() -> AdmissionConfig {
        AdmissionConfig {
            allowed_hosts: Vec::new(),
            body_budget: 256 << 20,
            client_rate: 0,
            client_burst: 16 << 20,
        }
    }
}

pub struct Admission {
    config: AdmissionConfig,
    budget: Arc<Semaphore>,
    budget_units: usize,
    quotas: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Admission {
    pub fn new(mut config: AdmissionConfig) -> Admission {
        for host in &mut config.allowed_hosts {
            *host = host.to_ascii_lowercase();
        }
        let units = (config.body_budget / BUDGET_UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            budget: Arc::new(Semaphore::new(units)),
            budget_units: units,
            config,
            quotas: Mutex::new(HashMap::new()),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            // [v6]:port
            Some(rest) => {
                return rest
                    .split(']')
                    .next()
                    .is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
            }
            None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self.config.allowed_hosts.contains(&name)
    }

    /// True if the client still has quota; a client with none left is refused before its body
    /// is read.
    fn has_quota(&self, client: IpAddr) -> bool {
        if self.config.client_rate == 0 {
            return true;
        }
        let mut quotas = self.quotas.lock().expect("quota lock");
        self.refill(&mut quotas, client).tokens > 0.0
    }

    /// Charges a client for input it had sealed.
    pub fn charge(&self, client: Option<IpAddr>, bytes: usize) {
        let Some(client) = client else { return };
        if self.config.client_rate == 0 {
            return;
        }
        let mut quotas = self.quotas.lock().expect("quota lock");
        self.refill(&mut quotas, client).tokens -= bytes as f64;
        if quotas.len() > 65_536 {
            // Forget clients whose buckets are full again: they owe nothing.
            let burst = self.config.client_burst as f64;
            let rate = self.config.client_rate as f64;
            let now = Instant::now();
            quotas.retain(|_, b| b.tokens + rate * now.duration_since(b.at).as_secs_f64() < burst);
        }
    }

    fn refill<'a>(
        &self,
        quotas: &'a mut HashMap<IpAddr, Bucket>,
        client: IpAddr,
    ) -> &'a mut Bucket {
        let now = Instant::now();
        let burst = self.config.client_burst as f64;
        let bucket = quotas.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let earned = self.config.client_rate as f64 * now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + earned).min(burst);
        bucket.at = now;
        bucket
    }
}

/// Requests that need the write token: policy and data changes, decision-log uploads.
fn needs_token(state: &AppState, method: &Method, path: &str) -> bool {
    let api = path == "/v1/data"
        || path.starts_with("/v1/data/")
        || path == "/v1/policies"
        || path.starts_with("/v1/policies/");
    (api && (method == Method::PUT || method == Method::DELETE || method == Method::PATCH))
        || (method == Method::POST && state.ingest_paths.iter().any(|p| p == path))
}

/// Requests that read entries (records, with every unmasked input), or the server's
/// configuration (bundle URLs, paths): behind `--read-token-file` when it is set. Checkpoints,
/// hash tiles, proofs and keys hold only hashes and stay public.
fn reads_entries(path: &str) -> bool {
    path == "/v1/log"
        || path == "/v1/config"
        || path.starts_with("/v1/log/entries")
        || path.starts_with("/v1/log/decisions/")
        || path.starts_with("/tile/entries/")
        || path.starts_with("/v1/fleet/decisions/")
        || path
            .strip_prefix("/v1/fleet/logs/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_log, rest)| {
                rest.starts_with("entries/") || rest.starts_with("tile/entries/")
            })
}

/// Requests that seal a decision: the Data API (any method that reads a decision) and `POST /`.
fn seals_decision(method: &Method, path: &str) -> bool {
    ((path == "/v1/data" || path.starts_with("/v1/data/"))
        && (method == Method::GET || method == Method::POST))
        || (path == "/" && method == Method::POST)
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || content_length(headers).is_some_and(|n| n > 0)
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_json(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// A request without the token that would seal a decision must be one a web page on another
/// site could not have sent.
fn check_not_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return Err(forbidden(
                "cross_site_request",
                format!(
                    "a web page on another site (Sec-Fetch-Site: {site}) may not have decisions sealed here; call docket from a service, or from its own origin"
                ),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
            });
        if !own {
            return Err(forbidden(
                "cross_site_request",
                format!(
                    "a web page from {origin:?} may not have decisions sealed here (Origin is not this server); call docket from a service, or from its own origin"
                ),
            ));
        }
    }
    Ok(())
}

pub async fn admit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let method = request.method();
    let path = request.uri().path();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let token = state.token_matches(headers);
    if needs_token(&state, method, path) && !token {
        return Err(state
            .authorize(headers)
            .expect_err("the token did not match"));
    }
    if reads_entries(path) && !state.may_read(headers) {
        state.metrics.rejected_requests.inc();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "reading the log's entries needs `Authorization: Bearer <token>` with this server's read token (--read-token-file) or its write token; checkpoints, hash tiles, proofs and keys are public",
        ));
    }
    let admission = &state.admission;
    if !token {
        if let Some(host) = headers.get(header::HOST) {
            let host = host.to_str().unwrap_or("");
            if !admission.host_allowed(host) {
                state.metrics.rejected_requests.inc();
                return Err(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "invalid_host",
                    format!(
                        "this server does not answer to the name {host:?} (start it with --allowed-host {} if it should)",
                        host.rsplit_once(':').map_or(host, |(n, _)| n)
                    ),
                ));
            }
        }
        if seals_decision(method, path) {
            check_not_cross_site(headers).inspect_err(|_| {
                state.metrics.rejected_requests.inc();
            })?;
            if has_body(headers) && !headers.get(header::CONTENT_TYPE).is_some_and(is_json) {
                state.metrics.rejected_requests.inc();
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_content_type",
                    "a decision request's body must be sent as JSON: add the header `Content-Type: application/json` (with curl: -H 'Content-Type: application/json'); nothing was logged",
                ));
            }
            if let Some(client) = peer
                && !admission.has_quota(client)
            {
                state.metrics.throttled_requests.inc();
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "this client has used its write quota ({} bytes of input per second, --client-rate); retry later; nothing was logged",
                        admission.config.client_rate
                    ),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Ok(response);
            }
        }
    }
    let _permit = if has_body(headers) {
        let limit = if state.ingest_paths.iter().any(|p| p == path) {
            state.max_ingest_body
        } else {
            state.max_body
        };
        let bytes = content_length(headers).unwrap_or(limit).min(limit);
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, admission.budget_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        let acquire = Arc::clone(&admission.budget).acquire_many_owned(units);
        match tokio::time::timeout(BUDGET_WAIT, acquire).await {
            Ok(Ok(permit)) => Some(BodyPermit::new(permit, bytes, &state.metrics)),
            _ => {
                state.metrics.throttled_requests.inc();
                return Err(ApiError::unavailable(format!(
                    "the server is holding as many request bodies as it will ({} bytes in all); retry shortly; nothing was logged",
                    admission.config.body_budget
                )));
            }
        }
    } else {
        None
    };
    let response = next.run(request).await;
    if let Some(SealedInput(bytes)) = response.extensions().get::<SealedInput>() {
        admission.charge(peer, *bytes);
    }
    Ok(response)
}

/// Room in the body budget, shown in `docket_body_bytes_in_flight` while held.
struct BodyPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    bytes: u64,
    gauge: prometheus_client::metrics::gauge::Gauge<u64, std::sync::atomic::AtomicU64>,
}

impl BodyPermit {
    fn new(
        permit: tokio::sync::OwnedSemaphorePermit,
        bytes: usize,
        metrics: &crate::metrics::Metrics,
    ) -> BodyPermit {
        let bytes = bytes as u64;
        metrics.body_bytes_in_flight.inc_by(bytes);
        BodyPermit {
            _permit: permit,
            bytes,
            gauge: metrics.body_bytes_in_flight.clone(),
        }
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

/// Set on a response by a handler that sealed a decision: the bytes of input it sealed, which
/// the client's quota is charged.
#[derive(Clone, Copy, Debug)]
pub struct SealedInput(pub usize);
