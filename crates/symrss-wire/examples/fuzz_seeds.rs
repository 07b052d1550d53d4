//! Writes the fuzzers' seed corpora from the packet builders:
//! `cargo run -p symrss-wire --example fuzz_seeds -- fuzz/corpus`.
//! Seeds are small, generated here (no third-party captures are copied).

use std::path::Path;

use symrss_pcap::{PcapWriter, TsResolution};
use symrss_wire::build::*;
use symrss_wire::fuzz::LINKTYPES;

fn frames() -> Vec<(&'static str, u32, Vec<u8>)> {
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    let t = tcp(40000, 443, b"GET / HTTP/1.1\r\n");
    let u = udp(5353, 53, b"\x12\x34\x01\x00");
    let ip_t = ipv4(a, b, TCP, &t);
    let ip6 = ipv6(
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        UDP,
        &u,
    );
    let offending = ipv4(a, b, UDP, &u);
    vec![
        ("eth_ipv4_tcp", 1, ethernet(ETH_IPV4, &ip_t)),
        (
            "eth_qinq_ipv6_udp",
            1,
            ethernet_vlans(&[100, 200], ETH_IPV6, &ip6),
        ),
        (
            "eth_mpls_ipv4",
            1,
            ethernet(ETH_MPLS, &mpls(&[16, 17], &ip_t)),
        ),
        (
            "eth_ipv4_frag_first",
            1,
            ethernet(ETH_IPV4, &ipv4_frag(a, b, UDP, Some((7, 0, true)), &u)),
        ),
        (
            "eth_ipv4_frag_later",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4_frag(a, b, UDP, Some((7, 1480, false)), &[0; 16]),
            ),
        ),
        (
            "eth_ipv6_frag",
            1,
            ethernet(
                ETH_IPV6,
                &ipv6([1; 16], [2; 16], 44, &ipv6_fragment(UDP, 9, 0, true, &u)),
            ),
        ),
        (
            "eth_icmp_error",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4([10, 0, 0, 254], a, ICMP, &icmp(3, 3, &offending[..28])),
            ),
        ),
        (
            "eth_gre_ipv4",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4([192, 0, 2, 1], [192, 0, 2, 2], GRE, &gre(ETH_IPV4, &ip_t)),
            ),
        ),
        (
            "eth_gre_teb",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4(
                    [192, 0, 2, 1],
                    [192, 0, 2, 2],
                    GRE,
                    &gre(0x6558, &ethernet(ETH_IPV4, &ip_t)),
                ),
            ),
        ),
        (
            "eth_vxlan",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4(
                    [192, 0, 2, 1],
                    [192, 0, 2, 2],
                    UDP,
                    &udp(50000, 4789, &vxlan(5, &ethernet(ETH_IPV4, &ip_t))),
                ),
            ),
        ),
        (
            "eth_gtpu",
            1,
            ethernet(
                ETH_IPV4,
                &ipv4(
                    [192, 0, 2, 1],
                    [192, 0, 2, 2],
                    UDP,
                    &udp(2152, 2152, &gtpu(1, &ip_t)),
                ),
            ),
        ),
        (
            "eth_ipip",
            1,
            ethernet(ETH_IPV4, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPIP, &ip_t)),
        ),
        ("raw_ipv6", 101, ip6.clone()),
        ("ipv4_linktype", 228, ip_t.clone()),
        (
            "sll",
            113,
            [
                &[0u8, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0, 1, 0, 0x08, 0x00][..],
                &ip_t,
            ]
            .concat(),
        ),
        (
            "sll2",
            276,
            [
                &[
                    0x08u8, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0, 1, 0,
                ][..],
                &ip_t,
            ]
            .concat(),
        ),
        ("null", 0, [&[2u8, 0, 0, 0][..], &ip_t].concat()),
        ("ppp", 9, [&[0xffu8, 0x03, 0x00, 0x21][..], &ip_t].concat()),
        ("arp", 1, ethernet(ETH_ARP, &[0; 28])),
    ]
}

/// Appends a little-endian pcapng block: type, length, body padded to 32
/// bits, length again.
fn pcapng_block(out: &mut Vec<u8>, block_type: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    for sub in ["dissect", "read_pcap", "read_pcapng"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create corpus dir");
    }
    let frames = frames();
    for (name, lt, f) in &frames {
        let sel = LINKTYPES
            .iter()
            .position(|l| l == lt)
            .expect("link type in the selector") as u8;
        let mut v = vec![sel];
        v.extend_from_slice(f);
        std::fs::write(dir.join("dissect").join(format!("{name}.bin")), v).expect("write seed");
    }
    for (res, tag) in [(TsResolution::Micro, "us"), (TsResolution::Nano, "ns")] {
        let mut w = PcapWriter::new(Vec::new(), 1, 65535, res).expect("in memory");
        for (i, (_, lt, f)) in frames.iter().enumerate() {
            if *lt == 1 {
                w.write_packet(
                    1_700_000_000_000_000_000 + i as i128 * 1000,
                    f.len() as u32,
                    f,
                )
                .expect("in memory");
            }
        }
        let bytes = w.finish().expect("in memory");
        std::fs::write(
            dir.join("read_pcap").join(format!("ethernet_{tag}.pcap")),
            &bytes,
        )
        .expect("write seed");
        // A copy with a cut last record.
        std::fs::write(
            dir.join("read_pcap").join(format!("cut_{tag}.pcap")),
            &bytes[..bytes.len() - 7],
        )
        .expect("write seed");
    }
    // pcapng: the reader fuzz prefix (SHB + IDB) followed by EPBs and an SPB.
    let mut ng = symrss_pcap::fuzz::PCAPNG_PREFIX.to_vec();
    for (_, _, f) in frames.iter().filter(|(_, lt, _)| *lt == 1).take(6) {
        let mut body = Vec::new();
        body.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        body.extend_from_slice(&0x0006_0000u32.to_le_bytes()); // timestamp, high
        body.extend_from_slice(&0x1234_5678u32.to_le_bytes()); // timestamp, low
        body.extend_from_slice(&(f.len() as u32).to_le_bytes()); // captured
        body.extend_from_slice(&(f.len() as u32).to_le_bytes()); // original
        body.extend_from_slice(f);
        pcapng_block(&mut ng, 6, &body);
    }
    let f = &frames[0].2;
    let mut body = (f.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(f);
    pcapng_block(&mut ng, 3, &body);
    std::fs::write(dir.join("read_pcapng").join("epb_spb.pcapng"), &ng).expect("write seed");
    println!("seeds written under {}", dir.display());
}
