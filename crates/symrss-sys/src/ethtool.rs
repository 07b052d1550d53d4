//! The ethtool ioctl interface for RSS: driver info, channels, the RSS key,
//! indirection table, hash function and input transform, and per-flow-type
//! hash fields.
//!
//! Requests go through `ioctl(fd, SIOCETHTOOL, &ifreq)` with `ifr_data`
//! pointing at the command struct, exactly as `ethtool(8)` does
//! (`include/uapi/linux/ethtool.h`, `net/ethtool/ioctl.c`):
//!
//! | request | struct | used for |
//! |---|---|---|
//! | `ETHTOOL_GDRVINFO` | `ethtool_drvinfo` (196 B) | driver, firmware, bus |
//! | `ETHTOOL_GCHANNELS` / `SCHANNELS` | `ethtool_channels` (36 B) | queue counts |
//! | `ETHTOOL_GRSSH` / `SRSSH` | `ethtool_rxfh` (24 B) + `u32` table + key | key, RETA, hfunc, `input_xfrm` |
//! | `ETHTOOL_GRXFH` / `SRXFH` | `ethtool_rxnfc` (192 B) | hash fields of a flow type |
//! | `ETHTOOL_GRXRINGS` | `ethtool_rxnfc` | RX ring count |
//!
//! Why in-house: no maintained Rust crate wraps these requests (the
//! `ethtool` crate speaks the generic-netlink interface, which Debian 12's
//! kernel headers and several drivers' RSS paths do not cover the same
//! way); the ioctls are a stable kernel ABI of five fixed structs.
//!
//! `input_xfrm` (Linux ≥ 6.8) occupies the former `rsvd8[0]` byte of
//! `ethtool_rxfh`, so the same ioctl reads and sets it; older kernels
//! report 0 there (no transform).
//!
//! Hash-field bits and flow types are passed as the kernel's numbers; their
//! meaning (`RXH_*`, `TCP_V4_FLOW`, ...) lives with the planning logic in
//! `symrss-engine::nic`.
//!
//! The request bytes are built by pure functions ([`rxfh_set_request`],
//! [`rxnfc_request`]) so tests can compare them with what `ethtool(8)`
//! passes for the same change.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SIOCETHTOOL`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// `ETHTOOL_GDRVINFO`.
pub const GDRVINFO: u32 = 0x03;
/// `ETHTOOL_GRXFH`: get the hash fields of a flow type.
pub const GRXFH: u32 = 0x29;
/// `ETHTOOL_SRXFH`: set the hash fields of a flow type.
pub const SRXFH: u32 = 0x2a;
/// `ETHTOOL_GRXRINGS`: number of RX rings.
pub const GRXRINGS: u32 = 0x2d;
/// `ETHTOOL_GCHANNELS`.
pub const GCHANNELS: u32 = 0x3c;
/// `ETHTOOL_SCHANNELS`.
pub const SCHANNELS: u32 = 0x3d;
/// `ETHTOOL_GRSSH`: get key, indirection table, hash function.
pub const GRSSH: u32 = 0x46;
/// `ETHTOOL_SRSSH`: set them.
pub const SRSSH: u32 = 0x47;

/// `ETH_RSS_HASH_TOP` (Toeplitz), bit 0 of the hash-function bitmap.
pub const HFUNC_TOEPLITZ: u8 = 1 << 0;
/// `ETH_RSS_HASH_XOR`.
pub const HFUNC_XOR: u8 = 1 << 1;
/// `ETH_RSS_HASH_CRC32`.
pub const HFUNC_CRC32: u8 = 1 << 2;
/// `ETH_RSS_HASH_NO_CHANGE`.
pub const HFUNC_NO_CHANGE: u8 = 0;
/// `RXH_XFRM_SYM_XOR`.
pub const XFRM_SYM_XOR: u8 = 1 << 0;
/// `RXH_XFRM_SYM_OR_XOR`.
pub const XFRM_SYM_OR_XOR: u8 = 1 << 1;
/// `RXH_XFRM_NO_CHANGE`.
pub const XFRM_NO_CHANGE: u8 = 0xff;
/// `ETH_RXFH_INDIR_NO_CHANGE`.
pub const INDIR_NO_CHANGE: u32 = 0xffff_ffff;

// ---- kernel structs (include/uapi/linux/ethtool.h) ----

/// `struct ethtool_drvinfo`.
#[repr(C)]
#[derive(Clone, Copy)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}
const _: () = assert!(size_of::<EthtoolDrvinfo>() == 196);

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    cmd: u32,
    /// Most RX-only channels.
    pub max_rx: u32,
    /// Most TX-only channels.
    pub max_tx: u32,
    /// Most other channels.
    pub max_other: u32,
    /// Most combined channels.
    pub max_combined: u32,
    /// RX-only channels.
    pub rx_count: u32,
    /// TX-only channels.
    pub tx_count: u32,
    /// Other channels.
    pub other_count: u32,
    /// Combined (RX+TX) channels.
    pub combined_count: u32,
}
const _: () = assert!(size_of::<Channels>() == 36);

impl Channels {
    /// Queues that receive: combined plus RX-only.
    pub fn rx_queues(&self) -> u32 {
        self.combined_count + self.rx_count
    }

    /// The struct as passed to the kernel.
    pub fn to_bytes(&self) -> [u8; 36] {
        let words = [
            self.cmd,
            self.max_rx,
            self.max_tx,
            self.max_other,
            self.max_combined,
            self.rx_count,
            self.tx_count,
            self.other_count,
            self.combined_count,
        ];
        let mut b = [0u8; 36];
        for (chunk, w) in b.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        b
    }
}

/// `struct ethtool_rxfh` without its flexible `rss_config[]`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EthtoolRxfh {
    cmd: u32,
    rss_context: u32,
    indir_size: u32,
    key_size: u32,
    hfunc: u8,
    input_xfrm: u8,
    rsvd8: [u8; 2],
    rsvd32: u32,
}
const RXFH_HEADER: usize = 24;
const _: () = assert!(size_of::<EthtoolRxfh>() == RXFH_HEADER);

/// `struct ethtool_rxnfc` (the flow spec and rule fields are unused here
/// and kept as zero bytes of the right size and alignment).
#[repr(C)]
#[derive(Clone, Copy)]
struct EthtoolRxnfc {
    cmd: u32,
    flow_type: u32,
    data: u64,
    /// `struct ethtool_rx_flow_spec`: 168 bytes, 8-aligned.
    fs: [u64; 21],
    rule_cnt: u32,
    pad: u32,
}
const RXNFC_SIZE: usize = 192;
const _: () = assert!(size_of::<EthtoolRxnfc>() == RXNFC_SIZE);

/// `struct ifreq` with the `ifr_data` member of its union.
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    pad: [u8; 16],
}
const _: () = assert!(size_of::<IfreqData>() == 40);

/// The RSS state of a device (`ETHTOOL_GRSSH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// Indirection table (queue per entry); empty if the driver has none.
    pub indir: Vec<u32>,
    /// Hash key; empty if the driver does not expose one.
    pub key: Vec<u8>,
    /// Hash function bitmap (`HFUNC_*`; 0 if the driver does not say).
    pub hfunc: u8,
    /// Input transform bitmap (`XFRM_*`; 0 = none or a kernel before 6.8).
    pub input_xfrm: u8,
}

/// Driver identity (`ETHTOOL_GDRVINFO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverInfo {
    /// Driver name (`ixgbe`, `veth`, ...).
    pub driver: String,
    /// Driver version.
    pub version: String,
    /// Firmware version.
    pub firmware: String,
    /// Bus address.
    pub bus: String,
}

/// What an ethtool request failed with.
#[derive(Debug)]
pub struct EthtoolError {
    /// Interface.
    pub interface: String,
    /// The request (`ETHTOOL_GRSSH`, ...).
    pub request: &'static str,
    /// The OS error.
    pub source: io::Error,
}

impl EthtoolError {
    /// There is no such interface.
    pub fn is_no_device(&self) -> bool {
        self.source.raw_os_error() == Some(libc::ENODEV)
    }

    /// The driver does not implement this request.
    pub fn is_unsupported(&self) -> bool {
        self.source.raw_os_error() == Some(libc::EOPNOTSUPP)
    }
}

impl EthtoolError {
    /// Why, in words (without the interface and the request).
    pub fn reason(&self) -> String {
        match self.source.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "not supported by this device's driver".to_string(),
            Some(libc::EPERM) => {
                "operation not permitted (needs CAP_NET_ADMIN: run as root)".to_string()
            }
            Some(libc::ENODEV) => "no such network interface".to_string(),
            _ => self.source.to_string(),
        }
    }
}

impl std::fmt::Display for EthtoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} failed: {}",
            self.interface,
            self.request,
            self.reason()
        )
    }
}

impl std::error::Error for EthtoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The request bytes of `ETHTOOL_SRSSH`: header, then the table (`u32`
/// each), then the key. `indir: None` leaves the table unchanged
/// (`ETH_RXFH_INDIR_NO_CHANGE`), `key: None` the key (`key_size` 0).
pub fn rxfh_set_request(indir: Option<&[u32]>, key: Option<&[u8]>, hfunc: u8, xfrm: u8) -> Vec<u8> {
    let indir_size = indir.map_or(INDIR_NO_CHANGE, |t| t.len() as u32);
    let key_size = key.map_or(0, |k| k.len() as u32);
    let mut b =
        Vec::with_capacity(RXFH_HEADER + indir.map_or(0, |t| 4 * t.len()) + key_size as usize);
    for w in [SRSSH, 0, indir_size, key_size] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.extend_from_slice(&[hfunc, xfrm, 0, 0]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    for q in indir.unwrap_or(&[]) {
        b.extend_from_slice(&q.to_ne_bytes());
    }
    b.extend_from_slice(key.unwrap_or(&[]));
    b
}

/// The request bytes of an `ethtool_rxnfc` command with only `flow_type`
/// and `data` set (`ETHTOOL_GRXFH`, `SRXFH`, `GRXRINGS`).
pub fn rxnfc_request(cmd: u32, flow_type: u32, data: u64) -> [u8; RXNFC_SIZE] {
    let mut b = [0u8; RXNFC_SIZE];
    b[..4].copy_from_slice(&cmd.to_ne_bytes());
    b[4..8].copy_from_slice(&flow_type.to_ne_bytes());
    b[8..16].copy_from_slice(&data.to_ne_bytes());
    b
}

/// Native-endian `u32` number `i` of a request buffer.
fn word(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

/// The `data` field (bytes 8..16) of an `ethtool_rxnfc` reply.
fn rxnfc_data(b: &[u8]) -> u64 {
    u64::from_ne_bytes(b[8..16].try_into().expect("8 bytes"))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// An ethtool handle on one interface.
#[derive(Debug)]
pub struct Ethtool {
    fd: OwnedFd,
    name: [u8; libc::IFNAMSIZ],
    interface: String,
}

impl Ethtool {
    /// A handle for `interface` (a datagram socket to carry the ioctls).
    pub fn open(interface: &str) -> io::Result<Self> {
        if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{interface}` is not a valid interface name (1–15 bytes)"),
            ));
        }
        let mut name = [0u8; libc::IFNAMSIZ];
        name[..interface.len()].copy_from_slice(interface.as_bytes());
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd,
            name,
            interface: interface.to_string(),
        })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Runs one request on `buf` (the command struct, first word = cmd).
    fn request(&self, request: &'static str, buf: &mut [u8]) -> Result<(), EthtoolError> {
        debug_assert!(buf.len() >= 4);
        let mut ifr = IfreqData {
            name: self.name,
            data: buf.as_mut_ptr().cast(),
            pad: [0; 16],
        };
        // SAFETY: `ifr` is a valid `struct ifreq` whose `ifr_data` points at
        // `buf`, which is live, writable and as large as the command struct
        // the kernel reads and writes for this request (callers size it
        // from the kernel's struct definitions and the sizes it reported).
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if rc < 0 {
            return Err(EthtoolError {
                interface: self.interface.clone(),
                request,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Driver, version, firmware and bus.
    pub fn driver_info(&self) -> Result<DriverInfo, EthtoolError> {
        let mut buf = [0u8; size_of::<EthtoolDrvinfo>()];
        buf[..4].copy_from_slice(&GDRVINFO.to_ne_bytes());
        self.request("ETHTOOL_GDRVINFO", &mut buf)?;
        let field = |at: usize| c_string(&buf[at..at + 32]);
        Ok(DriverInfo {
            driver: field(4),
            version: field(36),
            firmware: field(68),
            bus: field(100),
        })
    }

    /// Channel counts.
    pub fn channels(&self) -> Result<Channels, EthtoolError> {
        let mut buf = [0u8; 36];
        buf[..4].copy_from_slice(&GCHANNELS.to_ne_bytes());
        self.request("ETHTOOL_GCHANNELS", &mut buf)?;
        Ok(Channels {
            cmd: GCHANNELS,
            max_rx: word(&buf, 1),
            max_tx: word(&buf, 2),
            max_other: word(&buf, 3),
            max_combined: word(&buf, 4),
            rx_count: word(&buf, 5),
            tx_count: word(&buf, 6),
            other_count: word(&buf, 7),
            combined_count: word(&buf, 8),
        })
    }

    /// Sets the channel counts (as read from [`Ethtool::channels`] and
    /// changed).
    pub fn set_channels(&self, channels: &Channels) -> Result<(), EthtoolError> {
        let mut c = *channels;
        c.cmd = SCHANNELS;
        let mut buf = c.to_bytes();
        self.request("ETHTOOL_SCHANNELS", &mut buf)
    }

    /// Number of RX rings (`ETHTOOL_GRXRINGS`).
    pub fn rx_rings(&self) -> Result<u64, EthtoolError> {
        let mut buf = rxnfc_request(GRXRINGS, 0, 0);
        self.request("ETHTOOL_GRXRINGS", &mut buf)?;
        Ok(rxnfc_data(&buf))
    }

    /// Key, indirection table, hash function and input transform.
    pub fn rss(&self) -> Result<RssConfig, EthtoolError> {
        // First call: the sizes.
        let mut head = [0u8; RXFH_HEADER];
        head[..4].copy_from_slice(&GRSSH.to_ne_bytes());
        self.request("ETHTOOL_GRSSH", &mut head)?;
        let (indir_size, key_size) = (word(&head, 2) as usize, word(&head, 3) as usize);
        if indir_size > 1 << 16 || key_size > 1 << 10 {
            return Err(EthtoolError {
                interface: self.interface.clone(),
                request: "ETHTOOL_GRSSH",
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("implausible sizes: table {indir_size}, key {key_size}"),
                ),
            });
        }
        // Second call: the contents.
        let mut buf = vec![0u8; RXFH_HEADER + 4 * indir_size + key_size];
        buf[..4].copy_from_slice(&GRSSH.to_ne_bytes());
        buf[8..12].copy_from_slice(&(indir_size as u32).to_ne_bytes());
        buf[12..16].copy_from_slice(&(key_size as u32).to_ne_bytes());
        self.request("ETHTOOL_GRSSH", &mut buf)?;
        let indir = (0..indir_size)
            .map(|i| word(&buf[RXFH_HEADER..], i))
            .collect();
        let key = buf[RXFH_HEADER + 4 * indir_size..].to_vec();
        Ok(RssConfig {
            indir,
            key,
            hfunc: buf[16],
            input_xfrm: buf[17],
        })
    }

    /// Sets the key and/or table, hash function and input transform (see
    /// [`rxfh_set_request`]).
    pub fn set_rss(
        &self,
        indir: Option<&[u32]>,
        key: Option<&[u8]>,
        hfunc: u8,
        xfrm: u8,
    ) -> Result<(), EthtoolError> {
        let mut buf = rxfh_set_request(indir, key, hfunc, xfrm);
        self.request("ETHTOOL_SRSSH", &mut buf)
    }

    /// Hash fields (`RXH_*` bits) of a flow type (`TCP_V4_FLOW`, ...).
    pub fn flow_hash(&self, flow_type: u32) -> Result<u64, EthtoolError> {
        let mut buf = rxnfc_request(GRXFH, flow_type, 0);
        self.request("ETHTOOL_GRXFH", &mut buf)?;
        Ok(rxnfc_data(&buf))
    }

    /// Sets the hash fields of a flow type.
    pub fn set_flow_hash(&self, flow_type: u32, fields: u64) -> Result<(), EthtoolError> {
        let mut buf = rxnfc_request(SRXFH, flow_type, fields);
        self.request("ETHTOOL_SRXFH", &mut buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_request_layout_matches_the_kernel_struct() {
        let key = [0x6d, 0x5a, 0x6d, 0x5a];
        let b = rxfh_set_request(
            Some(&[0, 1, 2, 3, 0, 1, 2, 3]),
            Some(&key),
            HFUNC_TOEPLITZ,
            0,
        );
        assert_eq!(b.len(), RXFH_HEADER + 8 * 4 + 4);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), SRSSH);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 8);
        assert_eq!(u32::from_ne_bytes(b[12..16].try_into().unwrap()), 4);
        assert_eq!(b[16], HFUNC_TOEPLITZ);
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), 1);
        assert_eq!(&b[b.len() - 4..], &key);
        let keep = rxfh_set_request(None, None, HFUNC_NO_CHANGE, XFRM_SYM_XOR);
        assert_eq!(keep.len(), RXFH_HEADER);
        assert_eq!(
            u32::from_ne_bytes(keep[8..12].try_into().unwrap()),
            INDIR_NO_CHANGE
        );
        assert_eq!(keep[17], XFRM_SYM_XOR);
    }

    #[test]
    fn bad_interface_names_are_rejected_before_any_ioctl() {
        assert!(Ethtool::open("").is_err());
        assert!(Ethtool::open("a-name-that-is-too-long").is_err());
    }

    #[test]
    fn loopback_answers_driver_info_or_a_clear_error() {
        // `lo` exists in every network namespace; its driver has no RSS.
        let e = Ethtool::open("lo").unwrap();
        match e.rss() {
            Ok(_) => panic!("loopback has no RSS"),
            Err(err) => {
                assert!(err.is_unsupported(), "{err}");
                assert!(err.to_string().contains("not supported"), "{err}");
            }
        }
        assert!(
            Ethtool::open("nonexistent9")
                .unwrap()
                .driver_info()
                .is_err()
        );
    }
}
