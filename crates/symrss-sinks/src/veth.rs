//! `veth`: a queue delivered to the far end `APP-q<i>` of a veth pair,
//! which any AF_PACKET reader (tcpdump, Suricata, Zeek, Snort) opens as if
//! it were a NIC queue — the interface output at file-like cost. Frames go
//! into the pair's near end through a TX ring ([`symrss_sys::packet_tx`]):
//! one `send(2)` per chunk (or per ring of 1,024 frames), not one
//! `write(2)` per packet as with `tap`.
//!
//! What a consumer sees: an Ethernet interface (LINKTYPE_ETHERNET) with
//! each frame as captured, VLAN tags in the frame (the capture puts back
//! a tag the kernel stripped, and a consumer's kernel strips it again into
//! its metadata, as on a NIC); the time a frame reached the interface,
//! not its capture time; both ends' MTU that of the largest capture
//! interface (a longer frame — from GRO on the capture interface — is
//! refused and counted as a sink error, with `ethtool -K IF gro off` as the
//! cure). Counting: a frame is delivered once the ring took it; the
//! kernel sends it again when the far end's backlog was full (nothing is
//! lost while the interface exists); a consumer that does not keep up
//! loses frames in its own socket ring, counted where it counts its
//! kernel drops (`tcpdump`'s "dropped by kernel", Suricata's
//! `capture.kernel_drops`), exactly as on a NIC queue, and no other queue
//! or consumer is held up.

use std::io;

use symrss_engine::balancer::{PacketMeta, Sink, SinkError, Unwritten};
use symrss_sys::packet_tx::TxRing;
use symrss_sys::veth::VethPair;

use crate::AppOutputs;

/// A queue's veth pair and the TX ring on its near end.
#[derive(Debug)]
pub struct VethSink {
    // Field order: the ring is closed before the pair is deleted.
    tx: TxRing,
    pair: VethPair,
}

impl VethSink {
    /// Creates the pair whose far end is `APP-q<queue>`, with the MTU of
    /// `out`.
    pub fn create(out: &AppOutputs<'_>, queue: usize) -> io::Result<Self> {
        let pair = VethPair::create(&format!("{}-q{queue}", out.app), out.mtu)?;
        let tx = TxRing::open(pair.near(), pair.near_index(), pair.mtu())?;
        Ok(Self { tx, pair })
    }

    /// The interface consumers open.
    pub fn interface(&self) -> &str {
        self.pair.far()
    }

    /// Frames sent again because the far end's backlog was full.
    pub fn retries(&self) -> u64 {
        self.tx.retries()
    }
}

impl Sink for VethSink {
    fn write(&mut self, _: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
        Ok(self.tx.push(data)?)
    }

    /// One `send(2)` for the chunk's frames.
    fn chunk_done(&mut self) -> Result<(), SinkError> {
        self.tx.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.chunk_done()
    }

    fn take_unwritten(&mut self) -> Unwritten {
        let (packets, bytes) = self.tx.take_lost();
        Unwritten { packets, bytes }
    }
}
