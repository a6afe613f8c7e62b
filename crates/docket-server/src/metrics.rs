//! Prometheus metrics (`GET /metrics`, OpenMetrics text).

use crate::appender::LogView;
use docket_runtime::log::Sealed;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `allow` (result `true`), `deny` (result `false`), `undefined`, or `other` (any other
    /// result document).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabels {
    /// The witness's name (its key name).
    pub witness: String,
}

pub struct Metrics {
    registry: Registry,
    /// The largest tree size each witness has cosigned (compare with `log_entries`).
    pub witness_cosigned_size: Family<WitnessLabels, Gauge<u64, AtomicU64>>,
    /// Submissions to a witness that did not end in a cosignature (outage, refusal).
    pub witness_failures: Family<WitnessLabels, Counter>,
    /// Alarms raised by the watch over the JetStream stream's replicas (`--nats`).
    pub nats_replica_alarms: Counter,
    pub decisions: Family<OutcomeLabels, Counter>,
    pub ingested: Counter,
    pub policy_changes: Counter,
    pub commit_failures: Counter,
    pub rejected_requests: Counter,
    /// Uploads not sealed because their sender's deadline had passed.
    pub expired_uploads: Counter,
    /// Connections answered 503 at the connection limit with no idle connection to close.
    pub refused_connections: Counter,
    /// Requests refused by a client's write quota (429) or the server's body budget (503).
    pub throttled_requests: Counter,
    /// Bytes of request bodies admitted and not yet answered (the body budget in use).
    pub body_bytes_in_flight: Gauge<u64, AtomicU64>,
    /// From a decision's arrival at the appender to its commit being durable.
    pub append_latency: Histogram,
    pub commit_entries: Histogram,
    pub fsync_latency: Histogram,
    pub log_entries: Gauge<u64, AtomicU64>,
    pub log_bytes: Gauge<u64, AtomicU64>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("docket");
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions answered, each sealed and durable first",
            decisions.clone(),
        );
        let ingested = Counter::default();
        registry.register(
            "ingested_events",
            "OPA decision-log events sealed from /logs",
            ingested.clone(),
        );
        let policy_changes = Counter::default();
        registry.register(
            "policy_changes",
            "Policy and data changes sealed into the log",
            policy_changes.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "commit_failures",
            "Group commits that could not be made durable",
            commit_failures.clone(),
        );
        let rejected_requests = Counter::default();
        registry.register(
            "rejected_requests",
            "Requests refused for bad input, size or authorization",
            rejected_requests.clone(),
        );
        let expired_uploads = Counter::default();
        registry.register(
            "expired_uploads",
            "Decision-log uploads not sealed because the sender's deadline had passed",
            expired_uploads.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "refused_connections",
            "Connections answered 503 at the connection limit, every open one being busy",
            refused_connections.clone(),
        );
        let throttled_requests = Counter::default();
        registry.register(
            "throttled_requests",
            "Requests refused by a client's write quota (429) or the body budget (503)",
            throttled_requests.clone(),
        );
        let body_bytes_in_flight = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "body_bytes_in_flight",
            "Bytes of request bodies admitted and not yet answered (--body-budget-bytes)",
            body_bytes_in_flight.clone(),
        );
        let append_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "append_latency_seconds",
            "From a decision reaching the log writer to its commit being durable",
            append_latency.clone(),
        );
        let commit_entries = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "commit_batch_entries",
            "Entries per group commit (per fsync)",
            commit_entries.clone(),
        );
        let fsync_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "commit_seconds",
            "Time to write and fsync one group commit with its checkpoint",
            fsync_latency.clone(),
        );
        let log_entries = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "log_entries",
            "Durable entries in the log",
            log_entries.clone(),
        );
        let log_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "log_entry_bytes",
            "Bytes of encoded entries in the log",
            log_bytes.clone(),
        );
        let witness_cosigned_size = Family::<WitnessLabels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "witness_cosigned_size",
            "The largest tree size each witness has cosigned (--witness)",
            witness_cosigned_size.clone(),
        );
        let witness_failures = Family::<WitnessLabels, Counter>::default();
        registry.register(
            "witness_failures",
            "Checkpoint submissions to a witness that got no cosignature",
            witness_failures.clone(),
        );
        let nats_replica_alarms = Counter::default();
        registry.register(
            "nats_replica_alarms",
            "Alarms about the JetStream stream's replicas: contents that differ at one sequence, a replica going back, a leader behind an acknowledged commit",
            nats_replica_alarms.clone(),
        );
        Metrics {
            registry,
            nats_replica_alarms,
            witness_cosigned_size,
            witness_failures,
            decisions,
            ingested,
            policy_changes,
            commit_failures,
            rejected_requests,
            expired_uploads,
            refused_connections,
            throttled_requests,
            body_bytes_in_flight,
            append_latency,
            commit_entries,
            fsync_latency,
            log_entries,
            log_bytes,
        }
    }

    pub fn observe_decision(&self, sealed: &Sealed, latency: Duration) {
        let outcome = match sealed.result.as_deref() {
            Some("true") => "allow",
            Some("false") => "deny",
            None => "undefined",
            Some(_) => "other",
        };
        self.decisions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.append_latency.observe(latency.as_secs_f64());
    }

    pub fn observe_commit(&self, entries: usize, took: Duration) {
        self.commit_entries.observe(entries as f64);
        self.fsync_latency.observe(took.as_secs_f64());
    }

    pub fn observe_log(&self, view: &LogView) {
        self.log_entries.set(view.tree.size());
        self.log_bytes.set(view.entry_bytes);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
