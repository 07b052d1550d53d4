//! `pcap`: a live queue's pcap files `DIR/APP/q<i>.pcap`, rotating on
//! size, packet time and SIGHUP.
//!
//! A failed write (a full disk) closes the current file at its last whole
//! record; the queue's packets are then refused (counted as `sink_error`)
//! until the next rotation point — SIGHUP, or the rotation interval of
//! packet time after the failure ([`RETRY_SECONDS`] without one) — where a
//! new file is tried. The other queues are not affected.

use std::io;
use std::time::{Duration, Instant};

use symrss_engine::balancer::{PacketMeta, Sink, SinkError, Unwritten};
use symrss_pcap::{RotatingWriter, TsResolution};
use symrss_sys::signals;

use crate::AppOutputs;

/// Packet time a failed queue waits before trying a new file, when no
/// time rotation is configured.
pub const RETRY_SECONDS: u64 = 10;

/// Longest a written record stays in a queue's buffer while packets keep
/// coming (tcpdump, without `-U`, waits for a full buffer).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A queue's rotating pcap files.
#[derive(Debug)]
pub struct RotatingPcap {
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

impl RotatingPcap {
    /// Creates `out.dir/q<queue>.pcap` (the directory must exist).
    pub fn create(out: &AppOutputs<'_>, queue: usize) -> io::Result<Self> {
        let retry = out.rotation.max_seconds.unwrap_or(RETRY_SECONDS).max(1);
        Ok(Self {
            writer: RotatingWriter::create(
                out.dir,
                &format!("q{queue}"),
                out.linktype,
                out.snaplen,
                TsResolution::Nano,
                out.rotation,
            )?,
            hangups: signals::hangups(),
            flushed: Instant::now(),
            failed_at: None,
            retry_ns: i128::from(retry) * 1_000_000_000,
        })
    }
}

impl Sink for RotatingPcap {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
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
                return Err(e.into());
            }
            self.failed_at = None;
        }
        let r = self.writer.write_packet(meta.ts_ns, meta.orig_len, data);
        if r.is_err() && self.failed_at.is_none() {
            self.failed_at = Some(meta.ts_ns);
        }
        Ok(r?)
    }

    fn chunk_done(&mut self) -> Result<(), SinkError> {
        if self.flushed.elapsed() < FLUSH_EVERY {
            return Ok(());
        }
        self.flushed = Instant::now();
        Ok(self.writer.flush()?)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.writer.flush()?)
    }

    fn take_unwritten(&mut self) -> Unwritten {
        self.writer.take_unwritten()
    }
}
