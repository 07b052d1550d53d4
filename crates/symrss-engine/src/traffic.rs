//! A seeded, realistic traffic mix for tests and `symrss demo`: thousands
//! of bidirectional TCP and UDP flows over IPv4 and IPv6, VLAN-tagged
//! flows, fragmented UDP datagrams (sometimes last fragment first, as
//! Linux sends them), GTP-U tunnelled flows, and ICMP errors quoting a
//! flow. Every packet carries the id of the flow it belongs to — ground
//! truth independent of the dissector, for checking affinity.

use symrss_wire::build::*;

/// One generated packet.
#[derive(Clone, Debug)]
pub struct GenPacket {
    /// Timestamp, ns.
    pub ts_ns: i128,
    /// Ethernet frame.
    pub frame: Vec<u8>,
    /// Ground-truth flow (ICMP errors carry the flow they quote).
    pub flow: u32,
    /// What kind of flow it is (for reports).
    pub kind: FlowKind,
}

/// Kinds of generated flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowKind {
    /// TCP over IPv4.
    Tcp4,
    /// UDP over IPv4.
    Udp4,
    /// TCP over IPv6.
    Tcp6,
    /// TCP over IPv4 behind an 802.1Q tag.
    VlanTcp4,
    /// UDP over IPv4 with datagrams larger than the MTU (fragments).
    Fragmented,
    /// TCP inside GTP-U (mobile core).
    Gtp,
}

/// SplitMix64: a tiny deterministic generator for test and bench data (not
/// for keys; those use ChaCha20 in `symrss-hash`).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const MTU_PAYLOAD: usize = 1480;

/// Generates `flows` flows from `seed`, packets sorted by time.
pub fn generate(seed: u64, flows: u32) -> Vec<GenPacket> {
    let mut r = SplitMix64(seed);
    let mut out = Vec::new();
    for flow in 0..flows {
        let kind = kind(&mut r);
        let (client, server) = endpoints(&mut r, flow);
        let cport = 1024 + r.below(60000) as u16;
        let sport = [80, 443, 53, 22, 8080, 3306][r.below(6) as usize];
        let start = r.below(1_000_000_000) as i128;
        let packets = 2 + r.below(18) as usize;
        let f = Endpoints {
            flow,
            kind,
            client,
            server,
            cport,
            sport,
        };
        for k in 0..packets {
            let ts = start + k as i128 * (1 + r.below(2_000_000) as i128);
            emit(&mut r, &f, k, ts, &mut out);
        }
    }
    out.sort_by_key(|p| p.ts_ns);
    out
}

/// A heavy-tailed mix for rebalancing: `flows` flows starting at random
/// over `span_ns` of packet time, their sizes Pareto-distributed (shape
/// 1.2, at least 2 packets, at most 5,000: most flows are mice, most
/// packets belong to a few elephants), each sending one packet every
/// ~1 ms (0.5–1.5 ms) — so an elephant lasts seconds and carries on across
/// rebalancing windows. The kinds are [`generate`]'s; packets sorted by
/// time.
pub fn heavy_tailed(seed: u64, flows: u32, span_ns: u64) -> Vec<GenPacket> {
    let mut r = SplitMix64(seed);
    let mut out = Vec::new();
    for flow in 0..flows {
        let kind = kind(&mut r);
        let (client, server) = endpoints(&mut r, flow);
        let f = Endpoints {
            flow,
            kind,
            client,
            server,
            cport: 1024 + r.below(60000) as u16,
            sport: [80, 443, 53, 22, 8080, 3306][r.below(6) as usize],
        };
        let start = r.below(span_ns.max(1)) as i128;
        // Pareto: 2 / U^(1/1.2), U uniform in (0, 1].
        let u = (r.below(1 << 53) + 1) as f64 / (1u64 << 53) as f64;
        let packets = (2.0 / u.powf(1.0 / 1.2)).min(5_000.0) as usize;
        let mut ts = start;
        for k in 0..packets {
            emit(&mut r, &f, k, ts, &mut out);
            ts += 500_000 + r.below(1_000_000) as i128;
        }
    }
    out.sort_by_key(|p| p.ts_ns);
    out
}

/// A flow's kind, drawn with [`generate`]'s shares.
fn kind(r: &mut SplitMix64) -> FlowKind {
    match r.below(100) {
        0..=54 => FlowKind::Tcp4,
        55..=69 => FlowKind::Udp4,
        70..=79 => FlowKind::Tcp6,
        80..=87 => FlowKind::VlanTcp4,
        88..=94 => FlowKind::Fragmented,
        _ => FlowKind::Gtp,
    }
}

/// Flow `flow`'s client and a random server. Distinct client addresses
/// per flow keep ground-truth flows distinct at every layer (outer tunnel
/// endpoints included).
fn endpoints(r: &mut SplitMix64, flow: u32) -> ([u8; 4], [u8; 4]) {
    let client = [10, (flow >> 16) as u8 | 0x40, (flow >> 8) as u8, flow as u8];
    let server = [
        172,
        16 + r.below(16) as u8,
        r.below(256) as u8,
        1 + r.below(254) as u8,
    ];
    (client, server)
}

/// One generated flow's identity.
struct Endpoints {
    flow: u32,
    kind: FlowKind,
    client: [u8; 4],
    server: [u8; 4],
    cport: u16,
    sport: u16,
}

/// The frames of the `k`-th packet of flow `f` at `ts` (more than one for
/// a fragmented datagram, and now and then an ICMP error quoting it).
fn emit(r: &mut SplitMix64, f: &Endpoints, k: usize, ts: i128, out: &mut Vec<GenPacket>) {
    let Endpoints {
        flow,
        kind,
        client,
        server,
        cport,
        sport,
    } = *f;
    let forward = k.is_multiple_of(2) || r.below(4) == 0;
    let (s, d, sp, dp) = if forward {
        (client, server, cport, sport)
    } else {
        (server, client, sport, cport)
    };
    let payload_len = r.below(200) as usize;
    let mut push = |frame: Vec<u8>, ts: i128| {
        out.push(GenPacket {
            ts_ns: ts,
            frame,
            flow,
            kind,
        })
    };
    match kind {
        FlowKind::Tcp4 => push(
            ethernet(
                ETH_IPV4,
                &ipv4(s, d, TCP, &tcp(sp, dp, &vec![0; payload_len])),
            ),
            ts,
        ),
        FlowKind::Udp4 => push(
            ethernet(
                ETH_IPV4,
                &ipv4(s, d, UDP, &udp(sp, dp, &vec![0; payload_len])),
            ),
            ts,
        ),
        FlowKind::VlanTcp4 => push(
            ethernet_vlans(
                &[100 + (flow % 8) as u16],
                ETH_IPV4,
                &ipv4(s, d, TCP, &tcp(sp, dp, b"v")),
            ),
            ts,
        ),
        FlowKind::Tcp6 => {
            let v6 = |a: [u8; 4]| {
                let mut x = [0u8; 16];
                x[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                x[12..].copy_from_slice(&a);
                x
            };
            push(
                ethernet(
                    ETH_IPV6,
                    &ipv6(v6(s), v6(d), TCP, &tcp(sp, dp, &vec![0; payload_len])),
                ),
                ts,
            );
        }
        FlowKind::Gtp => {
            let inner = ipv4(s, d, TCP, &tcp(sp, dp, b"gtp"));
            let (gs, gd) = if forward {
                ([192, 168, flow as u8, 1], [192, 168, 200, 1])
            } else {
                ([192, 168, 200, 1], [192, 168, flow as u8, 1])
            };
            push(
                ethernet(
                    ETH_IPV4,
                    &ipv4(gs, gd, UDP, &udp(2152, 2152, &gtpu(flow, &inner))),
                ),
                ts,
            );
        }
        FlowKind::Fragmented => {
            let datagram = udp(sp, dp, &vec![0xab; MTU_PAYLOAD + 200 + payload_len * 8]);
            let id = (flow as u16) ^ (k as u16) << 12;
            let mut frags: Vec<Vec<u8>> = Vec::new();
            for (n, piece) in datagram.chunks(MTU_PAYLOAD).enumerate() {
                let off = (n * MTU_PAYLOAD) as u16;
                let more = (n + 1) * MTU_PAYLOAD < datagram.len();
                frags.push(ethernet(
                    ETH_IPV4,
                    &ipv4_frag(s, d, UDP, Some((id, off, more)), piece),
                ));
            }
            if r.below(3) == 0 {
                frags.reverse(); // last fragment first
            }
            for (n, f) in frags.into_iter().enumerate() {
                push(f, ts + n as i128);
            }
        }
    }
    // Now and then a router reports this packet undeliverable.
    if kind == FlowKind::Udp4 && r.below(10) == 0 {
        let offending = ipv4(s, d, UDP, &udp(sp, dp, &[0; 8]));
        let err = ethernet(
            ETH_IPV4,
            &ipv4([10, 255, 255, 254], s, ICMP, &icmp(3, 3, &offending[..28])),
        );
        out.push(GenPacket {
            ts_ns: ts + 1,
            frame: err,
            flow,
            kind,
        });
    }
}
