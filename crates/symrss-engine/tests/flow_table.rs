//! The balancer's flow table under floods and churn: bounded, nothing
//! lost, overflow counted exactly, ended flows make room.

use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, FnSink, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::{HashLayer, Policy};
use symrss_wire::build::{ETH_IPV4, TCP, ethernet, ipv4, tcp};

/// Offset of the TCP flags in a frame built below.
const FLAGS: usize = 14 + 20 + 13;

fn frame(flow: u32, reverse: bool, flags: u8) -> Vec<u8> {
    let a = [10, (flow >> 16) as u8, (flow >> 8) as u8, flow as u8];
    let b = [192, 0, 2, 1];
    let (sp, dp) = (1024 + (flow % 50_000) as u16, 443);
    let mut f = if reverse {
        ethernet(ETH_IPV4, &ipv4(b, a, TCP, &tcp(dp, sp, &[])))
    } else {
        ethernet(ETH_IPV4, &ipv4(a, b, TCP, &tcp(sp, dp, &[])))
    };
    f[FLAGS] = flags;
    f
}

fn run(cfg: EngineConfig, packets: impl Iterator<Item = (i128, Vec<u8>)>) -> AppStats {
    let sinks: Vec<Box<dyn Sink>> = (0..4)
        .map(|_| Box::new(FnSink(|_: &PacketMeta, _: &[u8]| {})) as Box<dyn Sink>)
        .collect();
    let app = AppConfig {
        name: "sym".into(),
        queues: 4,
        policy: Policy::parse("sym", HashLayer::Outer, 1).unwrap(),
        loss: LossPolicy::Lossless,
    };
    let mut b = Balancer::start(vec![(app, sinks)], cfg).unwrap();
    for (ts, f) in packets {
        b.push(ts, f.len() as u32, 1, &f);
    }
    b.finish().pop().unwrap()
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_flood_of_new_flows_is_bounded_and_counted() {
    const FLOWS: u32 = 300_000;
    const MAX: usize = 1_000;
    let cfg = EngineConfig {
        max_flows: MAX,
        ..EngineConfig::default()
    };
    // One SYN per flow, all within 0.3 s of packet time (nothing idles out).
    let stats = run(
        cfg,
        (0..FLOWS).map(|i| (i128::from(i) * 1_000, frame(i, false, 0x02))),
    );
    assert_eq!(stats.received, u64::from(FLOWS));
    assert_eq!(stats.delivered(), u64::from(FLOWS), "nothing lost");
    assert_eq!(stats.dropped(), 0);
    let stored: u64 = stats.queues.iter().map(|q| q.flows).sum();
    assert_eq!(stored, MAX as u64, "the table holds exactly its bound");
    assert_eq!(stats.packets_untracked, u64::from(FLOWS) - MAX as u64);
    assert_eq!(stats.affinity_violations, 0);
    // Bounded memory: this process (the test binary, its arenas and this
    // run) stays far below what 300,000 stored flows would need per app
    // at any table layout plus the arenas.
    assert!(vm_hwm_kib() < 256 * 1024, "VmHWM {} KiB", vm_hwm_kib());
}

#[test]
fn ended_flows_make_room_for_new_ones() {
    const FLOWS: u32 = 100_000;
    let cfg = EngineConfig {
        max_flows: 1_000,
        flow_idle_ns: 8 << 30,
        ..EngineConfig::default()
    };
    // Short TCP flows one after another, 10 ms apart (1,000 s in all):
    // SYN, FIN one way, FIN the other way. Far more flows than the bound
    // pass through; each ended flow leaves, so every one is tracked.
    let packets = (0..FLOWS).flat_map(|i| {
        let ts = i128::from(i) * 10_000_000;
        [
            (ts, frame(i, false, 0x02)),
            (ts + 1_000, frame(i, false, 0x11)),
            (ts + 2_000, frame(i, true, 0x11)),
        ]
    });
    let stats = run(cfg, packets);
    assert_eq!(stats.delivered(), 3 * u64::from(FLOWS));
    assert_eq!(stats.packets_untracked, 0, "ended flows left the table");
    let counted: u64 = stats.queues.iter().map(|q| q.flows).sum();
    assert_eq!(counted, u64::from(FLOWS), "each flow counted once");
    assert_eq!(stats.affinity_violations, 0);
}

#[test]
fn without_ends_the_same_churn_overflows() {
    // The control for the test above: the same flows without FINs stay
    // until they idle out (8 s), so 800 flows live at once fit, but with a
    // bound of 500 some are untracked.
    const FLOWS: u32 = 20_000;
    let cfg = EngineConfig {
        max_flows: 500,
        flow_idle_ns: 8 << 30,
        ..EngineConfig::default()
    };
    let packets = (0..FLOWS).map(|i| (i128::from(i) * 10_000_000, frame(i, false, 0x02)));
    let stats = run(cfg, packets);
    assert_eq!(stats.delivered(), u64::from(FLOWS));
    assert!(stats.packets_untracked > 0, "{stats:?}");
    let counted: u64 = stats.queues.iter().map(|q| q.flows).sum();
    assert_eq!(counted + stats.packets_untracked, u64::from(FLOWS));
}
