//! `symrss split`: one capture, several applications, every flow on one
//! queue of each, written as pcap files that unmodified tools read.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, FLOW_IDLE_MAX_S, LossPolicy, MAX_FLOWS_LIMIT, Sink,
};
use symrss_engine::frag::FragConfig;
use symrss_engine::{HashLayer, Policy};
use symrss_pcap::timestamp_fits;
use symrss_sinks::QueueFiles;
use symrss_sys::signals;

use crate::Failure;
use crate::input::{FileResult, open_inputs, read_inputs};
use crate::outdir::{self, MAX_QUEUES, check_app_name};
use crate::output::{FlowTableJson, HotFlowJson, Table, hot_flows_json};
use crate::rebalance_args::{self, RebalanceArgs, RebalanceJson};

/// Arguments of `symrss split`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each --app NAME:Q[:SCHEME][:rebalance] gets Q queues (scheme default: sym) \
    written to DIR/NAME/q0.pcap ... DIR/NAME/q<Q-1>.pcap; DIR/summary.json has the counts. Offline \
    runs are lossless. Packets keep their timestamps (nanosecond pcap) and link type; a queue that receives \
    frames of a second link type writes them to q<i>.lt<N>.pcap, and packets whose times classic \
    pcap cannot hold (before 1970, after 2106) to q<i>.pcapng.\n\n\
    Rebalancing (--rebalance, or :rebalance on one app) evens the queues' load without moving a \
    live flow: every few ms of packet time the app's RETA buckets are re-aimed at the queues that \
    carried least, and each flow stays on the queue its first packet went to until it ends (TCP \
    RST or FIN both ways, then 60 s of silence) or idles out (--flow-idle-s). The same input and settings \
    give the same placement; analyze --rebalance shows the effect beside the static table. The \
    summary also lists each queue's hottest flows (sampled) and their share of the queue.\n\n\
    Examples:\n  symrss split trace.pcap -o out --app ids:4 --app rec:1:keyed\n  \
    symrss split trace.pcap -o out --app ids:8:sym:rebalance --app rec:1\n  \
    symrss split tap-a.pcap tap-b.pcap --merge -o out --app zeek:8   # the two directions of a TAP"
)]
pub struct SplitArgs {
    /// Capture files (pcap or pcapng; `-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (created if missing).
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// An application `NAME:QUEUES[:SCHEME][:rebalance]` (repeatable; default `all:4:sym`).
    #[arg(long = "app", value_parser = parse_app)]
    apps: Vec<(String, u32, String)>,
    /// Rebalance every app's queues without moving a live flow (see below).
    #[arg(long)]
    rebalance: bool,
    #[command(flatten)]
    rebalancing: RebalanceArgs,
    /// Merge the inputs by timestamp (the two ports of a network TAP)
    /// instead of reading them one after another.
    #[arg(long)]
    merge: bool,
    /// IP layer hashed (software schemes).
    #[arg(long, default_value = "outer", value_parser = ["outer", "inner", "innermost"])]
    layer: String,
    /// Seed of the random keys of xor/or-xor/sort/keyed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steer ICMP errors by the flow they quote (`off`: by their own header).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    icmp_follow: String,
    /// Full-queue behaviour: `lossless` waits (files), `drop` drops the newest and counts it.
    #[arg(long, default_value = "lossless", value_parser = ["lossless", "drop"])]
    loss: String,
    /// Pin the steering thread to CPU 0 and the consumer threads to the
    /// other CPUs (off by default: on small shared VMs it can hurt).
    #[arg(long)]
    pin: bool,
    /// How long (packet time, ms) a later IP fragment waits for its first
    /// fragment before it is steered by its addresses alone; the app's
    /// later packets wait behind it, so every queue stays in time order.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    frag_hold_ms: u64,
    /// Most flows the flow table holds (for the per-queue flow counts and
    /// the affinity check; steering never needs it). Beyond it, new flows
    /// are split as usual and their packets counted as untracked; memory
    /// stays bounded (16 bytes per slot up to 2 apps, 32 up to 10, at most
    /// 2 slots per flow). 0 turns the accounting off.
    #[arg(long, default_value_t = EngineConfig::default().max_flows as u64,
          value_parser = clap::value_parser!(u64).range(0..=MAX_FLOWS_LIMIT as u64))]
    max_flows: u64,
    /// A flow idle this long (seconds of packet time) leaves the flow table;
    /// an ended TCP flow (RST, or FIN both ways) after ~2 s (60 s when an app rebalances).
    #[arg(long, default_value_t = EngineConfig::default().flow_idle_ns / 1_000_000_000,
          value_parser = clap::value_parser!(u64).range(1..=FLOW_IDLE_MAX_S))]
    flow_idle_s: u64,
    /// Print the summary as JSON on stdout too.
    #[arg(long)]
    json: bool,
    #[arg(
        long,
        help = "Write into a directory that is not empty: remove the files a split writes \
                (summary.json, NAME/q<i>.pcap, …) first, keep everything else"
    )]
    force: bool,
}

fn parse_app(s: &str) -> Result<(String, u32, String), String> {
    let mut parts = s.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    check_app_name(name)?;
    let queues = parts
        .next()
        .and_then(|q| q.parse::<u32>().ok())
        .filter(|q| (1..=MAX_QUEUES).contains(q))
        .ok_or_else(|| format!("`{s}`: QUEUES must be 1..={MAX_QUEUES} (NAME:QUEUES[:SCHEME])"))?;
    let scheme = parts.next().unwrap_or("sym").to_string();
    Ok((name.to_string(), queues, scheme))
}

#[derive(Serialize)]
struct QueueJson {
    file: String,
    packets: u64,
    bytes: u64,
    flows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_linktype_files: Vec<String>,
    /// The queue's packets whose timestamps classic pcap cannot hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pcapng_files: Vec<String>,
    /// The queue's hottest flows (sampled estimates) and their share of it.
    hot_flows: Vec<HotFlowJson>,
    sink_error: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct DroppedJson {
    queue_full: u64,
    sink_error: u64,
}

#[derive(Serialize)]
struct AppJson {
    name: String,
    scheme: String,
    layer: &'static str,
    received: u64,
    delivered: u64,
    queues: Vec<QueueJson>,
    dropped: DroppedJson,
    non_ip: u64,
    affinity_violations: u64,
    /// Packets of flows the flow table had no room for (`--max-flows`):
    /// split as usual, not counted in `flows` nor checked for affinity.
    packets_untracked: u64,
    fragments_followed: u64,
    fragments_released: u64,
    fragments_fallback: u64,
    /// What rebalancing did (apps that rebalance).
    #[serde(skip_serializing_if = "Option::is_none")]
    rebalance: Option<RebalanceJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What the input held that a classic pcap record cannot say as it was.
#[derive(Serialize, Default)]
struct FidelityJson {
    /// Packets whose timestamp is before 1970 or after 2106: written, with
    /// their exact time, to their queue's `q<i>.pcapng`.
    timestamps_outside_pcap: u64,
    /// Packets whose original length was below their captured length:
    /// written with the captured length as original length.
    orig_len_raised: u64,
}

#[derive(Serialize)]
struct SummaryJson {
    input_packets: u64,
    inputs: Vec<FileResult>,
    merged: bool,
    /// A stop signal ended reading early: every packet read was still
    /// steered and written (or counted as dropped).
    interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    fidelity: FidelityJson,
    dissect_errors: DissectJson,
    flow_table: FlowTableJson,
    /// The split's peak resident memory (`VmHWM`), bytes.
    resident_peak_bytes: Option<u64>,
    apps: Vec<AppJson>,
    /// Per app, what rebalancing did (for the human report).
    #[serde(skip)]
    rebalanced: Vec<Option<symrss_engine::rebalance::RebalanceStats>>,
}

/// Frames the dissector stopped early on (each was steered by the layers
/// read before the error).
#[derive(Serialize)]
struct DissectJson {
    count: u64,
    /// The first: "FILE packet N: what, at which layer and offset".
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<String>,
}

/// Names the input packet at stream position `index` (0-based): its file
/// and its index there, unless the inputs were merged.
fn locate(index: u64, inputs: &[FileResult], merged: bool) -> String {
    if !merged {
        let mut before = 0;
        for f in inputs {
            if index < before + f.packets {
                return format!("{} packet {}", f.file, index - before);
            }
            before += f.packets;
        }
    }
    format!("merged input packet {index}")
}

fn app_json(st: &AppStats, dir: &Path, scheme: &str, layer: HashLayer) -> AppJson {
    // The app's files, read once for all its queues.
    let files: Vec<String> = std::fs::read_dir(dir.join(&st.name))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let queues = st
        .queues
        .iter()
        .enumerate()
        .map(|(q, qs)| {
            let (lt, ng) = (format!("q{q}.lt"), format!("q{q}.pcapng"));
            let mut other: Vec<String> = files
                .iter()
                .filter(|n| n.starts_with(&lt) && n.ends_with(".pcap"))
                .map(|n| format!("{}/{n}", st.name))
                .collect();
            other.sort();
            let mut exact_time: Vec<String> = files
                .iter()
                .filter(|n| **n == ng || (n.starts_with(&lt) && n.ends_with(".pcapng")))
                .map(|n| format!("{}/{n}", st.name))
                .collect();
            exact_time.sort();
            QueueJson {
                file: format!("{}/q{q}.pcap", st.name),
                packets: qs.delivered,
                bytes: qs.bytes,
                flows: qs.flows,
                other_linktype_files: other,
                pcapng_files: exact_time,
                hot_flows: hot_flows_json(
                    st.hot_flows.get(q).map_or(&[][..], Vec::as_slice),
                    qs.delivered,
                ),
                sink_error: qs.dropped_sink_error,
                error: st.queue_errors.get(q).cloned().flatten(),
            }
        })
        .collect();
    AppJson {
        name: st.name.clone(),
        scheme: scheme.to_string(),
        layer: layer.name(),
        received: st.received,
        delivered: st.delivered(),
        queues,
        dropped: DroppedJson {
            queue_full: st.queues.iter().map(|q| q.dropped_queue_full).sum(),
            sink_error: st.queues.iter().map(|q| q.dropped_sink_error).sum(),
        },
        non_ip: st.non_ip,
        affinity_violations: st.affinity_violations,
        packets_untracked: st.packets_untracked,
        fragments_followed: st.fragments.followed,
        fragments_released: st.fragments.released,
        fragments_fallback: st.fragments.fallback_timeout + st.fragments.fallback_full,
        rebalance: st.rebalance.as_ref().map(RebalanceJson::from),
        error: st.sink_error.clone(),
    }
}

/// Checks the apps and builds their engine configurations.
fn app_configs(
    args: &SplitArgs,
    apps: &[(String, u32, String)],
) -> Result<Vec<AppConfig>, Failure> {
    let layer = HashLayer::parse(&args.layer).expect("clap restricts the values");
    let mut names = std::collections::HashSet::new();
    let mut configs = Vec::new();
    for (name, queues, spec) in apps {
        if !names.insert(name.clone()) {
            return Err(Failure::Usage(format!("app name `{name}` given twice")));
        }
        let (scheme, flagged) = rebalance_args::split_flag(spec);
        let mut policy =
            Policy::parse(&scheme, layer, args.seed).map_err(|e| Failure::Usage(e.to_string()))?;
        if args.icmp_follow == "off" {
            policy.icmp_follow = false;
        }
        if args.rebalance || flagged {
            if args.max_flows == 0 {
                return Err(Failure::Usage(format!(
                    "app `{name}` rebalances, which keeps each flow's queue in the flow table: \
                     --max-flows 0 turns it off"
                )));
            }
            let cfg = args.rebalancing.config(args.flow_idle_s * 1_000_000_000);
            policy = rebalance_args::rebalance(policy, cfg)
                .map_err(|e| Failure::Usage(format!("app `{name}`: {e}")))?;
        }
        configs.push(AppConfig {
            name: name.clone(),
            queues: *queues,
            policy,
            loss: if args.loss == "drop" {
                LossPolicy::DropNewest
            } else {
                LossPolicy::Lossless
            },
        });
    }
    Ok(configs)
}

/// Starts the balancer with one pcap sink per queue; `primary` is the link
/// type that names the `q<i>.pcap` files.
fn start_balancer(args: &SplitArgs, configs: &[AppConfig], primary: u32) -> io::Result<Balancer> {
    let with_sinks = configs
        .iter()
        .map(|c| {
            let sinks: Vec<Box<dyn Sink>> = (0..c.queues as usize)
                .map(|q| {
                    Box::new(QueueFiles::new(&args.out.join(&c.name), q, primary)) as Box<dyn Sink>
                })
                .collect();
            (c.clone(), sinks)
        })
        .collect();
    let cfg = EngineConfig {
        on_consumer_start: args.pin.then(crate::pinning::consumer_hook),
        on_table_alloc: Some(symrss_sys::memory::advise_huge_pages),
        frag: FragConfig {
            hold_ns: i128::from(args.frag_hold_ms) * 1_000_000,
            ..FragConfig::default()
        },
        max_flows: args.max_flows as usize,
        flow_idle_ns: args.flow_idle_s * 1_000_000_000,
        ..EngineConfig::default()
    };
    if args.pin {
        crate::pinning::pin_steering();
    }
    Balancer::start(with_sinks, cfg)
}

/// Writes `summary.json` whole or not at all (a temporary file renamed
/// over it), so a full disk leaves no empty or cut summary.
fn write_summary(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let r = symrss_pcap::create_output(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_data()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: not written: {e}", path.display())
    })
}

/// Runs `symrss split`.
pub fn run(args: &SplitArgs) -> Result<ExitCode, Failure> {
    let layer = HashLayer::parse(&args.layer).expect("clap restricts the values");
    let apps: Vec<(String, u32, String)> = if args.apps.is_empty() {
        vec![("all".into(), 4, "sym".into())]
    } else {
        args.apps.clone()
    };
    let configs = app_configs(args, &apps)?;
    // Inputs first: nothing is created for a run that cannot read.
    let inputs = open_inputs(&args.files);
    let unopened = inputs.open_errors();
    if !unopened.is_empty() {
        return Err(Failure::Runtime(unopened.join("; ")));
    }
    let outputs: Vec<&str> = apps.iter().map(|(n, _, _)| n.as_str()).collect();
    outdir::prepare_split(&args.out, &outputs, &args.files, args.force)?;
    signals::install_for_batch().map_err(|e| Failure::Runtime(format!("signal handlers: {e}")))?;
    // The balancer starts at the first packet, whose link type names the
    // q<i>.pcap files.
    let mut balancer: Option<Balancer> = None;
    let mut start_error: Option<String> = None;
    let mut fidelity = FidelityJson::default();
    let on_frame = |p: symrss_engine::source::Frame<'_>| {
        if balancer.is_none() && start_error.is_none() {
            match start_balancer(args, &configs, p.linktype) {
                Ok(b) => balancer = Some(b),
                Err(e) => start_error = Some(format!("starting consumer threads: {e}")),
            }
        }
        if !timestamp_fits(p.ts_ns) {
            fidelity.timestamps_outside_pcap += 1;
        }
        if (p.orig_len as usize) < p.data.len() {
            fidelity.orig_len_raised += 1;
        }
        if let Some(b) = &mut balancer {
            b.push(
                p.ts_ns,
                p.orig_len.max(p.data.len() as u32),
                p.linktype,
                p.data,
            );
        }
    };
    let inputs = read_inputs(inputs, args.merge, on_frame);
    if let Some(e) = start_error {
        return Err(Failure::Runtime(e));
    }
    if balancer.is_none() {
        // No packet: every queue still gets its (header-only) file, named
        // by the first input's link type.
        let primary = inputs.iter().find_map(|f| f.linktype).unwrap_or(1);
        balancer = Some(
            start_balancer(args, &configs, primary)
                .map_err(|e| Failure::Runtime(format!("starting consumer threads: {e}")))?,
        );
    }
    let stats = balancer.map(Balancer::finish).unwrap_or_default();
    let signal = signals::stop_signal();
    let input_packets: u64 = inputs.iter().map(|f| f.packets).sum();
    let dissect = stats
        .first()
        .map(|a| a.dissect_errors.clone())
        .unwrap_or_default();
    let dissect_errors = DissectJson {
        count: dissect.count,
        first: dissect
            .first
            .map(|(i, e)| format!("{}: {e}", locate(i, &inputs, args.merge))),
    };
    let summary = SummaryJson {
        dissect_errors,
        input_packets,
        merged: args.merge,
        interrupted: signal.is_some(),
        signal,
        fidelity,
        flow_table: stats
            .first()
            .map(|a| FlowTableJson::from(&a.flow_table))
            .unwrap_or_else(|| FlowTableJson::from(&Default::default())),
        resident_peak_bytes: symrss_sys::resident_peak_bytes(),
        rebalanced: stats.iter().map(|a| a.rebalance.clone()).collect(),
        apps: stats
            .iter()
            .zip(&apps)
            .map(|(st, (_, _, spec))| {
                app_json(st, &args.out, &rebalance_args::split_flag(spec).0, layer)
            })
            .collect(),
        inputs,
    };
    let path = args.out.join("summary.json");
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| Failure::Runtime(e.to_string()))?;
    let summary_error = write_summary(&path, &(text + "\n")).err();
    let failed = summary.inputs.iter().any(|f| f.error.is_some())
        || summary.apps.iter().any(|a| a.error.is_some())
        || summary_error.is_some();
    // stdout may be a closed pipe (SIGPIPE only stops reading here): the
    // files are done, so a failed print is not an error of the split.
    let _ = report(args, &summary, &path);
    if summary.fidelity.timestamps_outside_pcap > 0 {
        eprintln!(
            "symrss: {} packet(s) have timestamps classic pcap cannot hold (before 1970 or after \
             2106): written with their exact times to their queues' q<i>.pcapng \
             (summary.json: pcapng_files)",
            summary.fidelity.timestamps_outside_pcap
        );
    }
    if summary.fidelity.orig_len_raised > 0 {
        eprintln!(
            "symrss: {} packet(s) had an original length below their captured length: written \
             with the captured length (summary.json: fidelity)",
            summary.fidelity.orig_len_raised
        );
    }
    for a in &summary.apps {
        for q in &a.queues {
            if let Some(e) = &q.error {
                eprintln!(
                    "symrss: {}/{}: {e}; {} packet(s) written, {} not (sink_error)",
                    a.name, q.file, q.packets, q.sink_error
                );
            }
        }
    }
    let untracked = summary
        .apps
        .iter()
        .map(|a| a.packets_untracked)
        .max()
        .unwrap_or(0);
    if untracked > 0 {
        eprintln!(
            "symrss: the flow table was full ({} flows, --max-flows): {untracked} packet(s) of \
             flows that did not fit were split as usual but not counted in the queues' flows nor \
             checked for affinity (summary.json: packets_untracked, flow_table)",
            summary.flow_table.capacity
        );
    }
    if let Some(first) = &summary.dissect_errors.first {
        eprintln!(
            "symrss: {} frame(s) could not be fully dissected (steered by the layers before the \
             error); the first: {first}",
            summary.dissect_errors.count
        );
    }
    if let Some(e) = &summary_error {
        eprintln!("symrss: {e}");
    }
    if let Some(sig) = signal {
        eprintln!(
            "symrss: interrupted by signal {sig}: {input_packets} packet(s) read were split; the \
             files are complete up to there"
        );
        return Ok(ExitCode::from(128 + sig as u8));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The human or JSON report on stdout.
fn report(args: &SplitArgs, summary: &SummaryJson, path: &Path) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, summary)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "{} packets split into {} ({} app(s)); summary: {}{}",
        summary.input_packets,
        args.out.display(),
        summary.apps.len(),
        path.display(),
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    )?;
    let mut t = Table::new(&["app", "file", "packets", "bytes", "flows"]);
    for a in &summary.apps {
        for q in &a.queues {
            t.row(vec![
                a.name.clone(),
                q.file.clone(),
                q.packets.to_string(),
                q.bytes.to_string(),
                q.flows.to_string(),
            ]);
        }
    }
    write!(out, "{}", t.render())?;
    for a in &summary.apps {
        writeln!(
            out,
            "{}: received {} = delivered {} + dropped {} (queue full {}, sink error {}); flows seen on a second queue: {}",
            a.name,
            a.received,
            a.delivered,
            a.dropped.queue_full + a.dropped.sink_error,
            a.dropped.queue_full,
            a.dropped.sink_error,
            a.affinity_violations
        )?;
    }
    for (a, st) in summary.apps.iter().zip(&summary.rebalanced) {
        if let Some(r) = st {
            writeln!(out, "{}", rebalance_args::summary_line(&a.name, r))?;
        }
    }
    // An elephant is worth a line: the queues whose hottest flow carries
    // at least a tenth of them.
    for a in &summary.apps {
        for q in &a.queues {
            if let Some(h) = q.hot_flows.first().filter(|h| h.share >= 0.1) {
                writeln!(
                    out,
                    "{}: hottest flow {} carries ~{:.0}% of the queue ({} of {} packets)",
                    q.file,
                    h.flow,
                    100.0 * h.share,
                    h.packets,
                    q.packets
                )?;
            }
        }
    }
    out.flush()
}
