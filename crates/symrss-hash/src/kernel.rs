//! Kernels: one hashing path as a concrete type, for hot loops.
//!
//! [`Toeplitz`](crate::Toeplitz) picks its path at run time. A loop that
//! calls it per tuple pays that dispatch per call, and on the GFNI path a
//! call into a `#[target_feature]` function that cannot be inlined. A
//! [`KernelFn`] instead receives the concrete kernel once
//! ([`Toeplitz::with_kernel`](crate::Toeplitz::with_kernel)) and runs its
//! whole loop monomorphised for it; for GFNI the loop runs inside a
//! feature-enabled trampoline, so the kernel inlines into it and the key
//! matrices stay in registers (the shape of DPDK's inline `rte_thash_gfni`).
//!
//! Every kernel hashes the *untransformed* input of a tuple; apply
//! [`Tuple::transformed`] first for the symmetric transforms.

use crate::fold::{FoldTables, fold16_tuple_swapped};
use crate::input::{Fields, Tuple};
use crate::key::RssKey;
use crate::reference::toeplitz_bitwise;
use crate::table::ByteTables;

/// One hashing path with its key material. Implementations require the key
/// to cover the tuple layouts (at least 40 bytes), which
/// [`Toeplitz::with_kernel`](crate::Toeplitz::with_kernel) guarantees.
pub trait Kernel {
    /// Hash of the untransformed input of `tuple` under `fields`.
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32;
}

/// A computation generic over the kernel (a closure that can be generic).
pub trait KernelFn {
    /// What the computation returns.
    type Output;
    /// Runs with the concrete kernel. Mark implementations `#[inline]` so
    /// they inline into the GFNI trampoline.
    fn call<K: Kernel>(self, kernel: &K) -> Self::Output;
}

impl Kernel for FoldTables {
    #[inline(always)]
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32 {
        self.hash_fold_swapped(fold16_tuple_swapped(tuple, fields))
    }
}

impl Kernel for ByteTables {
    #[inline(always)]
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32 {
        let ports = match fields {
            Fields::L4 => tuple.ports(),
            Fields::Ip => None,
        };
        if tuple.is_v6() {
            self.hash_tuple_fields::<16>(tuple, ports)
        } else {
            self.hash_tuple_fields::<4>(tuple, ports)
        }
    }
}

impl ByteTables {
    #[inline(always)]
    fn hash_tuple_fields<const A: usize>(&self, tuple: &Tuple, ports: Option<(u16, u16)>) -> u32 {
        let (s, d) = tuple.padded_addrs();
        let mut h = 0;
        for i in 0..A {
            h ^= self.lookup(i, s[i]) ^ self.lookup(A + i, d[i]);
        }
        if let Some((sp, dp)) = ports {
            let [a, b] = sp.to_be_bytes();
            let [c, e] = dp.to_be_bytes();
            h ^= self.lookup(2 * A, a) ^ self.lookup(2 * A + 1, b);
            h ^= self.lookup(2 * A + 2, c) ^ self.lookup(2 * A + 3, e);
        }
        h
    }
}

/// The bit-serial reference as a kernel.
#[derive(Debug, Clone, Copy)]
pub struct BitwiseKernel<'a>(pub &'a RssKey);

impl Kernel for BitwiseKernel<'_> {
    #[inline]
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32 {
        toeplitz_bitwise(
            self.0,
            tuple.input(fields, crate::Transform::None).as_bytes(),
        )
    }
}

/// Any [`Toeplitz`](crate::Toeplitz) through its byte-input path (keys too
/// short for the tuple kernels).
#[derive(Debug, Clone, Copy)]
pub struct InputKernel<'a>(pub &'a crate::Toeplitz);

impl Kernel for InputKernel<'_> {
    #[inline]
    fn hash_tuple(&self, tuple: &Tuple, fields: Fields) -> u32 {
        self.0
            .hash(tuple.input(fields, crate::Transform::None).as_bytes())
    }
}
