//! `symrss bench`: quick built-in micro-benchmarks.
//!
//! Method (DESIGN.md): 4096 pre-generated random tuples, each benchmark
//! repeats single-tuple calls over them until at least `--calls` calls
//! (default 10 M), best of three runs, reported as ns per call. Criterion
//! benches in `crates/*/benches` give the statistically careful numbers;
//! this command is for a quick look on any machine and for BENCHMARKS.md.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde::Serialize;
use symrss_hash::kernel::{Kernel, KernelFn};
use symrss_hash::{Fields, Path, RssKey, Scheme, Toeplitz, Transform, Tuple};

use crate::Failure;
use crate::output::{Table, print_json};

/// Which group to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Group {
    /// Toeplitz paths, keyed hash, batch API.
    Hash,
    /// Frame dissection to flow keys.
    Dissect,
    /// The balancer: steering thread and consumer threads.
    Engine,
    /// Not a timing: the imbalance of the static table and of rebalancing
    /// against the lower bound, on the generated heavy-tailed mix (three
    /// seeds, 4 and 8 queues, `sym` and `keyed`).
    Rebalance,
    /// Every timing group (hash, dissect, engine).
    All,
}

/// Arguments of `symrss bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    group: Group,
    /// Minimum calls per benchmark.
    #[arg(long, default_value_t = 10_000_000)]
    calls: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Engine benches: pin the steering thread to CPU 0 and the consumer
    /// threads to the other CPUs.
    #[arg(long)]
    pin: bool,
    /// Engine benches: also measure N steering workers (each steering its
    /// own share of the frames into the same app queues, merged in time
    /// order) against one, as aggregate Mpps.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Engine benches: also steer traffic of this many concurrent flows
    /// (a list: `4096,65536,1M`; `new` is a distinct flow per packet, a
    /// SYN flood or a scan), visited in a random order, so the flow state
    /// leaves the cache as on a real link (`engine.flows_<F>_<A>apps`,
    /// instead of the 4,096-tuple engine benches).
    #[arg(long, value_delimiter = ',', value_parser = parse_flows, value_name = "F")]
    flows: Vec<Flows>,
    /// With --flows: how many apps steer each packet (a list; app i is
    /// sym, keyed, xor, sym, … with 4 counting queues each).
    #[arg(long, value_delimiter = ',', default_value = "1,3", value_name = "A")]
    apps: Vec<usize>,
}

/// A flow count for `--flows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flows {
    /// This many flows, each seen again after the others.
    Concurrent(u64),
    /// A new flow for every packet.
    New,
}

fn parse_flows(s: &str) -> Result<Flows, String> {
    if s == "new" {
        return Ok(Flows::New);
    }
    let (digits, scale) = match s.strip_suffix(['M', 'm']) {
        Some(d) => (d, 1_000_000),
        None => match s.strip_suffix(['k', 'K']) {
            Some(d) => (d, 1_000),
            None => (s, 1),
        },
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Flows::Concurrent(n * scale)),
        _ => Err(format!(
            "{s:?}: a flow count (4096, 64k, 1M) or `new` (a new flow per packet)"
        )),
    }
}

impl std::fmt::Display for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::New => f.write_str("new"),
            Self::Concurrent(n) if n % 1_000_000 == 0 => write!(f, "{}M", n / 1_000_000),
            Self::Concurrent(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Serialize)]
struct BenchResult {
    name: String,
    ns_per_op: f64,
    detail: String,
}

#[derive(Serialize)]
struct BenchReport {
    tuples: usize,
    calls_per_bench: u64,
    results: Vec<BenchResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imbalance: Vec<ImbalanceRow>,
}

/// One `bench rebalance` run: busiest queue over mean, summed over 1 s
/// windows of packet time.
#[derive(Serialize)]
struct ImbalanceRow {
    seed: u64,
    scheme: &'static str,
    queues: u32,
    packets: u64,
    static_imbalance: f64,
    rebalanced: f64,
    lower_bound: f64,
    moves: u64,
    pinned_flows: u64,
    flows_split: u64,
}

/// The heavy-tailed mix (20,000 flows over 10 s of packet time, see
/// `symrss_engine::traffic::heavy_tailed`) through the analyzer: each
/// scheme static and rebalanced with the default settings.
fn rebalance_rows() -> Vec<ImbalanceRow> {
    use symrss_engine::analyze::{AnalyzeConfig, Analyzer};
    use symrss_engine::rebalance::RebalanceConfig;
    use symrss_engine::{HashLayer, Policy};
    let mut rows = Vec::new();
    for seed in 1..=3 {
        let traffic = symrss_engine::traffic::heavy_tailed(seed, 20_000, 10_000_000_000);
        for queues in [4, 8] {
            let mut policies = Vec::new();
            for scheme in ["sym", "keyed"] {
                let p = Policy::parse(scheme, HashLayer::Outer, seed).expect("built-in scheme");
                policies.push(p.with_rebalance(RebalanceConfig::default()));
            }
            let mut a = Analyzer::new(
                policies,
                AnalyzeConfig {
                    queues,
                    ..AnalyzeConfig::default()
                },
            );
            for p in &traffic {
                a.packet(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
            }
            let report = a.finish();
            for (s, scheme) in report.schemes.iter().zip(["sym", "keyed"]) {
                let r = s.rebalance.as_ref().expect("rebalanced");
                rows.push(ImbalanceRow {
                    seed,
                    scheme,
                    queues,
                    packets: report.packets,
                    static_imbalance: r.static_imbalance(),
                    rebalanced: r.imbalance(),
                    lower_bound: r.bound(),
                    moves: r.moves,
                    pinned_flows: r.pinned_flows,
                    flows_split: s.flows_split,
                });
            }
        }
    }
    rows
}

/// Number of distinct pre-generated tuples.
pub const TUPLES: usize = 4096;

use symrss_engine::traffic::SplitMix64 as SplitMix;

fn random_tuples(v6: bool) -> Vec<Tuple> {
    let mut r = SplitMix(if v6 { 6 } else { 4 });
    (0..TUPLES)
        .map(|_| {
            let ports = Some((r.next_u64() as u16, r.next_u64() as u16));
            if v6 {
                let s = (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64());
                let d = (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64());
                Tuple::v6(s.into(), d.into(), ports)
            } else {
                Tuple::v4(
                    (r.next_u64() as u32).into(),
                    (r.next_u64() as u32).into(),
                    ports,
                )
            }
        })
        .collect()
}

/// Times `f` over `items`, repeated to at least `calls` calls; best of 3.
#[inline(always)]
fn time_per_call<T>(items: &[T], calls: u64, mut f: impl FnMut(&T) -> u32) -> f64 {
    let reps = calls.div_ceil(items.len() as u64).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mut acc = 0u32;
        for _ in 0..reps {
            // The slice is opaque to the optimizer once per pass, the same
            // loop shape as the C loop in bench/dpdk (no barrier per call).
            for t in black_box(items) {
                acc ^= f(t);
            }
        }
        black_box(acc);
        let ns = start.elapsed().as_nanos() as f64 / (reps * items.len() as u64) as f64;
        best = best.min(ns);
    }
    best
}

/// The timing loop as a kernel computation: the hasher's path is resolved
/// once and the loop is compiled for it, as a steering loop would be.
struct KernelLoop<'a> {
    tuples: &'a [Tuple],
    calls: u64,
}

impl KernelFn for KernelLoop<'_> {
    type Output = f64;
    #[inline(always)]
    fn call<K: Kernel>(self, k: &K) -> f64 {
        time_per_call(self.tuples, self.calls, |t| k.hash_tuple(t, Fields::L4))
    }
}

fn hash_benches(calls: u64, out: &mut Vec<BenchResult>) {
    let families = [
        ("ipv4", random_tuples(false)),
        ("ipv6", random_tuples(true)),
    ];
    // Warm-up, not reported: the first timed loop of a fresh process ran
    // ~50 % slower than the same loop right after it (clock ramp-up).
    let warm = Toeplitz::new(RssKey::microsoft(40));
    black_box(time_per_call(&families[0].1, calls, |t| {
        warm.hash_tuple(t, Fields::L4, Transform::None)
    }));
    let keys = [
        ("ms", RssKey::microsoft(40)),
        ("sym", RssKey::repeating(0x6d5a, 40)),
    ];
    for (fam, tuples) in &families {
        for (kname, key) in &keys {
            // The default path first (the contract names), then each path.
            let h = Toeplitz::new(key.clone());
            let ns = h.with_kernel(KernelLoop { tuples, calls });
            out.push(BenchResult {
                name: format!("hash.{fam}.{kname}"),
                ns_per_op: ns,
                detail: format!(
                    "single-tuple calls in a kernel loop, default path {}",
                    h.path().name()
                ),
            });
            let ns = time_per_call(tuples, calls, |t| {
                h.hash_tuple(t, Fields::L4, Transform::None)
            });
            out.push(BenchResult {
                name: format!("hash.{fam}.{kname}.dyn"),
                ns_per_op: ns,
                detail: "Toeplitz::hash_tuple per call (path dispatch per call)".into(),
            });
            for path in [Path::Fold, Path::Gfni, Path::Table, Path::Bitwise] {
                let Some(h) = Toeplitz::with_path(key.clone(), path) else {
                    continue;
                };
                let n = if path == Path::Bitwise {
                    calls / 10
                } else {
                    calls
                };
                let ns = h.with_kernel(KernelLoop { tuples, calls: n });
                out.push(BenchResult {
                    name: format!("hash.{fam}.{kname}.{}", path.name()),
                    ns_per_op: ns,
                    detail: "single-tuple calls in a kernel loop".into(),
                });
            }
        }
        // Batch API over pre-built inputs.
        for (kname, key) in &keys {
            let h = Toeplitz::new(key.clone());
            let ns = if *fam == "ipv4" {
                batch_time::<12>(&h, tuples, calls)
            } else {
                batch_time::<36>(&h, tuples, calls)
            };
            out.push(BenchResult {
                name: format!("hash.{fam}.{kname}.batch"),
                ns_per_op: ns,
                detail: format!("hash_many over pre-built inputs, path {}", h.path().name()),
            });
        }
        for scheme in ["keyed", "xor", "sort"] {
            let s = Scheme::parse(scheme, 1).expect("built-in scheme");
            let ns = time_per_call(tuples, calls, |t| s.hash(t));
            out.push(BenchResult {
                name: format!("hash.{fam}.{scheme}"),
                ns_per_op: ns,
                detail: "scheme incl. input transform".into(),
            });
        }
    }
}

/// 4096 frames of one shape with random addresses and ports.
fn frames(shape: &str) -> Vec<Vec<u8>> {
    use symrss_wire::build::*;
    let mut r = SplitMix(7);
    (0..TUPLES)
        .map(|_| {
            let (a, b) = (
                (r.next_u64() as u32).to_be_bytes(),
                (r.next_u64() as u32).to_be_bytes(),
            );
            let (sp, dp) = (r.next_u64() as u16, r.next_u64() as u16);
            let ip = ipv4(a, b, TCP, &tcp(sp, dp, &[0; 6]));
            match shape {
                "eth_ipv4_tcp" => ethernet(ETH_IPV4, &ip),
                "eth_qinq_ipv6_udp" => {
                    let mut s6 = [0u8; 16];
                    let mut d6 = [0u8; 16];
                    s6[..8].copy_from_slice(&r.next_u64().to_be_bytes());
                    d6[8..].copy_from_slice(&r.next_u64().to_be_bytes());
                    ethernet_vlans(
                        &[10, 20],
                        ETH_IPV6,
                        &ipv6(s6, d6, UDP, &udp(sp, dp, &[0; 8])),
                    )
                }
                _ => ethernet(
                    ETH_IPV4,
                    &ipv4(
                        [192, 0, 2, 1],
                        [192, 0, 2, 2],
                        UDP,
                        &udp(sp | 0xc000, 4789, &vxlan(42, &ethernet(ETH_IPV4, &ip))),
                    ),
                ),
            }
        })
        .collect()
}

fn dissect_benches(calls: u64, out: &mut Vec<BenchResult>) {
    let opts = symrss_wire::Options::default();
    for shape in ["eth_ipv4_tcp", "eth_qinq_ipv6_udp", "eth_vxlan_ipv4_tcp"] {
        let fs = frames(shape);
        let mut key = symrss_wire::FlowKey::default();
        let ns = time_per_call(&fs, calls, |f| {
            symrss_wire::dissect_into(1, f, &opts, &mut key);
            key.innermost()
                .map_or(0, |l| u32::from(l.tuple.ports().map_or(0, |p| p.0)))
        });
        out.push(BenchResult {
            name: format!("dissect.{shape}"),
            ns_per_op: ns,
            detail: "frame to FlowKey, 4096 random frames".into(),
        });
    }
}

/// 64-byte Ethernet/IPv4/TCP frames with random addresses and ports.
fn frames_64b() -> Vec<Vec<u8>> {
    frames("eth_ipv4_tcp")
        .into_iter()
        .map(|mut f| {
            f.resize(64, 0);
            f
        })
        .collect()
}

/// Apps `(scheme, queues)` on the outer layer whose queues only count
/// bytes (the cost of a consumer that does nothing but read the packet);
/// `SCHEME:rebalance` rebalances with the default settings.
fn counting_apps(
    apps: &[(&str, u32)],
    loss: symrss_engine::balancer::LossPolicy,
) -> Vec<(
    symrss_engine::balancer::AppConfig,
    Vec<Box<dyn symrss_engine::balancer::Sink>>,
)> {
    use symrss_engine::balancer::{AppConfig, FnSink, PacketMeta, Sink};
    use symrss_engine::{HashLayer, Policy};
    apps.iter()
        .map(|(scheme, queues)| {
            let sinks: Vec<Box<dyn Sink>> = (0..*queues)
                .map(|_| {
                    let mut n = 0u64;
                    Box::new(FnSink(move |_: &PacketMeta, d: &[u8]| {
                        n += d.len() as u64;
                        black_box(n);
                    })) as Box<dyn Sink>
                })
                .collect();
            let (base, rebalanced) = crate::rebalance_args::split_flag(scheme);
            let policy = Policy::parse(&base, HashLayer::Outer, 1).expect("built-in scheme");
            let app = AppConfig {
                name: scheme.to_string(),
                queues: *queues,
                policy: if rebalanced {
                    policy.with_rebalance(symrss_engine::rebalance::RebalanceConfig::default())
                } else {
                    policy
                },
                loss,
            };
            (app, sinks)
        })
        .collect()
}

/// Pushes `calls` packets through a balancer with counting consumers.
/// Returns (ns per packet for the pushing loop, ns per packet until every
/// consumer finished, packets dropped).
fn engine_run(
    frames: &[Vec<u8>],
    calls: u64,
    apps: &[(&str, u32)],
    loss: symrss_engine::balancer::LossPolicy,
    pin: bool,
) -> (f64, f64, u64) {
    use symrss_engine::balancer::{Balancer, EngineConfig};
    let configs = counting_apps(apps, loss);
    let cfg = EngineConfig {
        on_consumer_start: pin.then(crate::pinning::consumer_hook),
        on_table_alloc: Some(symrss_sys::memory::advise_huge_pages),
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(configs, cfg).expect("threads");
    let reps = calls.div_ceil(frames.len() as u64);
    let start = Instant::now();
    let mut ts = 0i128;
    for _ in 0..reps {
        for f in frames {
            ts += 67;
            b.push(ts, 64, 1, f);
        }
    }
    let pushed = start.elapsed().as_nanos() as f64;
    let stats = b.finish();
    let total = start.elapsed().as_nanos() as f64;
    let n = (reps * frames.len() as u64) as f64;
    let dropped = stats.iter().map(|s| s.dropped()).sum();
    (pushed / n, total / n, dropped)
}

fn engine_benches(calls: u64, pin: bool, out: &mut Vec<BenchResult>) {
    if pin {
        crate::pinning::pin_steering();
    }
    let fs = frames_64b();
    // Baseline: one plain copy of the same packets into a buffer.
    let mut buf = vec![0u8; 1 << 20];
    let ns = time_per_call(&fs, calls, |f| {
        let at = (f[30] as usize) << 12;
        buf[at..at + 64].copy_from_slice(f);
        u32::from(buf[at + 33])
    });
    out.push(BenchResult {
        name: "engine.memcpy_64b".into(),
        ns_per_op: ns,
        detail: "baseline: copying each 64-byte packet once".into(),
    });
    use symrss_engine::balancer::LossPolicy;
    for (name, apps) in [
        ("64b", vec![("sym", 4u32)]),
        ("64b_rebalance", vec![("sym:rebalance", 4u32)]),
        ("64b_3apps", vec![("sym", 4), ("keyed", 2), ("xor", 1)]),
    ] {
        let best = |loss| {
            (0..3)
                .map(|_| engine_run(&fs, calls, &apps, loss, pin))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .expect("three runs")
        };
        // The steering stage alone: with `drop` the steering thread never
        // waits for a consumer, so its loop time is its own cost.
        let steer = best(LossPolicy::DropNewest);
        out.push(BenchResult {
            name: format!("engine.steer_{name}"),
            ns_per_op: steer.0,
            detail: format!(
                "steering thread per packet ({:.1} Mpps), consumers on the other core, drop policy: {} of {} dropped",
                1000.0 / steer.0,
                steer.2,
                calls
            ),
        });
        let e2e = best(LossPolicy::Lossless);
        out.push(BenchResult {
            name: format!("engine.e2e_{name}"),
            ns_per_op: e2e.1,
            detail: format!(
                "lossless, until every consumer drained ({:.2} Mpps), dropped {}",
                1000.0 / e2e.1,
                e2e.2
            ),
        });
    }
}

/// Frames for a flow-count run: a pool of 64-byte Ethernet/IPv4/TCP
/// frames, rewritten in place per packet with the addresses and ports of
/// its flow (packet n is flow n mod F through a bijective mix, so flows
/// come in a random order and each returns after all the others; with
/// `new` every packet is its own flow). The rewrite costs the same few ns
/// at every flow count, so the runs compare.
struct FlowFrames {
    pool: Vec<[u8; 64]>,
    flows: Flows,
    next: u64,
}

impl FlowFrames {
    const POOL: usize = 4096;

    fn new(flows: Flows) -> Self {
        let mut f = frames("eth_ipv4_tcp")[0].clone();
        f.resize(64, 0);
        let frame: [u8; 64] = f.try_into().expect("64 bytes");
        Self {
            pool: vec![frame; Self::POOL],
            flows,
            next: 0,
        }
    }

    /// The next packet's frame.
    #[inline(always)]
    fn next(&mut self) -> &[u8; 64] {
        let n = self.next;
        self.next += 1;
        let flow = match self.flows {
            Flows::Concurrent(f) => n % f,
            Flows::New => n,
        };
        // SplitMix64's finalizer: a bijection of the flow number.
        let mut z = flow.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let f = &mut self.pool[n as usize % Self::POOL];
        // IPv4 source and destination (Ethernet 14 + 12), TCP ports (34).
        f[26..30].copy_from_slice(&(z as u32).to_be_bytes());
        f[30..34].copy_from_slice(&((z >> 32) as u32 | 0x0a00_0000).to_be_bytes());
        f[34..36].copy_from_slice(&(flow as u16 | 0x400).to_be_bytes());
        f[36..38].copy_from_slice(&443u16.to_be_bytes());
        f
    }
}

/// The apps of a flow-count run: sym, keyed, xor, sym, … with 4 queues.
fn cycling_apps(n: usize) -> Vec<(&'static str, u32)> {
    (0..n)
        .map(|i| (["sym", "keyed", "xor"][i % 3], 4))
        .collect()
}

/// Steers `calls` packets of `flows` flows through `apps` (drop policy,
/// counting consumers): ns per packet of the steering loop, packets
/// dropped, flows the tables did not hold.
fn flows_run(calls: u64, flows: Flows, apps: &[(&str, u32)], pin: bool) -> (f64, u64, u64) {
    use symrss_engine::balancer::{Balancer, Consumers, EngineConfig, LossPolicy};
    // The consumer layout `capture` picks for counting sinks: one thread
    // per CPU but the steering one, shared by the queues.
    let cfg = EngineConfig {
        on_consumer_start: pin.then(crate::pinning::consumer_hook),
        on_table_alloc: Some(symrss_sys::memory::advise_huge_pages),
        consumers: Consumers::Shared(symrss_sys::cpu_count().saturating_sub(1).max(1)),
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(counting_apps(apps, LossPolicy::DropNewest), cfg).expect("threads");
    let mut frames = FlowFrames::new(flows);
    let mut ts = 0i128;
    // Concurrent flows exist before the clock starts: each is seen once
    // untimed, so the table is at its working size (its growth is a
    // one-time cost, not the per-packet cost of F flows).
    if let Flows::Concurrent(f) = flows {
        for _ in 0..f {
            ts += 67;
            b.push(ts, 64, 1, frames.next());
        }
        b.flush();
    }
    let start = Instant::now();
    for _ in 0..calls {
        ts += 67;
        b.push(ts, 64, 1, frames.next());
    }
    let ns = start.elapsed().as_nanos() as f64 / calls as f64;
    let stats = b.finish();
    let dropped = stats.iter().map(|s| s.dropped()).sum();
    let untracked = stats.iter().map(|s| s.packets_untracked).sum();
    (ns, dropped, untracked)
}

/// `engine.flows_<F>_<A>apps`: the steering loop's cost per packet as the
/// number of concurrent flows grows, best of three each.
fn flows_benches(
    calls: u64,
    pin: bool,
    flows: &[Flows],
    apps: &[usize],
    out: &mut Vec<BenchResult>,
) {
    if pin {
        crate::pinning::pin_steering();
    }
    // Baseline: the frame rewrite alone.
    let mut frames = FlowFrames::new(Flows::New);
    let start = Instant::now();
    for _ in 0..calls {
        black_box(frames.next());
    }
    out.push(BenchResult {
        name: "engine.flows_rewrite_64b".into(),
        ns_per_op: start.elapsed().as_nanos() as f64 / calls as f64,
        detail: "baseline: rewriting a frame's flow, included in every engine.flows_ run".into(),
    });
    for &a in apps {
        let app_list = cycling_apps(a.max(1));
        for &f in flows {
            let best = (0..3)
                .map(|_| flows_run(calls, f, &app_list, pin))
                .min_by(|x, y| x.0.total_cmp(&y.0))
                .expect("three runs");
            out.push(BenchResult {
                name: format!("engine.flows_{f}_{}apps", a.max(1)),
                ns_per_op: best.0,
                detail: format!(
                    "steering thread per 64-byte packet ({:.2} Mpps), {} flows, apps {}, drop policy: {} of {calls} dropped, {} untracked",
                    1000.0 / best.0,
                    f,
                    app_list.iter().map(|(s, _)| *s).collect::<Vec<_>>().join("+"),
                    best.1,
                    best.2,
                ),
            });
        }
    }
}

/// CPU time of the whole process so far (every thread, ended ones
/// included), ns at tick resolution (`/proc/self/stat`, USER_HZ = 100).
fn process_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) * 10_000_000)
        })
        .unwrap_or(0)
}

/// One [`workers_run`]: wall ns per packet until every worker pushed its
/// share and until every consumer finished, packets dropped, and CPU ns
/// per packet of the workers and of everything else (the consumers).
struct WorkersRun {
    pushed: f64,
    total: f64,
    dropped: u64,
    worker_cpu: f64,
    other_cpu: f64,
}

/// Pushes `calls` packets through `workers` steering workers (worker w
/// steers frames w, w + workers, …, each worker on its own thread) into
/// the same counting queues. Returns (ns per packet of wall time until
/// every worker pushed its share, the same until every consumer finished,
/// packets dropped).
fn workers_run(
    frames: &[Vec<u8>],
    calls: u64,
    apps: &[(&str, u32)],
    workers: usize,
    loss: symrss_engine::balancer::LossPolicy,
) -> WorkersRun {
    use symrss_engine::balancer::{EngineConfig, start_workers};
    let configs = counting_apps(apps, loss);
    let (collector, ws) =
        start_workers(configs, EngineConfig::default(), workers).expect("threads");
    let reps = calls.div_ceil(frames.len() as u64);
    let cpu0 = process_cpu_ns();
    let start = Instant::now();
    let shares = std::thread::scope(|s| {
        let handles: Vec<_> = ws
            .into_iter()
            .enumerate()
            .map(|(w, mut worker)| {
                s.spawn(move || {
                    let cpu = symrss_sys::thread_cpu_ns();
                    let mut ts = w as i128;
                    for _ in 0..reps {
                        for f in frames.iter().skip(w).step_by(workers) {
                            ts += 67;
                            worker.push(ts, 64, 1, f);
                        }
                    }
                    let pushed = start.elapsed();
                    let share = worker.finish();
                    (share, pushed, symrss_sys::thread_cpu_ns() - cpu)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect::<Vec<_>>()
    });
    let pushed = shares.iter().map(|(_, t, _)| *t).max().unwrap_or_default();
    let worker_cpu: u64 = shares.iter().map(|(_, _, c)| c).sum();
    let stats = collector.finish(shares.into_iter().map(|(s, _, _)| s).collect());
    let total = start.elapsed().as_nanos() as f64;
    let all_cpu = process_cpu_ns() - cpu0;
    let n = (reps * frames.len() as u64) as f64;
    WorkersRun {
        pushed: pushed.as_nanos() as f64 / n,
        total: total / n,
        dropped: stats.iter().map(|s| s.dropped()).sum(),
        worker_cpu: worker_cpu as f64 / n,
        other_cpu: all_cpu.saturating_sub(worker_cpu) as f64 / n,
    }
}

/// `engine.workers<N>_64b`: aggregate steering rate of 1 and `n`
/// workers, best of three each.
fn workers_benches(calls: u64, n: usize, out: &mut Vec<BenchResult>) {
    use symrss_engine::balancer::LossPolicy;
    let fs = frames_64b();
    let apps = [("sym", 4u32)];
    let mut one = None;
    for w in [1, n.max(1)] {
        let best = (0..3)
            .map(|_| workers_run(&fs, calls, &apps, w, LossPolicy::DropNewest))
            .min_by(|a, b| a.pushed.total_cmp(&b.pushed))
            .expect("three runs");
        let mpps = 1000.0 / best.pushed;
        let speedup = one.map_or(String::new(), |o: f64| {
            format!(", {:.2}x one worker", mpps / o)
        });
        one.get_or_insert(mpps);
        out.push(BenchResult {
            name: format!("engine.workers{w}_64b"),
            ns_per_op: best.pushed,
            detail: format!(
                "{w} steering worker(s), wall time per packet: {mpps:.1} Mpps aggregate{speedup}; \
                 CPU per packet: workers {:.1} ns, consumers {:.1} ns; drain {:.1} ns; drop policy: {} of {} dropped",
                best.worker_cpu, best.other_cpu, best.total, best.dropped, calls
            ),
        });
        if n <= 1 {
            break;
        }
    }
}

fn batch_time<const N: usize>(h: &Toeplitz, tuples: &[Tuple], calls: u64) -> f64 {
    let inputs: Vec<[u8; N]> = tuples
        .iter()
        .map(|t| {
            let mut a = [0u8; N];
            a.copy_from_slice(t.input(Fields::L4, Transform::None).as_bytes());
            a
        })
        .collect();
    let mut out = vec![0u32; inputs.len()];
    let reps = calls.div_ceil(inputs.len() as u64).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..reps {
            h.hash_many(black_box(&inputs), &mut out);
            black_box(&out);
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (reps * inputs.len() as u64) as f64);
    }
    best
}

/// Runs `symrss bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, Failure> {
    if args.calls == 0 {
        return Err(Failure::Usage("--calls must be at least 1".into()));
    }
    let mut results = Vec::new();
    if matches!(args.group, Group::Hash | Group::All) {
        eprintln!(
            "bench: hash ({} calls per benchmark, {TUPLES} random tuples)...",
            args.calls
        );
        hash_benches(args.calls, &mut results);
    }
    if matches!(args.group, Group::Dissect | Group::All) {
        eprintln!("bench: dissect ({} frames per benchmark)...", args.calls);
        dissect_benches(args.calls, &mut results);
    }
    if matches!(args.group, Group::Engine | Group::All) {
        eprintln!("bench: engine ({} packets per benchmark)...", args.calls);
        if args.flows.is_empty() {
            engine_benches(args.calls, args.pin, &mut results);
        } else {
            eprintln!(
                "bench: engine by flow count {:?} and apps {:?}...",
                args.flows
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                args.apps
            );
            flows_benches(args.calls, args.pin, &args.flows, &args.apps, &mut results);
        }
        if let Some(n) = args.workers {
            eprintln!("bench: engine with 1 and {n} steering workers...");
            workers_benches(args.calls, n, &mut results);
        }
    }
    let imbalance = if args.group == Group::Rebalance {
        eprintln!("bench: rebalancing the heavy-tailed mix (3 seeds, 4 and 8 queues)...");
        rebalance_rows()
    } else {
        Vec::new()
    };
    let report = BenchReport {
        tuples: TUPLES,
        calls_per_bench: args.calls,
        results,
        imbalance,
    };
    if args.json {
        print_json(&report)?;
    } else if !report.imbalance.is_empty() {
        let mut t = Table::new(&[
            "seed",
            "scheme",
            "queues",
            "packets",
            "static",
            "rebalanced",
            "lower bound",
            "rebalanced/bound",
            "moves",
            "flows kept",
            "split flows",
        ]);
        for r in &report.imbalance {
            t.row(vec![
                r.seed.to_string(),
                r.scheme.to_string(),
                r.queues.to_string(),
                r.packets.to_string(),
                format!("{:.3}", r.static_imbalance),
                format!("{:.3}", r.rebalanced),
                format!("{:.3}", r.lower_bound),
                format!("{:.3}", r.rebalanced / r.lower_bound),
                r.moves.to_string(),
                r.pinned_flows.to_string(),
                r.flows_split.to_string(),
            ]);
        }
        print!("{}", t.render());
    } else {
        let mut t = Table::new(&["benchmark", "ns/op", "detail"]);
        for r in &report.results {
            t.row(vec![
                r.name.clone(),
                format!("{:.2}", r.ns_per_op),
                r.detail.clone(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(ExitCode::SUCCESS)
}
