//! AF_PACKET transmission through a memory-mapped TPACKET_V2 TX ring
//! (`Documentation/networking/packet_mmap.rst`, "Transmission process").
//!
//! Frames are copied into fixed-size slots of a ring shared with the
//! kernel, each marked `TP_STATUS_SEND_REQUEST`; one `send(2)` then hands
//! every marked slot to the device, and the kernel marks each slot
//! `TP_STATUS_AVAILABLE` again once the device has taken its frame. So a
//! queue of N frames costs one system call instead of N `write(2)`s.
//! `PACKET_QDISC_BYPASS` sends straight to the driver (no qdisc, no copy
//! to the sender side's own packet taps); the socket is bound with
//! protocol 0, so it receives nothing. `PACKET_VNET_HDR` puts a
//! `virtio_net_hdr` before each frame whose `hdr_len` is the whole frame,
//! so the kernel copies the frame into the socket buffer's linear part:
//! without it the buffer points page fragments at the ring, which veth
//! must then copy again, page by page, before handing the frame to the
//! other end (`skb_copy_ubufs`: measured 1,448–1,919 ns per packet with
//! readers against 1,290–1,469 with the header). `sendmmsg(2)` of linear
//! frames instead of a ring was measured too: no better (1,653–1,792).
//!
//! Contract:
//! * [`TxRing::push`] refuses (`InvalidInput`) a frame the kernel would
//!   refuse: shorter than an Ethernet header, or longer than the device's
//!   MTU plus an Ethernet header and one VLAN tag ([`TxRing::max_frame`]).
//!   `PACKET_LOSS` is set, so a frame the kernel still finds malformed is
//!   skipped instead of stopping the ring; the checks here are the
//!   kernel's own (`tpacket_parse_header`), so none is.
//! * [`TxRing::flush`] returns once the kernel has taken every pushed
//!   frame. A frame the device could not take at once (`ENOBUFS`: the
//!   receiving side's backlog was full) stays in its slot and is sent
//!   again (counted in [`TxRing::retries`]): nothing pushed is lost while
//!   the interface exists.
//! * A hard error (the interface went away: `ENXIO`, `ENETDOWN`) ends the
//!   ring: [`TxRing::flush`] returns it with the number of frames that
//!   were pushed but not sent, and every later call fails.
//!
//! Why in-house: the AF_PACKET crates do not expose the TX ring; it is
//! three setsockopt calls, a mapping and a 32-byte header per slot.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::packet::{bind, map_ring, packet_socket, setsockopt};

const TPACKET_V2: libc::c_int = 1;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_VNET_HDR: libc::c_int = 15;
/// `struct virtio_net_hdr`, which starts each slot's frame with
/// PACKET_VNET_HDR: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset. Only `hdr_len` is set: the bytes the kernel copies into
/// the socket buffer's linear part — the whole frame (see `push`).
const VNET_HDR_LEN: usize = 10;
const VNET_HDR_LEN_OFFSET: usize = 2;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
/// Ethernet header; the kernel's `dev->hard_header_len` on Ethernet.
const ETH_HLEN: usize = 14;
/// One 802.1Q tag the kernel allows beyond the MTU.
const VLAN_HLEN: usize = 4;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}
const _: () = assert!(size_of::<TpacketReq>() == 16);

/// `struct tpacket2_hdr`.
#[repr(C)]
struct Tpacket2Hdr {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    sec: u32,
    nsec: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    padding: [u8; 4],
}
const _: () = assert!(size_of::<Tpacket2Hdr>() == 32);
/// Where a TX slot's frame starts: `TPACKET2_HDRLEN - sizeof(struct
/// sockaddr_ll)` = `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`.
const DATA_OFFSET: usize = 32;
/// Bytes of ring per socket (at least 16 slots).
const RING_BYTES: usize = 2 << 20;
/// How long a flush waits for the kernel to take frames before it gives up
/// on the interface (it takes them in microseconds when it takes them).
const STALL: Duration = Duration::from_secs(5);

/// A TX ring on one interface.
pub struct TxRing {
    fd: OwnedFd,
    ring: NonNull<u8>,
    ring_len: usize,
    frame_size: usize,
    frames: usize,
    /// The slot the next frame goes into.
    next: usize,
    /// Frames pushed since the last completed flush.
    queued: usize,
    max_frame: usize,
    retries: u64,
    /// Frames (and their bytes) pushed but never sent, since the last
    /// [`TxRing::take_lost`].
    lost: (u64, u64),
    /// Set by a hard error: the ring is not used again.
    dead: Option<(io::ErrorKind, String)>,
}

// SAFETY: the mapping is owned by this value alone (nothing borrowed from
// it outlives a `&mut self` call), so moving it to another thread is sound.
unsafe impl Send for TxRing {}

impl std::fmt::Debug for TxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRing")
            .field("frames", &self.frames)
            .field("frame_size", &self.frame_size)
            .field("queued", &self.queued)
            .finish()
    }
}

/// The slot size for frames up to `max_frame` bytes: header plus frame,
/// a power of two of at least 2 KiB (so slots never straddle a block).
fn slot_size(max_frame: usize) -> usize {
    (DATA_OFFSET + VNET_HDR_LEN + max_frame)
        .next_power_of_two()
        .max(2048)
}

/// Refuses what the kernel would (`tpacket_parse_header`, veth's
/// `is_skb_forwardable`): a frame shorter than an Ethernet header or
/// longer than `max_frame`.
fn check_length(len: usize, max_frame: usize) -> io::Result<()> {
    if (ETH_HLEN..=max_frame).contains(&len) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a {len}-byte frame does not fit the interface ({ETH_HLEN}..={max_frame} bytes: its \
             MTU plus an Ethernet header and a VLAN tag; a longer frame comes from GRO on the \
             capture interface: `ethtool -K IF gro off`)"
        ),
    ))
}

impl TxRing {
    /// Opens a TX ring on the interface with index `ifindex` and MTU
    /// `mtu` (`name` is for messages).
    pub fn open(name: &str, ifindex: i32, mtu: u32) -> io::Result<Self> {
        // The virtio header's hdr_len is 16 bits.
        let max_frame = (mtu as usize + ETH_HLEN + VLAN_HLEN).min(usize::from(u16::MAX));
        // Protocol 0, here and at `bind`: the socket receives nothing.
        let fd = packet_socket(name)?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V2,
            "PACKET_VERSION",
        )?;
        let one: libc::c_int = 1;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            &one,
            "PACKET_QDISC_BYPASS",
        )?;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_LOSS, &one, "PACKET_LOSS")?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_VNET_HDR,
            &one,
            "PACKET_VNET_HDR",
        )?;
        let frame_size = slot_size(max_frame);
        let block_size = frame_size.max(64 << 10);
        let ring_len = RING_BYTES.max(16 * frame_size).next_multiple_of(block_size);
        let req = TpacketReq {
            block_size: block_size as u32,
            block_nr: (ring_len / block_size) as u32,
            frame_size: frame_size as u32,
            frame_nr: (ring_len / frame_size) as u32,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_TX_RING,
            &req,
            "PACKET_TX_RING",
        )?;
        let ring = map_ring(&fd, ring_len, "mmap of the TX ring")?;
        let tx = Self {
            fd,
            ring,
            ring_len,
            frame_size,
            frames: ring_len / frame_size,
            next: 0,
            queued: 0,
            max_frame,
            retries: 0,
            lost: (0, 0),
            dead: None,
        };
        bind(&tx.fd, ifindex, 0, name)?;
        Ok(tx)
    }

    /// The longest frame [`TxRing::push`] takes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Slots in the ring (frames one `send(2)` can carry).
    pub fn slots(&self) -> usize {
        self.frames
    }

    /// Frames the device could not take at once and that were sent again.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The status word of slot `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.frames);
        // SAFETY: slot `i` lies inside the mapping (i < frames, frames ×
        // frame_size ≤ ring_len) and starts 4-byte aligned (the mapping is
        // page aligned, the slot size a power of two). The kernel and user
        // space both access the status word; `AtomicU32` is the right type.
        unsafe {
            &*self
                .ring
                .as_ptr()
                .add(i * self.frame_size)
                .cast::<AtomicU32>()
        }
    }

    fn refuse_if_dead(&self) -> io::Result<()> {
        match &self.dead {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// Queues `frame` (flushing first when the ring is full).
    pub fn push(&mut self, frame: &[u8]) -> io::Result<()> {
        self.refuse_if_dead()?;
        check_length(frame.len(), self.max_frame)?;
        if self.queued == self.frames {
            self.flush()?;
        }
        let i = self.next;
        if self.status(i).load(Ordering::Acquire) != TP_STATUS_AVAILABLE {
            // Only after an interrupted flush: wait for the kernel.
            self.flush()?;
        }
        // SAFETY: slot `i` is inside the mapping and AVAILABLE (observed with
        // acquire ordering above), so the kernel does not read or write it
        // until its status is set below; the frame fits the slot
        // (max_frame + DATA_OFFSET ≤ frame_size). The header words written
        // are plain u32 fields at 4-aligned offsets of the slot.
        unsafe {
            let slot = self.ring.as_ptr().add(i * self.frame_size);
            let vnet = slot.add(DATA_OFFSET);
            std::ptr::write_bytes(vnet, 0, VNET_HDR_LEN);
            vnet.add(VNET_HDR_LEN_OFFSET)
                .cast::<[u8; 2]>()
                .write((frame.len() as u16).to_ne_bytes());
            std::ptr::copy_nonoverlapping(frame.as_ptr(), vnet.add(VNET_HDR_LEN), frame.len());
            let hdr = slot.cast::<Tpacket2Hdr>();
            let len = (VNET_HDR_LEN + frame.len()) as u32;
            std::ptr::addr_of_mut!((*hdr).len).write(len);
            std::ptr::addr_of_mut!((*hdr).snaplen).write(len);
        }
        self.status(i)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next = (i + 1) % self.frames;
        self.queued += 1;
        Ok(())
    }

    /// Sends every queued frame and waits until the kernel has taken them.
    /// Returns how many were sent; on a hard error the queued frames not
    /// sent are lost ([`TxRing::take_lost`]) and the ring is dead.
    pub fn flush(&mut self) -> io::Result<usize> {
        self.refuse_if_dead()?;
        let queued = self.queued;
        let mut last_progress = Instant::now();
        let mut left = self.unsent();
        while left > 0 {
            // SAFETY: send(2) on our socket with no buffer: with a TX ring
            // the kernel sends the ring's SEND_REQUEST slots instead.
            let rc = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) => {
                        self.retries += 1;
                        std::thread::yield_now();
                    }
                    Some(libc::EINTR | libc::EAGAIN) => {}
                    _ => return Err(self.die(e)),
                }
            }
            let now_left = self.unsent();
            if now_left < left {
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL {
                let e = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the kernel took no frame from the TX ring for {STALL:?}"),
                );
                return Err(self.die(e));
            }
            left = now_left;
        }
        self.queued = 0;
        Ok(queued)
    }

    /// The slots of the queued frames the kernel has not marked
    /// available yet.
    fn unsent_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.queued)
            .map(|k| (self.next + self.frames - self.queued + k) % self.frames)
            .filter(|&i| self.status(i).load(Ordering::Acquire) != TP_STATUS_AVAILABLE)
    }

    fn unsent(&self) -> usize {
        self.unsent_slots().count()
    }

    /// Ends the ring on hard error `e`, counting the queued frames not sent
    /// as lost; returns `e`.
    fn die(&mut self, e: io::Error) -> io::Error {
        let bytes: u64 = self
            .unsent_slots()
            // SAFETY: the slot lies inside the mapping (see `status`); its
            // `len` word, written by `push`, is read as a plain u32 (the
            // kernel only reads it).
            .map(|i| unsafe {
                let hdr = self
                    .ring
                    .as_ptr()
                    .add(i * self.frame_size)
                    .cast::<Tpacket2Hdr>();
                u64::from(std::ptr::addr_of!((*hdr).len).read())
            })
            .sum();
        self.lost.0 += self.unsent() as u64;
        self.lost.1 += bytes;
        self.queued = 0;
        self.dead = Some((e.kind(), e.to_string()));
        e
    }

    /// Frames (and bytes) pushed but lost to a hard error since the last
    /// call.
    pub fn take_lost(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.lost)
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; nothing
        // borrowed from it outlives `self`.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_the_kernel_would_refuse_are_refused_first() {
        let max = 1500 + ETH_HLEN + VLAN_HLEN;
        assert!(check_length(ETH_HLEN, max).is_ok());
        assert!(check_length(max, max).is_ok());
        for bad in [0, ETH_HLEN - 1, max + 1] {
            let e = check_length(bad, max).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(
                e.to_string().contains(&format!("a {bad}-byte frame")),
                "{e}"
            );
        }
    }

    #[test]
    fn slots_hold_the_header_and_the_longest_frame() {
        let head = DATA_OFFSET + VNET_HDR_LEN;
        assert_eq!(slot_size(1518), 2048);
        assert_eq!(slot_size(2048 - head), 2048);
        assert_eq!(slot_size(2048 - head + 1), 4096);
        assert_eq!(slot_size(9018), 16384);
        for f in [14, 1518, 9018, 65553] {
            assert!(slot_size(f) >= head + f);
            assert!(slot_size(f).is_power_of_two());
        }
    }
}
