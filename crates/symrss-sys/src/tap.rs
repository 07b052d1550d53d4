//! TAP interfaces as capture outputs: each queue becomes a network
//! interface (`ids-q0`, ...) whose received traffic is the queue, so any
//! AF_PACKET tool (tcpdump, Suricata, Zeek, Snort) captures it as if it
//! were a NIC queue (`Documentation/networking/tuntap.rst`).
//!
//! The interface has no address and IPv6 is disabled on it, so the host
//! stack does not answer or route what is written: frames not addressed
//! to the TAP's own MAC are "other host" frames the IP layer drops. It
//! disappears when the handle is dropped. Needs CAP_NET_ADMIN.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` with the `ifr_flags` member of its union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}
const _: () = assert!(size_of::<IfreqFlags>() == 40);

/// An open TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

fn name_bytes(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/', ' ']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a valid interface name (1–15 bytes)"),
        ));
    }
    let mut b = [0u8; libc::IFNAMSIZ];
    b[..name.len()].copy_from_slice(name.as_bytes());
    Ok(b)
}

impl Tap {
    /// Creates TAP interface `name` and brings it up.
    pub fn create(name: &str) -> io::Result<Self> {
        let mut ifr = IfreqFlags {
            name: name_bytes(name)?,
            flags: IFF_TAP | IFF_NO_PI,
            pad: [0; 22],
        };
        // SAFETY: open(2) with a NUL-terminated constant path.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("/dev/net/tun: {e}")));
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr`
        // is (size asserted above).
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (needs CAP_NET_ADMIN: run as root)"
            } else {
                ""
            };
            return Err(io::Error::new(
                e.kind(),
                format!("creating TAP {name}: {e}{hint}"),
            ));
        }
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        set_up(name)?;
        Ok(Self {
            file,
            name: name.to_string(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Injects one frame (the interface receives it).
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = self.file.write(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to TAP",
            ));
        }
        Ok(())
    }
}

/// Sets IFF_UP on an interface.
fn set_up(name: &str) -> io::Result<()> {
    let mut ifr = IfreqFlags {
        name: name_bytes(name)?,
        flags: 0,
        pad: [0; 22],
    };
    // SAFETY: plain socket(2) call; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { File::from_raw_fd(fd) };
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write one `struct ifreq`.
    let rc = unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            -1
        } else {
            ifr.flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr)
        }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("bringing {name} up: {e}")));
    }
    Ok(())
}
