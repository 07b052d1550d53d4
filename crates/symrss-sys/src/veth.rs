//! veth pairs as capture outputs: a queue becomes the far end `NAME` of a
//! veth pair (`ids-q0`, ...), which any AF_PACKET reader (tcpdump,
//! Suricata, Zeek, Snort) opens as if it were a NIC queue, and symrss
//! sends into the near end (`symrss<N>`, named by the kernel) through a
//! TX ring ([`crate::packet_tx`]): many frames per system call where a
//! TAP takes one `write(2)` per frame.
//!
//! The pair is made with one rtnetlink `RTM_NEWLINK` request (kind
//! `veth`, the peer in `VETH_INFO_PEER`; `rtnetlink(7)`,
//! `drivers/net/veth.c`), both ends with the same MTU, the host stack kept
//! off both ([`netif::quiet`]), then brought up. Deleting either end
//! deletes both ([`VethPair`]'s drop does, while the process can: after
//! `--user` it cannot, and the pair stays until the next start replaces
//! it or `ip link del NAME`).
//!
//! A pair left by an earlier run (killed, or unprivileged at exit) is
//! recognised — `NAME`'s peer is an interface named `symrss<N>` — and
//! replaced; any other interface called `NAME` is refused, never touched.
//!
//! Why in-house: the rtnetlink crates are async (tokio) or large; this is
//! one request of a few nested attributes and its acknowledgement.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::netif;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// The near ends' names: the kernel puts the first free number in `%d`.
const NEAR_PATTERN: &str = "symrss%d";
/// What every near end's name starts with.
pub const NEAR_PREFIX: &str = "symrss";

/// `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;

/// An rtnetlink request being built: header, `ifinfomsg`, attributes.
struct Request {
    buf: Vec<u8>,
    /// Start offsets of the nested attributes still open.
    open: Vec<usize>,
}

impl Request {
    fn new(kind: u16, flags: u16, ifindex: i32) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
        let mut r = Self {
            buf,
            open: Vec::new(),
        };
        r.ifinfomsg(ifindex);
        r
    }

    /// `struct ifinfomsg`: AF_UNSPEC, the index, no flag change.
    fn ifinfomsg(&mut self, ifindex: i32) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&[0; 8]); // flags, change
        debug_assert_eq!(self.buf.len() - start, IFINFOMSG_LEN);
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v);
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn begin(&mut self, kind: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        let start = self.open.pop().expect("end() matches a begin()");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        debug_assert!(self.open.is_empty());
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The request creating the pair: near end `symrss%d`, far end `far`,
/// both with `mtu`.
fn new_pair_request(far: &str, mtu: u32) -> Vec<u8> {
    let mut r = Request::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    r.attr_str(IFLA_IFNAME, NEAR_PATTERN);
    r.attr(IFLA_MTU, &mtu.to_ne_bytes());
    r.begin(IFLA_LINKINFO);
    r.attr_str(IFLA_INFO_KIND, "veth");
    r.begin(IFLA_INFO_DATA);
    r.begin(VETH_INFO_PEER);
    r.ifinfomsg(0);
    r.attr_str(IFLA_IFNAME, far);
    r.attr(IFLA_MTU, &mtu.to_ne_bytes());
    r.end();
    r.end();
    r.end();
    r.finish()
}

/// Sends one request on a fresh NETLINK_ROUTE socket and reads the
/// kernel's acknowledgement (`Ok` or the errno it carries).
fn transact(request: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2) call; checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `sockaddr_nl` is plain data; all-zero (with the family set)
    // addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `request` is a live buffer of its length; `kernel` is a valid
    // `sockaddr_nl` of the length passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 4096];
    loop {
        // SAFETY: `reply` is a live buffer of the length passed.
        let n = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return parse_ack(&reply[..n as usize]);
    }
}

/// The errno of an `NLMSG_ERROR` acknowledgement (0: success).
fn parse_ack(reply: &[u8]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink reply");
    let word = |at: usize| -> Option<[u8; 4]> { reply.get(at..at + 4)?.try_into().ok() };
    let kind = reply
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(bad)?;
    if kind != NLMSG_ERROR {
        return Err(bad());
    }
    let errno = i32::from_ne_bytes(word(NLMSG_HDRLEN).ok_or_else(bad)?);
    match errno {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Deletes interface `name` (with a veth, its peer too).
fn delete(name: &str) -> io::Result<()> {
    let ifindex = crate::packet::interface_index(name)?;
    transact(&Request::new(RTM_DELLINK, 0, ifindex).finish())
}

/// The name of the interface with index `ifindex`.
fn name_of(ifindex: u32) -> Option<String> {
    let mut buf = [0u8; libc::IFNAMSIZ];
    // SAFETY: `buf` has the IFNAMSIZ bytes if_indextoname writes at most.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// The near end of `far` if `far` is the far end of a pair symrss made:
/// its peer (`iflink`, for a veth the peer's index) is another interface
/// named `symrss<N>` whose own peer is `far`.
fn near_end_of(far: &str) -> Option<String> {
    let index = netif::sysfs_number(far, "ifindex").ok()?;
    let peer = netif::sysfs_number(far, "iflink").ok()?;
    if peer == index {
        return None;
    }
    let near = name_of(u32::try_from(peer).ok()?)?;
    let ours = near
        .strip_prefix(NEAR_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (ours && netif::sysfs_number(&near, "iflink").ok()? == index).then_some(near)
}

/// A veth pair: symrss writes into [`VethPair::near`], consumers read
/// [`VethPair::far`]. Deleted when dropped (if the process still may).
#[derive(Debug)]
pub struct VethPair {
    far: String,
    near: String,
    near_index: i32,
    mtu: u32,
}

impl VethPair {
    /// Creates the pair whose far end is `far`, both ends with `mtu`,
    /// quiet and up (replacing a pair an earlier run left; see the module
    /// docs). Needs CAP_NET_ADMIN.
    pub fn create(far: &str, mtu: u32) -> io::Result<Self> {
        netif::name_bytes(far)?;
        let with_hint = |e: io::Error, what: &str| {
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (needs CAP_NET_ADMIN: run as root)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("{what} {far}: {e}{hint}"))
        };
        if std::path::Path::new("/sys/class/net").join(far).exists() {
            if near_end_of(far).is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "interface {far} exists and is not a veth pair symrss made; \
                         choose another app name or remove it"
                    ),
                ));
            }
            delete(far).map_err(|e| with_hint(e, "removing the pair left by an earlier run at"))?;
        }
        transact(&new_pair_request(far, mtu)).map_err(|e| with_hint(e, "creating veth pair"))?;
        let mut pair = Self {
            far: far.to_string(),
            near: String::new(),
            near_index: 0,
            mtu,
        };
        // From here on, `pair`'s drop deletes what was made if a step fails.
        let near_index = netif::sysfs_number(far, "iflink")?;
        pair.near = name_of(near_index as u32).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the peer of {far} vanished"),
            )
        })?;
        pair.near_index = near_index as i32;
        for end in [&pair.far, &pair.near] {
            netif::quiet(end)?;
            netif::up(end)?;
        }
        Ok(pair)
    }

    /// The end consumers open (`ids-q0`).
    pub fn far(&self) -> &str {
        &self.far
    }

    /// The end symrss sends into (`symrss<N>`).
    pub fn near(&self) -> &str {
        &self.near
    }

    /// The near end's interface index (to bind a TX ring to).
    pub fn near_index(&self) -> i32 {
        self.near_index
    }

    /// Both ends' MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Frames the near end dropped (`tx_dropped`: the far end's receive
    /// backlog was full; a TX ring sends those frames again).
    pub fn near_tx_dropped(&self) -> io::Result<u64> {
        netif::sysfs_number(&self.near, "statistics/tx_dropped")
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Only a pair that is still ours (not one someone replaced).
        if near_end_of(&self.far).as_deref() == Some(self.near.as_str()) {
            let _ = delete(&self.far);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_pair_request_nests_the_peer_in_the_link_info() {
        let m = new_pair_request("ids-q0", 1500);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        let flags = u16::from_ne_bytes([m[6], m[7]]);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // Walk the top-level attributes after the header and ifinfomsg.
        let mut at = NLMSG_HDRLEN + IFINFOMSG_LEN;
        let mut kinds = Vec::new();
        while at < m.len() {
            let len = u16::from_ne_bytes([m[at], m[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([m[at + 2], m[at + 3]]) & !NLA_F_NESTED;
            kinds.push(kind);
            if kind == IFLA_LINKINFO {
                let inner = &m[at + 4..at + len];
                assert!(inner.windows(5).any(|w| w == b"veth\0"));
                assert!(
                    inner.windows(7).any(|w| w == b"ids-q0\0"),
                    "peer name nested"
                );
            }
            at += len.next_multiple_of(4);
        }
        assert_eq!(at, m.len(), "attributes fill the message exactly");
        assert_eq!(kinds, [IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO]);
    }

    #[test]
    fn acknowledgements_carry_the_errno() {
        let mut ack = vec![0u8; NLMSG_HDRLEN + 4];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_ack(&ack).is_ok());
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(
            parse_ack(&ack).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        assert_eq!(
            parse_ack(&ack[..10]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_name_that_is_not_an_interface_is_not_a_pair_of_ours() {
        assert_eq!(near_end_of("symrss-none0"), None);
        assert_eq!(near_end_of("lo"), None);
    }
}
