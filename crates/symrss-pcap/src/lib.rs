//! Capture files for symrss: read classic pcap and pcapng, write pcap.
//!
//! * [`CaptureReader`] reads pcap (µs and ns, both byte orders, any snaplen)
//!   and pcapng (several sections and interfaces, per-interface link type
//!   and `if_tsresol`/`if_tsoffset`, both byte orders, EPB/SPB/OPB) from a
//!   file or standard input (`-`), one packet at a time, zero-copy into its
//!   own buffer. Block parsing is pcap-parser's (rusticata); the buffer
//!   management is ours so a record can be returned as a borrowed slice and
//!   damage can be reported with its exact byte offset.
//! * [`PcapWriter`] writes classic pcap (µs or ns), buffered;
//!   [`RotatingWriter`] adds size/count rotation and a ring of N files.
//!
//! Format references: the pcap and pcapng IETF drafts
//! (draft-ietf-opsawg-pcap, draft-ietf-opsawg-pcapng).

#[doc(hidden)]
pub mod fuzz;
mod reader;
mod writer;

pub use reader::{CaptureReader, Packet, ReadError};
pub use writer::{PcapWriter, RotatingWriter, Rotation, TsResolution};

/// Link-layer header types (LINKTYPE_* numbers, tcpdump.org/linktypes.html).
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// PPP (RFC 1661 HDLC-like framing optional).
    pub const PPP: u32 = 9;
    /// Raw IP (OpenBSD's DLT_RAW number, seen in some files).
    pub const RAW_12: u32 = 12;
    /// Raw IP (DLT_RAW on most systems is 12 or 14; LINKTYPE_RAW is 101).
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
