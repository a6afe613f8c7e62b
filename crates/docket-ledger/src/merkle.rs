//! The RFC 6962 / RFC 9162 Merkle tree over entry hashes.
//!
//! Leaves are entry hashes, which already are RFC 6962 leaf hashes (SHA-256(0x00 ‖ entry body)),
//! so the tree never hashes an entry twice. Proof generation works over a slice of leaf hashes
//! or over a [`Tree`] that stores every complete subtree; the sealing path keeps only a
//! [`Frontier`] of O(log n) hashes.

use crate::hash::{Hash, empty_root, node_hash};

/// The compact state of a tree under construction: the roots of its perfect subtrees, largest
/// first (one per set bit of `size`). Enough to append and to compute the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontierError(pub String);

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds a frontier from its parts, checking that their number fits `size`.
    pub fn from_parts(size: u64, subtrees: Vec<Hash>) -> Result<Frontier, FrontierError> {
        if subtrees.len() != size.count_ones() as usize {
            return Err(FrontierError(format!(
                "a tree of {size} leaves has {} perfect subtrees, got {}",
                size.count_ones(),
                subtrees.len()
            )));
        }
        Ok(Frontier { size, subtrees })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn subtrees(&self) -> &[Hash] {
        &self.subtrees
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.subtrees.pop().expect("a set bit has a subtree");
            carry = node_hash(&left, &carry);
            size >>= 1;
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    /// The RFC 6962 root: the perfect subtrees folded from the right.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        match subtrees.next() {
            None => empty_root(),
            Some(last) => subtrees.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Where proof generation gets subtree hashes from: MTH over the leaf range `lo..hi`.
///
/// The RFC 9162 algorithms only ever ask for perfect, aligned subtrees on the left and a
/// right-edge range, so a source that stores every complete subtree ([`Tree`]) answers each
/// request in O(log n) instead of rehashing the leaves.
trait RangeRoot {
    fn range_root(&self, lo: usize, hi: usize) -> Hash;
}

impl RangeRoot for [Hash] {
    fn range_root(&self, lo: usize, hi: usize) -> Hash {
        root(&self[lo..hi])
    }
}

/// MTH(D[0:n]) of RFC 9162 §2.1.1.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    inclusion_proof_in(leaves, index, leaves.len())
}

fn inclusion_proof_in<T: RangeRoot + ?Sized>(
    tree: &T,
    index: usize,
    size: usize,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    inclusion_path(tree, index, 0, size, &mut proof);
    Some(proof)
}

/// PATH(m, D[lo:hi]), with `m` relative to `lo`.
fn inclusion_path<T: RangeRoot + ?Sized>(
    tree: &T,
    m: usize,
    lo: usize,
    hi: usize,
    proof: &mut Vec<Hash>,
) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        inclusion_path(tree, m, lo, lo + k, proof);
        proof.push(tree.range_root(lo + k, hi));
    } else {
        inclusion_path(tree, m - k, lo + k, hi, proof);
        proof.push(tree.range_root(lo, lo + k));
    }
}

/// The consistency proof between the first `old_size` leaves and all `leaves` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    consistency_proof_in(leaves, old_size, leaves.len())
}

fn consistency_proof_in<T: RangeRoot + ?Sized>(
    tree: &T,
    old_size: usize,
    new_size: usize,
) -> Option<Vec<Hash>> {
    if old_size > new_size {
        return None;
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof(tree, old_size, 0, new_size, true, &mut proof);
    }
    Some(proof)
}

/// SUBPROOF(m, D[lo:hi], complete), with `m` relative to `lo`.
fn subproof<T: RangeRoot + ?Sized>(
    tree: &T,
    m: usize,
    lo: usize,
    hi: usize,
    complete: bool,
    proof: &mut Vec<Hash>,
) {
    let n = hi - lo;
    if m == n {
        if !complete {
            proof.push(tree.range_root(lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(tree, m, lo, lo + k, complete, proof);
        proof.push(tree.range_root(lo + k, hi));
    } else {
        subproof(tree, m - k, lo + k, hi, false, proof);
        proof.push(tree.range_root(lo, lo + k));
    }
}

/// A Merkle tree that keeps the hash of every complete subtree: `levels[h][i]` is the MTH of
/// leaves `i·2^h .. (i+1)·2^h`. It costs two hashes of memory per leaf and answers roots at any
/// past size, inclusion and consistency proofs in O(log² n) hashing, and serves C2SP tlog-tiles
/// directly (a tile of level L is a run of `levels[8·L]`).
#[derive(Clone, Debug, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf (an entry hash) and every subtree it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut height = 0;
        loop {
            if self.levels.len() == height {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[height];
            level.push(node);
            if level.len() % 2 == 1 {
                return;
            }
            node = node_hash(&level[level.len() - 2], &level[level.len() - 1]);
            height += 1;
        }
    }

    /// The leaf at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index as usize).copied()
    }

    /// The hashes of complete subtrees of height `height`, starting at subtree `start`, at most
    /// `count` of them (fewer at the right edge).
    pub fn subtrees(&self, height: usize, start: u64, count: usize) -> &[Hash] {
        let Some(level) = self.levels.get(height) else {
            return &[];
        };
        let start = (start as usize).min(level.len());
        let end = start.saturating_add(count).min(level.len());
        &level[start..end]
    }

    /// The root of the tree as it was at `size` leaves.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        Some(match size {
            0 => empty_root(),
            n => self.range_root(0, n as usize),
        })
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if size > self.size() {
            return None;
        }
        inclusion_proof_in(self, index as usize, size as usize)
    }

    /// The consistency proof between the trees of the first `old_size` and `new_size` leaves.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Option<Vec<Hash>> {
        if new_size > self.size() {
            return None;
        }
        consistency_proof_in(self, old_size as usize, new_size as usize)
    }
}

impl RangeRoot for Tree {
    fn range_root(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 1 {
            return self.levels[0][lo];
        }
        let height = n.trailing_zeros() as usize;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return self.levels[height][lo >> height];
        }
        let k = split_point(n);
        node_hash(&self.range_root(lo, lo + k), &self.range_root(lo + k, hi))
    }
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    IndexOutOfRange { index: u64, size: u64 },
    WrongLength,
    RootMismatch,
    SizesOutOfOrder { old: u64, new: u64 },
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is outside a tree of size {size}")
            }
            ProofError::WrongLength => f.write_str("the proof has the wrong number of hashes"),
            ProofError::RootMismatch => f.write_str("the proof does not lead to the expected root"),
            ProofError::SizesOutOfOrder { old, new } => {
                write!(f, "old tree size {old} is larger than new tree size {new}")
            }
        }
    }
}

impl std::error::Error for ProofError {}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut acc = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            acc = node_hash(p, &acc);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            acc = node_hash(&acc, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if acc != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn frontier_root_matches_recursive_root() {
        let all = leaves(70);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), root(&[]));
        for (i, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&all[..=i]), "size {}", i + 1);
            let rebuilt = Frontier::from_parts(frontier.size(), frontier.subtrees().to_vec());
            assert_eq!(rebuilt.unwrap(), frontier);
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_wrong_ones_fail() {
        for n in 1..=33 {
            let all = leaves(n);
            let r = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(&all, i).unwrap();
                verify_inclusion(&all[i], i as u64, n as u64, &proof, &r).unwrap();
                let other = all[(i + 1) % n];
                if n > 1 {
                    assert!(verify_inclusion(&other, i as u64, n as u64, &proof, &r).is_err());
                }
                // Any altered proof hash breaks the path to the root.
                for j in 0..proof.len() {
                    let mut altered = proof.clone();
                    altered[j].0[0] ^= 1;
                    assert!(verify_inclusion(&all[i], i as u64, n as u64, &altered, &r).is_err());
                }
                assert!(
                    verify_inclusion(
                        &all[i],
                        i as u64,
                        n as u64,
                        &[proof.clone(), vec![r]].concat(),
                        &r
                    )
                    .is_err()
                );
            }
        }
    }

    #[test]
    fn stored_tree_answers_like_the_leaf_slice_at_every_size() {
        let all = leaves(300);
        let mut tree = Tree::new();
        for leaf in &all {
            tree.push(*leaf);
        }
        assert_eq!(tree.size(), 300);
        for n in 0..=300usize {
            assert_eq!(tree.root_at(n as u64), Some(root(&all[..n])), "size {n}");
            for i in (0..n).step_by(7) {
                assert_eq!(
                    tree.inclusion_proof(i as u64, n as u64),
                    inclusion_proof(&all[..n], i),
                    "leaf {i} of {n}"
                );
            }
            for m in (0..=n).step_by(5) {
                assert_eq!(
                    tree.consistency_proof(m as u64, n as u64),
                    consistency_proof(&all[..n], m),
                    "{m} -> {n}"
                );
            }
        }
        assert_eq!(tree.root_at(301), None);
        assert_eq!(tree.inclusion_proof(0, 301), None);
        // Level 8 holds the roots of complete 256-leaf subtrees: a level-1 tlog tile.
        assert_eq!(tree.subtrees(8, 0, 256), &[root(&all[..256])]);
        assert_eq!(tree.subtrees(0, 256, 256), &all[256..]);
    }

    #[test]
    fn every_consistency_proof_verifies_and_wrong_ones_fail() {
        for n in 1..=33 {
            let all = leaves(n);
            let new_root = root(&all);
            for m in 0..=n {
                let proof = consistency_proof(&all, m).unwrap();
                let old_root = root(&all[..m]);
                verify_consistency(m as u64, n as u64, &proof, &old_root, &new_root).unwrap();
                if m > 0 && m < n {
                    let forged = leaf_hash(b"forged");
                    assert!(
                        verify_consistency(m as u64, n as u64, &proof, &forged, &new_root).is_err()
                    );
                    assert!(
                        verify_consistency(m as u64, n as u64, &proof, &old_root, &forged).is_err()
                    );
                }
            }
        }
    }
}
