//! What `split` writes per queue: `q<i>.pcap` for the primary link type,
//! `q<i>.lt<N>.pcap` for any other, and `q<i>.pcapng`
//! (`q<i>.lt<N>.pcapng`) for packets whose timestamps classic pcap cannot
//! hold (before 1970, after 2106), kept exactly there.
//!
//! After a write fails (a full disk) the queue is done: every later packet
//! is refused at once (counted as `sink_error`), and each file keeps the
//! whole records written before the failure. Every queue has its
//! `q<i>.pcap`, even when it got no packet.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use symrss_engine::balancer::{PacketMeta, Sink, SinkError, Unwritten};
use symrss_pcap::{PcapWriter, TsResolution, timestamp_fits};

/// Snap length of the files (the largest frame pcap tools expect).
const SNAPLEN: u32 = 262_144;

/// One queue's files.
#[derive(Debug)]
pub struct QueueFiles {
    dir: PathBuf,
    queue: usize,
    primary: u32,
    /// (link type, pcapng?) → its writer.
    writers: Vec<((u32, bool), PcapWriter<File>)>,
    failed: Option<io::ErrorKind>,
}

impl QueueFiles {
    /// Queue `queue`'s files in `dir`, `primary` the link type of its
    /// `q<i>.pcap` (files are created as packets need them).
    pub fn new(dir: &Path, queue: usize, primary: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            queue,
            primary,
            writers: Vec::new(),
            failed: None,
        }
    }

    /// The file for (link type, pcapng?).
    pub fn path(&self, (linktype, ng): (u32, bool)) -> PathBuf {
        let ext = if ng { "pcapng" } else { "pcap" };
        if linktype == self.primary {
            self.dir.join(format!("q{}.{ext}", self.queue))
        } else {
            self.dir.join(format!("q{}.lt{linktype}.{ext}", self.queue))
        }
    }

    fn writer(&mut self, file: (u32, bool)) -> io::Result<&mut PcapWriter<File>> {
        if let Some(pos) = self.writers.iter().position(|(f, _)| *f == file) {
            return Ok(&mut self.writers[pos].1);
        }
        let path = self.path(file);
        let w = if file.1 {
            PcapWriter::create_pcapng(&path, file.0, SNAPLEN)?
        } else {
            PcapWriter::create(&path, file.0, SNAPLEN, TsResolution::Nano)?
        };
        self.writers.push((file, w));
        Ok(&mut self.writers.last_mut().expect("just pushed").1)
    }

    /// Latches a failure; the error names the file.
    fn fail(&mut self, file: (u32, bool), e: io::Error) -> io::Error {
        self.failed = Some(e.kind());
        let path = self.path(file);
        if e.to_string().contains(&*path.to_string_lossy()) {
            e
        } else {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
    }
}

impl Sink for QueueFiles {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
        if let Some(kind) = self.failed {
            return Err(io::Error::from(kind).into());
        }
        let file = (meta.linktype, !timestamp_fits(meta.ts_ns));
        match self
            .writer(file)
            .and_then(|w| w.write_packet(meta.ts_ns, meta.orig_len, data))
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(file, e).into()),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let primary = (self.primary, false);
        if self.failed.is_none()
            && let Err(e) = self.writer(primary)
        {
            return Err(self.fail(primary, e).into());
        }
        let mut first = None;
        for i in 0..self.writers.len() {
            if let Err(e) = self.writers[i].1.flush() {
                let file = self.writers[i].0;
                first.get_or_insert(self.fail(file, e));
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    fn take_unwritten(&mut self) -> Unwritten {
        let mut all = Unwritten::default();
        for (_, w) in &mut self.writers {
            let u = w.take_unwritten();
            all.packets += u.packets;
            all.bytes += u.bytes;
        }
        all
    }
}
