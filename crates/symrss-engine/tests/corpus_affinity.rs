//! On every capture of the shared corpus, at every layer: symmetric
//! software schemes split no flow; the Microsoft key does split flows; a
//! NIC profile that hashes UDP by ports (i40e) splits fragmented flows;
//! packet totals add up per scheme.

use symrss_engine::analyze::{AnalyzeConfig, Analyzer, Report};
use symrss_engine::{HashLayer, Policy};
use symrss_pcap::CaptureReader;

const SYMMETRIC: [&str; 6] = ["sym", "sym-ip", "xor", "or-xor", "sort", "keyed"];

fn analyze(path: &std::path::Path, layer: HashLayer) -> Report {
    let mut names = vec!["ms", "nic:i40e", "nic:ixgbe"];
    names.extend(SYMMETRIC);
    let policies = names
        .iter()
        .map(|n| Policy::parse(n, layer, 1).unwrap())
        .collect();
    let mut a = Analyzer::new(
        policies,
        AnalyzeConfig {
            queues: 4,
            layer,
            ..AnalyzeConfig::default()
        },
    );
    let mut r = CaptureReader::open(path).unwrap();
    while let Ok(Some(p)) = r.next_packet() {
        a.packet(p.ts_ns, p.orig_len, p.linktype, p.data);
    }
    a.finish()
}

#[test]
fn symmetric_schemes_split_nothing_on_the_corpus() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    let mut ms_split_traces = 0;
    let mut nic_fragment_splits = 0;
    for entry in &corpus {
        for layer in [HashLayer::Outer, HashLayer::Inner, HashLayer::Innermost] {
            let r = analyze(&entry.path, layer);
            assert_eq!(r.packets, entry.packets, "{}", entry.name);
            for s in &r.schemes {
                let total: u64 = s.queues.iter().map(|q| q.packets).sum();
                assert_eq!(
                    total, r.packets,
                    "{} {}: every packet on exactly one queue",
                    entry.name, s.name
                );
                // Every IP packet counted once in its RETA bucket, and a
                // queue's buckets add up to its IP packets.
                let counted: u64 = s.buckets.iter().map(|(p, _)| p).sum();
                assert_eq!(counted, r.packets - r.non_ip, "{} {}", entry.name, s.name);
                if SYMMETRIC.contains(&s.name.as_str()) {
                    assert_eq!(
                        s.flows_split, 0,
                        "{} {} at {:?}: {:?}",
                        entry.name, s.name, layer, s.split_classes
                    );
                }
            }
            if layer == HashLayer::Outer {
                if r.schemes[0].flows_split > 0 {
                    ms_split_traces += 1;
                }
                nic_fragment_splits += r.schemes[1]
                    .split_classes
                    .iter()
                    .filter(|(c, _)| c.code() == "fragments_hashed_by_addresses")
                    .map(|(_, n)| n)
                    .sum::<u64>();
            }
        }
    }
    assert!(
        ms_split_traces >= 10,
        "ms split flows on only {ms_split_traces} traces"
    );
    assert!(nic_fragment_splits > 0, "no fragment split under nic:i40e");
}
