//! The WIT package's semver check (docs/embedding.md, "Versions"): the interface text, comments
//! and layout aside, may only change together with the version in `package docket:audit@X.Y.Z;`,
//! and each version's interface is recorded in `wit/versions.txt`, so a released interface can
//! never change under the same version.

use std::path::PathBuf;

fn wit_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../wit")
}

/// The interface without its comments and layout: every `//` comment removed (WIT has no string
/// literals for one to hide in), whitespace runs made one space.
fn interface_text(wit: &str) -> String {
    wit.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_wit_changes_only_with_a_version_bump() {
    let wit = std::fs::read_to_string(wit_dir().join("docket.wit")).unwrap();
    let version = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package docket:audit@"))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("wit/docket.wit declares `package docket:audit@X.Y.Z;`");
    let digest = format!(
        "sha256:{}",
        docket_ledger::hash::sha256(&[interface_text(&wit).as_bytes()]).to_hex()
    );
    let recorded = std::fs::read_to_string(wit_dir().join("versions.txt")).unwrap();
    let listed: Vec<(&str, &str)> = recorded
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once(' ')
                .expect("each line is `<version> sha256:<hex>`")
        })
        .collect();
    match listed.iter().find(|(v, _)| *v == version) {
        Some((_, d)) => assert_eq!(
            *d, digest,
            "wit/docket.wit changed but its version is still {version}, whose interface \
             wit/versions.txt records as {d}. Bump the version in `package docket:audit@…;` \
             (a new function, type or case: minor; a changed or removed one: major; \
             docs/embedding.md) and add `<new version> {digest}` to wit/versions.txt"
        ),
        None => panic!(
            "wit/docket.wit is version {version}, which wit/versions.txt does not list: add \
             `{version} {digest}` to it once the interface is final"
        ),
    }
    // A digest belongs to one version only: an old interface cannot come back under a new
    // number, and no version is listed twice.
    for (i, (v, d)) in listed.iter().enumerate() {
        for (w, e) in &listed[i + 1..] {
            assert_ne!(v, w, "wit/versions.txt lists {v} twice");
            assert_ne!(
                d, e,
                "wit/versions.txt gives {v} and {w} the same interface"
            );
        }
    }
}

#[test]
fn comments_and_layout_are_not_the_interface() {
    let a = "/// doc\npackage docket:audit@0.1.0;\ninterface x {\n  f: func(); // note\n}\n";
    let b = "package   docket:audit@0.1.0;\n\ninterface x { f: func(); }";
    assert_eq!(interface_text(a), interface_text(b));
    assert_ne!(
        interface_text(a),
        interface_text(&a.replace("f: func()", "g: func()"))
    );
}
