//! TAP interfaces as capture outputs: each queue becomes a network
//! interface (`ids-q0`, ...) whose received traffic is the queue, so any
//! AF_PACKET tool (tcpdump, Suricata, Zeek, Snort) captures it as if it
//! were a NIC queue (`Documentation/networking/tuntap.rst`).
//!
//! The interface has no address and the host stack is kept off it
//! ([`netif::quiet`]: no IPv6, IPv4 reverse-path filtering, no ARP), so
//! it neither answers nor routes what is written. It disappears when the
//! handle is dropped. Needs CAP_NET_ADMIN. One `write(2)` per frame: the
//! `veth` output ([`crate::veth`]) hands many frames per system call.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use crate::netif::{self, IfreqFlags};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// An open TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates TAP interface `name` and brings it up.
    pub fn create(name: &str) -> io::Result<Self> {
        let mut ifr = IfreqFlags::new(name, IFF_TAP | IFF_NO_PI)?;
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
        netif::quiet(name)?;
        netif::up(name)?;
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
