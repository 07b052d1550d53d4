//! A keyed symmetric hash: canonical endpoint order, then SipHash-1-3.
//!
//! The endpoints `(address, port)` are put in a fixed order (smaller first,
//! compared as address bytes then port), so both directions give the same
//! input ([`KeyedHasher::input`]); the input is then hashed with
//! SipHash-1-3 under a 128-bit secret.
//! Unlike a symmetric Toeplitz key, an attacker who does not know the
//! secret cannot construct colliding flows to overload one queue — the same
//! design as the Linux flow dissector's symmetric hash used by
//! `PACKET_FANOUT_HASH` (`__flow_hash_consistentify` + siphash).
//! SipHash comes from the `siphasher` crate.

use core::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::input::{Fields, Tuple};

/// A keyed symmetric hasher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedHasher {
    k0: u64,
    k1: u64,
}

impl KeyedHasher {
    /// A hasher with the secret `(k0, k1)`.
    pub fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// The bytes hashed: the canonical tuple (smaller endpoint first) as
    /// `src[16] | dst[16] | sport | dport | family | 0 0 0` (IPv4 addresses
    /// zero-padded, ports zero under `Fields::Ip` or when absent): 40 bytes,
    /// five whole SipHash words, no tail handling.
    #[inline]
    pub fn input(tuple: &Tuple, fields: Fields) -> [u8; 40] {
        let c = tuple.canonical();
        let (src, dst) = c.padded_addrs();
        let mut b = [0u8; 40];
        b[..16].copy_from_slice(src);
        b[16..32].copy_from_slice(dst);
        if fields == Fields::L4 {
            b[32..36].copy_from_slice(&c.ports_wire());
        }
        b[36] = u8::from(c.is_v6());
        b
    }

    /// 32-bit symmetric hash of `tuple`.
    #[inline]
    pub fn hash(&self, tuple: &Tuple, fields: Fields) -> u32 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(&Self::input(tuple, fields));
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }
}
