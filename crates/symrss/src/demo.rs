//! `symrss demo`: the main job on a built-in traffic mix.
//!
//! Generates a seeded mix (bidirectional TCP/UDP over IPv4 and IPv6, VLAN
//! tags, fragmented UDP with some datagrams sent last fragment first, a
//! GTP-U tunnel, ICMP errors), runs it through the balancer for two
//! applications under each scheme — `ids` hashing the outer headers and
//! `dpi` the innermost ones — and reports, against the generator's ground
//! truth, how many flows each app got split across queues and how evenly
//! the queues were loaded. Every number printed is computed.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, FnSink, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::traffic::{FlowKind, GenPacket, generate};
use symrss_engine::{HashLayer, Policy};
use symrss_hash::analysis::check_key;
use symrss_hash::{Layout, RssKey};

use crate::Failure;
use crate::output::Table;

/// Arguments of `symrss demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Flows in the generated mix.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    flows: u32,
    /// Seed of the mix and of the random keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Queues of the `ids` app (`dpi` gets 2).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    queues: u32,
}

const SCHEMES: [&str; 7] = ["ms", "sym", "sym-ip", "xor", "sort", "keyed", "nic:ixgbe"];

/// Per app: flows on more than one queue, max/mean queue load.
struct AppResult {
    split: usize,
    split_by_kind: HashMap<FlowKind, usize>,
    imbalance: f64,
    stats: AppStats,
}

fn run_scheme(
    mix: &[GenPacket],
    scheme: &str,
    seed: u64,
    queues: u32,
) -> Result<Vec<AppResult>, Failure> {
    let apps = [
        ("ids", queues, HashLayer::Outer),
        ("dpi", 2, HashLayer::Innermost),
    ];
    let mut configs = Vec::new();
    let mut logs = Vec::new();
    for (name, q, layer) in apps {
        let log: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
        let sinks: Vec<Box<dyn Sink>> = (0..q)
            .map(|qi| {
                let log = Arc::clone(&log);
                Box::new(FnSink(move |m: &PacketMeta, _: &[u8]| {
                    log.lock().expect("demo log").push((qi, m.index))
                })) as Box<dyn Sink>
            })
            .collect();
        let policy =
            Policy::parse(scheme, layer, seed).map_err(|e| Failure::Runtime(e.to_string()))?;
        configs.push((
            AppConfig {
                name: name.into(),
                queues: q,
                policy,
                loss: LossPolicy::Lossless,
            },
            sinks,
        ));
        logs.push((log, q));
    }
    let mut b = Balancer::start(configs, EngineConfig::default())
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    for p in mix {
        b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
    }
    let stats = b.finish();
    let mut out = Vec::new();
    for ((log, q), st) in logs.into_iter().zip(stats) {
        let log = log.lock().expect("demo log");
        let mut queues_of: HashMap<u32, u64> = HashMap::new();
        let mut load = vec![0u64; q as usize];
        for (qi, i) in log.iter() {
            *queues_of.entry(mix[*i as usize].flow).or_default() |= 1 << qi;
            load[*qi as usize] += 1;
        }
        let split = queues_of.values().filter(|m| m.count_ones() > 1).count();
        let kind_of: HashMap<u32, FlowKind> = mix.iter().map(|p| (p.flow, p.kind)).collect();
        let mut split_by_kind: HashMap<FlowKind, usize> = HashMap::new();
        for (f, m) in &queues_of {
            if m.count_ones() > 1 {
                *split_by_kind.entry(kind_of[f]).or_default() += 1;
            }
        }
        let mean = log.len() as f64 / f64::from(q);
        let imbalance = if mean > 0.0 {
            *load.iter().max().unwrap_or(&0) as f64 / mean
        } else {
            1.0
        };
        out.push(AppResult {
            split,
            split_by_kind,
            imbalance,
            stats: st,
        });
    }
    Ok(out)
}

/// Runs `symrss demo`.
pub fn run(args: &DemoArgs) -> Result<ExitCode, Failure> {
    let mix = generate(args.seed, args.flows);
    let mut kinds: HashMap<FlowKind, u32> = HashMap::new();
    let mut flows_seen = std::collections::HashSet::new();
    for p in &mix {
        if flows_seen.insert(p.flow) {
            *kinds.entry(p.kind).or_default() += 1;
        }
    }
    let count = |k| kinds.get(&k).copied().unwrap_or(0);
    println!(
        "symrss demo: {} packets of {} bidirectional flows (seed {}): {} TCP/IPv4, {} UDP/IPv4 (some with ICMP errors), \
         {} TCP/IPv6, {} VLAN-tagged, {} with fragmented datagrams (some sent last fragment first), {} inside GTP-U",
        mix.len(),
        flows_seen.len(),
        args.seed,
        count(FlowKind::Tcp4),
        count(FlowKind::Udp4),
        count(FlowKind::Tcp6),
        count(FlowKind::VlanTcp4),
        count(FlowKind::Fragmented),
        count(FlowKind::Gtp)
    );
    println!(
        "two applications share one copy of each packet: `ids` ({} queues, outer headers) and `dpi` (2 queues, innermost headers)\n",
        args.queues
    );
    let mut t = Table::new(&[
        "scheme",
        "ids: flows split",
        "ids: imbalance",
        "dpi: flows split",
        "dpi: imbalance",
        "delivered / received",
    ]);
    let mut results = Vec::new();
    for scheme in SCHEMES {
        let r = run_scheme(&mix, scheme, args.seed, args.queues)?;
        let delivered: u64 = r.iter().map(|a| a.stats.delivered()).sum();
        let received: u64 = r.iter().map(|a| a.stats.received).sum();
        t.row(vec![
            scheme.to_string(),
            r[0].split.to_string(),
            format!("{:.2}", r[0].imbalance),
            r[1].split.to_string(),
            format!("{:.2}", r[1].imbalance),
            format!("{delivered} / {received}"),
        ]);
        results.push((scheme, r));
    }
    print!("{}", t.render());
    let split_of = |name: &str| {
        results
            .iter()
            .find(|(s, _)| *s == name)
            .map_or(0, |(_, r)| r[0].split)
    };
    println!(
        "\nms, the Microsoft default key, sends the two directions of {} flows to different `ids` queues: no worker sees those sessions whole.",
        split_of("ms")
    );
    let symmetric_splits: usize = results
        .iter()
        .filter(|(s, _)| !matches!(*s, "ms" | "nic:ixgbe"))
        .map(|(_, r)| r.iter().map(|a| a.split).sum::<usize>())
        .sum();
    if symmetric_splits == 0 {
        println!(
            "The symmetric software schemes split none, in either app: later fragments follow their first fragment, \
             ICMP errors follow the flow they quote."
        );
    } else {
        println!(
            "The symmetric software schemes split {symmetric_splits} flows in total (see the table)."
        );
    }
    if let Some((_, r)) = results.iter().find(|(s, _)| *s == "nic:ixgbe") {
        let by = |k| r[0].split_by_kind.get(&k).copied().unwrap_or(0);
        println!(
            "nic:ixgbe (the NIC's RSS as `symrss nic apply` leaves it: symmetric key, UDP hashed by addresses, fragments by addresses) \
             splits {} flows: {} UDP flows whose ICMP errors it hashes by the error's own header, {} fragmented, {} other.",
            r[0].split,
            by(FlowKind::Udp4),
            by(FlowKind::Fragmented),
            r[0].split - by(FlowKind::Udp4) - by(FlowKind::Fragmented)
        );
    }
    println!("\nWhy (symrss key check):");
    for (name, key) in [
        ("ms", RssKey::microsoft(40)),
        ("sym", RssKey::repeating(0x6d5a, 40)),
    ] {
        let c = check_key(&key);
        println!(
            "  {name:<4} symmetric for all layouts: {:<5}  tcp4 effective bits: {}",
            c.symmetric_all(),
            c.layout(Layout::Tcp4).rank
        );
    }
    println!(
        "  The 0x6d5a key buys symmetry with entropy (a 16-bit fold of the tuple); `symrss key gen` finds symmetric keys\n  \
         with 32 effective bits, and `keyed` (SipHash over ordered endpoints) resists crafted collisions."
    );
    Ok(ExitCode::SUCCESS)
}
