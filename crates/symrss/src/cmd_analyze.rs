//! `symrss analyze`: what each scheme would do with a real capture.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use symrss_engine::analyze::{AnalyzeConfig, Analyzer, Report};
use symrss_engine::{HashLayer, Policy};

use crate::Failure;
use crate::input::{FileResult, open_inputs, read_inputs};
use crate::output::{Table, print_json};
use crate::rebalance_args::{self, RebalanceArgs, RebalanceJson, WindowJson};
use crate::svg;

/// The default comparison set (DESIGN.md).
pub const DEFAULT_SCHEMES: [&str; 7] = ["ms", "sym", "sym-ip", "xor", "sort", "keyed", "nic:ixgbe"];

/// The `--help` epilogue; the NIC profiles come from the one table that
/// `nic plan` uses too, so the two lists cannot drift apart.
fn after_help() -> String {
    let drivers: Vec<&str> = symrss_engine::nic::DRIVER_PROFILES
        .iter()
        .map(|p| p.driver)
        .collect();
    format!(
        "Schemes: ms, sym, sym-ip, xor, or-xor, sort, keyed, toeplitz:key=K,fields=ip|l4,xfrm=..., \
         and NIC profiles nic:<driver>[:key] ({}; key defaults to sym, i.e. the NIC as `symrss \
         nic apply` leaves it; NIC profiles hash fragments by addresses and use the driver's \
         default fields, e.g. ixgbe hashes UDP by addresses).\n\n\
         Software schemes steer later IP fragments with their first fragment's ports and ICMP \
         errors with the flow they quote, as the symrss balancer does.\n\n\
         --rebalance adds, beside each software scheme, the same scheme rebalanced as `split \
         --rebalance` and `capture` do it (buckets re-aimed at the least loaded queues, no live \
         flow moved): per window of packet time, the busiest queue against the mean for the \
         static table, for the rebalanced one, and the lower bound no flow-preserving placement \
         beats (the largest single flow); with --svg, the load of every queue over time.\n\n\
         Examples:\n  symrss analyze trace.pcap\n  symrss analyze a.pcap b.pcapng --queues 8 \
         --scheme sym --scheme keyed --json\n  symrss analyze gtp.pcap --layer innermost --svg load.svg\n  \
         symrss analyze busy.pcap --queues 8 --scheme sym --rebalance --svg over-time.svg",
        drivers.join(", ")
    )
}

/// Arguments of `symrss analyze`.
#[derive(Debug, Args)]
#[command(after_help = after_help())]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng; `-` for stdin), analysed as one stream in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Queues per scheme (RETA filled `equal`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    queues: u32,
    /// Scheme to compare (repeatable; default: ms sym sym-ip xor sort keyed nic:ixgbe).
    #[arg(long = "scheme")]
    schemes: Vec<String>,
    /// IP layer hashed by software schemes and defining flows.
    #[arg(long, default_value = "outer", value_parser = ["outer", "inner", "innermost"])]
    layer: String,
    /// Seed of the random keys of xor/or-xor/sort/keyed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most flows tracked for split detection (memory bound).
    #[arg(long, default_value_t = 10_000_000)]
    max_flows: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write an SVG chart of per-queue packets per scheme (with
    /// --rebalance: per-queue packets over time, static and rebalanced).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Also simulate each software scheme rebalanced (see below).
    #[arg(long)]
    rebalance: bool,
    /// A flow idle this long (seconds of packet time) is a new flow when
    /// rebalancing.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    flow_idle_s: u64,
    #[command(flatten)]
    rebalancing: RebalanceArgs,
}

#[derive(Serialize)]
struct QueueJson {
    packets: u64,
    bytes: u64,
    flows: u64,
}

#[derive(Serialize)]
struct ClassJson {
    class: &'static str,
    flows: u64,
    explanation: &'static str,
}

#[derive(Serialize)]
struct SchemeJson {
    name: String,
    nic: bool,
    queues: Vec<QueueJson>,
    flows_split: u64,
    packets_on_minority_queue: u64,
    imbalance_packets: f64,
    imbalance_flows: f64,
    split_explained: Vec<ClassJson>,
    /// For a rebalanced scheme: what rebalancing did, and each window.
    #[serde(skip_serializing_if = "Option::is_none")]
    rebalance: Option<RebalanceJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<Vec<WindowJson>>,
    /// Per queue, its largest flows (exact packets on the queue, the
    /// flow's bytes, share of the queue's packets), largest first.
    top_flows: Vec<Vec<TopFlowJson>>,
    /// Per RETA bucket: the queue the table as built gives it and its
    /// packets (IP packets, by their hash).
    buckets: Vec<BucketJson>,
}

#[derive(Serialize)]
struct BucketJson {
    bucket: usize,
    queue: u32,
    packets: u64,
}

#[derive(Serialize)]
struct TopFlowJson {
    flow: String,
    packets: u64,
    bytes: u64,
    share: f64,
}

#[derive(Serialize)]
struct FragJson {
    first: u64,
    followed: u64,
    released: u64,
    fallback_timeout: u64,
    fallback_full: u64,
}

#[derive(Serialize)]
struct AnalyzeJson {
    files: Vec<FileResult>,
    layer: &'static str,
    queues_per_scheme: u32,
    packets: u64,
    bytes: u64,
    flows: u64,
    /// Set when `--max-flows` was reached: `flows` is then the bound.
    flow_limit_reached: bool,
    max_flows: usize,
    packets_untracked: u64,
    non_ip: u64,
    dissect_errors: u64,
    icmp_followed: u64,
    fragments: FragJson,
    schemes: Vec<SchemeJson>,
}

fn to_json(
    r: &Report,
    files: Vec<FileResult>,
    layer: HashLayer,
    queues: u32,
    max_flows: usize,
) -> AnalyzeJson {
    AnalyzeJson {
        files,
        layer: layer.name(),
        queues_per_scheme: queues,
        packets: r.packets,
        bytes: r.bytes,
        flows: r.flows,
        flow_limit_reached: r.flow_limit_reached,
        max_flows,
        packets_untracked: r.packets_untracked,
        non_ip: r.non_ip,
        dissect_errors: r.dissect_errors,
        icmp_followed: r.icmp_followed,
        fragments: FragJson {
            first: r.fragments.first,
            followed: r.fragments.followed,
            released: r.fragments.released,
            fallback_timeout: r.fragments.fallback_timeout,
            fallback_full: r.fragments.fallback_full,
        },
        schemes: r
            .schemes
            .iter()
            .map(|s| SchemeJson {
                name: s.name.clone(),
                nic: s.nic,
                queues: s
                    .queues
                    .iter()
                    .map(|q| QueueJson {
                        packets: q.packets,
                        bytes: q.bytes,
                        flows: q.flows,
                    })
                    .collect(),
                flows_split: s.flows_split,
                packets_on_minority_queue: s.packets_on_minority_queue,
                imbalance_packets: s.imbalance_packets,
                imbalance_flows: s.imbalance_flows,
                split_explained: s
                    .split_classes
                    .iter()
                    .map(|(c, n)| ClassJson {
                        class: c.code(),
                        flows: *n,
                        explanation: c.explain(),
                    })
                    .collect(),
                rebalance: s.rebalance.as_ref().map(RebalanceJson::from),
                windows: s
                    .rebalance
                    .as_ref()
                    .map(|r| r.window_loads.iter().map(WindowJson::from).collect()),
                buckets: s
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(bucket, &(packets, queue))| BucketJson {
                        bucket,
                        queue,
                        packets,
                    })
                    .collect(),
                top_flows: s
                    .top_flows
                    .iter()
                    .map(|q| {
                        q.iter()
                            .map(|t| TopFlowJson {
                                flow: t.flow.clone(),
                                packets: t.packets,
                                bytes: t.bytes,
                                share: t.share,
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn print_human(r: &Report, files: &[FileResult], layer: HashLayer, queues: u32) {
    println!(
        "{} file(s), {} packets, {} bytes, {} flows at the {} layer, {} queues per scheme",
        files.len(),
        r.packets,
        r.bytes,
        r.flows,
        layer.name(),
        queues
    );
    if r.flow_limit_reached {
        println!(
            "the --max-flows bound ({}) was reached: {} packets of further flows count in the \
             queue loads but not in the flow and split-flow figures",
            r.flows, r.packets_untracked
        );
    }
    println!(
        "non-IP packets {} (queue 0), dissect errors {}, ICMP errors following their flow {}, fragments: {} first, {} followed, {} waited for their first, {} without first fragment",
        r.non_ip,
        r.dissect_errors,
        r.icmp_followed,
        r.fragments.first,
        r.fragments.followed,
        r.fragments.released,
        r.fragments.fallback_timeout + r.fragments.fallback_full
    );
    println!();
    let mut t = Table::new(&[
        "scheme",
        "split flows",
        "pkts on minority q",
        "imbalance pkts",
        "imbalance flows",
    ]);
    for s in &r.schemes {
        t.row(vec![
            s.name.clone(),
            s.flows_split.to_string(),
            s.packets_on_minority_queue.to_string(),
            format!("{:.2}", s.imbalance_packets),
            format!("{:.2}", s.imbalance_flows),
        ]);
    }
    print!("{}", t.render());
    if queues <= 16 {
        println!();
        let mut header = vec!["packets per queue".to_string()];
        header.extend((0..queues).map(|q| format!("q{q}")));
        let mut t = Table::new(&header);
        for s in &r.schemes {
            let mut row = vec![s.name.clone()];
            row.extend(s.queues.iter().map(|q| q.packets.to_string()));
            t.row(row);
        }
        print!("{}", t.render());
    }
    let rebalanced: Vec<_> = r
        .schemes
        .iter()
        .filter_map(|s| s.rebalance.as_ref().map(|b| (s, b)))
        .collect();
    if let Some((_, first)) = rebalanced.first() {
        println!(
            "\nload per window of {} ms (busiest queue / mean, summed over windows):",
            first.config.window_ns / 1_000_000
        );
        let mut t = Table::new(&[
            "scheme",
            "static",
            "rebalanced",
            "lower bound",
            "bucket moves",
            "flows kept",
            "split flows",
        ]);
        for (s, b) in &rebalanced {
            t.row(vec![
                s.name.clone(),
                format!("{:.3}", b.static_imbalance()),
                format!("{:.3}", b.imbalance()),
                format!("{:.3}", b.bound()),
                b.moves.to_string(),
                b.pinned_flows.to_string(),
                s.flows_split.to_string(),
            ]);
        }
        print!("{}", t.render());
    }
    // What makes a static table's queue hot: its busiest buckets.
    let mut hot_buckets = Vec::new();
    for s in r
        .schemes
        .iter()
        .filter(|s| s.rebalance.is_none() && s.imbalance_packets > 1.1)
    {
        let Some((q, load)) = s.queues.iter().enumerate().max_by_key(|(_, l)| l.packets) else {
            continue;
        };
        let mut own: Vec<(usize, u64)> = s
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, (p, queue))| *queue as usize == q && *p > 0)
            .map(|(b, (p, _))| (b, *p))
            .collect();
        own.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let listed: Vec<String> = own
            .iter()
            .take(3)
            .map(|(b, p)| {
                format!(
                    "bucket {b} {:.0}%",
                    100.0 * *p as f64 / load.packets.max(1) as f64
                )
            })
            .collect();
        hot_buckets.push(format!(
            "  {:<18} q{q} ({} of {} buckets): {}",
            s.name,
            own.len(),
            s.buckets.len(),
            listed.join(", ")
        ));
    }
    if !hot_buckets.is_empty() {
        println!(
            "\nthe busiest queue's busiest RETA buckets, schemes above 1.1 (--json: buckets):"
        );
        for line in &hot_buckets {
            println!("{line}");
        }
    }
    // What makes a queue hot: flows that carry a tenth of it or more.
    let mut heavy = Vec::new();
    for s in &r.schemes {
        for (q, list) in s.top_flows.iter().enumerate() {
            for t in list.iter().filter(|t| t.share >= 0.1) {
                heavy.push(format!(
                    "  {:<18} q{q}: {} carries {:.0}% of the queue ({} packets, {} bytes)",
                    s.name,
                    t.flow,
                    100.0 * t.share,
                    t.packets,
                    t.bytes
                ));
            }
        }
    }
    if !heavy.is_empty() {
        println!(
            "\nflows that carry a tenth of their queue or more (--json: top_flows per queue):"
        );
        for line in heavy.iter().take(40) {
            println!("{line}");
        }
        if heavy.len() > 40 {
            println!("  ... and {} more", heavy.len() - 40);
        }
    }
    let explained: Vec<_> = r.schemes.iter().filter(|s| s.flows_split > 0).collect();
    if !explained.is_empty() {
        println!("\nwhy flows were split:");
        for s in explained {
            for (c, n) in &s.split_classes {
                println!("  {:<10} {n} flow(s): {}", s.name, c.explain());
            }
        }
    }
}

/// Runs `symrss analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<ExitCode, Failure> {
    let layer = HashLayer::parse(&args.layer).expect("clap restricts the values");
    let names: Vec<String> = if args.schemes.is_empty() {
        DEFAULT_SCHEMES.iter().map(|s| s.to_string()).collect()
    } else {
        args.schemes.clone()
    };
    let mut policies = names
        .iter()
        .map(|n| Policy::parse(n, layer, args.seed).map_err(|e| Failure::Usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if args.rebalance {
        let cfg = args.rebalancing.config(args.flow_idle_s * 1_000_000_000);
        let twins: Vec<Policy> = policies
            .iter()
            .filter(|p| !p.is_nic())
            .map(|p| rebalance_args::rebalance(p.clone(), cfg).expect("a software scheme"))
            .collect();
        if twins.is_empty() {
            return Err(Failure::Usage(
                "--rebalance needs a software scheme (sym, keyed, ...): NIC profiles cannot keep \
                 live flows where they are"
                    .into(),
            ));
        }
        policies.extend(twins);
    }
    let cfg = AnalyzeConfig {
        queues: args.queues,
        layer,
        max_flows: args.max_flows,
        ..AnalyzeConfig::default()
    };
    let mut analyzer = Analyzer::new(policies, cfg);
    let files = read_inputs(open_inputs(&args.files), false, |p| {
        analyzer.packet(p.ts_ns, p.orig_len, p.linktype, p.data);
    });
    let report = analyzer.finish();
    let failed = files.iter().any(|f| f.error.is_some());
    if let Some(path) = &args.svg {
        std::fs::write(path, chart(&report, layer))
            .map_err(|e| Failure::Runtime(format!("writing {}: {e}", path.display())))?;
    }
    if args.json {
        print_json(&to_json(&report, files, layer, args.queues, args.max_flows))?;
    } else {
        print_human(&report, &files, layer, args.queues);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The SVG: per-queue packets per scheme, or with rebalanced schemes each
/// one's load over time beside its static table's.
fn chart(report: &Report, layer: HashLayer) -> String {
    let rebalanced: Vec<_> = report
        .schemes
        .iter()
        .filter_map(|s| s.rebalance.as_ref().map(|b| (s, b)))
        .collect();
    if let Some((_, first)) = rebalanced.first() {
        let mut panels = Vec::new();
        for (s, b) in &rebalanced {
            let base = s.name.trim_end_matches(" rebalanced");
            panels.push(svg::Series {
                title: base,
                note: format!("static table: imbalance {:.3}", b.static_imbalance()),
                windows: b
                    .window_loads
                    .iter()
                    .map(|w| w.static_queues.clone())
                    .collect(),
            });
            panels.push(svg::Series {
                title: &s.name,
                note: format!(
                    "imbalance {:.3} (lower bound {:.3}), {} bucket moves, {} flows split",
                    b.imbalance(),
                    b.bound(),
                    b.moves,
                    s.flows_split
                ),
                windows: b.window_loads.iter().map(|w| w.queues.clone()).collect(),
            });
        }
        let title = format!(
            "packets per queue over time ({} packets, {} flows, {} layer)",
            report.packets,
            report.flows,
            layer.name()
        );
        return svg::load_over_time(&title, first.config.window_ns / 1_000_000, &panels);
    }
    let panels: Vec<svg::Panel<'_>> = report
        .schemes
        .iter()
        .map(|s| svg::Panel {
            title: &s.name,
            note: format!(
                "split {} · imbalance {:.2}",
                s.flows_split, s.imbalance_packets
            ),
            values: s.queues.iter().map(|q| q.packets).collect(),
        })
        .collect();
    let title = format!(
        "packets per queue ({} packets, {} flows, {} layer)",
        report.packets,
        report.flows,
        layer.name()
    );
    svg::bar_chart(&title, &panels)
}
