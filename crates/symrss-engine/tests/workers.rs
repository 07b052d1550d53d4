//! Several steering workers give exactly what one gives: whichever worker
//! a packet reaches — round-robin, or scattered by a hash of its bytes so
//! that the two directions of a flow, the fragments of one datagram and
//! ICMP errors land on different workers — every queue receives the same
//! packets, in the same (time) order, as with a single worker, and the
//! counters add up.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, Consumers, EngineConfig, FnSink, LossPolicy, Sink, start_workers,
};
use symrss_engine::traffic::generate;
use symrss_engine::{HashLayer, Policy};
use symrss_wire::{Options, dissect};

type Queues = Vec<Vec<Arc<Mutex<Vec<i128>>>>>;
type Apps = Vec<(AppConfig, Vec<Box<dyn Sink>>)>;

const APPS: [(&str, u32, HashLayer); 3] = [
    ("sym", 4, HashLayer::Outer),
    ("keyed", 3, HashLayer::Inner),
    ("xor", 5, HashLayer::Innermost),
];

/// The generated mix with strictly increasing timestamps (its order kept),
/// so time order is one order.
/// Every third first fragment is left out, so some datagrams never get
/// theirs.
fn traffic(seed: u64, flows: u32) -> Vec<(i128, Vec<u8>)> {
    let mut firsts = 0;
    generate(seed, flows)
        .into_iter()
        .filter(|p| {
            let key = dissect(1, &p.frame, &Options::default());
            let first = key
                .outer()
                .and_then(|l| l.frag)
                .is_some_and(|f| f.more && f.offset == 0);
            firsts += u32::from(first);
            !(first && firsts % 3 == 0)
        })
        .enumerate()
        .map(|(i, p)| (1_700_000_000_000_000_000 + i as i128 * 1000, p.frame))
        .collect()
}

fn apps(seed: u64) -> (Apps, Queues) {
    let mut logs = Vec::new();
    let apps = APPS
        .iter()
        .map(|(scheme, queues, layer)| {
            let app_logs: Vec<Arc<Mutex<Vec<i128>>>> =
                (0..*queues).map(|_| Arc::default()).collect();
            let sinks = app_logs
                .iter()
                .map(|log| {
                    let log = Arc::clone(log);
                    Box::new(FnSink(
                        move |m: &symrss_engine::balancer::PacketMeta, _: &[u8]| {
                            log.lock().unwrap().push(m.ts_ns);
                        },
                    )) as Box<dyn Sink>
                })
                .collect();
            logs.push(app_logs);
            let app = AppConfig {
                name: (*scheme).into(),
                queues: *queues,
                policy: Policy::parse(scheme, *layer, seed).unwrap(),
                loss: LossPolicy::Lossless,
            };
            (app, sinks)
        })
        .collect();
    (apps, logs)
}

fn cfg() -> EngineConfig {
    EngineConfig {
        // Small batches: many hand-offs and merges.
        batch_packets: 64,
        ring_chunks: 4,
        consumers: Consumers::Shared(2),
        ..EngineConfig::default()
    }
}

fn unwrap(logs: Queues) -> Vec<Vec<Vec<i128>>> {
    logs.into_iter()
        .map(|a| a.into_iter().map(|q| q.lock().unwrap().clone()).collect())
        .collect()
}

fn single(packets: &[(i128, Vec<u8>)], seed: u64) -> (Vec<AppStats>, Vec<Vec<Vec<i128>>>) {
    let (apps, logs) = apps(seed);
    let mut b = Balancer::start(apps, cfg()).unwrap();
    for (ts, f) in packets {
        b.push(*ts, f.len() as u32, 1, f);
    }
    (b.finish(), unwrap(logs))
}

fn several(
    packets: &[(i128, Vec<u8>)],
    seed: u64,
    workers: usize,
    to: impl Fn(usize, &[u8]) -> usize,
) -> (Vec<AppStats>, Vec<Vec<Vec<i128>>>) {
    let (apps, logs) = apps(seed);
    let (collector, ws) = start_workers(apps, cfg(), workers).unwrap();
    let mut inputs: Vec<Vec<&(i128, Vec<u8>)>> = vec![Vec::new(); workers];
    for (i, p) in packets.iter().enumerate() {
        inputs[to(i, &p.1) % workers].push(p);
    }
    let shares = std::thread::scope(|s| {
        let handles: Vec<_> = ws
            .into_iter()
            .zip(inputs)
            .map(|(mut w, input)| {
                s.spawn(move || {
                    for (ts, f) in input {
                        w.push(*ts, f.len() as u32, 1, f);
                    }
                    w.finish()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    (collector.finish(shares), unwrap(logs))
}

/// FNV-1a of the frame: scatters packets with no regard to flows.
fn scatter(_: usize, frame: &[u8]) -> usize {
    frame.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as usize
}

fn check(seed: u64, flows: u32, workers: usize) {
    let packets = traffic(seed, flows);
    let (one_stats, one) = single(&packets, seed);
    for (how, (stats, got)) in [
        ("round-robin", several(&packets, seed, workers, |i, _| i)),
        ("scattered", several(&packets, seed, workers, scatter)),
    ] {
        for (a, (app, expected)) in got.iter().zip(&one).enumerate() {
            for (q, (queue, expected)) in app.iter().zip(expected).enumerate() {
                if queue != expected {
                    eprintln!(
                        "(received, delivered, dropped, fragments) per app: {:?}",
                        stats
                            .iter()
                            .map(|s| (s.received, s.delivered(), s.dropped(), s.fragments))
                            .collect::<Vec<_>>()
                    );
                    let at = queue.iter().zip(expected).position(|(x, y)| x != y);
                    panic!(
                        "{how}, {workers} workers, app {a} queue {q}, seed {seed}: {} packets, expected {}; first difference at {at:?}: {:?} vs {:?}",
                        queue.len(),
                        expected.len(),
                        at.map(|i| &queue[i.saturating_sub(2)..(i + 3).min(queue.len())]),
                        at.map(|i| &expected[i.saturating_sub(2)..(i + 3).min(expected.len())]),
                    );
                }
                assert!(queue.windows(2).all(|w| w[0] < w[1]), "time order");
            }
        }
        for (st, one) in stats.iter().zip(&one_stats) {
            assert_eq!(st.received, packets.len() as u64);
            assert_eq!(st.delivered() + st.dropped(), st.received, "{}", st.name);
            assert_eq!(st.dropped(), 0);
            assert_eq!(st.non_ip, one.non_ip);
            let f = &st.fragments;
            let o = &one.fragments;
            // Every fragment is counted once; those whose first fragment
            // never came fall back on every split.
            assert_eq!(f.first, o.first, "{}", st.name);
            assert_eq!(
                f.followed + f.released + f.fallback_timeout + f.fallback_full,
                o.followed + o.released + o.fallback_timeout + o.fallback_full,
            );
            assert_eq!(
                f.fallback_timeout + f.fallback_full,
                o.fallback_timeout + o.fallback_full
            );
        }
    }
}

#[test]
fn two_and_four_workers_deliver_what_one_delivers() {
    // Repeated: which worker sees a datagram's fragments first varies
    // with thread timing (a race once lost packets here).
    for _ in 0..8 {
        for workers in [2, 4] {
            check(7, 400, workers);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn any_split_of_the_input_gives_the_same_queues(seed in any::<u64>(), flows in 1u32..150, workers in 2usize..5) {
        check(seed, flows, workers);
    }
}

#[test]
fn the_mix_has_what_makes_workers_hard() {
    let packets = traffic(7, 400);
    let (one, _) = single(&packets, 7);
    let (many, _) = several(&packets, 7, 4, scatter);
    let f = &one[0].fragments;
    // Fragments, some before their first fragment, some without one.
    assert!(
        f.first > 50 && f.released > 0 && f.fallback_timeout > 0,
        "{f:?}"
    );
    // Scattered over four workers, later fragments found their first
    // fragment on another worker: more of them waited than with one.
    assert!(
        many[0].fragments.released > f.released,
        "{:?}",
        many[0].fragments
    );
}
