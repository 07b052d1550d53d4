//! Key science: is a key symmetric for each layout, how many effective bits
//! does it give, and which known traps does it fall into (theory.md §2–3).
//!
//! Symmetry: `h(x) ^ h(swap(x)) = XOR_i x_i (W_i ^ W_swap(i))`, so a key is
//! symmetric for a layout iff `W_i == W_swap(i)` for every input bit `i`.
//! When it is not, a concrete counterexample is built: a documentation-range
//! tuple, with one input bit flipped if needed so its two directions differ.
//! Effective bits: the GF(2) rank of the windows `W_i` over the layout's
//! input bits (all 32 hash bits, and the low 7/9 bits a 128/512-entry RETA uses).

use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::gf2;
use crate::input::{Fields, Layout, Transform, Tuple};
use crate::key::RssKey;
use crate::toeplitz::Toeplitz;

/// RETA sizes whose index bits are analysed (7 and 9 low bits).
pub const RETA_SIZES: [usize; 2] = [128, 512];

/// A flow whose two directions hash differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The forward direction.
    pub tuple: Tuple,
    /// Hash of `tuple`.
    pub hash: u32,
    /// Hash of `tuple.reversed()`.
    pub reverse_hash: u32,
}

/// Result for one layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutCheck {
    /// The layout.
    pub layout: Layout,
    /// Every flow hashes the same in both directions.
    pub symmetric: bool,
    /// Present iff not symmetric.
    pub counterexample: Option<Counterexample>,
    /// GF(2) rank of the 32-bit hash over this layout's inputs.
    pub rank: u32,
    /// Rank of the low index bits of each size in [`RETA_SIZES`].
    pub reta_ranks: [u32; 2],
    /// The key is long enough (`len >= input + 4`) for this layout.
    pub key_covers: bool,
}

/// A finding worth the user's attention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Not symmetric for these layouts.
    NotSymmetric(Vec<Layout>),
    /// Too short for a layout: NICs need `input + 4` key bytes.
    KeyTooShort { layout: Layout, need: usize },
    /// Period-16 key: only 2^16 hash values, collisions constructible.
    Period16 {
        pattern: u16,
        example: (Tuple, Tuple, u32),
    },
    /// Period-16 key with an even-weight pattern: fewer than 16 effective bits.
    EvenWeightPattern { pattern: u16, rank: u32 },
    /// Period-16 key + the `xor` transform: every flow hashes to 0.
    XorTransformZero,
    /// Period-16 key + the `or-xor` transform: only `S&D`, `sp&dp` count.
    OrXorAndOnly,
    /// A RETA of this size cannot reach all its entries for this layout.
    RetaUnreachable {
        layout: Layout,
        size: usize,
        rank: u32,
    },
}

impl Warning {
    /// Stable identifier for JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSymmetric(_) => "not_symmetric",
            Self::KeyTooShort { .. } => "key_too_short",
            Self::Period16 { .. } => "period16_low_entropy",
            Self::EvenWeightPattern { .. } => "even_weight_pattern",
            Self::XorTransformZero => "xor_transform_zero",
            Self::OrXorAndOnly => "or_xor_and_only",
            Self::RetaUnreachable { .. } => "reta_unreachable",
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSymmetric(layouts) => {
                f.write_str("not symmetric for ")?;
                for (i, l) in layouts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(l.name())?;
                }
                f.write_str(
                    ": the two directions of a connection can land on different queues; \
                     use `symrss key gen`, a kernel symmetric transform with a random key, \
                     or software steering",
                )
            }
            Self::KeyTooShort { layout, need } => write!(
                f,
                "key too short for {}: it needs at least {need} bytes (input + 4)",
                layout.name()
            ),
            Self::Period16 { pattern, example } => write!(
                f,
                "period-16 key (0x{pattern:04x} repeated): the hash depends only on the XOR-fold \
                 of the tuple's 16-bit words, so there are at most 65536 distinct values and \
                 colliding flows are trivial to construct, e.g. {} and {} both hash to 0x{:08x}",
                example.0, example.1, example.2
            ),
            Self::EvenWeightPattern { pattern, rank } => write!(
                f,
                "pattern 0x{pattern:04x} has even weight: only {rank} effective bits instead of 16 \
                 (pick an odd-weight pattern, e.g. 0x6d5a)"
            ),
            Self::XorTransformZero => f.write_str(
                "never combine this key with the `xor` transform (Linux symmetric-xor, DPDK \
                 SYMMETRIC_TOEPLITZ): the input (S^D, S^D, sp^dp, sp^dp) folds to 0 and every \
                 flow hashes to 0, i.e. one queue gets everything",
            ),
            Self::OrXorAndOnly => f.write_str(
                "with the `or-xor` transform (Linux symmetric-or-xor, mlx5) this key hashes only \
                 S&D and sp&dp: few buckets for client/server traffic; keep a random key there",
            ),
            Self::RetaUnreachable { layout, size, rank } => write!(
                f,
                "{}: a {size}-entry RETA can reach only {} of its entries (index rank {rank})",
                layout.name(),
                1u64 << rank
            ),
        }
    }
}

/// Full report for one key.
#[derive(Clone, Debug)]
pub struct KeyCheck {
    /// The key analysed.
    pub key: RssKey,
    /// One entry per layout in [`Layout::ALL`] order.
    pub layouts: Vec<LayoutCheck>,
    /// `Some(pattern)` for period-16 keys.
    pub period16: Option<u16>,
    /// Findings, most important first.
    pub warnings: Vec<Warning>,
}

impl KeyCheck {
    /// Symmetric for every layout.
    pub fn symmetric_all(&self) -> bool {
        self.layouts.iter().all(|l| l.symmetric)
    }

    /// The entry for `layout`.
    pub fn layout(&self, layout: Layout) -> &LayoutCheck {
        self.layouts
            .iter()
            .find(|l| l.layout == layout)
            .expect("every layout is checked")
    }
}

/// Whether `key` is symmetric for `layout` (the window condition).
pub fn is_symmetric(key: &RssKey, layout: Layout) -> bool {
    first_asymmetric_bit(key, layout).is_none()
}

fn first_asymmetric_bit(key: &RssKey, layout: Layout) -> Option<usize> {
    (0..8 * layout.input_len()).find(|&i| key.window(i) != key.window(layout.swap_bit(i)))
}

/// GF(2) rank of the hash bits selected by `mask` over `layout`'s inputs.
pub fn rank(key: &RssKey, layout: Layout, mask: u32) -> u32 {
    gf2::rank((0..8 * layout.input_len()).map(|i| u64::from(key.window(i) & mask)))
}

/// A documentation-range flow in `layout` (RFC 5737 / RFC 3849 addresses).
pub fn sample_tuple(layout: Layout) -> Tuple {
    let ports = layout.has_ports().then_some((49152, 443));
    if layout.addr_len() == 4 {
        Tuple::v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 2),
            ports,
        )
    } else {
        Tuple::v6(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
            ports,
        )
    }
}

fn counterexample(hasher: &Toeplitz, layout: Layout, bit: usize) -> Counterexample {
    let fields = if layout.has_ports() {
        Fields::L4
    } else {
        Fields::Ip
    };
    let hash_pair = |t: &Tuple| {
        (
            hasher.hash_tuple(t, fields, Transform::None),
            hasher.hash_tuple(&t.reversed(), fields, Transform::None),
        )
    };
    let mut tuple = sample_tuple(layout);
    let (mut h, mut r) = hash_pair(&tuple);
    if h == r {
        // d(x) = h(x) ^ h(swap x) is linear and d(e_bit) != 0, so flipping
        // that bit of a tuple with d = 0 gives d != 0.
        let mut bytes = [0u8; 36];
        let input = tuple.input(fields, Transform::None);
        let n = input.as_bytes().len();
        bytes[..n].copy_from_slice(input.as_bytes());
        bytes[bit / 8] ^= 0x80 >> (bit % 8);
        tuple = Tuple::from_input(layout, &bytes[..n]);
        (h, r) = hash_pair(&tuple);
    }
    Counterexample {
        tuple,
        hash: h,
        reverse_hash: r,
    }
}

/// Analyses `key` for all four layouts.
pub fn check_key(key: &RssKey) -> KeyCheck {
    let hasher = Toeplitz::new(key.clone());
    let mut layouts = Vec::with_capacity(4);
    let mut warnings = Vec::new();
    for layout in Layout::ALL {
        let bad_bit = first_asymmetric_bit(key, layout);
        let reta_ranks = RETA_SIZES.map(|s| rank(key, layout, (s - 1) as u32));
        layouts.push(LayoutCheck {
            layout,
            symmetric: bad_bit.is_none(),
            counterexample: bad_bit.map(|b| counterexample(&hasher, layout, b)),
            rank: rank(key, layout, u32::MAX),
            reta_ranks,
            key_covers: key.len() >= layout.input_len() + 4,
        });
    }
    let asym: Vec<Layout> = layouts
        .iter()
        .filter(|l| !l.symmetric)
        .map(|l| l.layout)
        .collect();
    if !asym.is_empty() {
        warnings.push(Warning::NotSymmetric(asym));
    }
    for l in &layouts {
        if !l.key_covers {
            warnings.push(Warning::KeyTooShort {
                layout: l.layout,
                need: l.layout.input_len() + 4,
            });
        }
    }
    let period16 = key.period16_pattern();
    if let Some(pattern) = period16 {
        // Same XOR-fold: change the low 16-bit word of both addresses alike.
        let a = sample_tuple(Layout::Tcp4);
        let b = Tuple::v4(
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(198, 51, 100, 1),
            a.ports(),
        );
        let h = hasher.hash_tuple(&a, Fields::L4, Transform::None);
        warnings.push(Warning::Period16 {
            pattern,
            example: (a, b, h),
        });
        if pattern.count_ones() % 2 == 0 {
            warnings.push(Warning::EvenWeightPattern {
                pattern,
                rank: rank(key, Layout::Tcp4, u32::MAX),
            });
        }
        warnings.push(Warning::XorTransformZero);
        warnings.push(Warning::OrXorAndOnly);
    }
    for l in &layouts {
        for (size, &r) in RETA_SIZES.iter().zip(&l.reta_ranks) {
            if l.key_covers && r < size.trailing_zeros() {
                warnings.push(Warning::RetaUnreachable {
                    layout: l.layout,
                    size: *size,
                    rank: r,
                });
            }
        }
    }
    KeyCheck {
        key: key.clone(),
        layouts,
        period16,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_key_is_asymmetric_with_a_real_counterexample() {
        let c = check_key(&RssKey::microsoft(40));
        assert!(!c.symmetric_all());
        for l in &c.layouts {
            assert!(!l.symmetric);
            let ce = l.counterexample.unwrap();
            assert_ne!(ce.hash, ce.reverse_hash);
            assert_eq!(l.rank, 32);
        }
    }

    #[test]
    fn sym_key_facts_from_theory() {
        let c = check_key(&RssKey::repeating(0x6d5a, 40));
        assert!(c.symmetric_all());
        assert_eq!(c.layout(Layout::Tcp4).rank, 16);
        assert_eq!(c.period16, Some(0x6d5a));
        let Some(Warning::Period16 { example, .. }) = c
            .warnings
            .iter()
            .find(|w| w.code() == "period16_low_entropy")
        else {
            panic!("period-16 warning missing")
        };
        let t = Toeplitz::new(c.key.clone());
        assert_ne!(example.0, example.1);
        assert_eq!(
            t.hash_tuple(&example.1, Fields::L4, Transform::None),
            example.2
        );
        // Even weight: 0x6d5b has rank 14, 0xaaaa rank 2, 0xffff rank 1 (theory.md §3).
        for (p, r) in [(0x6d5b, 14), (0xaaaa, 2), (0xffff, 1)] {
            let c = check_key(&RssKey::repeating(p, 40));
            assert_eq!(c.layout(Layout::Tcp4).rank, r, "{p:04x}");
            assert!(c.warnings.iter().any(|w| w.code() == "even_weight_pattern"));
        }
    }

    #[test]
    fn free_bits_lift_tcp4_rank_to_32() {
        // theory.md §3: flipping key bits 31, 63, 159, 191 keeps all four
        // layouts symmetric and lifts the tcp4 rank from 16 to 32.
        let mut key = RssKey::repeating(0x6d5a, 40);
        for b in [31, 63, 159, 191] {
            key.flip_bit(b);
        }
        let c = check_key(&key);
        assert!(c.symmetric_all());
        assert_eq!(c.layout(Layout::Tcp4).rank, 32);
        let mut half = RssKey::repeating(0x6d5a, 40);
        half.flip_bit(31);
        half.flip_bit(63);
        let c = check_key(&half);
        assert!(c.layout(Layout::Tcp4).symmetric && !c.layout(Layout::Tcp6).symmetric);
    }
}
