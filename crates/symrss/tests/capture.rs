//! `symrss capture` live, as root, in two private network namespaces
//! joined by veth pairs the tests create (traffic never leaves them):
//! corpus traces rewritten into the namespace's address range
//! (`tcprewrite --pnat`) and replayed with `tcpreplay` are captured into
//! exactly the per-queue files `symrss split` makes from the same trace;
//! two interfaces carrying one direction each merge with no flow split; a
//! filter passes what `tcpdump -r FILE FILTER` passes; FIFO and TAP
//! queues are read by tshark and tcpdump; SIGTERM mid-stream leaves valid
//! files and counts that add up.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use symrss_pcap::CaptureReader;
use symrss_testdata::{Netns, TempDir, await_ready, live_network, run, shared, tool, veth_pair};

const SYMRSS: &str = env!("CARGO_BIN_EXE_symrss");

/// Everything the live tests need: root, iproute2, tcpreplay, tcprewrite.
fn prerequisites() -> Option<()> {
    live_network()?;
    tool("tcpreplay")?;
    tool("tcprewrite")?;
    Some(())
}

/// A running capture: started, and its "capturing on" line seen.
struct Capture {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Capture {
    fn start(ns: &Netns, args: &[&str]) -> Self {
        let mut child = ns
            .exec(SYMRSS)
            .arg("capture")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = await_ready(&mut child, "capturing on");
        Self { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit; returns (status, the rest of stderr).
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status, rest)
    }
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push(p.data.to_vec());
    }
    out
}

/// `file` rewritten into 10.77/16 and fd00:77::/64.
fn rewrite(file: &Path, out: &Path) {
    run(Command::new("tcprewrite")
        .arg("--pnat=0.0.0.0/0:10.77.0.0/16,[::]/0:[fd00:77::]/64")
        .arg(format!("--infile={}", file.display()))
        .arg(format!("--outfile={}", out.display())));
}

fn replay(ns: &Netns, iface: &str, file: &Path) {
    let out = run(ns
        .exec("tcpreplay")
        .args(["-q", "--pps", "4000", "-i", iface])
        .arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    let failed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Failed packets:"))
        .map(|n| n.trim().to_string());
    assert_eq!(failed.as_deref(), Some("0"), "{text}");
}

fn summary_count(stderr: &str, what: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.ends_with(what))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{what}` in {stderr}"))
}

/// How a capture's queue files must match `split`'s.
#[derive(Clone, Copy, PartialEq)]
enum Same {
    /// The same frames in the same order.
    Order,
    /// The same frames (AF_XDP stamps frames when read: frames different
    /// receive queues delivered at once may be ordered by read).
    Frames,
}

/// Captures corpus trace `name` (rewritten into the namespaces' range)
/// replayed from `a`'s `send` on `b`'s `recv` with `args` and `apps`
/// (`NAME:QUEUES[:SCHEME]`), then checks: every packet captured, no kernel
/// drop, each queue file as `split` writes it (`same`) and in time order,
/// and per app received = delivered, nothing dropped. Returns the stats
/// JSON and the packets sent.
fn capture_equals_split(
    (a, send): (&Netns, &str),
    (b, recv): (&Netns, &str),
    name: &str,
    args: &[&str],
    apps: &[&str],
    same: Same,
) -> (Value, u64) {
    let corpus = shared("pcaps").expect("checked by the caller");
    let dir = TempDir::new("eq");
    let trace = dir.path().join("trace.pcap");
    rewrite(&corpus.join(name), &trace);
    let sent = frames(&trace).len() as u64;
    let out = dir.path().join("cap");
    let stats_json = dir.path().join("stats.json");
    let sent_text = sent.to_string();
    let mut all = vec!["-i", recv, "-w", out.to_str().unwrap()];
    for app in apps {
        all.extend(["--app", app]);
    }
    all.extend([
        "--stats-interval",
        "0",
        "--count",
        &sent_text,
        "--duration",
        "60",
        "--stats-json",
        stats_json.to_str().unwrap(),
    ]);
    all.extend_from_slice(args);
    let cap = Capture::start(b, &all);
    replay(a, send, &trace);
    let (status, err) = cap.wait();
    let what = format!("{name} {args:?}");
    assert!(status.success(), "{what}: {err}");
    assert_eq!(
        summary_count(&err, "packets captured"),
        sent,
        "{what}: {err}"
    );
    assert_eq!(
        summary_count(&err, "packets dropped by kernel"),
        0,
        "{what}"
    );
    let split_dir = dir.path().join("split");
    let mut split = Command::new(SYMRSS);
    split.args(["split", "-o", split_dir.to_str().unwrap()]);
    for app in apps {
        split.args(["--app", app]);
    }
    run(split.arg(&trace));
    for app in apps {
        let mut parts = app.split(':');
        let (app, queues) = (parts.next().unwrap(), parts.next().unwrap());
        for q in 0..queues.parse::<u32>().unwrap() {
            let file = out.join(app).join(format!("q{q}.pcap"));
            let mut live = frames(&file);
            let mut offline = frames(&split_dir.join(app).join(format!("q{q}.pcap")));
            if same == Same::Frames {
                live.sort();
                offline.sort();
            }
            assert_eq!(live.len(), offline.len(), "{what}: {app} q{q}");
            assert!(live == offline, "{what}: {app} q{q}: frames differ");
            let mut r = CaptureReader::open(&file).unwrap();
            let mut last = i128::MIN;
            while let Some(p) = r.next_packet().unwrap() {
                assert!(p.ts_ns >= last, "{what}: {app} q{q} out of time order");
                last = p.ts_ns;
            }
        }
    }
    let stats: Value = serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
    assert_eq!(stats["captured"], sent, "{what}");
    for app in stats["apps"].as_array().unwrap() {
        assert_eq!(app["received"], sent, "{what}");
        assert_eq!(app["delivered"], sent, "{what}");
        assert_eq!(app["dropped"], 0, "{what}");
    }
    (stats, sent)
}

#[test]
fn capture_writes_exactly_what_split_writes_for_the_same_trace() {
    if prerequisites().is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("capa"), Netns::create("capb"));
    veth_pair(&a, "cva", &b, "cvb", 1);
    // Every other trace with the outputs written on the capture thread
    // (`--inline-sinks`), the others by the default consumer threads.
    for (k, name) in [
        "PcapPlusPlus__DnsPackets.pcap",
        "PcapPlusPlus__ip4_fragments.pcap",
        "zeek__http-qinq-0.pcap",
        "nDPI__viber.pcap",
    ]
    .into_iter()
    .enumerate()
    {
        let args: &[&str] = if k % 2 == 1 { &["--inline-sinks"] } else { &[] };
        let (stats, _) = capture_equals_split(
            (&a, "cva"),
            (&b, "cvb"),
            name,
            args,
            &["ids:4", "rec:2:keyed"],
            Same::Order,
        );
        for app in stats["apps"].as_array().unwrap() {
            assert_eq!(app["affinity_violations"], 0, "{name}");
        }
    }
}

/// Several capture workers (one AF_PACKET fanout member each) write
/// exactly what `split` writes: the kernel's flow hash sends a flow's
/// fragments (hashed by addresses) and its other packets to different
/// workers, so later fragments find their first fragment on another
/// worker, and each queue merges its workers in time order.
#[test]
fn workers_capture_exactly_what_split_writes() {
    if prerequisites().is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("wrka"), Netns::create("wrkb"));
    veth_pair(&a, "wva", &b, "wvb", 4);
    for (name, workers, fanout) in [
        ("PcapPlusPlus__ip4_fragments.pcap", "2", "hash"),
        ("PcapPlusPlus__ip6_fragments.pcap", "4", "hash"),
        ("PcapPlusPlus__DnsPackets.pcap", "4", "hash"),
        ("zeek__http-qinq-0.pcap", "2", "cpu"),
        ("nDPI__viber.pcap", "2", "hash"),
    ] {
        let (stats, sent) = capture_equals_split(
            (&a, "wva"),
            (&b, "wvb"),
            name,
            &["--workers", workers, "--fanout", fanout],
            &["ids:4", "rec:3:keyed"],
            Same::Order,
        );
        // One row per worker; between them they received every packet,
        // and the flow hash spread the DNS trace's many flows over them.
        let what = format!("{name}, {workers} workers, fanout {fanout}");
        let rows = stats["workers"].as_array().unwrap();
        assert_eq!(rows.len().to_string(), workers, "{what}");
        let per: Vec<u64> = rows
            .iter()
            .map(|r| r["received"].as_u64().unwrap())
            .collect();
        assert_eq!(per.iter().sum::<u64>(), sent, "{what}: {per:?}");
        if name.contains("DnsPackets") {
            assert!(
                per.iter().filter(|&&n| n > 0).count() >= 2,
                "{what}: {per:?}"
            );
        }
    }
}

/// A rebalancing app captured live places every packet where `split
/// --rebalance` places the same stream offline: the capture's own
/// one-queue app records what arrived, with the capture's timestamps, and
/// `split` of that file with the same settings writes the live queues
/// exactly — decisions follow packet time, not the live batches and
/// flushes. Short ticks and no minimum rate, so buckets move with live
/// flows pinned during the replay.
#[test]
fn a_rebalancing_capture_is_reproduced_by_split_of_what_it_captured() {
    if prerequisites().is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("rbla"), Netns::create("rblb"));
    veth_pair(&a, "rva", &b, "rvb", 1);
    let corpus = shared("pcaps").unwrap();
    for name in [
        "PcapPlusPlus__DnsPackets.pcap",
        "nDPI__dnscrypt-v1-and-resolver-pings.pcap",
    ] {
        let dir = TempDir::new("rbl");
        let trace = dir.path().join("trace.pcap");
        rewrite(&corpus.join(name), &trace);
        let sent = frames(&trace).len() as u64;
        let config = dir.path().join("capture.toml");
        std::fs::write(
            &config,
            "[rebalance]\nmin_rate = 0\ntick_ms = 1\nhorizon_ms = 20\nwindow_ms = 50\n",
        )
        .unwrap();
        let out = dir.path().join("cap");
        let stats_json = dir.path().join("stats.json");
        let sent_text = sent.to_string();
        let cap = Capture::start(
            &b,
            &[
                "--config",
                config.to_str().unwrap(),
                "-i",
                "rvb",
                "-w",
                out.to_str().unwrap(),
                "--app",
                "ids:4:sym:rebalance",
                "--app",
                "all:1",
                "--stats-interval",
                "0",
                "--count",
                &sent_text,
                "--duration",
                "60",
                "--stats-json",
                stats_json.to_str().unwrap(),
            ],
        );
        replay(&a, "rva", &trace);
        let (status, err) = cap.wait();
        assert!(status.success(), "{name}: {err}");
        assert_eq!(
            summary_count(&err, "packets captured"),
            sent,
            "{name}: {err}"
        );
        assert!(err.contains("ids: rebalanced with"), "{name}: {err}");
        let stats: Value = serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
        let ids = &stats["apps"][0];
        assert_eq!(ids["name"], "ids");
        assert_eq!(ids["delivered"], sent, "{name}");
        assert_eq!(ids["affinity_violations"], 0, "{name}");
        let live = &ids["rebalance"];
        assert!(live["moves"].as_u64().unwrap() > 0, "{name}: {live}");
        // The same stream offline.
        let split_dir = dir.path().join("split");
        let summary = run(Command::new(SYMRSS)
            .args(["split", "--json", "-o", split_dir.to_str().unwrap()])
            .args(["--app", "ids:4:sym:rebalance", "--rebalance-min-rate", "0"])
            .args(["--rebalance-tick-ms", "1", "--rebalance-horizon-ms", "20"])
            .args(["--rebalance-window-ms", "50"])
            .arg(out.join("all").join("q0.pcap")));
        let summary: Value = serde_json::from_slice(&summary.stdout).unwrap();
        let offline = &summary["apps"][0]["rebalance"];
        assert_eq!(live["tick_ms"], 1.0, "{name}: the TOML's settings in force");
        for field in [
            "moves",
            "pinned_flows",
            "windows",
            "tick_ms",
            "horizon_ms",
            "min_rate",
        ] {
            assert_eq!(live[field], offline[field], "{name}: {field}");
        }
        for q in 0..4 {
            let live = frames(&out.join("ids").join(format!("q{q}.pcap")));
            let offline = frames(&split_dir.join("ids").join(format!("q{q}.pcap")));
            assert!(live == offline, "{name}: ids q{q} differs from split's");
        }
    }
}

/// Two-way flows, each direction in its own file.
fn direction_traces(dir: &Path, flows: u16, per_direction: u16) -> (PathBuf, PathBuf, u64) {
    use symrss_wire::build::*;
    let paths = (dir.join("ab.pcap"), dir.join("ba.pcap"));
    let mut ab = symrss_pcap::PcapWriter::new(
        std::fs::File::create(&paths.0).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Micro,
    )
    .unwrap();
    let mut ba = symrss_pcap::PcapWriter::new(
        std::fs::File::create(&paths.1).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Micro,
    )
    .unwrap();
    let mut n = 0u64;
    for i in 0..per_direction {
        for f in 0..flows {
            let (x, y) = ([10, 77, 1, f as u8], [10, 77, 2, 1]);
            let (p, q) = (30000 + f, 443);
            let ts = i128::from(n) * 1000;
            ab.write_packet(
                ts,
                0,
                &ethernet(ETH_IPV4, &ipv4(x, y, TCP, &tcp(p, q, &[i as u8; 8]))),
            )
            .unwrap();
            ba.write_packet(
                ts + 1,
                0,
                &ethernet(ETH_IPV4, &ipv4(y, x, TCP, &tcp(q, p, &[i as u8; 8]))),
            )
            .unwrap();
            n += 2;
        }
    }
    ab.finish().unwrap();
    ba.finish().unwrap();
    (paths.0, paths.1, n)
}

#[test]
fn two_interfaces_with_one_direction_each_merge_without_splitting_flows() {
    if prerequisites().is_none() {
        return;
    }
    let (a, b) = (Netns::create("mrga"), Netns::create("mrgb"));
    veth_pair(&a, "ma1", &b, "mb1", 1);
    veth_pair(&a, "ma2", &b, "mb2", 1);
    let dir = TempDir::new("merge");
    let (ab, ba, total) = direction_traces(dir.path(), 50, 4);
    let out = dir.path().join("cap");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "mb1",
            "-i",
            "mb2",
            "--app",
            "ids:4",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "0",
            "--count",
            &total.to_string(),
            "--duration",
            "60",
        ],
    );
    let t1 = {
        let mut c = a.exec("tcpreplay");
        c.args(["-q", "--pps", "2000", "-i", "ma1"]).arg(&ab);
        c.spawn().unwrap()
    };
    let mut c2 = a.exec("tcpreplay");
    c2.args(["-q", "--pps", "2000", "-i", "ma2"]).arg(&ba);
    let t2 = c2.spawn().unwrap();
    for mut t in [t1, t2] {
        assert!(t.wait().unwrap().success());
    }
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
    assert_eq!(summary_count(&err, "packets captured"), total, "{err}");
    assert!(
        err.contains(
            "ids: received 400 = delivered 400 + dropped 0; flows seen on a second queue: 0"
        ),
        "{err}"
    );
    // (Not in time order across the two interfaces: one worker merges
    // its rings a round of blocks at a time, and a block of one interface
    // can be read a round after a newer block of the other.)
    each_flow_in_one_queue(&out.join("ids"), 4, total, 50, false);
}

/// Each flow of [`direction_traces`]'s, both directions, is in exactly
/// one of the `queues` queue files in `dir`, which hold `total` packets of
/// `flows` flows between them; with `ordered`, each file in time order.
fn each_flow_in_one_queue(dir: &Path, queues: usize, total: u64, flows: usize, ordered: bool) {
    let mut home = std::collections::HashMap::new();
    let mut seen = 0;
    for q in 0..queues {
        let mut r = CaptureReader::open(&dir.join(format!("q{q}.pcap"))).unwrap();
        let mut last = i128::MIN;
        while let Some(p) = r.next_packet().unwrap() {
            assert!(!ordered || p.ts_ns >= last, "q{q} out of time order");
            last = p.ts_ns;
            let f = p.data;
            let flow = f[26..34].iter().fold(0u32, |acc, b| acc ^ u32::from(*b));
            let ports = u16::from_be_bytes([f[34], f[35]]) ^ u16::from_be_bytes([f[36], f[37]]);
            assert_eq!(
                *home.entry((flow, ports)).or_insert(q),
                q,
                "flow on two queues"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, total);
    assert_eq!(home.len(), flows);
}

/// `--source afxdp`: an XDP program redirects each of the veth's four
/// receive queues to an AF_XDP socket; with 1, 2 and 4 workers every
/// queue file holds exactly the frames `split` puts there, in time order,
/// and the program is gone from the interface afterwards. (AF_XDP has no
/// receive timestamps: frames are stamped when read, so frames that
/// different receive queues delivered at the same moment may be ordered
/// by read; the comparison is of each queue's frames as a set.)
#[test]
fn afxdp_captures_what_split_writes_and_detaches() {
    if prerequisites().is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("xdpa"), Netns::create("xdpb"));
    veth_pair(&a, "xa", &b, "xb", 4);
    for (name, workers) in [
        ("PcapPlusPlus__ip4_fragments.pcap", "1"),
        ("PcapPlusPlus__DnsPackets.pcap", "2"),
        ("zeek__http-qinq-0.pcap", "4"),
    ] {
        capture_equals_split(
            (&a, "xa"),
            (&b, "xb"),
            name,
            &["--source", "afxdp", "--workers", workers],
            &["ids:4"],
            Same::Frames,
        );
        let shown = String::from_utf8_lossy(&run(b.exec("ip").args(["link", "show", "xb"])).stdout)
            .to_string();
        // Attached, `ip link` shows `xdp`/`xdpgeneric` and `prog/xdp id N`.
        assert!(
            !shown.contains("prog/xdp") && !shown.contains(" xdp") && !shown.contains("xdpgeneric"),
            "{name}: XDP left attached: {shown}"
        );
    }
}

/// Each direction of every flow sent from its own CPU, so that with
/// `--fanout cpu` the two directions reach different workers (the stats'
/// per-worker rows show one direction each): every flow, both
/// directions, is still in exactly one queue, and each queue is in time
/// order.
#[test]
fn two_directions_on_two_workers_stay_in_one_queue() {
    if prerequisites().is_none() {
        return;
    }
    let Some(taskset) = tool("taskset") else {
        return;
    };
    let two_cpus = (symrss_sys::cpu_count() >= 2).then_some(());
    if symrss_testdata::prerequisite(two_cpus, || {
        "needs two CPUs (one sender per direction)".into()
    })
    .is_none()
    {
        return;
    }
    let (a, b) = (Netns::create("dira"), Netns::create("dirb"));
    veth_pair(&a, "da", &b, "db", 1);
    let dir = TempDir::new("dirs");
    let (ab, ba, total) = direction_traces(dir.path(), 50, 4);
    let out = dir.path().join("cap");
    let stats_json = dir.path().join("stats.json");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "db",
            "--workers",
            "2",
            "--fanout",
            "cpu",
            "--app",
            "ids:4",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "0",
            "--count",
            &total.to_string(),
            "--duration",
            "60",
            "--stats-json",
            stats_json.to_str().unwrap(),
        ],
    );
    let senders: Vec<_> = [(0, &ab), (1, &ba)]
        .into_iter()
        .map(|(cpu, trace)| {
            let mut c = a.exec(taskset.to_str().unwrap());
            c.args([
                "-c",
                &cpu.to_string(),
                "tcpreplay",
                "-q",
                "--pps",
                "2000",
                "-i",
                "da",
            ])
            .arg(trace);
            c.spawn().unwrap()
        })
        .collect();
    for mut t in senders {
        assert!(t.wait().unwrap().success());
    }
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
    assert_eq!(summary_count(&err, "packets captured"), total, "{err}");
    assert!(
        err.contains(
            "ids: received 400 = delivered 400 + dropped 0; flows seen on a second queue: 0"
        ),
        "{err}"
    );
    let stats: Value = serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
    let per: Vec<u64> = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["received"].as_u64().unwrap())
        .collect();
    assert_eq!(per, [total / 2, total / 2], "one direction per worker");
    each_flow_in_one_queue(&out.join("ids"), 4, total, 50, true);
}

#[test]
fn a_filter_passes_exactly_what_tcpdump_passes() {
    if prerequisites().is_none() || tool("tcpdump").is_none() {
        return;
    }
    let Some(corpus) = shared("pcaps") else {
        return;
    };
    let (a, b) = (Netns::create("flta"), Netns::create("fltb"));
    veth_pair(&a, "fa", &b, "fb", 1);
    let dir = TempDir::new("filter");
    let trace = dir.path().join("viber.pcap");
    rewrite(&corpus.join("nDPI__viber.pcap"), &trace);
    let filter = "udp or icmp";
    let expected = dir.path().join("expected.pcap");
    run(Command::new("tcpdump")
        .arg("-r")
        .arg(&trace)
        .arg("-w")
        .arg(&expected)
        .arg(filter));
    let want = frames(&expected);
    assert!(
        want.len() > 50 && want.len() < frames(&trace).len(),
        "{}",
        want.len()
    );
    // In the kernel (AF_PACKET socket filter) and in user space (AF_XDP:
    // symrss's interpreter of the same compiled program).
    for source in ["afpacket", "afxdp"] {
        let out = dir.path().join(format!("cap-{source}"));
        let cap = Capture::start(
            &b,
            &[
                "-i",
                "fb",
                "--source",
                source,
                "--app",
                "all:1",
                "-w",
                out.to_str().unwrap(),
                "--stats-interval",
                "0",
                "--duration",
                "60",
                "--count",
                &want.len().to_string(),
                filter,
            ],
        );
        replay(&a, "fa", &trace);
        let (status, err) = cap.wait();
        assert!(status.success(), "{source}: {err}");
        let got = frames(&out.join("all/q0.pcap"));
        assert_eq!(got.len(), want.len(), "{source}: {err}");
        assert!(
            got == want,
            "{source}: the filtered frames differ from tcpdump's"
        );
        assert_eq!(
            summary_count(&err, "packets received by filter"),
            want.len() as u64,
            "{source}"
        );
    }
    // A filter libpcap cannot compile is a usage error naming it.
    let bad = b
        .exec(SYMRSS)
        .args(["capture", "-i", "fb", "tcp port"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("filter `tcp port`"));
}

#[test]
fn fifo_and_tap_queues_are_read_by_tshark_and_tcpdump() {
    if prerequisites().is_none() || tool("tcpdump").is_none() || tool("tshark").is_none() {
        return;
    }
    let (a, b) = (Netns::create("snka"), Netns::create("snkb"));
    veth_pair(&a, "sa", &b, "sb", 1);
    let dir = TempDir::new("sinks");
    let (ab, _, _) = direction_traces(dir.path(), 20, 5);
    let sent = 100u64;
    let out = dir.path().join("cap");
    let fifo = out.join("ff/q0.fifo");
    // The FIFO exists once capture runs; tshark then reads it as a file.
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "sb",
            "--app",
            "ff:1:sym:fifo",
            "--app",
            "tp:1:sym:tap",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "0",
            "--duration",
            "60",
        ],
    );
    let tshark = b
        .exec("tshark")
        .args(["-n", "-T", "fields", "-e", "frame.len", "-r"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tap_file = dir.path().join("tap.pcap");
    let mut tcpdump = b
        .exec("tcpdump")
        .args(["-n", "-U", "-c", &sent.to_string(), "-i", "tp-q0", "-w"])
        .arg(&tap_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let both readers attach (tcpdump prints "listening on" when it has;
    // tshark has the FIFO open).
    let _td_err = await_ready(&mut tcpdump, "listening on tp-q0");
    symrss_testdata::wait_until("tshark to open the FIFO", || {
        symrss_testdata::reads_fifo(tshark.id(), &fifo)
    });
    replay(&a, "sa", &ab);
    // tcpdump on the TAP stops by itself after `sent` packets (-c); then
    // the capture is stopped, which closes the FIFO for tshark.
    assert!(
        tcpdump.wait().unwrap().success(),
        "tcpdump on the TAP ended early"
    );
    let tap_frames = frames(&tap_file);
    assert_eq!(
        tap_frames.len() as u64,
        sent,
        "tcpdump on the TAP saw every packet"
    );
    run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
    let lines = tshark.wait_with_output().unwrap();
    let read: Vec<String> = String::from_utf8_lossy(&lines.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let stats_fifo = err
        .lines()
        .find(|l| l.starts_with("ff "))
        .unwrap()
        .to_string();
    let delivered: u64 = stats_fifo
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let no_reader: u64 = stats_fifo
        .split_whitespace()
        .nth(6)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(delivered + no_reader, sent, "{err}");
    assert_eq!(
        read.len() as u64,
        delivered,
        "tshark read every delivered packet: {err}"
    );
    assert!(delivered > 0, "{err}");
}

#[test]
fn sigterm_mid_stream_leaves_valid_files_and_counts_that_add_up() {
    if prerequisites().is_none() || tool("capinfos").is_none() {
        return;
    }
    let (a, b) = (Netns::create("trma"), Netns::create("trmb"));
    veth_pair(&a, "ta", &b, "tb", 1);
    let dir = TempDir::new("term");
    let (ab, _, _) = direction_traces(dir.path(), 100, 30);
    let out = dir.path().join("cap");
    let stats_path = dir.path().join("stats.json");
    run(b.exec("ip").args(["link", "set", "lo", "up"]));
    // Without CAP_NET_RAW: a clear error, not a crash.
    let unprivileged = b
        .exec("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SYMRSS,
            "capture",
            "-i",
            "tb",
            "--app",
            "x:1:sym:count",
        ])
        .output()
        .unwrap();
    assert_eq!(unprivileged.status.code(), Some(1));
    let why = String::from_utf8_lossy(&unprivileged.stderr);
    assert!(why.contains("CAP_NET_RAW"), "{why}");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "tb",
            "--app",
            "ids:3",
            "--app",
            "rec:1:keyed",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "1",
            "--stats-json",
            stats_path.to_str().unwrap(),
            "--user",
            "nobody",
            "--prometheus",
            "127.0.0.1:9911",
        ],
    );
    // Privileges were dropped after setup.
    let status = std::fs::read_to_string(format!("/proc/{}/status", cap.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let nobody = symrss_sys::privileges::lookup("nobody").unwrap().uid;
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == nobody.to_string()),
        "{uid_line}"
    );
    let mut replay = a.exec("tcpreplay");
    replay.args(["-q", "--pps", "1000", "-i", "ta"]).arg(&ab);
    let mut sender = replay.spawn().unwrap();
    let captured_now = || -> u64 {
        std::fs::read(&stats_path)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
            .and_then(|v| v["captured"].as_u64())
            .unwrap_or(0)
    };
    symrss_testdata::wait_until("packets before SIGHUP", || captured_now() >= 100);
    // SIGHUP: every queue that gets another packet starts a new file.
    run(Command::new("kill").args(["-HUP", &cap.pid().to_string()]));
    let at_hup = captured_now();
    symrss_testdata::wait_until("packets after SIGHUP", || {
        captured_now() >= at_hup + 300 && out.join("rec/q0.1.pcap").exists()
    });
    // The Prometheus endpoint (on the namespace's own loopback).
    let scrape = run(b.exec("bash").args([
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9911; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ]));
    let metrics = String::from_utf8_lossy(&scrape.stdout);
    assert!(metrics.starts_with("HTTP/1.0 200 OK"), "{metrics}");
    let delivered_rec: u64 = metrics
        .lines()
        .find(|l| l.starts_with("symrss_queue_delivered_total{app=\"rec\",queue=\"0\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(delivered_rec > 0, "{metrics}");
    assert!(
        metrics
            .contains("symrss_queue_dropped_total{app=\"ids\",queue=\"2\",reason=\"no_reader\"} 0"),
        "{metrics}"
    );
    run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
    let (status, err) = cap.wait();
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(status.success(), "{err}");
    let captured = summary_count(&err, "packets captured");
    assert!(
        captured > 500 && captured < 6000,
        "stopped mid-stream: {captured}"
    );
    let stats: Value = serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["captured"], captured);
    for app in stats["apps"].as_array().unwrap() {
        let (r, d, x) = (
            app["received"].as_u64().unwrap(),
            app["delivered"].as_u64().unwrap(),
            app["dropped"].as_u64().unwrap(),
        );
        assert_eq!(r, captured);
        assert_eq!(r, d + x, "received = delivered + dropped");
        // Every queue's files are valid pcap (capinfos reads them) and
        // hold exactly what was delivered.
        let name = app["name"].as_str().unwrap();
        let mut in_files = 0;
        for e in std::fs::read_dir(out.join(name)).unwrap() {
            let p = e.unwrap().path();
            let ci = run(Command::new("capinfos").arg("-c").arg("-M").arg(&p));
            assert!(String::from_utf8_lossy(&ci.stdout).contains("Number of packets"));
            in_files += frames(&p).len() as u64;
        }
        assert_eq!(in_files, d, "{name}");
    }
    // SIGHUP rotated: the recorder's queue has its first and second file.
    assert!(out.join("rec/q0.pcap").exists() && out.join("rec/q0.1.pcap").exists());
    assert!(!frames(&out.join("rec/q0.1.pcap")).is_empty());
}

#[test]
fn print_config_shows_the_effective_configuration() {
    let dir = TempDir::new("cfg");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        "interfaces = [\"eth9\"]\nstats_interval = 3\n[rotate]\nsize = \"1G\"\n[[app]]\nname = \"ids\"\nqueues = 8\n",
    )
    .unwrap();
    let out = run(Command::new(SYMRSS)
        .args(["capture", "--config"])
        .arg(&cfg)
        .args([
            "--app",
            "rec:1:keyed:fifo",
            "--consumer-threads",
            "3",
            "--print-config",
            "not",
            "port",
            "22",
        ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["interfaces"][0].as_str(), Some("eth9"));
    assert_eq!(v["stats_interval"].as_integer(), Some(3));
    assert_eq!(v["filter"].as_str(), Some("not port 22"));
    assert_eq!(v["rotate"]["size"].as_str(), Some("1G"));
    // --app on the command line replaces the file's apps.
    assert_eq!(v["app"][0]["name"].as_str(), Some("rec"));
    assert_eq!(v["app"][0]["sink"].as_str(), Some("fifo"));
    assert_eq!(v["consumer_threads"].as_integer(), Some(3));
    let bad = Command::new(SYMRSS)
        .args(["capture", "--app", "x:1:sym:carrier-pigeon", "-i", "lo"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_interface_going_away_ends_the_capture_with_valid_files() {
    if prerequisites().is_none() {
        return;
    }
    let (a, b) = (Netns::create("gona"), Netns::create("gonb"));
    veth_pair(&a, "ga", &b, "gb", 1);
    let dir = TempDir::new("gone");
    let (ab, _, sent) = direction_traces(dir.path(), 10, 5);
    let sent = sent / 2;
    let out = dir.path().join("cap");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "gb",
            "--app",
            "ids:2",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "0",
            "--duration",
            "60",
        ],
    );
    replay(&a, "ga", &ab);
    // No wait: the last packets may still sit in the block the kernel is
    // filling; the capture must drain it after the error.
    run(b.exec("ip").args(["link", "del", "gb"]));
    let (status, err) = cap.wait();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("gb: Network is down") && err.contains("went down or away"),
        "{err}"
    );
    // Every packet the kernel's filter passed was captured or dropped by
    // the kernel (none left unread in the ring), and what was captured is
    // written, valid and counted.
    let captured = summary_count(&err, "packets captured");
    assert_eq!(
        captured + summary_count(&err, "packets dropped by kernel"),
        summary_count(&err, "packets received by filter"),
        "{err}"
    );
    assert!(!err.contains("left unread"), "{err}");
    assert!(captured > 0 && captured <= sent, "{err}");
    let sent = captured;
    let written: usize = (0..2)
        .map(|q| frames(&out.join(format!("ids/q{q}.pcap"))).len())
        .sum();
    assert_eq!(written as u64, sent);
}

/// Reads the stats file (rewritten in place every second) until `ready`
/// accepts it; bounded.
fn await_stats(path: &Path, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    loop {
        if let Ok(text) = std::fs::read(path) {
            if let Ok(v) = serde_json::from_slice::<Value>(&text)
                && ready(&v)
            {
                return v;
            }
            last = text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            String::from_utf8_lossy(&last)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Packets in every pcap file of `dir`.
fn packets_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pcap"))
        .map(|e| frames(&e.path()).len() as u64)
        .sum()
}

#[test]
fn a_full_disk_fails_only_its_queue_which_retries_at_the_next_rotation() {
    if prerequisites().is_none() {
        return;
    }
    let (a, b) = (Netns::create("fulla"), Netns::create("fullb"));
    veth_pair(&a, "fa", &b, "fb", 1);
    let dir = TempDir::new("full");
    // 5000 packets of 78 bytes per replay: more than a queue's 256 KiB
    // write buffer, so the full disk shows while the capture runs.
    let (ab, _, _) = direction_traces(dir.path(), 50, 100);
    let per_replay = 5000u64;
    let out = dir.path().join("cap");
    let rec = out.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&rec));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(rec.clone());
    let stats = dir.path().join("stats.json");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "fb",
            "--app",
            "ids:2",
            "--app",
            "rec:1:keyed",
            "-w",
            out.to_str().unwrap(),
            "--stats-interval",
            "0",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    let app = |v: &Value, name: &str| -> Value {
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()
            .clone()
    };
    replay(&a, "fa", &ab);
    await_stats(&stats, "the first replay and the full disk", |v| {
        v["captured"] == per_replay
            && app(v, "rec")["queues"][0]["dropped"]["sink_error"].as_u64() > Some(0)
            && app(v, "ids")["delivered"] == per_replay
    });
    // The failed file ends on a whole record; the operator frees the disk
    // and asks for a rotation.
    let first = frames(&rec.join("q0.pcap")).len() as u64;
    assert!(first > 0 && first < per_replay);
    std::fs::remove_file(rec.join("q0.pcap")).unwrap();
    run(Command::new("kill").args(["-HUP", &cap.pid().to_string()]));
    replay(&a, "fa", &ab);
    await_stats(&stats, "the second replay", |v| {
        v["captured"] == 2 * per_replay
    });
    run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
    let (status, err) = cap.wait();
    assert_eq!(status.code(), Some(1), "a queue failed: {err}");
    assert!(
        err.contains("No space left on device") && err.contains("rec/q0"),
        "{err}"
    );
    let end: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    // The other app lost nothing.
    let ids = app(&end, "ids");
    assert_eq!(ids["delivered"], 2 * per_replay);
    assert_eq!(packets_in(&out.join("ids")), 2 * per_replay);
    // The full queue: its delivered count is what reached its files (the
    // first, removed above, and the one opened at the rotation), the rest
    // is counted as sink_error, and it took packets again after SIGHUP.
    let r = app(&end, "rec");
    let again = packets_in(&rec);
    assert!(again > 0, "the queue wrote again after the rotation");
    assert_eq!(r["delivered"].as_u64().unwrap(), first + again);
    assert_eq!(
        r["received"].as_u64().unwrap(),
        r["delivered"].as_u64().unwrap() + r["dropped"].as_u64().unwrap()
    );
    assert_eq!(r["received"], 2 * per_replay);
}

#[test]
fn capture_outputs_never_go_through_a_symbolic_link() {
    if prerequisites().is_none() {
        return;
    }
    let (a, b) = (Netns::create("lnka"), Netns::create("lnkb"));
    veth_pair(&a, "la", &b, "lb", 1);
    let dir = TempDir::new("link");
    let out = dir.path().join("cap");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // An app directory that is a link, and a queue file that is one.
    std::os::unix::fs::symlink(&elsewhere, out.join("ids")).unwrap();
    std::fs::create_dir_all(out.join("rec")).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("rec/q0.pcap")).unwrap();
    for app in ["ids:2", "rec:1"] {
        let o = b
            .exec(SYMRSS)
            .args(["capture", "-i", "lb", "--duration", "1", "--app", app, "-w"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{app}: {err}");
        assert!(err.contains("symbolic link"), "{app}: {err}");
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

/// The queues of `app` as `split` writes them from `trace`.
fn split_queues(trace: &Path, out: &Path, app: &str) -> Vec<Vec<Vec<u8>>> {
    run(Command::new(SYMRSS)
        .args(["split", "-o", out.to_str().unwrap(), "--app", app])
        .arg(trace));
    let (name, queues) = {
        let mut p = app.split(':');
        (
            p.next().unwrap(),
            p.next().unwrap().parse::<usize>().unwrap(),
        )
    };
    (0..queues)
        .map(|q| frames(&out.join(name).join(format!("q{q}.pcap"))))
        .collect()
}

/// A tcpdump writing interface `iface` to `file`, stopping by itself after
/// `count` packets; started and listening.
fn tcpdump_on(ns: &Netns, iface: &str, file: &Path, count: usize) -> Child {
    let mut td = ns
        .exec("tcpdump")
        .args(["-n", "-U", "-c", &count.to_string(), "-i", iface, "-w"])
        .arg(file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "listening on" is printed once the socket is bound.
    let mut err = await_ready(&mut td, &format!("listening on {iface}"));
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    td
}

/// The `veth` sink, as the issue's consumers read it: tcpdump on
/// `vq-q0` and `vq-q1` and, on `vq-q2`, an AF_PACKET fanout group of two
/// sockets (the way Suricata reads: here `symrss capture --workers 2
/// --fanout hash`) get exactly the frames `split` puts in each queue —
/// for a trace of many flows and for one with QinQ tags (the capture puts
/// back the tag its kernel stripped; the consumer's kernel strips it again
/// and libpcap puts it back). Everything is delivered, nothing dropped,
/// and the pairs are gone when the capture ends.
#[test]
fn veth_queues_are_read_by_tcpdump_and_by_a_fanout_group_as_split_writes_them() {
    if prerequisites().is_none() || tool("tcpdump").is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("vtha"), Netns::create("vthb"));
    veth_pair(&a, "va", &b, "vb", 1);
    let corpus = shared("pcaps").unwrap();
    for name in ["PcapPlusPlus__DnsPackets.pcap", "zeek__http-qinq-0.pcap"] {
        let dir = TempDir::new("veth");
        let trace = dir.path().join("trace.pcap");
        rewrite(&corpus.join(name), &trace);
        let sent = frames(&trace).len();
        let want = split_queues(&trace, &dir.path().join("split"), "vq:3");
        let stats_json = dir.path().join("stats.json");
        let cap = Capture::start(
            &b,
            &[
                "-i",
                "vb",
                "--app",
                "vq:3:sym:veth",
                "-w",
                dir.path().join("cap").to_str().unwrap(),
                "--stats-interval",
                "0",
                "--duration",
                "60",
                "--stats-json",
                stats_json.to_str().unwrap(),
            ],
        );
        let files: Vec<PathBuf> = (0..2)
            .map(|q| dir.path().join(format!("td{q}.pcap")))
            .collect();
        let dumps: Vec<Option<Child>> = (0..2)
            .map(|q| {
                (!want[q].is_empty())
                    .then(|| tcpdump_on(&b, &format!("vq-q{q}"), &files[q], want[q].len()))
            })
            .collect();
        let group_out = dir.path().join("group");
        let group = (!want[2].is_empty()).then(|| {
            Capture::start(
                &b,
                &[
                    "-i",
                    "vq-q2",
                    "--workers",
                    "2",
                    "--fanout",
                    "hash",
                    "--app",
                    "r:1:sym:pcap",
                    "-w",
                    group_out.to_str().unwrap(),
                    "--stats-interval",
                    "0",
                    "--count",
                    &want[2].len().to_string(),
                    "--duration",
                    "60",
                ],
            )
        });
        replay(&a, "va", &trace);
        for (q, td) in dumps.into_iter().enumerate() {
            if let Some(mut td) = td {
                assert!(td.wait().unwrap().success(), "{name}: tcpdump on vq-q{q}");
                assert!(
                    frames(&files[q]) == want[q],
                    "{name}: vq-q{q} as read by tcpdump differs from split's q{q}"
                );
            }
        }
        if let Some(group) = group {
            let (status, err) = group.wait();
            assert!(status.success(), "{name}: fanout reader: {err}");
            let mut got = frames(&group_out.join("r/q0.pcap"));
            let mut expected = want[2].clone();
            got.sort();
            expected.sort();
            assert!(got == expected, "{name}: vq-q2 as read by a fanout group");
        }
        // The capture ends only now: its interfaces vanish with it, and a
        // reader loses what it has not read yet.
        run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
        let (status, err) = cap.wait();
        assert!(status.success(), "{name}: {err}");
        let stats: Value = serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
        let app = &stats["apps"][0];
        assert_eq!(app["delivered"], sent as u64, "{name}: {err}");
        assert_eq!(app["dropped"], 0, "{name}: {err}");
        for (q, frames) in want.iter().enumerate() {
            assert_eq!(
                app["queues"][q]["delivered"],
                frames.len() as u64,
                "{name}: q{q}"
            );
        }
        let links = run(b.exec("ip").args(["-o", "link"]));
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(
            !links.contains("vq-q") && !links.contains(": symrss"),
            "{name}: pairs left: {links}"
        );
    }
}

/// A `veth` consumer that stops reading loses only its own packets, and
/// its own kernel counts them: with tcpdump on `sq-q1` stopped (SIGSTOP)
/// while 20 loops of a trace go through, `sq-q0`'s tcpdump still gets
/// every frame `split` puts there, symrss delivers every packet of both
/// queues (it is not held up), and the stopped tcpdump, resumed, reports
/// that its kernel received exactly what symrss delivered to its queue:
/// what it captured plus what it dropped (its ring was full).
#[test]
fn a_stopped_veth_consumer_loses_only_its_own_packets_counted_by_its_kernel() {
    if prerequisites().is_none() || tool("tcpdump").is_none() || shared("pcaps").is_none() {
        return;
    }
    let (a, b) = (Netns::create("vsta"), Netns::create("vstb"));
    veth_pair(&a, "sa", &b, "sb", 1);
    let dir = TempDir::new("vstop");
    let trace = dir.path().join("trace.pcap");
    rewrite(
        &shared("pcaps")
            .unwrap()
            .join("PcapPlusPlus__DnsPackets.pcap"),
        &trace,
    );
    const LOOPS: usize = 20;
    let sent = frames(&trace).len() * LOOPS;
    let want = split_queues(&trace, &dir.path().join("split"), "sq:2");
    let stats_json = dir.path().join("stats.json");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "sb",
            "--app",
            "sq:2:sym:veth",
            "-w",
            dir.path().join("cap").to_str().unwrap(),
            "--stats-interval",
            "0",
            "--duration",
            "60",
            "--stats-json",
            stats_json.to_str().unwrap(),
        ],
    );
    let q0 = dir.path().join("q0.pcap");
    let mut reader = tcpdump_on(&b, "sq-q0", &q0, want[0].len() * LOOPS);
    let mut stopped = b
        .exec("tcpdump")
        // -B 64: a 64 KiB buffer (libpcap makes it one 256 KiB block),
        // which the queue's share of the loops overflows.
        .args(["-n", "-B", "64", "-i", "sq-q1", "-w"])
        .arg(dir.path().join("q1.pcap"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stopped_err = await_ready(&mut stopped, "listening on sq-q1");
    // `ip netns exec` runs tcpdump in place (exec), so its pid is tcpdump's.
    // Whatever happens, it is not left stopped.
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.to_string()])
                .status();
        }
    }
    let _resume = Resume(stopped.id());
    run(Command::new("kill").args(["-STOP", &stopped.id().to_string()]));
    let out = run(a
        .exec("tcpreplay")
        .args([
            "-q",
            "--pps",
            "20000",
            "--loop",
            &LOOPS.to_string(),
            "-i",
            "sa",
        ])
        .arg(&trace));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim().strip_prefix("Failed packets:").map(str::trim) == Some("0")),
        "{text}"
    );
    assert!(reader.wait().unwrap().success(), "tcpdump on sq-q0");
    let expected: Vec<Vec<u8>> = want[0]
        .iter()
        .cycle()
        .take(want[0].len() * LOOPS)
        .cloned()
        .collect();
    assert!(frames(&q0) == expected, "sq-q0 lost or changed frames");
    // Resume the stopped reader and let it drain its ring, then stop it
    // (SIGINT: it prints its kernel's counters) while the interface exists.
    run(Command::new("kill").args(["-CONT", &stopped.id().to_string()]));
    std::thread::sleep(Duration::from_millis(1500));
    run(Command::new("kill").args(["-INT", &stopped.id().to_string()]));
    let mut td_text = String::new();
    let mut e = stopped_err;
    e.read_to_string(&mut td_text).unwrap();
    stopped.wait().unwrap();
    run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
    let stats: Value = serde_json::from_slice(&std::fs::read(&stats_json).unwrap()).unwrap();
    let app = &stats["apps"][0];
    assert_eq!(app["delivered"], sent as u64, "{err}");
    assert_eq!(app["dropped"], 0, "{err}");
    let q1_delivered = (want[1].len() * LOOPS) as u64;
    assert_eq!(app["queues"][1]["delivered"], q1_delivered, "{err}");
    let received = summary_count(&td_text, "packets received by filter");
    let captured = summary_count(&td_text, "packets captured");
    let dropped = summary_count(&td_text, "packets dropped by kernel");
    assert_eq!(received, q1_delivered, "{td_text}");
    assert!(
        dropped > 0,
        "the stopped reader's ring overflowed: {td_text}"
    );
    assert_eq!(captured + dropped, received, "{td_text}");
}

/// The pairs a `veth` sink makes are the only interfaces it touches: a
/// pair a killed capture left behind is replaced by the next start (and
/// removed at its end), while an interface of the same name that symrss
/// did not make is refused with a clear error and left as it was.
#[test]
fn veth_sinks_replace_their_own_leftovers_and_refuse_other_interfaces() {
    if prerequisites().is_none() {
        return;
    }
    let (a, b) = (Netns::create("vlfa"), Netns::create("vlfb"));
    veth_pair(&a, "la", &b, "lb", 1);
    let dir = TempDir::new("vleft");
    let w = dir.path().join("cap");
    let args = [
        "-i",
        "lb",
        "--app",
        "lq:1:sym:veth",
        "-w",
        w.to_str().unwrap(),
        "--stats-interval",
        "0",
        "--duration",
        "60",
    ];
    let links =
        || String::from_utf8_lossy(&run(b.exec("ip").args(["-o", "link"])).stdout).into_owned();
    let first = Capture::start(&b, &args);
    run(Command::new("kill").args(["-KILL", &first.pid().to_string()]));
    let _ = first.wait();
    assert!(
        links().contains("lq-q0@symrss"),
        "a killed capture leaves its pair: {}",
        links()
    );
    let second = Capture::start(&b, &args);
    assert!(links().contains("lq-q0@symrss"), "{}", links());
    run(Command::new("kill").args(["-TERM", &second.pid().to_string()]));
    let (status, err) = second.wait();
    assert!(status.success(), "{err}");
    assert!(
        !links().contains("lq-q0"),
        "removed at the end: {}",
        links()
    );
    // Somebody else's interface named lq-q0 (a veth pair too, but not
    // one with a `symrss<N>` peer): refused, untouched.
    run(b.exec("ip").args([
        "link", "add", "lq-q0", "type", "veth", "peer", "name", "other0",
    ]));
    let o = b.exec(SYMRSS).arg("capture").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("lq-q0 exists and is not a veth pair symrss made"),
        "{text}"
    );
    assert!(links().contains("lq-q0:"), "the dummy stays: {}", links());
}

/// `symrss stats --socket P --json`: the capture's stats document.
fn stats_via_socket(socket: &Path) -> Value {
    let o = run(Command::new(SYMRSS)
        .args(["stats", "--json", "--socket"])
        .arg(socket));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A capture under a service manager: it tells systemd's notification
/// socket READY=1 (with the "capturing on" status) once set up, WATCHDOG=1
/// at half the watchdog period, STATUS lines and STOPPING=1; its control
/// socket answers `symrss stats` from the start (nothing captured yet)
/// and then with what was captured, as a table and as JSON; `symrss
/// control rotate` rotates the files as SIGHUP does and `symrss control
/// stop` ends it cleanly, the socket removed; the Prometheus endpoint
/// answers the first scrape, before any traffic, with HELP and TYPE lines
/// that `promtool check metrics` accepts.
#[test]
fn a_capture_tells_systemd_and_is_seen_and_steered_through_its_control_socket() {
    if prerequisites().is_none() || tool("promtool").is_none() {
        return;
    }
    use std::os::unix::net::UnixDatagram;
    let (a, b) = (Netns::create("ctla"), Netns::create("ctlb"));
    veth_pair(&a, "ca", &b, "cb", 1);
    run(b.exec("ip").args(["link", "set", "lo", "up"]));
    let dir = TempDir::new("ctl");
    let (ab, _, sent) = direction_traces(dir.path(), 20, 5);
    let sent = sent / 2;
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let next_note = || {
        let mut buf = [0u8; 4096];
        let n = notify.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let socket = dir.path().join("control.sock");
    let out = dir.path().join("cap");
    let mut child = b
        .exec(SYMRSS)
        .args([
            "capture",
            "-i",
            "cb",
            "--app",
            "ids:2",
            "--app",
            "rec:1:keyed",
        ])
        .args(["--stats-interval", "0", "--duration", "60", "-w"])
        .arg(&out)
        .arg("--control")
        .arg(&socket)
        .args(["--prometheus", "127.0.0.1:9912"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = await_ready(&mut child, "capturing on");
    let cap = Capture { child, stderr };
    let ready = next_note();
    assert!(
        ready.starts_with("READY=1\nSTATUS=capturing on cb (2 app(s)"),
        "{ready}"
    );
    // Before any traffic: the control socket and the metrics answer.
    let first = stats_via_socket(&socket);
    assert_eq!(first["captured"], 0, "{first}");
    assert_eq!(first["apps"][1]["name"], "rec", "{first}");
    // A client that connects and sends nothing holds up no other scrape.
    let mut idle = b
        .exec("bash")
        .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/9912; sleep 5"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let scrape = run(b.exec("timeout").args([
        "10",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9912; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ]));
    let _ = idle.kill();
    let _ = idle.wait();
    let response = String::from_utf8_lossy(&scrape.stdout).into_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    assert!(
        body.contains("symrss_queue_delivered_total{app=\"rec\",queue=\"0\"} 0"),
        "{response}"
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The watchdog and status lines keep coming.
    let mut notes = Vec::new();
    while !(notes.iter().any(|n: &String| n == "WATCHDOG=1")
        && notes.iter().any(|n| n.starts_with("STATUS=")))
    {
        notes.push(next_note());
        assert!(notes.len() < 100, "{notes:?}");
    }
    replay(&a, "ca", &ab);
    symrss_testdata::wait_until("the stats document to show every packet", || {
        stats_via_socket(&socket)["captured"] == sent
    });
    let doc = stats_via_socket(&socket);
    for app in doc["apps"].as_array().unwrap() {
        assert_eq!(app["received"], sent, "{doc}");
        // The hottest flows (sampled): real flows of the trace, each
        // listed on one queue only (flows are whole), each at most its
        // queue.
        let mut seen = std::collections::HashMap::new();
        for (q, queue) in app["queues"].as_array().unwrap().iter().enumerate() {
            let hot = queue["hot_flows"].as_array().unwrap();
            // (Whether a flow of ~10 packets is sampled twice is chance:
            // finding flows is the unit tests' job; here, what is listed.)
            for h in hot {
                let flow = h["flow"].as_str().unwrap().to_string();
                assert!(flow.contains("10.77.") && flow.ends_with(" tcp"), "{flow}");
                assert!(h["share"].as_f64().unwrap() <= 1.0, "{h}");
                assert_eq!(*seen.entry(flow).or_insert(q), q, "{doc}");
            }
        }
    }
    let table = run(Command::new(SYMRSS)
        .args(["stats", "--socket"])
        .arg(&socket));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains(&format!(
            "rec: received {sent} = delivered {sent} + dropped 0"
        )),
        "{table}"
    );
    // rotate: the next packets of rec's queue go to a new file.
    run(Command::new(SYMRSS)
        .args(["control", "rotate", "--socket"])
        .arg(&socket));
    replay(&a, "ca", &ab);
    symrss_testdata::wait_until("a rotated file", || out.join("rec/q0.1.pcap").exists());
    run(Command::new(SYMRSS)
        .args(["control", "stop", "--socket"])
        .arg(&socket));
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
    assert_eq!(summary_count(&err, "packets captured"), 2 * sent, "{err}");
    assert!(!socket.exists(), "the control socket is removed at the end");
    while !next_note().starts_with("STOPPING=1") {}
    // A socket nobody serves any more: a clear error.
    let gone = Command::new(SYMRSS)
        .args(["stats", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("is a capture running?"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// `symrss top` in a real terminal (tmux, 80×24) against a live capture:
/// the screen shows the capture's input and each queue with what the
/// stats document says it delivered; → switches to the next app; q quits.
#[test]
fn top_shows_a_live_capture_in_a_terminal() {
    if prerequisites().is_none() || tool("tmux").is_none() {
        return;
    }
    let (a, b) = (Netns::create("topa"), Netns::create("topb"));
    veth_pair(&a, "pa", &b, "pb", 1);
    let dir = TempDir::new("top");
    let (ab, _, sent) = direction_traces(dir.path(), 30, 4);
    let sent = sent / 2;
    let socket = dir.path().join("control.sock");
    let cap = Capture::start(
        &b,
        &[
            "-i",
            "pb",
            "--app",
            "ids:4",
            "--app",
            "rec:1:keyed",
            "-w",
            dir.path().join("cap").to_str().unwrap(),
            "--stats-interval",
            "0",
            "--duration",
            "60",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    replay(&a, "pa", &ab);
    symrss_testdata::wait_until("every packet in the stats", || {
        stats_via_socket(&socket)["captured"] == sent
    });
    let session = format!("symrss-top-{}", std::process::id());
    struct Session(String);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    run(Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "80", "-y", "24"])
        .arg(format!(
            "{SYMRSS} top --interval-ms 200 --socket {}",
            socket.display()
        )));
    let _session = Session(session.clone());
    let pane = || {
        String::from_utf8_lossy(
            &run(Command::new("tmux").args(["capture-pane", "-p", "-t", &session])).stdout,
        )
        .into_owned()
    };
    let doc = stats_via_socket(&socket);
    let ids = &doc["apps"][0]["queues"];
    symrss_testdata::wait_until("top to draw the queues", || {
        let p = pane();
        p.contains("symrss top") && p.contains("[ids]") && p.contains("q3")
    });
    let screen = pane();
    assert_eq!(screen.lines().count(), 24, "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
    assert!(screen.contains(&format!("captured {sent}")), "{screen}");
    for q in 0..4 {
        let row = screen
            .lines()
            .find(|l| l.starts_with(&format!("q{q} ")))
            .unwrap_or_else(|| panic!("no q{q} row: {screen}"));
        assert_eq!(
            row.split_whitespace().nth(1),
            Some(ids[q]["delivered"].to_string().as_str()),
            "{screen}"
        );
    }
    run(Command::new("tmux").args(["send-keys", "-t", &session, "Right"]));
    symrss_testdata::wait_until("the next app", || pane().contains("[rec]"));
    assert!(
        pane().contains(&format!(
            "rec: received {sent} = delivered {sent} + dropped 0"
        )),
        "{}",
        pane()
    );
    run(Command::new("tmux").args(["send-keys", "-t", &session, "q"]));
    symrss_testdata::wait_until("top to quit", || {
        !Command::new("tmux")
            .args(["has-session", "-t", &session])
            .status()
            .unwrap()
            .success()
    });
    run(Command::new("kill").args(["-TERM", &cap.pid().to_string()]));
    let (status, err) = cap.wait();
    assert!(status.success(), "{err}");
}
