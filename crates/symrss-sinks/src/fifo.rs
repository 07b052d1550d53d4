//! `fifo`: a queue streamed as pcap into a FIFO `DIR/APP/q<i>.fifo`, for
//! tools that read a pcap stream (`tcpdump -r`, `suricata -r`, Zeek). A
//! reader that goes away only makes its queue drop — counted as
//! `no_reader` ([`SinkError::NoReader`]) — until a reader comes back and
//! gets a new pcap header.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use symrss_engine::balancer::{PacketMeta, Sink, SinkError, Unwritten};
use symrss_pcap::{PcapWriter, TsResolution};
use symrss_sys::fifo;

use crate::AppOutputs;

/// A queue streamed as pcap into a FIFO; without a reader its packets are
/// dropped (counted) and the FIFO is checked again every 100 ms.
#[derive(Debug)]
pub struct FifoSink {
    path: PathBuf,
    snaplen: u32,
    writer: Option<PcapWriter<File>>,
    next_try: Instant,
    /// Packets taken but still buffered when the reader left.
    lost: Unwritten,
}

impl Sink for FifoSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
        if self.writer.is_none() && Instant::now() >= self.next_try {
            self.next_try = Instant::now() + Duration::from_millis(100);
            if let Some(f) = fifo::open_writer(&self.path)? {
                self.writer = Some(PcapWriter::new(
                    f,
                    meta.linktype,
                    self.snaplen,
                    TsResolution::Nano,
                )?);
            }
        }
        let Some(w) = &mut self.writer else {
            return Err(SinkError::NoReader);
        };
        let r = w.write_packet(meta.ts_ns, meta.orig_len, data);
        self.reader_check(r)
    }

    /// Each chunk is flushed, so a reader sees packets as they come
    /// without a write per packet.
    fn chunk_done(&mut self) -> Result<(), SinkError> {
        match &mut self.writer {
            Some(w) => {
                let r = w.flush();
                self.reader_check(r)
            }
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.chunk_done()
    }

    fn take_unwritten(&mut self) -> Unwritten {
        std::mem::take(&mut self.lost)
    }
}

impl FifoSink {
    /// Creates the FIFO `out.dir/q<queue>.fifo` (readers may come and go).
    pub fn create(out: &AppOutputs<'_>, queue: usize) -> io::Result<Self> {
        let path = out.dir.join(format!("q{queue}.fifo"));
        fifo::create(&path)?;
        Ok(Self::at(path, out.snaplen))
    }

    /// A sink on an existing FIFO.
    fn at(path: PathBuf, snaplen: u32) -> Self {
        Self {
            path,
            snaplen,
            writer: None,
            next_try: Instant::now(),
            lost: Unwritten::default(),
        }
    }

    /// A broken pipe means the reader left: drop until one comes back (a
    /// new reader gets a new pcap header).
    fn reader_check(&mut self, r: io::Result<()>) -> Result<(), SinkError> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                if let Some(mut w) = self.writer.take() {
                    let u = w.take_unwritten();
                    self.lost.packets += u.packets;
                    self.lost.bytes += u.bytes;
                }
                Err(SinkError::NoReader)
            }
            r => Ok(r?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn a_fifo_reader_that_leaves_only_drops_until_a_new_one_comes() {
        use std::io::Read;
        let path = std::env::temp_dir().join(format!("symrss-fifosink-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        fifo::create(&path).unwrap();
        let mut sink = FifoSink::at(path.clone(), 262_144);
        let meta = |i: u64| PacketMeta {
            index: i,
            ts_ns: i128::from(i),
            orig_len: 60,
            linktype: 1,
        };
        let frame = [7u8; 60];
        // No reader: dropped as `no reader`, not a failure.
        let e = sink.write(&meta(0), &frame).unwrap_err();
        assert!(matches!(e, SinkError::NoReader), "{e}");
        // A reader that takes the header and one record, then leaves.
        let reader = |records: usize| {
            let p = path.clone();
            std::thread::spawn(move || {
                let mut f = File::open(&p).unwrap();
                let mut buf = vec![0u8; 24 + records * (16 + 60)];
                f.read_exact(&mut buf).unwrap();
                buf
            })
        };
        let first = reader(1);
        let mut delivered = 0;
        let mut i = 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !first.is_finished() || delivered == 0 {
            assert!(Instant::now() < deadline, "the first reader never finished");
            sink.next_try = Instant::now();
            if sink.write(&meta(i), &frame).is_ok() {
                delivered += 1;
            }
            let _ = sink.chunk_done();
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = first.join().unwrap();
        assert_eq!(
            &got[..4],
            &0xa1b2_3c4du32.to_le_bytes(),
            "a pcap header (ns) first"
        );
        // Writing on: the reader is gone, so the sink reports no reader
        // (after at most what the pipe buffered) and keeps going.
        let mut no_reader = 0;
        for _ in 0..20_000 {
            match sink
                .write(&meta(i), &frame)
                .and_then(|()| sink.chunk_done())
            {
                Ok(()) => {}
                Err(SinkError::NoReader) => no_reader += 1,
                Err(e) => panic!("{e}"),
            }
            i += 1;
            if no_reader > 0 {
                break;
            }
        }
        assert!(no_reader > 0);
        // A new reader gets a new header and packets again.
        let second = reader(2);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "the second reader never finished"
            );
            sink.next_try = Instant::now();
            let _ = sink.write(&meta(i), &frame);
            let _ = sink.chunk_done();
            i += 1;
            if second.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = second.join().unwrap();
        assert_eq!(&got[..4], &0xa1b2_3c4du32.to_le_bytes());
        std::fs::remove_file(&path).unwrap();
    }
}
