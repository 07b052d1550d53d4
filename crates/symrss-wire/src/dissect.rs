//! The dissector: a loop over protocol states, every read bounds-checked.

use symrss_hash::Tuple;

use crate::key::{DissectError, Encap, ErrorKind, FlowKey, Fragment, IpLayer, Layer, Quoted};

/// Dissection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Follow tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, IP-in-IP).
    pub decapsulate: bool,
    /// Most nested tunnels followed before [`ErrorKind::TooDeep`].
    pub max_depth: u8,
    /// UDP port of VXLAN.
    pub vxlan_port: u16,
    /// UDP port of Geneve.
    pub geneve_port: u16,
    /// UDP port of GTP-U.
    pub gtpu_port: u16,
    /// UDP port of Teredo (RFC 4380).
    pub teredo_port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            decapsulate: true,
            max_depth: 8,
            vxlan_port: 4789,
            geneve_port: 6081,
            gtpu_port: 2152,
            teredo_port: 3544,
        }
    }
}

use crate::linktype as lt;

/// EtherTypes.
mod et {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const VNTAG: u16 = 0x8926;
    pub const TEB: u16 = 0x6558;
    pub const PPP: u16 = 0x880b;
    pub const ERSPAN_2: u16 = 0x88be;
    pub const ERSPAN_3: u16 = 0x22eb;
}

/// The most common frame, parsed by straight-line code: Ethernet, up to
/// two VLAN tags, IPv4 without options and not fragmented, TCP/UDP/SCTP
/// that is not a tunnel port.
struct CommonFrame {
    vlans: [u16; 2],
    vlan_count: usize,
    /// Offset of the IPv4 header.
    ip: usize,
    tuple: Tuple,
    proto: u8,
    /// TCP flags (0 for other protocols, or a frame too short for them).
    tcp_flags: u8,
}

/// [`CommonFrame`] of `f`, or `None` for any other frame (which the
/// general path then dissects). Always inlined: it returns a 40-byte
/// tuple, which a call passes through memory (measured: ~60 instructions
/// per packet more in the balancer's steering loop, BENCHMARKS.md).
#[inline(always)]
fn common_frame(f: &[u8], opts: &Options) -> Option<CommonFrame> {
    let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    if f.len() < 14 + 20 + 4 {
        return None;
    }
    let mut at = 14;
    let mut t = be16(12);
    let mut vlans = [0u16; 2];
    let mut n = 0;
    while matches!(t, et::VLAN | et::QINQ) && n < 2 {
        if f.len() < at + 4 + 20 + 4 {
            return None;
        }
        vlans[n] = be16(at) & 0x0fff;
        t = be16(at + 2);
        at += 4;
        n += 1;
    }
    if t != et::IPV4 || f[at] != 0x45 || be16(at + 6) & 0x3fff != 0 {
        return None;
    }
    let proto = f[at + 9];
    let l4 = at + 20;
    if !matches!(proto, 6 | 17 | 132) {
        return None;
    }
    let (sp, dp) = (be16(l4), be16(l4 + 2));
    if proto == 17 && opts.decapsulate {
        let tunnel = [
            opts.vxlan_port,
            opts.geneve_port,
            opts.gtpu_port,
            opts.teredo_port,
        ];
        if tunnel.contains(&sp) || tunnel.contains(&dp) {
            return None;
        }
    }
    let h = &f[at..at + 20];
    Some(CommonFrame {
        vlans,
        vlan_count: n,
        ip: at,
        tuple: Tuple::from_v4_octets(
            [h[12], h[13], h[14], h[15]],
            [h[16], h[17], h[18], h[19]],
            Some((sp, dp)),
        ),
        proto,
        tcp_flags: if proto == 6 {
            f.get(l4 + 13).copied().unwrap_or(0)
        } else {
            0
        },
    })
}

/// Fills `key` from the common frame exactly as the general path would
/// and returns true; returns false (having written nothing) for anything
/// else.
#[inline]
fn fast_ethernet_ipv4(f: &[u8], opts: &Options, key: &mut FlowKey) -> bool {
    let Some(c) = common_frame(f, opts) else {
        return false;
    };
    key.vlans[..c.vlan_count].copy_from_slice(&c.vlans[..c.vlan_count]);
    key.vlan_count = c.vlan_count as u8;
    key.ethertype = et::IPV4;
    // The whole layer in one write (what `begin_layer` + field stores do,
    // without zeroing 144 bytes first).
    key.set_only_layer(IpLayer {
        tuple: c.tuple,
        proto: c.proto,
        frag: None,
        offset: c.ip as u32,
        l4_offset: c.ip as u32 + 20,
        encap: Encap::None,
        quoted: None,
        home_src: None,
        home_dst: None,
    });
    true
}

/// The tuple and protocol of a frame whose [`FlowKey`] would hold exactly
/// one IP layer that is neither a fragment nor an ICMP error — for the
/// commonest such frames (Ethernet, up to two VLAN tags, IPv4 without
/// options, TCP/UDP/SCTP on no tunnel port) — without building the key;
/// `None` for every other frame, which [`dissect_into`] then handles.
/// A balancer's per-packet fast path (always inlined, as
/// `common_frame`).
#[inline(always)]
pub fn plain_tuple(linktype: u32, frame: &[u8], opts: &Options) -> Option<(Tuple, u8)> {
    plain_flow(linktype, frame, opts).map(|p| (p.tuple, p.proto))
}

/// What [`plain_flow`] reads of a plain frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainFlow {
    /// Addresses and ports.
    pub tuple: Tuple,
    /// Transport protocol (TCP, UDP or SCTP).
    pub proto: u8,
    /// TCP flags (0 for UDP and SCTP).
    pub tcp_flags: u8,
}

/// [`plain_tuple`] with the TCP flags (for flow tables that see flows
/// end).
#[inline(always)]
pub fn plain_flow(linktype: u32, frame: &[u8], opts: &Options) -> Option<PlainFlow> {
    if linktype != lt::ETHERNET {
        return None;
    }
    common_frame(frame, opts).map(|c| PlainFlow {
        tuple: c.tuple,
        proto: c.proto,
        tcp_flags: c.tcp_flags,
    })
}

/// What to parse next, and where.
#[derive(Clone, Copy, Debug)]
enum Next {
    Ethernet(usize),
    EtherType(u16, usize),
    Ip(usize),
    Ppp(usize),
    PppProto(u16, usize),
    Mpls(usize),
    Done,
}

type Res<T> = Result<T, DissectError>;

struct Dissector<'a> {
    f: &'a [u8],
    opts: &'a Options,
    key: &'a mut FlowKey,
    depth: u8,
    /// How the next IP layer is reached.
    encap: Encap,
}

/// Dissects one captured frame of link type `linktype`. Never panics;
/// problems are reported in [`FlowKey::error`] with what parsed before.
#[inline]
pub fn dissect(linktype: u32, frame: &[u8], opts: &Options) -> FlowKey {
    let mut key = FlowKey::default();
    dissect_into(linktype, frame, opts, &mut key);
    key
}

/// [`dissect`] into a caller's key (reset first), for loops that reuse one.
pub fn dissect_into(linktype: u32, frame: &[u8], opts: &Options, key: &mut FlowKey) {
    key.reset();
    if linktype == lt::ETHERNET && fast_ethernet_ipv4(frame, opts, key) {
        return;
    }
    dissect_general(linktype, frame, opts, key);
}

/// The general state machine alone (tests compare it with the fast path).
#[doc(hidden)]
pub fn dissect_general(linktype: u32, frame: &[u8], opts: &Options, key: &mut FlowKey) {
    key.reset();
    let mut d = Dissector {
        f: frame,
        opts,
        key,
        depth: 0,
        encap: Encap::None,
    };
    if let Err(e) = d.run(linktype) {
        d.key.error = Some(e);
    }
}

impl Dissector<'_> {
    fn err(&self, layer: Layer, at: usize, kind: ErrorKind) -> DissectError {
        DissectError {
            layer,
            offset: at as u32,
            kind,
        }
    }

    /// Requires `len` bytes at `at`; `hdr` is the start of the layer's header.
    #[inline]
    fn need(&self, layer: Layer, hdr: usize, at: usize, len: usize) -> Res<()> {
        if at.checked_add(len).is_some_and(|end| end <= self.f.len()) {
            Ok(())
        } else {
            Err(self.err(layer, hdr, ErrorKind::Truncated))
        }
    }

    #[inline]
    fn u8_at(&self, at: usize) -> u8 {
        self.f[at]
    }

    #[inline]
    fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.f[at], self.f[at + 1]])
    }

    #[inline]
    fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.f[at], self.f[at + 1], self.f[at + 2], self.f[at + 3]])
    }

    fn run(&mut self, linktype: u32) -> Res<()> {
        let mut next = self.link(linktype)?;
        loop {
            next = match next {
                Next::Ethernet(at) => self.ethernet(at)?,
                Next::EtherType(t, at) => self.ethertype(t, at)?,
                Next::Ip(at) => self.ip(at)?,
                Next::Ppp(at) => self.ppp(at)?,
                Next::PppProto(p, at) => self.ppp_proto(p, at),
                Next::Mpls(at) => self.mpls(at)?,
                Next::Done => return Ok(()),
            };
        }
    }

    fn link(&mut self, linktype: u32) -> Res<Next> {
        Ok(match linktype {
            lt::ETHERNET => Next::Ethernet(0),
            lt::RAW | lt::RAW_12 | lt::RAW_14 | lt::IPV4 | lt::IPV6 => Next::Ip(0),
            lt::PPP => Next::Ppp(0),
            lt::NULL | lt::LOOP => {
                self.need(Layer::Link, 0, 0, 4)?;
                let raw = [self.f[0], self.f[1], self.f[2], self.f[3]];
                // DLT_NULL is in the capturing host's byte order, DLT_LOOP in
                // network order; an address family is always < 256.
                let af = if linktype == lt::LOOP {
                    u32::from_be_bytes(raw)
                } else {
                    let le = u32::from_le_bytes(raw);
                    if le < 256 {
                        le
                    } else {
                        u32::from_be_bytes(raw)
                    }
                };
                match af {
                    // AF_INET; AF_INET6 on Linux, BSDs, FreeBSD, Darwin.
                    2 | 10 | 24 | 28 | 30 => Next::Ip(4),
                    // Some captures carry an EtherType in the low half
                    // instead of an address family (Wireshark accepts it too).
                    _ if matches!(self.be16(2), et::IPV4 | et::IPV6) => Next::Ip(4),
                    _ => Next::Done,
                }
            }
            lt::LINUX_SLL => {
                self.need(Layer::Link, 0, 0, 16)?;
                let proto = self.be16(14);
                if proto >= 0x0600 {
                    Next::EtherType(proto, 16)
                } else {
                    Next::Done
                }
            }
            lt::LINUX_SLL2 => {
                self.need(Layer::Link, 0, 0, 20)?;
                let proto = self.be16(0);
                if proto >= 0x0600 {
                    Next::EtherType(proto, 20)
                } else {
                    Next::Done
                }
            }
            other => return Err(self.err(Layer::Link, 0, ErrorKind::UnsupportedLinkType(other))),
        })
    }

    fn ethernet(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Ethernet, at, at, 14)?;
        let t = self.be16(at + 12);
        // 802.3 length field: LLC/SNAP, not IP.
        Ok(if t >= 0x0600 {
            Next::EtherType(t, at + 14)
        } else {
            Next::Done
        })
    }

    /// True until the first IP layer and outside tunnels: L2 facts recorded.
    fn outermost_l2(&self) -> bool {
        self.key.ip_count == 0 && self.depth == 0
    }

    fn ethertype(&mut self, t: u16, at: usize) -> Res<Next> {
        self.key.ethertype = t;
        Ok(match t {
            et::IPV4 | et::IPV6 => Next::Ip(at),
            et::VLAN | et::QINQ | et::QINQ_OLD | et::QINQ_OLD2 => {
                self.need(Layer::Vlan, at, at, 4)?;
                if self.outermost_l2() {
                    let n = usize::from(self.key.vlan_count);
                    if n < self.key.vlans.len() {
                        self.key.vlans[n] = self.be16(at) & 0x0fff;
                    }
                    self.key.vlan_count = self.key.vlan_count.saturating_add(1);
                }
                Next::EtherType(self.be16(at + 2), at + 4)
            }
            et::MPLS | et::MPLS_MC => Next::Mpls(at),
            et::PPPOE_SESSION => {
                self.need(Layer::Pppoe, at, at, 8)?;
                if self.u8_at(at) != 0x11 {
                    return Err(self.err(
                        Layer::Pppoe,
                        at,
                        ErrorKind::Malformed("version/type is not 1/1"),
                    ));
                }
                Next::PppProto(self.be16(at + 6), at + 8)
            }
            et::VNTAG => {
                self.need(Layer::VnTag, at, at, 6)?;
                Next::EtherType(self.be16(at + 4), at + 6)
            }
            _ => Next::Done,
        })
    }

    fn mpls(&mut self, at: usize) -> Res<Next> {
        let mut p = at;
        loop {
            self.need(Layer::Mpls, at, p, 4)?;
            let entry = self.be32(p);
            if self.outermost_l2() {
                self.key.mpls_labels = self.key.mpls_labels.saturating_add(1);
            }
            p += 4;
            if entry & 0x100 != 0 {
                break;
            }
        }
        self.need(Layer::Mpls, at, p, 1)?;
        // RFC 4385: IP payloads start with their version; a pseudowire
        // control word starts with nibble 0; anything else is taken as an
        // Ethernet pseudowire without control word.
        Ok(match self.u8_at(p) >> 4 {
            4 | 6 => Next::Ip(p),
            0 => {
                self.need(Layer::Mpls, at, p, 4)?;
                Next::Ethernet(p + 4)
            }
            _ => Next::Ethernet(p),
        })
    }

    fn ppp(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Ppp, at, at, 2)?;
        let mut p = at;
        if self.u8_at(p) == 0xff && self.u8_at(p + 1) == 0x03 {
            p += 2; // HDLC address and control
        }
        self.need(Layer::Ppp, at, p, 1)?;
        // Protocol-field compression: an odd first byte is a 1-byte protocol.
        if self.u8_at(p) & 1 == 1 {
            return Ok(Next::PppProto(u16::from(self.u8_at(p)), p + 1));
        }
        self.need(Layer::Ppp, at, p, 2)?;
        Ok(Next::PppProto(self.be16(p), p + 2))
    }

    fn ppp_proto(&mut self, proto: u16, at: usize) -> Next {
        match proto {
            0x0021 | 0x0057 => Next::Ip(at),
            0x0281 | 0x0283 => Next::Mpls(at),
            _ => Next::Done,
        }
    }

    fn ip(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Ipv4, at, at, 1)?;
        match self.u8_at(at) >> 4 {
            4 => self.ipv4(at),
            6 => self.ipv6(at),
            _ => Err(self.err(
                Layer::Ipv4,
                at,
                ErrorKind::Malformed("IP version is neither 4 nor 6"),
            )),
        }
    }

    /// Begins the next IP layer in the key, at `at`.
    fn begin_layer(&mut self, at: usize) -> &mut IpLayer {
        let encap = core::mem::take(&mut self.encap);
        let l = self.key.begin_layer();
        l.offset = at as u32;
        l.encap = encap;
        l
    }

    fn ipv4(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Ipv4, at, at, 20)?;
        let f = self.f;
        let h = &f[at..at + 20];
        let tuple = Tuple::from_v4_octets(
            [h[12], h[13], h[14], h[15]],
            [h[16], h[17], h[18], h[19]],
            None,
        );
        let proto = h[9];
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let more = flags & 0x2000 != 0;
        let offset = (flags & 0x1fff) << 3;
        let id = u32::from(u16::from_be_bytes([h[4], h[5]]));
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let l = self.begin_layer(at);
        l.tuple = tuple;
        l.proto = proto;
        if more || offset != 0 {
            l.frag = Some(Fragment { id, offset, more });
        }
        if ihl < 20 {
            return Err(self.err(
                Layer::Ipv4,
                at,
                ErrorKind::Malformed("header length below 20 bytes"),
            ));
        }
        self.need(Layer::Ipv4, at, at, ihl)?;
        if offset != 0 {
            return Ok(Next::Done); // non-first fragment: no transport header
        }
        self.transport(proto, at + ihl)
    }

    fn ipv6(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Ipv6, at, at, 40)?;
        let f = self.f;
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&f[at + 8..at + 24]);
        dst.copy_from_slice(&f[at + 24..at + 40]);
        let mut next = f[at + 6];
        let l = self.begin_layer(at);
        l.tuple = Tuple::from_v6_octets(src, dst, None);
        let mut frag = None;
        let mut home_src = None;
        let mut home_dst = None;
        let mut p = at + 40;
        // Extension headers (RFC 8200 §4): each step advances `p`.
        let result = loop {
            match next {
                0 | 60 | 43 | 135 | 139 | 140 => {
                    if let Err(e) = self.need(Layer::Ipv6, p, p, 8) {
                        break Err(e);
                    }
                    let len = (usize::from(f[p + 1]) + 1) * 8;
                    if let Err(e) = self.need(Layer::Ipv6, p, p, len) {
                        break Err(e);
                    }
                    if next == 60 {
                        home_src = home_src.or(self.home_address_option(p + 2, p + len));
                    }
                    if next == 43 && f[p + 2] == 2 && len >= 24 {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&f[p + 8..p + 24]);
                        home_dst = Some(a);
                    }
                    next = f[p];
                    p += len;
                }
                44 => {
                    if let Err(e) = self.need(Layer::Ipv6, p, p, 8) {
                        break Err(e);
                    }
                    let fo = self.be16(p + 2);
                    frag = Some(Fragment {
                        id: self.be32(p + 4),
                        offset: fo & 0xfff8,
                        more: fo & 1 != 0,
                    });
                    next = f[p];
                    p += 8;
                }
                51 => {
                    if let Err(e) = self.need(Layer::Ipv6, p, p, 2) {
                        break Err(e);
                    }
                    let len = (usize::from(f[p + 1]) + 2) * 4;
                    if let Err(e) = self.need(Layer::Ipv6, p, p, len) {
                        break Err(e);
                    }
                    next = f[p];
                    p += len;
                }
                _ => break Ok(()),
            }
        };
        let l = self.key.current();
        l.proto = next;
        l.frag = frag;
        l.home_src = home_src;
        l.home_dst = home_dst;
        result?;
        if frag.is_some_and(|f| f.offset != 0) {
            return Ok(Next::Done);
        }
        self.transport(next, p)
    }

    /// Scans destination options in `[from, to)` for a Home Address option
    /// (type 0xC9, 16 bytes; RFC 6275 §6.3).
    fn home_address_option(&self, from: usize, to: usize) -> Option<[u8; 16]> {
        let mut p = from;
        while p < to {
            let t = self.f[p];
            if t == 0 {
                p += 1; // Pad1
                continue;
            }
            if p + 2 > to {
                return None;
            }
            let len = usize::from(self.f[p + 1]);
            if t == 0xc9 && len == 16 && p + 18 <= to {
                let mut a = [0u8; 16];
                a.copy_from_slice(&self.f[p + 2..p + 18]);
                return Some(a);
            }
            p += 2 + len;
        }
        None
    }

    fn enter_tunnel(&mut self, layer: Layer, at: usize, encap: Encap) -> Res<()> {
        if !self.opts.decapsulate {
            return Err(self.err(layer, at, ErrorKind::TooDeep));
        }
        self.depth += 1;
        if self.depth > self.opts.max_depth {
            return Err(self.err(layer, at, ErrorKind::TooDeep));
        }
        self.encap = encap;
        Ok(())
    }

    fn transport(&mut self, proto: u8, at: usize) -> Res<Next> {
        match proto {
            6 | 17 | 132 => {
                let l = match proto {
                    6 => Layer::Tcp,
                    17 => Layer::Udp,
                    _ => Layer::Sctp,
                };
                self.need(l, at, at, 4)?;
                let (sp, dp) = (self.be16(at), self.be16(at + 2));
                let l = self.key.current();
                l.tuple.set_ports(Some((sp, dp)));
                l.l4_offset = at as u32;
                if proto == 17 && self.opts.decapsulate {
                    return self.udp_tunnel(sp, dp, at);
                }
                Ok(Next::Done)
            }
            1 | 58 => {
                self.need(Layer::Icmp, at, at, 4)?;
                let t = self.u8_at(at);
                let error = if proto == 1 {
                    matches!(t, 3 | 4 | 5 | 11 | 12)
                } else {
                    matches!(t, 1..=4)
                };
                let quoted = if error { self.quoted(at + 8) } else { None };
                let l = self.key.current();
                l.l4_offset = at as u32;
                l.quoted = quoted;
                Ok(Next::Done)
            }
            4 | 41 => {
                self.key.current().l4_offset = at as u32;
                if !self.opts.decapsulate {
                    return Ok(Next::Done);
                }
                let l = if proto == 4 { Layer::Ipv4 } else { Layer::Ipv6 };
                self.enter_tunnel(l, at, Encap::IpInIp)?;
                Ok(Next::Ip(at))
            }
            47 => {
                self.key.current().l4_offset = at as u32;
                if !self.opts.decapsulate {
                    return Ok(Next::Done);
                }
                self.gre(at)
            }
            _ => Ok(Next::Done),
        }
    }

    /// The flow quoted by an ICMP error: its IP header and, if present, the
    /// first 4 bytes of its transport header.
    fn quoted(&self, at: usize) -> Option<Quoted> {
        let f = self.f;
        let v = *f.get(at)? >> 4;
        let (tuple, proto, l4) = match v {
            4 => {
                let h = f.get(at..at + 20)?;
                let ihl = usize::from(h[0] & 0x0f) * 4;
                let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
                let t = Tuple::from_v4_octets(
                    [h[12], h[13], h[14], h[15]],
                    [h[16], h[17], h[18], h[19]],
                    None,
                );
                let l4 = (ihl >= 20 && frag_off == 0).then_some(at + ihl);
                (t, h[9], l4)
            }
            6 => {
                let h = f.get(at..at + 40)?;
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&h[8..24]);
                d.copy_from_slice(&h[24..40]);
                (Tuple::from_v6_octets(s, d, None), h[6], Some(at + 40))
            }
            _ => return None,
        };
        let ports = match (proto, l4) {
            (6 | 17 | 132, Some(p)) => f.get(p..p + 4).map(|b| {
                (
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                )
            }),
            _ => None,
        };
        Some(Quoted {
            tuple: tuple.with_ports(ports),
            proto,
        })
    }

    fn udp_tunnel(&mut self, sp: u16, dp: u16, at: usize) -> Res<Next> {
        let o = self.opts;
        let is = |port: u16| dp == port || sp == port;
        let payload = at + 8;
        if is(o.vxlan_port) {
            self.need(Layer::Udp, at, at, 8)?;
            self.need(Layer::Vxlan, payload, payload, 8)?;
            self.enter_tunnel(Layer::Vxlan, payload, Encap::Vxlan)?;
            return Ok(Next::Ethernet(payload + 8));
        }
        if is(o.geneve_port) {
            self.need(Layer::Udp, at, at, 8)?;
            self.need(Layer::Geneve, payload, payload, 8)?;
            let b0 = self.u8_at(payload);
            if b0 >> 6 != 0 {
                return Err(self.err(
                    Layer::Geneve,
                    payload,
                    ErrorKind::Malformed("version is not 0"),
                ));
            }
            let next = payload + 8 + usize::from(b0 & 0x3f) * 4;
            let proto = self.be16(payload + 2);
            self.need(Layer::Geneve, payload, next, 0)?;
            self.enter_tunnel(Layer::Geneve, payload, Encap::Geneve)?;
            return Ok(match proto {
                et::TEB => Next::Ethernet(next),
                et::IPV4 | et::IPV6 => Next::Ip(next),
                _ => Next::Done,
            });
        }
        if is(o.gtpu_port) {
            self.need(Layer::Udp, at, at, 8)?;
            return self.gtpu(payload);
        }
        if is(o.teredo_port) {
            self.need(Layer::Udp, at, at, 8)?;
            return self.teredo(payload);
        }
        Ok(Next::Done)
    }

    /// Teredo (RFC 4380 §5.1.1): an IPv6 packet, optionally after an
    /// authentication indicator (type 1) and/or an origin indication
    /// (type 0). Anything else (bubbles without IPv6, noise) ends here.
    fn teredo(&mut self, at: usize) -> Res<Next> {
        let mut p = at;
        if self.f.get(p..p + 2) == Some(&[0x00, 0x01]) {
            self.need(Layer::Udp, at, p, 4)?;
            let (id_len, au_len) = (
                usize::from(self.u8_at(p + 2)),
                usize::from(self.u8_at(p + 3)),
            );
            p += 4 + id_len + au_len + 8 + 1; // nonce (8) and confirmation byte
        }
        if self.f.get(p..p + 2) == Some(&[0x00, 0x00]) {
            p += 8;
        }
        if p + 40 > self.f.len() || self.u8_at(p) >> 4 != 6 {
            return Ok(Next::Done);
        }
        self.enter_tunnel(Layer::Udp, at, Encap::Teredo)?;
        Ok(Next::Ip(p))
    }

    fn gtpu(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::GtpU, at, at, 8)?;
        let flags = self.u8_at(at);
        if flags >> 5 != 1 || flags & 0x10 == 0 {
            return Ok(Next::Done); // not GTPv1 (GTP' or v2): no user packet
        }
        if self.u8_at(at + 1) != 0xff {
            return Ok(Next::Done); // signalling (echo, error indication, ...)
        }
        let mut p = at + 8;
        if flags & 0x07 != 0 {
            self.need(Layer::GtpU, at, at, 12)?;
            p = at + 12;
            if flags & 0x04 != 0 {
                // Extension headers: length in 4-byte units, next type last.
                let mut next_type = self.u8_at(at + 11);
                while next_type != 0 {
                    self.need(Layer::GtpU, at, p, 1)?;
                    let len = usize::from(self.u8_at(p)) * 4;
                    if len == 0 {
                        return Err(self.err(
                            Layer::GtpU,
                            at,
                            ErrorKind::Malformed("extension header length 0"),
                        ));
                    }
                    self.need(Layer::GtpU, at, p, len)?;
                    next_type = self.u8_at(p + len - 1);
                    p += len;
                }
            }
        }
        if p >= self.f.len() {
            return Ok(Next::Done); // empty T-PDU
        }
        match self.u8_at(p) >> 4 {
            4 | 6 => {
                self.enter_tunnel(Layer::GtpU, at, Encap::GtpU)?;
                Ok(Next::Ip(p))
            }
            _ => Ok(Next::Done),
        }
    }

    fn gre(&mut self, at: usize) -> Res<Next> {
        self.need(Layer::Gre, at, at, 4)?;
        let flags = self.be16(at);
        let proto = self.be16(at + 2);
        let version = flags & 0x7;
        let mut len = 4;
        if flags & 0x8000 != 0 || flags & 0x4000 != 0 {
            len += 4; // checksum (+ offset) present
        }
        if flags & 0x2000 != 0 {
            len += 4; // key (PPTP: payload length + call id)
        }
        if flags & 0x1000 != 0 {
            len += 4; // sequence number
        }
        if version == 1 && flags & 0x0080 != 0 {
            len += 4; // PPTP acknowledgment number
        }
        if version > 1 {
            return Err(self.err(Layer::Gre, at, ErrorKind::Malformed("unknown GRE version")));
        }
        self.need(Layer::Gre, at, at, len)?;
        let p = at + len;
        Ok(match proto {
            et::IPV4 | et::IPV6 => {
                self.enter_tunnel(Layer::Gre, at, Encap::Gre)?;
                Next::Ip(p)
            }
            et::TEB => {
                self.enter_tunnel(Layer::Gre, at, Encap::Gre)?;
                Next::Ethernet(p)
            }
            et::PPP => {
                self.enter_tunnel(Layer::Gre, at, Encap::Gre)?;
                Next::Ppp(p)
            }
            et::MPLS | et::MPLS_MC => {
                self.enter_tunnel(Layer::Gre, at, Encap::Gre)?;
                Next::Mpls(p)
            }
            et::ERSPAN_2 => {
                // Type I has no sequence number and no ERSPAN header.
                let hdr = if flags & 0x1000 != 0 { 8 } else { 0 };
                self.need(Layer::Erspan, p, p, hdr)?;
                self.enter_tunnel(Layer::Erspan, p, Encap::Erspan)?;
                Next::Ethernet(p + hdr)
            }
            et::ERSPAN_3 => {
                self.need(Layer::Erspan, p, p, 12)?;
                // O flag: an 8-byte platform-specific subheader follows.
                let hdr = if self.u8_at(p + 11) & 0x01 != 0 {
                    20
                } else {
                    12
                };
                self.need(Layer::Erspan, p, p, hdr)?;
                self.enter_tunnel(Layer::Erspan, p, Encap::Erspan)?;
                Next::Ethernet(p + hdr)
            }
            _ => Next::Done,
        })
    }
}
