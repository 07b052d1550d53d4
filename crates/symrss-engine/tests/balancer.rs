//! Balancer properties over generated traffic (fragments out of order,
//! tunnels, ICMP errors, VLANs, IPv6): under every symmetric scheme each
//! ground-truth flow lands on exactly one queue of each app; each app's
//! queues together deliver exactly the input, once; counters add up;
//! order within a queue is the input order, fragments that waited for
//! their first fragment included (so queues stay in time order).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use symrss_engine::balancer::{
    AppConfig, Balancer, Consumers, EngineConfig, FnSink, LossPolicy, Sink, SinkError,
};
use symrss_engine::traffic::generate;
use symrss_engine::{HashLayer, Policy};

type Seen = Arc<Mutex<Vec<(usize, u64)>>>;

/// An app named `name` with `queues` queues steered by `scheme` on the
/// outer layer (random keys from seed 1, or `seed`).
fn app_config(name: &str, queues: u32, scheme: &str, loss: LossPolicy) -> AppConfig {
    app_at(name, queues, scheme, HashLayer::Outer, 1, loss)
}

fn app_at(
    name: &str,
    queues: u32,
    scheme: &str,
    layer: HashLayer,
    seed: u64,
    loss: LossPolicy,
) -> AppConfig {
    AppConfig {
        name: name.into(),
        queues,
        policy: Policy::parse(scheme, layer, seed).unwrap(),
        loss,
    }
}

fn run(
    seed: u64,
    flows: u32,
    apps: &[(&str, u32, HashLayer)],
) -> (
    usize,
    Vec<symrss_engine::balancer::AppStats>,
    Vec<Seen>,
    Vec<u32>,
) {
    let traffic = generate(seed, flows);
    let truth: Vec<u32> = traffic.iter().map(|p| p.flow).collect();
    let mut configs = Vec::new();
    let mut seen = Vec::new();
    for (scheme, queues, layer) in apps {
        let log: Seen = Arc::default();
        let sinks: Vec<Box<dyn Sink>> = (0..*queues as usize)
            .map(|q| {
                let log = Arc::clone(&log);
                Box::new(FnSink(
                    move |m: &symrss_engine::balancer::PacketMeta, _d: &[u8]| {
                        log.lock().unwrap().push((q, m.index));
                    },
                )) as Box<dyn Sink>
            })
            .collect();
        let app = app_at(scheme, *queues, scheme, *layer, seed, LossPolicy::Lossless);
        configs.push((app, sinks));
        seen.push(log);
    }
    let cfg = EngineConfig {
        batch_packets: 64,
        ring_chunks: 4,
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(configs, cfg).unwrap();
    for p in &traffic {
        b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
    }
    (traffic.len(), b.finish(), seen, truth)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn every_flow_on_one_queue_and_nothing_lost(seed in any::<u64>(), flows in 50u32..400) {
        let apps = [
            ("sym", 4, HashLayer::Outer),
            ("keyed", 3, HashLayer::Innermost),
            ("xor", 5, HashLayer::Inner),
            ("sort", 2, HashLayer::Outer),
            ("sym-ip", 4, HashLayer::Outer),
        ];
        let (n, stats, seen, truth) = run(seed, flows, &apps);
        for ((app, st), log) in apps.iter().zip(&stats).zip(&seen) {
            let log = log.lock().unwrap();
            prop_assert_eq!(st.received, n as u64);
            prop_assert_eq!(st.delivered() + st.dropped(), st.received, "{}", app.0);
            prop_assert_eq!(st.dropped(), 0);
            prop_assert_eq!(st.affinity_violations, 0, "{}", app.0);
            // Exactly the input, once.
            let mut idx: Vec<u64> = log.iter().map(|(_, i)| *i).collect();
            idx.sort_unstable();
            prop_assert_eq!(idx, (0..n as u64).collect::<Vec<_>>(), "{}", app.0);
            // Each ground-truth flow on one queue.
            let mut queue_of: HashMap<u32, usize> = HashMap::new();
            for (q, i) in log.iter() {
                let f = truth[*i as usize];
                let first = *queue_of.entry(f).or_insert(*q);
                prop_assert_eq!(first, *q, "{}: flow {} split", app.0, f);
            }
            // Input order within a queue, fragments that waited included.
            let mut last: HashMap<usize, u64> = HashMap::new();
            let mut out_of_order = 0u64;
            for (q, i) in log.iter() {
                if let Some(prev) = last.insert(*q, *i) && *i < prev {
                    out_of_order += 1;
                }
            }
            prop_assert_eq!(out_of_order, 0, "{}: packets out of input order", app.0);
            let per_queue: u64 = st.queues.iter().map(|q| q.delivered).sum();
            prop_assert_eq!(per_queue, n as u64);
        }
    }
}

#[test]
fn microsoft_key_splits_flows_but_loses_nothing() {
    let (n, stats, seen, truth) = run(7, 300, &[("ms", 4, HashLayer::Outer)]);
    let log = seen[0].lock().unwrap();
    assert_eq!(log.len(), n);
    let mut queues: HashMap<u32, HashSet<usize>> = HashMap::new();
    for (q, i) in log.iter() {
        queues.entry(truth[*i as usize]).or_default().insert(*q);
    }
    let split = queues.values().filter(|s| s.len() > 1).count();
    assert!(split > 100, "only {split} flows split under ms");
    assert!(stats[0].affinity_violations > 0);
}

#[test]
fn drop_policy_counts_what_it_drops() {
    let traffic = generate(3, 200);
    let slow: Box<dyn Sink> = Box::new(FnSink(
        |_: &symrss_engine::balancer::PacketMeta, _: &[u8]| {
            std::thread::sleep(std::time::Duration::from_micros(200));
        },
    ));
    let app = app_config("slow", 1, "sym", LossPolicy::DropNewest);
    let cfg = EngineConfig {
        batch_packets: 8,
        ring_chunks: 1,
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(vec![(app, vec![slow])], cfg).unwrap();
    for p in &traffic {
        b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
    }
    let st = &b.finish()[0];
    assert_eq!(st.received, traffic.len() as u64);
    assert_eq!(st.delivered() + st.dropped(), st.received);
    assert!(
        st.queues[0].dropped_queue_full > 0,
        "a 1-chunk ring in front of a slow sink must drop"
    );
}

/// A sink with no reader for its first `absent` packets, then a failing
/// one after `fail_after` delivered packets.
struct Flaky {
    seen: u64,
    absent: u64,
    fail_after: u64,
}

impl Sink for Flaky {
    fn write(
        &mut self,
        _: &symrss_engine::balancer::PacketMeta,
        _: &[u8],
    ) -> Result<(), SinkError> {
        self.seen += 1;
        if self.seen <= self.absent {
            return Err(SinkError::NoReader);
        }
        if self.seen > self.absent + self.fail_after {
            return Err(std::io::Error::other("disk full").into());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[test]
fn no_reader_drops_are_counted_and_do_not_fail_the_queue() {
    let traffic = generate(5, 100);
    let app = app_config("fifo", 1, "sym", LossPolicy::Lossless);
    let sink = Box::new(Flaky {
        seen: 0,
        absent: 50,
        fail_after: 100,
    });
    let mut b = Balancer::start(
        vec![(app, vec![sink as Box<dyn Sink>])],
        EngineConfig::default(),
    )
    .unwrap();
    for p in &traffic[..200] {
        b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
    }
    // Before a flush nothing is received; after it, the snapshot can only
    // lag the final counts.
    assert_eq!(b.snapshot()[0].received, 0);
    b.flush();
    let live = b.snapshot();
    assert_eq!(live[0].received, 200);
    assert!(live[0].delivered() + live[0].dropped() <= 200);
    let st = &b.finish()[0];
    let q = st.queues[0];
    assert_eq!(q.dropped_no_reader, 50);
    assert_eq!(q.delivered, 100);
    assert_eq!(
        q.dropped_sink_error, 50,
        "the failing sink loses the rest, counted"
    );
    assert_eq!(st.delivered() + st.dropped(), st.received);
    assert!(st.sink_error.as_deref().unwrap().contains("disk full"));
}

#[test]
fn flow_accounting_is_exact_beyond_the_recent_flow_cache() {
    use symrss_hash::Tuple;
    use symrss_wire::build::*;
    // 10,000 flows (more than the 4096-entry recent-flow cache), each seen
    // forward, then (after every other flow) in reverse, then forward again.
    let n = 10_000u32;
    let flow = |f: u32| {
        let a = [10, 1, (f >> 8) as u8, f as u8];
        let b = [10, 2, (f >> 8) as u8, f as u8];
        (a, b, 1024 + (f % 50000) as u16, 443u16)
    };
    let frame = |f: u32, rev: bool| {
        let (a, b, p, q) = flow(f);
        let (s, d, sp, dp) = if rev { (b, a, q, p) } else { (a, b, p, q) };
        ethernet(ETH_IPV4, &ipv4(s, d, TCP, &tcp(sp, dp, &[0; 4])))
    };
    for scheme in ["sym", "ms"] {
        let policy = Policy::parse(scheme, HashLayer::Outer, 0).unwrap();
        // The oracle: the queue each direction hashes to, from the scheme
        // and RETA directly.
        let reta = policy.reta(4);
        let queue = |f: u32, rev: bool| {
            let (a, b, p, q) = flow(f);
            let t = Tuple::from_v4_octets(a, b, Some((p, q)));
            reta.queue(policy.scheme().hash(&if rev { t.reversed() } else { t }))
        };
        let expected_violations = (0..n)
            .filter(|&f| queue(f, true) != queue(f, false))
            .count() as u64;
        let sinks: Vec<Box<dyn Sink>> = (0..4)
            .map(|_| {
                Box::new(FnSink(
                    |_: &symrss_engine::balancer::PacketMeta, _: &[u8]| {},
                )) as Box<dyn Sink>
            })
            .collect();
        let app = AppConfig {
            name: scheme.into(),
            queues: 4,
            policy: policy.clone(),
            loss: LossPolicy::Lossless,
        };
        let mut b = Balancer::start(vec![(app, sinks)], EngineConfig::default()).unwrap();
        let mut ts = 0;
        for pass in [false, true, false] {
            for f in 0..n {
                let fr = frame(f, pass);
                ts += 1;
                b.push(ts, fr.len() as u32, 1, &fr);
            }
        }
        let st = &b.finish()[0];
        let flows: u64 = st.queues.iter().map(|q| q.flows).sum();
        assert_eq!(flows, u64::from(n), "{scheme}");
        // Each flow: its first packet sets the queue; the reverse packet
        // violates once if it hashes elsewhere; the third packet agrees.
        assert_eq!(st.affinity_violations, expected_violations, "{scheme}");
        if scheme == "sym" {
            assert_eq!(expected_violations, 0);
        } else {
            assert!(expected_violations > 1000);
        }
    }
}

/// Sinks get each packet's own metadata: input position, timestamp (kept
/// as 64-bit nanoseconds by the batches: times outside 1678–2262 arrive
/// saturated), lengths and link type, across many reused batches.
#[test]
fn sinks_get_each_packets_metadata_across_reused_batches() {
    use symrss_engine::balancer::PacketMeta;
    use symrss_wire::build::*;
    type Log = Arc<Mutex<Vec<(PacketMeta, Vec<u8>)>>>;
    let log: Log = Arc::default();
    let theirs = Arc::clone(&log);
    let sink: Box<dyn Sink> = Box::new(FnSink(move |m: &PacketMeta, d: &[u8]| {
        theirs.lock().unwrap().push((*m, d.to_vec()));
    }));
    let app = app_config("one", 1, "sym", LossPolicy::Lossless);
    let cfg = EngineConfig {
        batch_packets: 16,
        ring_chunks: 2,
        ..EngineConfig::default()
    };
    let mut b = Balancer::start(vec![(app, vec![sink])], cfg).unwrap();
    let n = 1000u32;
    let ts_of = |i: u32| match i {
        0 => i128::MIN,
        1 => i128::from(i64::MAX) + 1,
        2 => -5,
        _ => 1_700_000_000_000_000_000 + i128::from(i) * 1_003,
    };
    let frame_of = |i: u32| {
        let mut f = ethernet(
            ETH_IPV4,
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, &udp(1000, 53, &[0; 20])),
        );
        f.resize(60 + (i as usize % 200), i as u8);
        f
    };
    for i in 0..n {
        let f = frame_of(i);
        b.push(ts_of(i), f.len() as u32 + 4, 1 + i % 2, &f);
    }
    let st = &b.finish()[0];
    assert_eq!(st.delivered(), u64::from(n));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), n as usize);
    for (i, (m, d)) in (0..n).zip(log.iter()) {
        let want_ts = ts_of(i).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        assert_eq!(m.index, u64::from(i));
        assert_eq!(m.ts_ns, want_ts, "packet {i}");
        assert_eq!(m.linktype, 1 + i % 2);
        assert_eq!(*d, frame_of(i));
        assert_eq!(m.orig_len, d.len() as u32 + 4);
    }
}

/// Consumer threads shared among queues, and sinks run inline by the
/// steering thread (`EngineConfig::consumers`), deliver exactly what one
/// thread per queue delivers: the same packets in the same order on every
/// queue and the same counters; a failing sink fails only its own queue.
#[test]
fn shared_and_inline_consumers_deliver_what_one_thread_per_queue_delivers() {
    type Log = Arc<Mutex<Vec<u64>>>;
    let traffic = generate(11, 300);
    let run_with = |consumers: Consumers| {
        let mut configs = Vec::new();
        let mut logs: Vec<Vec<Log>> = Vec::new();
        for (scheme, queues) in [("sym", 4u32), ("keyed", 3), ("xor", 2)] {
            let app_logs: Vec<Log> = (0..queues).map(|_| Log::default()).collect();
            let sinks = app_logs
                .iter()
                .map(|log| {
                    let log = Arc::clone(log);
                    Box::new(FnSink(
                        move |m: &symrss_engine::balancer::PacketMeta, _: &[u8]| {
                            log.lock().unwrap().push(m.index);
                        },
                    )) as Box<dyn Sink>
                })
                .collect();
            let app = app_config(scheme, queues, scheme, LossPolicy::Lossless);
            configs.push((app, sinks));
            logs.push(app_logs);
        }
        let flaky: Vec<Box<dyn Sink>> = vec![
            Box::new(Flaky {
                seen: 0,
                absent: 10,
                fail_after: 40,
            }),
            Box::new(FnSink(
                |_: &symrss_engine::balancer::PacketMeta, _: &[u8]| {},
            )),
        ];
        let app = app_config("flaky", 2, "sym", LossPolicy::Lossless);
        configs.push((app, flaky));
        let cfg = EngineConfig {
            batch_packets: 64,
            ring_chunks: 2,
            consumers,
            ..EngineConfig::default()
        };
        let mut b = Balancer::start(configs, cfg).unwrap();
        for p in &traffic {
            b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
        }
        let stats = b.finish();
        let logs: Vec<Vec<Vec<u64>>> = logs
            .iter()
            .map(|app| app.iter().map(|l| l.lock().unwrap().clone()).collect())
            .collect();
        let counters: Vec<_> = stats
            .iter()
            .map(|s| (s.received, s.queues.clone(), s.sink_error.clone()))
            .collect();
        (logs, counters)
    };
    let (logs, counters) = run_with(Consumers::PerQueue);
    let n = traffic.len() as u64;
    for app in &logs {
        assert_eq!(app.iter().map(|q| q.len() as u64).sum::<u64>(), n);
    }
    let flaky = &counters[3];
    assert_eq!(flaky.1[0].dropped_no_reader, 10);
    assert_eq!(flaky.1[0].delivered, 40);
    assert!(flaky.2.as_deref().unwrap().starts_with("flaky queue 0: "));
    assert_eq!(
        flaky.1[1].delivered
            + flaky.1[0].delivered
            + flaky.1[0].dropped_no_reader
            + flaky.1[0].dropped_sink_error,
        n
    );
    let others = [1, 2, 3, 64].map(Consumers::Shared);
    for consumers in others.into_iter().chain([Consumers::Inline]) {
        let (l, c) = run_with(consumers);
        assert_eq!(l, logs, "{consumers:?}");
        assert_eq!(c, counters, "{consumers:?}");
    }
}

/// A balancer with no apps (no queues, so no consumer threads) takes
/// packets and finishes with no counters, in every threading mode.
#[test]
fn no_apps_no_consumer_threads() {
    let traffic = generate(2, 20);
    for consumers in [Consumers::PerQueue, Consumers::Shared(2), Consumers::Inline] {
        let cfg = EngineConfig {
            consumers,
            ..EngineConfig::default()
        };
        let mut b = Balancer::start(Vec::new(), cfg).unwrap();
        for p in &traffic {
            b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
        }
        assert!(b.finish().is_empty());
    }
}

/// Takes every packet, then fails at `finish` having lost the last
/// `lost` it took (a buffered file on a full disk).
struct LosesAtFinish {
    taken: u64,
    lost: u64,
    reported: bool,
}

impl Sink for LosesAtFinish {
    fn write(
        &mut self,
        _: &symrss_engine::balancer::PacketMeta,
        _: &[u8],
    ) -> Result<(), SinkError> {
        self.taken += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Err(std::io::Error::other("q0.pcap: No space left on device").into())
    }

    fn take_unwritten(&mut self) -> symrss_engine::balancer::Unwritten {
        if std::mem::replace(&mut self.reported, true) {
            return Default::default();
        }
        symrss_engine::balancer::Unwritten {
            packets: self.lost.min(self.taken),
            bytes: 0,
        }
    }
}

#[test]
fn packets_a_sink_lost_after_taking_them_are_not_delivered() {
    let traffic = generate(5, 100);
    for consumers in [Consumers::PerQueue, Consumers::Inline] {
        let app = app_config("rec", 1, "sym", LossPolicy::Lossless);
        let sink = Box::new(LosesAtFinish {
            taken: 0,
            lost: 30,
            reported: false,
        });
        let cfg = EngineConfig {
            consumers,
            ..EngineConfig::default()
        };
        let mut b = Balancer::start(vec![(app, vec![sink as Box<dyn Sink>])], cfg).unwrap();
        for p in &traffic[..200] {
            b.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
        }
        let st = &b.finish()[0];
        assert_eq!(st.queues[0].delivered, 170, "{consumers:?}");
        assert_eq!(st.queues[0].dropped_sink_error, 30);
        assert_eq!(st.delivered() + st.dropped(), st.received);
        assert!(st.queue_errors[0].as_deref().unwrap().contains("No space"));
    }
}

/// One fragmented UDP datagram (three fragments) of flow `f`, and a plain
/// packet of the same flow, as frames.
fn fragments(f: u8, id: u16) -> [Vec<u8>; 3] {
    use symrss_wire::build::*;
    let (a, b) = ([10, 9, 0, f], [10, 9, 1, f]);
    let udp = udp(4000 + u16::from(f), 53, &[f; 40]);
    let (p0, rest) = udp.split_at(24);
    let (p1, p2) = rest.split_at(8);
    [
        ethernet(ETH_IPV4, &ipv4_frag(a, b, UDP, Some((id, 0, true)), p0)),
        ethernet(ETH_IPV4, &ipv4_frag(a, b, UDP, Some((id, 24, true)), p1)),
        ethernet(ETH_IPV4, &ipv4_frag(a, b, UDP, Some((id, 32, false)), p2)),
    ]
}

/// What a queue got: (input index, timestamp) per packet.
type TimedLog = Arc<Mutex<Vec<(u64, i128)>>>;

/// Runs `frames` (one every `gap_ns`) through 4 queues of `sym` and
/// returns, per queue, the (input index, timestamp) of what it got.
fn run_in_order(
    frames: &[Vec<u8>],
    gap_ns: i128,
    frag: symrss_engine::frag::FragConfig,
) -> (Vec<Vec<(u64, i128)>>, symrss_engine::balancer::AppStats) {
    let logs: Vec<TimedLog> = (0..4).map(|_| Arc::default()).collect();
    let sinks: Vec<Box<dyn Sink>> = logs
        .iter()
        .map(|l| {
            let l = Arc::clone(l);
            Box::new(FnSink(
                move |m: &symrss_engine::balancer::PacketMeta, _: &[u8]| {
                    l.lock().unwrap().push((m.index, m.ts_ns));
                },
            )) as Box<dyn Sink>
        })
        .collect();
    let cfg = EngineConfig {
        batch_packets: 64,
        frag,
        ..EngineConfig::default()
    };
    let app = app_config("ids", 4, "sym", LossPolicy::Lossless);
    let mut b = Balancer::start(vec![(app, sinks)], cfg).unwrap();
    for (i, f) in frames.iter().enumerate() {
        b.push(i as i128 * gap_ns, f.len() as u32, 1, f);
    }
    let st = b.finish().remove(0);
    (logs.iter().map(|l| l.lock().unwrap().clone()).collect(), st)
}

#[test]
fn queues_stay_in_time_order_whatever_order_fragments_arrive_in() {
    // Six datagrams, their three fragments in each of the six orders,
    // between packets of other flows; then an orphan later fragment (its
    // first never comes) followed by three seconds of other traffic.
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let traffic = generate(7, 40);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut datagram_of: HashMap<usize, u8> = HashMap::new();
    let mut other = traffic.iter().cycle();
    for (d, order) in orders.iter().enumerate() {
        let frags = fragments(d as u8, 100 + d as u16);
        for &k in order {
            datagram_of.insert(frames.len(), d as u8);
            frames.push(frags[k].clone());
            for _ in 0..5 {
                frames.push(other.next().unwrap().frame.clone());
            }
        }
    }
    let orphan = frames.len();
    frames.push(fragments(99, 999)[2].clone());
    // 10 ms apart: 400 packets = 4 s of packet time after the orphan.
    for _ in 0..400 {
        frames.push(other.next().unwrap().frame.clone());
    }
    for frag in [
        symrss_engine::frag::FragConfig::default(),
        // A delay line of 50 packets: the orphan gives up early.
        symrss_engine::frag::FragConfig {
            max_delayed: 50,
            ..symrss_engine::frag::FragConfig::default()
        },
    ] {
        let (queues, st) = run_in_order(&frames, 10_000_000, frag);
        let mut all: Vec<u64> = Vec::new();
        for q in &queues {
            assert!(
                q.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "a queue out of input or time order: {q:?}"
            );
            all.extend(q.iter().map(|p| p.0));
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..frames.len() as u64).collect::<Vec<_>>(),
            "every packet once"
        );
        // Each datagram's fragments on one queue.
        for d in 0..orders.len() as u8 {
            let on: HashSet<usize> = queues
                .iter()
                .enumerate()
                .filter(|(_, q)| {
                    q.iter()
                        .any(|p| datagram_of.get(&(p.0 as usize)) == Some(&d))
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(on.len(), 1, "datagram {d} on queues {on:?}");
        }
        assert!(
            queues
                .iter()
                .any(|q| q.iter().any(|p| p.0 == orphan as u64))
        );
        assert_eq!(
            st.fragments.fallback_timeout + st.fragments.fallback_full,
            1,
            "the orphan"
        );
        assert_eq!(st.delivered(), frames.len() as u64);
    }
}
