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
pub use writer::{
    PCAPNG_TS_OFFSET, PcapWriter, RotatingWriter, Rotation, Truncate, TsResolution, Unwritten,
    create_output, timestamp_fits,
};
