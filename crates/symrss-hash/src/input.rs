//! Hash inputs: flow tuples, the Microsoft input layouts and the symmetric
//! input transforms.
//!
//! Layouts follow "RSS Hashing Types" (learn.microsoft.com): every field in
//! network byte order, source before destination:
//!
//! | layout | bytes | fields |
//! |---|---|---|
//! | `ip4` | 8 | src addr, dst addr |
//! | `tcp4` (also UDP, SCTP) | 12 | src addr, dst addr, src port, dst port |
//! | `ip6` | 32 | src addr, dst addr |
//! | `tcp6` | 36 | src addr, dst addr, src port, dst port |
//!
//! Transforms (theory.md §3, §5.1–5.2), applied before hashing:
//! `xor` = Linux `RXH_XFRM_SYM_XOR` / DPDK `SYMMETRIC_TOEPLITZ`:
//! `(S^D, S^D, sp^dp, sp^dp)`; `or-xor` = Linux `RXH_XFRM_SYM_OR_XOR`:
//! `(S|D, S^D, sp|dp, sp^dp)`; `sort` = DPDK `SYMMETRIC_TOEPLITZ_SORT`:
//! addresses swapped if `S > D`, ports swapped if `sp > dp`, independently.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Source and destination addresses of one direction of a flow (a view of
/// a [`Tuple`], see [`Tuple::addrs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addrs {
    /// IPv4 source, destination.
    V4 { src: [u8; 4], dst: [u8; 4] },
    /// IPv6 source, destination.
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// One direction of a flow as the hash sees it. [`Tuple::ports`] is `None`
/// for protocols without ports (ICMP, fragments hashed by addresses, ...).
///
/// Addresses are stored flat in 16-byte arrays, an IPv4 address in the
/// first 4 bytes and zeros after it. That keeps hashing branch-free where
/// the family does not matter (the XOR-fold ignores zero words; the
/// transforms work bytewise), and a tuple is one aligned 40-byte `Copy`
/// value. Ports are kept as their wire bytes, zero when absent, so the
/// XOR-fold reads them like the addresses.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    src: [u8; 16],
    dst: [u8; 16],
    ports_be: [u8; 4],
    has_ports: bool,
    v6: bool,
}

const _: () = assert!(size_of::<Tuple>() == 40);

/// See [`Tuple::flow_id`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    a: u128,
    b: u128,
    ports: u32,
    flags: u8,
}

/// Why a tuple could not be built from addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedFamilies;

impl fmt::Display for MixedFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("source and destination must both be IPv4 or both IPv6")
    }
}

impl core::error::Error for MixedFamilies {}

impl Tuple {
    /// An IPv4 tuple.
    #[inline]
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, ports: Option<(u16, u16)>) -> Self {
        Self::from_v4_octets(src.octets(), dst.octets(), ports)
    }

    /// An IPv4 tuple from address bytes in network order.
    #[inline]
    pub fn from_v4_octets(src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> Self {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s[..4].copy_from_slice(&src);
        d[..4].copy_from_slice(&dst);
        Self::build(s, d, ports, false)
    }

    /// An IPv6 tuple.
    #[inline]
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, ports: Option<(u16, u16)>) -> Self {
        Self::from_v6_octets(src.octets(), dst.octets(), ports)
    }

    /// An IPv6 tuple from address bytes in network order.
    #[inline]
    pub fn from_v6_octets(src: [u8; 16], dst: [u8; 16], ports: Option<(u16, u16)>) -> Self {
        Self::build(src, dst, ports, true)
    }

    /// A tuple from two addresses of the same family.
    pub fn new(src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> Result<Self, MixedFamilies> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Ok(Self::v4(s, d, ports)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Ok(Self::v6(s, d, ports)),
            _ => Err(MixedFamilies),
        }
    }

    /// The tuple whose untransformed `layout` input is `bytes`
    /// (`bytes.len() == layout.input_len()`); the inverse of [`Tuple::input`].
    pub fn from_input(layout: Layout, bytes: &[u8]) -> Self {
        assert_eq!(
            bytes.len(),
            layout.input_len(),
            "input length does not match layout"
        );
        let a = layout.addr_len();
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..a].copy_from_slice(&bytes[..a]);
        dst[..a].copy_from_slice(&bytes[a..2 * a]);
        let ports = layout.has_ports().then(|| {
            let p = &bytes[2 * a..];
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        });
        Self::build(src, dst, ports, a == 16)
    }

    #[inline(always)]
    fn build(src: [u8; 16], dst: [u8; 16], ports: Option<(u16, u16)>, v6: bool) -> Self {
        let (sp, dp) = ports.unwrap_or((0, 0));
        let [a, b] = sp.to_be_bytes();
        let [c, d] = dp.to_be_bytes();
        Self {
            src,
            dst,
            ports_be: [a, b, c, d],
            has_ports: ports.is_some(),
            v6,
        }
    }

    /// `(source port, destination port)`, if the protocol has ports.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        let p = self.ports_be;
        self.has_ports.then(|| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        })
    }

    /// Ports as numbers, `(0, 0)` when absent.
    #[inline(always)]
    fn port_pair(&self) -> (u16, u16) {
        let p = self.ports_be;
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    }

    /// Sets the ports in place (`None`: no ports).
    #[inline]
    pub fn set_ports(&mut self, ports: Option<(u16, u16)>) {
        let (sp, dp) = ports.unwrap_or((0, 0));
        let [a, b] = sp.to_be_bytes();
        let [c, d] = dp.to_be_bytes();
        self.ports_be = [a, b, c, d];
        self.has_ports = ports.is_some();
    }

    /// The same addresses with other ports (`None`: no ports).
    #[inline]
    pub fn with_ports(&self, ports: Option<(u16, u16)>) -> Self {
        Self::build(self.src, self.dst, ports, self.v6)
    }

    /// The port bytes as on the wire (source port, destination port; zero
    /// when absent).
    #[inline(always)]
    pub fn ports_wire(&self) -> [u8; 4] {
        self.ports_be
    }

    /// Whether ports are present.
    #[inline(always)]
    pub fn has_ports(&self) -> bool {
        self.has_ports
    }

    /// Whether this is an IPv6 tuple.
    #[inline]
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Bytes of one address: 4 or 16.
    #[inline]
    pub fn addr_len(&self) -> usize {
        if self.v6 { 16 } else { 4 }
    }

    /// Source address bytes (4 or 16), network order.
    #[inline]
    pub fn src_bytes(&self) -> &[u8] {
        &self.src[..self.addr_len()]
    }

    /// Destination address bytes (4 or 16), network order.
    #[inline]
    pub fn dst_bytes(&self) -> &[u8] {
        &self.dst[..self.addr_len()]
    }

    /// Both addresses as 16-byte arrays (IPv4 zero-padded after 4 bytes).
    #[inline]
    pub fn padded_addrs(&self) -> (&[u8; 16], &[u8; 16]) {
        (&self.src, &self.dst)
    }

    /// The addresses as a family-tagged view.
    pub fn addrs(&self) -> Addrs {
        if self.v6 {
            Addrs::V6 {
                src: self.src,
                dst: self.dst,
            }
        } else {
            let mut src = [0u8; 4];
            let mut dst = [0u8; 4];
            src.copy_from_slice(&self.src[..4]);
            dst.copy_from_slice(&self.dst[..4]);
            Addrs::V4 { src, dst }
        }
    }

    /// The other direction: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> Self {
        let p = self.ports_be;
        Self {
            src: self.dst,
            dst: self.src,
            ports_be: [p[2], p[3], p[0], p[1]],
            has_ports: self.has_ports,
            v6: self.v6,
        }
    }

    /// The direction-independent form: the smaller `(address, port)` endpoint first.
    #[inline]
    pub fn canonical(&self) -> Self {
        // Branch-free: the order of two random endpoints is a coin flip,
        // which a branch would mispredict half the time.
        let (sp, dp) = self.port_pair();
        let (s, d) = (u128::from_be_bytes(self.src), u128::from_be_bytes(self.dst));
        let swap = (s, sp) > (d, dp);
        let (a, b) = swap_if(swap, s, d);
        let (p, q) = swap_if(swap, u128::from(sp), u128::from(dp));
        Self::from_parts(a, b, p as u16, q as u16, self.has_ports, self.v6)
    }

    /// A direction-independent identity of this flow for hash tables:
    /// both directions give the same value, different flows different
    /// values. Cheaper than [`Tuple::canonical`] (no byte swapping; the
    /// order it picks is not meaningful outside this use).
    #[inline]
    pub fn flow_id(&self) -> FlowId {
        let p = self.ports_be;
        let (sp, dp) = (
            u16::from_ne_bytes([p[0], p[1]]),
            u16::from_ne_bytes([p[2], p[3]]),
        );
        let (s, d) = (u128::from_ne_bytes(self.src), u128::from_ne_bytes(self.dst));
        let swap = (s, sp) > (d, dp);
        let (a, b) = swap_if(swap, s, d);
        let (x, y) = swap_if(swap, u128::from(sp), u128::from(dp));
        FlowId {
            a,
            b,
            ports: ((x as u32) << 16) | y as u32,
            flags: u8::from(self.has_ports) | u8::from(self.v6) << 1,
        }
    }

    /// Whether the source endpoint (address, then port) sorts before the
    /// destination, in the order [`Tuple::flow_id`] uses: true in exactly
    /// one direction of a flow between two distinct endpoints.
    #[inline]
    pub fn src_sorts_first(&self) -> bool {
        let p = self.ports_be;
        (self.src, [p[0], p[1]]) <= (self.dst, [p[2], p[3]])
    }

    /// A 64-bit direction-independent digest of this flow (both
    /// directions give the same value), for flow tables: each endpoint is
    /// mixed on its own and the two are added, so no ordering is needed.
    /// Not a keyed hash: tables using it must be bounded in size.
    #[inline]
    pub fn flow_digest(&self) -> u64 {
        #[inline(always)]
        fn endpoint(addr: &[u8; 16], port: [u8; 2], tag: u64) -> u64 {
            const K: u64 = 0x9e37_79b9_7f4a_7c15;
            let lo = u64::from_ne_bytes([
                addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
            ]);
            let hi = u64::from_ne_bytes([
                addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
            ]);
            let p = u64::from(u16::from_ne_bytes(port)) | tag << 16;
            let x = (lo ^ K).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ hi.rotate_left(29);
            let x = (x ^ p).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        }
        let tag = u64::from(self.has_ports) | u64::from(self.v6) << 1;
        let p = self.ports_be;
        endpoint(&self.src, [p[0], p[1]], tag).wrapping_add(endpoint(&self.dst, [p[2], p[3]], tag))
    }

    #[inline(always)]
    fn from_parts(src: u128, dst: u128, sp: u16, dp: u16, has_ports: bool, v6: bool) -> Self {
        let [p0, p1] = sp.to_be_bytes();
        let [q0, q1] = dp.to_be_bytes();
        Self {
            src: src.to_be_bytes(),
            dst: dst.to_be_bytes(),
            ports_be: [p0, p1, q0, q1],
            has_ports,
            v6,
        }
    }

    /// Source address.
    pub fn src_ip(&self) -> IpAddr {
        match self.addrs() {
            Addrs::V4 { src, .. } => IpAddr::from(src),
            Addrs::V6 { src, .. } => IpAddr::from(src),
        }
    }

    /// Destination address.
    pub fn dst_ip(&self) -> IpAddr {
        match self.addrs() {
            Addrs::V4 { dst, .. } => IpAddr::from(dst),
            Addrs::V6 { dst, .. } => IpAddr::from(dst),
        }
    }

    /// The layout this tuple is hashed with under `fields`: the 4-tuple
    /// layouts need ports, otherwise the 2-tuple one is used (NDIS fallback).
    pub fn layout(&self, fields: Fields) -> Layout {
        let l4 = fields == Fields::L4 && self.has_ports;
        match (self.v6, l4) {
            (false, false) => Layout::Ip4,
            (false, true) => Layout::Tcp4,
            (true, false) => Layout::Ip6,
            (true, true) => Layout::Tcp6,
        }
    }

    /// The tuple after an input transform. Every transform yields the same
    /// four fields (two addresses, two ports), so it is again a `Tuple`:
    /// `xor` gives `(S^D, S^D, sp^dp, sp^dp)`, `or-xor` `(S|D, S^D, sp|dp,
    /// sp^dp)`, `sort` the addresses and the ports each in ascending order.
    #[inline]
    pub fn transformed(&self, xfrm: Transform) -> Self {
        // On the padded addresses as 128-bit big-endian integers: IPv4
        // padding stays zero under XOR/OR, and integer order is the
        // lexicographic byte order DPDK sorts by. Absent ports are zero and
        // stay zero under every transform.
        let s = u128::from_be_bytes(self.src);
        let d = u128::from_be_bytes(self.dst);
        let (sp, dp) = self.port_pair();
        let ((a, b), (p, q)) = match xfrm {
            Transform::None => ((s, d), (sp, dp)),
            Transform::Sort => (swap_if(s > d, s, d), {
                let (x, y) = swap_if(sp > dp, u128::from(sp), u128::from(dp));
                (x as u16, y as u16)
            }),
            Transform::Xor => ((s ^ d, s ^ d), (sp ^ dp, sp ^ dp)),
            Transform::OrXor => ((s | d, s ^ d), (sp | dp, sp ^ dp)),
        };
        Self::from_parts(a, b, p, q, self.has_ports, self.v6)
    }

    /// Builds the Toeplitz input for `fields` after `xfrm`.
    #[inline]
    pub fn input(&self, fields: Fields, xfrm: Transform) -> HashInput {
        let t = self.transformed(xfrm);
        let ports = match fields {
            Fields::L4 => t.ports(),
            Fields::Ip => None,
        };
        // Fixed-size copies per family (no run-time-length memcpy).
        let mut buf = [0u8; HashInput::CAPACITY];
        let a = if t.v6 {
            buf[..16].copy_from_slice(&t.src);
            buf[16..32].copy_from_slice(&t.dst);
            16
        } else {
            buf[..4].copy_from_slice(&t.src[..4]);
            buf[4..8].copy_from_slice(&t.dst[..4]);
            4
        };
        let mut len = 2 * a;
        if ports.is_some() {
            buf[len..len + 4].copy_from_slice(&t.ports_be);
            len += 4;
        }
        HashInput {
            buf,
            len: len as u8,
        }
    }
}

/// `(b, a)` if `swap`, else `(a, b)`, without a branch.
#[inline(always)]
fn swap_if(swap: bool, a: u128, b: u128) -> (u128, u128) {
    let mask = 0u128.wrapping_sub(u128::from(swap));
    let diff = (a ^ b) & mask;
    (a ^ diff, b ^ diff)
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addrs(), self.ports()) {
            (Addrs::V4 { .. }, Some((sp, dp))) => {
                write!(f, "{}:{} -> {}:{}", self.src_ip(), sp, self.dst_ip(), dp)
            }
            (Addrs::V6 { .. }, Some((sp, dp))) => {
                write!(
                    f,
                    "[{}]:{} -> [{}]:{}",
                    self.src_ip(),
                    sp,
                    self.dst_ip(),
                    dp
                )
            }
            (_, None) => write!(f, "{} -> {}", self.src_ip(), self.dst_ip()),
        }
    }
}

/// Which fields a scheme hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fields {
    /// Addresses only (2-tuple).
    Ip,
    /// Addresses and ports when the packet has them (4-tuple), else addresses.
    L4,
}

/// Input transform applied before Toeplitz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transform {
    /// Fields as on the wire.
    None,
    /// Linux `symmetric-xor`, DPDK `SYMMETRIC_TOEPLITZ`.
    Xor,
    /// Linux `symmetric-or-xor` (mlx5).
    OrXor,
    /// DPDK `SYMMETRIC_TOEPLITZ_SORT`.
    Sort,
}

impl Transform {
    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Xor => "xor",
            Self::OrXor => "or-xor",
            Self::Sort => "sort",
        }
    }
}

/// A Microsoft hash input layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// IPv4 2-tuple, 8 bytes.
    Ip4,
    /// IPv4 4-tuple (TCP/UDP), 12 bytes.
    Tcp4,
    /// IPv6 2-tuple, 32 bytes.
    Ip6,
    /// IPv6 4-tuple (TCP/UDP), 36 bytes.
    Tcp6,
}

impl Layout {
    /// All four layouts.
    pub const ALL: [Layout; 4] = [Layout::Ip4, Layout::Tcp4, Layout::Ip6, Layout::Tcp6];

    /// `ip4`, `tcp4`, `ip6`, `tcp6`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip4 => "ip4",
            Self::Tcp4 => "tcp4",
            Self::Ip6 => "ip6",
            Self::Tcp6 => "tcp6",
        }
    }

    /// Bytes of one address.
    pub fn addr_len(self) -> usize {
        match self {
            Self::Ip4 | Self::Tcp4 => 4,
            Self::Ip6 | Self::Tcp6 => 16,
        }
    }

    /// Whether ports are part of the input.
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Tcp4 | Self::Tcp6)
    }

    /// Input length in bytes.
    pub fn input_len(self) -> usize {
        2 * self.addr_len() + if self.has_ports() { 4 } else { 0 }
    }

    /// Input bit `i` of one direction lands at `swap_bit(i)` in the other
    /// direction's input (addresses swap, ports swap).
    pub fn swap_bit(self, i: usize) -> usize {
        let a = 8 * self.addr_len();
        match i {
            _ if i < a => i + a,
            _ if i < 2 * a => i - a,
            _ if i < 2 * a + 16 => i + 16,
            _ => i - 16,
        }
    }
}

/// A built hash input: at most 36 bytes, on the stack.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashInput {
    buf: [u8; HashInput::CAPACITY],
    len: u8,
}

impl HashInput {
    /// Largest input built from a tuple (IPv6 4-tuple).
    pub const CAPACITY: usize = 36;

    /// The input bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Debug for HashInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashInput(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4() -> Tuple {
        Tuple::v4(
            Ipv4Addr::new(66, 9, 149, 187),
            Ipv4Addr::new(161, 142, 100, 80),
            Some((2794, 1766)),
        )
    }

    #[test]
    fn layouts_and_transforms() {
        let t = t4();
        assert_eq!(
            t.input(Fields::L4, Transform::None).as_bytes(),
            &[66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6]
        );
        assert_eq!(t.input(Fields::Ip, Transform::None).as_bytes().len(), 8);
        let x = t.input(Fields::L4, Transform::Xor);
        assert_eq!(&x.as_bytes()[..4], &x.as_bytes()[4..8]);
        assert_eq!(&x.as_bytes()[8..10], &x.as_bytes()[10..12]);
        for xf in [Transform::Xor, Transform::OrXor, Transform::Sort] {
            assert_eq!(t.input(Fields::L4, xf), t.reversed().input(Fields::L4, xf));
        }
        assert_ne!(
            t.input(Fields::L4, Transform::None),
            t.reversed().input(Fields::L4, Transform::None)
        );
        assert_eq!(t.canonical(), t.reversed().canonical());
        let no_ports = t.with_ports(None);
        assert_eq!(no_ports.layout(Fields::L4), Layout::Ip4);
    }

    #[test]
    fn swap_bit_is_an_involution() {
        for l in Layout::ALL {
            for i in 0..8 * l.input_len() {
                assert_eq!(l.swap_bit(l.swap_bit(i)), i);
                assert_ne!(l.swap_bit(i), i);
            }
        }
    }
}
