//! A policy that runs or allocates without bound is stopped with a clear error, and the
//! runtime keeps serving: a new instance decides normally.

use docket_runtime::{Limits, Runtime};
use docket_server::examples::RBAC;
use std::time::{Duration, Instant};

const SPIN: &str = "package spin\nx if { every a in numbers.range(1, 20000) { every b in numbers.range(1, 20000) { a + b > 0 } } }\n";
const HOG: &str = "package hog\nx := count(numbers.range(1, 400000000))\n";

fn runtime() -> Runtime {
    let mut rt = Runtime::new(Some(
        &std::env::temp_dir().join("docket-test-component-cache"),
    ))
    .unwrap();
    rt.set_limits(Limits {
        memory_bytes: 96 << 20,
        call_timeout: Duration::from_millis(300),
    });
    rt
}

fn still_serves(rt: &Runtime) {
    let mut fresh = rt.instantiate().unwrap();
    fresh.add_policy(RBAC.id, RBAC.source).unwrap();
    fresh.add_data(RBAC.data).unwrap();
    let d = fresh
        .evaluate(
            RBAC.path,
            Some(r#"{"user":"alice","action":"read","resource":{"type":"document"}}"#),
        )
        .unwrap();
    assert_eq!(d.result.as_deref(), Some("true"));
}

#[test]
fn a_policy_that_runs_too_long_is_stopped_by_the_deadline() {
    let rt = runtime();
    let mut instance = rt.instantiate().unwrap();
    instance.add_policy("spin.rego", SPIN).unwrap();
    let started = Instant::now();
    let err = instance
        .evaluate("spin/x", None)
        .expect_err("the deadline stops it");
    assert!(err.to_string().contains("ran longer than"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped, not run to completion"
    );
    let again = instance
        .evaluate("spin/x", None)
        .expect_err("a trapped instance is not reused");
    assert!(
        again.to_string().contains("create a new instance"),
        "{again}"
    );
    still_serves(&rt);
}

#[test]
fn a_policy_that_allocates_without_bound_is_stopped_by_the_memory_limit() {
    let rt = runtime();
    let mut instance = rt.instantiate().unwrap();
    instance.add_policy("hog.rego", HOG).unwrap();
    let err = instance
        .evaluate("hog/x", None)
        .expect_err("the memory limit stops it");
    assert!(err.to_string().contains("was stopped"), "{err}");
    still_serves(&rt);
}
