//! `split --rebalance` and `analyze --rebalance` from the command line, on
//! a generated heavy-tailed mix (written to a pcap file) and corpus
//! traces: nothing lost; no flow on two queues, judged by tshark's own
//! dissection (its conversations per queue file are disjoint) as well as
//! by the generator's ground truth; the summary and the analyzer agree;
//! the SVG shows load over time.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use symrss_pcap::CaptureReader;
use symrss_testdata::{TempDir, run, shared, tool};

const SYMRSS: &str = env!("CARGO_BIN_EXE_symrss");

/// The heavy-tailed mix written to `path` (nanosecond pcap); returns each
/// frame's ground-truth flow.
fn heavy_tailed_pcap(path: &Path) -> HashMap<Vec<u8>, u32> {
    let traffic = symrss_engine::traffic::heavy_tailed(11, 8000, 4_000_000_000);
    let mut w = symrss_pcap::PcapWriter::new(
        std::fs::File::create(path).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Nano,
    )
    .unwrap();
    let mut truth = HashMap::new();
    for p in &traffic {
        w.write_packet(p.ts_ns, p.frame.len() as u32, &p.frame)
            .unwrap();
        truth.insert(p.frame.clone(), p.flow);
    }
    w.finish().unwrap();
    truth
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push(p.data.to_vec());
    }
    out
}

/// tshark's conversations (both endpoints and ports, sorted, for TCP and
/// UDP at the innermost layer it decodes) in one file.
fn tshark_conversations(file: &Path) -> Vec<String> {
    let out = run(Command::new("tshark")
        .args(["-n", "-T", "fields", "-E", "occurrence=l", "-e", "ip.src"])
        .args(["-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
        ])
        .args(["-e", "udp.dstport", "-r"])
        .arg(file));
    let mut convs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (src, dst) = if !f[0].is_empty() {
                (f[0], f[1])
            } else {
                (f[2], f[3])
            };
            let (sp, dp) = if !f[4].is_empty() {
                (f[4], f[5])
            } else {
                (f[6], f[7])
            };
            if src.is_empty() || sp.is_empty() {
                return None; // fragments after the first, ICMP: no ports
            }
            let mut ends = [format!("{src}:{sp}"), format!("{dst}:{dp}")];
            ends.sort();
            Some(ends.join(" "))
        })
        .collect();
    convs.sort();
    convs.dedup();
    convs
}

/// The conversations of each queue file are disjoint: no flow on two queues.
fn assert_disjoint_by_tshark(what: &str, files: &[std::path::PathBuf]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (q, f) in files.iter().enumerate() {
        for c in tshark_conversations(f) {
            if let Some(other) = seen.insert(c.clone(), q) {
                assert_eq!(
                    other, q,
                    "{what}: tshark sees {c} on queues {other} and {q}"
                );
            }
        }
    }
    assert!(
        seen.len() > 10,
        "{what}: tshark saw {} conversations",
        seen.len()
    );
}

#[test]
fn split_rebalance_evens_heavy_tailed_load_and_keeps_every_flow_whole() {
    let dir = TempDir::new("rbsplit");
    let trace = dir.path().join("heavy.pcap");
    let truth = heavy_tailed_pcap(&trace);
    let out = dir.path().join("out");
    let summary = run(Command::new(SYMRSS)
        .args(["split", "--json", "-o", out.to_str().unwrap()])
        .args(["--app", "ids:4:sym:rebalance", "--app", "rec:4:sym"])
        .arg(&trace));
    let v: Value = serde_json::from_slice(&summary.stdout).unwrap();
    let sent = v["input_packets"].as_u64().unwrap();
    let ids = &v["apps"][0];
    assert_eq!(ids["delivered"], sent, "lossless");
    assert_eq!(ids["affinity_violations"], 0);
    let r = &ids["rebalance"];
    assert!(r["moves"].as_u64().unwrap() > 0, "{r}");
    assert!(r["pinned_flows"].as_u64().unwrap() > 0, "{r}");
    let (placed, fixed, bound) = (
        r["imbalance"].as_f64().unwrap(),
        r["static_imbalance"].as_f64().unwrap(),
        r["lower_bound"].as_f64().unwrap(),
    );
    assert!(bound <= placed && placed < fixed, "{r}");
    assert_eq!(
        (&r["tick_ms"], &r["horizon_ms"], &r["min_rate"]),
        (&Value::from(5.0), &Value::from(500.0), &Value::from(1000)),
        "the default settings are reported"
    );
    assert!(
        v["apps"][1].get("rebalance").is_none(),
        "rec does not rebalance"
    );
    // Ground truth: each generated flow in one queue, every frame once.
    let mut home: HashMap<u32, usize> = HashMap::new();
    let mut total = 0;
    let files: Vec<_> = (0..4)
        .map(|q| out.join("ids").join(format!("q{q}.pcap")))
        .collect();
    for (q, f) in files.iter().enumerate() {
        for frame in frames(f) {
            let flow = truth[&frame];
            assert_eq!(
                *home.entry(flow).or_insert(q),
                q,
                "flow {flow} on two queues"
            );
            total += 1;
        }
    }
    assert_eq!(total, sent);
    // The analyzer simulates exactly what split did.
    let analyzed = run(Command::new(SYMRSS)
        .args(["analyze", "--json", "--scheme", "sym", "--rebalance"])
        .arg(&trace));
    let a: Value = serde_json::from_slice(&analyzed.stdout).unwrap();
    let twin = a["schemes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sym rebalanced")
        .expect("the rebalanced twin");
    assert_eq!(twin["flows_split"], 0);
    assert_eq!(twin["rebalance"]["moves"], r["moves"]);
    for q in 0..4 {
        assert_eq!(
            twin["queues"][q]["packets"], ids["queues"][q]["packets"],
            "q{q}"
        );
    }
    let windows = twin["windows"].as_array().unwrap();
    assert_eq!(windows.len() as u64, r["windows"].as_u64().unwrap());
    // Elephants: the busiest queues' hottest flows are listed with shares.
    let listed: usize = ids["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["hot_flows"].as_array().unwrap().len())
        .sum();
    assert!(listed > 0, "no hot flow listed");
    // tshark, on its own dissection, finds no conversation on two queues.
    if tool("tshark").is_some() {
        assert_disjoint_by_tshark("heavy-tailed", &files);
    }
}

#[test]
fn rebalanced_corpus_splits_are_whole_by_tshark() {
    let Some(corpus) = shared("pcaps") else {
        return;
    };
    let Some(_) = tool("tshark") else {
        return;
    };
    for name in [
        "PcapPlusPlus__tls2.pcap",
        "nDPI__gnutella.pcap",
        "mercury__capture2.pcap",
    ] {
        let dir = TempDir::new("rbcorpus");
        let out = dir.path().join("out");
        // At any load (the corpus is light), with short ticks: buckets
        // move while flows are live.
        let summary = run(Command::new(SYMRSS)
            .args(["split", "--json", "-o", out.to_str().unwrap()])
            .args([
                "--app",
                "ids:8:sym",
                "--rebalance",
                "--rebalance-min-rate",
                "0",
            ])
            .args(["--flow-idle-s", "86400"])
            .arg(corpus.join(name)));
        let v: Value = serde_json::from_slice(&summary.stdout).unwrap();
        let ids = &v["apps"][0];
        assert_eq!(ids["delivered"], v["input_packets"], "{name}");
        assert!(
            ids["rebalance"]["pinned_flows"].as_u64().unwrap() > 0,
            "{name}"
        );
        let files: Vec<_> = (0..8)
            .map(|q| out.join("ids").join(format!("q{q}.pcap")))
            .collect();
        assert_disjoint_by_tshark(name, &files);
    }
}

#[test]
fn analyze_rebalance_draws_load_over_time_and_refuses_nic_only() {
    let dir = TempDir::new("rbanalyze");
    let trace = dir.path().join("heavy.pcap");
    heavy_tailed_pcap(&trace);
    let svg = dir.path().join("load.svg");
    let out = run(Command::new(SYMRSS)
        .args([
            "analyze",
            "--queues",
            "8",
            "--scheme",
            "keyed",
            "--scheme",
            "nic:ixgbe",
        ])
        .args(["--rebalance", "--svg", svg.to_str().unwrap()])
        .arg(&trace));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keyed rebalanced"), "{text}");
    assert!(!text.contains("nic:ixgbe rebalanced"), "{text}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    // Two panels (static, rebalanced) of eight queues each.
    assert_eq!(chart.matches("<polyline").count(), 16, "{chart}");
    let trace = trace.to_str().unwrap();
    let x = dir.path().join("x");
    let y = dir.path().join("y");
    for (args, why) in [
        (
            &["analyze", "--scheme", "nic:ixgbe", "--rebalance", trace][..],
            "software scheme",
        ),
        (
            &[
                "split",
                "-o",
                x.to_str().unwrap(),
                "--app",
                "n:4:nic:ixgbe:rebalance",
                trace,
            ],
            "models a NIC",
        ),
        (
            &[
                "split",
                "-o",
                y.to_str().unwrap(),
                "--app",
                "ids:4:rebalance",
                "--max-flows",
                "0",
                trace,
            ],
            "flow table",
        ),
    ] {
        assert_usage_error(args, why);
    }
}

/// `symrss ARGS` exits 2 (a usage error), saying `why` on stderr.
fn assert_usage_error(args: &[&str], why: &str) {
    let out = Command::new(SYMRSS).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(why), "{args:?}: {err}");
}

/// `capture` checks a rebalancing app before it opens anything: one
/// steering worker, a software scheme, the flow table on.
#[test]
fn capture_refuses_rebalancing_it_cannot_do() {
    for (args, why) in [
        (
            &["--workers", "2", "--app", "a:4:rebalance"][..],
            "one steering worker",
        ),
        (&["--app", "a:4:nic:ixgbe:rebalance"][..], "models a NIC"),
        (
            &["--max-flows", "0", "--app", "a:4:sym:rebalance"][..],
            "flow table",
        ),
    ] {
        let mut all = vec![
            "capture",
            "-i",
            "lo",
            "-w",
            "/nonexistent/symrss",
            "--count",
            "1",
        ];
        all.extend_from_slice(args);
        assert_usage_error(&all, why);
    }
}
