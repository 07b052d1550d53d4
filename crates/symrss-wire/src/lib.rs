//! Frame dissection for symrss: bytes → [`FlowKey`].
//!
//! One pass over a captured frame, no allocation, no panic on any input
//! (property-tested and fuzzed). The result is a small `Copy` [`FlowKey`]
//! holding the outermost, first-inner and innermost IP layers (addresses,
//! ports, protocol, fragment fields, offsets, how the layer was reached),
//! the VLAN stack, and for ICMP errors the flow they quote. A frame that
//! breaks off or is malformed yields the layers that did parse plus a
//! [`DissectError`] naming the layer and byte offset.
//!
//! Why in-house: no maintained crate parses this set of encapsulations
//! (MPLS pseudowires, PPPoE, VN-Tag, GRE with ERSPAN I/II/III, VXLAN,
//! Geneve, GTP-U with extension headers, IP-in-IP, IPv6 Ex addresses) to a
//! flow key without allocating; etherparse, the closest, stops at one IP
//! layer and has no tunnels.
//!
//! References: IEEE 802.1Q (VLAN, QinQ), RFC 3032 (MPLS), RFC 4385 (PW
//! control word), RFC 2516 (PPPoE), RFC 791/8200 (IPv4/IPv6), RFC 6275
//! §6.3/§6.4 (Home Address option, type 2 routing header, used by NDIS
//! `*_IPV6_EX` hashing), RFC 792/4443 (ICMP errors), RFC 2784/2890/2637
//! (GRE, keys, PPTP), draft-foschiano-erspan (ERSPAN), RFC 7348 (VXLAN),
//! RFC 8926 (Geneve), 3GPP TS 29.281 (GTP-U), the Linux SLL/SLL2 and BSD
//! loopback link types (tcpdump.org/linktypes.html).
//!
//! ```
//! use symrss_wire::build::{ethernet_vlans, ipv4, udp, ETH_IPV4, UDP};
//! use symrss_wire::{dissect, Options};
//!
//! let frame = ethernet_vlans(&[100], ETH_IPV4, &ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, &udp(5353, 53, b"")));
//! let key = dissect(1, &frame, &Options::default()); // LINKTYPE_ETHERNET
//! let outer = key.outer().unwrap();
//! assert_eq!(outer.tuple.ports(), Some((5353, 53)));
//! assert_eq!(key.vlans(), &[100]);
//! assert!(key.error.is_none());
//! ```
#![no_std]

extern crate alloc;

mod dissect;
mod key;

pub mod build;
#[doc(hidden)]
pub mod fuzz;

/// Link-layer header types the dissector understands (LINKTYPE_* numbers,
/// tcpdump.org/linktypes.html).
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// PPP, with or without HDLC framing.
    pub const PPP: u32 = 9;
    /// Raw IP (OpenBSD's DLT_RAW number).
    pub const RAW_12: u32 = 12;
    /// Raw IP (another historical DLT_RAW number).
    pub const RAW_14: u32 = 14;
    /// Raw IPv4 or IPv6 (LINKTYPE_RAW).
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

pub use dissect::{
    Options, PlainFlow, dissect, dissect_general, dissect_into, plain_flow, plain_tuple,
};
pub use key::{DissectError, Encap, ErrorKind, FlowKey, Fragment, IpLayer, Layer, Quoted};
pub use symrss_hash::Tuple;
