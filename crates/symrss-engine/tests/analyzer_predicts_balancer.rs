//! The analyzer runs the balancer's own steering core, so for any scheme,
//! layer and queue count its per-queue packet counts are exactly what the
//! balancer delivers — on a mix with tunnels, fragments (some out of
//! order, some without their first fragment), ICMP errors and non-IP
//! frames, and for NIC profiles whose rules differ from software ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use symrss_engine::analyze::{AnalyzeConfig, Analyzer};
use symrss_engine::balancer::{
    AppConfig, Balancer, Consumers, EngineConfig, FnSink, LossPolicy, Sink,
};
use symrss_engine::traffic::generate;
use symrss_engine::{HashLayer, Policy};

const SCHEMES: [&str; 6] = ["sym", "ms", "keyed", "xor", "nic:i40e", "nic:ixgbe"];

fn check(seed: u64, flows: u32, queues: u32, layer: HashLayer) {
    let traffic = generate(seed, flows);
    let policies: Vec<Policy> = SCHEMES
        .iter()
        .map(|s| Policy::parse(s, layer, seed).unwrap())
        .collect();
    let mut analyzer = Analyzer::new(
        policies.clone(),
        AnalyzeConfig {
            queues,
            layer,
            ..AnalyzeConfig::default()
        },
    );
    let counters: Vec<Vec<Arc<AtomicU64>>> = SCHEMES
        .iter()
        .map(|_| (0..queues).map(|_| Arc::default()).collect())
        .collect();
    let apps = policies
        .into_iter()
        .zip(&counters)
        .map(|(policy, counts)| {
            let sinks = counts
                .iter()
                .map(|c| {
                    let c = Arc::clone(c);
                    Box::new(FnSink(move |_: &_, _: &[u8]| {
                        c.fetch_add(1, Ordering::Relaxed);
                    })) as Box<dyn Sink>
                })
                .collect();
            let app = AppConfig {
                name: policy.name().replace(':', "-"),
                queues,
                policy,
                loss: LossPolicy::Lossless,
            };
            (app, sinks)
        })
        .collect();
    let mut balancer = Balancer::start(
        apps,
        EngineConfig {
            consumers: Consumers::Inline,
            // Small batches: many hand-offs, fragments held across them.
            batch_packets: 64,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    for p in &traffic {
        let len = p.frame.len() as u32;
        analyzer.packet(p.ts_ns, len, 1, &p.frame);
        balancer.push(p.ts_ns, len, 1, &p.frame);
    }
    let report = analyzer.finish();
    let stats = balancer.finish();
    assert_eq!(report.packets, traffic.len() as u64);
    for ((scheme, counts), st) in report.schemes.iter().zip(&counters).zip(&stats) {
        let delivered: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let predicted: Vec<u64> = scheme.queues.iter().map(|q| q.packets).collect();
        assert_eq!(
            predicted, delivered,
            "{} at {layer:?}, {queues} queues, seed {seed}",
            scheme.name
        );
        assert_eq!(st.received, traffic.len() as u64);
        assert_eq!(st.delivered(), st.received, "{}", scheme.name);
    }
}

#[test]
fn analyzer_queues_are_the_balancers_at_every_layer() {
    for layer in [HashLayer::Outer, HashLayer::Inner, HashLayer::Innermost] {
        for queues in [1, 4, 7, 200] {
            check(11, 300, queues, layer);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn analyzer_predicts_the_balancer(seed in any::<u64>(), flows in 1u32..200, queues in 1u32..40) {
        check(seed, flows, queues, HashLayer::Inner);
    }
}
