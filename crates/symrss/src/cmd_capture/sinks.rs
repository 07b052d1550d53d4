//! The per-(app, queue) outputs of a capture: rotating pcap files, FIFOs
//! streaming pcap (a reader that goes away only makes its queue drop,
//! counted, until a reader comes back), TAP interfaces, and an in-process
//! counter.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use symrss_engine::balancer::{PacketMeta, Sink, Unwritten};
use symrss_pcap::{PcapWriter, RotatingWriter, Rotation, TsResolution};
use symrss_sys::{fifo, signals, tap::Tap};

use super::config::{AppSection, CaptureConfig, SinkKind};
use super::{LINKTYPE_ETHERNET, SNAPLEN};
use crate::Failure;

/// A queue's pcap files, rotating on size, packet time and SIGHUP.
///
/// A failed write (a full disk) closes the current file at its last whole
/// record; the queue's packets are then refused (counted as
/// `sink_error`) until the next rotation point — SIGHUP, or
/// [`PcapSink::retry_ns`] of packet time after the failure — where a new
/// file is tried. The other queues are not affected.
struct PcapSink {
    writer: RotatingWriter,
    hangups: u64,
    /// When the buffered records were last handed to the OS: at most
    /// [`FLUSH_EVERY`] ago while packets come, so a reader of the live
    /// file (or a crash) is never more than that behind.
    flushed: Instant,
    /// Packet time of the failure being waited out.
    failed_at: Option<i128>,
    /// How long (packet time) a failed queue waits before a new file.
    retry_ns: i128,
}

/// Packet time a failed queue waits before trying a new file, when no
/// time rotation is configured.
const RETRY_SECONDS: u64 = 10;

/// Longest a written record stays in a pcap queue's buffer while packets
/// keep coming (tcpdump, without `-U`, waits for a full buffer).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

impl Sink for PcapSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        // Rotate on SIGHUP, and once a failure has been waited out.
        let h = signals::hangups();
        let rotate = h != self.hangups
            || self
                .failed_at
                .is_some_and(|t| meta.ts_ns - t >= self.retry_ns);
        self.hangups = h;
        if rotate {
            if let Err(e) = self.writer.rotate() {
                self.failed_at = Some(meta.ts_ns);
                return Err(e);
            }
            self.failed_at = None;
        }
        let r = self.writer.write_packet(meta.ts_ns, meta.orig_len, data);
        if r.is_err() && self.failed_at.is_none() {
            self.failed_at = Some(meta.ts_ns);
        }
        r
    }

    fn chunk_done(&mut self) -> io::Result<()> {
        if self.flushed.elapsed() < FLUSH_EVERY {
            return Ok(());
        }
        self.flushed = Instant::now();
        self.writer.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn take_unwritten(&mut self) -> Unwritten {
        self.writer.take_unwritten()
    }
}

/// A queue streamed as pcap into a FIFO; without a reader its packets are
/// dropped (counted) and the FIFO is checked again every 100 ms.
struct FifoSink {
    path: PathBuf,
    writer: Option<PcapWriter<File>>,
    next_try: Instant,
    /// Packets taken but still buffered when the reader left.
    lost: Unwritten,
}

impl Sink for FifoSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        if self.writer.is_none() && Instant::now() >= self.next_try {
            self.next_try = Instant::now() + Duration::from_millis(100);
            if let Some(f) = fifo::open_writer(&self.path)? {
                self.writer = Some(PcapWriter::new(
                    f,
                    meta.linktype,
                    SNAPLEN,
                    TsResolution::Nano,
                )?);
            }
        }
        let Some(w) = &mut self.writer else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no reader"));
        };
        let r = w.write_packet(meta.ts_ns, meta.orig_len, data);
        self.reader_check(r)
    }

    /// Each chunk is flushed, so a reader sees packets as they come
    /// without a write per packet.
    fn chunk_done(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => {
                let r = w.flush();
                self.reader_check(r)
            }
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => {
                let r = w.flush();
                self.reader_check(r)
            }
            None => Ok(()),
        }
    }

    fn take_unwritten(&mut self) -> Unwritten {
        std::mem::take(&mut self.lost)
    }
}

impl FifoSink {
    /// A broken pipe means the reader left: drop until one comes back (a
    /// new reader gets a new pcap header).
    fn reader_check(&mut self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                if let Some(mut w) = self.writer.take() {
                    let u = w.take_unwritten();
                    self.lost.packets += u.packets;
                    self.lost.bytes += u.bytes;
                }
                Err(io::Error::new(io::ErrorKind::NotConnected, "reader left"))
            }
            r => r,
        }
    }
}

/// A queue injected into a TAP interface.
struct TapSink(Tap);

impl Sink for TapSink {
    fn write(&mut self, _: &PacketMeta, data: &[u8]) -> io::Result<()> {
        self.0.send(data)
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts only (the in-process consumer).
struct CountSink;

impl Sink for CountSink {
    fn write(&mut self, _: &PacketMeta, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn make_sinks(
    c: &CaptureConfig,
    app: &AppSection,
    rotation: Rotation,
) -> Result<Vec<Box<dyn Sink>>, Failure> {
    let dir = c.output_dir.join(&app.name);
    let fail = |e: io::Error| Failure::Runtime(format!("app {}: {e}", app.name));
    if app.sink.writes_files() {
        crate::outdir::real_dir(&dir)
            .map_err(|e| Failure::Runtime(format!("app {}: {e}", app.name)))?;
    }
    let retry_ns = i128::from(rotation.max_seconds.unwrap_or(RETRY_SECONDS).max(1)) * 1_000_000_000;
    (0..app.queues as usize)
        .map(|q| -> Result<Box<dyn Sink>, Failure> {
            Ok(match app.sink {
                SinkKind::Pcap => Box::new(PcapSink {
                    writer: RotatingWriter::create(
                        &dir,
                        &format!("q{q}"),
                        LINKTYPE_ETHERNET,
                        SNAPLEN,
                        TsResolution::Nano,
                        rotation,
                    )
                    .map_err(fail)?,
                    hangups: signals::hangups(),
                    flushed: Instant::now(),
                    failed_at: None,
                    retry_ns,
                }),
                SinkKind::Fifo => {
                    let path = dir.join(format!("q{q}.fifo"));
                    fifo::create(&path).map_err(fail)?;
                    Box::new(FifoSink {
                        path,
                        writer: None,
                        next_try: Instant::now(),
                        lost: Unwritten::default(),
                    })
                }
                SinkKind::Tap => Box::new(TapSink(
                    Tap::create(&format!("{}-q{q}", app.name)).map_err(fail)?,
                )),
                SinkKind::Count => Box::new(CountSink),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_reader_that_leaves_only_drops_until_a_new_one_comes() {
        use std::io::Read;
        let path = std::env::temp_dir().join(format!("symrss-fifosink-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        fifo::create(&path).unwrap();
        let mut sink = FifoSink {
            path: path.clone(),
            writer: None,
            next_try: Instant::now(),
            lost: Unwritten::default(),
        };
        let meta = |i: u64| PacketMeta {
            index: i,
            ts_ns: i128::from(i),
            orig_len: 60,
            linktype: 1,
        };
        let frame = [7u8; 60];
        // No reader: dropped as `no reader`, not a failure.
        let e = sink.write(&meta(0), &frame).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
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
                Err(e) if e.kind() == io::ErrorKind::NotConnected => no_reader += 1,
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
