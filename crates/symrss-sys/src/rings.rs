//! Live capture as an engine [`Source`]: one AF_PACKET TPACKET_V3 ring
//! ([`PacketSocket`]) per interface, several merged by timestamp.
//!
//! Contract: each [`Source::poll`] reads at most one ready block per
//! interface (a retired block holds up to `block_size` bytes of frames)
//! and hands its frames over as they were on the wire (a VLAN tag the
//! kernel stripped is put back), Ethernet link type; with several
//! interfaces the frames of the round are handed over in timestamp order
//! (gathered in one reused buffer: no allocation per frame). [`Poll::Idle`]
//! when no block was ready. An interface's read error (ENETDOWN when it
//! went away) is kept as its input's error and the other interfaces are
//! still read. The kernel's own counters (PACKET_STATISTICS: received by
//! the filter, dropped) are added to each input's stats by
//! [`Rings::read_kernel_stats`].

use std::io;
use std::ops::Range;

use symrss_engine::source::{Frame, InputStats, Poll, Source};

use crate::packet::{PacketSocket, wait_any};

/// LINKTYPE_ETHERNET: what an AF_PACKET ring on an Ethernet-type
/// interface captures.
const LINKTYPE_ETHERNET: u32 = 1;

/// The rings of one or more interfaces.
pub struct Rings {
    sockets: Vec<PacketSocket>,
    stats: Vec<InputStats>,
    /// Kernel counters per interface: (received by the filter, dropped).
    kernel: Vec<(u64, u64)>,
    /// Frames of a round (several interfaces), or one frame whose VLAN tag
    /// is put back.
    frames: Vec<u8>,
    /// The round's frames: (timestamp, wire length, input, bytes).
    merged: Vec<(i128, u32, usize, Range<usize>)>,
}

impl std::fmt::Debug for Rings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rings")
            .field("inputs", &self.stats)
            .finish()
    }
}

impl Rings {
    /// The rings, each with its interface's name.
    pub fn new(rings: Vec<(String, PacketSocket)>) -> Self {
        let (names, sockets): (Vec<String>, Vec<PacketSocket>) = rings.into_iter().unzip();
        Self {
            kernel: vec![(0, 0); names.len()],
            stats: names
                .into_iter()
                .map(|name| InputStats {
                    name,
                    linktype: Some(LINKTYPE_ETHERNET),
                    ..InputStats::default()
                })
                .collect(),
            sockets,
            frames: Vec::new(),
            merged: Vec::new(),
        }
    }

    /// Waits up to `timeout_ms` until a ring has a block (or an error, or
    /// a signal arrives).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        wait_any(&self.sockets, timeout_ms)
    }

    /// Adds the kernel's counters since the last call (PACKET_STATISTICS
    /// resets on read).
    pub fn read_kernel_stats(&mut self) {
        for (s, k) in self.sockets.iter().zip(&mut self.kernel) {
            if let Ok(st) = s.stats() {
                k.0 += st.packets;
                k.1 += st.drops;
            }
        }
    }

    /// Per interface: (received by the filter, dropped by the kernel).
    pub fn kernel_counters(&self) -> &[(u64, u64)] {
        &self.kernel
    }
}

impl Source for Rings {
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll {
        let single = self.sockets.len() == 1;
        let Self {
            sockets,
            stats,
            frames,
            merged,
            ..
        } = self;
        frames.clear();
        let mut got = 0;
        for (input, (socket, st)) in sockets.iter_mut().zip(stats.iter_mut()).enumerate() {
            let mut n = 0u64;
            let r = socket.next_block(0, |p| {
                n += 1;
                if !single {
                    let start = frames.len();
                    let len = p.frame_into(frames);
                    merged.push((p.ts_ns, len, input, start..frames.len()));
                } else if p.vlan.is_some() {
                    frames.clear();
                    let len = p.frame_into(frames);
                    on_frame(Frame {
                        ts_ns: p.ts_ns,
                        orig_len: len,
                        linktype: LINKTYPE_ETHERNET,
                        input,
                        data: frames,
                    });
                } else {
                    on_frame(Frame {
                        ts_ns: p.ts_ns,
                        orig_len: p.wire_len,
                        linktype: LINKTYPE_ETHERNET,
                        input,
                        data: p.data,
                    });
                }
            });
            if let Err(e) = r {
                st.error.get_or_insert(e.to_string());
            }
            st.frames += n;
            got += n as usize;
        }
        if !merged.is_empty() {
            merged.sort_by_key(|m| m.0);
            for (ts_ns, orig_len, input, at) in merged.drain(..) {
                on_frame(Frame {
                    ts_ns,
                    orig_len,
                    linktype: LINKTYPE_ETHERNET,
                    input,
                    data: &frames[at],
                });
            }
        }
        if got == 0 {
            Poll::Idle
        } else {
            Poll::Ready(got)
        }
    }

    fn inputs(&self) -> &[InputStats] {
        &self.stats
    }
}
