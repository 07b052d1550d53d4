//! `symrss capture`'s settings: the command line, the TOML file it
//! mirrors (`--config`, shown by `--print-config`), and how the two
//! combine (file first, then flags) into the effective configuration.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use symrss_engine::balancer::EngineConfig;
use symrss_sys::packet::RingConfig;

use crate::Failure;

/// Arguments of `symrss capture`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each --app NAME:QUEUES[:SCHEME[:SINK]] gets QUEUES queues (scheme default sym, sink default pcap):\n  \
    pcap   DIR/NAME/q<i>.pcap, rotated by --rotate-size/--rotate-seconds, --rotate-files kept (SIGHUP rotates)\n  \
    fifo   DIR/NAME/q<i>.fifo streaming pcap: `tcpdump -r DIR/ids/q0.fifo`; no reader = drops counted as no_reader\n  \
    veth   an interface NAME-q<i> (e.g. ids-q0), the far end of a veth pair: `tcpdump -i ids-q0`, Suricata/Zeek/Snort\n         \
    in AF_PACKET mode; one send(2) per batch from shared threads; a reader that lags drops in its own ring (counted\n         \
    by it); a killed capture's pairs stay until its next start\n  \
    tap    the same through a TAP interface: one write(2) per packet, a thread per queue; vanishes with the process\n  \
    count  in-process: only counted\n\n\
    Needs CAP_NET_RAW (and CAP_NET_ADMIN for veth and tap sinks); --user drops to an unprivileged user after setup.\n\
    The filter is tcpdump syntax, compiled by libpcap.\n\n\
    Examples:\n  symrss capture -i eth0 --app ids:4 --app rec:1:keyed -w /var/cap\n  \
    symrss capture -i tap-a -i tap-b --app zeek:8:sym:fifo -w /run/symrss 'not port 22'\n  \
    symrss capture -i eth0 --app suricata:4:sym:veth --user nobody\n  \
    symrss capture -i eth0 --workers 2 --fanout qm --pin --app ids:4 -w /var/cap\n  \
    symrss capture --config sensor.toml --print-config"
)]
pub struct CaptureArgs {
    /// Interface to capture on (repeatable: several are merged, e.g. the two ports of a TAP).
    #[arg(short = 'i', long = "interface")]
    interfaces: Vec<String>,
    /// An application `NAME:QUEUES[:SCHEME[:SINK]]` (repeatable; default `all:4:sym:pcap`).
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
    #[arg(long, value_enum)]
    loss: Option<Loss>,
    /// IP layer hashed.
    #[arg(long, value_enum)]
    layer: Option<Layer>,
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
    /// The control socket `symrss stats` and `symrss control` talk to
    /// (`none`: none). Default: /run/symrss/NAME.sock for --config
    /// NAME.toml, else /run/symrss/capture-PID.sock.
    #[arg(long, value_name = "PATH")]
    control: Option<String>,
    /// Ring block size in bytes (a multiple of 4096).
    #[arg(long)]
    block_size: Option<u32>,
    /// Ring blocks per interface.
    #[arg(long)]
    block_count: Option<u32>,
    /// Drop to this user after setup.
    #[arg(long)]
    user: Option<String>,
    /// Pin the capture (steering) threads: worker i to the CPU of its
    /// receive queue's IRQ when known (AF_XDP or `--fanout qm`, drivers
    /// that name IRQs `IF-…-<queue>` in /proc/interrupts), else CPU i;
    /// consumer threads to the CPUs after the workers'.
    #[arg(long)]
    pin: bool,
    /// Capture threads ("workers"): each reads its share of every
    /// interface (one member of an AF_PACKET fanout group per interface)
    /// and steers it itself; flows stay whole whichever worker a packet
    /// reaches, and each queue merges its workers in time order. Default:
    /// the interfaces' receive-queue count, at most the CPUs.
    #[arg(long)]
    workers: Option<usize>,
    /// How the kernel spreads packets over the workers: `hash` (the flow
    /// hash), `cpu` (the receiving CPU), `qm` (the receive queue; give as
    /// many workers as queues).
    #[arg(long, value_enum)]
    fanout: Option<FanoutMode>,
    /// How packets are read: `afpacket` (TPACKET_V3 rings, the default)
    /// or `afxdp` (an XDP program redirects each receive queue to an
    /// AF_XDP socket; worker i reads queues i, i + workers, …; a filter
    /// then runs in user space, symrss's classic-BPF interpreter on
    /// libpcap's compiled program).
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// AF_XDP: where the XDP program runs (`auto`: native, else generic).
    #[arg(long, value_enum)]
    xdp_mode: Option<XdpModeArg>,
    /// AF_XDP: how sockets bind (`auto`: zero-copy, else copy).
    #[arg(long, value_enum)]
    xdp_bind: Option<XdpBindArg>,
    /// AF_XDP: UMEM frames (4 KiB each) per socket, a power of two; half
    /// of them wait in the fill ring (default 16384: 64 MiB).
    #[arg(long)]
    xdp_frames: Option<u32>,
    /// AF_XDP: RX ring descriptors per socket, a power of two (default 8192).
    #[arg(long)]
    xdp_ring: Option<u32>,
    /// Threads that write the queues' outputs. 0: one per queue, so a slow
    /// FIFO reader or TAP holds up only its own queue. Default: one per CPU
    /// but the capture thread's (at least one) when every app writes pcap
    /// files or counts (fewer wake-ups and context switches than one thread
    /// per queue); one per CPU when veth sinks are among them (their
    /// readers' kernel receive work runs on these threads); else one per
    /// queue.
    #[arg(long, conflicts_with = "inline_sinks")]
    consumer_threads: Option<usize>,
    /// Write the outputs on the capture thread itself, no consumer threads
    /// (run to completion): the least CPU per packet — no hand-off between
    /// threads, no packet crossing to another core — but one core does all
    /// the work, so the highest rate without kernel drops is lower, and a
    /// FIFO or TAP reader that lags holds up the capture.
    #[arg(long)]
    inline_sinks: bool,
    /// How long (packet time, ms) a later IP fragment waits for its first
    /// fragment (the queue's later packets wait behind it, so outputs stay
    /// in time order); 1..=60000, default 1000.
    #[arg(long)]
    frag_hold_ms: Option<u64>,
    /// Most flows each steering worker's flow table holds (for the
    /// per-queue flow counts and the affinity check; steering never needs
    /// it). Beyond it, new flows are steered as usual and their packets
    /// counted as untracked; memory stays bounded (16 bytes per slot up to
    /// 2 apps, 32 up to 10, at most 2 slots per flow: 32 MiB for one app
    /// at the default 1048576). 0 turns the accounting off.
    #[arg(long)]
    max_flows: Option<usize>,
    /// A flow idle this long (seconds of packet time) leaves the flow table;
    /// an ended TCP flow (RST, or FIN both ways) after ~2 s (60 s when an app rebalances).
    /// Default 300.
    #[arg(long)]
    flow_idle_s: Option<u64>,
    /// Read settings from a TOML file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub(super) print_config: bool,
    /// Capture filter (tcpdump syntax).
    filter: Vec<String>,
}

/// One application in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub(super) name: String,
    pub(super) queues: u32,
    #[serde(default = "default_scheme")]
    pub(super) scheme: String,
    #[serde(default)]
    pub(super) sink: SinkKind,
    /// Rebalance the app's queues without moving a live flow (one steering
    /// worker; the `[rebalance]` section tunes it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) rebalance: bool,
}

/// Tuning of the apps that rebalance (`symrss_engine::rebalance`; the
/// defaults are what BENCHMARKS.md measured).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceSection {
    /// Milliseconds of packet time between two decisions.
    pub(super) tick_ms: u64,
    /// Milliseconds of packet time each queue's load is measured over.
    pub(super) horizon_ms: u64,
    /// Buckets move only while the queues carry this many packets per
    /// second each on average.
    pub(super) min_rate: u32,
    /// Milliseconds of packet time per window of the imbalance report.
    pub(super) window_ms: u64,
}

impl Default for RebalanceSection {
    fn default() -> Self {
        let d = symrss_engine::rebalance::RebalanceConfig::default();
        Self {
            tick_ms: d.tick_ns / 1_000_000,
            horizon_ms: d.horizon_ns / 1_000_000,
            min_rate: d.min_rate,
            window_ms: d.window_ns / 1_000_000,
        }
    }
}

impl RebalanceSection {
    /// The engine's settings (a flow idle `idle_ns` starts anew).
    pub(super) fn config(&self, idle_ns: u64) -> symrss_engine::rebalance::RebalanceConfig {
        crate::rebalance_args::config_ms(
            self.tick_ms,
            self.horizon_ms,
            self.min_rate,
            self.window_ms,
            idle_ns,
        )
    }
}

fn default_scheme() -> String {
    "sym".into()
}

pub use symrss_sinks::SinkKind;

/// Full-queue behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Drop the newest packets and count them (the default live).
    Drop,
    /// Wait for the consumer: back-pressure into the kernel ring.
    Lossless,
}

/// How a live capture reads packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// AF_PACKET TPACKET_V3 rings.
    #[default]
    Afpacket,
    /// AF_XDP sockets fed by an XDP redirect program.
    Afxdp,
}

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    /// In the driver.
    Native,
    /// In the generic receive path (any driver).
    Generic,
}

/// How AF_XDP sockets bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpBindArg {
    /// Zero-copy if the driver supports it, else copy.
    #[default]
    Auto,
    /// Copy mode (any driver).
    Copy,
    /// Zero-copy.
    Zerocopy,
}

impl XdpModeArg {
    /// The socket layer's mode.
    pub fn mode(self) -> symrss_sys::xdp::XdpMode {
        use symrss_sys::xdp::XdpMode;
        match self {
            Self::Auto => XdpMode::Auto,
            Self::Native => XdpMode::Native,
            Self::Generic => XdpMode::Generic,
        }
    }
}

impl XdpBindArg {
    /// The socket layer's bind.
    pub fn bind(self) -> symrss_sys::xdp::XdpBind {
        use symrss_sys::xdp::XdpBind;
        match self {
            Self::Auto => XdpBind::Auto,
            Self::Copy => XdpBind::Copy,
            Self::Zerocopy => XdpBind::ZeroCopy,
        }
    }
}

/// How packets are spread over the capture workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FanoutMode {
    /// `PACKET_FANOUT_HASH`: the kernel's flow hash (symmetric when the
    /// kernel computes it; a NIC's RSS hash when the driver supplies one).
    #[default]
    Hash,
    /// `PACKET_FANOUT_CPU`: the CPU the packet was received on.
    Cpu,
    /// `PACKET_FANOUT_QM`: the NIC receive queue.
    Qm,
}

impl FanoutMode {
    /// The socket layer's mode.
    pub fn mode(self) -> symrss_sys::packet::Fanout {
        use symrss_sys::packet::Fanout;
        match self {
            Self::Hash => Fanout::Hash,
            Self::Cpu => Fanout::Cpu,
            Self::Qm => Fanout::QueueMapping,
        }
    }
}

/// IP layer hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The outermost IP header.
    Outer,
    /// The first IP header inside a tunnel.
    Inner,
    /// The innermost IP header.
    Innermost,
}

impl Layer {
    /// The engine's layer.
    pub fn hash_layer(self) -> symrss_engine::HashLayer {
        match self {
            Self::Outer => symrss_engine::HashLayer::Outer,
            Self::Inner => symrss_engine::HashLayer::Inner,
            Self::Innermost => symrss_engine::HashLayer::Innermost,
        }
    }
}

/// File rotation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RotateSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) files: Option<usize>,
}

/// The effective configuration (`--config` file, then flags).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub(super) interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) filter: Option<String>,
    pub(super) output_dir: PathBuf,
    pub(super) loss: Loss,
    pub(super) layer: Layer,
    pub(super) seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) duration: Option<f64>,
    pub(super) stats_interval: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stats_json: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) prometheus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) control: Option<String>,
    /// The file the settings came from (names the default control socket).
    #[serde(skip)]
    pub(super) config_file: Option<PathBuf>,
    pub(super) block_size: u32,
    pub(super) block_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<String>,
    pub(super) pin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) workers: Option<usize>,
    pub(super) fanout: FanoutMode,
    pub(super) source: SourceKind,
    pub(super) xdp_mode: XdpModeArg,
    pub(super) xdp_bind: XdpBindArg,
    pub(super) xdp_frames: u32,
    pub(super) xdp_ring: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) consumer_threads: Option<usize>,
    pub(super) inline_sinks: bool,
    pub(super) frag_hold_ms: u64,
    pub(super) max_flows: usize,
    pub(super) flow_idle_s: u64,
    pub(super) rotate: RotateSection,
    pub(super) rebalance: RebalanceSection,
    #[serde(rename = "app")]
    pub(super) apps: Vec<AppSection>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        let ring = RingConfig::default();
        Self {
            interfaces: Vec::new(),
            filter: None,
            output_dir: PathBuf::from("."),
            loss: Loss::Drop,
            layer: Layer::Outer,
            seed: 0,
            count: None,
            duration: None,
            stats_interval: 10,
            stats_json: None,
            prometheus: None,
            control: None,
            config_file: None,
            block_size: ring.block_size,
            block_count: ring.block_count,
            user: None,
            pin: false,
            workers: None,
            fanout: FanoutMode::Hash,
            source: SourceKind::Afpacket,
            xdp_mode: XdpModeArg::Auto,
            xdp_bind: XdpBindArg::Auto,
            xdp_frames: symrss_sys::xdp::XdpConfig::default().frames,
            xdp_ring: symrss_sys::xdp::XdpConfig::default().rx_ring,
            consumer_threads: None,
            inline_sinks: false,
            frag_hold_ms: 1000,
            max_flows: EngineConfig::default().max_flows,
            flow_idle_s: EngineConfig::default().flow_idle_ns / 1_000_000_000,
            rotate: RotateSection::default(),
            rebalance: RebalanceSection::default(),
            apps: Vec::new(),
        }
    }
}

fn parse_app(s: &str) -> Result<AppSection, String> {
    let mut parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 {
        return Err(format!(
            "`{s}`: expected NAME:QUEUES[:SCHEME[:SINK]][:rebalance]"
        ));
    }
    let rebalance = parts.len() > 2 && parts.last() == Some(&"rebalance");
    if rebalance {
        parts.pop();
    }
    // A scheme may contain ':' (toeplitz:..., nic:driver:key); the sink is
    // the last part when it names a sink.
    let (scheme, sink) = match parts.len() {
        2 => (default_scheme(), SinkKind::default()),
        3 => match SinkKind::parse(parts[2]) {
            Some(k) => (default_scheme(), k),
            None => (parts[2].to_string(), SinkKind::default()),
        },
        _ => match SinkKind::parse(parts[parts.len() - 1]) {
            Some(k) => (parts[2..parts.len() - 1].join(":"), k),
            None => (parts[2..].join(":"), SinkKind::default()),
        },
    };
    Ok(AppSection {
        name: parts[0].to_string(),
        queues: parts[1]
            .parse()
            .map_err(|_| format!("`{s}`: QUEUES must be a number"))?,
        scheme,
        sink,
        rebalance,
    })
}

/// Parses `100M`, `2G`, `500k` or plain bytes (at most 2^63 − 1).
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        Some('G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n = num
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 100M, 1G, 500k)"))?;
    n.checked_mul(mult)
        .filter(|&b| b <= i64::MAX as u64)
        .ok_or_else(|| format!("`{s}` is too large a size"))
}

pub(super) fn effective_config(a: &CaptureArgs) -> Result<CaptureConfig, Failure> {
    let mut c = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            toml::from_str::<CaptureConfig>(&text)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        None => CaptureConfig::default(),
    };
    c.config_file = a.config.clone();
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
        control <- a.control,
        user <- a.user,
        consumer_threads <- a.consumer_threads,
        workers <- a.workers,
        fanout <- a.fanout,
        source <- a.source,
        xdp_mode <- a.xdp_mode,
        xdp_bind <- a.xdp_bind,
        xdp_frames <- a.xdp_frames,
        xdp_ring <- a.xdp_ring,
        frag_hold_ms <- a.frag_hold_ms,
        max_flows <- a.max_flows,
        flow_idle_s <- a.flow_idle_s,
        rotate.size <- a.rotate_size,
        rotate.seconds <- a.rotate_seconds,
        rotate.files <- a.rotate_files,
    );
    if a.inline_sinks {
        c.inline_sinks = true;
    }
    if a.pin {
        c.pin = true;
    }
    if c.apps.is_empty() {
        c.apps = vec![AppSection {
            name: "all".into(),
            queues: 4,
            scheme: default_scheme(),
            sink: SinkKind::default(),
            rebalance: false,
        }];
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_specs_parse_with_schemes_that_contain_colons() {
        let a = parse_app("ids:4").unwrap();
        assert_eq!(
            (a.queues, a.scheme.as_str(), a.sink),
            (4, "sym", SinkKind::Pcap)
        );
        assert_eq!(parse_app("ids:4:fifo").unwrap().sink, SinkKind::Fifo);
        assert_eq!(parse_app("ids:4:sym:veth").unwrap().sink, SinkKind::Veth);
        assert_eq!(parse_app("ids:4:veth").unwrap().sink, SinkKind::Veth);
        let k = parse_app("rec:1:keyed:tap").unwrap();
        assert_eq!((k.scheme.as_str(), k.sink), ("keyed", SinkKind::Tap));
        let n = parse_app("x:2:nic:ixgbe").unwrap();
        assert_eq!((n.scheme.as_str(), n.sink), ("nic:ixgbe", SinkKind::Pcap));
        let t = parse_app("x:2:toeplitz:key=sym,fields=ip:fifo").unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.sink),
            ("toeplitz:key=sym,fields=ip", SinkKind::Fifo)
        );
        let r = parse_app("ids:8:sym:tap:rebalance").unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.sink, r.rebalance),
            ("sym", SinkKind::Tap, true)
        );
        let r = parse_app("ids:8:rebalance").unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.sink, r.rebalance),
            ("sym", SinkKind::Pcap, true)
        );
        assert!(!parse_app("ids:8:keyed").unwrap().rebalance);
        assert!(parse_app("x").is_err());
        assert!(parse_app("x:y").is_err());
    }

    #[test]
    fn sizes_parse_like_tcpdump() {
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("M").is_err());
        assert!(
            parse_size("99999999999G").is_err(),
            "overflow is an error, not a wrap"
        );
        assert!(parse_size("18446744073709551615").is_err());
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
        assert_eq!(c.apps[1].sink, SinkKind::Pcap);
        assert_eq!(c.loss, Loss::Drop);
        let bad =
            toml::from_str::<CaptureConfig>("[[app]]\nname = \"x\"\nqueues = 1\nsink = \"file\"\n");
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("file") && e.contains("pcap"), "{e}");
        let back: CaptureConfig = toml::from_str(&toml::to_string_pretty(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let bad = toml::from_str::<CaptureConfig>("interfaces = [\"a\"]\nbogus = 1\n");
        assert!(bad.unwrap_err().to_string().contains("bogus"));
    }
}
