//! docket's log format and its logic: entries, sealing, the Merkle tree, checkpoints, proofs and
//! verification. The format is specified in `docs/log-format.md`; this crate is its reference
//! implementation.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and draws no randomness. Time
//! and keys come from the caller, bytes go back to the caller. It builds for the host and for
//! every wasm target docket ships.

pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod export;
pub mod hash;
pub mod json;
pub mod keys;
pub mod masking;
pub mod merkle;
pub mod proof;
pub mod prune;
pub mod record;
pub mod report;
pub mod sealer;
pub mod summary;
pub mod verifier;
pub mod witness;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use cosignature::CosignerKey;
pub use entry::{Entry, EntryKind, LeafForm};
pub use hash::Hash;
pub use keys::{KeyId, PublicKey, SecretKey};
pub use masking::{LogRules, MaskRule, MaskSalt};
pub use record::{Decision, PolicyVersion, SigningMode};
pub use sealer::{ChainState, GenesisParams, SealedDecision, Sealer};
pub use verifier::{Failure, Location, Prechecked, Report, Verifier, VerifyError, precheck};
