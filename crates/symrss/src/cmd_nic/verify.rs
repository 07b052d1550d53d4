//! `symrss nic verify`: a live check of the device's steering — one
//! socket per receive queue (`PACKET_FANOUT_QM`), then which flows were
//! split between queues and whether the RX hash matches the configured
//! Toeplitz.

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use symrss_engine::nic::{self, FlowType, rxh};
use symrss_hash::{Fields, RssKey, Toeplitz, Transform, Tuple};
use symrss_sys::packet::{Fanout, PacketSocket, RingConfig};

use crate::Failure;
use crate::output::{Table, print_json};

use super::{VerifyArgs, read_device, runtime};

/// A flow as verify sees it: canonical tuple and protocol.
type FlowId = (Tuple, u8);

/// What one queue's socket saw.
#[derive(Default)]
struct QueueSeen {
    packets: u64,
    non_ip: u64,
    /// (flow, forward direction?) → packets.
    flows: HashMap<(FlowId, bool), u64>,
    hash_compared: u64,
    hash_matched: u64,
    hash_zero: u64,
    kernel_drops: u64,
}

/// What verify compares the RX hash with: the device's key and fields.
struct Expected {
    hasher: Toeplitz,
    fields: HashMap<FlowType, u64>,
    xfrm: Transform,
}

impl Expected {
    fn hash(&self, t: &Tuple, proto: u8) -> Option<u32> {
        let ft = FlowType::of(proto, t.is_v6())?;
        let f = *self.fields.get(&ft)?;
        let fields = if f & rxh::L4_B_0_1 != 0 {
            Fields::L4
        } else {
            Fields::Ip
        };
        Some(self.hasher.hash_tuple(t, fields, self.xfrm))
    }
}

fn capture_queue(
    mut sock: PacketSocket,
    stop: &AtomicBool,
    total: &AtomicU64,
    limit: u64,
    expected: Option<&Expected>,
) -> QueueSeen {
    let mut seen = QueueSeen::default();
    let opts = symrss_wire::Options::default();
    let mut key = symrss_wire::FlowKey::default();
    while !stop.load(Ordering::Relaxed) {
        let r = sock.next_block(50, |p| {
            seen.packets += 1;
            let mut frame = Vec::with_capacity(p.data.len() + 4);
            p.frame_into(&mut frame);
            symrss_wire::dissect_into(symrss_wire::linktype::ETHERNET, &frame, &opts, &mut key);
            let Some(l) = key.outer() else {
                seen.non_ip += 1;
                return;
            };
            let t = if l.frag.is_some_and(|f| f.more || f.offset != 0) {
                l.tuple.with_ports(None)
            } else {
                l.tuple
            };
            let canonical = t.canonical();
            *seen
                .flows
                .entry(((canonical, l.proto), canonical == t))
                .or_default() += 1;
            if let Some(exp) = expected
                && let Some(h) = exp.hash(&t, l.proto)
            {
                seen.hash_compared += 1;
                seen.hash_matched += u64::from(h == p.rx_hash);
                seen.hash_zero += u64::from(p.rx_hash == 0);
            }
        });
        match r {
            Ok(n) => {
                if total.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= limit {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                eprintln!("symrss: capture error: {e}");
                break;
            }
        }
    }
    // Packets still in the ring after the stop are not counted; the
    // kernel's counters are read last.
    if let Ok(s) = sock.stats() {
        seen.kernel_drops = s.drops;
    }
    seen
}

pub(super) fn verify(a: &VerifyArgs) -> Result<ExitCode, Failure> {
    let interface = &a.interface;
    let device = read_device(interface)?;
    let queues = a
        .queues
        .or(device.state.rx_queues)
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            runtime(format!(
                "{interface}: cannot tell how many receive queues it has; give --queues"
            ))
        })?;
    if queues > 1024 {
        return Err(Failure::Usage(format!(
            "{queues} queues is more than fanout allows (1024)"
        )));
    }
    let expected = device.state.rss.as_ref().ok().and_then(|t| {
        if t.hfunc != 0 && t.hfunc != nic::HFUNC_TOEPLITZ {
            return None;
        }
        let key = RssKey::from_bytes(&t.key).ok()?;
        let fields: HashMap<FlowType, u64> = device
            .state
            .fields
            .iter()
            .filter_map(|(ft, f)| f.map(|f| (*ft, f)))
            .collect();
        let xfrm = match t.input_xfrm {
            nic::XFRM_SYM_XOR => Transform::Xor,
            nic::XFRM_SYM_OR_XOR => Transform::OrXor,
            _ => Transform::None,
        };
        Some(Expected {
            hasher: Toeplitz::new(key),
            fields,
            xfrm,
        })
    });
    // Open and join every socket before any packet is counted, so the
    // group's member k is queue k.
    let group = (std::process::id() & 0xffff) as u16;
    let cfg = RingConfig {
        block_size: 1 << 20,
        block_count: 16,
        retire_ms: 20,
        rx_hash: true,
        ..RingConfig::default()
    };
    let mut socks = Vec::with_capacity(queues as usize);
    for _ in 0..queues {
        let s =
            PacketSocket::open(interface, &cfg).map_err(|e| runtime(format!("nic verify: {e}")))?;
        s.fanout(group, Fanout::QueueMapping)
            .map_err(|e| runtime(format!("nic verify: {interface}: {e}")))?;
        socks.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let limit = a.packets.unwrap_or(u64::MAX);
    let expected = Arc::new(expected);
    eprintln!(
        "symrss: nic verify: capturing on {interface}, {queues} queues (PACKET_FANOUT_QM), for {} s{}",
        a.seconds,
        a.packets
            .map_or(String::new(), |n| format!(" or {n} packets"))
    );
    let handles: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let (stop, total, expected) =
                (Arc::clone(&stop), Arc::clone(&total), Arc::clone(&expected));
            std::thread::spawn(move || {
                capture_queue(s, &stop, &total, limit, expected.as_ref().as_ref())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds.max(0.0));
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let per_queue: Vec<QueueSeen> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| runtime("a capture thread panicked")))
        .collect::<Result<_, _>>()?;
    report(a, queues, &per_queue, expected.is_some())
}

/// Per flow: for each direction, the queues it reached and its packets.
#[derive(Default)]
struct FlowSeen {
    queues: [BTreeSet<u32>; 2],
    packets: [u64; 2],
}

fn report(
    a: &VerifyArgs,
    queues: u32,
    per_queue: &[QueueSeen],
    compared_hash: bool,
) -> Result<ExitCode, Failure> {
    let mut flows: HashMap<FlowId, FlowSeen> = HashMap::new();
    for (q, seen) in per_queue.iter().enumerate() {
        for (&(id, forward), &n) in &seen.flows {
            let f = flows.entry(id).or_default();
            let d = usize::from(!forward);
            f.queues[d].insert(q as u32);
            f.packets[d] += n;
        }
    }
    let packets: u64 = per_queue.iter().map(|s| s.packets).sum();
    let non_ip: u64 = per_queue.iter().map(|s| s.non_ip).sum();
    let drops: u64 = per_queue.iter().map(|s| s.kernel_drops).sum();
    let two_way = flows
        .values()
        .filter(|f| f.packets[0] > 0 && f.packets[1] > 0)
        .count();
    let mut split: Vec<(&FlowId, &FlowSeen)> = flows
        .iter()
        .filter(|(_, f)| {
            let all: BTreeSet<u32> = f.queues[0].union(&f.queues[1]).copied().collect();
            all.len() > 1
        })
        .collect();
    split.sort_by_key(|(_, f)| std::cmp::Reverse(f.packets[0] + f.packets[1]));
    let (compared, matched, zero) = per_queue.iter().fold((0, 0, 0), |acc, s| {
        (
            acc.0 + s.hash_compared,
            acc.1 + s.hash_matched,
            acc.2 + s.hash_zero,
        )
    });
    let symmetric = two_way > 0 && split.is_empty();
    let verdict = if split.is_empty() && two_way == 0 {
        "inconclusive: no flow was seen in both directions (generate two-way traffic while verifying)".to_string()
    } else if split.is_empty() {
        format!("symmetric: all {two_way} two-way flows kept both directions on one queue")
    } else {
        format!(
            "BROKEN: {} of {} flows reached more than one queue ({} of {} two-way flows seen)",
            split.len(),
            flows.len(),
            two_way,
            flows.len()
        )
    };
    let hash_note = if !compared_hash {
        "RX hash not compared: the device's key is not readable or its hash function is not Toeplitz".to_string()
    } else if compared == 0 {
        "RX hash: no TCP/UDP packet to compare".to_string()
    } else if matched == compared {
        format!(
            "RX hash: all {compared} TCP/UDP packets carry exactly symrss's Toeplitz hash for the configured key"
        )
    } else {
        format!(
            "RX hash: {matched} of {compared} TCP/UDP packets match symrss's Toeplitz hash for the configured key ({zero} had none); \
             a mismatch means the driver reports another hash (or the kernel's software hash), not the NIC's Toeplitz value"
        )
    };
    let flow_name = |id: &FlowId| {
        let t = &id.0;
        match t.ports() {
            Some((sp, dp)) => format!(
                "{} {}:{sp} <-> {}:{dp}",
                proto_name(id.1),
                t.src_ip(),
                t.dst_ip()
            ),
            None => format!("{} {} <-> {}", proto_name(id.1), t.src_ip(), t.dst_ip()),
        }
    };
    if a.json {
        print_json(&json!({
            "interface": a.interface,
            "queues": queues,
            "packets": packets,
            "non_ip": non_ip,
            "kernel_drops": drops,
            "per_queue": per_queue.iter().map(|s| s.packets).collect::<Vec<_>>(),
            "flows": flows.len(),
            "two_way_flows": two_way,
            "split_flows": split.len(),
            "symmetric": symmetric,
            "verdict": verdict,
            "split": split.iter().take(a.show).map(|(id, f)| json!({
                "flow": flow_name(id),
                "forward_queues": f.queues[0],
                "reverse_queues": f.queues[1],
                "forward_packets": f.packets[0],
                "reverse_packets": f.packets[1],
            })).collect::<Vec<_>>(),
            "rx_hash": {"compared": compared, "matched": matched, "zero": zero, "note": hash_note},
        }))?;
    } else {
        println!("{}: {verdict}", a.interface);
        let mut t = Table::new(&["queue", "packets"]);
        for (q, s) in per_queue.iter().enumerate() {
            t.row(vec![q.to_string(), s.packets.to_string()]);
        }
        print!("{}", t.render());
        println!(
            "packets {packets} (non-IP {non_ip}, dropped by the kernel {drops}); flows {}, two-way {two_way}, split {}",
            flows.len(),
            split.len()
        );
        for (id, f) in split.iter().take(a.show) {
            println!(
                "  split: {}: forward {} pkts on {:?}, reverse {} pkts on {:?}",
                flow_name(id),
                f.packets[0],
                f.queues[0],
                f.packets[1],
                f.queues[1]
            );
        }
        println!("{hash_note}");
    }
    Ok(if symmetric {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_hash_expectation_is_the_microsoft_toeplitz_of_the_configured_fields() {
        // Microsoft's first RSS verification vector: 66.9.149.187:2794 →
        // 161.142.100.80:1766, 4-tuple 0x51ccc178, 2-tuple 0x323e8fc2.
        let t = Tuple::v4(
            [66, 9, 149, 187].into(),
            [161, 142, 100, 80].into(),
            Some((2794, 1766)),
        );
        let exp = |fields: u64, xfrm| Expected {
            hasher: Toeplitz::new(RssKey::microsoft(40)),
            fields: FlowType::ALL.iter().map(|&ft| (ft, fields)).collect(),
            xfrm,
        };
        assert_eq!(
            exp(rxh::SDFN, Transform::None).hash(&t, 6),
            Some(0x51cc_c178)
        );
        assert_eq!(
            exp(rxh::SD, Transform::None).hash(&t, 17),
            Some(0x323e_8fc2)
        );
        // Not a TCP/UDP flow type: nothing to compare.
        assert_eq!(exp(rxh::SDFN, Transform::None).hash(&t, 1), None);
        // Under symmetric-xor both directions give the same value.
        let x = exp(rxh::SDFN, Transform::Xor);
        assert_eq!(x.hash(&t, 6), x.hash(&t.reversed(), 6));
    }
}
