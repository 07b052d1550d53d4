//! GFNI + AVX-512 Toeplitz for any key (x86_64, chosen at run time).
//!
//! Output byte `o` (0 = most significant) of the contribution of input byte
//! `j` is an 8×8 GF(2) matrix applied to `x_j`, and that matrix depends only
//! on `m = j + o`: its row `s` is the key's 8-bit window at bit `8m + s`. So
//! 64-bit lane `l` of a ZMM register holds matrix `M_l`, and byte `3 - o` of
//! that lane holds input byte `x_{l-o}` (one `vpermb` from the loaded input).
//! One `vgf2p8affineqb` per 8 lanes evaluates all products; XOR-reducing the
//! lanes leaves the hash, little-endian, in the low 4 bytes. An input of `n`
//! bytes needs `n + 3` lanes: 2 registers for IPv4 4-tuples, 5 for IPv6.
//! (DPDK's `rte_thash_gfni` uses the same instruction; this layout was derived
//! from the Microsoft definition, see the tests against the bitwise oracle.)
//!
//! Intel SDM, GF2P8AFFINEQB: `dst.bit[i] = parity(matrix.byte[7-i] AND x)`.
//!
//! This is the one place in the hash crate that needs `unsafe`: calling a
//! `#[target_feature]` function and the masked load. Both are guarded by the
//! run-time CPU check in [`GfniMatrices::new`], which is the only way to get
//! a value of that type.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::input::{Fields, Tuple};
use crate::kernel::{Kernel, KernelFn};
use crate::key::RssKey;

/// Longest input the GFNI path hashes: one 64-byte load, `n + 3 <= 64` lanes.
pub const MAX_INPUT: usize = 61;
const MAX_REGS: usize = 8;

/// Byte-permutation indices and masks: register `r`, byte `q` takes input
/// byte `8r + q/8 - 3 + q%8` for `q%8 < 4` (when that is >= 0), else zero.
const fn permutation() -> ([[u8; 64]; MAX_REGS], [u64; MAX_REGS]) {
    let mut idx = [[0u8; 64]; MAX_REGS];
    let mut masks = [0u64; MAX_REGS];
    let mut r = 0;
    while r < MAX_REGS {
        let mut q = 0;
        while q < 64 {
            let lane = 8 * r + q / 8;
            let p = q % 8;
            if p < 4 && lane + p >= 3 {
                idx[r][q] = (lane + p - 3) as u8;
                masks[r] |= 1 << q;
            }
            q += 1;
        }
        r += 1;
    }
    (idx, masks)
}

const PERM: ([[u8; 64]; MAX_REGS], [u64; MAX_REGS]) = permutation();

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Aligned([u64; 8]);

/// Per-key lane matrices. Only constructible on a CPU with AVX-512 (F, BW,
/// VBMI) and GFNI.
#[derive(Clone)]
pub struct GfniMatrices {
    matrices: [Aligned; MAX_REGS],
    perm: [Aligned; MAX_REGS],
    masks: [u64; MAX_REGS],
    max_input: usize,
}

impl core::fmt::Debug for GfniMatrices {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "GfniMatrices(max_input={})", self.max_input)
    }
}

/// Whether this CPU can run the GFNI path.
pub fn cpu_supported() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("gfni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vbmi",
            target_feature = "gfni"
        ))
    }
}

impl GfniMatrices {
    /// Matrices for `key`, or `None` when the CPU lacks the instructions.
    pub fn new(key: &RssKey) -> Option<Self> {
        if !cpu_supported() {
            return None;
        }
        let mut matrices = [Aligned([0; 8]); MAX_REGS];
        for (r, reg) in matrices.iter_mut().enumerate() {
            for (i, lane) in reg.0.iter_mut().enumerate() {
                let m = 8 * r + i;
                let mut rows = [0u8; 8];
                for (s, row) in rows.iter_mut().enumerate() {
                    *row = key.window8(8 * m + s);
                }
                *lane = u64::from_le_bytes(rows);
            }
        }
        let mut perm = [Aligned([0; 8]); MAX_REGS];
        for (r, p) in perm.iter_mut().enumerate() {
            for (i, lane) in p.0.iter_mut().enumerate() {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&PERM.0[r][8 * i..8 * i + 8]);
                *lane = u64::from_le_bytes(bytes);
            }
        }
        Some(Self {
            matrices,
            perm,
            masks: PERM.1,
            max_input: key.max_input_len().min(MAX_INPUT),
        })
    }

    /// Longest input hashed exactly by this path.
    pub fn max_input(&self) -> usize {
        self.max_input
    }

    /// Hash of `input` (`input.len() <= max_input()`).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        assert!(
            input.len() <= self.max_input,
            "input longer than the GFNI path covers"
        );
        // SAFETY: `self` exists only if `cpu_supported()` returned true, so
        // the target features of `hash_avx512` are present on this CPU.
        unsafe { hash_avx512(self, input) }
    }

    /// Hash of a fixed-size input (`N <= max_input()`): the register count
    /// is a constant, so the kernel is fully unrolled.
    #[inline]
    pub fn hash_fixed<const N: usize>(&self, input: &[u8; N]) -> u32 {
        assert!(
            N <= self.max_input,
            "input longer than the GFNI path covers"
        );
        // SAFETY: `self` exists only if `cpu_supported()` returned true.
        unsafe { hash_fixed_avx512(self, input) }
    }

    /// Hash of an `N`-byte input (`N <= 40`) given as little-endian 64-bit
    /// words, so a tuple built in registers reaches the vector unit without
    /// a store-forwarding stall (a 64-byte load of a just-written stack
    /// array costs more than the hash itself).
    #[inline]
    pub fn hash_words<const N: usize>(&self, w: [u64; 5]) -> u32 {
        assert!(
            N <= self.max_input && N <= 40,
            "input longer than the GFNI path covers"
        );
        // Five scalar arguments travel in registers; an array would go
        // through memory and be reloaded as one vector (stall).
        // SAFETY: `self` exists only if `cpu_supported()` returned true.
        unsafe { hash_words_avx512::<N>(self, w[0], w[1], w[2], w[3], w[4]) }
    }

    /// Runs `f` with this kernel inside a function compiled for the GFNI
    /// features, so `f`'s loop inlines the kernel (see [`crate::kernel`]).
    #[inline]
    pub fn run<F: KernelFn>(&self, f: F) -> F::Output {
        // SAFETY: `self` exists only if `cpu_supported()` returned true.
        unsafe { run_avx512(self, f) }
    }

    /// Hashes every input of `inputs` into `out` (same length, each input
    /// `<= max_input()` bytes): one call for many tuples, two tuples per
    /// reduction (bytes 0-3 and 4-7 of each lane), the layout DPDK's bulk
    /// GFNI code uses.
    pub fn hash_many<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        assert!(
            N <= self.max_input,
            "input longer than the GFNI path covers"
        );
        assert_eq!(inputs.len(), out.len(), "one output per input");
        // SAFETY: as in `hash`, the features are present.
        unsafe { hash_many_avx512(self, inputs, out) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
fn run_avx512<F: KernelFn>(g: &GfniMatrices, f: F) -> F::Output {
    f.call(g)
}

impl Kernel for GfniMatrices {
    #[inline(always)]
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32 {
        let le64 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        // Ports as their big-endian wire bytes read little-endian.
        let port_word =
            |(sp, dp): (u16, u16)| u64::from(sp.swap_bytes()) | (u64::from(dp.swap_bytes()) << 16);
        let ports = match fields {
            Fields::L4 => tuple.ports(),
            Fields::Ip => None,
        };
        let (src, dst) = tuple.padded_addrs();
        if tuple.is_v6() {
            let w = [
                le64(&src[..8]),
                le64(&src[8..]),
                le64(&dst[..8]),
                le64(&dst[8..]),
            ];
            match ports {
                Some(p) => self.hash_words::<36>([w[0], w[1], w[2], w[3], port_word(p)]),
                None => self.hash_words::<32>([w[0], w[1], w[2], w[3], 0]),
            }
        } else {
            let v4 = |b: &[u8; 16]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let w0 = v4(src) | (v4(dst) << 32);
            match ports {
                Some(p) => self.hash_words::<12>([w0, port_word(p), 0, 0, 0]),
                None => self.hash_words::<8>([w0, 0, 0, 0, 0]),
            }
        }
    }
}

/// Indices for `vpermt2b` that place input A in bytes 0-3 and input B in
/// bytes 4-7 of each lane (B's bytes are selected with index bit 6).
const fn pair_permutation() -> ([[u8; 64]; MAX_REGS], [u64; MAX_REGS]) {
    let mut idx = [[0u8; 64]; MAX_REGS];
    let mut masks = [0u64; MAX_REGS];
    let mut r = 0;
    while r < MAX_REGS {
        let mut q = 0;
        while q < 64 {
            let lane = 8 * r + q / 8;
            let p = q % 4;
            let second = (q % 8) >= 4;
            if lane + p >= 3 {
                idx[r][q] = (lane + p - 3) as u8 | if second { 64 } else { 0 };
                masks[r] |= 1 << q;
            }
            q += 1;
        }
        r += 1;
    }
    (idx, masks)
}

const PAIR_PERM: ([[u8; 64]; MAX_REGS], [u64; MAX_REGS]) = pair_permutation();

#[inline(always)]
fn load_mask(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn reduce_lanes(acc: __m512i) -> u64 {
    let a256 = _mm256_xor_si256(
        _mm512_castsi512_si256(acc),
        _mm512_extracti64x4_epi64::<1>(acc),
    );
    let a128 = _mm_xor_si128(
        _mm256_castsi256_si128(a256),
        _mm256_extracti128_si256::<1>(a256),
    );
    let a64 = _mm_xor_si128(a128, _mm_unpackhi_epi64(a128, a128));
    _mm_cvtsi128_si64(a64) as u64
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn hash_words_avx512<const N: usize>(
    m: &GfniMatrices,
    w0: u64,
    w1: u64,
    w2: u64,
    w3: u64,
    w4: u64,
) -> u32 {
    let data = _mm512_set_epi64(
        0, 0, 0, w4 as i64, w3 as i64, w2 as i64, w1 as i64, w0 as i64,
    );
    hash_data::<N>(m, data)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn hash_data<const N: usize>(m: &GfniMatrices, data: __m512i) -> u32 {
    hash_regs(m, data, (N + 3).div_ceil(8))
}

/// The kernel: `regs` registers of permuted input bytes through their lane
/// matrices, XOR-reduced. With a constant `regs` (via [`hash_data`]) the
/// loop unrolls.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn hash_regs(m: &GfniMatrices, data: __m512i, regs: usize) -> u32 {
    let mut acc = _mm512_setzero_si512();
    for r in 0..regs {
        // SAFETY: both point to 64-byte aligned, initialised `[u64; 8]`.
        let (idx, mat) = unsafe {
            (
                _mm512_load_si512(m.perm[r].0.as_ptr().cast()),
                _mm512_load_si512(m.matrices[r].0.as_ptr().cast()),
            )
        };
        let bytes = _mm512_maskz_permutexvar_epi8(m.masks[r], idx, data);
        acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8::<0>(bytes, mat));
    }
    reduce_lanes(acc) as u32
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn hash_fixed_avx512<const N: usize>(m: &GfniMatrices, input: &[u8; N]) -> u32 {
    // SAFETY: the mask selects exactly the N bytes of `input`.
    let data = unsafe { _mm512_maskz_loadu_epi8(load_mask(N), input.as_ptr().cast()) };
    hash_data::<N>(m, data)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn hash_avx512(m: &GfniMatrices, input: &[u8]) -> u32 {
    let n = input.len();
    debug_assert!(n <= MAX_INPUT);
    // SAFETY: the mask selects exactly the `n` bytes of `input`; masked-off
    // bytes are neither read nor able to fault (AVX-512 fault suppression).
    let data = unsafe { _mm512_maskz_loadu_epi8(load_mask(n), input.as_ptr().cast()) };
    hash_regs(m, data, (n + 3).div_ceil(8))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
fn hash_many_avx512<const N: usize>(m: &GfniMatrices, inputs: &[[u8; N]], out: &mut [u32]) {
    let regs = (N + 3).div_ceil(8);
    let mut idx = [_mm512_setzero_si512(); MAX_REGS];
    let mut mat = [_mm512_setzero_si512(); MAX_REGS];
    for r in 0..regs {
        // SAFETY: 64 initialised bytes each; the matrices are 64-byte aligned.
        unsafe {
            idx[r] = _mm512_loadu_si512(PAIR_PERM.0[r].as_ptr().cast());
            mat[r] = _mm512_load_si512(m.matrices[r].0.as_ptr().cast());
        }
    }
    let mut pairs = inputs.chunks_exact(2);
    let mut outs = out.chunks_exact_mut(2);
    for (pair, o) in (&mut pairs).zip(&mut outs) {
        // SAFETY: the mask selects exactly the N bytes of each input.
        let (a, b) = unsafe {
            (
                _mm512_maskz_loadu_epi8(load_mask(N), pair[0].as_ptr().cast()),
                _mm512_maskz_loadu_epi8(load_mask(N), pair[1].as_ptr().cast()),
            )
        };
        let mut acc = _mm512_setzero_si512();
        for r in 0..regs {
            let bytes = _mm512_maskz_permutex2var_epi8(PAIR_PERM.1[r], a, idx[r], b);
            acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8::<0>(bytes, mat[r]));
        }
        let both = reduce_lanes(acc);
        o[0] = both as u32;
        o[1] = (both >> 32) as u32;
    }
    for (input, o) in pairs.remainder().iter().zip(outs.into_remainder()) {
        *o = hash_fixed_avx512(m, input);
    }
}
