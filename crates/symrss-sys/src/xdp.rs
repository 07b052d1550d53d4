//! AF_XDP capture: an XDP program that redirects each receive queue into
//! its AF_XDP socket (XSK), and the sockets as an engine [`Source`].
//!
//! Written in-house on raw `bpf(2)` and the `linux/if_xdp.h` uAPI (no
//! libbpf, no clang, nothing built in C): the program is six hand-assembled
//! instructions,
//!
//! ```text
//!   r2 = *(u32 *)(r1 + 16)        ; ctx->rx_queue_index
//!   r1 = map_fd ll                ; the XSKMAP (BPF_PSEUDO_MAP_FD)
//!   r3 = 2                        ; XDP_PASS when the queue has no socket
//!   call bpf_redirect_map         ; helper 51
//!   exit
//! ```
//!
//! loaded with `BPF_PROG_LOAD` and attached with `BPF_LINK_CREATE`, so it
//! is detached when its link's last descriptor closes — on exit, on every
//! error path, even when the process is killed. An XDP program another
//! tool attached is never replaced (the kernel refuses the link with
//! `EBUSY`, reported as such).
//!
//! Each socket owns its UMEM (frames of [`XdpConfig::frame_size`] bytes),
//! a fill ring that hands frames to the kernel and an RX ring the kernel
//! fills (`Documentation/networking/af_xdp.rst`): frames are read in place
//! and given back to the fill ring once handed over. AF_XDP carries no
//! receive timestamp: frames get the time they were read (`CLOCK_REALTIME`,
//! strictly increasing per socket), so the merge of the queues' workers
//! stays in read order.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use symrss_engine::source::{Frame, InputStats, Poll, Source};

use crate::packet::interface_index;

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;

/// `union bpf_attr` for `BPF_MAP_CREATE` (the fields used, zero after).
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    rest: [u32; 28],
}

/// `union bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
#[derive(Default)]
struct MapUpdate {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` (the leading fields).
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    rest: [u64; 4],
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const _: () = {
    assert!(size_of::<MapCreate>() == 128);
    assert!(size_of::<MapUpdate>() == 32);
    assert!(size_of::<ProgLoad>() == 72);
    assert!(size_of::<LinkCreate>() == 48);
    assert!(size_of::<Insn>() == 8);
    assert!(size_of::<libc::sockaddr_xdp>() == 16);
    assert!(size_of::<libc::xdp_umem_reg>() == 32);
    assert!(size_of::<libc::xdp_mmap_offsets>() == 128);
    assert!(size_of::<libc::xdp_statistics>() == 48);
    assert!(size_of::<libc::xdp_desc>() == 16);
};

/// One `bpf(2)` call; returns the new descriptor or 0.
fn bpf<T>(cmd: libc::c_int, attr: &mut T, what: &str) -> io::Result<RawFd> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` attribute block of
    // `size_of::<T>()` bytes, the layout `cmd` reads (asserted above); the
    // kernel reads at most that many bytes and may write results into it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => " (needs CAP_BPF and CAP_NET_ADMIN: run as root)",
            _ => "",
        };
        return Err(io::Error::new(e.kind(), format!("{what}: {e}{hint}")));
    }
    Ok(rc as RawFd)
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (in the driver) when the driver supports it, else generic.
    Auto,
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic receive path (`XDP_FLAGS_SKB_MODE`), any driver.
    Generic,
}

/// How a socket binds to its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpBind {
    /// Zero-copy when the driver supports it, else copy.
    Auto,
    /// Frames copied into the UMEM (`XDP_COPY`), any driver.
    Copy,
    /// Frames received into the UMEM itself (`XDP_ZEROCOPY`).
    ZeroCopy,
}

/// The redirect program attached to one interface, and its XSKMAP.
#[derive(Debug)]
pub struct XdpProgram {
    map: OwnedFd,
    _prog: OwnedFd,
    /// Closing it detaches the program.
    _link: OwnedFd,
    mode: XdpMode,
    interface: String,
}

impl XdpProgram {
    /// Loads the program with an XSKMAP of `queues` entries and attaches
    /// it to `interface` in `mode` (`Auto`: native, else generic).
    pub fn attach(interface: &str, queues: u32, mode: XdpMode) -> io::Result<Self> {
        let ifindex = interface_index(interface)?;
        let mut create = MapCreate {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: queues.max(1),
            ..MapCreate::default()
        };
        let map = owned(bpf(BPF_MAP_CREATE, &mut create, "BPF_MAP_CREATE (XSKMAP)")?);
        let insns = [
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 16,
                imm: 0,
            },
            Insn {
                code: 0x18,
                regs: BPF_PSEUDO_MAP_FD << 4 | 1,
                off: 0,
                imm: map.as_raw_fd(),
            },
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0,
            },
            Insn {
                code: 0xb7,
                regs: 0x03,
                off: 0,
                imm: XDP_PASS,
            },
            Insn {
                code: 0x85,
                regs: 0,
                off: 0,
                imm: BPF_FUNC_REDIRECT_MAP,
            },
            Insn {
                code: 0x95,
                regs: 0,
                off: 0,
                imm: 0,
            },
        ];
        let license = c"GPL";
        let mut name = [0u8; 16];
        name[..10].copy_from_slice(b"symrss_xsk");
        let mut load = ProgLoad {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_XDP,
            ..ProgLoad::default()
        };
        let prog = owned(bpf(
            BPF_PROG_LOAD,
            &mut load,
            "BPF_PROG_LOAD (XDP redirect)",
        )?);
        let tries: &[(XdpMode, u32)] = match mode {
            XdpMode::Auto => &[
                (XdpMode::Native, XDP_FLAGS_DRV_MODE),
                (XdpMode::Generic, XDP_FLAGS_SKB_MODE),
            ],
            XdpMode::Native => &[(XdpMode::Native, XDP_FLAGS_DRV_MODE)],
            XdpMode::Generic => &[(XdpMode::Generic, XDP_FLAGS_SKB_MODE)],
        };
        let mut last = None;
        for &(m, flags) in tries {
            let mut link = LinkCreate {
                prog_fd: prog.as_raw_fd() as u32,
                target_ifindex: ifindex as u32,
                attach_type: BPF_XDP,
                flags,
                ..LinkCreate::default()
            };
            match bpf(BPF_LINK_CREATE, &mut link, "BPF_LINK_CREATE") {
                Ok(fd) => {
                    return Ok(Self {
                        map,
                        _prog: prog,
                        _link: owned(fd),
                        mode: m,
                        interface: interface.to_string(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{interface}: an XDP program is already attached (by another tool?); \
                             symrss does not replace it ({e})"
                        ),
                    ));
                }
                Err(e) => last = Some((m, e)),
            }
        }
        let (m, e) = last.expect("at least one mode tried");
        Err(io::Error::new(
            e.kind(),
            format!("{interface}: cannot attach XDP in {m:?} mode: {e}"),
        ))
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Sends queue `queue`'s packets to `socket`.
    pub fn register(&self, queue: u32, socket: &XdpSocket) -> io::Result<()> {
        let key = queue;
        let value = socket.fd.as_raw_fd() as u32;
        let mut update = MapUpdate {
            map_fd: self.map.as_raw_fd() as u32,
            key: (&key as *const u32) as u64,
            value: (&value as *const u32) as u64,
            ..MapUpdate::default()
        };
        bpf(
            BPF_MAP_UPDATE_ELEM,
            &mut update,
            "BPF_MAP_UPDATE_ELEM (XSKMAP)",
        )
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.interface)))
    }
}

/// Sizes of a socket's UMEM and rings.
#[derive(Clone, Copy, Debug)]
pub struct XdpConfig {
    /// Frames in the UMEM (a power of two; half go to the fill ring).
    pub frames: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// Descriptors in the RX ring (a power of two).
    pub rx_ring: u32,
    /// How to bind.
    pub bind: XdpBind,
}

impl Default for XdpConfig {
    /// 16,384 frames of 4 KiB (64 MiB of UMEM per socket, half of it in
    /// the fill ring) and an 8,192-descriptor RX ring: about 11 ms of
    /// 64-byte frames at 0.75 Mpps before the kernel drops — what a
    /// worker descheduled on a busy 2-vCPU machine needed (4,096 frames
    /// dropped 17–23 % at that rate, BENCHMARKS.md).
    fn default() -> Self {
        Self {
            frames: 16_384,
            frame_size: 4096,
            rx_ring: 8192,
            bind: XdpBind::Auto,
        }
    }
}

/// An anonymous or socket mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, offset: u64, what: &str) -> io::Result<Self> {
        let (flags, fd) = if fd < 0 {
            (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            )
        } else {
            (libc::MAP_SHARED | libc::MAP_POPULATE, fd)
        };
        // SAFETY: a fresh mapping of `len` bytes (anonymous, or the ring
        // of socket `fd` at the uAPI page offset); the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap {what}: {e}")));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing
        // borrows the mapping once its owner is dropped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// One single-producer/single-consumer ring shared with the kernel.
#[derive(Debug)]
struct Ring {
    /// Keeps the ring mapped.
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
}

impl Ring {
    fn new(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry: usize,
        pgoff: u64,
        what: &str,
    ) -> io::Result<Self> {
        let len = off.desc as usize + entries as usize * entry;
        let map = Mapping::new(fd, len, pgoff, what)?;
        // SAFETY: the kernel's offsets lie inside the mapping it sized
        // (`desc + entries * entry` bytes), and the producer, consumer and
        // flags words are u32s aligned by the kernel.
        let at = |o: u64| unsafe { map.ptr.add(o as usize) };
        Ok(Self {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            desc: at(off.desc),
            mask: entries - 1,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping owned by `self`.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// One AF_XDP socket bound to one queue, with its UMEM.
#[derive(Debug)]
pub struct XdpSocket {
    fd: OwnedFd,
    umem: Mapping,
    rx: Ring,
    fill: Ring,
    _completion: Ring,
    frame_size: u32,
    bind: XdpBind,
    /// Frames read but not yet given back to the fill ring.
    returned: Vec<u64>,
}

// SAFETY: the socket owns its mappings and ring pointers exclusively; it
// is used by one thread at a time (moved into its worker), and the
// kernel's side of each ring is synchronised through the ring's atomics.
unsafe impl Send for XdpSocket {}

impl XdpSocket {
    /// Opens a socket on `interface`'s receive queue `queue` (register it
    /// with the interface's [`XdpProgram`] to receive).
    pub fn open(interface: &str, queue: u32, cfg: &XdpConfig) -> io::Result<Self> {
        let ifindex = interface_index(interface)?;
        let frames = cfg.frames.next_power_of_two().max(64);
        let rx_entries = cfg.rx_ring.next_power_of_two().max(64);
        let fill_entries = (frames / 2).next_power_of_two();
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("AF_XDP socket: {e}")));
        }
        let fd = owned(fd);
        let umem_len = frames as usize * cfg.frame_size as usize;
        let umem = Mapping::new(-1, umem_len, 0, "UMEM")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        xdp_setsockopt(&fd, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        xdp_setsockopt(
            &fd,
            libc::XDP_UMEM_FILL_RING,
            &fill_entries,
            "XDP_UMEM_FILL_RING",
        )?;
        xdp_setsockopt(
            &fd,
            libc::XDP_UMEM_COMPLETION_RING,
            &64u32,
            "XDP_UMEM_COMPLETION_RING",
        )?;
        xdp_setsockopt(&fd, libc::XDP_RX_RING, &rx_entries, "XDP_RX_RING")?;
        // SAFETY: zeroed plain-data struct the kernel fills.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is a live, writable `xdp_mmap_offsets` and `len`
        // its size.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("XDP_MMAP_OFFSETS: {e}")));
        }
        let raw = fd.as_raw_fd();
        let rx = Ring::new(
            raw,
            &off.rx,
            rx_entries,
            size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING as u64,
            "RX ring",
        )?;
        let fill = Ring::new(
            raw,
            &off.fr,
            fill_entries,
            8,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            "fill ring",
        )?;
        let completion = Ring::new(
            raw,
            &off.cr,
            64,
            8,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "completion ring",
        )?;
        let tries: &[(XdpBind, u16)] = match cfg.bind {
            XdpBind::Auto => &[
                (XdpBind::ZeroCopy, libc::XDP_ZEROCOPY),
                (XdpBind::Copy, libc::XDP_COPY),
            ],
            XdpBind::ZeroCopy => &[(XdpBind::ZeroCopy, libc::XDP_ZEROCOPY)],
            XdpBind::Copy => &[(XdpBind::Copy, libc::XDP_COPY)],
        };
        let mut bound = None;
        let mut last = None;
        for &(b, flag) in tries {
            let addr = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: flag | libc::XDP_USE_NEED_WAKEUP,
                sxdp_ifindex: ifindex as u32,
                sxdp_queue_id: queue,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: `addr` is a live `sockaddr_xdp` of the size passed.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_xdp).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                bound = Some(b);
                break;
            }
            last = Some((b, io::Error::last_os_error()));
        }
        let Some(bind) = bound else {
            let (b, e) = last.expect("one bind tried");
            return Err(io::Error::new(
                e.kind(),
                format!("{interface} queue {queue}: {b:?} bind refused by the driver: {e}"),
            ));
        };
        let mut socket = Self {
            fd,
            umem,
            rx,
            fill,
            _completion: completion,
            frame_size: cfg.frame_size,
            bind,
            returned: Vec::with_capacity(rx_entries as usize),
        };
        // The first half of the frames go to the kernel now.
        socket.returned = (0..fill_entries as u64)
            .map(|i| i * u64::from(cfg.frame_size))
            .collect();
        socket.refill();
        Ok(socket)
    }

    /// How the socket is bound.
    pub fn bind_mode(&self) -> XdpBind {
        self.bind
    }

    /// Gives the frames read so far back to the kernel.
    fn refill(&mut self) {
        if self.returned.is_empty() {
            return;
        }
        let ring = &self.fill;
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons = ring.consumer().load(Ordering::Acquire);
        let free = (ring.mask + 1) - prod.wrapping_sub(cons);
        let n = (free as usize).min(self.returned.len());
        for (i, addr) in self.returned.drain(..n).enumerate() {
            let slot = (prod.wrapping_add(i as u32) & ring.mask) as usize;
            // SAFETY: `slot` < ring entries; each fill entry is a u64 at
            // `desc + 8 * slot`, inside the mapping; the kernel reads it
            // only after the producer store below.
            unsafe { ring.desc.cast::<u64>().add(slot).write(addr) };
        }
        ring.producer()
            .store(prod.wrapping_add(n as u32), Ordering::Release);
    }

    /// Hands every frame the RX ring holds to `on_frame` (in place), then
    /// gives the frames back; returns how many.
    pub fn recv(&mut self, mut on_frame: impl FnMut(&[u8])) -> usize {
        let ring = &self.rx;
        let cons = ring.consumer().load(Ordering::Relaxed);
        let prod = ring.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            let slot = (cons.wrapping_add(i) & ring.mask) as usize;
            // SAFETY: `slot` < ring entries; descriptors are written by the
            // kernel before its producer store (acquired above).
            let d = unsafe { ring.desc.cast::<libc::xdp_desc>().add(slot).read() };
            let (addr, len) = (d.addr as usize, d.len as usize);
            if addr + len <= self.umem.len && len <= self.frame_size as usize {
                // SAFETY: inside the UMEM (checked); the kernel does not
                // touch the frame until it is back in the fill ring.
                let data = unsafe { std::slice::from_raw_parts(self.umem.ptr.add(addr), len) };
                on_frame(data);
            }
            // Back to the start of its chunk (the kernel may add headroom).
            self.returned
                .push(d.addr - d.addr % u64::from(self.frame_size));
        }
        ring.consumer().store(prod, Ordering::Release);
        self.refill();
        if n == 0 && self.fill.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking recvfrom on our socket
            // only wakes the kernel's RX processing.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
        n as usize
    }

    /// The kernel's counters (`XDP_STATISTICS`).
    pub fn stats(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: zeroed plain-data struct the kernel fills.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `s` is live and writable, `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    /// Waits up to `timeout_ms` for frames.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

fn xdp_setsockopt<T>(fd: &OwnedFd, name: libc::c_int, value: &T, what: &str) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes, the layout
    // the option reads (u32 ring sizes, `xdp_umem_reg`).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;

/// A worker's AF_XDP sockets (one per interface) as an engine source.
#[derive(Debug)]
pub struct XdpRings {
    sockets: Vec<XdpSocket>,
    stats: Vec<InputStats>,
    /// Per input: (received by the filter, dropped by the kernel).
    kernel: Vec<(u64, u64)>,
    /// Filter run in user space (AF_XDP has no socket filter).
    filter: Vec<(u16, u8, u8, u32)>,
    last_ts: i128,
    /// While frames keep coming: when the next read may start, and the
    /// interval between reads (adapted to the rate, see the `Source` impl).
    next_read: Option<std::time::Instant>,
    interval: std::time::Duration,
    /// Descriptors of the smallest RX ring.
    ring: usize,
}

/// Bounds of the sleep between reads while frames keep coming. An AF_XDP
/// socket is readable again with the very next frame, and on a VM every
/// wake-up costs microseconds (measured on veth: ~2.3 µs per packet at
/// 0.3 Mpps when woken per batch the kernel delivers, BENCHMARKS.md); so
/// while frames come, the worker sleeps between reads, as long as lets a
/// read find about a quarter of the RX ring (at most 1 ms: the latency of
/// an AF_PACKET block).
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_micros(10);
const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

impl XdpRings {
    /// The sockets, each named after its interface, with `filter` (a
    /// classic BPF program, empty for none) run on every frame.
    pub fn new(sockets: Vec<(String, XdpSocket)>, filter: Vec<(u16, u8, u8, u32)>) -> Self {
        let stats = sockets
            .iter()
            .map(|(name, _)| InputStats {
                name: name.clone(),
                linktype: Some(LINKTYPE_ETHERNET),
                ..InputStats::default()
            })
            .collect();
        let n = sockets.len();
        let ring = sockets
            .iter()
            .map(|(_, s)| s.rx.mask as usize + 1)
            .min()
            .unwrap_or(4096);
        Self {
            sockets: sockets.into_iter().map(|(_, s)| s).collect(),
            stats,
            kernel: vec![(0, 0); n],
            filter,
            last_ts: 0,
            next_read: None,
            interval: MIN_INTERVAL,
            ring,
        }
    }

    /// Waits up to `timeout_ms` for frames on any socket.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        match self.sockets.as_slice() {
            [one] => one.wait(timeout_ms),
            _ => {
                std::thread::sleep(std::time::Duration::from_millis(
                    timeout_ms.clamp(0, 10) as u64
                ));
                Ok(())
            }
        }
    }

    /// Refreshes the counters, as AF_PACKET's mean them: received by the
    /// filter (frames that passed it, plus what the kernel dropped before
    /// they could be read) and dropped by the kernel (`rx_dropped +
    /// rx_ring_full`; `rx_fill_ring_empty_descs` is not added: a frame
    /// dropped for want of a fill entry counts in `rx_dropped` too).
    pub fn read_kernel_stats(&mut self) {
        for (i, s) in self.sockets.iter().enumerate() {
            if let Ok(st) = s.stats() {
                let drops = st.rx_dropped + st.rx_ring_full;
                self.kernel[i] = (self.stats[i].frames + drops, drops);
            }
        }
    }

    /// Per input: (received by the filter, dropped by the kernel).
    pub fn kernel_counters(&self) -> &[(u64, u64)] {
        &self.kernel
    }
}

impl Source for XdpRings {
    /// While frames keep coming, a read starts no sooner than the interval
    /// after the last one (sleeping the rest): the interval doubles while
    /// reads find less than a sixteenth of the RX ring and halves when
    /// they find more than a quarter, between 10 µs and 1 ms. A read that finds nothing ends the spell (the
    /// capture then waits in `poll(2)` for the next frame).
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll {
        if let Some(next) = self.next_read {
            let now = std::time::Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let mut got = 0;
        let Self {
            sockets,
            stats,
            filter,
            last_ts,
            ..
        } = self;
        for (input, socket) in sockets.iter_mut().enumerate() {
            let mut n = 0u64;
            socket.recv(|data| {
                if !filter.is_empty() && crate::bpf::run(filter, data) == 0 {
                    return;
                }
                // Read order, strictly increasing times.
                *last_ts = (*last_ts + 1).max(now);
                n += 1;
                on_frame(Frame {
                    ts_ns: *last_ts,
                    orig_len: data.len() as u32,
                    linktype: LINKTYPE_ETHERNET,
                    input,
                    data,
                });
            });
            stats[input].frames += n;
            got += n;
        }
        let got = got as usize;
        if got == 0 {
            self.next_read = None;
            return Poll::Idle;
        }
        if got > self.ring / 4 {
            self.interval = (self.interval / 2).max(MIN_INTERVAL);
        } else if got < self.ring / 16 {
            self.interval = (self.interval * 2).min(MAX_INTERVAL);
        }
        self.next_read = Some(std::time::Instant::now() + self.interval);
        Poll::Ready(got)
    }

    fn inputs(&self) -> &[InputStats] {
        &self.stats
    }
}
