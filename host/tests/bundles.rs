//! OPA bundles (issue 25, first slice): `.tar.gz` (built with the real `tar`) and directory
//! bundles loaded by `docket serve --bundle` and `docket eval -b` as OPA loads them, their
//! revision labelling every decision, their provenance (name, revision, roots, each file's
//! SHA-256) sealed in the policy-change entry; bundles OPA would refuse are refused, naming why.

use crate::common::{Server, all_entries, docket_command, scratch};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
}

/// A bundle directory, and the same bundle as a .tar.gz made by `tar`.
fn bundle(root: &Path, name: &str, files: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    write(&dir, files);
    let archive = root.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    (dir, archive)
}

const AUTHZ: &[(&str, &str)] = &[
    (
        ".manifest",
        r#"{"revision":"authz-r42","roots":["authz"],"metadata":{"team":"platform"}}"#,
    ),
    (
        "authz/policy.rego",
        "package authz\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.user in data.authz.admins\n",
    ),
    ("authz/data.json", r#"{"admins":["alice"]}"#),
];

#[test]
fn a_bundle_is_loaded_as_opa_loads_it_and_its_provenance_is_sealed() {
    let dir = scratch("bundles");
    let (_, archive) = bundle(&dir, "authz", AUTHZ);
    let arg = archive.display().to_string();
    let server = Server::start(&dir, &["--bundle", &arg]);
    let c = Client::new();
    let decide = |user: &str| -> Value {
        c.post(server.url("/v1/data/authz/allow"))
            .json(&json!({"input": {"user": user}}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(decide("alice")["result"], true);
    assert_eq!(decide("bob")["result"], false);
    let entries = all_entries(&c, &server);
    let load = entries
        .iter()
        .find(|e| e["kind"] == "policy-change")
        .expect("the bundle's policy set is sealed");
    let sealed = &load["record"]["bundles"]["authz"];
    assert_eq!(sealed["revision"], "authz-r42");
    assert_eq!(sealed["roots"], json!(["authz"]));
    assert_eq!(sealed["metadata"]["team"], "platform");
    // Every file's digest, checked here from the files themselves.
    for (path, text) in AUTHZ {
        let digest = format!(
            "sha256:{}",
            docket_ledger::hash::sha256(&[text.as_bytes()]).to_hex()
        );
        assert_eq!(sealed["files"][path], digest, "{path}");
    }
    assert!(
        load["record"]["modules"]["authz/authz/policy.rego"].is_string(),
        "{load}"
    );
    // Every decision carries the bundle's revision.
    let decision = entries.iter().find(|e| e["kind"] == "decision").unwrap();
    assert_eq!(
        decision["record"]["policy_version"]["revision"], "authz-r42",
        "{decision}"
    );
    assert_eq!(server.stop().code(), Some(0));

    // `docket eval -b`, on the directory form of the same bundle.
    let input = dir.join("input.json");
    std::fs::write(&input, r#"{"user":"alice"}"#).unwrap();
    let out = docket_command()
        .args(["eval", "-b"])
        .arg(dir.join("authz"))
        .arg("-i")
        .arg(&input)
        .args(["-f", "raw", "data.authz.allow"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
}

#[test]
fn bundles_opa_would_refuse_are_refused_saying_why() {
    let dir = scratch("bundles-refused");
    // (name, files, the reason the refusal must give)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "outside",
            vec![
                (".manifest", r#"{"roots":["authz"]}"#),
                ("billing/data.json", "{}"),
            ],
            "do not permit data at path /billing",
        ),
        (
            "module",
            vec![
                (".manifest", r#"{"roots":["authz"]}"#),
                ("x.rego", "package billing\n"),
            ],
            "do not permit package billing",
        ),
        (
            "overlap",
            vec![(".manifest", r#"{"roots":["a","a/b"]}"#)],
            "overlapped roots",
        ),
        (
            "signed",
            vec![
                (".signatures.json", r#"{"signatures":[]}"#),
                ("data.json", "{}"),
            ],
            "does not verify bundle signatures yet",
        ),
        (
            "v0",
            vec![(".manifest", r#"{"rego_version":0}"#)],
            "Rego v0",
        ),
    ];
    for (name, files, why) in cases {
        let (_, archive) = bundle(&dir, name, &files);
        let out = docket_command()
            .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
            .arg(dir.join(format!("data-{name}")))
            .arg("--bundle")
            .arg(&archive)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
        assert!(
            !dir.join(format!("data-{name}/log")).exists(),
            "{name}: a refused bundle must not start a log"
        );
    }
    // Two bundles whose roots overlap.
    let (_, a) = bundle(&dir, "a", &[(".manifest", r#"{"roots":["shared"]}"#)]);
    let (_, b) = bundle(&dir, "b", &[(".manifest", r#"{"roots":["shared/x"]}"#)]);
    let out = docket_command()
        .args(["eval", "-b"])
        .arg(&a)
        .arg("-b")
        .arg(&b)
        .arg("data")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("overlapping roots"),
        "{text}"
    );
}
