//! Classic pcap writing, buffered, with optional rotation.
//!
//! A file is valid after every [`PcapWriter::flush`] and after drop (the
//! buffer is flushed then; errors at drop are lost, so call `finish` to see
//! them). Records larger than the snaplen are cut to it, keeping the
//! original length, as libpcap does.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Timestamp resolution of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// Microseconds (magic 0xa1b2c3d4), what every tool reads.
    Micro,
    /// Nanoseconds (magic 0xa1b23c4d).
    Nano,
}

/// A classic pcap writer (little-endian).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: BufWriter<W>,
    res: TsResolution,
    snaplen: u32,
    packets: u64,
    bytes: u64,
}

/// Size of the file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: u64 = 16;

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(out: W, linktype: u32, snaplen: u32, res: TsResolution) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(256 << 10, out);
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
        Ok(Self {
            out,
            res,
            snaplen,
            packets: 0,
            bytes: FILE_HEADER_LEN,
        })
    }

    /// Appends one record. `ts_ns` is nanoseconds since the epoch (negative
    /// times are written as 0); `orig_len` the length on the wire.
    pub fn write_packet(&mut self, ts_ns: i128, orig_len: u32, data: &[u8]) -> io::Result<()> {
        // u64 arithmetic (a multiply, not a 128-bit division call).
        let ts = ts_ns.clamp(0, i128::from(u64::MAX)) as u64;
        let sec = (ts / 1_000_000_000).min(u64::from(u32::MAX)) as u32;
        let ns = (ts % 1_000_000_000) as u32;
        let frac = match self.res {
            TsResolution::Micro => ns / 1000,
            TsResolution::Nano => ns,
        };
        let cap = data.len().min(self.snaplen as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(cap as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..cap])?;
        self.packets += 1;
        self.bytes += RECORD_HEADER_LEN + cap as u64;
        Ok(())
    }

    /// Packets written.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written, headers included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Pushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
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
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    stem: String,
    linktype: u32,
    snaplen: u32,
    res: TsResolution,
    rotation: Rotation,
    current: PcapWriter<File>,
    index: u64,
    files: std::collections::VecDeque<PathBuf>,
    packets: u64,
    /// Timestamp of the current file's first packet.
    file_start_ns: Option<i128>,
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
        let current = PcapWriter::new(File::create(&path)?, linktype, snaplen, res)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            linktype,
            snaplen,
            res,
            rotation,
            current,
            index: 0,
            files: [path].into(),
            packets: 0,
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

    /// Writes a record, rotating first if the current file is full.
    pub fn write_packet(&mut self, ts_ns: i128, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let rec = RECORD_HEADER_LEN + data.len().min(self.snaplen as usize) as u64;
        let full_bytes = self
            .rotation
            .max_bytes
            .is_some_and(|m| self.current.packets() > 0 && self.current.bytes() + rec > m);
        let full_packets = self
            .rotation
            .max_packets
            .is_some_and(|m| self.current.packets() >= m);
        let full_time = match (self.rotation.max_seconds, self.file_start_ns) {
            (Some(s), Some(start)) => ts_ns - start >= i128::from(s) * 1_000_000_000,
            _ => false,
        };
        if full_bytes || full_packets || full_time {
            self.rotate()?;
        }
        self.file_start_ns.get_or_insert(ts_ns);
        self.packets += 1;
        self.current.write_packet(ts_ns, orig_len, data)
    }

    /// Closes the current file and starts the next (also on SIGHUP).
    pub fn rotate(&mut self) -> io::Result<()> {
        self.index += 1;
        let path = Self::path_for(&self.dir, &self.stem, self.index);
        let next = PcapWriter::new(File::create(&path)?, self.linktype, self.snaplen, self.res)?;
        let old = std::mem::replace(&mut self.current, next);
        old.finish()?;
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

    /// Packets written over all files.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes the current file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.current.flush()
    }

    /// Flushes and closes the current file.
    pub fn finish(self) -> io::Result<()> {
        self.current.finish().map(drop)
    }
}
