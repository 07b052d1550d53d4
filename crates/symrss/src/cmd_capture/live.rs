//! A worker's live input: AF_PACKET rings or AF_XDP sockets, behind the
//! engine's `Source` and the few calls the capture makes on a live source
//! (wait, kernel counters). Adding a live source is one variant here and
//! its opening in `open_inputs`; no steering code changes.

use std::io;

use symrss_engine::source::{Frame, InputStats, Poll, Source};
use symrss_sys::rings::Rings;
use symrss_sys::xdp::XdpRings;

/// One worker's input.
#[derive(Debug)]
pub(super) enum Live {
    /// AF_PACKET TPACKET_V3 rings (one per interface).
    Packet(Rings),
    /// AF_XDP sockets (one per interface and receive queue it owns).
    Xdp(XdpRings),
}

impl Live {
    /// Waits up to `timeout_ms` for something to read.
    pub(super) fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        match self {
            Self::Packet(r) => r.wait(timeout_ms),
            Self::Xdp(x) => x.wait(timeout_ms),
        }
    }

    /// Refreshes the kernel's counters.
    pub(super) fn read_kernel_stats(&mut self) {
        match self {
            Self::Packet(r) => r.read_kernel_stats(),
            Self::Xdp(x) => x.read_kernel_stats(),
        }
    }

    /// Per input: (received by the filter, dropped by the kernel).
    pub(super) fn kernel_counters(&self) -> &[(u64, u64)] {
        match self {
            Self::Packet(r) => r.kernel_counters(),
            Self::Xdp(x) => x.kernel_counters(),
        }
    }
}

impl Source for Live {
    #[inline]
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll {
        match self {
            Self::Packet(r) => r.poll(on_frame),
            Self::Xdp(x) => x.poll(on_frame),
        }
    }

    fn inputs(&self) -> &[InputStats] {
        match self {
            Self::Packet(r) => r.inputs(),
            Self::Xdp(x) => x.inputs(),
        }
    }
}
