//! Classic pcap writing, buffered, with optional rotation.
//!
//! **Whole records only.** The writer keeps its own buffer of complete
//! records and hands the OS whole records: a file is valid after every
//! [`PcapWriter::flush`], after drop, and — as far as the OS allows — after
//! the process is killed mid-run (a kill between two `write(2)` calls
//! leaves whole records; a SIGKILL during one may end the file at a page
//! boundary inside a record, since the kernel checks for a fatal signal
//! before copying each page). When a write fails (a full disk), the file is
//! cut back to the last complete record, and the records that were
//! accepted but never reached the OS are counted ([`Unwritten`]) so the
//! caller's "delivered" count stays the number of records in the file.
//!
//! Records larger than the snaplen are cut to it, keeping the original
//! length, as libpcap does. Files are created with `O_NOFOLLOW`
//! ([`create_output`]): a symbolic link planted at an output path is
//! refused, never written through.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Timestamp resolution of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// Microseconds (magic 0xa1b2c3d4), what every tool reads.
    Micro,
    /// Nanoseconds (magic 0xa1b23c4d).
    Nano,
}

/// Records a writer accepted but could not write (their file was cut back
/// to the record before them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unwritten {
    /// Records lost.
    pub packets: u64,
    /// Their captured bytes (record headers not included).
    pub bytes: u64,
}

/// An output a failed write can be cut back on, to the last whole record.
pub trait Truncate: Write {
    /// Cuts the output to `len` bytes (outputs that cannot be cut, such as
    /// a FIFO, do nothing).
    fn truncate_to(&mut self, len: u64) -> io::Result<()>;
}

impl Truncate for File {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        if self.metadata()?.is_file() {
            self.set_len(len)?;
        }
        Ok(())
    }
}

impl Truncate for Vec<u8> {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        self.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// Creates (or truncates) an output file without following a symbolic
/// link at `path`; a link there is an error that says so.
pub fn create_output(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: is a symbolic link; symrss does not write through links",
                        path.display()
                    ),
                )
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
        })
}

/// Buffered bytes before the records are handed to the OS.
const BUFFER_BYTES: usize = 256 << 10;

/// A classic pcap writer (little-endian).
#[derive(Debug)]
pub struct PcapWriter<W: Truncate> {
    /// `None` only after [`PcapWriter::finish`] took it.
    out: Option<W>,
    /// Whole records not yet handed to the OS.
    buf: Vec<u8>,
    /// Records in `buf`, and their captured bytes.
    buffered: (u64, u64),
    layout: Layout,
    snaplen: u32,
    /// Records accepted and not lost (written or buffered).
    packets: u64,
    /// Bytes of those, headers included.
    bytes: u64,
    /// Bytes the OS took: always a record boundary.
    committed: u64,
    unwritten: Unwritten,
}

/// Which file format a [`PcapWriter`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Classic pcap.
    Classic(TsResolution),
    /// pcapng: one section, one interface with nanosecond resolution and
    /// [`PCAPNG_TS_OFFSET`], enhanced packet blocks.
    Ng,
}

/// The `if_tsoffset` (seconds) of written pcapng files: with it every
/// nanosecond timestamp from 1677 to 2262 (all an `i64` holds) is a
/// 64-bit unsigned count, so times classic pcap cannot hold (before 1970,
/// after 2106) are kept exactly (pcapng draft §4.2, `if_tsoffset`).
pub const PCAPNG_TS_OFFSET: i64 = -9_223_372_037;

/// Size of the file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: u64 = 16;

impl<W: Truncate> PcapWriter<W> {
    /// Writes the file header (at once, not buffered: a file that exists
    /// has its header, or creation failed).
    pub fn new(mut out: W, linktype: u32, snaplen: u32, res: TsResolution) -> io::Result<Self> {
        let magic: u32 = match res {
            TsResolution::Micro => 0xa1b2_c3d4,
            TsResolution::Nano => 0xa1b2_3c4d,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs are 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self::started(
            out,
            Layout::Classic(res),
            snaplen,
            FILE_HEADER_LEN,
        ))
    }

    /// A pcapng writer: writes the section header and the one interface
    /// description (nanoseconds, [`PCAPNG_TS_OFFSET`]) at once. For
    /// packets whose timestamps classic pcap cannot hold.
    pub fn new_pcapng(mut out: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(72);
        // Section header block: byte-order magic, version 1.0, length unknown.
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        ng_block(&mut h, 0x0a0d_0d0a, &shb, &[]);
        // Interface description block: link type, snaplen, if_tsresol = 9
        // (ns), if_tsoffset, end of options.
        let mut idb = (linktype as u16).to_le_bytes().to_vec();
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&14u16.to_le_bytes());
        idb.extend_from_slice(&8u16.to_le_bytes());
        idb.extend_from_slice(&PCAPNG_TS_OFFSET.to_le_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0]);
        ng_block(&mut h, 1, &idb, &[]);
        out.write_all(&h)?;
        Ok(Self::started(out, Layout::Ng, snaplen, h.len() as u64))
    }

    fn started(out: W, layout: Layout, snaplen: u32, header: u64) -> Self {
        Self {
            out: Some(out),
            buf: Vec::with_capacity(BUFFER_BYTES + RECORD_HEADER_LEN as usize + 65_536),
            buffered: (0, 0),
            layout,
            snaplen,
            packets: 0,
            bytes: header,
            committed: header,
            unwritten: Unwritten::default(),
        }
    }

    /// Appends one record. `ts_ns` is nanoseconds since the epoch; classic
    /// pcap writes negative times as 0 and times after 2106 as its last
    /// second ([`timestamp_fits`] tells), pcapng keeps every time from 1677
    /// to 2262 exactly; `orig_len` the length on the wire. An error means
    /// this record was not taken, and possibly that earlier buffered ones
    /// were lost: see [`PcapWriter::take_unwritten`].
    pub fn write_packet(&mut self, ts_ns: i128, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let cap = data.len().min(self.snaplen as usize);
        let rec = match self.layout {
            Layout::Classic(_) => RECORD_HEADER_LEN as usize + cap,
            Layout::Ng => 32 + cap.next_multiple_of(4),
        };
        if !self.buf.is_empty() && self.buf.len() + rec > BUFFER_BYTES {
            self.write_out()?;
        }
        let orig_len = orig_len.max(cap as u32);
        match self.layout {
            Layout::Classic(res) => {
                // u64 arithmetic (a multiply, not a 128-bit division call).
                let ts = ts_ns.clamp(0, i128::from(u64::MAX)) as u64;
                let sec = (ts / 1_000_000_000).min(u64::from(u32::MAX)) as u32;
                let ns = (ts % 1_000_000_000) as u32;
                let frac = match res {
                    TsResolution::Micro => ns / 1000,
                    TsResolution::Nano => ns,
                };
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&sec.to_le_bytes());
                h[4..8].copy_from_slice(&frac.to_le_bytes());
                h[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
                h[12..16].copy_from_slice(&orig_len.to_le_bytes());
                self.buf.extend_from_slice(&h);
                self.buf.extend_from_slice(&data[..cap]);
            }
            Layout::Ng => {
                let units = (ts_ns - i128::from(PCAPNG_TS_OFFSET) * 1_000_000_000)
                    .clamp(0, i128::from(u64::MAX)) as u64;
                let mut h = [0u8; 20];
                h[4..8].copy_from_slice(&((units >> 32) as u32).to_le_bytes());
                h[8..12].copy_from_slice(&(units as u32).to_le_bytes());
                h[12..16].copy_from_slice(&(cap as u32).to_le_bytes());
                h[16..20].copy_from_slice(&orig_len.to_le_bytes());
                ng_block(&mut self.buf, 6, &h, &data[..cap]);
            }
        }
        self.buffered.0 += 1;
        self.buffered.1 += cap as u64;
        self.packets += 1;
        self.bytes += rec as u64;
        Ok(())
    }

    /// Records accepted and not lost (written or still buffered).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes of those, headers included: the file's size once flushed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records lost to failed writes since the last call.
    pub fn take_unwritten(&mut self) -> Unwritten {
        std::mem::take(&mut self.unwritten)
    }

    /// Hands the buffered records to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.out.as_mut().map_or(Ok(()), Write::flush)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out.take().expect("taken only here"))
    }

    /// Writes `buf` out; on failure cuts the output back to the last whole
    /// record the OS took and counts the rest as unwritten.
    fn write_out(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let mut done = 0;
        let mut failure = None;
        while done < self.buf.len() {
            match out.write(&self.buf[done..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failure else {
            self.committed += self.buf.len() as u64;
            self.buf.clear();
            self.buffered = (0, 0);
            return Ok(());
        };
        let (records, data, whole) = whole_records(&self.buf[..done], self.layout);
        self.committed += whole as u64;
        if done > whole {
            // Best effort: the error that matters is the write's.
            let _ = out.truncate_to(self.committed);
        }
        let lost = (self.buffered.0 - records, self.buffered.1 - data);
        self.unwritten.packets += lost.0;
        self.unwritten.bytes += lost.1;
        self.packets -= lost.0;
        self.bytes = self.committed;
        self.buf.clear();
        self.buffered = (0, 0);
        Err(e)
    }
}

impl<W: Truncate> Drop for PcapWriter<W> {
    fn drop(&mut self) {
        // Errors at drop are lost; call `finish` or `flush` to see them.
        let _ = self.write_out();
    }
}

/// Appends a little-endian pcapng block: type, total length, `fixed` and
/// `data` (padded to 32 bits), total length again.
fn ng_block(out: &mut Vec<u8>, block_type: u32, fixed: &[u8], data: &[u8]) {
    let body = fixed.len() + data.len().next_multiple_of(4);
    let len = (12 + body) as u32;
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(fixed);
    out.extend_from_slice(data);
    out.resize(out.len() + data.len().next_multiple_of(4) - data.len(), 0);
    out.extend_from_slice(&len.to_le_bytes());
}

/// The whole records at the start of `buf`: (records, captured bytes,
/// bytes they span).
fn whole_records(buf: &[u8], layout: Layout) -> (u64, u64, usize) {
    let (mut records, mut data, mut at) = (0, 0, 0);
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    loop {
        let (cap, end) = match layout {
            Layout::Classic(_) if at + 16 <= buf.len() => {
                let cap = u32_at(at + 8) as usize;
                (cap, at + 16 + cap)
            }
            Layout::Ng if at + 32 <= buf.len() => {
                (u32_at(at + 20) as usize, at + u32_at(at + 4) as usize)
            }
            _ => break,
        };
        if end > buf.len() {
            break;
        }
        records += 1;
        data += cap as u64;
        at = end;
    }
    (records, data, at)
}

/// Whether classic pcap holds `ts_ns` exactly (1970 up to 2106).
pub fn timestamp_fits(ts_ns: i128) -> bool {
    (0..(i128::from(u32::MAX) + 1) * 1_000_000_000).contains(&ts_ns)
}

/// When a [`RotatingWriter`] starts a new file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file before one would exceed this many bytes (`tcpdump -C`).
    pub max_bytes: Option<u64>,
    /// Start a new file after this many packets.
    pub max_packets: Option<u64>,
    /// Start a new file when a packet is this many seconds (by packet
    /// time) after the current file's first packet (`tcpdump -G`, but by
    /// packet time, so replays rotate like live captures).
    pub max_seconds: Option<u64>,
    /// Keep only the newest N files, deleting older ones (`tcpdump -W`).
    pub ring: Option<usize>,
}

/// A pcap writer that rotates `base.pcap`, `base.1.pcap`, `base.2.pcap`, ...
///
/// After a failed write the current file (cut back to its last whole
/// record) is closed and nothing is written until [`RotatingWriter::rotate`]
/// opens the next file: the caller decides when to try again.
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    stem: String,
    linktype: u32,
    snaplen: u32,
    res: TsResolution,
    rotation: Rotation,
    /// `None` after a failure, until the next rotation.
    current: Option<PcapWriter<File>>,
    index: u64,
    files: std::collections::VecDeque<PathBuf>,
    /// Packets accepted over all files, less those lost.
    packets: u64,
    unwritten: Unwritten,
    /// The kind of the last failure (what refused records report).
    failed_kind: io::ErrorKind,
    /// Timestamp of the current file's first packet.
    file_start_ns: Option<i128>,
}

impl PcapWriter<File> {
    /// Creates `path` ([`create_output`]: never through a symbolic link)
    /// and writes its header; if the header cannot be written the file is
    /// removed, so no header-less file is left. Errors name the path.
    pub fn create(path: &Path, linktype: u32, snaplen: u32, res: TsResolution) -> io::Result<Self> {
        Self::create_with(path, |f| Self::new(f, linktype, snaplen, res))
    }

    /// Creates `path` as pcapng ([`PcapWriter::new_pcapng`]), like
    /// [`PcapWriter::create`].
    pub fn create_pcapng(path: &Path, linktype: u32, snaplen: u32) -> io::Result<Self> {
        Self::create_with(path, |f| Self::new_pcapng(f, linktype, snaplen))
    }

    fn create_with(path: &Path, start: impl FnOnce(File) -> io::Result<Self>) -> io::Result<Self> {
        start(create_output(path)?).map_err(|e| {
            let _ = fs::remove_file(path);
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        })
    }
}

impl RotatingWriter {
    /// Creates `dir/stem.pcap` (the directory must exist).
    pub fn create(
        dir: &Path,
        stem: &str,
        linktype: u32,
        snaplen: u32,
        res: TsResolution,
        rotation: Rotation,
    ) -> io::Result<Self> {
        let path = Self::path_for(dir, stem, 0);
        let current = PcapWriter::create(&path, linktype, snaplen, res)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            linktype,
            snaplen,
            res,
            rotation,
            current: Some(current),
            index: 0,
            files: [path].into(),
            packets: 0,
            unwritten: Unwritten::default(),
            failed_kind: io::ErrorKind::Other,
            file_start_ns: None,
        })
    }

    fn path_for(dir: &Path, stem: &str, index: u64) -> PathBuf {
        if index == 0 {
            dir.join(format!("{stem}.pcap"))
        } else {
            dir.join(format!("{stem}.{index}.pcap"))
        }
    }

    /// Writes a record, rotating first if the current file is full. After
    /// a failure (until the next [`RotatingWriter::rotate`]) every record
    /// is refused with the error's kind.
    pub fn write_packet(&mut self, ts_ns: i128, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let Some(current) = &self.current else {
            return Err(io::Error::from(self.failed_kind));
        };
        let rec = RECORD_HEADER_LEN + data.len().min(self.snaplen as usize) as u64;
        let full_bytes = self
            .rotation
            .max_bytes
            .is_some_and(|m| current.packets() > 0 && current.bytes() + rec > m);
        let full_packets = self
            .rotation
            .max_packets
            .is_some_and(|m| current.packets() >= m);
        let full_time = match (self.rotation.max_seconds, self.file_start_ns) {
            (Some(s), Some(start)) => ts_ns - start >= i128::from(s) * 1_000_000_000,
            _ => false,
        };
        if full_bytes || full_packets || full_time {
            self.rotate()?;
        }
        self.file_start_ns.get_or_insert(ts_ns);
        let current = self.current.as_mut().expect("rotate opened one");
        let r = current.write_packet(ts_ns, orig_len, data);
        match r {
            Ok(()) => {
                self.packets += 1;
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Closes the current file (cut back to its last whole record) after
    /// an error, counts what it lost, and names the file in the error.
    fn failed(&mut self, e: io::Error) -> io::Error {
        self.failed_kind = e.kind();
        if let Some(mut w) = self.current.take() {
            let lost = w.take_unwritten();
            self.packets -= lost.packets;
            self.unwritten.packets += lost.packets;
            self.unwritten.bytes += lost.bytes;
        }
        let path = self
            .files
            .back()
            .map_or_else(String::new, |p| p.display().to_string());
        io::Error::new(e.kind(), format!("{path}: {e}"))
    }

    /// Closes the current file and starts the next (also on SIGHUP, and
    /// to try again after a failure). The next file is only created once
    /// the current one is closed, so a full disk loses no file header.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.flush()?;
        self.current = None;
        self.index += 1;
        let path = Self::path_for(&self.dir, &self.stem, self.index);
        self.current = Some(PcapWriter::create(
            &path,
            self.linktype,
            self.snaplen,
            self.res,
        )?);
        self.file_start_ns = None;
        self.files.push_back(path);
        if let Some(keep) = self.rotation.ring {
            while self.files.len() > keep.max(1) {
                if let Some(oldest) = self.files.pop_front() {
                    fs::remove_file(&oldest)?;
                }
            }
        }
        Ok(())
    }

    /// Files currently on disk, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }

    /// Packets written over all files (accepted, less those lost).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Records lost to failed writes since the last call.
    pub fn take_unwritten(&mut self) -> Unwritten {
        std::mem::take(&mut self.unwritten)
    }

    /// Flushes the current file.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut().map(PcapWriter::flush) {
            Some(Err(e)) => Err(self.failed(e)),
            _ => Ok(()),
        }
    }

    /// Flushes and closes the current file.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()
    }
}
