//! The example policies shipped under `examples/policies/`, embedded so `docket demo` runs
//! anywhere, and a seeded generator of realistic requests for them.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

/// An example policy module with its data document and the rule the demo queries.
pub struct ExamplePolicy {
    pub id: &'static str,
    pub source: &'static str,
    pub data: &'static str,
    pub path: &'static str,
}

pub const RBAC: ExamplePolicy = ExamplePolicy {
    id: "rbac.rego",
    source: include_str!("../../../examples/policies/rbac.rego"),
    data: include_str!("../../../examples/policies/rbac.json"),
    path: "rbac/allow",
};

pub const ABAC: ExamplePolicy = ExamplePolicy {
    id: "abac.rego",
    source: include_str!("../../../examples/policies/abac.rego"),
    data: include_str!("../../../examples/policies/abac.json"),
    path: "abac/allow",
};

/// The access policies.
pub const ALL: [ExamplePolicy; 2] = [RBAC, ABAC];

/// A liveness probe, which the logging rules drop from the log.
pub const HEALTH: ExamplePolicy = ExamplePolicy {
    id: "health.rego",
    source: include_str!("../../../examples/policies/health.rego"),
    data: "{}",
    path: "health/live",
};

/// The logging rules (`system.log`): mask the request's address, drop health checks, keep
/// denials for a year.
pub const LOGGING_RULES: ExamplePolicy = ExamplePolicy {
    id: "system-log.rego",
    source: include_str!("../../../examples/policies/system-log.rego"),
    data: "{}",
    path: "system/log",
};

/// Everything `docket demo` and `docket serve` load by default.
pub const DEFAULTS: [ExamplePolicy; 4] = [RBAC, ABAC, HEALTH, LOGGING_RULES];

/// Seeded request generator: the same seed gives the same requests on every machine.
pub struct Requests {
    rng: StdRng,
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

impl Requests {
    pub fn new(seed: u64) -> Requests {
        Requests {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// An RBAC input: a (sometimes unknown) user, an action and a resource.
    pub fn rbac(&mut self) -> String {
        let rng = &mut self.rng;
        let user = pick(rng, &["alice", "bob", "carol", "dave", "erin", "mallory"]);
        let action = pick(rng, &["read", "write", "deploy", "delete"]);
        let kind = pick(rng, &["document", "dashboard", "service", "invoice"]);
        let id = rng.random_range(1..10_000u32);
        json!({"user": user, "action": action, "resource": {"type": kind, "id": format!("{kind}-{id}")}}).to_string()
    }

    /// An ABAC input: subject and resource attributes and a request context.
    pub fn abac(&mut self) -> String {
        let rng = &mut self.rng;
        let departments = ["engineering", "finance", "legal", "sales"];
        let levels = ["public", "internal", "confidential", "secret"];
        let subject = format!("u{}", rng.random_range(1..50u32));
        let owner = if rng.random_range(0..5u32) == 0 {
            subject.clone()
        } else {
            format!("u{}", rng.random_range(1..50u32))
        };
        let ip = if rng.random_range(0..3u32) == 0 {
            format!("192.168.1.{}", rng.random_range(1..255u32))
        } else {
            format!(
                "10.20.{}.{}",
                rng.random_range(0..255u32),
                rng.random_range(1..255u32)
            )
        };
        json!({
            "action": pick(rng, &["read", "write", "comment", "delete"]),
            "subject": {
                "id": subject,
                "department": pick(rng, &departments),
                "clearance": pick(rng, &levels),
                "suspended": rng.random_range(0..20u32) == 0,
            },
            "resource": {
                "owner": owner,
                "department": pick(rng, &departments),
                "classification": pick(rng, &levels),
            },
            "context": {"ip": ip, "hour": rng.random_range(0..24u32)},
        })
        .to_string()
    }

    /// The next request: the path to query and its input, alternating policies.
    pub fn next_request(&mut self) -> (&'static str, String) {
        if self.rng.random_range(0..2u32) == 0 {
            (RBAC.path, self.rbac())
        } else {
            (ABAC.path, self.abac())
        }
    }
}
