//! AF_PACKET capture with a TPACKET_V3 memory-mapped receive ring.
//!
//! The kernel fills fixed-size blocks of a ring shared with user space
//! (`Documentation/networking/packet_mmap.rst`); a block is handed over
//! when full or after `retire_ms`, and given back by writing
//! `TP_STATUS_KERNEL` to its status word. Each packet header
//! (`tpacket3_hdr`) carries a nanosecond timestamp, the captured and wire
//! lengths, the VLAN tag the kernel stripped (if any) and, on request
//! (`TP_FT_REQ_FILL_RXHASH`), the packet's receive hash (`skb->hash`: the
//! NIC's RSS hash when the driver reports one, else the kernel's own flow
//! hash).
//!
//! Why in-house: the Rust AF_PACKET crates either use TPACKET_V2 or do
//! not expose fanout, the VLAN fields and the RX hash; the interface is a
//! handful of setsockopt calls and three kernel structs.
//!
//! [`PacketSocket::fanout`] joins a fanout group (`PACKET_FANOUT`); with
//! [`Fanout::QueueMapping`] the kernel gives each socket of the group the
//! packets of one hardware receive queue (`skb_get_rx_queue % members`),
//! which is how `symrss nic verify` sees the NIC's own steering.

use std::io;
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const ETH_P_ALL: u16 = 0x0003;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const TP_FT_REQ_FILL_RXHASH: u32 = 1;

/// `struct tpacket_req3`.
#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}
const _: () = assert!(size_of::<TpacketReq3>() == 28);

/// `struct tpacket_block_desc` with its `tpacket_hdr_v1`.
#[repr(C)]
struct BlockDesc {
    version: u32,
    offset_to_priv: u32,
    block_status: u32,
    num_pkts: u32,
    offset_to_first_pkt: u32,
    blk_len: u32,
    seq_num: u64,
    ts_first: [u32; 2],
    ts_last: [u32; 2],
}
const _: () = assert!(size_of::<BlockDesc>() == 48);
const _: () = assert!(offset_of!(BlockDesc, block_status) == 8);

/// `struct tpacket3_hdr` with its `tpacket_hdr_variant1`.
#[repr(C)]
struct Tpacket3Hdr {
    next_offset: u32,
    sec: u32,
    nsec: u32,
    snaplen: u32,
    len: u32,
    status: u32,
    mac: u16,
    net: u16,
    rxhash: u32,
    vlan_tci: u32,
    vlan_tpid: u16,
    padding: u16,
    padding2: [u8; 8],
}
const _: () = assert!(size_of::<Tpacket3Hdr>() == 48);
const _: () =
    assert!(offset_of!(Tpacket3Hdr, mac) == 24 && offset_of!(Tpacket3Hdr, vlan_tpid) == 36);

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}
const _: () = assert!(size_of::<TpacketStatsV3>() == 12);

/// Ring geometry and socket options.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Bytes per block (a multiple of the page size).
    pub block_size: u32,
    /// Blocks in the ring.
    pub block_count: u32,
    /// A block is handed to user space after this many ms even if not full.
    pub retire_ms: u32,
    /// Put the interface into promiscuous mode (for this socket's lifetime).
    pub promiscuous: bool,
    /// Ask the kernel to fill each packet's RX hash.
    pub rx_hash: bool,
    /// Classic BPF filter (`(code, jt, jf, k)`), attached before the
    /// socket is bound, so no unfiltered packet ever reaches the ring.
    pub filter: Vec<(u16, u8, u8, u32)>,
}

impl RingConfig {
    /// Largest block accepted.
    pub const MAX_BLOCK_SIZE: u32 = 1 << 30;

    /// Checks the ring geometry the kernel would refuse (packet_mmap:
    /// `tp_block_size` a multiple of the page size, at least one block),
    /// so it is reported before any socket is opened.
    pub fn validate(&self) -> Result<(), String> {
        let page = 4096u32;
        if self.block_size < page
            || !self.block_size.is_multiple_of(page)
            || self.block_size > Self::MAX_BLOCK_SIZE
        {
            return Err(format!(
                "block size {} must be a multiple of {page} bytes, from {page} to {} (1 GiB)",
                self.block_size,
                Self::MAX_BLOCK_SIZE
            ));
        }
        if self.block_count == 0 {
            return Err("block count must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        // 64 × 1 MiB: ~50 ms of 10GbE line rate at 64-byte packets before
        // the kernel drops (counted in PACKET_STATISTICS).
        Self {
            block_size: 1 << 20,
            block_count: 64,
            retire_ms: 10,
            promiscuous: true,
            rx_hash: false,
            filter: Vec::new(),
        }
    }
}

/// Fanout modes (`PACKET_FANOUT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// By the kernel's flow hash (`skb_get_hash`: its own symmetric hash,
    /// or the NIC's RSS hash where the driver sets one).
    Hash,
    /// By the CPU that received the packet.
    Cpu,
    /// By the hardware receive queue.
    QueueMapping,
}

impl Fanout {
    fn mode(self) -> u32 {
        match self {
            Self::Hash => 0,
            Self::Cpu => 2,
            Self::QueueMapping => 5,
        }
    }
}

/// `PACKET_FANOUT_FLAG_UNIQUEID` (linux/if_packet.h): the kernel picks a
/// group id no other group uses.
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// A filter that takes no packet (`ret #0`): a socket joining a fanout
/// group carries it until the group is complete, so no packet reaches two
/// members (see [`PacketSocket::set_filter`]).
pub const DROP_ALL: [(u16, u8, u8, u32); 1] = [(0x06, 0, 0, 0)];

/// One captured packet, borrowed from the ring.
#[derive(Debug)]
pub struct Packet<'a> {
    /// Timestamp, ns since the epoch.
    pub ts_ns: i128,
    /// Length on the wire (without a stripped VLAN tag).
    pub wire_len: u32,
    /// Captured bytes as the kernel stored them (a stripped VLAN tag is
    /// not in here; see [`Packet::vlan`]).
    pub data: &'a [u8],
    /// The VLAN tag the kernel stripped: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// The receive hash, if requested (0 when the kernel had none).
    pub rx_hash: u32,
}

impl Packet<'_> {
    /// The frame as it was on the wire: the stripped VLAN tag put back
    /// after the MAC addresses. Appends to `out` and returns the new wire
    /// length.
    pub fn frame_into(&self, out: &mut Vec<u8>) -> u32 {
        match self.vlan {
            Some((tpid, tci)) if self.data.len() >= 12 => {
                out.extend_from_slice(&self.data[..12]);
                out.extend_from_slice(&tpid.to_be_bytes());
                out.extend_from_slice(&tci.to_be_bytes());
                out.extend_from_slice(&self.data[12..]);
                self.wire_len + 4
            }
            _ => {
                out.extend_from_slice(self.data);
                self.wire_len
            }
        }
    }
}

/// Kernel counters since the last read (`PACKET_STATISTICS` resets them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets that passed the socket filter (delivered + dropped).
    pub packets: u64,
    /// Packets dropped because the ring was full.
    pub drops: u64,
}

/// An AF_PACKET socket bound to one interface, with a TPACKET_V3 ring.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ring: NonNull<u8>,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    ifindex: i32,
}

// SAFETY: the ring mapping is owned by this value alone (no aliases are
// handed out beyond a `&mut self` borrow), so moving it to another thread
// is sound.
unsafe impl Send for PacketSocket {}

pub(crate) fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => " (needs CAP_NET_RAW: run as root)",
        Some(libc::ENODEV) => " (no such interface)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("{what}: {e}{hint}"))
}

pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` points at a live `T` of `size_of::<T>()` bytes, the
    // layout the kernel expects for this option (callers pass the kernel
    // structs defined above or plain integers).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(os_err(what)) } else { Ok(()) }
}

/// A raw AF_PACKET socket with protocol 0: it receives nothing until
/// [`bind`] names a protocol (`interface` is for messages).
pub(crate) fn packet_socket(interface: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err(&format!("AF_PACKET socket on {interface}")));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds packet socket `fd` to the interface with index `ifindex` and to
/// `protocol` (host order; 0: transmit only, nothing received).
pub(crate) fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16, interface: &str) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a valid, initialised `sockaddr_ll` and the length
    // passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(os_err(&format!("bind to {interface}")));
    }
    Ok(())
}

/// Maps the `len`-byte ring the kernel allocated for packet socket `fd`
/// (PACKET_RX_RING or PACKET_TX_RING); `what` names the failure. The
/// caller unmaps it.
pub(crate) fn map_ring(fd: &OwnedFd, len: usize, what: &str) -> io::Result<NonNull<u8>> {
    // SAFETY: maps the ring the kernel just allocated for `fd`, with the
    // length it was configured with; the result is checked.
    let ring = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ring == libc::MAP_FAILED {
        return Err(os_err(what));
    }
    Ok(NonNull::new(ring.cast::<u8>()).expect("mmap never returns NULL on success"))
}

/// The index of a network interface.
pub fn interface_index(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named `{name}`"),
        ));
    }
    Ok(i as i32)
}

impl PacketSocket {
    /// Opens a socket on `interface` with a receive ring.
    pub fn open(interface: &str, cfg: &RingConfig) -> io::Result<Self> {
        let ifindex = interface_index(interface)?;
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // No packet at all until `bind` below names the interface and
        // ETH_P_ALL (with ETH_P_ALL at creation the socket would take every
        // interface's packets until then).
        let fd = packet_socket(interface)?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            "PACKET_VERSION",
        )?;
        let frame_size = 2048;
        let req = TpacketReq3 {
            block_size: cfg.block_size,
            block_nr: cfg.block_count,
            frame_size,
            frame_nr: cfg.block_size / frame_size * cfg.block_count,
            retire_blk_tov: cfg.retire_ms,
            sizeof_priv: 0,
            feature_req_word: if cfg.rx_hash {
                TP_FT_REQ_FILL_RXHASH
            } else {
                0
            },
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let ring_len = cfg.block_size as usize * cfg.block_count as usize;
        let ring = map_ring(&fd, ring_len, "mmap of the packet ring")?;
        let sock = Self {
            fd,
            ring,
            ring_len,
            block_size: cfg.block_size as usize,
            block_count: cfg.block_count as usize,
            next_block: 0,
            ifindex,
        };
        if !cfg.filter.is_empty() {
            sock.attach_filter(&cfg.filter)?;
        }
        bind(&sock.fd, ifindex, ETH_P_ALL, interface)?;
        if cfg.promiscuous {
            // SAFETY: `packet_mreq` is plain data; all-zero is valid.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = ifindex;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(
                &sock.fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
                "promiscuous mode",
            )?;
        }
        Ok(sock)
    }

    /// The interface index this socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Joins fanout group `group` in `mode` (all members must use the same
    /// mode; the first to join creates the group).
    pub fn fanout(&self, group: u16, mode: Fanout) -> io::Result<()> {
        let arg: u32 = u32::from(group) | mode.mode() << 16;
        setsockopt(
            &self.fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &arg,
            "PACKET_FANOUT",
        )
    }

    /// Creates a fanout group in `mode` with an id the kernel picks (no
    /// other process's group can be joined by mistake) and returns the id,
    /// for the other members' [`PacketSocket::fanout`].
    pub fn fanout_new_group(&self, mode: Fanout) -> io::Result<u16> {
        let arg: u32 = (mode.mode() | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
        setsockopt(
            &self.fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &arg,
            "PACKET_FANOUT (new group)",
        )?;
        let mut value: u32 = 0;
        let mut len = size_of::<u32>() as libc::socklen_t;
        // SAFETY: `value` is a live, writable u32 and `len` its size, what
        // getsockopt(PACKET_FANOUT) fills (id | mode << 16).
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&mut value as *mut u32).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(os_err("getsockopt PACKET_FANOUT"));
        }
        Ok(value as u16)
    }

    /// Replaces the socket's filter (an empty program removes it:
    /// `SO_DETACH_FILTER`). The swap is atomic in the kernel.
    pub fn set_filter(&self, program: &[(u16, u8, u8, u32)]) -> io::Result<()> {
        if !program.is_empty() {
            return self.attach_filter(program);
        }
        let zero: libc::c_int = 0;
        match setsockopt(
            &self.fd,
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            &zero,
            "SO_DETACH_FILTER",
        ) {
            // No filter attached: nothing to remove.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Attaches a classic BPF program (`SO_ATTACH_FILTER`); each
    /// instruction is `(code, jt, jf, k)`.
    fn attach_filter(&self, program: &[(u16, u8, u8, u32)]) -> io::Result<()> {
        let mut insns: Vec<libc::sock_filter> = program
            .iter()
            .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
            .collect();
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_mut_ptr(),
        };
        setsockopt(
            &self.fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "SO_ATTACH_FILTER",
        )
    }

    /// Kernel counters since the last call.
    pub fn stats(&self) -> io::Result<KernelStats> {
        let mut s = TpacketStatsV3::default();
        let mut len = size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `s` is a live, writable `tpacket_stats_v3` and `len` its
        // size; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut s as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(os_err("PACKET_STATISTICS"));
        }
        Ok(KernelStats {
            packets: u64::from(s.packets),
            drops: u64::from(s.drops),
        })
    }

    /// The socket's pending error (`SO_ERROR`), e.g. ENETDOWN when the
    /// interface went down or away.
    fn pending_error(&self) -> io::Result<()> {
        let mut err: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR writes one int into `err`, whose size is `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if err != 0 {
            let e = io::Error::from_raw_os_error(err);
            let why = if err == libc::ENETDOWN {
                " (the interface went down or away)"
            } else {
                ""
            };
            return Err(io::Error::new(e.kind(), format!("{e}{why}")));
        }
        Ok(())
    }

    /// The status word of block `i`, read with acquire ordering (the
    /// kernel writes the packets, then the status).
    fn block_status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.block_count);
        // SAFETY: block `i` lies inside the mapping (i < block_count, the
        // mapping is block_size × block_count bytes) and starts with a
        // `tpacket_block_desc`, whose `block_status` (at byte 8, by the
        // asserted layout of `BlockDesc`) is 4-aligned (blocks are
        // page-aligned). The kernel and this process
        // both access it; `AtomicU32` is the right type for that.
        unsafe {
            &*self
                .ring
                .as_ptr()
                .add(i * self.block_size + offset_of!(BlockDesc, block_status))
                .cast::<AtomicU32>()
        }
    }

    /// Waits up to `timeout_ms` for the next block and calls `f` on each of
    /// its packets, then returns the block to the kernel. Returns the
    /// number of packets seen (0 on timeout or EINTR).
    pub fn next_block(
        &mut self,
        timeout_ms: i32,
        mut f: impl FnMut(&Packet<'_>),
    ) -> io::Result<usize> {
        let i = self.next_block;
        if self.block_status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
            if self.block_status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                if pfd.revents & libc::POLLERR != 0 {
                    self.pending_error()?;
                }
                return Ok(0);
            }
        }
        // SAFETY: the kernel handed block `i` to user space (TP_STATUS_USER
        // observed with acquire ordering), so its bytes are initialised and
        // the kernel does not write them until the status is reset below.
        // The block lies inside the mapping.
        let block = unsafe {
            std::slice::from_raw_parts(self.ring.as_ptr().add(i * self.block_size), self.block_size)
        };
        let n = read_u32(block, offset_of!(BlockDesc, num_pkts)) as usize;
        let mut at = read_u32(block, offset_of!(BlockDesc, offset_to_first_pkt)) as usize;
        let mut seen = 0;
        // The kernel wrote the block on another core: each frame's first
        // read is a miss. Reading ahead (a line PREFETCH_BYTES on, whose
        // value nothing waits for) starts those misses while the frames
        // before are steered.
        let mut ahead = 0u8;
        for _ in 0..n {
            let Some(p) = parse_packet(block, at) else {
                break;
            };
            ahead ^= block.get(at + PREFETCH_BYTES).copied().unwrap_or(0);
            f(&p.0);
            seen += 1;
            if p.1 == 0 {
                break;
            }
            at += p.1;
        }
        std::hint::black_box(ahead);
        self.block_status(i)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next_block = (i + 1) % self.block_count;
        Ok(seen)
    }
}

/// How far ahead of the frame being handed over the block is read.
const PREFETCH_BYTES: usize = 2048;

/// Waits up to `timeout_ms` until one of `sockets` has data (or an error,
/// or a signal arrives).
pub fn wait_any<'a>(
    sockets: impl IntoIterator<Item = &'a PacketSocket>,
    timeout_ms: i32,
) -> io::Result<()> {
    let mut fds: Vec<libc::pollfd> = sockets
        .into_iter()
        .map(|s| libc::pollfd {
            fd: s.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes(s.try_into().expect("4 bytes")))
}

/// The packet whose `tpacket3_hdr` starts at `at` and the offset to the
/// next one; `None` if the header or data would leave the block.
#[inline]
fn parse_packet(block: &[u8], at: usize) -> Option<(Packet<'_>, usize)> {
    // One bounds check for the whole header, then fixed-offset reads
    // (this runs once per captured packet).
    const HDR: usize = size_of::<Tpacket3Hdr>();
    let h: &[u8; HDR] = block.get(at..at.checked_add(HDR)?)?.try_into().ok()?;
    // Offsets come from the `#[repr(C)]` struct (whose size is asserted
    // against the kernel's), not from literals.
    let u32_at = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
    let next = u32_at(offset_of!(Tpacket3Hdr, next_offset)) as usize;
    let (sec, nsec) = (
        u32_at(offset_of!(Tpacket3Hdr, sec)),
        u32_at(offset_of!(Tpacket3Hdr, nsec)),
    );
    let snaplen = u32_at(offset_of!(Tpacket3Hdr, snaplen)) as usize;
    let len = u32_at(offset_of!(Tpacket3Hdr, len));
    let status = u32_at(offset_of!(Tpacket3Hdr, status));
    let mac = usize::from(u16_at(offset_of!(Tpacket3Hdr, mac)));
    let rx_hash = u32_at(offset_of!(Tpacket3Hdr, rxhash));
    let tci = u32_at(offset_of!(Tpacket3Hdr, vlan_tci)) as u16;
    let tpid = u16_at(offset_of!(Tpacket3Hdr, vlan_tpid));
    let data = block.get(at + mac..at + mac + snaplen)?;
    let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
            tpid
        } else {
            0x8100
        };
        (tpid, tci)
    });
    Some((
        Packet {
            // u64 arithmetic: a u32 second count times 10⁹ fits.
            ts_ns: i128::from(u64::from(sec) * 1_000_000_000 + u64::from(nsec)),
            wire_len: len,
            data,
            vlan,
            rx_hash,
        },
        next,
    ))
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `open`; no borrow
        // of it outlives `&mut self`.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u32, snaplen: u32, len: u32, status: u32, tci: u32, tpid: u16) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[0..4].copy_from_slice(&next.to_ne_bytes());
        h[4..8].copy_from_slice(&7u32.to_ne_bytes());
        h[8..12].copy_from_slice(&123u32.to_ne_bytes());
        h[12..16].copy_from_slice(&snaplen.to_ne_bytes());
        h[16..20].copy_from_slice(&len.to_ne_bytes());
        h[20..24].copy_from_slice(&status.to_ne_bytes());
        h[24..26].copy_from_slice(&48u16.to_ne_bytes());
        h[28..32].copy_from_slice(&0xabcdu32.to_ne_bytes());
        h[32..36].copy_from_slice(&tci.to_ne_bytes());
        h[36..38].copy_from_slice(&tpid.to_ne_bytes());
        h
    }

    #[test]
    fn parses_headers_and_puts_stripped_vlan_tags_back() {
        let mut block = header(0, 14, 60, TP_STATUS_VLAN_VALID, 0x2064, 0);
        let frame: Vec<u8> = (0..14).collect();
        block.extend_from_slice(&frame);
        let (p, next) = parse_packet(&block, 0).unwrap();
        assert_eq!(next, 0);
        assert_eq!(p.ts_ns, 7_000_000_123);
        assert_eq!(p.data, &frame[..]);
        assert_eq!(p.rx_hash, 0xabcd);
        assert_eq!(p.vlan, Some((0x8100, 0x2064)));
        let mut out = Vec::new();
        assert_eq!(p.frame_into(&mut out), 64);
        assert_eq!(&out[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(&out[..12], &frame[..12]);
        assert_eq!(&out[16..], &frame[12..]);
        // 802.1ad outer tag with its TPID reported.
        let b = header(
            0,
            14,
            60,
            TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID,
            5,
            0x88a8,
        );
        let mut b2 = b.clone();
        b2.extend_from_slice(&frame);
        assert_eq!(parse_packet(&b2, 0).unwrap().0.vlan, Some((0x88a8, 5)));
        // Data past the block end is refused, not read.
        assert!(parse_packet(&b, 0).is_none());
        assert!(parse_packet(&block, block.len() - 10).is_none());
    }

    proptest::proptest! {
        /// Whatever the block holds, parsing stays inside it: no panic,
        /// data borrowed from within the block, next offsets as read.
        #[test]
        fn any_block_bytes_parse_without_panicking(block in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                                                   at in 0usize..600) {
            if let Some((p, _next)) = parse_packet(&block, at) {
                let start = p.data.as_ptr() as usize - block.as_ptr() as usize;
                proptest::prop_assert!(start + p.data.len() <= block.len());
                let mut out = Vec::new();
                p.frame_into(&mut out);
                let tag = if p.vlan.is_some() && p.data.len() >= 12 { 4 } else { 0 };
                proptest::prop_assert_eq!(out.len(), p.data.len() + tag);
            }
        }
    }

    #[test]
    fn opening_a_missing_interface_names_it() {
        let e = PacketSocket::open("nonexistent9", &RingConfig::default()).unwrap_err();
        assert!(e.to_string().contains("nonexistent9"), "{e}");
    }
}
