//! `symrss split`: one capture, several applications, every flow on one
//! queue of each, written as pcap files that unmodified tools read.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::{HashLayer, Policy};
use symrss_pcap::{PcapWriter, TsResolution};

use crate::Failure;
use crate::input::{FileResult, for_each_packet, for_each_packet_merged};
use crate::output::{Table, print_json};

/// Arguments of `symrss split`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each --app NAME:Q[:SCHEME] gets Q queues (scheme default: sym) written to \
    DIR/NAME/q0.pcap ... DIR/NAME/q<Q-1>.pcap; DIR/summary.json has the counts. Offline runs are \
    lossless. Packets keep their timestamps (nanosecond pcap) and link type; a queue that receives \
    frames of a second link type writes them to q<i>.lt<N>.pcap.\n\n\
    Examples:\n  symrss split trace.pcap -o out --app ids:4 --app rec:1:keyed\n  \
    symrss split tap-a.pcap tap-b.pcap --merge -o out --app zeek:8   # the two directions of a TAP"
)]
pub struct SplitArgs {
    /// Capture files (pcap or pcapng; `-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (created if missing).
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// An application `NAME:QUEUES[:SCHEME]` (repeatable; default `all:4:sym`).
    #[arg(long = "app", value_parser = parse_app)]
    apps: Vec<(String, u32, String)>,
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
    /// Print the summary as JSON on stdout too.
    #[arg(long)]
    json: bool,
}

fn parse_app(s: &str) -> Result<(String, u32, String), String> {
    let mut parts = s.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "`{s}`: NAME must be letters, digits, '-', '_' or '.'"
        ));
    }
    let queues = parts
        .next()
        .and_then(|q| q.parse::<u32>().ok())
        .filter(|q| (1..=1024).contains(q))
        .ok_or_else(|| format!("`{s}`: QUEUES must be 1..=1024 (NAME:QUEUES[:SCHEME])"))?;
    let scheme = parts.next().unwrap_or("sym").to_string();
    Ok((name.to_string(), queues, scheme))
}

/// Writes one queue: `q<i>.pcap` for the primary link type, `q<i>.lt<N>.pcap`
/// for any other.
struct PcapQueueSink {
    dir: PathBuf,
    queue: usize,
    primary: u32,
    writers: Vec<(u32, PcapWriter<File>)>,
}

impl PcapQueueSink {
    fn path(&self, linktype: u32) -> PathBuf {
        if linktype == self.primary {
            self.dir.join(format!("q{}.pcap", self.queue))
        } else {
            self.dir.join(format!("q{}.lt{linktype}.pcap", self.queue))
        }
    }

    fn writer(&mut self, linktype: u32) -> io::Result<&mut PcapWriter<File>> {
        if let Some(pos) = self.writers.iter().position(|(lt, _)| *lt == linktype) {
            return Ok(&mut self.writers[pos].1);
        }
        let w = PcapWriter::new(
            File::create(self.path(linktype))?,
            linktype,
            262_144,
            TsResolution::Nano,
        )?;
        self.writers.push((linktype, w));
        Ok(&mut self.writers.last_mut().expect("just pushed").1)
    }
}

impl Sink for PcapQueueSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        self.writer(meta.linktype)?
            .write_packet(meta.ts_ns, meta.orig_len, data)
    }

    fn finish(&mut self) -> io::Result<()> {
        // Every queue has its q<i>.pcap, even when it got no packet.
        self.writer(self.primary)?;
        for (_, w) in self.writers.drain(..) {
            w.finish()?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct QueueJson {
    file: String,
    packets: u64,
    bytes: u64,
    flows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_linktype_files: Vec<String>,
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
    fragments_followed: u64,
    fragments_released: u64,
    fragments_fallback: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct SummaryJson {
    input_packets: u64,
    inputs: Vec<FileResult>,
    merged: bool,
    apps: Vec<AppJson>,
}

fn app_json(st: &AppStats, dir: &Path, scheme: &str, layer: HashLayer) -> AppJson {
    let queues = st
        .queues
        .iter()
        .enumerate()
        .map(|(q, qs)| {
            let prefix = format!("q{q}.lt");
            let mut other: Vec<String> = std::fs::read_dir(dir.join(&st.name))
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with(&prefix))
                        .map(|n| format!("{}/{n}", st.name))
                        .collect()
                })
                .unwrap_or_default();
            other.sort();
            QueueJson {
                file: format!("{}/q{q}.pcap", st.name),
                packets: qs.delivered,
                bytes: qs.bytes,
                flows: qs.flows,
                other_linktype_files: other,
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
        fragments_followed: st.fragments.followed,
        fragments_released: st.fragments.released,
        fragments_fallback: st.fragments.fallback_timeout + st.fragments.fallback_full,
        error: st.sink_error.clone(),
    }
}

/// Runs `symrss split`.
pub fn run(args: &SplitArgs) -> Result<ExitCode, Failure> {
    let layer = HashLayer::parse(&args.layer).expect("clap restricts the values");
    let apps: Vec<(String, u32, String)> = if args.apps.is_empty() {
        vec![("all".into(), 4, "sym".into())]
    } else {
        args.apps.clone()
    };
    let mut names = std::collections::HashSet::new();
    let mut configs = Vec::new();
    for (name, queues, scheme) in &apps {
        if !names.insert(name.clone()) {
            return Err(Failure::Usage(format!("app name `{name}` given twice")));
        }
        let mut policy =
            Policy::parse(scheme, layer, args.seed).map_err(|e| Failure::Usage(e.to_string()))?;
        if args.icmp_follow == "off" {
            policy.icmp_follow = false;
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
    let io_err = |what: &Path, e: io::Error| Failure::Runtime(format!("{}: {e}", what.display()));
    for (name, _, _) in &apps {
        let d = args.out.join(name);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    }
    // The balancer starts at the first packet, whose link type names the
    // q<i>.pcap files.
    let mut balancer: Option<Balancer> = None;
    let mut start_error: Option<String> = None;
    let mut on_packet = |p: &symrss_pcap::Packet<'_>| {
        if balancer.is_none() && start_error.is_none() {
            let with_sinks = configs
                .iter()
                .map(|c| {
                    let sinks: Vec<Box<dyn Sink>> = (0..c.queues as usize)
                        .map(|q| {
                            Box::new(PcapQueueSink {
                                dir: args.out.join(&c.name),
                                queue: q,
                                primary: p.linktype,
                                writers: Vec::new(),
                            }) as Box<dyn Sink>
                        })
                        .collect();
                    (c.clone(), sinks)
                })
                .collect();
            let cfg = EngineConfig {
                on_consumer_start: args.pin.then(crate::pinning::consumer_hook),
                ..EngineConfig::default()
            };
            if args.pin {
                crate::pinning::pin_steering();
            }
            match Balancer::start(with_sinks, cfg) {
                Ok(b) => balancer = Some(b),
                Err(e) => start_error = Some(format!("starting consumer threads: {e}")),
            }
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
    let inputs = if args.merge {
        for_each_packet_merged(&args.files, &mut on_packet)
    } else {
        for_each_packet(&args.files, &mut on_packet)
    };
    if let Some(e) = start_error {
        return Err(Failure::Runtime(e));
    }
    let stats = match balancer {
        Some(b) => b.finish(),
        None => Vec::new(),
    };
    let input_packets: u64 = inputs.iter().map(|f| f.packets).sum();
    let summary = SummaryJson {
        input_packets,
        merged: args.merge,
        apps: stats
            .iter()
            .zip(&apps)
            .map(|(st, (_, _, scheme))| app_json(st, &args.out, scheme, layer))
            .collect(),
        inputs,
    };
    let path = args.out.join("summary.json");
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| Failure::Runtime(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| io_err(&path, e))?;
    let failed = summary.inputs.iter().any(|f| f.error.is_some())
        || summary.apps.iter().any(|a| a.error.is_some());
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "{input_packets} packets split into {} ({} app(s)); summary: {}",
            args.out.display(),
            summary.apps.len(),
            path.display()
        );
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
        print!("{}", t.render());
        for a in &summary.apps {
            println!(
                "{}: received {} = delivered {} + dropped {} (queue full {}, sink error {}); flows seen on a second queue: {}",
                a.name,
                a.received,
                a.delivered,
                a.dropped.queue_full + a.dropped.sink_error,
                a.dropped.queue_full,
                a.dropped.sink_error,
                a.affinity_violations
            );
            if let Some(e) = &a.error {
                eprintln!("symrss: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
