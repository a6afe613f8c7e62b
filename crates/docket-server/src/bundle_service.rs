//! Bundles from a bundle server: `docket serve --bundle NAME=http://…` downloads the bundle
//! before it starts and polls for new versions afterwards, as OPA's bundle plugin does:
//! `If-None-Match` with the last ETag (a `304` changes nothing), a random delay between the
//! minimum and the maximum between polls, backoff after a failure.
//!
//! A new version is activated atomically, through the same path as a policy change over the
//! API: the whole policy set with the new bundle in place of the old is checked on a scratch
//! instance, sealed, and only then published. A version that fails to load, verify or compile
//! leaves the previous one in force, and the refusal is sealed too (a policy-change entry with
//! `op` `bundle_refused`), so the log shows every version a server offered, not only those it
//! ran. The last active download of each bundle is kept in `<dir>/bundles/<name>.tar.gz`.

use crate::bundle::{self, Verification};
use crate::{AppState, opa_api};
use anyhow::{Result, anyhow, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A bundle polled from a server.
#[derive(Clone, Debug)]
pub struct RemoteBundle {
    pub name: String,
    pub url: String,
}

/// How often bundle servers are polled (OPA's `min_delay_seconds`, `max_delay_seconds`).
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            min_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(120),
        }
    }
}

/// Where the last active download of `name` is kept.
pub fn stored(dir: &Path, name: &str) -> PathBuf {
    dir.join("bundles").join(format!("{name}.tar.gz"))
}

fn client() -> reqwest::Client {
    crate::witnessing::http_client(Duration::from_secs(30))
}

/// What one request for a bundle came to.
enum Fetched {
    New {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
    Unchanged,
}

async fn fetch(client: &reqwest::Client, url: &str, etag: Option<&str>) -> Result<Fetched> {
    let mut request = client.get(url);
    if let Some(tag) = etag {
        request = request.header("If-None-Match", tag);
    }
    let response = request
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
    match response.status().as_u16() {
        304 => Ok(Fetched::Unchanged),
        200 => {
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = response
                .bytes()
                .await
                .map_err(|e| anyhow!("reading {url}: {e}"))?;
            Ok(Fetched::New {
                bytes: bytes.to_vec(),
                etag,
            })
        }
        status => bail!("{url} answered {status}"),
    }
}

/// Writes `bytes` to `path` durably, creating its directory.
fn keep(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        docket_store::private::create_dir_all(parent)?;
    }
    docket_store::files::replace_file(path, bytes, true)
}

/// Downloads each remote bundle before the server starts, into `<dir>/bundles/`, and returns
/// (name, file) pairs to load like local bundles, with each one's ETag. A bundle server that
/// cannot be reached stops the start, saying which.
pub async fn fetch_initial(
    dir: &Path,
    remotes: &[RemoteBundle],
) -> Result<Vec<(String, PathBuf, Option<String>)>> {
    let client = client();
    let mut out = Vec::new();
    for remote in remotes {
        let mut last = None;
        let mut fetched = None;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match fetch(&client, &remote.url, None).await {
                Ok(f) => {
                    fetched = Some(f);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(Fetched::New { bytes, etag }) = fetched else {
            bail!(
                "cannot download bundle {} from {}: {}; nothing was started",
                remote.name,
                remote.url,
                last.map_or("no content".to_string(), |e| format!("{e:#}"))
            );
        };
        let path = stored(dir, &remote.name);
        keep(&path, &bytes)?;
        out.push((remote.name.clone(), path, etag));
    }
    Ok(out)
}

/// Polls each remote bundle for as long as the server runs.
pub fn start(
    state: Arc<AppState>,
    dir: PathBuf,
    remotes: Vec<(RemoteBundle, Option<String>)>,
    polling: Polling,
    verification: Option<Verification>,
    revision: Option<String>,
) {
    for (remote, etag) in remotes {
        let poller = Poller {
            state: Arc::downgrade(&state),
            dir: dir.clone(),
            remote,
            etag,
            polling,
            verification: verification.clone(),
            revision: revision.clone(),
        };
        tokio::spawn(poller.run());
    }
}

struct Poller {
    /// Weak: the server's shutdown drops the last strong handle, which lets the log writer
    /// finish; the poller then stops at its next turn.
    state: Weak<AppState>,
    dir: PathBuf,
    remote: RemoteBundle,
    etag: Option<String>,
    polling: Polling,
    verification: Option<Verification>,
    /// The operator's `--revision`, which bundle revisions do not replace.
    revision: Option<String>,
}

impl Poller {
    async fn run(mut self) {
        let client = client();
        let mut failures = 0u32;
        loop {
            let (min, max) = (
                self.polling.min_delay,
                self.polling.max_delay.max(self.polling.min_delay),
            );
            let delay = min + (max - min).mul_f64(rand::random::<f64>());
            let delay = if failures > 0 {
                (delay * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(600))
            } else {
                delay
            };
            tokio::time::sleep(delay).await;
            if self.state.strong_count() == 0 {
                return;
            }
            let fetched = fetch(&client, &self.remote.url, self.etag.as_deref()).await;
            let now = std::time::SystemTime::now();
            self.status(|b| {
                b.last_request = Some(now);
                if fetched.is_ok() {
                    b.last_successful_request = Some(now);
                }
            });
            match fetched {
                Ok(Fetched::Unchanged) => failures = 0,
                Ok(Fetched::New { bytes, etag }) => {
                    failures = 0;
                    self.status(|b| b.last_successful_download = Some(now));
                    self.activate(bytes, etag).await;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(bundle = self.remote.name, "bundle download failed: {e:#}");
                    self.status(|b| {
                        b.failure = Some(("bundle_error", format!("download failed: {e:#}")))
                    });
                }
            }
        }
    }

    /// Records what happened to this bundle for `GET /v1/status`.
    fn status(&self, update: impl FnOnce(&mut crate::status::BundleEvents)) {
        if let Some(state) = self.state.upgrade() {
            state.status.bundle(&self.remote.name, update);
        }
    }

    /// Loads the downloaded version in place of the current one and activates it, or seals why
    /// not (the current version stays in force).
    async fn activate(&mut self, bytes: Vec<u8>, etag: Option<String>) {
        let name = self.remote.name.clone();
        let candidate = self
            .dir
            .join("bundles")
            .join(format!("{name}.candidate.tar.gz"));
        if let Err(e) = keep(&candidate, &bytes) {
            tracing::error!(bundle = name, "cannot keep the downloaded bundle: {e:#}");
            return;
        }
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let _writer = state.policy_writer.lock().await;
        let mut set = state.pool.current().set.clone();
        bundle::remove_bundle(&mut set, &name);
        let loaded = bundle::load_bundles(
            &mut set,
            &[(name.clone(), candidate.clone())],
            self.verification.as_ref(),
        );
        // Err((why, refused)): refused is false when the log, not the bundle, failed (the
        // version is then tried again at the next poll, and nothing is sealed for it).
        let outcome = match loaded {
            Err(e) => Err((format!("{e:#}"), true)),
            Ok(()) => {
                set.revision = self.revision.clone().or_else(|| bundle::revision_of(&set));
                let record_set = set.clone();
                let activated = name.clone();
                opa_api::change_policy(&state, set, move |version| {
                    let mut record = crate::load_record_value(&record_set, version);
                    record["activated"] = json!(activated);
                    record
                })
                .await
                .map_err(|e| {
                    let refused = e.status.is_client_error();
                    match e.errors {
                        Some(errors) => (format!("{}: {errors}", e.message), refused),
                        None => (e.message, refused),
                    }
                })
            }
        };
        state.status.bundle(&name, |b| match &outcome {
            Ok(()) => {
                b.last_successful_activation = Some(std::time::SystemTime::now());
                b.failure = None;
            }
            Err((why, _)) => b.failure = Some(("bundle_error", why.clone())),
        });
        match outcome {
            Ok(()) => {
                if let Err(e) = std::fs::rename(&candidate, stored(&self.dir, &name)) {
                    tracing::warn!(bundle = name, "cannot keep the active bundle: {e}");
                }
                self.etag = etag;
                tracing::info!(bundle = name, "bundle version activated and sealed");
            }
            Err((why, false)) => {
                tracing::error!(
                    bundle = name,
                    "bundle version not activated, the log failed: {why}"
                );
            }
            Err((why, true)) => {
                tracing::warn!(bundle = name, "bundle version refused: {why}");
                let digest = format!("sha256:{}", docket_ledger::hash::sha256(&[&bytes]).to_hex());
                let record = json!({
                    "op": "bundle_refused",
                    "bundle": name,
                    "url": self.remote.url,
                    "etag": etag,
                    "archive": digest,
                    "reason": why,
                });
                // The refused version is not retried until the server offers another.
                self.etag = etag;
                if let Err(e) = state
                    .appender
                    .record(docket_runtime::EntryKind::PolicyChange, record.to_string())
                    .await
                {
                    tracing::error!(bundle = name, "cannot seal the refusal: {e}");
                }
            }
        }
    }
}
