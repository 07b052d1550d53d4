//! Affinity-preserving rebalancing on generated heavy-tailed traffic and
//! on the shared corpus: nothing lost, no flow split (ground-truth flow
//! ids for the generated mix, the analyzer's own flow identity for the
//! corpus — neither uses the rebalancer's counters), load never worse than
//! the static table's, and `analyze` places every packet where the
//! balancer does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use symrss_engine::analyze::{AnalyzeConfig, Analyzer, SchemeReport};
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, FnSink, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::rebalance::RebalanceConfig;
use symrss_engine::traffic::{GenPacket, heavy_tailed};
use symrss_engine::{HashLayer, Policy};
use symrss_pcap::CaptureReader;

/// `scheme` rebalanced with the default settings, except that a flow
/// never ends: the analyzer's flow identity (the oracle) is the 5-tuple,
/// with no idle timeout and no end of connection, while the corpus has a
/// DNS flow silent for 338 s and TCP ports reused after a RST (which the
/// defaults, 300 s and 2 s, rightly treat as new flows).
fn rebalanced(scheme: &str) -> Policy {
    rebalanced_with(scheme, RebalanceConfig::default().min_rate)
}

/// [`rebalanced`], moving buckets only above `min_rate` packets per
/// second per queue (0: always).
fn rebalanced_with(scheme: &str, min_rate: u32) -> Policy {
    const DAY_NS: u64 = 86_400_000_000_000;
    Policy::parse(scheme, HashLayer::Outer, 1)
        .unwrap()
        .with_rebalance(RebalanceConfig {
            idle_ns: DAY_NS,
            ended_linger_ns: DAY_NS,
            min_rate,
            ..RebalanceConfig::default()
        })
}

/// Splits `traffic` with one app (`queues` queues, `policy`) in batches of
/// `batch` packets, flushing every `flush_every` packets as a live source
/// does when its input goes quiet (0: never); returns the app's counters
/// and each input packet's queue.
fn split(
    traffic: &[GenPacket],
    queues: u32,
    policy: Policy,
    batch: usize,
    flush_every: usize,
) -> (AppStats, Vec<usize>) {
    let log: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let sinks: Vec<Box<dyn Sink>> = (0..queues as usize)
        .map(|q| {
            let log = Arc::clone(&log);
            Box::new(FnSink(move |m: &PacketMeta, _: &[u8]| {
                log.lock().unwrap().push((q, m.index));
            })) as Box<dyn Sink>
        })
        .collect();
    let app = AppConfig {
        name: "ids".into(),
        queues,
        policy,
        loss: LossPolicy::Lossless,
    };
    let cfg = EngineConfig {
        batch_packets: batch,
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(vec![(app, sinks)], cfg).unwrap();
    for (i, p) in traffic.iter().enumerate() {
        b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
        if flush_every > 0 && i % flush_every == flush_every - 1 {
            b.flush();
        }
    }
    let stats = b.finish().remove(0);
    let mut queue = vec![usize::MAX; traffic.len()];
    for (q, index) in log.lock().unwrap().iter() {
        assert_eq!(
            queue[*index as usize],
            usize::MAX,
            "packet {index} delivered twice"
        );
        queue[*index as usize] = *q;
    }
    (stats, queue)
}

/// Analyzes the packets under `policies`, each with `queues` queues.
fn analyze_packets<'a>(
    packets: impl Iterator<Item = (i128, u32, u32, &'a [u8])>,
    queues: u32,
    policies: Vec<Policy>,
) -> Vec<SchemeReport> {
    let mut a = Analyzer::new(
        policies,
        AnalyzeConfig {
            queues,
            ..AnalyzeConfig::default()
        },
    );
    for (ts, len, lt, data) in packets {
        a.packet(ts, len, lt, data);
    }
    a.finish().schemes
}

#[test]
fn heavy_tailed_traffic_is_rebalanced_without_splitting_a_flow() {
    let traffic = heavy_tailed(7, 20_000, 10_000_000_000);
    for queues in [4, 8] {
        for scheme in ["sym", "keyed"] {
            let batch = EngineConfig::default().batch_packets;
            let (stats, queue) = split(&traffic, queues, rebalanced(scheme), batch, 0);
            // Lossless: every packet delivered once.
            assert!(queue.iter().all(|&q| q != usize::MAX), "a packet lost");
            assert_eq!(stats.received, traffic.len() as u64);
            assert_eq!(stats.delivered(), traffic.len() as u64);
            // No ground-truth flow on two queues.
            let mut home: HashMap<u32, usize> = HashMap::new();
            for (p, &q) in traffic.iter().zip(&queue) {
                let first = *home.entry(p.flow).or_insert(q);
                assert_eq!(first, q, "{scheme}/{queues}: flow {} split", p.flow);
            }
            assert_eq!(stats.affinity_violations, 0);
            let r = stats.rebalance.expect("rebalance stats");
            assert!(r.moves > 0, "{scheme}/{queues}: nothing moved: {r:?}");
            assert!(r.pinned_flows > 0, "{scheme}/{queues}: no live flow pinned");
            // The per-queue totals of the windows are the queues' own.
            let mut per_queue = vec![0u64; queues as usize];
            for w in &r.window_loads {
                for (t, v) in per_queue.iter_mut().zip(&w.queues) {
                    *t += v;
                }
            }
            let delivered: Vec<u64> = stats.queues.iter().map(|q| q.delivered).collect();
            assert_eq!(per_queue, delivered, "{scheme}/{queues}");
            eprintln!(
                "{scheme} {queues} queues: static {:.3} rebalanced {:.3} bound {:.3}, \
                 {} moves, {} pinned flows, {} of {} windows worse than static",
                r.static_imbalance(),
                r.imbalance(),
                r.bound(),
                r.moves,
                r.pinned_flows,
                r.windows_worse_than_static,
                r.windows
            );
            assert!(
                r.imbalance() <= r.static_imbalance(),
                "{scheme}/{queues}: rebalanced {} vs static {}",
                r.imbalance(),
                r.static_imbalance()
            );
            assert!(r.bound() <= r.imbalance());
            // The analyzer, on the same packets, places each where the
            // balancer did and splits nothing either.
            let schemes = analyze_packets(
                traffic
                    .iter()
                    .map(|p| (p.ts_ns, p.frame.len() as u32, 1, &p.frame[..])),
                queues,
                vec![rebalanced(scheme)],
            );
            let placed = &schemes[0];
            assert_eq!(placed.flows_split, 0, "{scheme}/{queues}");
            let analyzed: Vec<u64> = placed.queues.iter().map(|q| q.packets).collect();
            assert_eq!(analyzed, delivered, "{scheme}/{queues}: analyze = split");
            assert_eq!(placed.rebalance.as_ref().unwrap().moves, r.moves);
            // Decisions are made at packets, not at batch boundaries: small
            // batches flushed at odd points (a live source) place alike.
            if queues == 4 {
                let (_, again) = split(&traffic, queues, rebalanced(scheme), 64, 37);
                assert!(again == queue, "{scheme}: placement depends on batching");
            }
        }
    }
}

/// Every corpus capture with at least 100 flows, 4 and 8 queues: with
/// buckets moving at any load (so the corpus' light traffic moves them
/// too) nothing is lost and no flow is split; with the default settings
/// (buckets move only under load) the imbalance is never worse than the
/// static table's.
#[test]
fn rebalancing_splits_no_flow_of_the_corpus() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    let mut checked = 0;
    let mut moved = 0;
    for entry in &corpus {
        let mut packets = Vec::new();
        let mut r = CaptureReader::open(&entry.path).unwrap();
        while let Ok(Some(p)) = r.next_packet() {
            packets.push((p.ts_ns, p.orig_len, p.linktype, p.data.to_vec()));
        }
        for queues in [4, 8] {
            let policies = vec![
                Policy::parse("sym", HashLayer::Outer, 1).unwrap(),
                rebalanced_with("sym", 0),
                rebalanced("sym"),
            ];
            let schemes = analyze_packets(
                packets.iter().map(|(t, l, lt, d)| (*t, *l, *lt, &d[..])),
                queues,
                policies,
            );
            let flows: u64 = schemes[0].queues.iter().map(|q| q.flows).sum();
            if flows < 100 {
                continue;
            }
            checked += 1;
            for placed in &schemes[1..] {
                let total: u64 = placed.queues.iter().map(|q| q.packets).sum();
                assert_eq!(total, packets.len() as u64, "{}: a packet lost", entry.name);
                assert_eq!(
                    placed.flows_split, 0,
                    "{} {queues}: {:?}",
                    entry.name, placed.split_classes
                );
            }
            let forced = schemes[1].rebalance.as_ref().unwrap();
            moved += u64::from(forced.moves > 0 && forced.pinned_flows > 0);
            let r = schemes[2].rebalance.as_ref().unwrap();
            eprintln!(
                "{} {queues}: static {:.3} rebalanced {:.3} bound {:.3}, {} moves \
                 (at any load: {:.3}, {} moves)",
                entry.name,
                r.static_imbalance(),
                r.imbalance(),
                r.bound(),
                r.moves,
                forced.imbalance(),
                forced.moves
            );
            assert!(
                r.imbalance() <= r.static_imbalance(),
                "{} {queues}: rebalanced {} vs static {}",
                entry.name,
                r.imbalance(),
                r.static_imbalance()
            );
        }
    }
    assert!(
        checked >= 10,
        "only {checked} corpus runs with >= 100 flows"
    );
    assert!(
        moved >= 10,
        "buckets moved with live flows in only {moved} runs"
    );
}

/// The analyzer names each queue's largest flows with exact counts: on the
/// heavy-tailed mix the largest ground-truth flow heads its queue's list
/// with all its packets, and every list is largest first.
#[test]
fn the_analyzer_lists_each_queues_largest_flows_exactly() {
    let traffic = heavy_tailed(3, 3000, 5_000_000_000);
    let mut sizes: HashMap<u32, u64> = HashMap::new();
    for p in &traffic {
        *sizes.entry(p.flow).or_default() += 1;
    }
    let largest = *sizes.values().max().unwrap();
    let schemes = analyze_packets(
        traffic
            .iter()
            .map(|p| (p.ts_ns, p.frame.len() as u32, 1, &p.frame[..])),
        4,
        vec![Policy::parse("sym", HashLayer::Outer, 1).unwrap()],
    );
    let s = &schemes[0];
    // Every IP packet counted in the bucket its hash chose, and the
    // buckets of a queue add up to it (this mix has no non-IP frames).
    assert_eq!(s.buckets.len(), symrss_engine::software_reta_size(4));
    for (q, load) in s.queues.iter().enumerate() {
        let of_q: u64 = s
            .buckets
            .iter()
            .filter(|(_, queue)| *queue as usize == q)
            .map(|(p, _)| p)
            .sum();
        assert_eq!(of_q, load.packets, "q{q}");
    }
    assert_eq!(s.top_flows.len(), 4);
    let heads: Vec<u64> = s
        .top_flows
        .iter()
        .filter_map(|q| q.first())
        .map(|t| t.packets)
        .collect();
    assert_eq!(
        heads.iter().copied().max(),
        Some(largest),
        "{:?}",
        s.top_flows
    );
    for (q, list) in s.top_flows.iter().enumerate() {
        assert!(list.len() <= symrss_engine::analyze::TOP_FLOWS);
        assert!(
            list.windows(2).all(|w| w[0].packets >= w[1].packets),
            "q{q}"
        );
        for t in list {
            let share = t.packets as f64 / s.queues[q].packets as f64;
            assert!((t.share - share).abs() < 1e-12);
            assert!(t.flow.contains(" <-> "), "{}", t.flow);
        }
    }
}
