//! `symrss capture`: the live capture daemon. AF_PACKET TPACKET_V3 rings
//! on one or more interfaces → the balancer (every flow, both directions,
//! on one queue of each application) → per-queue sinks that unmodified
//! tools read: rotating pcap files, FIFOs streaming pcap, TAP interfaces,
//! or an in-process counter.
//!
//! Stops on SIGINT/SIGTERM (or `--count`/`--duration`): drains the rings,
//! flushes and closes every output, prints tcpdump's summary and the
//! per-queue table. SIGHUP rotates the pcap files.
//!
//! Here: the capture loop (rings → balancer). [`config`]: the flags and
//! the TOML file they mirror; [`sinks`]: the outputs; [`report`]: stats
//! line, JSON, Prometheus and the final summary.

use std::fs::File;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use symrss_engine::Policy;
use symrss_engine::balancer::{AppConfig, Balancer, Consumers, EngineConfig, LossPolicy};
use symrss_pcap::Rotation;
use symrss_sys::packet::{PacketSocket, RingConfig, wait_any};
use symrss_sys::{bpf, privileges, signals};

use crate::Failure;
use crate::outdir::{MAX_QUEUES, check_app_name, check_tap_names};

mod config;
mod report;
mod sinks;

pub use config::CaptureArgs;
use config::{CaptureConfig, Loss, SinkKind, effective_config, parse_size};
use report::{print_summary, publish, serve_prometheus, stats_line};
use sinks::make_sinks;

const SNAPLEN: u32 = 262_144;
/// Longest `--duration`.
const MAX_DURATION_SECONDS: u64 = 1_000_000_000;
const LINKTYPE_ETHERNET: u32 = 1;

/// Per interface: the socket and its kernel counters so far.
struct Interface {
    name: String,
    socket: PacketSocket,
    received: u64,
    drops: u64,
    captured: u64,
    /// Packets read from the ring past the `--count` limit (not captured,
    /// like tcpdump -c).
    over_limit: u64,
    /// The first read error (ENETDOWN when the interface went away).
    error: Option<String>,
}

impl Interface {
    fn read_kernel_stats(&mut self) {
        if let Ok(s) = self.socket.stats() {
            self.received += s.packets;
            self.drops += s.drops;
        }
    }

    /// Packets the kernel's filter passed that were neither captured, nor
    /// dropped by the kernel, nor past the `--count` limit: still in the
    /// ring when the capture ended (counted as a drop in the summary).
    fn unread(&self) -> u64 {
        self.received
            .saturating_sub(self.drops + self.captured + self.over_limit)
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
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = c.interfaces.iter().find(|i| !seen.insert(i.as_str())) {
        return Err(Failure::Usage(format!(
            "interface {twice} given twice: its packets would be captured twice"
        )));
    }
    let layer = c.layer.hash_layer();
    if c.inline_sinks && c.consumer_threads.is_some() {
        return Err(Failure::Usage(
            "inline_sinks writes the outputs on the capture thread: consumer_threads does not apply"
                .into(),
        ));
    }
    let loss = match c.loss {
        Loss::Drop => LossPolicy::DropNewest,
        Loss::Lossless => LossPolicy::Lossless,
    };
    if !(1..=60_000).contains(&c.frag_hold_ms) {
        return Err(Failure::Usage(format!(
            "frag hold {} ms: give 1..=60000",
            c.frag_hold_ms
        )));
    }
    if c.rotate.files == Some(0) {
        return Err(Failure::Usage(
            "rotate files must be at least 1 (the number of files kept per queue)".into(),
        ));
    }
    let duration = c
        .duration
        .map(|d| {
            Duration::try_from_secs_f64(d)
                .ok()
                .filter(|d| !d.is_zero() && d.as_secs() <= MAX_DURATION_SECONDS)
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "duration {d}: give a positive number of seconds, at most                          {MAX_DURATION_SECONDS} (about 31 years)"
                    ))
                })
        })
        .transpose()?;
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
        check_app_name(&app.name).map_err(Failure::Usage)?;
        if !(1..=MAX_QUEUES).contains(&app.queues) {
            return Err(Failure::Usage(format!(
                "app {}: queues must be 1..={MAX_QUEUES}",
                app.name
            )));
        }
        if app.sink == SinkKind::Tap {
            check_tap_names(&app.name, app.queues).map_err(Failure::Usage)?;
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
    ring.validate().map_err(Failure::Usage)?;
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
            over_limit: 0,
            error: None,
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
        consumers: consumers(&c),
        frag: symrss_engine::frag::FragConfig {
            hold_ns: i128::from(c.frag_hold_ms) * 1_000_000,
            ..Default::default()
        },
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
            .map(|a| format!("{}:{}:{}:{}", a.name, a.queues, a.scheme, a.sink.name()))
            .collect::<Vec<_>>()
            .join(" "),
        c.filter
            .as_ref()
            .map_or(String::new(), |f| format!(", filter `{f}`"))
    );
    let started = Instant::now();
    let deadline = duration.and_then(|d| started.checked_add(d));
    let mut next_stats = started + Duration::from_secs(c.stats_interval.max(1));
    let mut captured = 0u64;
    let mut frame = Vec::with_capacity(SNAPLEN as usize);
    let mut merged: Vec<(i128, u32, Range<usize>)> = Vec::new();
    let limit = c.count.unwrap_or(u64::MAX);
    // A stop request, a capture error (an interface went away) or a stats
    // error ends the loop; then what the rings hold is drained (below)
    // and steered, written and counted before anything is reported.
    let mut loop_error: Option<Failure> = None;
    loop {
        if captured >= limit || signals::stop_requested() {
            break;
        }
        let got = read_round(
            &mut interfaces,
            &mut balancer,
            &mut frame,
            &mut merged,
            &mut captured,
            limit,
        );
        if let Some((name, e)) = interfaces
            .iter()
            .find_map(|i| i.error.as_ref().map(|e| (&i.name, e)))
        {
            loop_error = Some(Failure::Runtime(format!("{name}: {e}")));
            break;
        }
        if got == 0 {
            // Nothing more is ready: hand off what was read before waiting,
            // so no packet sits in a half-full batch while the capture
            // sleeps. While blocks keep coming, batches fill (and go) by
            // size: fewer, larger chunks, fewer consumer wake-ups.
            balancer.flush();
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
    // The block the kernel is filling is handed over when its retire
    // timer fires: wait that long (a few times over) for the last blocks,
    // at most one ring's worth of rounds so steady traffic cannot keep the
    // capture alive.
    let patience = Duration::from_millis(u64::from(ring.retire_ms) * 3 + 20);
    let mut quiet_since = Instant::now();
    for _ in 0..c.block_count.saturating_mul(2) {
        let got = read_round(
            &mut interfaces,
            &mut balancer,
            &mut frame,
            &mut merged,
            &mut captured,
            limit,
        );
        if got > 0 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= patience || captured >= limit {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(2));
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
/// indexed by `merged`: no allocation per packet). An interface's read
/// error is kept in [`Interface::error`] (the first one) and the others
/// are still read; packets past the `--count` limit are counted in
/// [`Interface::over_limit`].
fn read_round(
    interfaces: &mut [Interface],
    balancer: &mut Balancer,
    frame: &mut Vec<u8>,
    merged: &mut Vec<(i128, u32, Range<usize>)>,
    captured: &mut u64,
    limit: u64,
) -> usize {
    let mut got = 0;
    let single = interfaces.len() == 1;
    if !single {
        frame.clear();
    }
    for iface in interfaces.iter_mut() {
        let mut n_here = 0u64;
        let mut over = 0u64;
        let r = iface.socket.next_block(0, |p| {
            if *captured + n_here >= limit {
                over += 1;
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
        match r {
            Ok(n) => got += n,
            Err(e) => {
                iface.error.get_or_insert(e.to_string());
            }
        }
        iface.captured += n_here;
        iface.over_limit += over;
        *captured += n_here;
    }
    if !single && !merged.is_empty() {
        merged.sort_by_key(|m| m.0);
        for (ts, len, at) in merged.drain(..) {
            balancer.push(ts, len, LINKTYPE_ETHERNET, &frame[at]);
        }
    }
    got
}

/// Which threads write the outputs: the capture thread itself with
/// [`CaptureConfig::inline_sinks`]; else [`CaptureConfig::consumer_threads`],
/// or its default: when every app writes files or counts, one thread per
/// CPU but the one the capture thread keeps busy (at least one: the layout
/// `--pin` makes explicit); else one per queue, so a FIFO or TAP whose
/// reader lags holds up only its own queue.
fn consumers(c: &CaptureConfig) -> Consumers {
    if c.inline_sinks {
        return Consumers::Inline;
    }
    let threads = c.consumer_threads.unwrap_or_else(|| {
        if c.apps
            .iter()
            .all(|a| matches!(a.sink, SinkKind::Pcap | SinkKind::Count))
        {
            symrss_sys::cpu_count().saturating_sub(1).max(1)
        } else {
            0
        }
    });
    match threads {
        0 => Consumers::PerQueue,
        n => Consumers::Shared(n),
    }
}
