//! The docket component: the WIT contract of `wit/docket.wit` over `docket-policy` and
//! `docket-ledger`. This crate only converts between WIT types and the core crates' types and
//! reads the clock; all policy, sealing and verification logic lives in the core crates.
//!
//! Architecture invariant: the signing key enters as a seed, lives inside a `sealer` resource
//! and never leaves it: no function returns it and no error message mentions it.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    path: "../../wit",
    world: "docket",
});

use docket::audit::types as wit;
use docket_ledger::export::ExportVerifier;
use docket_ledger::masking;
use docket_ledger::merkle::{self, Frontier};
use docket_ledger::record::{PolicyVersion, SigningMode};
use docket_ledger::sealer::{ChainState, GenesisParams, SealError, Sealer};
use docket_ledger::verifier::{Failure, Location, Report, VerifyError};
use docket_ledger::{
    Decision, Entry, EntryKind, Hash, LogRules, MaskRule, PublicKey, SealedDecision, SecretKey,
    Verifier,
};
use docket_policy::{PolicyEngine, PolicyError};
use exports::docket::audit::{policy, sealing, verification};
use std::cell::RefCell;

struct Component;

// The component's exports only exist in its wasm build; a native build of this crate (e.g. in
// `cargo test --workspace`) type-checks the shell without exporting WIT-named symbols, which a
// native linker cannot take.
#[cfg(target_arch = "wasm32")]
export!(Component);

/// Wall-clock time from the `wasi:clocks/wall-clock` import, in nanoseconds since the epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------------------------------------
// policy

impl policy::Guest for Component {
    type Engine = EngineResource;
}

struct EngineResource(RefCell<PolicyEngine>);

fn policy_error(e: PolicyError) -> policy::PolicyError {
    match e {
        PolicyError::Parse { id, message } => policy::PolicyError::Parse((id, message)),
        PolicyError::Data(m) => policy::PolicyError::Data(m),
        PolicyError::Input(m) => policy::PolicyError::Input(m),
        PolicyError::Evaluation(m) => policy::PolicyError::Evaluation(m),
        PolicyError::NotFound(m) => policy::PolicyError::NotFound(m),
    }
}

fn to_wit_version(v: &PolicyVersion) -> wit::PolicyVersion {
    wit::PolicyVersion {
        digest: v.digest.clone(),
        revision: v.revision.clone(),
    }
}

impl policy::GuestEngine for EngineResource {
    fn new() -> Self {
        EngineResource(RefCell::new(PolicyEngine::new()))
    }

    fn add_policy(&self, id: String, source: String) -> Result<String, policy::PolicyError> {
        self.0
            .borrow_mut()
            .add_policy(&id, &source)
            .map_err(policy_error)
    }

    fn remove_policy(&self, id: String) -> Result<(), policy::PolicyError> {
        self.0.borrow_mut().remove_policy(&id).map_err(policy_error)
    }

    fn add_data(&self, json: String) -> Result<(), policy::PolicyError> {
        self.0.borrow_mut().add_data(&json).map_err(policy_error)
    }

    fn set_revision(&self, revision: Option<String>) {
        self.0.borrow_mut().set_revision(revision);
    }

    fn version(&self) -> wit::PolicyVersion {
        to_wit_version(self.0.borrow().version())
    }

    fn defines(&self, path: String) -> bool {
        self.0.borrow().defines(&path)
    }

    fn test_rules(&self) -> (Vec<String>, Vec<String>) {
        self.0.borrow().test_rules()
    }

    fn gather_prints(&self, on: bool) {
        self.0.borrow_mut().set_gather_prints(on);
    }

    fn take_prints(&self) -> Vec<String> {
        self.0.borrow_mut().take_prints()
    }

    fn evaluate(
        &self,
        path: String,
        input: Option<String>,
    ) -> Result<wit::Decision, policy::PolicyError> {
        let d = self
            .0
            .borrow_mut()
            .evaluate(&path, input.as_deref())
            .map_err(policy_error)?;
        Ok(wit::Decision {
            path: d.path,
            input: d.input,
            result: d.result,
            policy_version: to_wit_version(&d.policy_version),
            log: wit::LogRules {
                drop: d.log.drop,
                mask: d.log.mask.into_iter().map(mask_rule_to_wit).collect(),
                retention_ns: d.log.retention_ns,
            },
        })
    }
}

fn mask_rule_to_wit(rule: MaskRule) -> wit::MaskRule {
    match rule {
        MaskRule::Remove { path } => wit::MaskRule { path, upsert: None },
        MaskRule::Upsert { path, value } => wit::MaskRule {
            path,
            upsert: Some(value),
        },
    }
}

fn mask_rule_from_wit(rule: wit::MaskRule) -> MaskRule {
    match rule.upsert {
        None => MaskRule::Remove { path: rule.path },
        Some(value) => MaskRule::Upsert {
            path: rule.path,
            value,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// sealing

impl sealing::Guest for Component {
    type Sealer = SealerResource;
}

struct SealerResource {
    sealer: RefCell<Sealer>,
    genesis: RefCell<Option<Entry>>,
}

fn seal_error(e: SealError) -> sealing::SealError {
    match e {
        SealError::KeyMismatch { .. } => sealing::SealError::KeyMismatch(e.to_string()),
        SealError::InvalidOrigin(m) => sealing::SealError::InvalidOrigin(m),
        SealError::InvalidRecord(m) => sealing::SealError::InvalidRecord(m),
        SealError::InvalidState(m) => sealing::SealError::InvalidState(m),
        SealError::Refused(m) => sealing::SealError::Refused(m),
    }
}

fn secret_key(seed: &[u8], name: &str) -> Result<SecretKey, sealing::SealError> {
    let seed: &[u8; 32] = seed.try_into().map_err(|_| {
        sealing::SealError::InvalidKey(format!("an Ed25519 seed is 32 bytes, got {}", seed.len()))
    })?;
    SecretKey::from_seed(name, seed).map_err(|e| sealing::SealError::InvalidKey(e.to_string()))
}

fn sealed(entry: &Entry, decision_id: Option<String>) -> wit::SealedEntry {
    wit::SealedEntry {
        seq: entry.seq,
        hash: entry.hash.0.to_vec(),
        encoded: entry.encode(),
        decision_id,
        timestamp_ns: entry.timestamp_ns,
        salts: Vec::new(),
    }
}

/// A mask salt: 32 bytes from the `wasi:random` import. A failing source of randomness must
/// not produce a guessable salt, so it stops the call (a trap the host reports).
fn random_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).expect("wasi:random provides randomness");
    salt
}

fn mode_from_wit(m: wit::SigningMode) -> SigningMode {
    match m {
        wit::SigningMode::Checkpoint => SigningMode::Checkpoint,
        wit::SigningMode::Entry => SigningMode::Entry,
    }
}

fn state_to_wit(s: &ChainState) -> wit::ChainState {
    wit::ChainState {
        origin: s.origin.clone(),
        signing: match s.signing {
            SigningMode::Checkpoint => wit::SigningMode::Checkpoint,
            SigningMode::Entry => wit::SigningMode::Entry,
        },
        instance_id: s.instance_id.clone(),
        chain_id: s.chain_id.0.to_vec(),
        size: s.size,
        head: s.head.0.to_vec(),
        last_timestamp_ns: s.last_timestamp_ns,
        key: s.key.to_vkey(),
        frontier: s.frontier.subtrees().iter().map(|h| h.0.to_vec()).collect(),
    }
}

fn hash_from(what: &str, bytes: &[u8]) -> Result<Hash, String> {
    Hash::from_slice(bytes).ok_or_else(|| format!("{what} must be 32 bytes, got {}", bytes.len()))
}

fn state_from_wit(s: wit::ChainState) -> Result<ChainState, String> {
    let frontier = s
        .frontier
        .iter()
        .map(|h| hash_from("a frontier hash", h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChainState {
        origin: s.origin,
        signing: mode_from_wit(s.signing),
        instance_id: s.instance_id,
        chain_id: hash_from("chain-id", &s.chain_id)?,
        size: s.size,
        head: hash_from("head", &s.head)?,
        last_timestamp_ns: s.last_timestamp_ns,
        key: PublicKey::from_vkey(&s.key).map_err(|e| e.to_string())?,
        frontier: Frontier::from_parts(s.size, frontier).map_err(|e| e.0)?,
    })
}

fn kind_from_wit(k: wit::EntryKind) -> EntryKind {
    match k {
        wit::EntryKind::Genesis => EntryKind::Genesis,
        wit::EntryKind::Decision => EntryKind::Decision,
        wit::EntryKind::KeyRotation => EntryKind::KeyRotation,
        wit::EntryKind::PolicyChange => EntryKind::PolicyChange,
        wit::EntryKind::Ingested => EntryKind::Ingested,
        wit::EntryKind::Tally => EntryKind::Tally,
        wit::EntryKind::Prune => EntryKind::Prune,
    }
}

impl sealing::GuestSealer for SealerResource {
    fn genesis(
        seed: Vec<u8>,
        key_name: String,
        origin: String,
        instance_id: String,
        signing: wit::SigningMode,
    ) -> Result<sealing::Sealer, sealing::SealError> {
        let key = secret_key(&seed, &key_name)?;
        let params = GenesisParams {
            origin,
            instance_id,
            signing: mode_from_wit(signing),
        };
        let (sealer, genesis) = Sealer::genesis(key, params, now_ns()).map_err(seal_error)?;
        Ok(sealing::Sealer::new(SealerResource {
            sealer: RefCell::new(sealer),
            genesis: RefCell::new(Some(genesis)),
        }))
    }

    fn take_genesis(&self) -> Option<wit::SealedEntry> {
        self.genesis.borrow_mut().take().map(|e| sealed(&e, None))
    }

    fn resume(
        seed: Vec<u8>,
        key_name: String,
        state: wit::ChainState,
    ) -> Result<sealing::Sealer, sealing::SealError> {
        let key = secret_key(&seed, &key_name)?;
        let state = state_from_wit(state).map_err(sealing::SealError::InvalidState)?;
        let sealer = Sealer::resume(key, state).map_err(seal_error)?;
        Ok(sealing::Sealer::new(SealerResource {
            sealer: RefCell::new(sealer),
            genesis: RefCell::new(None),
        }))
    }

    fn seal_decision(
        &self,
        decision: wit::Decision,
    ) -> Result<Option<wit::SealedEntry>, sealing::SealError> {
        let decision = Decision {
            path: decision.path,
            input: decision.input,
            result: decision.result,
            policy_version: PolicyVersion {
                digest: decision.policy_version.digest,
                revision: decision.policy_version.revision,
            },
            log: LogRules {
                drop: decision.log.drop,
                mask: decision
                    .log
                    .mask
                    .into_iter()
                    .map(mask_rule_from_wit)
                    .collect(),
                retention_ns: decision.log.retention_ns,
            },
        };
        let outcome = self
            .sealer
            .borrow_mut()
            .seal_decision(&decision, now_ns(), &mut random_salt)
            .map_err(seal_error)?;
        Ok(match outcome {
            SealedDecision::Sealed {
                entry,
                decision_id,
                salts,
            } => Some(wit::SealedEntry {
                salts: salts
                    .into_iter()
                    .map(|s| wit::MaskSalt {
                        path: s.path,
                        salt: s.salt.to_vec(),
                    })
                    .collect(),
                ..sealed(&entry, Some(decision_id))
            }),
            SealedDecision::Dropped => None,
        })
    }

    fn seal_tally(&self) -> Option<wit::SealedEntry> {
        let entry = self.sealer.borrow_mut().seal_tally(now_ns())?;
        Some(sealed(&entry, None))
    }

    fn seal_record(
        &self,
        kind: wit::EntryKind,
        record: String,
    ) -> Result<wit::SealedEntry, sealing::SealError> {
        let entry = self
            .sealer
            .borrow_mut()
            .seal_record(kind_from_wit(kind), record.into_bytes(), now_ns())
            .map_err(seal_error)?;
        Ok(sealed(&entry, None))
    }

    fn seal_prune(&self, entries: Vec<Vec<u8>>) -> Result<wit::SealedPrune, sealing::SealError> {
        let entries = entries
            .iter()
            .map(|bytes| Entry::decode(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| sealing::SealError::InvalidRecord(format!("an entry to prune: {e}")))?;
        let (entry, pruned) = self
            .sealer
            .borrow_mut()
            .seal_prune(&entries, now_ns())
            .map_err(seal_error)?;
        Ok(wit::SealedPrune {
            entry: sealed(&entry, None),
            pruned_seqs: pruned.iter().map(|e| e.seq).collect(),
            pruned: pruned.iter().map(Entry::encode).collect(),
        })
    }

    fn rotate_key(
        &self,
        seed: Vec<u8>,
        key_name: String,
    ) -> Result<wit::SealedEntry, sealing::SealError> {
        let key = secret_key(&seed, &key_name)?;
        let entry = self
            .sealer
            .borrow_mut()
            .rotate_key(key, now_ns())
            .map_err(seal_error)?;
        Ok(sealed(&entry, None))
    }

    fn checkpoint(&self) -> wit::Checkpoint {
        let (checkpoint, note) = self.sealer.borrow().checkpoint();
        wit::Checkpoint {
            size: checkpoint.size,
            root: checkpoint.root.0.to_vec(),
            note,
        }
    }

    fn state(&self) -> wit::ChainState {
        state_to_wit(self.sealer.borrow().state())
    }
}

// ---------------------------------------------------------------------------------------------
// verification

impl verification::Guest for Component {
    type Verifier = VerifierResource;

    fn check_reveal(
        record: Vec<u8>,
        path: String,
        value: String,
        salt: Vec<u8>,
    ) -> Result<(), String> {
        let salt: [u8; 32] = salt
            .as_slice()
            .try_into()
            .map_err(|_| format!("a mask salt is 32 bytes, got {}", salt.len()))?;
        masking::check_reveal(&record, &path, &value, &salt).map_err(|e| e.to_string())
    }

    fn verify_inclusion(
        leaf: Vec<u8>,
        index: u64,
        size: u64,
        proof: Vec<Vec<u8>>,
        root: Vec<u8>,
    ) -> Result<(), String> {
        let proof = proof
            .iter()
            .map(|h| hash_from("a proof hash", h))
            .collect::<Result<Vec<_>, _>>()?;
        merkle::verify_inclusion(
            &hash_from("leaf", &leaf)?,
            index,
            size,
            &proof,
            &hash_from("root", &root)?,
        )
        .map_err(|e| e.to_string())
    }

    fn verify_consistency(
        old_size: u64,
        new_size: u64,
        proof: Vec<Vec<u8>>,
        old_root: Vec<u8>,
        new_root: Vec<u8>,
    ) -> Result<(), String> {
        let proof = proof
            .iter()
            .map(|h| hash_from("a proof hash", h))
            .collect::<Result<Vec<_>, _>>()?;
        merkle::verify_consistency(
            old_size,
            new_size,
            &proof,
            &hash_from("old root", &old_root)?,
            &hash_from("new root", &new_root)?,
        )
        .map_err(|e| e.to_string())
    }
}

/// `None` once finished, or if the trusted key could not be read (the error is kept).
struct VerifierResource {
    inner: RefCell<Result<ExportVerifier, verification::VerifyError>>,
}

fn verify_error(e: VerifyError) -> verification::VerifyError {
    use verification::Failure as W;
    verification::VerifyError {
        location: match e.location {
            Location::Entry(n) => verification::Location::Entry(n),
            Location::Checkpoint(n) => verification::Location::Checkpoint(n),
            Location::End => verification::Location::End,
        },
        failure: match e.failure {
            Failure::Malformed => W::Malformed,
            Failure::WrongSequence => W::WrongSequence,
            Failure::BrokenLink => W::BrokenLink,
            Failure::BadHash => W::BadHash,
            Failure::BadRecord => W::BadRecord,
            Failure::BadGenesis => W::BadGenesis,
            Failure::UntrustedKey => W::UntrustedKey,
            Failure::UnknownKey => W::UnknownKey,
            Failure::MissingSignature => W::MissingSignature,
            Failure::BadSignature => W::BadSignature,
            Failure::TimestampRegression => W::TimestampRegression,
            Failure::CheckpointMismatch => W::CheckpointMismatch,
            Failure::Truncated => W::Truncated,
            Failure::UnauthorizedPrune => W::UnauthorizedPrune,
        },
        detail: e.detail,
    }
}

fn report_to_wit(r: Report) -> verification::Report {
    verification::Report {
        entries: r.entries,
        root: r.root.0.to_vec(),
        checkpoints: r.checkpoints,
        last_checkpoint_size: r.last_checkpoint_size,
        first_timestamp_ns: r.first_timestamp_ns,
        last_timestamp_ns: r.last_timestamp_ns,
        kinds: r.kinds.to_vec(),
        trusted_size: r.trusted_size,
        pruned_entries: r.pruned_entries,
        prunes: r
            .prunes
            .into_iter()
            .map(|p| verification::PruneSummary {
                seq: p.seq,
                timestamp_ns: p.timestamp_ns,
                first: p.first,
                last: p.last,
                entries: p.entries,
                pruned_found: p.pruned_found,
                policy_versions: p.policy_versions,
            })
            .collect(),
        keys: r.keys.iter().map(PublicKey::to_vkey).collect(),
        state: state_to_wit(&r.state),
    }
}

fn finished() -> verification::VerifyError {
    verification::VerifyError {
        location: verification::Location::End,
        failure: verification::Failure::Malformed,
        detail: "this verifier has already finished; create a new one".into(),
    }
}

impl VerifierResource {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut ExportVerifier) -> Result<T, VerifyError>,
    ) -> Result<T, verification::VerifyError> {
        match &mut *self.inner.borrow_mut() {
            Ok(v) => f(v).map_err(verify_error),
            Err(e) => Err(e.clone()),
        }
    }
}

impl verification::GuestVerifier for VerifierResource {
    fn new(genesis_key: String) -> Self {
        let inner = PublicKey::from_vkey(&genesis_key)
            .map(|key| ExportVerifier::new(Verifier::new(key)))
            .map_err(|e| verification::VerifyError {
                location: verification::Location::End,
                failure: verification::Failure::UntrustedKey,
                detail: format!("the trusted key cannot be read: {e}"),
            });
        VerifierResource {
            inner: RefCell::new(inner),
        }
    }

    fn expect_tree_head(&self, size: u64, root: Vec<u8>) {
        let mut inner = self.inner.borrow_mut();
        match (&mut *inner, Hash::from_slice(&root)) {
            (Ok(v), Some(root)) => v.verifier_mut().expect_tree_head(size, root),
            (Ok(_), None) => {
                *inner = Err(verification::VerifyError {
                    location: verification::Location::End,
                    failure: verification::Failure::Malformed,
                    detail: format!("a tree head root is 32 bytes, got {}", root.len()),
                })
            }
            (Err(_), _) => {}
        }
    }

    fn push_entry(&self, encoded: Vec<u8>) -> Result<(), verification::VerifyError> {
        self.with(|v| v.verifier_mut().push_entry_bytes(&encoded))
    }

    fn push_entries(&self, encoded: Vec<Vec<u8>>) -> Result<(), verification::VerifyError> {
        self.with(|v| {
            let verifier = v.verifier_mut();
            encoded
                .iter()
                .try_for_each(|entry| verifier.push_entry_bytes(entry))
        })
    }

    fn push_checkpoint(&self, note: String) -> Result<(), verification::VerifyError> {
        self.with(|v| v.verifier_mut().push_checkpoint(&note))
    }

    fn push_export_line(&self, line: String) -> Result<(), verification::VerifyError> {
        self.with(|v| v.push_line(&line))
    }

    fn finish(&self) -> Result<verification::Report, verification::VerifyError> {
        let inner = std::mem::replace(&mut *self.inner.borrow_mut(), Err(finished()));
        inner?.finish().map(report_to_wit).map_err(verify_error)
    }
}
