//! SHA-256 hashes and the RFC 6962 tree hashing primitives.

use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 digest. Entry hashes, Merkle nodes and roots are all of this type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used as the `prev` of the genesis entry.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        // Only the canonical lower-case spelling is accepted, so one hash has one text form.
        (hex::encode(out) == text).then_some(Hash(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// RFC 6962 domain-separation prefix of a leaf hash.
pub const LEAF_PREFIX: u8 = 0x00;
/// RFC 6962 domain-separation prefix of an interior node hash.
pub const NODE_PREFIX: u8 = 0x01;

pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    Hash(hasher.finalize().into())
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ leaf input).
pub fn leaf_hash(leaf_input: &[u8]) -> Hash {
    sha256(&[&[LEAF_PREFIX], leaf_input])
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[NODE_PREFIX], &left.0, &right.0])
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    sha256(&[])
}
