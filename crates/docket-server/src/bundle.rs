//! OPA bundles (OPA's "Bundle File Format"): a `.tar.gz` or a directory holding Rego modules,
//! `data.json` documents placed at their directory's path, and an optional `.manifest` with the
//! bundle's `revision`, `roots` and `metadata`. docket reads them as OPA reads them, and checks
//! what OPA checks (roots that do not overlap, within a bundle and between bundles; every module's
//! package and every data document under a root), and records what it loaded: each bundle's
//! name, revision, roots and the SHA-256 of every file, sealed in the policy-change entry.
//!
//! Signed bundles (`.signatures.json`) are verified as OPA verifies them ([`Verification`]): one
//! JWT, checked with the configured key and algorithm, its scope, and every file's digest. A
//! signed bundle without a configured key, or an unsigned one with a key, is refused.
//!
//! Refused, each with a sentence, because loading them without their meaning would be wrong:
//! delta bundles (`patch.json`), Wasm and plan modules, Rego v0 modules (`rego_version: 0`),
//! YAML data (docket's YAML reader differs from OPA's YAML 1.1).

use crate::policies::PolicySet;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// At most this many bytes of files per bundle, decompressed (OPA's default limit is 1 GiB; a
/// bundle docket seals whole into its log should be far smaller).
const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// What docket records of a loaded bundle (in the policy-change entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BundleInfo {
    pub revision: String,
    pub roots: Vec<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Every file of the bundle by its path in the bundle, as `sha256:<hex>` of its bytes.
    pub files: BTreeMap<String, String>,
    /// The verified signature of a signed bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<Signed>,
}

/// A bundle read from disk: its files by path (relative, `/`-separated).
struct Files(BTreeMap<String, Vec<u8>>);

/// `NAME=PATH` or `PATH` (the name is then the file name without `.tar.gz`, `.tgz`, or the
/// directory's name), as `--bundle` takes it.
pub fn parse_bundle_arg(arg: &str) -> (String, std::path::PathBuf) {
    if let Some((name, path)) = arg.split_once('=')
        && !name.is_empty()
        && !name.contains('/')
    {
        return (name.to_string(), path.into());
    }
    let path = std::path::PathBuf::from(arg);
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let name = file
        .strip_suffix(".tar.gz")
        .or_else(|| file.strip_suffix(".tgz"))
        .unwrap_or(&file)
        .to_string();
    (name, path)
}

/// Reads the bundles (name, path) into `set`: modules as `<name>/<path in the bundle>`, data
/// merged at its paths, each bundle's [`BundleInfo`] in `set.bundles`.
pub fn load_bundles(
    set: &mut PolicySet,
    bundles: &[(String, std::path::PathBuf)],
    verification: Option<&Verification>,
) -> Result<()> {
    for (name, path) in bundles {
        if set.bundles.contains_key(name) {
            bail!("two bundles are named {name}; name them apart with --bundle NAME=PATH");
        }
        let files = read_files(path)?;
        let failed = |e: String| anyhow!("bundle {name} ({}): {e}", path.display());
        let signed = match verification {
            Some(v) => Some(verify_signature(&files, v).map_err(failed)?),
            None if files.0.contains_key(".signatures.json") => {
                return Err(failed(
                    "it is signed (.signatures.json) but no verification key is configured \
                     (--verification-key): docket will not load a signed bundle unverified"
                        .into(),
                ));
            }
            None => None,
        };
        let (mut info, modules, data) = interpret(name, &files).map_err(failed)?;
        info.signed = signed;
        for root in &info.roots {
            let clash = set.bundles.iter().find_map(|(other, b)| {
                b.roots
                    .iter()
                    .find(|r| roots_overlap(r, root))
                    .map(|r| (other.clone(), r.clone()))
            });
            if let Some((other, theirs)) = clash {
                bail!(
                    "bundles {other} and {name} have overlapping roots ({theirs:?} and {root:?}): \
                     each part of data may come from one bundle only"
                );
            }
        }
        for (id, source) in modules {
            set.modules.insert(format!("{name}/{id}"), source);
        }
        merge(&mut set.data, data, name)?;
        set.bundles.insert(name.clone(), info);
    }
    Ok(())
}

/// Takes bundle `name` out of `set`: its modules, the data under its roots, its record. What
/// the next version of it brings is then installed with [`load_bundles`].
pub fn remove_bundle(set: &mut PolicySet, name: &str) {
    let Some(info) = set.bundles.remove(name) else {
        return;
    };
    let prefix = format!("{name}/");
    set.modules.retain(|id, _| !id.starts_with(&prefix));
    for root in &info.roots {
        let path: Vec<String> = root
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        set.delete_data(&path);
    }
}

/// The revision label a policy set's bundles give it: one bundle's revision, or
/// `name=revision,…` for several; `None` without bundles (or one without a revision).
pub fn revision_of(set: &PolicySet) -> Option<String> {
    match set.bundles.len() {
        0 => None,
        1 => set
            .bundles
            .values()
            .next()
            .map(|b| b.revision.clone())
            .filter(|r| !r.is_empty()),
        _ => Some(
            set.bundles
                .iter()
                .map(|(name, b)| format!("{name}={}", b.revision))
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>, bundle: &str) -> Result<()> {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
            }
            (Some(Value::Object(mine)), Value::Object(theirs)) => merge(mine, theirs, bundle)?,
            (Some(_), _) => bail!("bundle {bundle} sets data at {key} that is already set"),
        }
    }
    Ok(())
}

fn read_files(path: &Path) -> Result<Files> {
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let mut add = |name: String, bytes: Vec<u8>| -> Result<()> {
        total += bytes.len() as u64;
        if total > MAX_BUNDLE_BYTES {
            bail!(
                "{} holds more than {} MiB of files; docket refuses it (a bundle is sealed whole)",
                path.display(),
                MAX_BUNDLE_BYTES >> 20
            );
        }
        if files.insert(name.clone(), bytes).is_some() {
            bail!("{} holds the file {name} twice", path.display());
        }
        Ok(())
    };
    if path.is_dir() {
        let mut stack = vec![(path.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .collect::<std::io::Result<_>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push((entry.path(), rel));
                } else if kind.is_file() {
                    add(rel, std::fs::read(entry.path())?)?;
                }
            }
        }
        return Ok(Files(files));
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the bundle {}", path.display()))?;
    let gz = flate2::read::GzDecoder::new(file);
    let mut archive = tar::Archive::new(gz.take(MAX_BUNDLE_BYTES * 2));
    let entries = archive.entries().with_context(|| {
        format!(
            "{} is not a bundle: not a gzip'd tar archive",
            path.display()
        )
    })?;
    for entry in entries {
        let mut entry = entry
            .with_context(|| format!("{} is not a readable gzip'd tar archive", path.display()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let raw = entry.path()?.to_string_lossy().into_owned();
        if !kind.is_file() {
            bail!(
                "{}: {raw} is not a regular file (a link or device); bundles hold files only",
                path.display()
            );
        }
        let name = normalize(&raw).ok_or_else(|| {
            anyhow!(
                "{}: the file name {raw:?} leaves the bundle",
                path.display()
            )
        })?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        add(name, bytes)?;
    }
    Ok(Files(files))
}

/// A tar member's name as a path in the bundle: no leading `/` or `./`, no `..`.
fn normalize(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// OPA's manifest fields docket reads; others are refused by name (`deny_unknown_fields` would
/// refuse fields a newer OPA adds, so only the ones whose meaning docket cannot honour are).
#[derive(serde::Deserialize, Default)]
struct Manifest {
    #[serde(default)]
    revision: String,
    roots: Option<Vec<String>>,
    #[serde(default)]
    metadata: Map<String, Value>,
    rego_version: Option<i64>,
    #[serde(default)]
    file_rego_versions: BTreeMap<String, i64>,
    #[serde(default)]
    wasm: Vec<Value>,
}

type Interpreted = (BundleInfo, BTreeMap<String, String>, Map<String, Value>);

fn interpret(name: &str, files: &Files) -> std::result::Result<Interpreted, String> {
    let manifest: Manifest = match files.0.get(".manifest") {
        Some(bytes) => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| ".manifest is not UTF-8".to_string())?;
            docket_ledger::json::check(text)
                .map_err(|e| format!(".manifest is not valid JSON: {e}"))?;
            serde_json::from_str(text).map_err(|e| format!(".manifest does not read: {e}"))?
        }
        None => Manifest::default(),
    };
    if manifest.rego_version == Some(0) || manifest.file_rego_versions.values().any(|v| *v == 0) {
        return Err(
            "its manifest says Rego v0 (rego_version 0); docket reads Rego v1 only: rebuild the \
             bundle with `opa build --v1-compatible` after moving the modules to v1"
                .into(),
        );
    }
    if !manifest.wasm.is_empty() {
        return Err("it carries Wasm-compiled policies, which docket does not run".into());
    }
    let roots: Vec<String> = manifest
        .roots
        .clone()
        .unwrap_or_else(|| vec![String::new()])
        .iter()
        .map(|r| r.trim_matches('/').to_string())
        .collect();
    for (i, a) in roots.iter().enumerate() {
        for b in &roots[i + 1..] {
            if roots_overlap(a, b) {
                return Err(format!("manifest has overlapped roots: {a:?} and {b:?}"));
            }
        }
    }
    let mut modules = BTreeMap::new();
    let mut data = Map::new();
    let mut digests = BTreeMap::new();
    for (path, bytes) in &files.0 {
        digests.insert(
            path.clone(),
            format!("sha256:{}", docket_ledger::hash::sha256(&[bytes]).to_hex()),
        );
        let base = path.rsplit('/').next().unwrap_or(path);
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        match base {
            // Checked by `verify_signature` before the bundle is read.
            ".signatures.json" => {}
            "patch.json" => {
                return Err(
                    "it is a delta bundle (patch.json), which docket does not apply yet".into(),
                );
            }
            "policy.wasm" | "plan.json" => {
                return Err(format!(
                    "it carries {base}, a compiled policy docket does not run"
                ));
            }
            "data.yaml" | "data.yml" => {
                return Err(format!(
                    "{path}: docket does not read YAML data (its YAML reader would read some values \
                     otherwise than OPA's YAML 1.1); convert it to data.json"
                ));
            }
            "data.json" => {
                let text =
                    std::str::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
                docket_ledger::json::check(text)
                    .map_err(|e| format!("{path} is not valid JSON: {e}"))?;
                if let Some(n) = docket_ledger::json::integer_beyond_64_bits(text) {
                    return Err(format!("{path}: {}", crate::policies::integer_too_large(n)));
                }
                let value: Value =
                    serde_json::from_str(text).map_err(|e| format!("{path}: {e}"))?;
                insert(&mut data, dir, value).map_err(|e| format!("{path}: {e}"))?;
            }
            _ if base.ends_with(".rego") => {
                let source =
                    String::from_utf8(bytes.clone()).map_err(|_| format!("{path} is not UTF-8"))?;
                let package = package_path(&source)
                    .ok_or_else(|| format!("{path} has no package declaration"))?;
                if !roots.iter().any(|r| root_contains(r, &package)) {
                    return Err(format!(
                        "manifest roots {roots:?} do not permit package {} in module {path}",
                        package.replace('/', ".")
                    ));
                }
                modules.insert(path.clone(), source);
            }
            // Anything else is not OPA's to load either (it is still digested and recorded).
            _ => {}
        }
    }
    check_data_roots(&data, "", &roots)?;
    let _ = name;
    Ok((
        BundleInfo {
            revision: manifest.revision,
            roots,
            metadata: manifest.metadata,
            files: digests,
            signed: None,
        },
        modules,
        data,
    ))
}

/// Places `value` at the `/`-separated `dir` under `data`, merging objects key by key; a
/// `data.json` at the top must hold an object.
fn insert(
    data: &mut Map<String, Value>,
    dir: &str,
    value: Value,
) -> std::result::Result<(), String> {
    let segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = segments.split_last() else {
        let Value::Object(map) = value else {
            return Err("a data.json at the bundle's top must hold a JSON object".into());
        };
        return merge_strict(data, map);
    };
    let mut node = data;
    for segment in parents {
        let child = node
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match child {
            Value::Object(map) => map,
            _ => return Err(format!("data at {segment} is not an object")),
        };
    }
    let mut wrapped = Map::new();
    wrapped.insert(last.to_string(), value);
    merge_strict(node, wrapped)
}

fn merge_strict(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
) -> std::result::Result<(), String> {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
            }
            (Some(Value::Object(mine)), Value::Object(theirs)) => merge_strict(mine, theirs)?,
            (Some(_), _) => return Err(format!("data at {key} is set twice")),
        }
    }
    Ok(())
}

/// Every document must lie under a root; an object that leads towards a root is descended into
/// (OPA's rule: `manifest roots … do not permit data at path …`).
fn check_data_roots(
    node: &Map<String, Value>,
    at: &str,
    roots: &[String],
) -> std::result::Result<(), String> {
    for (key, value) in node {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}/{key}")
        };
        if roots.iter().any(|r| root_contains(r, &path)) {
            continue;
        }
        match value {
            Value::Object(children) if roots.iter().any(|r| root_contains(&path, r)) => {
                check_data_roots(children, &path, roots)?;
            }
            _ => {
                return Err(format!(
                    "manifest roots {roots:?} do not permit data at path /{path} (check the \
                     bundle's directory structure)"
                ));
            }
        }
    }
    Ok(())
}

/// `root` contains `path` (both `/`-separated, no leading `/`): the empty root contains
/// everything, else `path` is `root` or below it.
/// OPA's rule for writes through the API while bundles are active: a data path that lies under
/// a bundle's root, or above one, belongs to that bundle and may not be written, nor may the
/// whole document. `path` is `/`-separated, without a leading `/`; `""` is the root.
pub fn check_write_scope(set: &PolicySet, path: &str) -> std::result::Result<(), String> {
    if set.bundles.is_empty() {
        return Ok(());
    }
    if path.is_empty() {
        return Err("can't write to document root with bundle roots configured".into());
    }
    for (name, info) in &set.bundles {
        for root in &info.roots {
            if root.is_empty() {
                return Err(format!("all paths owned by bundle {name:?}"));
            }
            if roots_overlap(root, path) {
                return Err(format!("path {path} is owned by bundle {name:?}"));
            }
        }
    }
    Ok(())
}

/// [`check_write_scope`] for a module: the package it declares may not lie in a bundle's roots.
pub fn check_module_scope(set: &PolicySet, source: &str) -> std::result::Result<(), String> {
    match package_path(source) {
        Some(package) => check_write_scope(set, &package),
        // A module without a package fails to compile; the compiler says so.
        None => Ok(()),
    }
}

fn root_contains(root: &str, path: &str) -> bool {
    root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
}

fn roots_overlap(a: &str, b: &str) -> bool {
    root_contains(a, b) || root_contains(b, a)
}

/// The package a module declares, as a `/`-separated path (`package a.b` → `a/b`), read from
/// its first non-comment line. Quoted segments (`package a["b-c"]`) are read too.
fn package_path(source: &str) -> Option<String> {
    for line in source.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = line.strip_prefix("package")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let reference = rest.split('#').next()?.trim();
        let mut segments = Vec::new();
        let mut chars = reference.chars().peekable();
        let mut current = String::new();
        while let Some(c) = chars.next() {
            match c {
                '.' => segments.push(std::mem::take(&mut current)),
                '[' => {
                    if !current.is_empty() {
                        segments.push(std::mem::take(&mut current));
                    }
                    let quote = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    for c in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        current.push(c);
                    }
                    if chars.next() != Some(']') {
                        return None;
                    }
                    segments.push(std::mem::take(&mut current));
                    if chars.peek() == Some(&'.') {
                        chars.next();
                    }
                }
                c if c.is_whitespace() => break,
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            segments.push(current);
        }
        return Some(segments.join("/"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Files {
        Files(
            list.iter()
                .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn roots_modules_and_data_as_opa_checks_them() {
        let good = files(&[
            (".manifest", r#"{"revision":"r7","roots":["authz"]}"#),
            (
                "authz/policy.rego",
                "package authz\nimport rego.v1\nallow := true\n",
            ),
            ("authz/roles/data.json", r#"{"admin":["alice"]}"#),
        ]);
        let (info, modules, data) = interpret("b", &good).unwrap();
        assert_eq!(info.revision, "r7");
        assert_eq!(info.roots, ["authz"]);
        assert_eq!(info.files.len(), 3);
        assert!(modules.contains_key("authz/policy.rego"));
        assert_eq!(data["authz"]["roles"]["admin"][0], "alice");
        let outside = files(&[
            (".manifest", r#"{"roots":["authz"]}"#),
            ("other/data.json", "{}"),
            ("other/x/data.json", r#"{"a":1}"#),
        ]);
        let e = interpret("b", &outside).unwrap_err();
        assert!(e.contains("do not permit data at path /other"), "{e}");
        let module_outside = files(&[
            (".manifest", r#"{"roots":["authz"]}"#),
            ("x.rego", "package billing\n"),
        ]);
        assert!(
            interpret("b", &module_outside)
                .unwrap_err()
                .contains("do not permit package billing")
        );
        let overlapping = files(&[(".manifest", r#"{"roots":["a","a/b"]}"#)]);
        assert!(
            interpret("b", &overlapping)
                .unwrap_err()
                .contains("overlapped roots")
        );
        assert_eq!(go_number("1.50").unwrap(), "1.5");
        assert_eq!(go_number("1e3").unwrap(), "1000");
        assert_eq!(go_number("1e21").unwrap(), "1e+21");
        assert_eq!(go_number("0.0000001").unwrap(), "1e-7");
        assert_eq!(go_number("-0").unwrap(), "0");
        let mut out = String::new();
        Canonical {
            text: br#" {"b": [1, "x\u2028<"], "a": {"d": null, "c": true}} "#,
            at: 0,
        }
        .value(&mut out)
        .unwrap();
        assert_eq!(out, r#"{"a":{"c":true,"d":null},"b":[1,"x\u2028<"]}"#);
        let v0 = files(&[(".manifest", r#"{"rego_version":0}"#)]);
        assert!(interpret("b", &v0).unwrap_err().contains("Rego v0"));
        assert_eq!(
            package_path("# c\npackage a.b[\"c-d\"].e\n").as_deref(),
            Some("a/b/c-d/e")
        );
        assert_eq!(normalize("./a//b.rego").as_deref(), Some("a/b.rego"));
        assert_eq!(normalize("../x"), None);
        assert!(roots_overlap("", "x") && !roots_overlap("ab", "a"));
    }
}

/// How signed bundles are verified (OPA's `--verification-key`, `--verification-key-id`,
/// `--signing-alg`, `--scope`). With it, every bundle must carry a valid `.signatures.json`.
#[derive(Clone, Debug)]
pub struct Verification {
    /// A PEM public key or certificate (or a JWK) for RS*, PS*, ES* and EdDSA; the shared
    /// secret for HS*.
    pub key: String,
    pub key_id: String,
    pub algorithm: String,
    pub scope: String,
}

/// The JWS algorithms bundle signatures may use (those of `io.jwt.verify_*`).
pub const SIGNING_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
];

/// Who signed a bundle, as its verified signature says (recorded in the policy-change entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Signed {
    pub key_id: String,
    pub algorithm: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer: String,
}

#[derive(serde::Deserialize)]
struct SignaturesFile {
    #[serde(default)]
    signatures: Vec<String>,
    #[serde(default)]
    plugin: String,
}

#[derive(serde::Deserialize)]
struct SignedFile {
    name: String,
    hash: String,
    algorithm: String,
}

#[derive(serde::Deserialize)]
struct SignaturePayload {
    #[serde(default)]
    files: Vec<SignedFile>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    iss: String,
}

/// Checks a bundle's `.signatures.json` as OPA does: exactly one JWT, verified with the
/// configured key and algorithm (never the token's own), the scope equal to the configured one,
/// and every file of the bundle but the signatures listed in it with its digest, and nothing
/// listed that the bundle does not hold.
fn verify_signature(
    files: &Files,
    verification: &Verification,
) -> std::result::Result<Signed, String> {
    let Some(raw) = files.0.get(".signatures.json") else {
        return Err(
            "it has no .signatures.json, and a verification key is configured: an unsigned \
             bundle is refused"
                .into(),
        );
    };
    let text = std::str::from_utf8(raw).map_err(|_| ".signatures.json is not UTF-8".to_string())?;
    let signatures: SignaturesFile =
        serde_json::from_str(text).map_err(|e| format!(".signatures.json does not read: {e}"))?;
    if !signatures.plugin.is_empty() {
        return Err(format!(
            ".signatures.json names the verification plugin {:?}, which docket does not have",
            signatures.plugin
        ));
    }
    let [token] = signatures.signatures.as_slice() else {
        return Err(format!(
            ".signatures.json holds {} JWTs; OPA's format has exactly one",
            signatures.signatures.len()
        ));
    };
    let verified =
        docket_policy::builtins::verify_jws(&verification.algorithm, token, &verification.key)
            .map_err(|e| format!("its signature cannot be checked: {e}"))?;
    if !verified {
        return Err(format!(
            "its signature does not verify under the verification key {:?} ({})",
            verification.key_id, verification.algorithm
        ));
    }
    let payload_text = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .ok_or_else(|| "its JWT payload is not base64url".to_string())?;
    let payload: SignaturePayload = serde_json::from_slice(&payload_text)
        .map_err(|e| format!("its JWT payload does not read: {e}"))?;
    if payload.scope != verification.scope {
        return Err(format!(
            "scope mismatch: the signature's scope is {:?}, the configured one {:?}",
            payload.scope, verification.scope
        ));
    }
    let mut listed: BTreeMap<String, SignedFile> = payload
        .files
        .into_iter()
        .map(|f| (f.name.trim_start_matches('/').to_string(), f))
        .collect();
    for (path, bytes) in &files.0 {
        if path == ".signatures.json" {
            continue;
        }
        let entry = listed
            .remove(path)
            .ok_or_else(|| format!("file {path} is not included in the bundle signature"))?;
        let digest = file_digest(path, bytes, &entry.algorithm)?;
        let wanted = hex::decode(entry.hash.trim())
            .map_err(|_| format!("{path}: the signature's digest is not hex"))?;
        if digest != wanted {
            return Err(format!(
                "{path}: digest mismatch (the signature says {}, the file is {})",
                entry.hash,
                hex::encode(&digest)
            ));
        }
    }
    if !listed.is_empty() {
        return Err(format!(
            "file(s) {:?} are in the bundle signature but not in the bundle",
            listed.keys().collect::<Vec<_>>()
        ));
    }
    Ok(Signed {
        key_id: verification.key_id.clone(),
        algorithm: verification.algorithm.clone(),
        scope: payload.scope,
        issuer: payload.iss,
    })
}

/// A file's digest as OPA computes it for signatures: the bytes of a Rego or other file; for
/// `data.json`, `data.yaml` and `.manifest`, OPA's canonical walk of the parsed document.
fn file_digest(path: &str, bytes: &[u8], algorithm: &str) -> std::result::Result<Vec<u8>, String> {
    use sha2::Digest as _;
    let base = path.rsplit('/').next().unwrap_or(path);
    let input: Vec<u8> = if matches!(base, "data.json" | "data.yaml" | ".manifest") {
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
        let mut out = String::new();
        let mut parser = Canonical {
            text: text.as_bytes(),
            at: 0,
        };
        parser.value(&mut out).map_err(|e| format!("{path}: {e}"))?;
        out.into_bytes()
    } else {
        bytes.to_vec()
    };
    Ok(match algorithm {
        "SHA-256" => sha2::Sha256::digest(&input).to_vec(),
        "SHA-224" => sha2::Sha224::digest(&input).to_vec(),
        "SHA-384" => sha2::Sha384::digest(&input).to_vec(),
        "SHA-512" => sha2::Sha512::digest(&input).to_vec(),
        "SHA-512-224" => sha2::Sha512_224::digest(&input).to_vec(),
        "SHA-512-256" => sha2::Sha512_256::digest(&input).to_vec(),
        other => {
            return Err(format!(
                "{path}: the signature digests it with {other:?}; docket accepts the SHA-2 \
                 family (SHA-256 is OPA's default)"
            ));
        }
    })
}

/// OPA's canonical form of a JSON document for bundle signatures (`bundle/hash.go`): objects
/// with their keys sorted, `{"k":v,…}` and `[a,…]` without spaces, strings as Go's encoder
/// writes them without HTML escaping, numbers as Go writes the value OPA's loader reads (an
/// integer as its digits, anything else as a float64 in Go's JSON form).
struct Canonical<'a> {
    text: &'a [u8],
    at: usize,
}

impl Canonical<'_> {
    fn skip(&mut self) {
        while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn value(&mut self, out: &mut String) -> std::result::Result<(), String> {
        self.skip();
        match self.text.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut members: Vec<(String, String)> = Vec::new();
                loop {
                    self.skip();
                    if self.text.get(self.at) == Some(&b'}') {
                        self.at += 1;
                        break;
                    }
                    let key = self.string()?;
                    self.skip();
                    if self.text.get(self.at) != Some(&b':') {
                        return Err("not JSON: expected ':'".into());
                    }
                    self.at += 1;
                    let mut value = String::new();
                    self.value(&mut value)?;
                    members.push((key, value));
                    self.skip();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            break;
                        }
                        _ => return Err("not JSON: expected ',' or '}'".into()),
                    }
                }
                members.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go_string(key, out);
                    out.push(':');
                    out.push_str(value);
                }
                out.push('}');
            }
            Some(b'[') => {
                self.at += 1;
                out.push('[');
                let mut first = true;
                loop {
                    self.skip();
                    if self.text.get(self.at) == Some(&b']') {
                        self.at += 1;
                        break;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    self.value(out)?;
                    self.skip();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            break;
                        }
                        _ => return Err("not JSON: expected ',' or ']'".into()),
                    }
                }
                out.push(']');
            }
            Some(b'"') => {
                let s = self.string()?;
                go_string(&s, out);
            }
            Some(b't') if self.text[self.at..].starts_with(b"true") => {
                self.at += 4;
                out.push_str("true");
            }
            Some(b'f') if self.text[self.at..].starts_with(b"false") => {
                self.at += 5;
                out.push_str("false");
            }
            Some(b'n') if self.text[self.at..].starts_with(b"null") => {
                self.at += 4;
                out.push_str("null");
            }
            Some(_) => {
                let start = self.at;
                while self.at < self.text.len()
                    && matches!(
                        self.text[self.at],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.at += 1;
                }
                let literal = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                out.push_str(&go_number(literal)?);
            }
            None => return Err("not JSON: unexpected end".into()),
        }
        Ok(())
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let start = self.at;
        if self.text.get(self.at) != Some(&b'"') {
            return Err("not JSON: expected a string".into());
        }
        self.at += 1;
        while self.at < self.text.len() {
            match self.text[self.at] {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    let raw = std::str::from_utf8(&self.text[start..self.at])
                        .map_err(|_| "not UTF-8".to_string())?;
                    return serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"));
                }
                _ => self.at += 1,
            }
        }
        Err("not JSON: an unterminated string".into())
    }
}

/// A string as Go's `encoding/json` writes it with HTML escaping off (Go 1.22 and later).
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as OPA's loader reads it and Go's encoder writes it back: an integer literal within
/// 64 bits as its value's digits, anything else as a float64 in Go's JSON form (shortest digits;
/// exponent form below 1e-6 or from 1e21, `e-7`, `e+21`).
fn go_number(literal: &str) -> std::result::Result<String, String> {
    if !literal.contains(['.', 'e', 'E'])
        && let Ok(n) = literal.parse::<i64>()
    {
        return Ok(n.to_string());
    }
    let f: f64 = literal
        .parse()
        .map_err(|_| format!("not JSON: the number {literal:?}"))?;
    if !f.is_finite() {
        return Err(format!("the number {literal} is beyond a float64"));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return Ok(match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        });
    }
    Ok(if f == 0.0 && f.is_sign_negative() {
        "-0".into()
    } else {
        format!("{f}")
    })
}
