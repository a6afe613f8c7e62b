//! The proxy-wasm glue: one root context per VM (config, engine, metrics) and one HTTP context
//! per request. A request is paused in `on_http_request_headers` until docket has acknowledged
//! its sealed decision, then resumed (allow) or answered (deny); the decision id is put on the
//! response either way. A Data API request (`data_api` in the configuration) is read to the end
//! of its body, decided, and answered with its result once the decision is sealed; a buffer
//! filter after this one keeps it from the router (docs/envoy.md, "The Data API").

use crate::{
    Claims, Config, Request, Verdict, build_input, event_labels, filter_metadata_from_protobuf,
    verdict,
};
use docket_ledger::record::{Decision, uuid_v4};
use docket_policy::{PolicyEngine, PolicyError};
use docket_wire::events::{decision_event, dropped_event, undelivered_event};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root_context());
}}

/// The filter's root context (one per Envoy worker VM).
pub fn root_context() -> Box<dyn RootContext> {
    Box::new(Root::default())
}

/// Counters Envoy exports with its stats (`/stats`): `wasmcustom.docket_*`.
#[derive(Clone, Copy, Default)]
struct Metrics {
    allowed: u32,
    denied: u32,
    unrecorded_denied: u32,
    unrecorded_allowed: u32,
    data_api_answered: u32,
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name| hostcalls::define_metric(MetricType::Counter, name).unwrap_or(0);
        Metrics {
            allowed: counter("docket_allowed"),
            denied: counter("docket_denied"),
            unrecorded_denied: counter("docket_unrecorded_denied"),
            unrecorded_allowed: counter("docket_unrecorded_allowed"),
            data_api_answered: counter("docket_data_api_answered"),
        }
    }

    fn bump(id: u32) {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

struct Shared {
    config: Config,
    engine: RefCell<PolicyEngine>,
    metrics: Metrics,
    /// Not-delivered notices waiting to be sealed (JSON upload bodies), oldest first, with the
    /// attempts made. The root context sends them: a request's context, and any callout it
    /// made, ends with the request.
    notices: RefCell<VecDeque<(Vec<u8>, u32)>>,
}

/// Notices kept at most; beyond, the oldest is dropped (and logged).
const MAX_NOTICES: usize = 10_000;
/// Attempts per notice before it is dropped (and logged), one per tick while docket refuses.
const NOTICE_ATTEMPTS: u32 = 600;
/// How often the root context sends waiting notices.
const NOTICE_TICK: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
    /// The notice callout in flight, if any: one at a time, in order.
    notice_call: Option<u32>,
}

impl Root {
    fn send_notice(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if self.notice_call.is_some() {
            return;
        }
        let Some((body, _)) = shared.notices.borrow().front().cloned() else {
            return;
        };
        let docket = &shared.config.docket;
        let authorization = format!("Bearer {}", docket.token);
        let call = self.dispatch_http_call(
            &docket.cluster,
            vec![
                (":method", "POST"),
                (":path", &docket.path),
                (":authority", &docket.authority),
                ("content-type", "application/json"),
                ("authorization", &authorization),
            ],
            Some(&body),
            vec![],
            Duration::from_millis(docket.timeout_ms),
        );
        match call {
            Ok(token) => self.notice_call = Some(token),
            Err(_) => self.notice_failed(&shared, "the callout could not be made"),
        }
    }

    fn notice_failed(&mut self, shared: &Shared, why: &str) {
        let mut notices = shared.notices.borrow_mut();
        if let Some(front) = notices.front_mut() {
            front.1 += 1;
            if front.1 >= NOTICE_ATTEMPTS {
                hostcalls::log(
                    LogLevel::Critical,
                    &format!(
                        "docket: a not-delivered notice was dropped after {} attempts ({why}): {}",
                        front.1,
                        String::from_utf8_lossy(&front.0)
                    ),
                )
                .ok();
                notices.pop_front();
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
        if self.notice_call != Some(token_id) {
            return;
        }
        self.notice_call = None;
        let Some(shared) = self.shared.clone() else {
            return;
        };
        match self.get_http_call_response_header(":status").as_deref() {
            Some("200") => {
                shared.notices.borrow_mut().pop_front();
                // The next one right away, not a tick later.
                self.send_notice();
            }
            status => {
                let why = match status {
                    Some(status) => format!("docket answered HTTP {status}"),
                    None => "docket's answer had no :status".to_string(),
                };
                self.notice_failed(&shared, &why);
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let loaded = Config::parse(&bytes).and_then(|config| {
            let engine = config.engine()?;
            Ok((config, engine))
        });
        match loaded {
            Ok((config, engine)) => {
                proxy_wasm::hostcalls::log(
                    LogLevel::Info,
                    &format!(
                        "docket: {} policies loaded, deciding {} (version {})",
                        config.policies.len(),
                        config.query,
                        engine.version().digest
                    ),
                )
                .ok();
                self.shared = Some(Rc::new(Shared {
                    config,
                    engine: RefCell::new(engine),
                    metrics: Metrics::define(),
                    notices: RefCell::new(VecDeque::new()),
                }));
                self.set_tick_period(NOTICE_TICK);
                true
            }
            Err(e) => {
                // Refusing the configuration makes Envoy reject the filter: no policy, no traffic.
                proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("docket: {e}")).ok();
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            shared: Rc::clone(self.shared.as_ref()?),
            pending: None,
            decision_id: None,
            data_api: None,
            body_size: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        self.send_notice();
    }
}

/// A decision waiting for docket's acknowledgement.
/// A decision waiting for docket's acknowledgement of its sealed entry.
enum Pending {
    /// The request asked to go through: resumed or denied by the verdict.
    Authorization(Verdict),
    /// A Data API request: answered with the result.
    DataApi { result: Option<String> },
}

struct Filter {
    shared: Rc<Shared>,
    pending: Option<Pending>,
    decision_id: Option<String>,
    /// The data path of a Data API request whose body is still arriving.
    data_api: Option<String>,
    /// How much of that body Envoy has buffered so far.
    body_size: usize,
}

impl Filter {
    fn deny(&self, verdict: &Verdict, id: &str) {
        let deny = &self.shared.config.deny;
        let mut headers: Vec<(&str, &str)> = deny
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.extend(
            verdict
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        headers.push(("x-docket-decision-id", id));
        let body = verdict.body.as_deref().unwrap_or(&deny.body);
        self.send_http_response(
            verdict.http_status.unwrap_or(deny.status),
            headers,
            Some(body.as_bytes()),
        );
    }

    /// Answers a Data API request with an error in OPA's shape.
    fn api_error(&self, status: u32, code: &str, message: &str) {
        self.send_http_response(
            status,
            vec![("content-type", "application/json")],
            Some(docket_wire::error_body(code, message).as_bytes()),
        );
    }

    /// The pending decision could not be recorded. Returns whether the request goes on anyway
    /// (only an allowed request, and only with `fail_open`); otherwise it has been answered.
    fn unrecorded(&mut self, why: &str) -> bool {
        let Some(pending) = self.pending.take() else {
            return false;
        };
        let id = self.decision_id.take().unwrap_or_default();
        let metrics = self.shared.metrics;
        let allowed = matches!(&pending, Pending::Authorization(v) if v.allowed);
        if self.shared.config.fail_open && allowed {
            hostcalls::log(
                LogLevel::Warn,
                &format!(
                    "docket: decision {id} NOT RECORDED ({why}); allowed because fail_open is set"
                ),
            )
            .ok();
            Metrics::bump(metrics.unrecorded_allowed);
            return true;
        }
        hostcalls::log(
            LogLevel::Warn,
            &format!("docket: decision {id} could not be recorded ({why}); request denied"),
        )
        .ok();
        Metrics::bump(metrics.unrecorded_denied);
        // No x-docket-decision-id: that header promises the decision is in the log.
        match pending {
            Pending::Authorization(_) => self.send_http_response(
                503,
                vec![("x-docket-unrecorded-decision-id", id.as_str())],
                Some(b"the decision could not be recorded in the audit log; request denied\n"),
            ),
            // An answer is itself the decision: one the log does not hold is never given.
            Pending::DataApi { .. } => self.api_error(
                503,
                "internal_error",
                &format!(
                    "decision {id} could not be recorded in the audit log ({why}); no answer is \
                     given without its entry, retry once docket serve is reachable"
                ),
            ),
        }
        false
    }

    /// Queues a not-delivered notice for decision `id`; the root context sends it.
    fn notice_undelivered(&self, id: &str, why: &str) {
        let mut random = [0u8; 16];
        let _ = getrandom::fill(&mut random);
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let labels = event_labels(&self.shared.config);
        let event = undelivered_event(&uuid_v4(random), &labels, id, why, now);
        let body = serde_json::to_vec(&[event]).expect("JSON values serialize");
        let mut notices = self.shared.notices.borrow_mut();
        if notices.len() >= MAX_NOTICES {
            hostcalls::log(
                LogLevel::Critical,
                "docket: too many not-delivered notices waiting; the oldest was dropped",
            )
            .ok();
            notices.pop_front();
        }
        notices.push_back((body, 0));
    }

    fn source_address(&self) -> Option<String> {
        self.get_property(vec!["source", "address"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Sends the decision (with the evaluation error it failed with, if it did) to docket serve
    /// to be sealed and pauses the request until it answers; `pending` says what to do then.
    fn seal(
        &mut self,
        decision: Decision,
        error: Option<&str>,
        source: Option<&str>,
        pending: Pending,
    ) -> Action {
        let config = &self.shared.config;
        let mut random = [0u8; 16];
        let _ = getrandom::fill(&mut random);
        let id = uuid_v4(random);
        self.decision_id = Some(id.clone());
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut salt = || {
            let mut salt = [0u8; 32];
            // No salt, no mask: a failing source of randomness must not produce a guessable
            // commitment, so it stops the filter (Envoy reports the panic) rather than send one.
            getrandom::fill(&mut salt).expect("the proxy provides randomness");
            salt
        };
        let labels = event_labels(config);
        // A decision the logging rules drop is counted in docket's next tally, not sealed: its
        // event carries its path and policy version only, and the request waits for the tally
        // to be durable as it would for the entry.
        let event = if decision.log.drop && error.is_none() {
            Ok(dropped_event(&id, &labels, &decision, now))
        } else {
            decision_event(&id, &labels, &decision, error, now, source, &mut salt)
        };
        self.pending = Some(pending);
        let event = match event {
            Ok(event) => event,
            // Never send what the logging rules say must not leave the proxy.
            Err(why) => return self.unrecorded_action(&why),
        };
        let body = serde_json::to_vec(&[event]).expect("JSON values serialize");
        let authorization = format!("Bearer {}", config.docket.token);
        // docket seals the event only if it gets to it within three quarters of the time this
        // filter waits, so a decision this filter gave up on (and answered 503) is not sealed
        // afterwards as if it had taken effect; the last quarter is for the fsync and the answer.
        let deadline = (now + config.docket.timeout_ms * 750_000).to_string();
        let call = self.dispatch_http_call(
            &config.docket.cluster,
            vec![
                (":method", "POST"),
                (":path", &config.docket.path),
                (":authority", &config.docket.authority),
                ("content-type", "application/json"),
                ("authorization", &authorization),
                ("x-docket-deadline-ns", &deadline),
            ],
            Some(&body),
            vec![],
            Duration::from_millis(config.docket.timeout_ms),
        );
        match call {
            Ok(_) => Action::Pause,
            Err(status) => {
                let why = format!(
                    "the callout to cluster {} failed: {}",
                    self.shared.config.docket.cluster,
                    status_text(status)
                );
                self.unrecorded_action(&why)
            }
        }
    }

    fn unrecorded_action(&mut self, why: &str) -> Action {
        if self.unrecorded(why) {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    /// Decides a Data API request from its body, as `docket serve` does: a body that is not
    /// `{"input": …}` is 400 and not a decision.
    fn decide_data_api_body(&mut self, path: &str, body: &[u8]) -> Action {
        match docket_wire::data_request_input(body) {
            Ok(input) => self.decide_data_api(path, input),
            Err(e) => {
                self.api_error(400, "invalid_parameter", &e.to_string());
                Action::Pause
            }
        }
    }

    /// Decides a Data API request: an evaluation error is 500 and not a decision (as in
    /// `docket serve`); a decision is sealed, then answered.
    fn decide_data_api(&mut self, path: &str, input: Option<String>) -> Action {
        let evaluated = self
            .shared
            .engine
            .borrow_mut()
            .evaluate(path, input.as_deref());
        match evaluated {
            Ok(decision) => {
                let source = self.source_address();
                let result = decision.result.clone();
                self.seal(
                    decision,
                    None,
                    source.as_deref(),
                    Pending::DataApi { result },
                )
            }
            Err(PolicyError::Input(m)) => {
                self.api_error(
                    400,
                    "invalid_parameter",
                    &format!("malformed input document: {m}"),
                );
                Action::Pause
            }
            Err(e) => {
                self.api_error(500, "internal_error", &e.to_string());
                Action::Pause
            }
        }
    }
}

/// The `input` query parameter of a Data API GET (OPA's `?input=<JSON>`), percent-decoded.
fn query_input(request_path: &str) -> Result<Option<String>, String> {
    let query = request_path.split_once('?').map_or("", |(_, q)| q);
    let mut inputs = crate::parse_query(query)
        .remove("input")
        .unwrap_or_default();
    match inputs.len() {
        0 => Ok(None),
        1 => Ok(inputs.pop()),
        _ => Err("more than one input parameter; send one ?input=<JSON>".into()),
    }
}

impl Context for Filter {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let status = self.get_http_call_response_header(":status");
        if status.as_deref() != Some("200") {
            let body = self
                .get_http_call_response_body(0, body_size.min(512))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let why = match status {
                Some(s) => format!("docket answered {s}: {body}"),
                None => "docket did not answer".to_string(),
            };
            let id = self.decision_id.clone().unwrap_or_default();
            if self.unrecorded(&why) {
                self.resume_http_request();
            } else {
                // Refused: if docket sealed the decision all the same (its answer came too
                // late), the log must also say the request was not delivered.
                self.notice_undelivered(&id, &why);
            }
            return;
        }
        let Some(pending) = self.pending.take() else {
            return;
        };
        let id = self.decision_id.clone().unwrap_or_default();
        match pending {
            Pending::Authorization(verdict) if verdict.allowed => {
                Metrics::bump(self.shared.metrics.allowed);
                self.resume_http_request();
            }
            Pending::Authorization(verdict) => {
                Metrics::bump(self.shared.metrics.denied);
                self.deny(&verdict, &id);
            }
            Pending::DataApi { result } => {
                Metrics::bump(self.shared.metrics.data_api_answered);
                let body = docket_wire::data_response(Some(&id), result.as_deref());
                self.send_http_response(
                    200,
                    vec![
                        ("content-type", "application/json"),
                        ("x-docket-decision-id", &id),
                    ],
                    Some(body.as_bytes()),
                );
            }
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Headers a client sends in docket's name are never believed, sealed or forwarded.
        let raw = self.get_http_request_headers_bytes();
        for (name, _) in raw.iter().filter(|(n, _)| crate::is_docket_header(n)) {
            self.set_http_request_header(name, None);
        }
        let (headers, not_utf8) = crate::decode_headers(raw);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let config = &self.shared.config;
        let request_path = header(":path").unwrap_or_default();
        if let Some(path) = config
            .data_api
            .as_ref()
            .and_then(|api| api.data_path(request_path))
        {
            let method = header(":method").unwrap_or_default();
            if method != "POST" && method != "GET" {
                self.api_error(
                    405,
                    "invalid_parameter",
                    "the Data API answers POST with a body of {\"input\": …}, or GET with ?input=",
                );
                return Action::Pause;
            }
            if end_of_stream {
                return match query_input(request_path) {
                    Ok(input) => self.decide_data_api(&path, input),
                    Err(message) => {
                        self.api_error(400, "invalid_parameter", &message);
                        Action::Pause
                    }
                };
            }
            // The body comes in `on_http_request_body`. Pausing here would pause the body too
            // (Envoy turns a paused header phase into "stop all"), so the headers go on, and a
            // buffer filter after this one holds them back from the router until the body is
            // complete, which it never is for the router: the answer is a local reply
            // (docs/envoy.md, "The Data API").
            self.data_api = Some(path);
            return Action::Continue;
        }
        let source = self.source_address();
        let request = Request {
            headers: &headers,
            source_address: source.clone(),
            destination_address: self
                .get_property(vec!["destination", "address"])
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            claims: match &config.jwt_authn_payload {
                None => Claims::Unverified,
                // What jwt_authn verified and put in the request's dynamic metadata; nothing if
                // it verified no token (a missing or failed one, in its optional modes).
                Some(key) => Claims::Verified(
                    // The whole `metadata` is a protobuf message (envoy.config.core.v3.Metadata)
                    // and comes in protobuf's encoding; a path into it would come in Envoy's
                    // lossy pair encoding (lists as keys), so the message is decoded here.
                    self.get_property(vec!["metadata"])
                        .and_then(|bytes| {
                            filter_metadata_from_protobuf(&bytes, "envoy.filters.http.jwt_authn")
                        })
                        .and_then(|mut payloads| payloads.remove(key)),
                ),
            },
        };
        let input = build_input(&request, &config.redact_headers).to_string();
        // A header that is not UTF-8 cannot be put in the policy's input as the upstream will
        // see it: the request is denied, and recorded as a failed evaluation (docs/envoy.md).
        let evaluated = match not_utf8.first() {
            Some(name) => Err(PolicyError::Input(format!(
                "the request header {name:?} is not UTF-8; docket decides only on UTF-8 \
                 header values (shown here with U+FFFD for each bad byte)"
            ))),
            None => self
                .shared
                .engine
                .borrow_mut()
                .evaluate(&config.query, Some(&input)),
        };
        let (decision, error) = match evaluated {
            Ok(decision) => (decision, None),
            Err(e) => {
                hostcalls::log(LogLevel::Warn, &format!("docket: evaluation failed: {e}")).ok();
                // The request is denied, and that is a decision: it is recorded with its error,
                // masked as the logging rules say (or without its input, if they cannot say).
                let failed = self
                    .shared
                    .engine
                    .borrow_mut()
                    .failed_decision(&config.query, Some(&input));
                (failed, Some(e.to_string()))
            }
        };
        let verdict = verdict(decision.result.as_deref());
        let pending = Pending::Authorization(verdict);
        self.seal(decision, error.as_deref(), source.as_deref(), pending)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(path) = &self.data_api else {
            return Action::Continue;
        };
        let max = self
            .shared
            .config
            .data_api
            .as_ref()
            .map_or(0, |api| api.max_body_bytes);
        if body_size > max {
            self.data_api = None;
            self.api_error(
                413,
                "invalid_parameter",
                &format!("the request body is larger than data_api.max_body_bytes ({max} bytes)"),
            );
            return Action::Pause;
        }
        self.body_size = body_size;
        if !end_of_stream {
            // Envoy keeps buffering the body while the filter pauses.
            return Action::Pause;
        }
        let path = path.clone();
        self.data_api = None;
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.decide_data_api_body(&path, &body)
    }

    /// Trailers end a request's stream as its last body frame would. A Data API body that ends
    /// in trailers is complete now and is decided; any request whose decision is still being
    /// sealed stays paused (returning `Continue` here would let it through undecided).
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(path) = self.data_api.take() {
            let body = self
                .get_http_request_body(0, self.body_size)
                .unwrap_or_default();
            return self.decide_data_api_body(&path, &body);
        }
        if self.pending.is_some() {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(id) = &self.decision_id {
            self.set_http_response_header("x-docket-decision-id", Some(id));
        }
        Action::Continue
    }
}

/// What a proxy-wasm host call's failure means, in words for a log line or a notice.
fn status_text(status: proxy_wasm::types::Status) -> &'static str {
    use proxy_wasm::types::Status;
    match status {
        Status::Ok => "no error",
        Status::NotFound => {
            "the cluster is not configured in Envoy (check clusters: in envoy.yaml)"
        }
        Status::BadArgument => {
            "Envoy refused the call's arguments (a header, the body or the timeout)"
        }
        Status::SerializationFailure => "Envoy could not serialize the call",
        Status::ParseFailure => "Envoy could not parse the call",
        Status::Empty => "Envoy returned nothing",
        Status::CasMismatch => "a shared-data compare-and-swap mismatch",
        Status::InternalFailure => "an internal failure in Envoy",
        _ => "an error this filter does not know",
    }
}
