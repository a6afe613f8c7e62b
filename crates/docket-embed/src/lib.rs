//! Embed docket in a Rust service: every decision your service makes, sealed into a log anyone
//! can verify, durable before you act on it.
//!
//! A [`Docket`] is one log directory with one writer: open it (it is created on first use and
//! verified on every open), load policies, and [`decide`](Docket::decide): the query is
//! evaluated, the decision sealed, and the entry and a signed checkpoint covering it fsync'd
//! before the [`Receipt`] comes back. [`AsyncDocket`] is the same for async code: one thread
//! owns the log and commits every decision waiting at once (a group commit). [`verify`] checks a
//! log against its genesis key; [`Docket::prove`] proves a decision is in it.
//!
//! ```
//! use docket_embed::{Docket, GenerateKey, SecretKey};
//!
//! # let dir = docket_embed::doc_scratch();
//! let key = SecretKey::generate("example.com/audit")?;
//! let mut docket = Docket::open(&dir, key)?;
//! docket.add_policy("authz.rego", r#"
//!     package authz
//!     import rego.v1
//!     default allow := false
//!     allow if input.user == "alice"
//! "#)?;
//! let receipt = docket.decide("authz/allow", r#"{"user":"alice"}"#)?;
//! assert_eq!(receipt.result.as_deref(), Some("true"));
//! assert!(receipt.decision_id.is_some(), "sealed, durable, and named");
//! # Ok::<(), docket_embed::Error>(())
//! ```
//!
//! Everything here runs the docket WebAssembly component in wasmtime (through
//! `docket-runtime`), the very code `docket serve`, the browser verifier and the Envoy filter
//! run; this crate adds no logic of its own to evaluation, sealing or verification. The formats
//! are specified in docs/log-format.md; docs/embedding.md says what a host must and must never
//! do, for Rust, JavaScript and Python.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docket_ledger::merkle::Tree;
use docket_runtime::log::{AuditLog, NewLog};
use docket_runtime::{EntryKind, Runtime};
use docket_server::policies::PolicySet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use docket_ledger::{PublicKey, SecretKey};

/// What went wrong, in terms a caller can act on. Each carries a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A policy or data document does not load (syntax, an unsupported builtin, bad JSON).
    /// Nothing was loaded or sealed.
    #[error("the policy does not load: {0}")]
    Policy(String),
    /// The path names no package, rule or data document of the loaded policies: almost always
    /// a typo. Nothing was sealed.
    #[error("{0}")]
    UnknownPath(String),
    /// The input is not JSON docket accepts, or evaluating it failed. Nothing was sealed.
    #[error("the decision could not be made: {0}")]
    Decision(String),
    /// The log could not be opened, written or made durable. After a failed write nothing of
    /// the batch was acknowledged; the next call reopens the log from what is on disk.
    #[error("the log: {0}")]
    Log(String),
    /// The log does not verify: where and why.
    #[error("the log does not verify: {0}")]
    Verify(String),
    /// The docket component could not be compiled or loaded (a damaged cache is rebuilt, so
    /// this is rare: no memory, or a wasmtime that does not support this machine).
    #[error("loading the docket component: {0}")]
    Component(String),
    /// No decision with this id is in the log.
    #[error("no decision with id {0} is in the log")]
    NotFound(String),
}

type Result<T> = std::result::Result<T, Error>;

fn log_error(e: impl std::fmt::Display) -> Error {
    Error::Log(e.to_string())
}

/// Extends `SecretKey` with key generation from the operating system's randomness.
pub trait GenerateKey: Sized {
    /// A new random Ed25519 key named `name` (a C2SP key name: no spaces or `+`; by convention
    /// the log's URL without the scheme, which also becomes the log's origin).
    ///
    /// ```
    /// use docket_embed::{GenerateKey, SecretKey};
    /// let key = SecretKey::generate("example.com/audit")?;
    /// assert_eq!(key.public().name(), "example.com/audit");
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    fn generate(name: &str) -> Result<Self>;
}

impl GenerateKey for SecretKey {
    fn generate(name: &str) -> Result<SecretKey> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        SecretKey::from_seed(name, &seed).map_err(|e| Error::Log(e.to_string()))
    }
}

/// The signing key in `path` (a docket `.key` file, C2SP signer key, which must be private to
/// its owner: mode 0600), or a new random key named `name` written there (mode 0600, with its
/// public key beside it as `.pub`) when there is none yet.
///
/// ```
/// # let dir = docket_embed::doc_scratch();
/// let key = docket_embed::key_file(dir.join("audit.key"), "example.com/audit")?;
/// let again = docket_embed::key_file(dir.join("audit.key"), "example.com/audit")?;
/// assert_eq!(key.public(), again.public());
/// assert!(dir.join("audit.pub").exists());
/// # Ok::<(), docket_embed::Error>(())
/// ```
pub fn key_file(path: impl AsRef<Path>, name: &str) -> Result<SecretKey> {
    let path = path.as_ref();
    if path.exists() {
        return docket_runtime::log::read_secret_key(path).map_err(|e| log_error(format!("{e:#}")));
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| path.extension().is_some_and(|x| x == "key"))
        .ok_or_else(|| {
            Error::Log(format!(
                "{}: a key file's name ends in .key",
                path.display()
            ))
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    docket_runtime::log::write_new_key(dir, stem, name).map_err(|e| log_error(format!("{e:#}")))
}

/// The version of the policies a decision was made under: `sha256:<hex>` over exactly the
/// modules and data loaded (docs/log-format.md §5), and an optional label such as a git commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub digest: String,
    pub revision: Option<String>,
}

/// What a sealed decision came to. `result` is the policy's answer as JSON text (`None`:
/// undefined); `decision_id`, `seq` and `entry_hash` name the entry, unless the log's logging
/// rules dropped the decision (it is then only counted, in a tally entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub result: Option<String>,
    pub decision_id: Option<String>,
    pub seq: Option<u64>,
    /// The entry hash, lowercase hex: its Merkle leaf.
    pub entry_hash: Option<String>,
}

/// An RFC 9162 inclusion proof of one entry against a signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub seq: u64,
    /// The entry hash, lowercase hex.
    pub entry_hash: String,
    pub tree_size: u64,
    /// The proof's hashes, base64, in RFC 9162 order.
    pub hashes: Vec<String>,
    /// The signed checkpoint note whose root the proof leads to.
    pub checkpoint: String,
}

/// What [`verify`] established about a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub decisions: u64,
    /// The Merkle root, lowercase hex.
    pub root: String,
    /// Every key the log used, the genesis key first (note verifier keys).
    pub keys: Vec<String>,
}

/// Where the compiled component is cached: `DOCKET_CACHE_DIR`, else `$XDG_CACHE_HOME/docket`,
/// else `~/.cache/docket`, else the temporary directory. Compiling the component takes seconds;
/// loading it from the cache, milliseconds.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("DOCKET_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("docket")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/docket")))
        .unwrap_or_else(|| std::env::temp_dir().join("docket-cache"))
}

/// The docket component, compiled (or loaded from [`cache_dir`]) for this process.
///
/// ```
/// let runtime = docket_embed::runtime()?;
/// # Ok::<(), docket_embed::Error>(())
/// ```
pub fn runtime() -> Result<Runtime> {
    Runtime::new(Some(&cache_dir())).map_err(|e| Error::Component(e.to_string()))
}

/// How to open a log: [`Docket::open`] takes the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The key the log was started with, whose chain of rotations leads to the key in force.
    /// Default: the signing key's public key (a log that never rotated its key).
    pub genesis: Option<PublicKey>,
    /// A new log's origin. Default: the signing key's name.
    pub origin: Option<String>,
    /// Keep the salts of values masked by the logging rules here (appended, fsync'd before
    /// the entries they belong to). Default: discarded; masked values can then never be
    /// revealed.
    pub salts: Option<PathBuf>,
    /// Sign every entry, not only each commit's checkpoint (fixed when the log is created).
    pub sign_entries: bool,
}

/// One log directory with one writer. Not `Sync`: give it to one thread, or use
/// [`AsyncDocket`].
pub struct Docket {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    key: SecretKey,
    genesis: PublicKey,
    options: Options,
    /// `None` after a failed commit, until the log is reopened from disk. Its instance seals.
    log: Option<AuditLog>,
    /// The instance that evaluates, loaded with `policies` (as `docket serve` evaluates on
    /// instances apart from the one that seals).
    engine: docket_runtime::Instance,
    /// The policies loaded, and the version the log last sealed a policy change for.
    policies: PolicySet,
    sealed_version: Option<String>,
    /// Leaf hashes of the durable entries, and decision ids to their seq, for proofs.
    tree: Tree,
    decision_ids: HashMap<String, u64>,
    chain_id: Option<docket_ledger::Hash>,
    checkpoint: String,
}

impl Docket {
    /// Opens the log in `dir`, creating it (genesis entry, first checkpoint) on first use,
    /// signing with `key`. An existing log is recovered (an unfinished commit is cut) and
    /// verified whole before anything is appended.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let key = SecretKey::generate("example.com/audit")?;
    /// let docket = Docket::open(&dir, key.clone())?;
    /// assert_eq!(docket.size(), 1, "the genesis entry");
    /// drop(docket);
    /// let again = Docket::open(&dir, key)?;
    /// assert_eq!(again.size(), 1);
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, key: SecretKey) -> Result<Docket> {
        Docket::open_with(dir, key, Options::default())
    }

    /// [`Docket::open`] with [`Options`].
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, Options, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let key = SecretKey::generate("example.com/audit")?;
    /// let options = Options { sign_entries: true, ..Options::default() };
    /// let docket = Docket::open_with(&dir, key, options)?;
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn open_with(dir: impl AsRef<Path>, key: SecretKey, options: Options) -> Result<Docket> {
        let runtime = Arc::new(runtime()?);
        let genesis = options
            .genesis
            .clone()
            .unwrap_or_else(|| key.public().clone());
        let engine = runtime
            .instantiate()
            .map_err(|e| Error::Component(e.to_string()))?;
        let mut docket = Docket {
            dir: dir.as_ref().to_path_buf(),
            engine,
            runtime,
            key,
            genesis,
            options,
            log: None,
            policies: PolicySet::default(),
            sealed_version: None,
            tree: Tree::new(),
            decision_ids: HashMap::new(),
            chain_id: None,
            checkpoint: String::new(),
        };
        docket.reopen()?;
        Ok(docket)
    }

    /// Opens (or creates) the log from disk, rebuilding the proof index and reloading the
    /// policies into the fresh instance.
    fn reopen(&mut self) -> Result<()> {
        let mut instance_id = [0u8; 8];
        rand::fill(&mut instance_id);
        let new = NewLog {
            origin: self.options.origin.as_deref(),
            signing: if self.options.sign_entries {
                docket_runtime::SigningMode::Entry
            } else {
                docket_runtime::SigningMode::Checkpoint
            },
            instance_id: &docket_runtime::log::hex(&instance_id),
            replica: None,
        };
        let opened =
            AuditLog::open_or_create(&self.dir, &self.runtime, &self.genesis, &self.key, &new)
                .map_err(|e| log_error(format!("{e:#}")))?;
        let mut log = opened.log;
        if let Some(path) = &self.options.salts {
            log.keep_salts_in(docket_store::salts::SaltFile::open(path).map_err(log_error)?);
        }
        self.tree = Tree::new();
        self.decision_ids.clear();
        self.chain_id = None;
        for frame in &opened.frames {
            match frame {
                docket_store::Frame::Entry(bytes) => {
                    let entry = docket_ledger::Entry::decode(bytes).map_err(log_error)?;
                    self.index(&entry);
                }
                docket_store::Frame::Checkpoint(note) => self.checkpoint = note.clone(),
            }
        }
        self.sealed_version = docket_runtime::log::last_policy_version(&opened.frames);
        self.log = Some(log);
        Ok(())
    }

    fn index(&mut self, entry: &docket_ledger::Entry) {
        let chain_id = *self.chain_id.get_or_insert(entry.hash);
        if let Some(id) = docket_ledger::record::entry_decision_id(entry, &chain_id) {
            self.decision_ids.insert(id, entry.seq);
        }
        self.tree.push(entry.hash);
    }

    fn log(&mut self) -> Result<&mut AuditLog> {
        if self.log.is_none() {
            self.reopen()?;
        }
        Ok(self.log.as_mut().expect("reopened"))
    }

    /// Durable entries in the log.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Loads policy (`.rego`) and data (`.json`) files and directories as OPA loads them
    /// (docs/api.md: a directory recursively, module ids their paths under it, data placed at
    /// its directory's path), replacing what was loaded before. The policy set is sealed into
    /// the log as a policy-change entry, durable, before any decision under it; loading the
    /// same set again seals nothing.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// # let policies = dir.join("policies");
    /// # std::fs::create_dir_all(&policies).unwrap();
    /// # std::fs::write(policies.join("authz.rego"), "package authz\nimport rego.v1\nallow if input.user == \"alice\"\n").unwrap();
    /// let mut docket = Docket::open(dir.join("log"), SecretKey::generate("example.com/audit")?)?;
    /// let version = docket.load_policies(&[&policies])?;
    /// assert!(version.digest.starts_with("sha256:"));
    /// assert_eq!(docket.size(), 2, "genesis and the policy change");
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn load_policies<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<PolicyVersion> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        if paths.is_empty() {
            return Err(Error::Policy(
                "no policy files given (an empty list would load docket's examples)".into(),
            ));
        }
        let set = docket_server::load_policy_set(&paths, None)
            .map_err(|e| Error::Policy(format!("{e:#}")))?;
        self.install(set)
    }

    /// Replaces the whole policy set with these modules (id, Rego source) and this `data`
    /// document (a JSON object), sealed as [`load_policies`](Docket::load_policies) seals:
    /// once, and again only when it changes. The way to load policies a service carries in
    /// its own binary.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let key = SecretKey::generate("example.com/audit")?;
    /// let modules = [("authz.rego", "package authz\nimport rego.v1\nallow if input.user in data.admins\n")];
    /// let mut docket = Docket::open(&dir, key.clone())?;
    /// docket.set_policies(&modules, r#"{"admins":["alice"]}"#)?;
    /// assert_eq!(docket.size(), 2, "genesis and the policy set");
    /// drop(docket);
    /// // Started again with the same policies: nothing new to seal.
    /// let mut docket = Docket::open(&dir, key)?;
    /// docket.set_policies(&modules, r#"{"admins":["alice"]}"#)?;
    /// assert_eq!(docket.size(), 2);
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn set_policies(&mut self, modules: &[(&str, &str)], data: &str) -> Result<PolicyVersion> {
        let mut set = PolicySet::default();
        for (id, source) in modules {
            set.modules.insert(id.to_string(), source.to_string());
        }
        docket_ledger::json::check(data)
            .map_err(|e| Error::Policy(format!("the data document is not valid JSON: {e}")))?;
        match serde_json::from_str(data) {
            Ok(serde_json::Value::Object(map)) => set.data = map,
            _ => {
                return Err(Error::Policy(
                    "the data document must be a JSON object".into(),
                ));
            }
        }
        self.install(set)
    }

    /// Adds one Rego module from text (to the policies already loaded), sealing the new policy
    /// set as [`load_policies`](Docket::load_policies) does.
    ///
    /// ```
    /// use docket_embed::{Docket, Error, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow if input.admin\n")?;
    /// // A module that does not parse is refused, and nothing is sealed for it.
    /// let size = docket.size();
    /// assert!(matches!(docket.add_policy("bad.rego", "package bad\nallow if {"), Err(Error::Policy(_))));
    /// assert_eq!(docket.size(), size);
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn add_policy(&mut self, id: &str, source: &str) -> Result<PolicyVersion> {
        let mut set = self.policies.clone();
        set.modules.insert(id.to_string(), source.to_string());
        self.install(set)
    }

    /// Sets the data document at `path` (slash-separated under `data`; empty for the root,
    /// which must be an object), sealing the new policy set.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow if input.user in data.admins\n")?;
    /// docket.put_data("admins", r#"["alice"]"#)?;
    /// let receipt = docket.decide("authz/allow", r#"{"user":"alice"}"#)?;
    /// assert_eq!(receipt.result.as_deref(), Some("true"));
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn put_data(&mut self, path: &str, json: &str) -> Result<PolicyVersion> {
        docket_ledger::json::check(json)
            .map_err(|e| Error::Policy(format!("the data document is not valid JSON: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::Policy(format!("the data document is not valid JSON: {e}")))?;
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut set = self.policies.clone();
        set.put_data(&segments, value).map_err(Error::Policy)?;
        self.install(set)
    }

    /// Loads `set` into a new instance (a set that does not load changes nothing), makes it
    /// the one that evaluates, and seals it if the log has not seen this version.
    fn install(&mut self, set: PolicySet) -> Result<PolicyVersion> {
        let mut engine = self.runtime.instantiate().map_err(log_error)?;
        let version = set
            .load_into(&mut engine)
            .map_err(|e| Error::Policy(e.to_string()))?;
        if self.sealed_version.as_deref() != Some(version.digest.as_str()) {
            let record = docket_server::load_record(&set, &version);
            let log = self.log()?;
            if let Err(e) = log.record(EntryKind::PolicyChange, &record) {
                self.log = None;
                return Err(log_error(e));
            }
            self.commit()?;
            self.sealed_version = Some(version.digest.clone());
        }
        self.engine = engine;
        self.policies = set;
        Ok(PolicyVersion {
            digest: version.digest,
            revision: version.revision,
        })
    }

    /// Evaluates `input` (JSON text) at `path` (`authz/allow`, or OPA's `data.authz.allow`),
    /// seals the decision and makes it durable with a signed checkpoint before returning.
    ///
    /// ```
    /// use docket_embed::{Docket, Error, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\ndefault allow := false\nallow if input.user == \"alice\"\n")?;
    /// let denied = docket.decide("data.authz.allow", r#"{"user":"mallory"}"#)?;
    /// assert_eq!(denied.result.as_deref(), Some("false"));
    /// // A typo names nothing: refused, and nothing is sealed for it.
    /// assert!(matches!(docket.decide("authz/alow", "{}"), Err(Error::UnknownPath(_))));
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn decide(&mut self, path: &str, input: &str) -> Result<Receipt> {
        Ok(self.decide_all(&[(path, input)])?.remove(0))
    }

    /// Decides every request and makes them durable together: one fsync and one signed
    /// checkpoint for the batch (a group commit). All or nothing: on an error no decision of
    /// the batch is acknowledged.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow if input.user == \"alice\"\n")?;
    /// let receipts = docket.decide_all(&[("authz/allow", r#"{"user":"alice"}"#), ("authz/allow", r#"{"user":"bob"}"#)])?;
    /// assert_eq!(receipts[0].result.as_deref(), Some("true"));
    /// assert_eq!(receipts[1].result, None, "undefined: no rule matched");
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn decide_all(&mut self, requests: &[(&str, &str)]) -> Result<Vec<Receipt>> {
        // Every decision first: a request that cannot be decided seals nothing.
        let decisions = requests
            .iter()
            .map(|(path, input)| self.decision(path, input))
            .collect::<Result<Vec<_>>>()?;
        self.seal_and_commit(&decisions)
    }

    /// Each request decided on its own: the ones that can be decided are sealed and committed
    /// together (one group commit), each other one gets its own error. The outer error is the
    /// log's (a failed commit), which fails them all. [`AsyncDocket`] commits this way.
    pub(crate) fn decide_each(
        &mut self,
        requests: &[(&str, &str)],
    ) -> Result<Vec<Result<Receipt>>> {
        let decided: Vec<Result<docket_runtime::Decision>> = requests
            .iter()
            .map(|(path, input)| self.decision(path, input))
            .collect();
        let good: Vec<docket_runtime::Decision> = decided
            .iter()
            .filter_map(|d| d.as_ref().ok().cloned())
            .collect();
        let mut receipts = self.seal_and_commit(&good)?.into_iter();
        Ok(decided
            .into_iter()
            .map(|d| d.map(|_| receipts.next().expect("one receipt per decision")))
            .collect())
    }

    /// One request evaluated, ready to seal: a path that names nothing or an input the policy
    /// cannot decide on is an error.
    fn decision(&mut self, path: &str, input: &str) -> Result<docket_runtime::Decision> {
        let path = query_path(path)?;
        if !self.engine.defines(&path).map_err(log_error)? {
            return Err(Error::UnknownPath(format!(
                "{path} names no package, rule or data document of the loaded policies; \
                 nothing was sealed"
            )));
        }
        self.engine
            .evaluate(&path, Some(input))
            .map_err(|e| Error::Decision(e.to_string()))
    }

    fn seal_and_commit(&mut self, decisions: &[docket_runtime::Decision]) -> Result<Vec<Receipt>> {
        let log = self.log()?;
        let mut receipts = Vec::with_capacity(decisions.len());
        let mut failed = None;
        for decision in decisions {
            match log.seal(decision) {
                Ok(sealed) => receipts.push(Receipt {
                    result: sealed.result,
                    decision_id: sealed.entry.as_ref().map(|e| e.decision_id.clone()),
                    seq: sealed.entry.as_ref().map(|e| e.seq),
                    entry_hash: sealed.entry.as_ref().map(|e| e.entry_hash.clone()),
                }),
                Err(e) => {
                    failed = Some(log_error(e));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // The batch is abandoned: the sealer must not continue from entries never stored.
            self.log = None;
            return Err(e);
        }
        self.commit()?;
        Ok(receipts)
    }

    /// Evaluates without sealing anything: a dry run. Returns the result as JSON text, `None`
    /// when undefined.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow if input.user == \"alice\"\n")?;
    /// let size = docket.size();
    /// assert_eq!(docket.evaluate("authz/allow", r#"{"user":"alice"}"#)?.as_deref(), Some("true"));
    /// assert_eq!(docket.size(), size, "nothing sealed");
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn evaluate(&mut self, path: &str, input: &str) -> Result<Option<String>> {
        let path = query_path(path)?;
        if !self.engine.defines(&path).map_err(log_error)? {
            return Err(Error::UnknownPath(format!(
                "{path} names no package, rule or data document of the loaded policies"
            )));
        }
        let decision = self
            .engine
            .evaluate(&path, Some(input))
            .map_err(|e| Error::Decision(e.to_string()))?;
        Ok(decision.result)
    }

    fn commit(&mut self) -> Result<()> {
        let log = self.log()?;
        match log.commit() {
            Ok(commit) => {
                for sealed in &commit.entries {
                    let entry = docket_ledger::Entry::decode(&sealed.encoded).map_err(log_error)?;
                    self.index(&entry);
                }
                if let Some(checkpoint) = commit.checkpoint {
                    self.checkpoint = checkpoint.note;
                }
                Ok(())
            }
            Err(e) => {
                // The sealer moved past entries that may not be on disk: reopen before the next
                // call, so nothing is ever appended after a gap.
                self.log = None;
                Err(log_error(format!("{e:#}")))
            }
        }
    }

    /// An inclusion proof of the decision `decision_id` against the latest checkpoint,
    /// checked before it is returned.
    ///
    /// ```
    /// use docket_embed::{Docket, GenerateKey, SecretKey};
    /// # let dir = docket_embed::doc_scratch();
    /// let mut docket = Docket::open(&dir, SecretKey::generate("example.com/audit")?)?;
    /// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow := true\n")?;
    /// let receipt = docket.decide("authz/allow", "{}")?;
    /// let proof = docket.prove(receipt.decision_id.as_deref().unwrap())?;
    /// assert_eq!(proof.seq, receipt.seq.unwrap());
    /// assert_eq!(proof.tree_size, docket.size());
    /// # Ok::<(), docket_embed::Error>(())
    /// ```
    pub fn prove(&mut self, decision_id: &str) -> Result<InclusionProof> {
        let seq = *self
            .decision_ids
            .get(decision_id)
            .ok_or_else(|| Error::NotFound(decision_id.to_string()))?;
        let note = docket_ledger::SignedCheckpoint::parse(&self.checkpoint)
            .map_err(|e| log_error(format!("the latest checkpoint: {e}")))?;
        let size = note.checkpoint.size;
        let hashes = self
            .tree
            .inclusion_proof(seq, size)
            .ok_or_else(|| log_error(format!("entry {seq} is not in the checkpoint")))?;
        let leaf = self
            .tree
            .leaf(seq)
            .expect("indexed entries are in the tree");
        docket_ledger::merkle::verify_inclusion(&leaf, seq, size, &hashes, &note.checkpoint.root)
            .map_err(|e| Error::Verify(format!("the proof does not check: {e}")))?;
        Ok(InclusionProof {
            seq,
            entry_hash: leaf.to_hex(),
            tree_size: size,
            hashes: hashes.iter().map(|h| B64.encode(h.0)).collect(),
            checkpoint: self.checkpoint.clone(),
        })
    }
}

/// docket's path (`authz/allow`) for `data.authz.allow`, `data`, or a path already.
fn query_path(query: &str) -> Result<String> {
    let query = query.trim();
    if query == "data" {
        return Ok(String::new());
    }
    match query.strip_prefix("data.") {
        Some(reference) => Ok(reference.replace('.', "/")),
        None if !query.contains('.') => Ok(query.trim_matches('/').to_string()),
        None => Err(Error::UnknownPath(format!(
            "{query:?} is neither a data reference (data.authz.allow) nor a path (authz/allow)"
        ))),
    }
}

/// Verifies the log in `dir` against its genesis key: every entry, link, signature and
/// checkpoint, through the component. Reads the log without locking or changing it.
///
/// ```
/// use docket_embed::{Docket, GenerateKey, SecretKey};
/// # let dir = docket_embed::doc_scratch();
/// let key = SecretKey::generate("example.com/audit")?;
/// let mut docket = Docket::open(&dir, key.clone())?;
/// docket.add_policy("authz.rego", "package authz\nimport rego.v1\nallow := true\n")?;
/// docket.decide("authz/allow", "{}")?;
/// let verified = docket_embed::verify(&dir, key.public())?;
/// assert_eq!((verified.entries, verified.decisions), (3, 1));
/// # Ok::<(), docket_embed::Error>(())
/// ```
pub fn verify(dir: impl AsRef<Path>, genesis: &PublicKey) -> Result<Verified> {
    let dir = dir.as_ref();
    let scan = match docket_store::scan_dir(dir).map_err(|e| log_error(format!("{e:#}")))? {
        Ok(scan) => scan,
        Err(damage) => return Err(Error::Verify(damage.to_string())),
    };
    if let Some(torn) = &scan.tail {
        return Err(Error::Verify(format!(
            "{torn}: a crash during a commit left it, and nothing in it was acknowledged; the \
             next writer cuts it"
        )));
    }
    let runtime = runtime()?;
    let mut instance = runtime.instantiate().map_err(log_error)?;
    use docket_runtime::Verdict as _;
    let report =
        docket_runtime::log::verify_frames(&mut instance, genesis, &scan.frames(), None, |_| {})
            .verdict()
            .map_err(log_error)?
            .map_err(|e| Error::Verify(e.to_string()))?;
    let summary = docket_ledger::report::Summary::from(&report);
    Ok(Verified {
        entries: summary.entries,
        decisions: summary.count(docket_ledger::EntryKind::Decision),
        root: summary.root.to_hex(),
        keys: summary.keys.clone(),
    })
}

/// A fresh scratch directory for this crate's documentation examples.
#[doc(hidden)]
pub fn doc_scratch() -> PathBuf {
    let mut label = [0u8; 8];
    rand::fill(&mut label);
    let dir = std::env::temp_dir().join(format!(
        "docket-embed-doc-{}",
        docket_runtime::log::hex(&label)
    ));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

mod asynchronous;
pub use asynchronous::AsyncDocket;
