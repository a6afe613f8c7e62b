//! OPA's `GET /v1/status` and `GET /v1/config`: what a deployment's tooling polls to learn
//! which bundle revision is active, when it was activated and why a download or activation
//! failed, in the shape of OPA's status plugin (`result.labels`, `result.bundles.<name>`,
//! `result.plugins`), and the server's configuration without secrets.

use crate::policies::PolicySet;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// What happened to one bundle, as OPA's status plugin reports it.
#[derive(Clone, Debug, Default)]
pub struct BundleEvents {
    pub last_request: Option<SystemTime>,
    pub last_successful_request: Option<SystemTime>,
    pub last_successful_download: Option<SystemTime>,
    pub last_successful_activation: Option<SystemTime>,
    /// The last failure (OPA's `code` and `message`), cleared by the next activation.
    pub failure: Option<(&'static str, String)>,
}

/// The status `GET /v1/status` reports.
pub struct Status {
    labels: Value,
    bundles: Mutex<BTreeMap<String, BundleEvents>>,
}

impl Status {
    /// `instance_id`: this server's `labels.id`.
    pub fn new(instance_id: &str) -> Status {
        Status {
            labels: json!({
                "id": instance_id,
                "version": env!("CARGO_PKG_VERSION"),
                "product": "docket",
            }),
            bundles: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records what happened to bundle `name`.
    pub fn bundle(&self, name: &str, update: impl FnOnce(&mut BundleEvents)) {
        let mut bundles = self.bundles.lock().expect("status lock");
        update(bundles.entry(name.to_string()).or_default());
    }

    /// The status plugin's snapshot: the active revision of each bundle comes from the policy
    /// set in force, the rest from what was recorded.
    pub fn snapshot(&self, active: &PolicySet) -> Value {
        let bundles = self.bundles.lock().expect("status lock");
        let mut out = serde_json::Map::new();
        let names: std::collections::BTreeSet<&String> =
            active.bundles.keys().chain(bundles.keys()).collect();
        let mut bundle_state = "OK";
        for name in names {
            let events = bundles.get(name).cloned().unwrap_or_default();
            let mut entry = json!({ "name": name, "type": "snapshot" });
            if let Some(info) = active.bundles.get(name) {
                entry["active_revision"] = json!(info.revision);
            }
            for (key, at) in [
                ("last_request", events.last_request),
                ("last_successful_request", events.last_successful_request),
                ("last_successful_download", events.last_successful_download),
                (
                    "last_successful_activation",
                    events.last_successful_activation,
                ),
            ] {
                if let Some(at) = at {
                    entry[key] = json!(rfc3339(at));
                }
            }
            if let Some((code, message)) = events.failure {
                entry["code"] = json!(code);
                entry["message"] = json!(message);
                bundle_state = "ERROR";
            }
            if !active.bundles.contains_key(name) {
                bundle_state = "NOT_READY";
            }
            out.insert(name.clone(), entry);
        }
        let mut plugins = json!({
            "decision_logs": { "state": "OK" },
            "status": { "state": "OK" },
        });
        if !out.is_empty() {
            plugins["bundle"] = json!({ "state": bundle_state });
        }
        json!({
            "labels": self.labels,
            "bundles": out,
            "plugins": plugins,
        })
    }

    pub fn labels(&self) -> &Value {
        &self.labels
    }
}

fn rfc3339(at: SystemTime) -> String {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    docket_ledger::record::rfc3339(nanos)
}
