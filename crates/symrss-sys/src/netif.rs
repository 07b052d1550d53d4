//! Interfaces symrss creates as outputs (TAP, veth): names, flags, and
//! keeping the host stack off them.
//!
//! An output interface carries copies of other hosts' traffic, so the
//! host must neither answer nor route what arrives on it. [`quiet`]
//! makes it so before the interface comes up: IPv6 off (no router
//! solicitation, MLD or DAD on link-up, nothing of IPv6 processed),
//! IPv4 strict reverse-path filtering (no route points at the interface,
//! so every IPv4 packet arriving on it is a martian the kernel drops —
//! including broadcast and multicast, which `pkt_type` alone would let
//! in; the kernel applies the larger of this and `conf/all/rp_filter`, so
//! a host set to loose filtering, 2, filters loosely here too), and
//! [`up`] sets `IFF_NOARP` (ARP requests are not answered from
//! the host's other addresses). Packet sockets (tcpdump, Suricata) see
//! every frame all the same: the kernel hands frames to them before the
//! protocol handlers (`__netif_receive_skb_core`).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// `struct ifreq` with the `ifr_flags` member of its union.
#[repr(C)]
pub(crate) struct IfreqFlags {
    pub(crate) name: [u8; libc::IFNAMSIZ],
    pub(crate) flags: libc::c_short,
    pad: [u8; 22],
}
const _: () = assert!(size_of::<IfreqFlags>() == 40);

impl IfreqFlags {
    /// A request naming `name` with `flags`.
    pub(crate) fn new(name: &str, flags: libc::c_short) -> io::Result<Self> {
        Ok(Self {
            name: name_bytes(name)?,
            flags,
            pad: [0; 22],
        })
    }
}

/// `name` as the kernel's NUL-padded interface name (1–15 bytes).
pub(crate) fn name_bytes(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
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

/// Keeps the host stack off interface `name` (see the module docs). Call
/// before [`up`]. Best effort for IPv6 (a kernel without it has nothing
/// to turn off); the IPv4 filter must hold.
pub fn quiet(name: &str) -> io::Result<()> {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    let rp = format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
    std::fs::write(&rp, "1").map_err(|e| io::Error::new(e.kind(), format!("{rp}: {e}")))
}

/// Brings interface `name` up with ARP off.
pub fn up(name: &str) -> io::Result<()> {
    let mut ifr = IfreqFlags::new(name, 0)?;
    // SAFETY: plain socket(2) call; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { File::from_raw_fd(fd) };
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write one `struct ifreq`
    // (size asserted above).
    let rc = unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            -1
        } else {
            ifr.flags |= (libc::IFF_UP | libc::IFF_NOARP) as libc::c_short;
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr)
        }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("bringing {name} up: {e}")));
    }
    Ok(())
}

/// A number from `/sys/class/net/NAME/FILE` (`mtu`, `ifindex`, `iflink`,
/// `statistics/tx_dropped`, ...).
pub fn sysfs_number(name: &str, file: &str) -> io::Result<u64> {
    let path = format!("/sys/class/net/{name}/{file}");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: `{}` is not a number", text.trim()),
        )
    })
}

/// The MTU of interface `name`.
pub fn mtu(name: &str) -> io::Result<u32> {
    let m = sysfs_number(name, "mtu")?;
    u32::try_from(m).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "MTU out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_call() {
        assert!(name_bytes("ids-q0").is_ok());
        for bad in ["", "sixteen-chars-xx", "a/b", "a b", "a\0b"] {
            let e = name_bytes(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(&name_bytes("lo").unwrap()[..3], b"lo\0");
    }

    #[test]
    fn the_loopback_mtu_is_read() {
        if std::path::Path::new("/sys/class/net/lo").exists() {
            assert!(mtu("lo").unwrap() >= 1500);
        }
        let e = mtu("symrss-none0").unwrap_err();
        assert!(
            e.to_string().contains("/sys/class/net/symrss-none0/mtu"),
            "{e}"
        );
    }
}
