//! Byte-table Toeplitz: the portable fast path for any key.
//!
//! Because the hash is linear over GF(2), the contribution of input byte `j`
//! depends only on its value and position: `T_j[v] = XOR of W_{8j+b}` over the
//! set bits `b` of `v`. A hash is then one table lookup and XOR per input
//! byte. Tables cover inputs up to `key.len() - 4` bytes (the longest input
//! whose windows lie inside the key); `Toeplitz` hashes longer inputs with
//! the bitwise definition.

use alloc::vec::Vec;

use crate::key::RssKey;

/// Per-position lookup tables for one key: 1 KiB per input byte.
#[derive(Clone)]
pub struct ByteTables {
    tables: Vec<[u32; 256]>,
}

impl core::fmt::Debug for ByteTables {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ByteTables({} positions)", self.tables.len())
    }
}

impl ByteTables {
    /// Builds tables for every input position the key fully covers.
    pub fn new(key: &RssKey) -> Self {
        let positions = key.max_input_len();
        let mut tables = Vec::with_capacity(positions);
        for j in 0..positions {
            let mut bit_windows = [0u32; 8];
            for (b, w) in bit_windows.iter_mut().enumerate() {
                // Input bit b (0 = MSB) of byte j selects window 8j+b.
                *w = key.window(8 * j + b);
            }
            let mut t = [0u32; 256];
            for v in 1..256usize {
                // Build from the lowest set bit: v = (v & (v-1)) | lowest.
                let low = v.trailing_zeros() as usize; // bit `low` from the LSB = MSB-index 7-low
                t[v] = t[v & (v - 1)] ^ bit_windows[7 - low];
            }
            tables.push(t);
        }
        Self { tables }
    }

    /// Number of input bytes covered by tables.
    pub fn positions(&self) -> usize {
        self.tables.len()
    }

    /// Table entry for byte value `v` at input position `pos`.
    #[inline(always)]
    pub fn lookup(&self, pos: usize, v: u8) -> u32 {
        self.tables[pos][usize::from(v)]
    }

    /// Hash of an input that fits the tables (`input.len() <= positions()`).
    #[inline(always)]
    pub fn hash_covered(&self, input: &[u8]) -> u32 {
        let mut h = 0;
        for (t, &b) in self.tables.iter().zip(input) {
            h ^= t[usize::from(b)];
        }
        h
    }
}
