//! The balancer as a library: an in-process consumer per queue that counts
//! the flows it sees.
//!
//! ```text
//! cargo run -p symrss-engine --example count_flows -- [CAPTURE.pcap] [QUEUES]
//! ```
//!
//! Without a capture it uses the built-in traffic mix. Each queue's
//! consumer runs on its own thread, dissects the frames it receives and
//! counts distinct flows (direction-independent, at the outer layer). With
//! a symmetric scheme no flow is seen by two queues; the example prints how
//! many were. On real captures a few can be: this simple consumer keys by
//! the outer header alone, so a later fragment (no ports) or an ICMP error
//! (steered by the flow it quotes) shows up as a "flow" of its own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use symrss_engine::balancer::{
    AppConfig, Balancer, EngineConfig, FnSink, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::{HashLayer, Policy};
use symrss_hash::FlowId;
use symrss_wire::{Options, dissect};

type FlowSet = Arc<Mutex<HashSet<(FlowId, u8)>>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let capture = args.next();
    let queues: u32 = args
        .next()
        .map_or(4, |q| q.parse().expect("QUEUES is a number"));

    // One set of flows per queue, filled by that queue's consumer thread.
    let per_queue: Vec<FlowSet> = (0..queues).map(|_| Arc::default()).collect();
    let sinks: Vec<Box<dyn Sink>> = per_queue
        .iter()
        .map(|flows| {
            let flows = Arc::clone(flows);
            let consumer = move |meta: &PacketMeta, frame: &[u8]| {
                let key = dissect(meta.linktype, frame, &Options::default());
                if let Some(l) = key.outer() {
                    flows
                        .lock()
                        .expect("flow set")
                        .insert((l.tuple.flow_id(), l.proto));
                }
            };
            Box::new(FnSink(consumer)) as Box<dyn Sink>
        })
        .collect();
    let app = AppConfig {
        name: "counter".into(),
        queues,
        policy: Policy::parse("sym", HashLayer::Outer, 0).expect("built-in scheme"),
        loss: LossPolicy::Lossless,
    };
    let mut balancer =
        Balancer::start(vec![(app, sinks)], EngineConfig::default()).expect("consumer threads");

    match capture {
        Some(path) => {
            let mut r = symrss_pcap::CaptureReader::open(std::path::Path::new(&path))
                .expect("open capture");
            loop {
                match r.next_packet() {
                    Ok(Some(p)) => balancer.push(p.ts_ns, p.orig_len, p.linktype, p.data),
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("{e}");
                        break;
                    }
                }
            }
        }
        None => {
            for p in symrss_engine::traffic::generate(1, 2000) {
                balancer.push(p.ts_ns, p.frame.len() as u32, 1, &p.frame);
            }
        }
    }
    let stats = balancer.finish();
    let st = &stats[0];
    println!(
        "received {} = delivered {} + dropped {}",
        st.received,
        st.delivered(),
        st.dropped()
    );
    let sets: Vec<HashSet<(FlowId, u8)>> = per_queue
        .iter()
        .map(|s| s.lock().expect("flow set").clone())
        .collect();
    for (q, flows) in sets.iter().enumerate() {
        println!(
            "queue {q}: {} packets, {} flows",
            st.queues[q].delivered,
            flows.len()
        );
    }
    let mut seen = HashSet::new();
    let on_two = sets.iter().flatten().filter(|f| !seen.insert(**f)).count();
    println!("flows seen by more than one queue: {on_two}");
}
