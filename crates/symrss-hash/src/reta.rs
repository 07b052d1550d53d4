//! RSS indirection tables (RETA): queue = `reta[hash % size]`.
//!
//! NICs index the table with the low-order hash bits (Linux
//! `Documentation/networking/scaling.rst`; the kernel selftest
//! `tools/testing/selftests/drivers/net/hw/toeplitz.c` computes
//! `indir[hash % indir_size]`). Fills follow `ethtool -X`: `equal N` puts
//! `start + i % N` in entry `i`; `weight W0 W1 ...` gives queue `j` a share
//! of entries proportional to `Wj`, with ethtool's exact rounding.

use alloc::vec::Vec;
use core::fmt;

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetaError {
    /// Size 0 or queue count 0.
    Empty,
    /// Weights all zero.
    ZeroWeights,
    /// Sum of weights larger than the table (ethtool refuses it too).
    WeightsExceedSize { sum: u64, size: usize },
}

impl fmt::Display for RetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("indirection table size and queue count must be at least 1"),
            Self::ZeroWeights => f.write_str("at least one weight must be non-zero"),
            Self::WeightsExceedSize { sum, size } => write!(
                f,
                "total weight {sum} exceeds the size of the indirection table ({size})"
            ),
        }
    }
}

impl core::error::Error for RetaError {}

/// An indirection table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reta {
    entries: Vec<u32>,
    /// `len - 1` when the size is a power of two (every NIC's is): the
    /// index is then a mask, not a division.
    mask: Option<usize>,
}

impl Reta {
    fn with_entries(entries: Vec<u32>) -> Self {
        let mask = entries.len().is_power_of_two().then(|| entries.len() - 1);
        Self { entries, mask }
    }
}

impl Reta {
    /// `ethtool -X IF equal queues [start S]`.
    pub fn equal(size: usize, queues: u32, start: u32) -> Result<Self, RetaError> {
        if size == 0 || queues == 0 {
            return Err(RetaError::Empty);
        }
        Ok(Self::with_entries(
            (0..size).map(|i| start + (i as u32) % queues).collect(),
        ))
    }

    /// `ethtool -X IF weight W0 W1 ... [start S]`.
    pub fn weighted(size: usize, weights: &[u32], start: u32) -> Result<Self, RetaError> {
        if size == 0 || weights.is_empty() {
            return Err(RetaError::Empty);
        }
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if sum == 0 {
            return Err(RetaError::ZeroWeights);
        }
        if sum > size as u64 {
            return Err(RetaError::WeightsExceedSize { sum, size });
        }
        let mut entries = Vec::with_capacity(size);
        let mut partial = 0u64;
        let mut j: usize = 0;
        for i in 0..size as u64 {
            // ethtool: while (i >= size * partial / sum) { j++; partial += w[j]; }
            while i >= (size as u64) * partial / sum {
                partial += u64::from(weights[j]);
                j += 1;
            }
            entries.push(start + j as u32 - 1);
        }
        Ok(Self::with_entries(entries))
    }

    /// A table from explicit entries (e.g. read back from a NIC).
    pub fn from_entries(entries: Vec<u32>) -> Result<Self, RetaError> {
        if entries.is_empty() {
            return Err(RetaError::Empty);
        }
        Ok(Self::with_entries(entries))
    }

    /// Number of entries.
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries.
    pub fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Table index for a hash: `hash % size`.
    #[inline]
    pub fn index(&self, hash: u32) -> usize {
        match self.mask {
            Some(m) => hash as usize & m,
            None => hash as usize % self.entries.len(),
        }
    }

    /// Queue for a hash.
    #[inline]
    pub fn queue(&self, hash: u32) -> u32 {
        self.entries[self.index(hash)]
    }

    /// Highest queue number plus one.
    pub fn queue_count(&self) -> u32 {
        self.entries.iter().copied().max().map_or(0, |m| m + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_weighted_fill_like_ethtool() {
        let r = Reta::equal(8, 3, 0).unwrap();
        assert_eq!(r.entries(), &[0, 1, 2, 0, 1, 2, 0, 1]);
        assert_eq!(r.queue(0x51cc_c178), r.entries()[0x51cc_c178 % 8]);
        let w = Reta::weighted(8, &[1, 3], 0).unwrap();
        assert_eq!(w.entries(), &[0, 0, 1, 1, 1, 1, 1, 1]);
        let w = Reta::weighted(128, &[1, 1, 1, 1], 2).unwrap();
        for q in 2..6 {
            assert_eq!(w.entries().iter().filter(|&&e| e == q).count(), 32);
        }
        let z = Reta::weighted(8, &[0, 2, 0, 2], 0).unwrap();
        assert_eq!(z.entries(), &[1, 1, 1, 1, 3, 3, 3, 3]);
        assert_eq!(
            Reta::weighted(4, &[3, 3], 0),
            Err(RetaError::WeightsExceedSize { sum: 6, size: 4 })
        );
        assert_eq!(Reta::weighted(4, &[0, 0], 0), Err(RetaError::ZeroWeights));
        assert_eq!(Reta::equal(0, 2, 0), Err(RetaError::Empty));
    }
}
