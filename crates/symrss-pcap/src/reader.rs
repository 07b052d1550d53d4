//! Streaming pcap/pcapng reader with exact error positions.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use pcap_parser::PcapHeader;
use pcap_parser::pcapng::Block;

/// Largest block accepted (a pcapng block or a pcap record). Bigger length
/// fields are damage, not packets.
const MAX_BLOCK: usize = 64 << 20;
const READ_CHUNK: usize = 1 << 20;

/// A packet borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Index of this packet in its file (0-based, counting packets only).
    pub index: u64,
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i128,
    /// Length on the wire (may exceed `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    /// LINKTYPE of the packet's interface.
    pub linktype: u32,
    /// Interface index (pcapng) or 0.
    pub interface: u32,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// File name (`-` for stdin).
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The bytes are not a valid capture at `offset`.
    #[error("{file}: damaged capture at byte offset {offset} (after {packets} packets): {reason}")]
    Damaged {
        /// File name.
        file: String,
        /// Byte offset of the block or record that failed.
        offset: u64,
        /// Packets read successfully before it.
        packets: u64,
        /// What is wrong.
        reason: String,
    },
}

impl ReadError {
    /// Packets read before the error (0 for I/O errors at open).
    pub fn packets_before(&self) -> u64 {
        match self {
            Self::Io { .. } => 0,
            Self::Damaged { packets, .. } => *packets,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    units_per_sec: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_sec: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Unknown,
    Legacy {
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    },
    Ng {
        big_endian: bool,
    },
}

enum Step {
    /// A packet: bytes consumed, metadata, data range in the window.
    Packet {
        len: usize,
        ts_ns: i128,
        orig_len: u32,
        linktype: u32,
        interface: u32,
        data: (usize, usize),
    },
    /// A non-packet block (header, IDB, statistics, ...).
    Skip { len: usize },
    /// Need at least this many bytes in the window.
    More(usize),
}

/// Reads packets from one capture file or stream.
pub struct CaptureReader {
    name: String,
    source: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the stream before `buf[0]`.
    base: u64,
    eof: bool,
    format: Format,
    interfaces: Vec<Interface>,
    packets: u64,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("offset", &self.offset())
            .field("packets", &self.packets)
            .finish()
    }
}

impl CaptureReader {
    /// Opens `path`; `-` reads standard input.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        if name == "-" {
            return Ok(Self::from_reader(name, Box::new(io::stdin())));
        }
        let file = File::open(path).map_err(|source| ReadError::Io {
            file: name.clone(),
            source,
        })?;
        Ok(Self::from_reader(name, Box::new(file)))
    }

    /// Reads from any byte stream; `name` is used in errors.
    pub fn from_reader(name: String, source: Box<dyn Read + Send>) -> Self {
        Self {
            name,
            source,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            format: Format::Unknown,
            interfaces: Vec::new(),
            packets: 0,
        }
    }

    /// The name given at open.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte offset of the next unread block.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Packets returned so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The link type of the file (pcap) or of its first interface
    /// (pcapng), once its header was read.
    pub fn linktype(&self) -> Option<u32> {
        match self.format {
            Format::Legacy { linktype, .. } => Some(linktype),
            _ => self.interfaces.first().map(|i| i.linktype),
        }
    }

    /// Whether the stream is pcapng.
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::Ng { .. })
    }

    /// The next packet, `Ok(None)` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        loop {
            let step = self.step()?;
            match step {
                Step::Skip { len } => self.start += len,
                Step::More(need) => {
                    if !self.fill(need)? {
                        if self.start == self.end {
                            if self.format == Format::Unknown {
                                return Err(
                                    self.damaged("empty input: not a pcap or pcapng file".into())
                                );
                            }
                            return Ok(None);
                        }
                        let have = self.end - self.start;
                        return Err(self.damaged(format!(
                            "file ends inside a block or record ({have} of {need} bytes present)"
                        )));
                    }
                }
                Step::Packet {
                    len,
                    ts_ns,
                    orig_len,
                    linktype,
                    interface,
                    data,
                } => {
                    let at = self.start;
                    self.start += len;
                    let index = self.packets;
                    self.packets += 1;
                    return Ok(Some(Packet {
                        index,
                        ts_ns,
                        orig_len,
                        linktype,
                        interface,
                        data: &self.buf[at + data.0..at + data.1],
                    }));
                }
            }
        }
    }

    fn damaged(&self, reason: String) -> ReadError {
        ReadError::Damaged {
            file: self.name.clone(),
            offset: self.offset(),
            packets: self.packets,
            reason,
        }
    }

    /// Makes at least `need` bytes available from `start`; false at end of input.
    fn fill(&mut self, need: usize) -> Result<bool, ReadError> {
        if need > MAX_BLOCK {
            return Err(self.damaged(format!(
                "block length {need} exceeds the {MAX_BLOCK}-byte limit"
            )));
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        // Grow with the data actually read (doubling), not with the length a
        // header claims: a damaged length field must not allocate 64 MiB.
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        while self.end < need && !self.eof {
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(need.max(READ_CHUNK));
                self.buf.resize(grown, 0);
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ReadError::Io {
                        file: self.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(self.end >= need)
    }

    /// Parses one block or record at `start`.
    fn step(&mut self) -> Result<Step, ReadError> {
        let window = &self.buf[self.start..self.end];
        match self.format {
            Format::Unknown => {
                if window.len() < 24 {
                    return Ok(Step::More(24));
                }
                let magic = u32::from_le_bytes([window[0], window[1], window[2], window[3]]);
                match magic {
                    0x0a0d_0d0a => {
                        let bom = &window[8..12];
                        let big_endian = bom == [0x1a, 0x2b, 0x3c, 0x4d];
                        self.format = Format::Ng { big_endian };
                        Ok(Step::Skip { len: 0 })
                    }
                    0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                        match pcap_parser::parse_pcap_header(window) {
                            Ok((_, hdr)) => {
                                self.format = legacy_format(&hdr);
                                Ok(Step::Skip { len: 24 })
                            }
                            Err(_) => Err(self.damaged(format!(
                                "the pcap file header (magic 0x{magic:08x}) does not parse: \
                                 version, snaplen or link type fields are damaged"
                            ))),
                        }
                    }
                    _ => {
                        Err(self
                            .damaged(format!("not a pcap or pcapng file (magic 0x{magic:08x})")))
                    }
                }
            }
            Format::Legacy {
                big_endian,
                nanos,
                linktype,
            } => {
                if window.len() < 16 {
                    return Ok(Step::More(16));
                }
                let u32_at = |i: usize| {
                    let b = [window[i], window[i + 1], window[i + 2], window[i + 3]];
                    if big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    }
                };
                let (sec, frac, caplen, orig_len) = (u32_at(0), u32_at(4), u32_at(8), u32_at(12));
                let caplen = caplen as usize;
                if caplen > MAX_BLOCK {
                    return Err(self.damaged(format!("record claims {caplen} captured bytes")));
                }
                let len = 16 + caplen;
                if window.len() < len {
                    return Ok(Step::More(len));
                }
                let frac_ns = if nanos {
                    i128::from(frac)
                } else {
                    i128::from(frac) * 1000
                };
                Ok(Step::Packet {
                    len,
                    ts_ns: i128::from(sec) * 1_000_000_000 + frac_ns,
                    orig_len,
                    linktype,
                    interface: 0,
                    data: (16, len),
                })
            }
            Format::Ng { big_endian } => {
                if window.len() < 12 {
                    return Ok(Step::More(12));
                }
                // A section header may switch byte order: read it from its own BOM.
                let block_type = u32::from_le_bytes([window[0], window[1], window[2], window[3]]);
                let big_endian = if block_type == 0x0a0d_0d0a {
                    window[8..12] == [0x1a, 0x2b, 0x3c, 0x4d]
                } else {
                    big_endian
                };
                // The block's byte order, for its two length fields.
                let len_at = |i: usize| {
                    let raw = [window[i], window[i + 1], window[i + 2], window[i + 3]];
                    let v = if big_endian {
                        u32::from_be_bytes(raw)
                    } else {
                        u32::from_le_bytes(raw)
                    };
                    v as usize
                };
                let block_len = len_at(4);
                if block_len < 12 || !block_len.is_multiple_of(4) {
                    return Err(self.damaged(format!("pcapng block length {block_len} is invalid")));
                }
                if block_len > MAX_BLOCK {
                    return Err(
                        self.damaged(format!("pcapng block length {block_len} is too large"))
                    );
                }
                if window.len() < block_len {
                    return Ok(Step::More(block_len));
                }
                let trailer = len_at(block_len - 4);
                if trailer != block_len {
                    return Err(self.damaged(format!(
                        "{} (type 0x{block_type:08x}): its length is {block_len} bytes at the \
                         start and {trailer} at the end (the two must match)",
                        block_name(block_type)
                    )));
                }
                let block = &window[..block_len];
                let parsed = if big_endian {
                    pcap_parser::pcapng::parse_block_be(block)
                } else {
                    pcap_parser::pcapng::parse_block_le(block)
                };
                let block = match parsed {
                    Ok((_, b)) => b,
                    Err(e) => {
                        let name = block_name(block_type);
                        let reason = match e {
                            pcap_parser::nom::Err::Incomplete(_) => format!(
                                "{name} (type 0x{block_type:08x}, {block_len} bytes) is shorter \
                                 than the fields it must hold"
                            ),
                            pcap_parser::nom::Err::Error(e) | pcap_parser::nom::Err::Failure(e) => {
                                format!(
                                    "{name} (type 0x{block_type:08x}, {block_len} bytes) does not \
                                     parse: {}",
                                    parse_failure(&e)
                                )
                            }
                        };
                        return Err(self.damaged(reason));
                    }
                };
                let base_ptr = window.as_ptr() as usize;
                let range = |d: &[u8]| {
                    let s = d.as_ptr() as usize - base_ptr;
                    (s, s + d.len())
                };
                let step = match block {
                    Block::SectionHeader(_) => {
                        self.interfaces.clear();
                        self.format = Format::Ng { big_endian };
                        Step::Skip { len: block_len }
                    }
                    Block::InterfaceDescription(idb) => {
                        let units_per_sec = tsresol_units(idb.if_tsresol);
                        self.interfaces.push(Interface {
                            linktype: idb.linktype.0 as u32,
                            units_per_sec,
                            offset_sec: idb.if_tsoffset,
                        });
                        Step::Skip { len: block_len }
                    }
                    Block::EnhancedPacket(epb) => {
                        let iface = self.interface(epb.if_id)?;
                        let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let caplen = (epb.caplen as usize).min(epb.data.len());
                        Step::Packet {
                            len: block_len,
                            ts_ns: iface.ts_ns(ts),
                            orig_len: epb.origlen,
                            linktype: iface.linktype,
                            interface: epb.if_id,
                            data: range(&epb.data[..caplen]),
                        }
                    }
                    Block::SimplePacket(spb) => {
                        let iface = self.interface(0)?;
                        // SPB: captured length = min(original length, data present).
                        let caplen = (spb.origlen as usize).min(spb.data.len());
                        Step::Packet {
                            len: block_len,
                            ts_ns: 0,
                            orig_len: spb.origlen,
                            linktype: iface.linktype,
                            interface: 0,
                            data: range(&spb.data[..caplen]),
                        }
                    }
                    // Obsolete Packet Block (type 2, pcapng appendix): pcap-parser
                    // leaves it unknown; its body is if_id:u16 drops:u16
                    // ts_high ts_low caplen origlen:u32, then data.
                    Block::Unknown(ub) if ub.block_type == 2 => {
                        let b = ub.data;
                        if b.len() < 20 {
                            return Err(self.damaged("obsolete packet block too short".into()));
                        }
                        let u16_at = |i: usize| {
                            let v = [b[i], b[i + 1]];
                            if big_endian {
                                u16::from_be_bytes(v)
                            } else {
                                u16::from_le_bytes(v)
                            }
                        };
                        let u32_at = |i: usize| {
                            let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
                            if big_endian {
                                u32::from_be_bytes(v)
                            } else {
                                u32::from_le_bytes(v)
                            }
                        };
                        let if_id = u32::from(u16_at(0));
                        let iface = self.interface(if_id)?;
                        let ts = (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8));
                        let caplen = (u32_at(12) as usize).min(b.len() - 20);
                        Step::Packet {
                            len: block_len,
                            ts_ns: iface.ts_ns(ts),
                            orig_len: u32_at(16),
                            linktype: iface.linktype,
                            interface: if_id,
                            data: range(&b[20..20 + caplen]),
                        }
                    }
                    _ => Step::Skip { len: block_len },
                };
                Ok(step)
            }
        }
    }

    fn interface(&self, id: u32) -> Result<Interface, ReadError> {
        self.interfaces.get(id as usize).copied().ok_or_else(|| {
            self.damaged(format!(
                "packet refers to interface {id}, which is not described"
            ))
        })
    }
}

impl Interface {
    fn ts_ns(&self, ts: u64) -> i128 {
        let units = self.units_per_sec as i128;
        let ts = i128::from(ts);
        let ns = (ts / units) * 1_000_000_000 + (ts % units) * 1_000_000_000 / units;
        ns + i128::from(self.offset_sec) * 1_000_000_000
    }
}

fn legacy_format(hdr: &PcapHeader) -> Format {
    Format::Legacy {
        big_endian: hdr.is_bigendian(),
        nanos: hdr.is_nanosecond_precision(),
        // The upper bits carry the FCS length (pcap draft §4, "LinkType and
        // additional information"); the link type is the low 16 bits.
        linktype: hdr.network.0 as u32 & 0xffff,
    }
}

/// Units per second for an `if_tsresol` value (pcapng §4.2): MSB clear =
/// 10^-n seconds, set = 2^-n seconds.
fn tsresol_units(tsresol: u8) -> u128 {
    let n = u32::from(tsresol & 0x7f);
    // Finer than i128 can count (10^-39 s and below: legal, if absurd):
    // saturated, so every 64-bit timestamp is below one nanosecond, which
    // is the exact answer.
    let units = if tsresol & 0x80 == 0 {
        10u128.checked_pow(n)
    } else {
        1u128.checked_shl(n)
    };
    units.unwrap_or(i128::MAX as u128).min(i128::MAX as u128)
}

/// The pcapng block types (pcapng draft §4, §11.1), for errors.
fn block_name(block_type: u32) -> &'static str {
    match block_type {
        0x0a0d_0d0a => "section header block",
        1 => "interface description block",
        2 => "obsolete packet block",
        3 => "simple packet block",
        4 => "name resolution block",
        5 => "interface statistics block",
        6 => "enhanced packet block",
        0x0000_000a => "decryption secrets block",
        0x0000_0bad | 0x4000_0bad => "custom block",
        _ => "pcapng block",
    }
}

/// What a pcap-parser failure means, as a sentence (never the raw bytes
/// its error carries).
fn parse_failure(e: &pcap_parser::PcapError<&[u8]>) -> String {
    use pcap_parser::PcapError;
    match e {
        PcapError::NomError(_, kind) => format!(
            "a field is out of range or the body is shorter than its fields say ({})",
            kind.description()
        ),
        PcapError::HeaderNotRecognized => "its header is not recognised".into(),
        PcapError::Eof | PcapError::Incomplete(_) => "it ends before its last field".into(),
        _ => "its contents are inconsistent".into(),
    }
}
