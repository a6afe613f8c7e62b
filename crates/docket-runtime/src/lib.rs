//! docket-runtime: the wasmtime embedding of the docket component, and the audit log that
//! joins it to the store.
//!
//! [`Runtime`] compiles the component once per process (or loads the compiled artifact from an
//! on-disk cache keyed by the component's hash and the engine's configuration) and keeps an
//! `InstancePre`, so each [`Instance`] costs only an instantiation. An [`Instance`] owns one
//! store and gives typed access to the component's policy engine, sealer and verifier.
//! [`log::AuditLog`] is a log directory: it opens or creates one, decides, seals through an
//! instance and appends to a [`docket_store::Store`]. [`clock`] is the wall clock the component
//! seals by; [`fork`] separates the histories of a log two writers appended to at once.
//!
//! Architecture invariant: the host never evaluates, seals or verifies by itself; every such
//! call goes through the component.
//!
//! API boundary: this crate knows wasmtime and the store; it knows nothing of HTTP, the CLI or
//! tokio. `docket-server` and the `docket` binary build on it.

pub mod clock;
mod error;
pub mod fork;
pub mod log;

use std::hash::{Hash as _, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::Result;
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "docket",
    });
}

use bindings::docket::audit::types as wit;
pub use bindings::exports::docket::audit::policy::PolicyError;
pub use bindings::exports::docket::audit::sealing::SealError;

pub use bindings::exports::docket::audit::verification::{PruneSummary, Report};
/// Verification failures cross the WIT boundary as the component's `verify-error` and are
/// handed on as the ledger's own type, so their names and wording are the ledger's alone.
pub use docket_ledger::verifier::VerifyError;
pub use error::{CallError, Describe, Verdict};
pub use wit::{
    ChainState, Checkpoint, Decision, EntryKind, LogRules, MaskRule, MaskSalt, PolicyVersion,
    SealedEntry, SealedPrune, SigningMode,
};

/// The component, built by this crate's `build.rs` from `crates/docket-component`.
pub const COMPONENT_WASM: &[u8] = include_bytes!(env!("DOCKET_COMPONENT_WASM"));

/// Per-store host state: WASI (clocks and random only; no files, sockets or environment) and
/// the store's resource limits.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

/// Bounds on what one call into the component may consume. A policy that loops or allocates
/// past them is stopped with an error; the runtime keeps serving other instances.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Wall time of one call (evaluate, seal, verify step), checked every epoch tick.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(2),
        }
    }
}

/// Instances the pooling allocator keeps slots for. A server holds one per evaluation worker,
/// one for the appender and one per policy check in flight; tests hold a few each. Slots cost
/// address space only (memories are reserved, not committed), and an instance beyond the pool is
/// refused with a clear error rather than slowing everything down.
pub const POOL_SLOTS: u32 = 128;

/// The largest linear memory any instance may have: the ceiling for `Limits::memory_bytes`.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// How often the engine's epoch advances: the granularity of `Limits::call_timeout`.
const EPOCH_TICK: Duration = Duration::from_millis(5);

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Where the compiled component came from, and how long it took.
#[derive(Debug, Clone)]
pub struct LoadInfo {
    pub from_cache: bool,
    pub elapsed: Duration,
    pub cache_file: Option<PathBuf>,
}

pub struct Runtime {
    engine: Engine,
    pre: bindings::DocketPre<HostState>,
    load: LoadInfo,
    limits: Limits,
}

impl Runtime {
    /// Compiles the embedded component, using `cache_dir` for compiled artifacts if given.
    pub fn new(cache_dir: Option<&Path>) -> Result<Runtime> {
        Runtime::from_wasm(COMPONENT_WASM, cache_dir)
    }

    pub fn from_wasm(wasm: &[u8], cache_dir: Option<&Path>) -> Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // `DOCKET_WASM_PROFILER=perfmap` (or `jitdump`) lets `perf record` name the component's
        // functions, which is how its hot paths are found (BENCHMARKS.md, "Profiling").
        match std::env::var("DOCKET_WASM_PROFILER").as_deref() {
            Err(_) | Ok("") | Ok("none") => {}
            Ok("perfmap") => {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            Ok("jitdump") => {
                config.profiler(wasmtime::ProfilingStrategy::JitDump);
            }
            Ok(other) => wasmtime::bail!(
                "DOCKET_WASM_PROFILER={other:?} is not a profiler; use perfmap, jitdump or none"
            ),
        }
        // Pre-reserved slots make instantiation a few pointer bumps instead of mmaps; the
        // component has a handful of core instances, memories and tables per instance.
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling
            .total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 8)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 4)
            .max_memory_size(MAX_MEMORY_BYTES);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine);
        let started = std::time::Instant::now();
        let (component, from_cache, cache_file) = match cache_dir {
            Some(dir) => {
                let file = dir.join(cache_file_name(&engine, wasm));
                match load_cached(&engine, &file) {
                    Some(component) => (component, true, Some(file)),
                    None => {
                        let component = Component::new(&engine, wasm)
                            .context("compiling the docket component")?;
                        // The cache only saves the next start a compile: failing to write it
                        // (a read-only or full disk) must not stop this one.
                        if let Err(e) = store_cached(&component, dir, &file) {
                            tracing::warn!(error = %format!("{e:#}"), "could not cache the compiled component");
                        }
                        (component, false, Some(file))
                    }
                }
            }
            None => (
                Component::new(&engine, wasm).context("compiling the docket component")?,
                false,
                None,
            ),
        };
        let load = LoadInfo {
            from_cache,
            elapsed: started.elapsed(),
            cache_file,
        };
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = bindings::DocketPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Runtime {
            engine,
            pre,
            load,
            limits: Limits::default(),
        })
    }

    /// Replaces the limits applied to instances created from now on. Memory is capped at
    /// [`MAX_MEMORY_BYTES`], the size of a pool slot.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = Limits {
            memory_bytes: limits.memory_bytes.min(MAX_MEMORY_BYTES),
            ..limits
        };
    }

    pub fn load_info(&self) -> &LoadInfo {
        &self.load
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh instance reading the steady wall clock ([`crate::clock::SteadyClock`]).
    pub fn instantiate(&self) -> Result<Instance, CallError> {
        self.instantiate_with_clock(Some(Box::new(crate::clock::SteadyClock)))
    }

    /// A fresh instance; `clock` replaces the wall clock (tests use a fixed one; `None` is
    /// WASI's plain system clock). A failure is [`CallError::Stopped`]: the instance's memory
    /// could not be reserved, or the component's start-up trapped.
    pub fn instantiate_with_clock(
        &self,
        clock: Option<Box<dyn HostWallClock + Send>>,
    ) -> Result<Instance, CallError> {
        let stopped = |e: wasmtime::Error| {
            CallError::Stopped(format!(
                "the docket component could not be instantiated: {e:#}"
            ))
        };
        let mut builder = WasiCtxBuilder::new();
        if let Some(clock) = clock {
            builder.wall_clock(BoxedClock(clock));
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .build();
        let state = HostState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limits,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline_ticks =
            (self.limits.call_timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64;
        store.set_epoch_deadline(deadline_ticks);
        let bindings = self.pre.instantiate(&mut store).map_err(stopped)?;
        let engine = bindings
            .docket_audit_policy()
            .engine()
            .call_constructor(&mut store)
            .map_err(stopped)?;
        Ok(Instance {
            store,
            bindings,
            engine,
            sealer: None,
            deadline_ticks,
            limits: self.limits,
            broken: false,
        })
    }
}

/// Advances the engine's epoch every `EPOCH_TICK` for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("docket-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

struct BoxedClock(Box<dyn HostWallClock + Send>);

impl HostWallClock for BoxedClock {
    fn resolution(&self) -> Duration {
        self.0.resolution()
    }
    fn now(&self) -> Duration {
        self.0.now()
    }
}

/// A wall clock stuck at one instant, for reproducible entries.
pub struct FixedClock(pub Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

fn cache_file_name(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let component = docket_ledger::hash::sha256(&[wasm]);
    format!(
        "docket-{}-{:016x}.cwasm",
        &component.to_hex()[..16],
        hasher.finish()
    )
}

fn load_cached(engine: &Engine, file: &Path) -> Option<Component> {
    if !file.exists() {
        return None;
    }
    // SAFETY: the file is one this process family wrote with `Component::serialize` under a name
    // keyed by the component's hash and the engine's compatibility hash; wasmtime additionally
    // checks the artifact's header against the engine and refuses a mismatch.
    unsafe { Component::deserialize_file(engine, file) }.ok()
}

fn store_cached(component: &Component, dir: &Path, file: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the cache directory {}", dir.display()))?;
    let bytes = component.serialize()?;
    // Unique per writer, threads included: two runtimes compiling at once (parallel tests, a
    // server and a CLI) each write their own file and the last rename wins.
    static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let writer = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = file.with_extension(format!("tmp{}-{writer}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

/// One instance of the component with its store: a policy engine and, once started or
/// resumed, a sealer.
pub struct Instance {
    store: Store<HostState>,
    bindings: bindings::Docket,
    engine: ResourceAny,
    sealer: Option<ResourceAny>,
    deadline_ticks: u64,
    limits: Limits,
    /// Set once a call trapped: the instance's state can no longer be trusted.
    broken: bool,
}

impl Instance {
    /// Arms the time limit for the next call, and refuses calls into a trapped instance.
    fn arm(&mut self) -> Result<(), CallError> {
        if self.broken {
            return Err(CallError::Stopped(
                "this component instance stopped after an earlier call exceeded its limits; \
                 create a new instance"
                    .into(),
            ));
        }
        self.store.set_epoch_deadline(self.deadline_ticks);
        Ok(())
    }

    /// Turns a trap into a clear error and marks the instance unusable.
    fn check<T>(&mut self, result: Result<T>) -> Result<T, CallError> {
        result.map_err(|e| {
            self.broken = true;
            let why = match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => format!(
                    "it ran longer than the {:?} limit",
                    self.limits.call_timeout
                ),
                Some(trap) => format!(
                    "it trapped ({trap}); a memory limit of {} MiB applies",
                    self.limits.memory_bytes >> 20
                ),
                None => format!("{e:#}"),
            };
            CallError::Stopped(format!(
                "the call into the docket component was stopped: {why}"
            ))
        })
    }

    /// Every call into the component goes through here: deadline armed, traps made clear.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&bindings::Docket, &mut Store<HostState>) -> Result<T>,
    ) -> Result<T, CallError> {
        self.arm()?;
        let result = f(&self.bindings, &mut self.store);
        self.check(result)
    }

    /// A call the component may refuse with its own error `E`.
    fn call_refusable<T, E>(
        &mut self,
        f: impl FnOnce(&bindings::Docket, &mut Store<HostState>) -> Result<Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        self.call(f)
            .map_err(CallError::widen)?
            .map_err(CallError::Refused)
    }

    fn sealer(&self) -> Result<ResourceAny, CallError> {
        self.sealer.ok_or_else(|| {
            CallError::Stopped("no log is open in this instance: start or resume one first".into())
        })
    }

    pub fn add_policy(&mut self, id: &str, source: &str) -> Result<String, CallError<PolicyError>> {
        let e = self.engine;
        self.call_refusable(|b, s| {
            b.docket_audit_policy()
                .engine()
                .call_add_policy(s, e, id, source)
        })
    }

    pub fn remove_policy(&mut self, id: &str) -> Result<(), CallError<PolicyError>> {
        let e = self.engine;
        self.call_refusable(|b, s| {
            b.docket_audit_policy()
                .engine()
                .call_remove_policy(s, e, id)
        })
    }

    pub fn add_data(&mut self, json: &str) -> Result<(), CallError<PolicyError>> {
        let e = self.engine;
        self.call_refusable(|b, s| b.docket_audit_policy().engine().call_add_data(s, e, json))
    }

    pub fn set_revision(&mut self, revision: Option<&str>) -> Result<(), CallError> {
        let e = self.engine;
        self.call(|b, s| {
            b.docket_audit_policy()
                .engine()
                .call_set_revision(s, e, revision)
        })
    }

    pub fn policy_version(&mut self) -> Result<PolicyVersion, CallError> {
        let e = self.engine;
        self.call(|b, s| b.docket_audit_policy().engine().call_version(s, e))
    }

    pub fn evaluate(
        &mut self,
        path: &str,
        input: Option<&str>,
    ) -> Result<Decision, CallError<PolicyError>> {
        let e = self.engine;
        self.call_refusable(|b, s| {
            b.docket_audit_policy()
                .engine()
                .call_evaluate(s, e, path, input)
        })
    }

    /// Keeps (or stops keeping) the output of `print()` calls for [`Instance::take_prints`].
    pub fn gather_prints(&mut self, on: bool) -> Result<(), CallError> {
        let e = self.engine;
        self.call(|b, s| {
            b.docket_audit_policy()
                .engine()
                .call_gather_prints(s, e, on)
        })
    }

    /// The `print()` lines since the last call.
    pub fn take_prints(&mut self) -> Result<Vec<String>, CallError> {
        let e = self.engine;
        self.call(|b, s| b.docket_audit_policy().engine().call_take_prints(s, e))
    }

    /// Whether `path` names something the loaded policies or data define (see the WIT).
    pub fn defines(&mut self, path: &str) -> Result<bool, CallError> {
        let e = self.engine;
        self.call(|b, s| b.docket_audit_policy().engine().call_defines(s, e, path))
    }

    /// The loaded modules' test rules and skipped `todo_test_` rules (see the WIT).
    pub fn test_rules(&mut self) -> Result<(Vec<String>, Vec<String>), CallError> {
        let e = self.engine;
        self.call(|b, s| b.docket_audit_policy().engine().call_test_rules(s, e))
    }

    /// Starts a new log in this instance; returns its genesis entry.
    pub fn start_log(
        &mut self,
        seed: &[u8; 32],
        key_name: &str,
        origin: &str,
        instance_id: &str,
        signing: SigningMode,
    ) -> Result<SealedEntry, CallError<SealError>> {
        let sealer = self.call_refusable(|b, s| {
            b.docket_audit_sealing().sealer().call_genesis(
                s,
                seed,
                key_name,
                origin,
                instance_id,
                signing,
            )
        })?;
        self.replace_sealer(sealer).map_err(CallError::widen)?;
        let genesis = self
            .call(|b, s| {
                b.docket_audit_sealing()
                    .sealer()
                    .call_take_genesis(s, sealer)
            })
            .map_err(CallError::widen)?;
        genesis.ok_or_else(|| {
            CallError::Stopped("the component started a log without a genesis entry".into())
        })
    }

    /// Continues a log from its state.
    pub fn resume_log(
        &mut self,
        seed: &[u8; 32],
        key_name: &str,
        state: &ChainState,
    ) -> Result<(), CallError<SealError>> {
        let sealer = self.call_refusable(|b, s| {
            b.docket_audit_sealing()
                .sealer()
                .call_resume(s, seed, key_name, state)
        })?;
        self.replace_sealer(sealer).map_err(CallError::widen)
    }

    fn replace_sealer(&mut self, sealer: ResourceAny) -> Result<(), CallError> {
        if let Some(old) = self.sealer.replace(sealer) {
            old.resource_drop(&mut self.store)
                .map_err(|e| CallError::Stopped(format!("dropping the previous sealer: {e:#}")))?;
        }
        Ok(())
    }

    /// Seals a decision as its logging rules say; `None` when they dropped it.
    pub fn seal_decision(
        &mut self,
        decision: &Decision,
    ) -> Result<Option<SealedEntry>, CallError<SealError>> {
        let r = self.sealer().map_err(CallError::widen)?;
        self.call_refusable(|b, s| {
            b.docket_audit_sealing()
                .sealer()
                .call_seal_decision(s, r, decision)
        })
    }

    /// Seals the tally of decisions dropped since the last one, if any.
    pub fn seal_tally(&mut self) -> Result<Option<SealedEntry>, CallError> {
        let r = self.sealer()?;
        self.call(|b, s| b.docket_audit_sealing().sealer().call_seal_tally(s, r))
    }

    /// Checks a revealed masked value against a decision record, inside the component.
    pub fn check_reveal(
        &mut self,
        record: &[u8],
        path: &str,
        value: &str,
        salt: &[u8],
    ) -> Result<(), CallError<String>> {
        self.call_refusable(|b, s| {
            b.docket_audit_verification()
                .call_check_reveal(s, record, path, value, salt)
        })
    }

    pub fn seal_record(
        &mut self,
        kind: EntryKind,
        json: &str,
    ) -> Result<SealedEntry, CallError<SealError>> {
        let r = self.sealer().map_err(CallError::widen)?;
        self.call_refusable(|b, s| {
            b.docket_audit_sealing()
                .sealer()
                .call_seal_record(s, r, kind, json)
        })
    }

    /// Seals a prune entry for a run of consecutive encoded entries; refused (nothing sealed)
    /// if any decision among them is still under retention.
    pub fn seal_prune(&mut self, entries: &[Vec<u8>]) -> Result<SealedPrune, CallError<SealError>> {
        let r = self.sealer().map_err(CallError::widen)?;
        self.call_refusable(|b, s| {
            b.docket_audit_sealing()
                .sealer()
                .call_seal_prune(s, r, entries)
        })
    }

    pub fn rotate_key(
        &mut self,
        seed: &[u8; 32],
        key_name: &str,
    ) -> Result<SealedEntry, CallError<SealError>> {
        let r = self.sealer().map_err(CallError::widen)?;
        self.call_refusable(|b, s| {
            b.docket_audit_sealing()
                .sealer()
                .call_rotate_key(s, r, seed, key_name)
        })
    }

    pub fn checkpoint(&mut self) -> Result<Checkpoint, CallError> {
        let r = self.sealer()?;
        self.call(|b, s| b.docket_audit_sealing().sealer().call_checkpoint(s, r))
    }

    pub fn chain_state(&mut self) -> Result<ChainState, CallError> {
        let r = self.sealer()?;
        self.call(|b, s| b.docket_audit_sealing().sealer().call_state(s, r))
    }

    /// Checks an RFC 9162 inclusion proof inside the component.
    pub fn verify_inclusion(
        &mut self,
        leaf: &[u8],
        index: u64,
        size: u64,
        proof: &[Vec<u8>],
        root: &[u8],
    ) -> Result<(), CallError<String>> {
        self.call_refusable(|b, s| {
            b.docket_audit_verification()
                .call_verify_inclusion(s, leaf, index, size, proof, root)
        })
    }

    /// A streaming verifier inside this instance, trusting `genesis_vkey`.
    pub fn verifier(&mut self, genesis_vkey: &str) -> Result<VerifierHandle<'_>, CallError> {
        let verifier = self.call(|b, s| {
            b.docket_audit_verification()
                .verifier()
                .call_constructor(s, genesis_vkey)
        })?;
        Ok(VerifierHandle {
            instance: self,
            verifier,
        })
    }

    /// A streaming verifier trusting `genesis_vkey` that, with `trusted_head` (a size and root
    /// the caller holds, e.g. from an earlier checkpoint), also requires the log to extend it.
    pub fn verifier_held_to(
        &mut self,
        genesis_vkey: &str,
        trusted_head: Option<(u64, &[u8])>,
    ) -> Result<VerifierHandle<'_>, CallError> {
        let mut verifier = self.verifier(genesis_vkey)?;
        if let Some((size, root)) = trusted_head {
            verifier.expect_tree_head(size, root)?;
        }
        Ok(verifier)
    }
}

/// A verifier resource living in an [`Instance`]; dropped from the store when finished.
pub struct VerifierHandle<'a> {
    instance: &'a mut Instance,
    verifier: ResourceAny,
}

impl VerifierHandle<'_> {
    pub fn expect_tree_head(&mut self, size: u64, root: &[u8]) -> Result<(), CallError> {
        let v = self.verifier;
        self.instance.call(|b, s| {
            b.docket_audit_verification()
                .verifier()
                .call_expect_tree_head(s, v, size, root)
        })
    }

    pub fn push_entry(&mut self, encoded: &[u8]) -> Result<(), CallError<VerifyError>> {
        let v = self.verifier;
        self.instance
            .call_refusable(|b, s| {
                b.docket_audit_verification()
                    .verifier()
                    .call_push_entry(s, v, encoded)
            })
            .map_err(|e| e.map(ledger_error))
    }

    /// Pushes a run of entries in one call, stopping at the first that fails.
    pub fn push_entries(&mut self, encoded: &[Vec<u8>]) -> Result<(), CallError<VerifyError>> {
        let v = self.verifier;
        self.instance
            .call_refusable(|b, s| {
                b.docket_audit_verification()
                    .verifier()
                    .call_push_entries(s, v, encoded)
            })
            .map_err(|e| e.map(ledger_error))
    }

    pub fn push_checkpoint(&mut self, note: &str) -> Result<(), CallError<VerifyError>> {
        let v = self.verifier;
        self.instance
            .call_refusable(|b, s| {
                b.docket_audit_verification()
                    .verifier()
                    .call_push_checkpoint(s, v, note)
            })
            .map_err(|e| e.map(ledger_error))
    }

    pub fn push_export_line(&mut self, line: &str) -> Result<(), CallError<VerifyError>> {
        let v = self.verifier;
        self.instance
            .call_refusable(|b, s| {
                b.docket_audit_verification()
                    .verifier()
                    .call_push_export_line(s, v, line)
            })
            .map_err(|e| e.map(ledger_error))
    }

    pub fn finish(self) -> Result<Report, CallError<VerifyError>> {
        let v = self.verifier;
        let result = self
            .instance
            .call_refusable(|b, s| b.docket_audit_verification().verifier().call_finish(s, v))
            .map_err(|e| e.map(ledger_error));
        v.resource_drop(&mut self.instance.store)
            .map_err(|e| CallError::Stopped(format!("dropping the verifier: {e:#}")))?;
        result
    }
}

/// The component's report in the ledger's one reporting shape (`docket_ledger::report`), which
/// `docket verify` prints as the browser page does.
impl From<&Report> for docket_ledger::report::Summary {
    fn from(r: &Report) -> docket_ledger::report::Summary {
        let mut kinds = [0u64; 7];
        for (slot, count) in kinds.iter_mut().zip(&r.kinds) {
            *slot = *count;
        }
        docket_ledger::report::Summary {
            entries: r.entries,
            root: docket_ledger::Hash::from_slice(&r.root).unwrap_or(docket_ledger::Hash::ZERO),
            checkpoints: r.checkpoints,
            last_checkpoint_size: r.last_checkpoint_size,
            first_timestamp_ns: r.first_timestamp_ns,
            last_timestamp_ns: r.last_timestamp_ns,
            kinds,
            pruned_entries: r.pruned_entries,
            prunes: r
                .prunes
                .iter()
                .map(|p| docket_ledger::verifier::PruneSummary {
                    seq: p.seq,
                    timestamp_ns: p.timestamp_ns,
                    first: p.first,
                    last: p.last,
                    entries: p.entries,
                    pruned_found: p.pruned_found,
                    policy_versions: p.policy_versions.clone(),
                })
                .collect(),
            keys: r.keys.clone(),
            origin: r.state.origin.clone(),
            trusted_size: r.trusted_size,
        }
    }
}

/// The component's verification failure as the ledger's [`VerifyError`].
fn ledger_error(e: bindings::exports::docket::audit::verification::VerifyError) -> VerifyError {
    use bindings::exports::docket::audit::verification::{Failure as W, Location as L};
    use docket_ledger::verifier::{Failure, Location};
    VerifyError {
        location: match e.location {
            L::Entry(n) => Location::Entry(n),
            L::Checkpoint(n) => Location::Checkpoint(n),
            L::End => Location::End,
        },
        failure: match e.failure {
            W::Malformed => Failure::Malformed,
            W::WrongSequence => Failure::WrongSequence,
            W::BrokenLink => Failure::BrokenLink,
            W::BadHash => Failure::BadHash,
            W::BadRecord => Failure::BadRecord,
            W::BadGenesis => Failure::BadGenesis,
            W::UntrustedKey => Failure::UntrustedKey,
            W::UnknownKey => Failure::UnknownKey,
            W::MissingSignature => Failure::MissingSignature,
            W::BadSignature => Failure::BadSignature,
            W::TimestampRegression => Failure::TimestampRegression,
            W::CheckpointMismatch => Failure::CheckpointMismatch,
            W::Truncated => Failure::Truncated,
            W::UnauthorizedPrune => Failure::UnauthorizedPrune,
        },
        detail: e.detail,
    }
}
