//! The proxy-wasm glue: one root context per VM (config, engine, metrics) and one HTTP context
//! per request. A request is paused in `on_http_request_headers` until docket has acknowledged
//! its sealed decision, then resumed (allow) or answered (deny); the decision id is put on the
//! response either way.

use crate::{Config, Request, build_input, decision_event, decision_id, verdict};
use docket_policy::PolicyEngine;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::cell::RefCell;
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
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name| hostcalls::define_metric(MetricType::Counter, name).unwrap_or(0);
        Metrics {
            allowed: counter("docket_allowed"),
            denied: counter("docket_denied"),
            unrecorded_denied: counter("docket_unrecorded_denied"),
            unrecorded_allowed: counter("docket_unrecorded_allowed"),
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
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

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
                }));
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
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A decision waiting for docket's acknowledgement.
struct Pending {
    verdict: crate::Verdict,
}

struct Filter {
    shared: Rc<Shared>,
    pending: Option<Pending>,
    decision_id: Option<String>,
}

impl Filter {
    fn deny(&self, verdict: &crate::Verdict, id: &str) {
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

    /// The decision could not be recorded: deny (fail closed), or let an allowed request pass
    /// when `fail_open` is set. Returns whether the request may go on.
    fn unrecorded(&mut self, why: &str) -> bool {
        let Some(pending) = self.pending.take() else {
            return false;
        };
        let id = self.decision_id.take().unwrap_or_default();
        let metrics = self.shared.metrics;
        if self.shared.config.fail_open && pending.verdict.allowed {
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
        self.send_http_response(
            503,
            vec![("x-docket-unrecorded-decision-id", id.as_str())],
            Some(b"the decision could not be recorded in the audit log; request denied\n"),
        );
        false
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
            if self.unrecorded(&why) {
                self.resume_http_request();
            }
            return;
        }
        let Some(pending) = self.pending.take() else {
            return;
        };
        let id = self.decision_id.clone().unwrap_or_default();
        if pending.verdict.allowed {
            Metrics::bump(self.shared.metrics.allowed);
            self.resume_http_request();
        } else {
            Metrics::bump(self.shared.metrics.denied);
            self.deny(&pending.verdict, &id);
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers();
        let address = |path: &[&str]| {
            self.get_property(path.to_vec())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let source = address(&["source", "address"]);
        let request = Request {
            headers: &headers,
            source_address: source.clone(),
            destination_address: address(&["destination", "address"]),
        };
        let config = &self.shared.config;
        let input = build_input(&request, &config.redact_headers).to_string();
        let mut random = [0u8; 16];
        let _ = getrandom::fill(&mut random);
        let id = decision_id(random);
        self.decision_id = Some(id.clone());

        let evaluated = self
            .shared
            .engine
            .borrow_mut()
            .evaluate(&config.query, Some(&input));
        let decision = match evaluated {
            Ok(decision) => decision,
            Err(e) => {
                // An evaluation error is a deny; it is still recorded, with the error.
                hostcalls::log(LogLevel::Warn, &format!("docket: evaluation failed: {e:?}")).ok();
                docket_ledger::record::Decision {
                    path: config.query.clone(),
                    input: Some(input),
                    result: None,
                    policy_version: self.shared.engine.borrow().version().clone(),
                    log: Default::default(),
                }
            }
        };
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
        let event = match decision_event(&id, config, &decision, now, source.as_deref(), &mut salt)
        {
            Ok(event) => event,
            Err(why) => {
                // Never send what the logging rules say must not leave the proxy.
                self.pending = Some(Pending {
                    verdict: verdict(decision.result.as_deref()),
                });
                return if self.unrecorded(&why) {
                    Action::Continue
                } else {
                    Action::Pause
                };
            }
        };
        let body = serde_json::to_vec(&[event]).expect("JSON values serialize");
        let authorization = format!("Bearer {}", config.docket.token);
        let call = self.dispatch_http_call(
            &config.docket.cluster,
            vec![
                (":method", "POST"),
                (":path", &config.docket.path),
                (":authority", &config.docket.authority),
                ("content-type", "application/json"),
                ("authorization", &authorization),
            ],
            Some(&body),
            vec![],
            Duration::from_millis(config.docket.timeout_ms),
        );
        self.pending = Some(Pending {
            verdict: verdict(decision.result.as_deref()),
        });
        match call {
            Ok(_) => Action::Pause,
            Err(status) => {
                let why = format!(
                    "the callout to cluster {} failed: {status:?}",
                    config.docket.cluster
                );
                if self.unrecorded(&why) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(id) = &self.decision_id {
            self.set_http_response_header("x-docket-decision-id", Some(id));
        }
        Action::Continue
    }
}
