//! The dissector's outermost and innermost tuples agree with tshark's
//! fields on the real captures of the shared corpus.
//!
//! tshark runs with IP reassembly off (fragments are judged one by one) and
//! prints, per packet, the first and last occurrence of the address and port
//! fields. Where tshark and symrss legitimately differ (ICMP errors, whose
//! quoted header tshark counts as one more IP layer), the comparison is
//! adjusted as commented below.

use std::net::IpAddr;
use std::process::Command;

use symrss_pcap::CaptureReader;
use symrss_wire::{FlowKey, IpLayer, Options, dissect};

#[derive(Debug, Default, Clone, PartialEq)]
struct Fields {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
}

/// Per packet: (outermost, innermost) IP layer as tshark dissects it, with
/// the ports of the transport header that directly follows each layer.
/// Fields are printed for all occurrences and lined up with
/// `frame.protocols`, so an inner TCP is never mistaken for an outer UDP.
fn tshark_layers(path: &std::path::Path) -> Vec<(Fields, Fields, bool)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ])
        .args([
            "-e",
            "frame.protocols",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
        ])
        .args(["-e", "sctp.srcport", "-e", "sctp.dstport"])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|line| {
            let c: Vec<&str> = line.split('|').collect();
            let list = |i: usize| -> Vec<&str> {
                c.get(i).map_or(Vec::new(), |s| {
                    s.split(',').filter(|x| !x.is_empty()).collect()
                })
            };
            let (ip_s, ip_d, v6_s, v6_d) = (list(1), list(2), list(3), list(4));
            let ports = [(list(5), list(6)), (list(7), list(8)), (list(9), list(10))];
            let protos: Vec<&str> = c.first().map_or(Vec::new(), |p| p.split(':').collect());
            // Walk the protocol list, numbering each IP and transport occurrence.
            let mut layers: Vec<Fields> = Vec::new();
            let (mut n4, mut n6, mut nt) = (0usize, 0usize, [0usize; 3]);
            let mut last_was_ip = false;
            let mut icmp_error = false;
            for p in &protos {
                match *p {
                    "ip" | "ipv6" => {
                        let (s, d, n) = if *p == "ip" {
                            (&ip_s, &ip_d, &mut n4)
                        } else {
                            (&v6_s, &v6_d, &mut n6)
                        };
                        layers.push(Fields {
                            src: s.get(*n).and_then(|x| x.parse().ok()),
                            dst: d.get(*n).and_then(|x| x.parse().ok()),
                            sport: None,
                            dport: None,
                        });
                        *n += 1;
                        last_was_ip = true;
                        continue;
                    }
                    "tcp" | "udp" | "sctp" => {
                        let t = match *p {
                            "tcp" => 0,
                            "udp" => 1,
                            _ => 2,
                        };
                        if last_was_ip && let Some(l) = layers.last_mut() {
                            l.sport = ports[t].0.get(nt[t]).and_then(|x| x.parse().ok());
                            l.dport = ports[t].1.get(nt[t]).and_then(|x| x.parse().ok());
                        }
                        nt[t] += 1;
                    }
                    "icmp" | "icmpv6" => icmp_error = true,
                    // IPv6 extension headers belong to the IP layer before them.
                    ext if ext.starts_with("ipv6.") => continue,
                    _ => {}
                }
                last_was_ip = false;
            }
            let first = layers.first().cloned().unwrap_or_default();
            let last = layers.last().cloned().unwrap_or_default();
            (first, last, icmp_error)
        })
        .collect()
}

fn ours(layer: Option<&IpLayer>) -> Fields {
    match layer {
        None => Fields::default(),
        Some(l) => Fields {
            src: Some(l.tuple.src_ip()),
            dst: Some(l.tuple.dst_ip()),
            sport: l.tuple.ports().map(|p| p.0),
            dport: l.tuple.ports().map(|p| p.1),
        },
    }
}

fn keys(path: &std::path::Path) -> Vec<FlowKey> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        out.push(dissect(p.linktype, p.data, &Options::default()));
    }
    out
}

#[test]
fn outer_and_inner_tuples_match_tshark() {
    let Some(corpus) = symrss_testdata::corpus() else {
        return;
    };
    let Some(_) = symrss_testdata::tool("tshark") else {
        return;
    };
    let mut traces_compared = 0;
    let mut quotes = 0;
    let mut report = String::new();
    for entry in corpus.iter().filter(|e| !e.damaged()) {
        let ks = keys(&entry.path);
        let theirs = tshark_layers(&entry.path);
        if theirs.len() != ks.len() {
            // tshark also lists non-packet pcapng records (journal entries,
            // custom blocks) as frames; such files cannot be lined up.
            assert!(
                entry.name.ends_with(".pcapng"),
                "{}: tshark sees {} frames, symrss {} packets",
                entry.name,
                theirs.len(),
                ks.len()
            );
            eprintln!(
                "{}: not compared (tshark lists {} records, {} packets)",
                entry.name,
                theirs.len(),
                ks.len()
            );
            continue;
        }
        let mut mismatches = 0;
        let mut compared = 0;
        for (i, k) in ks.iter().enumerate() {
            let icmp_error = k.innermost().is_some_and(|l| l.quoted.is_some()) || theirs[i].2;
            for (theirs, mine, what) in [
                (&theirs[i].0, ours(k.outer()), "outer"),
                (&theirs[i].1, ours(k.innermost()), "innermost"),
            ] {
                let theirs = theirs.clone();

                if theirs.src.is_none() && mine.src.is_none() {
                    continue;
                }
                if icmp_error && what == "innermost" {
                    // tshark's last IP layer is the packet an ICMP error
                    // quotes; symrss keeps the quote apart: compare that.
                    if let Some(q) = k.innermost().and_then(|l| l.quoted) {
                        let quoted = Fields {
                            src: Some(q.tuple.src_ip()),
                            dst: Some(q.tuple.dst_ip()),
                            sport: q.tuple.ports().map(|p| p.0),
                            dport: q.tuple.ports().map(|p| p.1),
                        };
                        compared += 1;
                        quotes += 1;
                        if quoted != theirs {
                            mismatches += 1;
                            report.push_str(&format!(
                                "{} #{}: quoted: tshark {theirs:?} symrss {quoted:?}\n",
                                entry.name,
                                i + 1
                            ));
                        }
                    }
                    continue;
                }
                compared += 1;
                if theirs != mine {
                    mismatches += 1;
                    if mismatches <= 3 {
                        report.push_str(&format!(
                            "{} #{}: {what}: tshark {:?} symrss {:?} (error {:?})\n",
                            entry.name,
                            i + 1,
                            theirs,
                            mine,
                            k.error
                        ));
                    }
                }
            }
        }
        if compared > 0 && mismatches == 0 {
            traces_compared += 1;
        }
    }
    assert!(report.is_empty(), "mismatches:\n{report}");
    assert!(
        traces_compared >= 10,
        "only {traces_compared} traces compared"
    );
    assert!(quotes >= 20, "only {quotes} ICMP error quotes compared");
}
