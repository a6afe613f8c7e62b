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

    // What lies under the bundle's roots is the bundle's: the API may not write it, as in OPA,
    // and nothing is sealed for a refused write. Elsewhere, writes go through.
    let size = || crate::common::log_size(&c, &server);
    let before = size();
    let token = server.token();
    let refused = |request: reqwest::blocking::RequestBuilder, owned: &str| {
        let answer = request.bearer_auth(&token).send().unwrap();
        assert_eq!(answer.status().as_u16(), 400);
        let body: Value = answer.json().unwrap();
        assert!(body["message"].as_str().unwrap().contains(owned), "{body}");
    };
    refused(
        c.put(server.url("/v1/data/authz/admins"))
            .json(&json!(["mallory"])),
        "path authz/admins is owned by bundle \"authz\"",
    );
    refused(
        c.put(server.url("/v1/data")).json(&json!({})),
        "can't write to document root with bundle roots configured",
    );
    refused(
        c.patch(server.url("/v1/data/authz"))
            .json(&json!([{"op": "add", "path": "/x", "value": 1}])),
        "is owned by bundle",
    );
    refused(c.delete(server.url("/v1/data/authz")), "is owned by bundle");
    refused(
        c.put(server.url("/v1/policies/mine"))
            .body("package authz.extra\n\nallow if true\n"),
        "path authz/extra is owned by bundle \"authz\"",
    );
    refused(
        c.delete(server.url("/v1/policies/authz/authz/policy.rego")),
        "is owned by bundle",
    );
    assert_eq!(decide("alice")["result"], true);
    assert_eq!(decide("mallory")["result"], false);
    let written = c
        .put(server.url("/v1/data/elsewhere"))
        .bearer_auth(&token)
        .json(&json!({"ok": true}))
        .send()
        .unwrap();
    assert_eq!(written.status().as_u16(), 204);
    // Two decisions and the one write outside the roots were sealed; no refusal was.
    assert_eq!(size(), before + 3);
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
    crate::common::succeeded(&out);
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
            "no verification key is configured",
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
    // A module that does not compile stops the start as early: no log is created for it.
    let bad = dir.join("bad.rego");
    std::fs::write(&bad, "package bad\n\nallow if {\n").unwrap();
    let out = docket_command()
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(dir.join("data-bad-module"))
        .arg("--policy")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.join("data-bad-module/log").exists(),
        "no log for policies that do not load"
    );
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

/// Signs a bundle directory with tests/sign_bundle.py (OPA's documented format, Python's
/// `cryptography`).
pub(crate) fn sign(dir: &Path, alg: &str, key: &str, extra: &[&str]) {
    let out = Command::new("python3")
        .arg(crate::common::repo().join("tests/sign_bundle.py"))
        .arg(dir)
        .args(["--alg", alg, "--key", key])
        .args(extra)
        .output()
        .unwrap();
    crate::common::succeeded(&out);
}

/// A private key (PEM, for the signer) and its public key (PEM, for docket) for `alg`.
fn keypair(dir: &Path, alg: &str) -> (String, String) {
    let private = dir.join(format!("{alg}.key.pem"));
    let public = dir.join(format!("{alg}.pub.pem"));
    let make = match alg {
        "RS256" => "rsa.generate_private_key(public_exponent=65537, key_size=2048)",
        "ES256" => "ec.generate_private_key(ec.SECP256R1())",
        _ => "ed25519.Ed25519PrivateKey.generate()",
    };
    let script = format!(
        "from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519\n\
         from cryptography.hazmat.primitives import serialization as s\n\
         k = {make}\n\
         open({:?}, 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n\
         open({:?}, 'wb').write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n",
        private.display().to_string(),
        public.display().to_string()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    (private.display().to_string(), public.display().to_string())
}

/// `docket eval -b BUNDLE` with the given verification flags: (exit code, stdout, stderr).
fn eval_bundle(bundle: &Path, flags: &[&str]) -> (Option<i32>, String, String) {
    let input = bundle.with_extension("input.json");
    std::fs::write(&input, "{}").unwrap();
    let out = docket_command()
        .args(["eval", "-f", "raw", "-b"])
        .arg(bundle)
        .arg("-i")
        .arg(&input)
        .args(flags)
        .arg("data.authz.allow")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const SIGNED: &[(&str, &str)] = &[
    (".manifest", r#"{"revision":"s1","roots":["authz"]}"#),
    (
        "authz/policy.rego",
        "package authz\n\nimport rego.v1\n\nallow if data.authz.limits.max > 1\n",
    ),
    // Numbers and strings whose canonical form differs from their text: the digest is of
    // OPA's canonical form, so these must come out the same in signer and verifier.
    (
        "authz/data.json",
        "{ \"limits\": {\"max\": 1.50, \"big\": 1e3, \"tiny\": 0.0000001},\n  \"note\": \"caf\\u00e9 <&> \\u2028\" }",
    ),
];

#[test]
fn signed_bundles_are_verified_as_opa_verifies_them() {
    let dir = scratch("bundles-signed");
    let secret = "a-shared-hmac-secret";
    let mut keys = vec![("HS256".to_string(), secret.to_string(), secret.to_string())];
    for alg in ["RS256", "ES256", "EdDSA"] {
        let (private, public) = keypair(&dir, alg);
        keys.push((alg.to_string(), private, public));
    }
    for (alg, signing_key, verifying_key) in &keys {
        let (bundle_dir, _) = bundle(&dir, &format!("signed-{alg}"), SIGNED);
        sign(&bundle_dir, alg, signing_key, &["--scope", "write"]);
        let flags = [
            "--verification-key",
            verifying_key.as_str(),
            "--signing-alg",
            alg.as_str(),
            "--scope",
            "write",
        ];
        let (code, out, err) = eval_bundle(&bundle_dir, &flags);
        assert_eq!((code, out.as_str()), (Some(0), "true"), "{alg}: {err}");
        // Another scope, another key, no key: refused.
        let mut other_scope = flags;
        other_scope[5] = "read";
        let (code, _, err) = eval_bundle(&bundle_dir, &other_scope);
        assert!(
            code == Some(2) && err.contains("scope mismatch"),
            "{alg}: {err}"
        );
        let (code, _, err) = eval_bundle(&bundle_dir, &[]);
        assert!(
            code == Some(2) && err.contains("no verification key is configured"),
            "{alg}: {err}"
        );
        // Tampered after signing: a changed data file, an added module.
        let data = bundle_dir.join("authz/data.json");
        let original = std::fs::read_to_string(&data).unwrap();
        std::fs::write(&data, original.replace("1.50", "0.50")).unwrap();
        let (code, _, err) = eval_bundle(&bundle_dir, &flags);
        assert!(
            code == Some(2) && err.contains("digest mismatch"),
            "{alg}: {err}"
        );
        std::fs::write(&data, &original).unwrap();
        std::fs::write(bundle_dir.join("authz/extra.rego"), "package authz.extra\n").unwrap();
        let (code, _, err) = eval_bundle(&bundle_dir, &flags);
        assert!(
            code == Some(2) && err.contains("not included in the bundle signature"),
            "{alg}: {err}"
        );
        std::fs::remove_file(bundle_dir.join("authz/extra.rego")).unwrap();
        let (code, out, _) = eval_bundle(&bundle_dir, &flags);
        assert_eq!((code, out.as_str()), (Some(0), "true"), "{alg}: restored");
    }
    // A wrong key, and an unsigned bundle where a key is configured.
    let (rs_dir, _) = bundle(&dir, "signed-wrong", SIGNED);
    sign(&rs_dir, "HS256", "another-secret", &[]);
    let (code, _, err) = eval_bundle(
        &rs_dir,
        &["--verification-key", secret, "--signing-alg", "HS256"],
    );
    assert!(code == Some(2) && err.contains("does not verify"), "{err}");
    let (unsigned, _) = bundle(&dir, "unsigned", SIGNED);
    let (code, _, err) = eval_bundle(
        &unsigned,
        &["--verification-key", secret, "--signing-alg", "HS256"],
    );
    assert!(
        code == Some(2) && err.contains("has no .signatures.json"),
        "{err}"
    );

    // Served: the verified signer is sealed with the bundle.
    let (served, archive) = bundle(&dir, "served", SIGNED);
    sign(&served, "HS256", secret, &["--iss", "ci.example"]);
    let status = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(&served)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let arg = format!("authz={}", archive.display());
    let server = Server::start(
        &dir,
        &[
            "--bundle",
            &arg,
            "--verification-key",
            secret,
            "--signing-alg",
            "HS256",
        ],
    );
    let c = Client::new();
    let load = all_entries(&c, &server)
        .into_iter()
        .find(|e| e["kind"] == "policy-change")
        .unwrap();
    let signed = &load["record"]["bundles"]["authz"]["signed"];
    assert_eq!(signed["algorithm"], "HS256", "{load}");
    assert_eq!(signed["key_id"], "default");
    assert_eq!(signed["issuer"], "ci.example");
    assert!(load["record"]["bundles"]["authz"]["files"][".signatures.json"].is_string());
    assert_eq!(server.stop().code(), Some(0));
}

/// A bundle server on loopback (Python's http.server): serves `dir`'s files with an ETag (the
/// SHA-256 of the file) and answers `304` to a matching `If-None-Match`.
struct BundleServer {
    child: std::process::Child,
    base: String,
}

impl BundleServer {
    fn start(dir: &Path) -> BundleServer {
        let script = r#"
import hashlib, http.server, sys, os
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip('/'))
        try:
            body = open(path, 'rb').read()
        except OSError:
            self.send_response(404); self.end_headers(); return
        tag = '"' + hashlib.sha256(body).hexdigest() + '"'
        if self.headers.get('If-None-Match') == tag:
            self.send_response(304); self.send_header('ETag', tag); self.end_headers(); return
        self.send_response(200)
        self.send_header('ETag', tag)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        BundleServer {
            child,
            base: format!("http://127.0.0.1:{}", line.trim()),
        }
    }
}

impl Drop for BundleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes a version of the `authz` bundle on the bundle server: built with `tar`, then
/// renamed into place so the server never serves half a file.
fn publish(work: &Path, served: &Path, version: &str, files: &[(&str, &str)]) {
    let (_, archive) = bundle(work, version, files);
    std::fs::rename(archive, served.join("authz.tar.gz")).unwrap();
}

fn authz_version(revision: &str, admin: &str) -> Vec<(&'static str, String)> {
    vec![
        (".manifest", format!(r#"{{"revision":"{revision}","roots":["authz"]}}"#)),
        (
            "authz/policy.rego",
            "package authz\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.user in data.authz.admins\n".into(),
        ),
        ("authz/data.json", format!(r#"{{"admins":["{admin}"]}}"#)),
    ]
}

#[test]
fn a_bundle_server_is_polled_and_each_version_activated_or_refused_under_seal() {
    let dir = scratch("bundles-polled");
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let as_refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let publish_version = |name: &str, files: Vec<(&'static str, String)>| {
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        publish(&dir, &served, name, &files);
    };
    publish_version("v1", as_refs(&authz_version("r1", "alice")));
    let bundles = BundleServer::start(&served);
    let url = format!("authz={}/authz.tar.gz", bundles.base);
    let server = Server::start(
        &dir,
        &[
            "--bundle",
            &url,
            "--bundle-min-delay-seconds",
            "0.1",
            "--bundle-max-delay-seconds",
            "0.2",
        ],
    );
    let c = Client::new();
    let decide = |user: &str| -> (Value, String) {
        let answer: Value = c
            .post(server.url("/v1/data/authz/allow"))
            .json(&json!({"input": {"user": user}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = answer["decision_id"].as_str().unwrap().to_string();
        let sealed = server.decision_bundle(&id);
        (
            answer["result"].clone(),
            sealed["entry"]["record"]["policy_version"]["revision"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let wait_for = |what: &str, mut ok: Box<dyn FnMut() -> bool + '_>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(decide("alice"), (json!(true), "r1".to_string()));

    // A new version: activated, and every decision after it carries its revision.
    publish_version("v2", as_refs(&authz_version("r2", "bob")));
    wait_for(
        "r2 to be activated",
        Box::new(|| decide("bob") == (json!(true), "r2".into())),
    );
    assert_eq!(decide("alice"), (json!(false), "r2".to_string()));
    // OPA's status API says which revision is active and since when.
    let status = || -> Value {
        c.get(server.url("/v1/status"))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["result"]["bundles"]["authz"]
            .clone()
    };
    let active = status();
    assert_eq!(active["active_revision"], "r2", "{active}");
    assert!(active["last_successful_activation"].is_string(), "{active}");
    assert!(active["last_successful_download"].is_string(), "{active}");
    assert!(active.get("code").is_none(), "{active}");

    // A version OPA would refuse (a module outside the roots): refused under seal, and r2 stays.
    let mut broken = authz_version("r3", "carol");
    broken.push(("billing.rego", "package billing\n".into()));
    publish_version("v3", broken);
    let refused = || {
        all_entries(&c, &server)
            .into_iter()
            .find(|e| e["record"]["op"] == "bundle_refused")
    };
    wait_for(
        "the refusal of r3 to be sealed",
        Box::new(|| refused().is_some()),
    );
    let refusal = refused().unwrap();
    assert_eq!(refusal["record"]["bundle"], "authz");
    assert!(
        refusal["record"]["reason"]
            .as_str()
            .unwrap()
            .contains("do not permit package billing"),
        "{refusal}"
    );
    assert_eq!(decide("bob"), (json!(true), "r2".to_string()));
    assert_eq!(decide("carol"), (json!(false), "r2".to_string()));
    // The status API tells the refusal, and r2 stays active.
    let refused_status = status();
    assert_eq!(refused_status["active_revision"], "r2", "{refused_status}");
    assert_eq!(refused_status["code"], "bundle_error", "{refused_status}");
    assert!(
        refused_status["message"]
            .as_str()
            .unwrap()
            .contains("do not permit package billing"),
        "{refused_status}"
    );
    let all: Value = c
        .get(server.url("/v1/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        all["result"]["plugins"]["bundle"]["state"], "ERROR",
        "{all}"
    );

    // The next good version is activated.
    publish_version("v4", as_refs(&authz_version("r4", "dave")));
    wait_for(
        "r4 to be activated",
        Box::new(|| decide("dave") == (json!(true), "r4".into())),
    );

    let recovered = status();
    assert_eq!(recovered["active_revision"], "r4", "{recovered}");
    assert!(recovered.get("code").is_none(), "{recovered}");
    // OPA's config API names the bundle's resource and the log's origin, and no secret.
    let config: Value = c
        .get(server.url("/v1/config"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        config["result"]["bundles"]["authz"]["resource"],
        format!("{}/authz.tar.gz", bundles.base),
        "{config}"
    );
    let checkpoint = c
        .get(server.url("/checkpoint"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        config["result"]["docket"]["origin"].as_str(),
        checkpoint.lines().next(),
        "{config}"
    );
    assert!(!config.to_string().contains(&server.token()), "{config}");

    let activations: Vec<Value> = all_entries(&c, &server)
        .into_iter()
        .filter(|e| e["record"]["activated"] == "authz")
        .map(|e| e["record"]["bundles"]["authz"]["revision"].clone())
        .collect();
    assert_eq!(
        activations,
        [json!("r2"), json!("r4")],
        "each activation sealed once"
    );
    assert_eq!(server.stop().code(), Some(0));
    crate::common::verify_dir(&dir);
}
