//! Dissector properties on built frames: every encapsulation yields the
//! flow that was put in; fragments, ICMP quotes and VLANs are reported; no
//! input bytes make it panic; a frame cut anywhere reports truncation at a
//! header and keeps the layers before the cut.

use proptest::prelude::*;
use symrss_wire::build::*;
use symrss_wire::{Encap, ErrorKind, Options, Tuple, dissect};

const ETHERNET: u32 = 1;

fn flow() -> impl Strategy<Value = ([u8; 4], [u8; 4], u16, u16)> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<u16>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encapsulations_yield_the_inner_flow((s, d, sp, dp) in flow(), vlans in proptest::collection::vec(0u16..4096, 0..3),
                                           kind in 0usize..6, use_tcp in any::<bool>()) {
        // A UDP port of a tunnel makes the dissector read the payload as
        // that tunnel (by either port), so the generated flow would not be
        // the innermost one: those ports have tests of their own.
        let o = Options::default();
        let tunnel_ports = [o.vxlan_port, o.geneve_port, o.gtpu_port, o.teredo_port];
        prop_assume!(use_tcp || !(tunnel_ports.contains(&sp) || tunnel_ports.contains(&dp)));
        let l4 = if use_tcp { tcp(sp, dp, b"hello") } else { udp(sp, dp, b"hello") };
        let proto = if use_tcp { TCP } else { UDP };
        let inner = ipv4(s, d, proto, &l4);
        let outer_src = [192, 0, 2, 1];
        let outer_dst = [192, 0, 2, 2];
        let (l3, encap) = match kind {
            0 => (inner.clone(), Encap::None),
            1 => (ipv4(outer_src, outer_dst, IPIP, &inner), Encap::IpInIp),
            2 => (ipv4(outer_src, outer_dst, GRE, &gre(ETH_IPV4, &inner)), Encap::Gre),
            3 => (ipv4(outer_src, outer_dst, UDP, &udp(50000, 4789, &vxlan(7, &ethernet(ETH_IPV4, &inner)))), Encap::Vxlan),
            4 => (ipv4(outer_src, outer_dst, UDP, &udp(2152, 2152, &gtpu(9, &inner))), Encap::GtpU),
            _ => (ipv4(outer_src, outer_dst, GRE, &gre(0x6558, &ethernet_vlans(&[5], ETH_IPV4, &inner))), Encap::Gre),
        };
        let frame = ethernet_vlans(&vlans, ETH_IPV4, &l3);
        let k = dissect(ETHERNET, &frame, &Options::default());
        prop_assert_eq!(k.error, None);
        let innermost = k.innermost().unwrap();
        prop_assert_eq!(innermost.tuple.src_bytes(), &s[..]);
        prop_assert_eq!(innermost.tuple.dst_bytes(), &d[..]);
        prop_assert_eq!(innermost.tuple.ports(), Some((sp, dp)));
        prop_assert_eq!(innermost.proto, proto);
        prop_assert_eq!(innermost.encap, encap);
        prop_assert_eq!(k.ip_count, if kind == 0 { 1 } else { 2 });
        prop_assert_eq!(usize::from(k.vlan_count), vlans.len());
        prop_assert_eq!(k.vlans(), &vlans[..]);
        if kind != 0 {
            prop_assert_eq!(k.outer().unwrap().tuple.src_bytes(), &outer_src[..]);
            prop_assert_eq!(k.inner(), k.innermost());
        }
    }

    #[test]
    fn fragments_carry_ports_only_when_first((s, d, sp, dp) in flow(), id in any::<u16>(), off in 0u16..8000) {
        let off = off & !7;
        let frame = ethernet(ETH_IPV4, &ipv4_frag(s, d, UDP, Some((id, off, true)), &udp(sp, dp, &[0; 32])));
        let k = dissect(ETHERNET, &frame, &Options::default());
        let l = k.outer().unwrap();
        let f = l.frag.unwrap();
        prop_assert_eq!((f.id, f.offset, f.more), (u32::from(id), off, true));
        prop_assert_eq!(l.tuple.ports().is_some(), off == 0);
        let v6 = ethernet(ETH_IPV6, &ipv6([1; 16], [2; 16], 44, &ipv6_fragment(UDP, u32::from(id) << 8, off, false, &udp(sp, dp, b""))));
        let k = dissect(ETHERNET, &v6, &Options::default());
        let l = k.outer().unwrap();
        prop_assert_eq!(l.frag.unwrap().id, u32::from(id) << 8);
        prop_assert_eq!(l.proto, UDP);
        prop_assert_eq!(l.tuple.ports().is_some(), off == 0);
    }

    #[test]
    fn icmp_errors_quote_the_offending_flow((s, d, sp, dp) in flow()) {
        let offending = ipv4(s, d, UDP, &udp(sp, dp, &[0; 8]));
        let frame = ethernet(ETH_IPV4, &ipv4([10, 0, 0, 254], s, ICMP, &icmp(3, 3, &offending[..28])));
        let k = dissect(ETHERNET, &frame, &Options::default());
        let q = k.outer().unwrap().quoted.unwrap();
        prop_assert_eq!(q.proto, UDP);
        prop_assert_eq!(q.tuple.src_bytes(), &s[..]);
        prop_assert_eq!(q.tuple.ports(), Some((sp, dp)));
    }

    #[test]
    fn fast_path_equals_general_path((s, d, sp, dp) in flow(), vlans in proptest::collection::vec(0u16..4096, 0..4),
                                     proto in prop_oneof![Just(TCP), Just(UDP), Just(SCTP), Just(ICMP), Just(GRE)],
                                     mutate in proptest::collection::vec((0usize..80, any::<u8>()), 0..3), cut in 0usize..90) {
        let l4 = match proto { TCP => tcp(sp, dp, b"x"), ICMP => icmp(8, 0, b"ping"), _ => udp(sp, dp, b"x") };
        let mut frame = ethernet_vlans(&vlans, ETH_IPV4, &ipv4(s, d, proto, &l4));
        let tunnel_port = [4789, 6081, 2152, 3544].iter().any(|p| *p == sp || *p == dp);
        if vlans.len() <= 2 && matches!(proto, TCP | UDP | SCTP) && !(proto == UDP && tunnel_port) {
            let want = Tuple::from_v4_octets(s, d, Some((sp, dp)));
            prop_assert_eq!(symrss_wire::plain_tuple(1, &frame, &Options::default()), Some((want, proto)));
        }
        for (i, b) in mutate {
            if i < frame.len() {
                frame[i] = b;
            }
        }
        frame.truncate(frame.len().saturating_sub(cut));
        let fast = dissect(1, &frame, &Options::default());
        let mut general = symrss_wire::FlowKey::default();
        symrss_wire::dissect_general(1, &frame, &Options::default(), &mut general);
        prop_assert_eq!(&fast, &general);
        // The balancer's fast path: a tuple only where the key holds one
        // plain layer, and then exactly that layer's tuple and protocol.
        if let Some((tuple, proto)) = symrss_wire::plain_tuple(1, &frame, &Options::default()) {
            prop_assert_eq!(general.ip_count, 1);
            let l = general.outer().unwrap();
            prop_assert!(l.frag.is_none() && l.quoted.is_none() && general.error.is_none());
            prop_assert_eq!((l.tuple, l.proto), (tuple, proto));
        }
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), lt in prop_oneof![
        Just(0u32), Just(1), Just(9), Just(12), Just(101), Just(108), Just(113), Just(228), Just(229), Just(276), any::<u32>()]) {
        let k = dissect(lt, &bytes, &Options::default());
        if let Some(e) = k.error {
            prop_assert!(e.offset as usize <= bytes.len());
        }
    }

    #[test]
    fn cut_frames_report_truncation_and_keep_outer_layers((s, d, sp, dp) in flow(), cut in any::<prop::sample::Index>()) {
        let inner = ipv4(s, d, TCP, &tcp(sp, dp, b""));
        let frame = ethernet(ETH_IPV4, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], UDP, &udp(50000, 4789, &vxlan(1, &ethernet(ETH_IPV4, &inner)))));
        let at = cut.index(frame.len());
        let k = dissect(ETHERNET, &frame[..at], &Options::default());
        // Headers end at: eth 14, ip 34, udp 42, vxlan 50, eth 64, ip 84, tcp ports 88.
        if at < 88 {
            let e = k.error.expect("a cut frame is truncated");
            prop_assert_eq!(e.kind, ErrorKind::Truncated);
        } else {
            prop_assert_eq!(k.error, None);
        }
        prop_assert_eq!(k.is_ip(), at >= 34);
        prop_assert_eq!(k.ip_count >= 2, at >= 84);
    }
}

#[test]
fn mpls_pppoe_and_arp() {
    let ip = ipv4([10, 0, 0, 1], [10, 0, 0, 2], TCP, &tcp(1, 2, b""));
    let k = dissect(
        ETHERNET,
        &ethernet(ETH_MPLS, &mpls(&[100, 200], &ip)),
        &Options::default(),
    );
    assert_eq!(k.mpls_labels, 2);
    assert_eq!(k.outer().unwrap().tuple.ports(), Some((1, 2)));
    let mut pppoe = vec![0x11, 0, 0, 1, 0, 0, 0x00, 0x21];
    pppoe.extend_from_slice(&ip);
    let k = dissect(ETHERNET, &ethernet(0x8864, &pppoe), &Options::default());
    assert_eq!(k.outer().unwrap().tuple.ports(), Some((1, 2)));
    let k = dissect(ETHERNET, &ethernet(ETH_ARP, &[0; 28]), &Options::default());
    assert!(!k.is_ip() && k.error.is_none());
    assert_eq!(k.ethertype, ETH_ARP);
    let k = dissect(
        ETHERNET,
        &ethernet(ETH_IPV4, &ipv4([1; 4], [2; 4], IPIP, &ip)),
        &Options {
            decapsulate: false,
            ..Options::default()
        },
    );
    assert_eq!(k.ip_count, 1);
}

#[test]
fn nesting_beyond_the_depth_limit_is_an_error() {
    let mut p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], TCP, &tcp(1, 2, b""));
    for _ in 0..10 {
        p = ipv4([192, 0, 2, 1], [192, 0, 2, 2], IPIP, &p);
    }
    let k = dissect(ETHERNET, &ethernet(ETH_IPV4, &p), &Options::default());
    assert_eq!(k.error.unwrap().kind, ErrorKind::TooDeep);
    assert_eq!(k.ip_count, 9);
}
