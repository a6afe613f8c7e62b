//! Entries: the unit of the log. See `docs/log-format.md` §3 for the byte layout.

use crate::hash::{Hash, LEAF_PREFIX, sha256};
use crate::keys::KeyId;
use std::fmt;

/// Domain tag at the start of an entry body that holds its record (the RFC 6962 leaf input).
pub const ENTRY_TAG: &[u8; 16] = b"docket/entry/v1\0";
/// Domain tag at the start of an entry body that holds its record's SHA-256 in place of the
/// record (§3.6): the form of every entry whose record-holding body would not fit in the 16-bit
/// length of a C2SP tlog-tiles entry bundle.
pub const DIGEST_TAG: &[u8; 16] = b"docket/digest/v1";
/// Tag at the start of a pruned entry's encoding (§3.5): the header of the entry it stands for,
/// without its record. Never hashed: a pruned entry keeps the hash the full entry had.
pub const PRUNED_TAG: &[u8; 16] = b"docket/pruned/v1";
/// Domain tag prefixed to an entry hash to form the message an entry signature signs.
pub const ENTRY_SIGNATURE_TAG: &[u8; 26] = b"docket/entry-signature/v1\0";
/// Byte length of the fixed part of an entry body, before the record.
pub const BODY_HEADER_LEN: usize = 16 + 8 + 32 + 8 + 1 + 4 + 4;
/// The largest record an entry may carry (16 MiB).
pub const MAX_RECORD_LEN: usize = 1 << 24;
/// The largest body a C2SP tlog-tiles entry bundle can frame (a big-endian u16 length).
pub const MAX_BUNDLE_BODY_LEN: usize = u16::MAX as usize;
/// The largest record an entry body may hold itself: 65,462 bytes. A longer one is sealed in the
/// digest form (§3.6).
pub const MAX_INLINE_RECORD_LEN: usize = MAX_BUNDLE_BODY_LEN - BODY_HEADER_LEN;

/// What an entry's body (its Merkle leaf input) holds after the 73-byte header (§3.2, §3.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LeafForm {
    /// The record itself, under [`ENTRY_TAG`].
    Record,
    /// The record's SHA-256, under [`DIGEST_TAG`]: the record travels beside the body, bound to
    /// it by the digest, and the body is 105 bytes whatever the record's size.
    Digest,
}

impl LeafForm {
    /// The form a sealer uses for a record of `len` bytes: the record itself whenever the body
    /// fits in an entry bundle, its digest only when it would not. One form per record length,
    /// so the encoding stays canonical and a bundle carries every record it can.
    pub fn for_record_len(len: usize) -> LeafForm {
        if len > MAX_INLINE_RECORD_LEN {
            LeafForm::Digest
        } else {
            LeafForm::Record
        }
    }

    fn tag(self) -> &'static [u8; 16] {
        match self {
            LeafForm::Record => ENTRY_TAG,
            LeafForm::Digest => DIGEST_TAG,
        }
    }
}

/// What an entry's record means. The byte values are part of the format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EntryKind {
    Genesis,
    Decision,
    KeyRotation,
    PolicyChange,
    Ingested,
    Tally,
    /// Authorizes removing the payloads of expired decision entries (§4.8).
    Prune,
    /// A kind byte this version does not know; verification rejects it.
    Unknown(u8),
}

impl EntryKind {
    /// Whether entries of this kind may have their payload pruned under retention (§4.8):
    /// decisions, and ingested events that carry a `retain_until`. Never a genesis, a policy
    /// change, a key rotation, a tally or a prune.
    pub fn is_prunable(self) -> bool {
        matches!(self, EntryKind::Decision | EntryKind::Ingested)
    }

    pub const KNOWN: [EntryKind; 7] = [
        EntryKind::Genesis,
        EntryKind::Decision,
        EntryKind::KeyRotation,
        EntryKind::PolicyChange,
        EntryKind::Ingested,
        EntryKind::Tally,
        EntryKind::Prune,
    ];

    pub fn byte(self) -> u8 {
        match self {
            EntryKind::Genesis => 0,
            EntryKind::Decision => 1,
            EntryKind::KeyRotation => 2,
            EntryKind::PolicyChange => 3,
            EntryKind::Ingested => 4,
            EntryKind::Tally => 5,
            EntryKind::Prune => 6,
            EntryKind::Unknown(b) => b,
        }
    }

    pub fn from_byte(byte: u8) -> EntryKind {
        EntryKind::KNOWN
            .into_iter()
            .find(|k| k.byte() == byte)
            .unwrap_or(EntryKind::Unknown(byte))
    }

    /// The name used in the JSON export.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Genesis => "genesis",
            EntryKind::Decision => "decision",
            EntryKind::KeyRotation => "key-rotation",
            EntryKind::PolicyChange => "policy-change",
            EntryKind::Ingested => "ingested",
            EntryKind::Tally => "tally",
            EntryKind::Prune => "prune",
            EntryKind::Unknown(_) => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<EntryKind> {
        EntryKind::KNOWN.into_iter().find(|k| k.name() == name)
    }

    /// Genesis and key-rotation entries hand over trust, and a prune entry authorizes removing
    /// payloads, so they are always signed on their own.
    pub fn always_signed(self) -> bool {
        matches!(
            self,
            EntryKind::Genesis | EntryKind::KeyRotation | EntryKind::Prune
        )
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryKind::Unknown(b) => write!(f, "unknown kind {b}"),
            k => f.write_str(k.name()),
        }
    }
}

/// One sealed entry. `hash` and `signature` are as stored: a verifier recomputes and compares.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub seq: u64,
    pub prev: Hash,
    /// Nanoseconds since the Unix epoch, UTC.
    pub timestamp_ns: u64,
    pub kind: EntryKind,
    pub key_id: KeyId,
    /// The record's exact bytes (a UTF-8 JSON object); empty when the entry is pruned.
    pub record: Vec<u8>,
    /// Whether the body holds the record or its digest (§3.6).
    pub leaf: LeafForm,
    pub hash: Hash,
    pub signature: Option<[u8; 64]>,
    /// `Some(length of the record it had)` when the record was pruned (§3.5): the entry then
    /// stands only for its stored hash, which can no longer be recomputed.
    pub pruned: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Entry {
    /// The fixed 73-byte start of the body: tag, seq, prev, timestamp, kind, key id, record length.
    pub fn body_header(&self) -> [u8; BODY_HEADER_LEN] {
        let mut h = [0u8; BODY_HEADER_LEN];
        h[..16].copy_from_slice(self.leaf.tag());
        h[16..24].copy_from_slice(&self.seq.to_be_bytes());
        h[24..56].copy_from_slice(&self.prev.0);
        h[56..64].copy_from_slice(&self.timestamp_ns.to_be_bytes());
        h[64] = self.kind.byte();
        h[65..69].copy_from_slice(&self.key_id.0.to_be_bytes());
        h[69..73].copy_from_slice(&self.record_len().to_be_bytes());
        h
    }

    /// The length of the record the entry was sealed with (also for a pruned entry).
    pub fn record_len(&self) -> u32 {
        self.pruned.unwrap_or(self.record.len() as u32)
    }

    pub fn is_pruned(&self) -> bool {
        self.pruned.is_some()
    }

    /// The pruned form of this entry (§3.5): everything but the record, which is dropped. Its
    /// hash and signature are the full entry's.
    pub fn pruned(&self) -> Entry {
        Entry {
            record: Vec::new(),
            leaf: LeafForm::Record,
            pruned: Some(self.record_len()),
            ..self.clone()
        }
    }

    /// Whether `self` is the pruned form of `full` ([`Entry::pruned`]): the same seq, prev,
    /// timestamp, kind, key id, record length, hash and signature, and no record.
    pub fn is_pruned_form_of(&self, full: &Entry) -> bool {
        self.is_pruned() && !full.is_pruned() && *self == full.pruned()
    }

    /// The entry body: the exact bytes the entry hash covers (the RFC 6962 leaf input), which
    /// is also what a C2SP entry bundle holds: the header, then the record or, in the digest
    /// form, SHA-256(record).
    pub fn body(&self) -> Vec<u8> {
        match self.leaf {
            LeafForm::Record => [&self.body_header()[..], &self.record].concat(),
            LeafForm::Digest => [&self.body_header()[..], &sha256(&[&self.record]).0[..]].concat(),
        }
    }

    /// SHA-256(0x00 ‖ body): the entry hash, which is also the entry's Merkle leaf hash. A
    /// pruned entry has no body left to hash: callers check [`Entry::is_pruned`] first.
    pub fn compute_hash(&self) -> Hash {
        match self.leaf {
            LeafForm::Record => sha256(&[&[LEAF_PREFIX], &self.body_header(), &self.record]),
            LeafForm::Digest => sha256(&[
                &[LEAF_PREFIX],
                &self.body_header(),
                &sha256(&[&self.record]).0,
            ]),
        }
    }

    /// The binary encoding used on disk and across the WIT boundary:
    /// header ‖ record ‖ hash (32) ‖ signature length (1 byte: 0 or 64) ‖ signature. For the
    /// record form the header and record are the body; in the digest form the header's tag says
    /// so and the digest, which the record determines, is not stored (§3.6).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BODY_HEADER_LEN + self.record.len() + 32 + 1 + 64);
        self.encode_into(&mut out);
        out
    }

    /// A pruned entry is encoded as its body header with the pruned tag in place of the entry
    /// tag and no record, then hash and signature as usual (§3.5).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let header = self.body_header();
        if self.is_pruned() {
            out.extend_from_slice(PRUNED_TAG);
            out.extend_from_slice(&header[16..]);
        } else {
            out.extend_from_slice(&header);
            out.extend_from_slice(&self.record);
        }
        out.extend_from_slice(&self.hash.0);
        match &self.signature {
            Some(sig) => {
                out.push(64);
                out.extend_from_slice(sig);
            }
            None => out.push(0),
        }
    }

    /// Decodes one binary entry that fills `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let (entry, used) = Entry::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(DecodeError(format!(
                "{} unexpected bytes after the entry",
                bytes.len() - used
            )));
        }
        Ok(entry)
    }

    /// Decodes one binary entry from the start of `bytes`; returns it and the bytes it used.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Entry, usize), DecodeError> {
        if bytes.len() < BODY_HEADER_LEN {
            return Err(DecodeError(format!(
                "entry is {} bytes, shorter than the {BODY_HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let (pruned, leaf) = match &bytes[..16] {
            tag if tag == ENTRY_TAG => (false, LeafForm::Record),
            tag if tag == DIGEST_TAG => (false, LeafForm::Digest),
            // A pruned entry's hash is taken as stored; which form it had no longer matters.
            tag if tag == PRUNED_TAG => (true, LeafForm::Record),
            _ => {
                return Err(DecodeError(
                    "entry does not start with the docket/entry/v1, docket/digest/v1 or docket/pruned/v1 tag"
                        .into(),
                ));
            }
        };
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let seq = u64_at(16);
        let prev = Hash::from_slice(&bytes[24..56]).expect("32 bytes");
        let timestamp_ns = u64_at(56);
        let kind = EntryKind::from_byte(bytes[64]);
        let key_id = KeyId(u32_at(65));
        let record_len = u32_at(69) as usize;
        if record_len > MAX_RECORD_LEN {
            return Err(DecodeError(format!(
                "record length {record_len} exceeds the {MAX_RECORD_LEN}-byte limit"
            )));
        }
        let record_end = BODY_HEADER_LEN + if pruned { 0 } else { record_len };
        let hash_end = record_end + 32;
        if bytes.len() < hash_end + 1 {
            return Err(DecodeError(format!(
                "entry truncated: it needs {} bytes with its hash, has {}",
                hash_end + 1,
                bytes.len()
            )));
        }
        let record = bytes[BODY_HEADER_LEN..record_end].to_vec();
        let hash = Hash::from_slice(&bytes[record_end..hash_end]).expect("32 bytes");
        let (signature, used) = match bytes[hash_end] {
            0 => (None, hash_end + 1),
            64 => {
                let sig_end = hash_end + 1 + 64;
                let sig = bytes
                    .get(hash_end + 1..sig_end)
                    .ok_or_else(|| DecodeError("entry truncated inside its signature".into()))?;
                (Some(<[u8; 64]>::try_from(sig).expect("64 bytes")), sig_end)
            }
            n => {
                return Err(DecodeError(format!(
                    "signature length byte is {n}; it must be 0 (unsigned) or 64"
                )));
            }
        };
        Ok((
            Entry {
                seq,
                prev,
                timestamp_ns,
                kind,
                key_id,
                record,
                leaf,
                hash,
                signature,
                pruned: pruned.then_some(record_len as u32),
            },
            used,
        ))
    }
}

/// The message an entry signature signs: the signature tag followed by the entry hash. The NUL
/// byte in the tag keeps it from ever being a valid signed-note text (checkpoints).
pub fn entry_signature_message(hash: &Hash) -> [u8; 58] {
    let mut message = [0u8; 58];
    message[..26].copy_from_slice(ENTRY_SIGNATURE_TAG);
    message[26..].copy_from_slice(&hash.0);
    message
}
