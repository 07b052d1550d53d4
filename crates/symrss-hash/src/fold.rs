//! The XOR-fold fast path for period-16 keys (theory.md §3).
//!
//! With a key that repeats one 16-bit pattern, window `W_i` depends only on
//! `i mod 16`, so the hash depends only on `fold16(input)`, the XOR of the
//! input's big-endian 16-bit words (an odd trailing byte is padded with a zero
//! byte). Two 256-entry tables then map the fold to the hash. This holds while
//! every window lies inside the key, i.e. for inputs up to `key.len() - 4` bytes.

use crate::input::{Fields, Tuple};
use crate::key::RssKey;

/// Fold tables for one period-16 key.
#[derive(Clone)]
pub struct FoldTables {
    hi: [u32; 256],
    lo: [u32; 256],
    max_input: usize,
}

impl core::fmt::Debug for FoldTables {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FoldTables(max_input={})", self.max_input)
    }
}

impl FoldTables {
    /// Tables for `key` if it has period 16 (see [`RssKey::period16_pattern`]).
    pub fn new(key: &RssKey) -> Option<Self> {
        key.period16_pattern()?;
        let mut hi = [0u32; 256];
        let mut lo = [0u32; 256];
        for v in 0..256usize {
            for b in 0..8 {
                if v & (0x80 >> b) != 0 {
                    hi[v] ^= key.window(b);
                    lo[v] ^= key.window(8 + b);
                }
            }
        }
        Some(Self {
            hi,
            lo,
            max_input: key.max_input_len(),
        })
    }

    /// Longest input this fold path hashes exactly.
    pub fn max_input(&self) -> usize {
        self.max_input
    }

    /// Hash from a 16-bit fold.
    #[inline(always)]
    pub fn hash_fold(&self, fold: u16) -> u32 {
        self.hi[usize::from(fold >> 8)] ^ self.lo[usize::from(fold & 0xff)]
    }

    /// Hash from a byte-swapped 16-bit fold (no swap needed: the tables
    /// are indexed the other way round).
    #[inline(always)]
    pub fn hash_fold_swapped(&self, fold_swapped: u16) -> u32 {
        self.hi[usize::from(fold_swapped & 0xff)] ^ self.lo[usize::from(fold_swapped >> 8)]
    }

    /// Hash of `input` (`input.len() <= max_input()`).
    #[inline(always)]
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.hash_fold(fold16(input))
    }
}

/// `fold16` of a tuple's untransformed input, straight from its fields,
/// byte-swapped (see [`FoldTables::hash_fold_swapped`]). Also the fold of
/// its `sort`-transformed input (XOR ignores order).
#[inline(always)]
pub fn fold16_tuple_swapped(tuple: &Tuple, fields: Fields) -> u16 {
    // Branch-free: IPv4 padding words and absent ports are zero and do not
    // change the XOR. Words are XORed as they lie in memory (little-endian
    // reads of big-endian words = byte-swapped words; swapping commutes
    // with XOR).
    // Four scalar 64-bit loads: cheaper than a 128-bit XOR whose halves
    // must then move from vector to general registers.
    let (src, dst) = tuple.padded_addrs();
    let q = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let a = q(&src[..8]) ^ q(&src[8..]) ^ q(&dst[..8]) ^ q(&dst[8..]);
    let mut a = (a >> 32) as u32 ^ a as u32;
    if fields == Fields::L4 {
        a ^= u32::from_le_bytes(tuple.ports_wire());
    }
    (a >> 16) as u16 ^ a as u16
}

/// XOR of all big-endian 16-bit words of `input`, the last odd byte padded
/// on the right with zero.
#[inline(always)]
pub fn fold16(input: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = input.chunks_exact(8);
    for c in &mut chunks {
        acc ^= u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        acc ^= u64::from_be_bytes(last);
    }
    let a32 = (acc >> 32) ^ acc;
    ((a32 >> 16) ^ a32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::toeplitz_bitwise;

    #[test]
    fn fold_matches_reference_and_collision_from_theory() {
        let key = RssKey::repeating(0x6d5a, 40);
        let t = FoldTables::new(&key).unwrap();
        // theory.md §3: 10.0.0.1:1000 -> 10.0.0.2:80 and 10.0.0.3:1000 -> 10.0.0.0:80
        // share fold 0x03bb and hash 0x10311031.
        let a = [10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 80];
        let b = [10, 0, 0, 3, 10, 0, 0, 0, 0x03, 0xe8, 0, 80];
        assert_eq!(fold16(&a), 0x03bb);
        assert_eq!(fold16(&b), 0x03bb);
        assert_eq!(t.hash(&a), 0x1031_1031);
        assert_eq!(t.hash(&a), toeplitz_bitwise(&key, &a));
        assert_eq!(t.hash(&b), toeplitz_bitwise(&key, &b));
        assert!(FoldTables::new(&RssKey::microsoft(40)).is_none());
    }
}
