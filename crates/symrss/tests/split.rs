//! `symrss split` on every capture of the corpus with two apps: per app the
//! queue totals equal the input, no flow is seen on a second queue under
//! `sym` or `keyed`, the union of an app's queue files is exactly the input
//! (same frames, same timestamps, input order within each queue), and
//! capinfos (all files) and tshark (a sample) read the outputs with the
//! same counts.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use symrss_pcap::CaptureReader;

fn read_all(path: &Path) -> Vec<(i128, Vec<u8>)> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        out.push((p.ts_ns, p.data.to_vec()));
    }
    out
}

fn count_with(tool: &str, args: &[&str], file: &Path) -> u64 {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match tool {
        "capinfos" => text
            .lines()
            .find_map(|l| l.strip_prefix("Number of packets:"))
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("capinfos output for {}: {text}", file.display())),
        _ => text.lines().count() as u64,
    }
}

#[test]
fn corpus_split_is_complete_flow_affine_and_readable() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    let Some(_) = symrss_testdata::tool("capinfos") else {
        return;
    };
    let Some(_) = symrss_testdata::tool("tshark") else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("symrss-split-{}", std::process::id()));
    let tshark_sample = [
        "mercury__capture2.pcap",
        "zeek__gtp1_gn_normal_incl_fragmentation.pcap",
        "nDPI__dnscrypt-v1-and-resolver-pings.pcap",
        "zeek__pcapng-multi-interface.pcapng",
        "PcapPlusPlus__sll.pcap",
    ];
    for entry in &corpus {
        let dir = tmp.join(&entry.name);
        let out = Command::new(env!("CARGO_BIN_EXE_symrss"))
            .arg("split")
            .arg(&entry.path)
            .arg("-o")
            .arg(&dir)
            .args(["--app", "ids:4:sym", "--app", "rec:3:keyed", "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            !entry.damaged(),
            "{}: {}",
            entry.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["input_packets"], entry.packets, "{}", entry.name);
        if entry.packets == 0 {
            continue;
        }
        let input = read_all(&entry.path);
        for app in v["apps"].as_array().unwrap() {
            let name = app["name"].as_str().unwrap();
            assert_eq!(app["received"], entry.packets, "{} {name}", entry.name);
            assert_eq!(
                app["delivered"], entry.packets,
                "{} {name}: lossless",
                entry.name
            );
            assert_eq!(
                app["affinity_violations"], 0,
                "{} {name}: a flow on two queues",
                entry.name
            );
            let mut all: Vec<(i128, Vec<u8>)> = Vec::new();
            for q in app["queues"].as_array().unwrap() {
                let mut files = vec![q["file"].as_str().unwrap().to_string()];
                if let Some(other) = q["other_linktype_files"].as_array() {
                    files.extend(other.iter().map(|f| f.as_str().unwrap().to_string()));
                }
                let mut queue_total = 0;
                for f in files {
                    let path = dir.join(&f);
                    let packets = read_all(&path);
                    // The file is the input's subsequence (greedy match),
                    // fragments that waited for their first fragment
                    // included.
                    let mut at = 0;
                    let mut inversions = 0u64;
                    for p in &packets {
                        match input[at..].iter().position(|x| x == p) {
                            Some(k) => at += k + 1,
                            None => inversions += 1,
                        }
                    }
                    assert_eq!(
                        inversions, 0,
                        "{} {f}: packets out of input order",
                        entry.name
                    );
                    assert_eq!(
                        count_with("capinfos", &["-c", "-M"], &path),
                        packets.len() as u64,
                        "{} {f}: capinfos",
                        entry.name
                    );
                    if tshark_sample.contains(&entry.name.as_str()) {
                        assert_eq!(
                            count_with(
                                "tshark",
                                &["-n", "-T", "fields", "-e", "frame.number", "-r"],
                                &path
                            ),
                            packets.len() as u64,
                            "{} {f}: tshark",
                            entry.name
                        );
                    }
                    queue_total += packets.len() as u64;
                    all.extend(packets);
                }
                assert_eq!(
                    q["packets"], queue_total,
                    "{} {name}: summary vs files",
                    entry.name
                );
            }
            let mut expect = input.clone();
            expect.sort();
            all.sort();
            assert!(
                all == expect,
                "{} {name}: union of queue files differs from the input",
                entry.name
            );
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn merge_interleaves_two_directions_by_time() {
    let Some(dir) = symrss_testdata::corpus_dir() else {
        return;
    };
    // Split a trace by direction into two files, then merge them back.
    let src = dir.join("zeek__echo-connections.pcap");
    let tmp = std::env::temp_dir().join(format!("symrss-merge-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut r = CaptureReader::open(&src).unwrap();
    let mut a = symrss_pcap::PcapWriter::new(
        std::fs::File::create(tmp.join("a.pcap")).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Nano,
    )
    .unwrap();
    let mut b = symrss_pcap::PcapWriter::new(
        std::fs::File::create(tmp.join("b.pcap")).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Nano,
    )
    .unwrap();
    let mut n = 0u64;
    while let Ok(Some(p)) = r.next_packet() {
        let k = symrss_wire::dissect(p.linktype, p.data, &symrss_wire::Options::default());
        let t = k.outer().unwrap().tuple;
        let w = if t == t.canonical() { &mut a } else { &mut b };
        w.write_packet(p.ts_ns, p.orig_len, p.data).unwrap();
        n += 1;
    }
    a.finish().unwrap();
    b.finish().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_symrss"))
        .arg("split")
        .arg(tmp.join("a.pcap"))
        .arg(tmp.join("b.pcap"))
        .args(["--merge", "--app", "z:4", "--json", "-o"])
        .arg(tmp.join("out"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input_packets"], n);
    assert_eq!(v["apps"][0]["affinity_violations"], 0);
    // Merged by time: each queue file is in timestamp order.
    for q in 0..4 {
        let packets = read_all(&tmp.join(format!("out/z/q{q}.pcap")));
        assert!(
            packets.windows(2).all(|w| w[0].0 <= w[1].0),
            "queue {q} not in time order"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn icmp_follow_off_steers_errors_by_their_own_header() {
    let Some(dir) = symrss_testdata::corpus_dir() else {
        return;
    };
    let src = dir.join("mercury__capture2.pcap");
    let tmp = std::env::temp_dir().join(format!("symrss-icmp-{}", std::process::id()));
    let run = |follow: &str| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_symrss"))
            .arg("split")
            .arg(&src)
            .args(["--app", "a:8:sym", "--json", "--icmp-follow", follow, "-o"])
            .arg(tmp.join(follow))
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let on = run("on");
    let off = run("off");
    assert_eq!(on["apps"][0]["affinity_violations"], 0);
    // The trace has 23 ICMP errors quoting flows; by their own header some
    // land elsewhere than the flow (they are then a flow of their own, so
    // affinity holds, but queue loads change).
    let loads = |v: &Value| -> Vec<u64> {
        v["apps"][0]["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["packets"].as_u64().unwrap())
            .collect()
    };
    assert_ne!(loads(&on), loads(&off));
    assert_eq!(
        loads(&on).iter().sum::<u64>(),
        loads(&off).iter().sum::<u64>()
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn pinned_threads_write_the_same_files() {
    let Some(dir) = symrss_testdata::corpus_dir() else {
        return;
    };
    let src = dir.join("PcapPlusPlus__DnsPackets.pcap");
    let tmp = symrss_testdata::TempDir::new("pin");
    let split = |name: &str, pin: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_symrss"));
        c.arg("split")
            .arg(&src)
            .args(["--app", "ids:3", "--app", "rec:2:keyed", "-o"])
            .arg(tmp.path().join(name));
        if pin {
            c.arg("--pin");
        }
        symrss_testdata::run(&mut c);
    };
    split("plain", false);
    split("pinned", true);
    for (app, queues) in [("ids", 3), ("rec", 2)] {
        for q in 0..queues {
            let f = format!("{app}/q{q}.pcap");
            assert_eq!(
                std::fs::read(tmp.path().join("plain").join(&f)).unwrap(),
                std::fs::read(tmp.path().join("pinned").join(&f)).unwrap(),
                "{f}"
            );
        }
    }
}
