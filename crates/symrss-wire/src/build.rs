//! Packet builders for tests, fuzz seeds and the demo's generated traffic.
//!
//! Each function returns the bytes of one header plus its payload, so
//! frames are built inside out: `ethernet(ETH_IPV4, &ipv4(a, b, TCP,
//! &tcp(1, 2, b"")))`. Lengths and IPv4 header checksums are filled in.
//! These allocate; the dissector does not.

use alloc::vec::Vec;

/// EtherType IPv4.
pub const ETH_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETH_IPV6: u16 = 0x86dd;
/// EtherType ARP.
pub const ETH_ARP: u16 = 0x0806;
/// EtherType 802.1Q.
pub const ETH_VLAN: u16 = 0x8100;
/// EtherType 802.1ad.
pub const ETH_QINQ: u16 = 0x88a8;
/// EtherType MPLS unicast.
pub const ETH_MPLS: u16 = 0x8847;
/// IP protocol numbers.
pub const ICMP: u8 = 1;
/// IPv4-in-IP.
pub const IPIP: u8 = 4;
/// TCP.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// IPv6-in-IP.
pub const IPV6_IN_IP: u8 = 41;
/// GRE.
pub const GRE: u8 = 47;
/// ICMPv6.
pub const ICMPV6: u8 = 58;
/// SCTP.
pub const SCTP: u8 = 132;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// Ethernet II with fixed MAC addresses.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let macs = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    cat(&[&macs, &ethertype.to_be_bytes(), payload])
}

/// Ethernet with a stack of VLAN tags (outer first), each 802.1Q except
/// the outermost of two or more, which is 802.1ad.
pub fn ethernet_vlans(vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut inner = cat(&[&ethertype.to_be_bytes(), payload]);
    for (i, vid) in vlans.iter().enumerate().rev() {
        let tpid = if i == 0 && vlans.len() > 1 {
            ETH_QINQ
        } else {
            ETH_VLAN
        };
        inner = cat(&[&tpid.to_be_bytes(), &(vid & 0x0fff).to_be_bytes(), &inner]);
    }
    let mut out = ethernet(0, &[]);
    out.truncate(12);
    out.extend_from_slice(&inner);
    out
}

fn checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 fragment fields: identification, offset in bytes (multiple of 8), more fragments.
pub type Frag4 = (u16, u16, bool);

/// IPv4 header (no options) + payload.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_frag(src, dst, proto, None, payload)
}

/// IPv4 header with optional fragment fields + payload.
pub fn ipv4_frag(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    frag: Option<Frag4>,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let (id, off, more) = frag.unwrap_or((0x1234, 0, false));
    let flags =
        (off >> 3) | if more { 0x2000 } else { 0 } | if frag.is_none() { 0x4000 } else { 0 };
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    cat(&[&h, payload])
}

/// IPv6 header + payload (`next` is the first next-header value).
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    cat(&[&h, payload])
}

/// IPv6 fragment extension header (next header 44 goes in the header before it).
pub fn ipv6_fragment(next: u8, id: u32, offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let fo = (offset & 0xfff8) | u16::from(more);
    let mut h = [0u8; 8];
    h[0] = next;
    h[2..4].copy_from_slice(&fo.to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    cat(&[&h, payload])
}

/// TCP header (20 bytes, SYN|ACK flags) + payload.
pub fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x12;
    h[14..16].copy_from_slice(&65535u16.to_be_bytes());
    cat(&[&h, payload])
}

/// UDP header + payload (checksum 0).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    cat(&[&h, payload])
}

/// ICMP (or ICMPv6) message with type/code, 4 unused bytes, then `body`
/// (for errors: the quoted IP header and the first bytes of its payload).
pub fn icmp(icmp_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[icmp_type, code, 0, 0, 0, 0, 0, 0], body])
}

/// GRE (RFC 2784, no options) carrying `proto`.
pub fn gre(proto: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[&[0, 0], &proto.to_be_bytes(), payload])
}

/// VXLAN header (VNI) + inner Ethernet frame.
pub fn vxlan(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let v = (vni << 8).to_be_bytes();
    cat(&[&[0x08, 0, 0, 0], &v, inner_frame])
}

/// GTP-U G-PDU (version 1, no optional fields) carrying an IP packet.
pub fn gtpu(teid: u32, ip_packet: &[u8]) -> Vec<u8> {
    let len = (ip_packet.len() as u16).to_be_bytes();
    cat(&[&[0x30, 0xff], &len, &teid.to_be_bytes(), ip_packet])
}

/// MPLS label stack (bottom-of-stack set on the last) + payload.
pub fn mpls(labels: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let bos = if i + 1 == labels.len() { 0x100 } else { 0 };
        v.extend_from_slice(&(((l & 0xfffff) << 12) | bos | 64).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}
