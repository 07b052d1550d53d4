//! The Toeplitz hasher: one key, the fastest exact path for it.
//!
//! Paths, all bit-exact with [`crate::reference::toeplitz_bitwise`]:
//!
//! | path | when | cost |
//! |---|---|---|
//! | [`Path::Fold`] | period-16 key (e.g. `0x6d5a` repeated) | XOR-fold + 2 lookups |
//! | [`Path::Gfni`] | any key, CPU with AVX-512 VBMI + GFNI | `vpermb` + `vgf2p8affineqb` per 8 lanes |
//! | [`Path::Table`] | any key, any CPU | one 1 KiB-table lookup per input byte |
//!
//! [`Toeplitz::new`] picks Fold, else Gfni, else Table (chosen by measurement,
//! see BENCHMARKS.md). Inputs longer than `key.len() - 4` bytes (windows past
//! the key end, which no NIC allows) fall back to the bitwise definition.

use crate::fold::FoldTables;
use crate::input::{Fields, HashInput, Transform, Tuple};
use crate::kernel::{BitwiseKernel, InputKernel, Kernel, KernelFn};
use crate::key::RssKey;
use crate::reference::toeplitz_bitwise;
use crate::table::ByteTables;

#[cfg(target_arch = "x86_64")]
use crate::gfni::GfniMatrices;

/// Which implementation a [`Toeplitz`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Bit-serial reference.
    Bitwise,
    /// Byte tables.
    Table,
    /// GFNI + AVX-512.
    Gfni,
    /// XOR-fold for period-16 keys.
    Fold,
}

impl Path {
    /// Short name (`bitwise`, `table`, `gfni`, `fold`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Bitwise => "bitwise",
            Self::Table => "table",
            Self::Gfni => "gfni",
            Self::Fold => "fold",
        }
    }
}

// Tables live inline: one hasher per key, built once, and no pointer chase
// on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Engine {
    Bitwise,
    Table(ByteTables),
    #[cfg(target_arch = "x86_64")]
    Gfni(GfniMatrices),
    Fold(FoldTables),
}

/// A Toeplitz hasher for one key.
#[derive(Clone, Debug)]
pub struct Toeplitz {
    key: RssKey,
    engine: Engine,
    /// Longest input the engine hashes; longer inputs go bitwise.
    covered: usize,
}

impl Toeplitz {
    /// The fastest exact path for `key` on this CPU.
    pub fn new(key: RssKey) -> Self {
        for path in [Path::Fold, Path::Gfni, Path::Table] {
            if let Some(t) = Self::with_path(key.clone(), path) {
                return t;
            }
        }
        unreachable!("the table path is always available")
    }

    /// A hasher on a given path, or `None` if the path cannot serve this key
    /// on this CPU (Fold needs a period-16 key, Gfni the CPU features).
    pub fn with_path(key: RssKey, path: Path) -> Option<Self> {
        let (engine, covered) = match path {
            Path::Bitwise => (Engine::Bitwise, usize::MAX),
            Path::Table => {
                let t = ByteTables::new(&key);
                let n = t.positions();
                (Engine::Table(t), n)
            }
            Path::Fold => {
                let f = FoldTables::new(&key)?;
                let n = f.max_input();
                (Engine::Fold(f), n)
            }
            #[cfg(target_arch = "x86_64")]
            Path::Gfni => {
                let g = GfniMatrices::new(&key)?;
                let n = g.max_input();
                (Engine::Gfni(g), n)
            }
            #[cfg(not(target_arch = "x86_64"))]
            Path::Gfni => return None,
        };
        Some(Self {
            key,
            engine,
            covered,
        })
    }

    /// The key.
    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// The path in use.
    pub fn path(&self) -> Path {
        match self.engine {
            Engine::Bitwise => Path::Bitwise,
            Engine::Table(_) => Path::Table,
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(_) => Path::Gfni,
            Engine::Fold(_) => Path::Fold,
        }
    }

    /// Hash of raw input bytes.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        if input.len() > self.covered {
            return toeplitz_bitwise(&self.key, input);
        }
        match &self.engine {
            Engine::Fold(f) => f.hash(input),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(g) => g.hash(input),
            Engine::Table(t) => t.hash_covered(input),
            Engine::Bitwise => toeplitz_bitwise(&self.key, input),
        }
    }

    /// Hash of a fixed-size input; the length is known at compile time, so
    /// the fold and GFNI paths unroll completely.
    #[inline(always)]
    pub fn hash_fixed<const N: usize>(&self, input: &[u8; N]) -> u32 {
        if N > self.covered {
            return toeplitz_bitwise(&self.key, input);
        }
        match &self.engine {
            Engine::Fold(f) => f.hash(input),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(g) => g.hash_fixed(input),
            Engine::Table(t) => t.hash_covered(input),
            Engine::Bitwise => toeplitz_bitwise(&self.key, input),
        }
    }

    /// Runs `f` with this hasher's kernel (dispatch once, then a
    /// monomorphic loop; see [`crate::kernel`]).
    #[inline]
    pub fn with_kernel<F: KernelFn>(&self, f: F) -> F::Output {
        if self.covered < HashInput::CAPACITY {
            return f.call(&InputKernel(self));
        }
        match &self.engine {
            Engine::Fold(k) => f.call(k),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(k) => k.run(f),
            Engine::Table(k) => f.call(k),
            Engine::Bitwise => f.call(&BitwiseKernel(&self.key)),
        }
    }

    /// Hash of a tuple with the given fields and input transform. The path
    /// is dispatched per call; loops over many tuples should use
    /// [`Toeplitz::with_kernel`].
    #[inline]
    pub fn hash_tuple(&self, tuple: &Tuple, fields: Fields, xfrm: Transform) -> u32 {
        if xfrm != Transform::None {
            return self.hash_transformed(tuple, fields, xfrm);
        }
        self.hash_untransformed(tuple, fields)
    }

    /// The per-call dispatch: small enough to inline, slow paths out of line.
    #[inline(always)]
    fn hash_untransformed(&self, tuple: &Tuple, fields: Fields) -> u32 {
        match &self.engine {
            Engine::Fold(k) if self.covered >= HashInput::CAPACITY => k.hash_tuple(tuple, fields),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(k) if self.covered >= HashInput::CAPACITY => k.hash_tuple(tuple, fields),
            Engine::Table(k) if self.covered >= HashInput::CAPACITY => k.hash_tuple(tuple, fields),
            _ => self.hash_tuple_slow(tuple, fields),
        }
    }

    #[inline(never)]
    fn hash_transformed(&self, tuple: &Tuple, fields: Fields, xfrm: Transform) -> u32 {
        self.hash_untransformed(&tuple.transformed(xfrm), fields)
    }

    /// Bitwise path, or a key too short for the tuple kernels.
    #[cold]
    #[inline(never)]
    fn hash_tuple_slow(&self, tuple: &Tuple, fields: Fields) -> u32 {
        match self.engine {
            Engine::Bitwise => BitwiseKernel(&self.key).hash_tuple(tuple, fields),
            _ => InputKernel(self).hash_tuple(tuple, fields),
        }
    }

    /// Hashes many fixed-size inputs in one call (`out[i] = hash(inputs[i])`).
    /// On the GFNI path the loop runs inside one feature-enabled function.
    pub fn hash_many<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        assert_eq!(inputs.len(), out.len(), "one output per input");
        match &self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(g) if N <= self.covered => g.hash_many(inputs, out),
            _ => {
                for (i, o) in inputs.iter().zip(out.iter_mut()) {
                    *o = self.hash_fixed(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_agrees_on_the_first_ms_vector() {
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        for path in [Path::Bitwise, Path::Table, Path::Gfni] {
            if let Some(t) = Toeplitz::with_path(RssKey::microsoft(40), path) {
                assert_eq!(t.hash(&input), 0x51cc_c178, "{path:?}");
            }
        }
        assert!(Toeplitz::with_path(RssKey::microsoft(40), Path::Fold).is_none());
        assert_eq!(
            Toeplitz::new(RssKey::repeating(0x6d5a, 40)).path(),
            Path::Fold
        );
    }
}
