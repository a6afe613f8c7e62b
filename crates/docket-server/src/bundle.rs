//! OPA bundles (OPA's "Bundle File Format"): a `.tar.gz` or a directory holding Rego modules,
//! `data.json` documents placed at their directory's path, and an optional `.manifest` with the
//! bundle's `revision`, `roots` and `metadata`. docket reads them as OPA reads them, and checks
//! what OPA checks (roots that do not overlap, within a bundle and between bundles; every module's
//! package and every data document under a root), and records what it loaded: each bundle's
//! name, revision, roots and the SHA-256 of every file, sealed in the policy-change entry.
//!
//! Refused, each with a sentence, because loading them without their meaning would be wrong:
//! signed bundles (`.signatures.json`: docket does not verify bundle signatures yet, and will not
//! load one unverified), delta bundles (`patch.json`), Wasm and plan modules, Rego v0 modules
//! (`rego_version: 0`), YAML data (docket's YAML reader differs from OPA's YAML 1.1).

use crate::policies::PolicySet;
use anyhow::{Context, Result, anyhow, bail};
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
pub fn load_bundles(set: &mut PolicySet, bundles: &[(String, std::path::PathBuf)]) -> Result<()> {
    let mut all_roots: Vec<(String, String)> = Vec::new();
    for (name, path) in bundles {
        if set.bundles.contains_key(name) {
            bail!("two bundles are named {name}; name them apart with --bundle NAME=PATH");
        }
        let files = read_files(path)?;
        let (info, modules, data) = interpret(name, &files)
            .map_err(|e| anyhow!("bundle {name} ({}): {e}", path.display()))?;
        for root in &info.roots {
            if let Some((other, theirs)) = all_roots.iter().find(|(_, r)| roots_overlap(r, root)) {
                bail!(
                    "bundles {other} and {name} have overlapping roots ({theirs:?} and {root:?}): \
                     each part of data may come from one bundle only"
                );
            }
        }
        all_roots.extend(info.roots.iter().map(|r| (name.clone(), r.clone())));
        for (id, source) in modules {
            set.modules.insert(format!("{name}/{id}"), source);
        }
        merge(&mut set.data, data, name)?;
        set.bundles.insert(name.clone(), info);
    }
    Ok(())
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
            ".signatures.json" => {
                return Err(
                    "it is signed (.signatures.json), and docket does not verify bundle \
                     signatures yet: it will not load a signed bundle unverified. Load the \
                     unsigned bundle, or wait for signature verification"
                        .into(),
                );
            }
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
        let signed = files(&[(".signatures.json", "{}")]);
        assert!(interpret("b", &signed).unwrap_err().contains("signed"));
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
