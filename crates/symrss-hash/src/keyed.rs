//! A keyed symmetric hash: canonical endpoint order, then SipHash-1-3.
//!
//! The endpoints `(address, port)` are put in a fixed order (smaller first,
//! compared as address bytes then port), so both directions give the same
//! input; the input is then hashed with SipHash-1-3 under a 128-bit secret.
//! Unlike a symmetric Toeplitz key, an attacker who does not know the
//! secret cannot construct colliding flows to overload one queue — the same
//! design as the Linux flow dissector's symmetric hash used by
//! `PACKET_FANOUT_HASH` (`__flow_hash_consistentify` + siphash).
//! SipHash comes from the `siphasher` crate.

use core::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::input::{Fields, Transform, Tuple};

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

    /// The canonical input: the tuple with its smaller endpoint first.
    pub fn input(tuple: &Tuple, fields: Fields) -> crate::input::HashInput {
        tuple.canonical().input(fields, Transform::None)
    }

    /// 32-bit symmetric hash of `tuple`.
    #[inline]
    pub fn hash(&self, tuple: &Tuple, fields: Fields) -> u32 {
        let input = Self::input(tuple, fields);
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(input.as_bytes());
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }
}
