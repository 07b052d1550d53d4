//! `symrss capture`: the live capture daemon. AF_PACKET TPACKET_V3 rings
//! on one or more interfaces → the balancer (every flow, both directions,
//! on one queue of each application) → per-queue sinks that unmodified
//! tools read: rotating pcap files, FIFOs streaming pcap, TAP interfaces,
//! or an in-process counter.
//!
//! Stops on SIGINT/SIGTERM (or `--count`/`--duration`): drains the rings,
//! flushes and closes every output, prints tcpdump's summary and the
//! per-queue table. SIGHUP rotates the pcap files.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;
use symrss_engine::balancer::{
    AppConfig, AppStats, Balancer, EngineConfig, LossPolicy, PacketMeta, Sink,
};
use symrss_engine::{HashLayer, Policy};
use symrss_pcap::{PcapWriter, RotatingWriter, Rotation, TsResolution};
use symrss_sys::packet::{PacketSocket, RingConfig, wait_any};
use symrss_sys::{bpf, fifo, privileges, signals, tap::Tap};

use crate::Failure;
use crate::output::Table;

const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// Arguments of `symrss capture`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each --app NAME:QUEUES[:SCHEME[:SINK]] gets QUEUES queues (scheme default sym, sink default pcap):\n  \
    pcap   DIR/NAME/q<i>.pcap, rotated by --rotate-size/--rotate-seconds, --rotate-files kept (SIGHUP rotates)\n  \
    fifo   DIR/NAME/q<i>.fifo streaming pcap: `tcpdump -r DIR/ids/q0.fifo`; no reader = drops counted as no_reader\n  \
    tap    a TAP interface NAME-q<i> (e.g. ids-q0): `tcpdump -i ids-q0`, Suricata/Zeek/Snort in AF_PACKET mode\n  \
    count  in-process: only counted\n\n\
    Needs CAP_NET_RAW (and CAP_NET_ADMIN for tap sinks); --user drops to an unprivileged user after setup.\n\
    The filter is tcpdump syntax, compiled by libpcap.\n\n\
    Examples:\n  symrss capture -i eth0 --app ids:4 --app rec:1:keyed -w /var/cap\n  \
    symrss capture -i tap-a -i tap-b --app zeek:8:sym:fifo -w /run/symrss 'not port 22'\n  \
    symrss capture -i eth0 --app suricata:4:sym:tap --user nobody\n  \
    symrss capture --config sensor.toml --print-config"
)]
pub struct CaptureArgs {
    /// Interface to capture on (repeatable: several are merged, e.g. the two ports of a TAP).
    #[arg(short = 'i', long = "interface")]
    interfaces: Vec<String>,
    /// An application NAME:QUEUES[:SCHEME[:SINK]] (repeatable; default all:4:sym:pcap).
    #[arg(long = "app")]
    apps: Vec<String>,
    /// Output directory for pcap files and FIFOs.
    #[arg(short = 'w', long = "out")]
    out: Option<PathBuf>,
    /// Rotate pcap files at this size (bytes; k/M/G suffixes), like tcpdump -C.
    #[arg(long)]
    rotate_size: Option<String>,
    /// Rotate pcap files after this many seconds of packet time, like tcpdump -G.
    #[arg(long)]
    rotate_seconds: Option<u64>,
    /// Keep this many files per queue (a ring), like tcpdump -W.
    #[arg(long)]
    rotate_files: Option<usize>,
    /// Full-queue behaviour: `drop` (default live) or `lossless` (back-pressure into the kernel ring).
    #[arg(long, value_parser = ["drop", "lossless"])]
    loss: Option<String>,
    /// IP layer hashed.
    #[arg(long, value_parser = ["outer", "inner", "innermost"])]
    layer: Option<String>,
    /// Seed of the random keys of xor/or-xor/sort/keyed.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Print a stats line every N seconds (0: never).
    #[arg(long)]
    stats_interval: Option<u64>,
    /// Write the stats as JSON to FILE at every interval and at the end.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Serve Prometheus text metrics on this loopback address (e.g. 127.0.0.1:9911).
    #[arg(long)]
    prometheus: Option<String>,
    /// Ring block size in bytes (a multiple of 4096).
    #[arg(long)]
    block_size: Option<u32>,
    /// Ring blocks per interface.
    #[arg(long)]
    block_count: Option<u32>,
    /// Drop to this user after setup.
    #[arg(long)]
    user: Option<String>,
    /// Pin the capture (steering) thread to CPU 0 and the consumer threads
    /// to the other CPUs.
    #[arg(long)]
    pin: bool,
    /// Threads that write the queues' outputs. 0: one per queue, so a slow
    /// FIFO reader or TAP holds up only its own queue. Default: one per CPU
    /// but the capture thread's (at least one) when every app writes pcap
    /// files or counts (fewer wake-ups and context switches than one thread
    /// per queue), else one per queue.
    #[arg(long)]
    consumer_threads: Option<usize>,
    /// Read settings from a TOML file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Capture filter (tcpdump syntax).
    filter: Vec<String>,
}

/// One application in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    name: String,
    queues: u32,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default = "default_sink")]
    sink: String,
}

fn default_scheme() -> String {
    "sym".into()
}

fn default_sink() -> String {
    "pcap".into()
}

/// File rotation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RotateSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
}

/// The effective configuration (`--config` file, then flags).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    output_dir: PathBuf,
    loss: String,
    layer: String,
    seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    stats_interval: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats_json: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prometheus: Option<String>,
    block_size: u32,
    block_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    pin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_threads: Option<usize>,
    rotate: RotateSection,
    #[serde(rename = "app")]
    apps: Vec<AppSection>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        let ring = RingConfig::default();
        Self {
            interfaces: Vec::new(),
            filter: None,
            output_dir: PathBuf::from("."),
            loss: "drop".into(),
            layer: "outer".into(),
            seed: 0,
            count: None,
            duration: None,
            stats_interval: 10,
            stats_json: None,
            prometheus: None,
            block_size: ring.block_size,
            block_count: ring.block_count,
            user: None,
            pin: false,
            consumer_threads: None,
            rotate: RotateSection::default(),
            apps: Vec::new(),
        }
    }
}

fn parse_app(s: &str) -> Result<AppSection, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 || parts.len() > 4 {
        return Err(format!("`{s}`: expected NAME:QUEUES[:SCHEME[:SINK]]"));
    }
    // A scheme may contain ':' (toeplitz:..., nic:driver:key); the sink is
    // the last part when it names a sink.
    let (scheme, sink) = match parts.len() {
        2 => (default_scheme(), default_sink()),
        3 if SINKS.contains(&parts[2]) => (default_scheme(), parts[2].to_string()),
        3 => (parts[2].to_string(), default_sink()),
        _ if SINKS.contains(&parts[3]) => (parts[2].to_string(), parts[3].to_string()),
        _ => (parts[2..].join(":"), default_sink()),
    };
    Ok(AppSection {
        name: parts[0].to_string(),
        queues: parts[1]
            .parse()
            .map_err(|_| format!("`{s}`: QUEUES must be a number"))?,
        scheme,
        sink,
    })
}

const SINKS: [&str; 4] = ["pcap", "fifo", "tap", "count"];

/// Parses `100M`, `2G`, `500k` or plain bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        Some('G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 100M, 1G, 500k)"))
}

fn effective_config(a: &CaptureArgs) -> Result<CaptureConfig, Failure> {
    let mut c = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            toml::from_str::<CaptureConfig>(&text)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        None => CaptureConfig::default(),
    };
    if !a.interfaces.is_empty() {
        c.interfaces = a.interfaces.clone();
    }
    if !a.apps.is_empty() {
        c.apps = a
            .apps
            .iter()
            .map(|s| parse_app(s))
            .collect::<Result<_, _>>()
            .map_err(Failure::Usage)?;
    }
    if !a.filter.is_empty() {
        c.filter = Some(a.filter.join(" "));
    }
    // Every flag that was given replaces the file's value (`v.into()` also
    // fills the `Option` fields).
    macro_rules! set {
        ($($($field:ident).+ <- $arg:expr),* $(,)?) => {
            $(if let Some(v) = $arg.clone() { c.$($field).+ = v.into(); })*
        };
    }
    set!(
        output_dir <- a.out,
        loss <- a.loss,
        layer <- a.layer,
        seed <- a.seed,
        stats_interval <- a.stats_interval,
        block_size <- a.block_size,
        block_count <- a.block_count,
        count <- a.count,
        duration <- a.duration,
        stats_json <- a.stats_json,
        prometheus <- a.prometheus,
        user <- a.user,
        consumer_threads <- a.consumer_threads,
        rotate.size <- a.rotate_size,
        rotate.seconds <- a.rotate_seconds,
        rotate.files <- a.rotate_files,
    );
    if a.pin {
        c.pin = true;
    }
    if c.apps.is_empty() {
        c.apps = vec![AppSection {
            name: "all".into(),
            queues: 4,
            scheme: default_scheme(),
            sink: default_sink(),
        }];
    }
    Ok(c)
}

/// A queue's pcap files, rotating on size, packet time and SIGHUP.
struct PcapSink {
    writer: RotatingWriter,
    hangups: u64,
}

impl Sink for PcapSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        let h = signals::hangups();
        if h != self.hangups {
            self.hangups = h;
            self.writer.rotate()?;
        }
        self.writer.write_packet(meta.ts_ns, meta.orig_len, data)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A queue streamed as pcap into a FIFO; without a reader its packets are
/// dropped (counted) and the FIFO is checked again every 100 ms.
struct FifoSink {
    path: PathBuf,
    writer: Option<PcapWriter<File>>,
    next_try: Instant,
}

impl Sink for FifoSink {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        if self.writer.is_none() && Instant::now() >= self.next_try {
            self.next_try = Instant::now() + Duration::from_millis(100);
            if let Some(f) = fifo::open_writer(&self.path)? {
                self.writer = Some(PcapWriter::new(
                    f,
                    meta.linktype,
                    SNAPLEN,
                    TsResolution::Nano,
                )?);
            }
        }
        let Some(w) = &mut self.writer else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no reader"));
        };
        let r = w.write_packet(meta.ts_ns, meta.orig_len, data);
        self.reader_check(r)
    }

    /// Each chunk is flushed, so a reader sees packets as they come
    /// without a write per packet.
    fn chunk_done(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => {
                let r = w.flush();
                self.reader_check(r)
            }
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => match w.finish() {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map(drop),
            },
            None => Ok(()),
        }
    }
}

impl FifoSink {
    /// A broken pipe means the reader left: drop until one comes back (a
    /// new reader gets a new pcap header).
    fn reader_check(&mut self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.writer = None;
                Err(io::Error::new(io::ErrorKind::NotConnected, "reader left"))
            }
            r => r,
        }
    }
}

/// A queue injected into a TAP interface.
struct TapSink(Tap);

impl Sink for TapSink {
    fn write(&mut self, _: &PacketMeta, data: &[u8]) -> io::Result<()> {
        self.0.send(data)
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts only (the in-process consumer).
struct CountSink;

impl Sink for CountSink {
    fn write(&mut self, _: &PacketMeta, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn make_sinks(
    c: &CaptureConfig,
    app: &AppSection,
    rotation: Rotation,
) -> Result<Vec<Box<dyn Sink>>, Failure> {
    let dir = c.output_dir.join(&app.name);
    let fail = |e: io::Error| Failure::Runtime(format!("app {}: {e}", app.name));
    if matches!(app.sink.as_str(), "pcap" | "fifo") {
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))))?;
    }
    (0..app.queues as usize)
        .map(|q| -> Result<Box<dyn Sink>, Failure> {
            Ok(match app.sink.as_str() {
                "pcap" => Box::new(PcapSink {
                    writer: RotatingWriter::create(
                        &dir,
                        &format!("q{q}"),
                        LINKTYPE_ETHERNET,
                        SNAPLEN,
                        TsResolution::Nano,
                        rotation,
                    )
                    .map_err(fail)?,
                    hangups: signals::hangups(),
                }),
                "fifo" => {
                    let path = dir.join(format!("q{q}.fifo"));
                    fifo::create(&path).map_err(fail)?;
                    Box::new(FifoSink {
                        path,
                        writer: None,
                        next_try: Instant::now(),
                    })
                }
                "tap" => Box::new(TapSink(
                    Tap::create(&format!("{}-q{q}", app.name)).map_err(fail)?,
                )),
                _ => Box::new(CountSink),
            })
        })
        .collect()
}

/// Per interface: the socket and its kernel counters so far.
struct Interface {
    name: String,
    socket: PacketSocket,
    received: u64,
    drops: u64,
    captured: u64,
}

impl Interface {
    fn read_kernel_stats(&mut self) {
        if let Ok(s) = self.socket.stats() {
            self.received += s.packets;
            self.drops += s.drops;
        }
    }
}

/// Runs `symrss capture`.
pub fn run(a: &CaptureArgs) -> Result<ExitCode, Failure> {
    let c = effective_config(a)?;
    if a.print_config {
        let text = toml::to_string_pretty(&c).map_err(|e| Failure::Runtime(e.to_string()))?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if c.interfaces.is_empty() {
        return Err(Failure::Usage("give at least one interface (-i IF)".into()));
    }
    let layer =
        HashLayer::parse(&c.layer).ok_or_else(|| Failure::Usage(format!("layer `{}`", c.layer)))?;
    let loss = match c.loss.as_str() {
        "drop" => LossPolicy::DropNewest,
        "lossless" => LossPolicy::Lossless,
        l => {
            return Err(Failure::Usage(format!(
                "loss must be drop or lossless, not `{l}`"
            )));
        }
    };
    let rotation = Rotation {
        max_bytes: c
            .rotate
            .size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(Failure::Usage)?,
        max_packets: None,
        max_seconds: c.rotate.seconds,
        ring: c.rotate.files,
    };
    let mut names = std::collections::HashSet::new();
    let mut configs = Vec::new();
    for app in &c.apps {
        if !names.insert(app.name.clone()) {
            return Err(Failure::Usage(format!(
                "app name `{}` given twice",
                app.name
            )));
        }
        if !(1..=1024).contains(&app.queues) {
            return Err(Failure::Usage(format!(
                "app {}: queues must be 1..=1024",
                app.name
            )));
        }
        if !SINKS.contains(&app.sink.as_str()) {
            return Err(Failure::Usage(format!(
                "app {}: sink must be one of {}",
                app.name,
                SINKS.join(", ")
            )));
        }
        let policy = Policy::parse(&app.scheme, layer, c.seed)
            .map_err(|e| Failure::Usage(format!("app {}: {e}", app.name)))?;
        configs.push(AppConfig {
            name: app.name.clone(),
            queues: app.queues,
            policy,
            loss,
        });
    }
    for i in &c.interfaces {
        let kind = std::fs::read_to_string(format!("/sys/class/net/{i}/type")).unwrap_or_default();
        if !kind.trim().is_empty() && kind.trim() != "1" {
            return Err(Failure::Usage(format!(
                "{i}: only Ethernet-type interfaces are supported (ARPHRD {})",
                kind.trim()
            )));
        }
    }
    signals::install().map_err(|e| Failure::Runtime(format!("signal handlers: {e}")))?;
    // Setup as root: rings (with the filter attached before each socket
    // is bound, so nothing unfiltered is captured), outputs.
    let filter = match &c.filter {
        Some(f) => bpf::compile(f, LINKTYPE_ETHERNET, SNAPLEN)
            .map_err(|e| Failure::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    let ring = RingConfig {
        block_size: c.block_size,
        block_count: c.block_count,
        filter,
        ..RingConfig::default()
    };
    let mut interfaces = Vec::with_capacity(c.interfaces.len());
    for name in &c.interfaces {
        let socket = PacketSocket::open(name, &ring)
            .map_err(|e| Failure::Runtime(format!("capture: {e}")))?;
        interfaces.push(Interface {
            name: name.clone(),
            socket,
            received: 0,
            drops: 0,
            captured: 0,
        });
    }
    let mut with_sinks = Vec::new();
    for (app, cfg) in c.apps.iter().zip(&configs) {
        with_sinks.push((cfg.clone(), make_sinks(&c, app, rotation)?));
    }
    let mut stats_file = match &c.stats_json {
        Some(p) => {
            Some(File::create(p).map_err(|e| Failure::Runtime(format!("{}: {e}", p.display())))?)
        }
        None => None,
    };
    if let Some(user) = &c.user {
        let ids = privileges::lookup(user).map_err(|e| Failure::Usage(e.to_string()))?;
        for app in &c.apps {
            let dir = c.output_dir.join(&app.name);
            if dir.exists() {
                privileges::chown(&dir, ids)
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
            }
        }
        privileges::drop_to(ids).map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    if c.pin {
        crate::pinning::pin_steering();
    }
    let engine = EngineConfig {
        on_consumer_start: c.pin.then(crate::pinning::consumer_hook),
        consumer_threads: consumer_threads(&c),
        ..EngineConfig::default()
    };
    let mut balancer = Balancer::start(with_sinks, engine)
        .map_err(|e| Failure::Runtime(format!("starting consumer threads: {e}")))?;
    let metrics = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = &c.prometheus {
        serve_prometheus(addr, Arc::clone(&metrics))?;
    }
    eprintln!(
        "symrss: capturing on {} ({} app(s): {}){}",
        c.interfaces.join(", "),
        c.apps.len(),
        c.apps
            .iter()
            .map(|a| format!("{}:{}:{}:{}", a.name, a.queues, a.scheme, a.sink))
            .collect::<Vec<_>>()
            .join(" "),
        c.filter
            .as_ref()
            .map_or(String::new(), |f| format!(", filter `{f}`"))
    );
    let started = Instant::now();
    let deadline = c
        .duration
        .map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let mut next_stats = started + Duration::from_secs(c.stats_interval.max(1));
    let mut captured = 0u64;
    let mut frame = Vec::with_capacity(SNAPLEN as usize);
    let mut merged: Vec<(i128, u32, Range<usize>)> = Vec::new();
    let limit = c.count.unwrap_or(u64::MAX);
    // After a stop request, what the rings already hold is drained: at
    // most one ring's worth of blocks per interface, so steady traffic
    // cannot keep the capture alive.
    let mut drain_rounds: Option<u32> = None;
    // A capture or stats error ends the loop like a stop request: what was
    // captured is still steered, written and counted before it is reported.
    let mut loop_error: Option<Failure> = None;
    loop {
        if captured >= limit {
            break;
        }
        if signals::stop_requested() && drain_rounds.is_none() {
            drain_rounds = Some(c.block_count);
        }
        let got = match read_round(
            &mut interfaces,
            &mut balancer,
            &mut frame,
            &mut merged,
            &mut captured,
            limit,
        ) {
            Ok(n) => n,
            Err(e) => {
                loop_error = Some(e);
                break;
            }
        };
        if got == 0 {
            // Nothing more is ready: hand off what was read before waiting,
            // so no packet sits in a half-full batch while the capture
            // sleeps. While blocks keep coming, batches fill (and go) by
            // size: fewer, larger chunks, fewer consumer wake-ups.
            balancer.flush();
        }
        if let Some(n) = &mut drain_rounds {
            if got == 0 || *n == 0 {
                break;
            }
            *n -= 1;
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            signals::request_stop();
        }
        if got == 0
            && let Err(e) = wait_any(interfaces.iter().map(|i| &i.socket), 100)
        {
            loop_error = Some(Failure::Runtime(format!("poll: {e}")));
            break;
        }
        let now = Instant::now();
        if now >= next_stats {
            next_stats = now + Duration::from_secs(c.stats_interval.max(1));
            for i in &mut interfaces {
                i.read_kernel_stats();
            }
            let snap = balancer.snapshot();
            if c.stats_interval > 0 {
                eprintln!("{}", stats_line(started, &interfaces, &snap));
            }
            if let Err(e) = publish(
                &mut stats_file,
                &c,
                &metrics,
                started,
                &interfaces,
                &snap,
                captured,
            ) {
                loop_error = Some(e);
                break;
            }
        }
    }
    for i in &mut interfaces {
        i.read_kernel_stats();
    }
    let stats = balancer.finish();
    publish(
        &mut stats_file,
        &c,
        &metrics,
        started,
        &interfaces,
        &stats,
        captured,
    )?;
    print_summary(&interfaces, &stats, captured);
    if let Some(e) = loop_error {
        return Err(e);
    }
    let failed = stats.iter().any(|s| s.sink_error.is_some());
    for s in &stats {
        if let Some(e) = &s.sink_error {
            eprintln!("symrss: {e}");
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads one ready block per interface and pushes its packets; with
/// several interfaces the packets of the round are merged by timestamp
/// (their frames gathered in `frame`, reused from round to round, and
/// indexed by `merged`: no allocation per packet).
fn read_round(
    interfaces: &mut [Interface],
    balancer: &mut Balancer,
    frame: &mut Vec<u8>,
    merged: &mut Vec<(i128, u32, Range<usize>)>,
    captured: &mut u64,
    limit: u64,
) -> Result<usize, Failure> {
    let mut got = 0;
    let single = interfaces.len() == 1;
    if !single {
        frame.clear();
    }
    for iface in interfaces.iter_mut() {
        let mut n_here = 0u64;
        let r = iface.socket.next_block(0, |p| {
            if *captured + n_here >= limit {
                return;
            }
            n_here += 1;
            if single {
                if p.vlan.is_some() {
                    frame.clear();
                    let len = p.frame_into(frame);
                    balancer.push(p.ts_ns, len, LINKTYPE_ETHERNET, frame);
                } else {
                    balancer.push(p.ts_ns, p.wire_len, LINKTYPE_ETHERNET, p.data);
                }
            } else {
                let start = frame.len();
                let len = p.frame_into(frame);
                merged.push((p.ts_ns, len, start..frame.len()));
            }
        });
        let n = r.map_err(|e| Failure::Runtime(format!("{}: {e}", iface.name)))?;
        got += n;
        iface.captured += n_here;
        *captured += n_here;
    }
    if !single && !merged.is_empty() {
        merged.sort_by_key(|m| m.0);
        for (ts, len, at) in merged.drain(..) {
            balancer.push(ts, len, LINKTYPE_ETHERNET, &frame[at]);
        }
    }
    Ok(got)
}

/// [`CaptureConfig::consumer_threads`], or its default: when every app
/// writes files or counts, one thread per CPU but the one the capture
/// thread keeps busy (at least one: the layout `--pin` makes explicit);
/// else one per queue (0), so a FIFO or TAP whose reader lags holds up
/// only its own queue.
fn consumer_threads(c: &CaptureConfig) -> usize {
    c.consumer_threads.unwrap_or_else(|| {
        if c.apps
            .iter()
            .all(|a| matches!(a.sink.as_str(), "pcap" | "count"))
        {
            symrss_sys::cpu_count().saturating_sub(1).max(1)
        } else {
            0
        }
    })
}

fn stats_line(started: Instant, interfaces: &[Interface], apps: &[AppStats]) -> String {
    let ifs: Vec<String> = interfaces
        .iter()
        .map(|i| {
            format!(
                "{} captured {} kernel-drops {}",
                i.name, i.captured, i.drops
            )
        })
        .collect();
    let apps: Vec<String> = apps
        .iter()
        .map(|a| {
            let per: Vec<String> = a.queues.iter().map(|q| q.delivered.to_string()).collect();
            format!(
                "{} delivered {} [{}] dropped {}",
                a.name,
                a.delivered(),
                per.join(" "),
                a.dropped()
            )
        })
        .collect();
    format!(
        "symrss: {:.0}s | {} | {}",
        started.elapsed().as_secs_f64(),
        ifs.join(", "),
        apps.join(" | ")
    )
}

fn stats_json(
    started: Instant,
    interfaces: &[Interface],
    apps: &[AppStats],
    captured: u64,
) -> serde_json::Value {
    json!({
        "elapsed_s": started.elapsed().as_secs_f64(),
        "captured": captured,
        "interfaces": interfaces.iter().map(|i| json!({
            "name": i.name,
            "captured": i.captured,
            "received_by_filter": i.received,
            "kernel_drops": i.drops,
        })).collect::<Vec<_>>(),
        "apps": apps.iter().map(|a| json!({
            "name": a.name,
            "received": a.received,
            "delivered": a.delivered(),
            "dropped": a.dropped(),
            "non_ip": a.non_ip,
            "affinity_violations": a.affinity_violations,
            "queues": a.queues.iter().map(|q| json!({
                "delivered": q.delivered,
                "bytes": q.bytes,
                "flows": q.flows,
                "dropped": {
                    "queue_full": q.dropped_queue_full,
                    "sink_error": q.dropped_sink_error,
                    "no_reader": q.dropped_no_reader,
                },
            })).collect::<Vec<_>>(),
            "error": a.sink_error,
        })).collect::<Vec<_>>(),
    })
}

fn prometheus_text(interfaces: &[Interface], apps: &[AppStats]) -> String {
    let mut s = String::new();
    s.push_str("# TYPE symrss_interface_captured_total counter\n# TYPE symrss_interface_kernel_drops_total counter\n");
    for i in interfaces {
        s.push_str(&format!(
            "symrss_interface_captured_total{{interface=\"{}\"}} {}\n",
            i.name, i.captured
        ));
        s.push_str(&format!(
            "symrss_interface_kernel_drops_total{{interface=\"{}\"}} {}\n",
            i.name, i.drops
        ));
    }
    s.push_str(
        "# TYPE symrss_queue_delivered_total counter\n# TYPE symrss_queue_dropped_total counter\n",
    );
    for a in apps {
        for (q, st) in a.queues.iter().enumerate() {
            let l = format!("app=\"{}\",queue=\"{q}\"", a.name);
            s.push_str(&format!(
                "symrss_queue_delivered_total{{{l}}} {}\n",
                st.delivered
            ));
            for (reason, n) in [
                ("queue_full", st.dropped_queue_full),
                ("sink_error", st.dropped_sink_error),
                ("no_reader", st.dropped_no_reader),
            ] {
                s.push_str(&format!(
                    "symrss_queue_dropped_total{{{l},reason=\"{reason}\"}} {n}\n"
                ));
            }
        }
    }
    s
}

fn publish(
    stats_file: &mut Option<File>,
    c: &CaptureConfig,
    metrics: &Mutex<String>,
    started: Instant,
    interfaces: &[Interface],
    apps: &[AppStats],
    captured: u64,
) -> Result<(), Failure> {
    if c.prometheus.is_some() {
        *metrics.lock().unwrap_or_else(|p| p.into_inner()) = prometheus_text(interfaces, apps);
    }
    if let (Some(f), Some(path)) = (stats_file, &c.stats_json) {
        use std::io::Seek;
        let text = serde_json::to_string_pretty(&stats_json(started, interfaces, apps, captured))
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        // Rewritten in place through the handle opened before dropping
        // privileges (so `--user` needs no write access to its directory).
        f.set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all((text + "\n").as_bytes()))
            .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Serves the latest metrics text to each connection (loopback only).
fn serve_prometheus(addr: &str, metrics: Arc<Mutex<String>>) -> Result<(), Failure> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Failure::Runtime(format!("prometheus {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if !local.ip().is_loopback() {
        return Err(Failure::Usage(format!(
            "--prometheus must be a loopback address, not {local}"
        )));
    }
    std::thread::Builder::new()
        .name("prometheus".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let body = metrics.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let mut s = stream;
                // Read the request first: closing with unread bytes would
                // reset the connection before the client reads the answer.
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut req = [0u8; 2048];
                let mut seen = 0;
                while seen < req.len() {
                    match io::Read::read(&mut s, &mut req[seen..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen += n,
                    }
                    if req[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        })
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(())
}

fn print_summary(interfaces: &[Interface], apps: &[AppStats], captured: u64) {
    let received: u64 = interfaces.iter().map(|i| i.received).sum();
    let drops: u64 = interfaces.iter().map(|i| i.drops).sum();
    eprintln!("{captured} packets captured");
    eprintln!("{received} packets received by filter");
    eprintln!("{drops} packets dropped by kernel");
    let mut t = Table::new(&[
        "app",
        "queue",
        "delivered",
        "bytes",
        "flows",
        "queue_full",
        "no_reader",
        "sink_error",
    ]);
    for a in apps {
        for (q, s) in a.queues.iter().enumerate() {
            t.row(vec![
                a.name.clone(),
                q.to_string(),
                s.delivered.to_string(),
                s.bytes.to_string(),
                s.flows.to_string(),
                s.dropped_queue_full.to_string(),
                s.dropped_no_reader.to_string(),
                s.dropped_sink_error.to_string(),
            ]);
        }
    }
    eprint!("{}", t.render());
    for a in apps {
        eprintln!(
            "{}: received {} = delivered {} + dropped {}; flows seen on a second queue: {}",
            a.name,
            a.received,
            a.delivered(),
            a.dropped(),
            a.affinity_violations
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_specs_parse_with_schemes_that_contain_colons() {
        let a = parse_app("ids:4").unwrap();
        assert_eq!(
            (a.queues, a.scheme.as_str(), a.sink.as_str()),
            (4, "sym", "pcap")
        );
        assert_eq!(parse_app("ids:4:fifo").unwrap().sink, "fifo");
        let k = parse_app("rec:1:keyed:tap").unwrap();
        assert_eq!((k.scheme.as_str(), k.sink.as_str()), ("keyed", "tap"));
        let n = parse_app("x:2:nic:ixgbe").unwrap();
        assert_eq!((n.scheme.as_str(), n.sink.as_str()), ("nic:ixgbe", "pcap"));
        assert!(parse_app("x").is_err());
        assert!(parse_app("x:y").is_err());
    }

    #[test]
    fn a_fifo_reader_that_leaves_only_drops_until_a_new_one_comes() {
        use std::io::Read;
        let path = std::env::temp_dir().join(format!("symrss-fifosink-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        fifo::create(&path).unwrap();
        let mut sink = FifoSink {
            path: path.clone(),
            writer: None,
            next_try: Instant::now(),
        };
        let meta = |i: u64| PacketMeta {
            index: i,
            ts_ns: i128::from(i),
            orig_len: 60,
            linktype: 1,
        };
        let frame = [7u8; 60];
        // No reader: dropped as `no reader`, not a failure.
        let e = sink.write(&meta(0), &frame).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        // A reader that takes the header and one record, then leaves.
        let reader = |records: usize| {
            let p = path.clone();
            std::thread::spawn(move || {
                let mut f = File::open(&p).unwrap();
                let mut buf = vec![0u8; 24 + records * (16 + 60)];
                f.read_exact(&mut buf).unwrap();
                buf
            })
        };
        let first = reader(1);
        let mut delivered = 0;
        let mut i = 1;
        while !first.is_finished() || delivered == 0 {
            sink.next_try = Instant::now();
            if sink.write(&meta(i), &frame).is_ok() {
                delivered += 1;
            }
            let _ = sink.chunk_done();
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = first.join().unwrap();
        assert_eq!(
            &got[..4],
            &0xa1b2_3c4du32.to_le_bytes(),
            "a pcap header (ns) first"
        );
        // Writing on: the reader is gone, so the sink reports no reader
        // (after at most what the pipe buffered) and keeps going.
        let mut no_reader = 0;
        for _ in 0..20_000 {
            match sink
                .write(&meta(i), &frame)
                .and_then(|()| sink.chunk_done())
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => no_reader += 1,
                Err(e) => panic!("{e}"),
            }
            i += 1;
            if no_reader > 0 {
                break;
            }
        }
        assert!(no_reader > 0);
        // A new reader gets a new header and packets again.
        let second = reader(2);
        loop {
            sink.next_try = Instant::now();
            let _ = sink.write(&meta(i), &frame);
            let _ = sink.chunk_done();
            i += 1;
            if second.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = second.join().unwrap();
        assert_eq!(&got[..4], &0xa1b2_3c4du32.to_le_bytes());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sizes_parse_like_tcpdump() {
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn config_files_round_trip_through_print_config() {
        let text = r#"
            interfaces = ["eth0", "eth1"]
            filter = "not port 22"
            output_dir = "/var/cap"
            stats_interval = 5
            [rotate]
            size = "100M"
            files = 10
            [[app]]
            name = "ids"
            queues = 4
            sink = "tap"
            [[app]]
            name = "rec"
            queues = 1
            scheme = "keyed"
        "#;
        let c: CaptureConfig = toml::from_str(text).unwrap();
        assert_eq!(c.apps.len(), 2);
        assert_eq!(c.apps[0].scheme, "sym");
        assert_eq!(c.apps[1].sink, "pcap");
        assert_eq!(c.loss, "drop");
        let back: CaptureConfig = toml::from_str(&toml::to_string_pretty(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let bad = toml::from_str::<CaptureConfig>("interfaces = [\"a\"]\nbogus = 1\n");
        assert!(bad.unwrap_err().to_string().contains("bogus"));
    }
}
