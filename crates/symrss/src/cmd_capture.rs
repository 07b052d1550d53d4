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
//! Here: the capture's stage of the engine's driver loop
//! ([`symrss_engine::source::run`] over [`Rings`]: frames → balancer, the
//! `--count` limit, stats on their interval, the deadline, the hand-off
//! and wait when the rings are idle) and the final drain. [`config`]: the
//! flags and the TOML file they mirror; [`plan`]: the checked settings
//! (every usage error is found before anything is opened); [`sinks`]: the
//! outputs (from `symrss-sinks`); [`report`]: stats line, JSON, Prometheus
//! and the final summary.

use std::fs::File;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use symrss_engine::balancer::Balancer;
use symrss_engine::source::{Frame, Poll, Source, Stage, run as run_source};
use symrss_sys::packet::PacketSocket;
use symrss_sys::rings::Rings;
use symrss_sys::{privileges, signals};

use crate::Failure;

mod config;
mod plan;
mod report;
mod sinks;

pub use config::CaptureArgs;
use config::{CaptureConfig, effective_config};
use plan::Plan;
use report::{print_summary, publish, serve_prometheus, stats_line};
use sinks::make_sinks;

const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// Per interface, what the report shows: the kernel's counters and what
/// the capture took.
struct Interface {
    name: String,
    /// Received by the kernel's filter (PACKET_STATISTICS).
    received: u64,
    /// Dropped by the kernel (ring full).
    drops: u64,
    captured: u64,
    /// Packets read from the ring past the `--count` limit (not captured,
    /// like tcpdump -c).
    over_limit: u64,
}

impl Interface {
    /// Packets the kernel's filter passed that were neither captured, nor
    /// dropped by the kernel, nor past the `--count` limit: still in the
    /// ring when the capture ended (counted as a drop in the summary).
    fn unread(&self) -> u64 {
        self.received
            .saturating_sub(self.drops + self.captured + self.over_limit)
    }
}

/// Runs `symrss capture`: the validated plan, the setup (rings, outputs,
/// privileges), the engine's driver loop over the rings, the final drain
/// and the report.
pub fn run(a: &CaptureArgs) -> Result<ExitCode, Failure> {
    let c = effective_config(a)?;
    if a.print_config {
        let text = toml::to_string_pretty(&c).map_err(|e| Failure::Runtime(e.to_string()))?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::validate(&c)?;
    signals::install().map_err(|e| Failure::Runtime(format!("signal handlers: {e}")))?;
    let (mut rings, mut stage) = setup(&c, plan)?;
    // A stop request, a capture error (an interface went away) or a stats
    // error ends the run; then what the rings hold is drained and steered,
    // written and counted before anything is reported.
    run_source(&mut rings, &mut stage);
    drain(&mut rings, &mut stage, &c);
    rings.read_kernel_stats();
    let CaptureStage {
        balancer,
        captured,
        over_limit,
        mut stats_file,
        metrics,
        error,
        started,
        ..
    } = stage;
    let interfaces = interface_rows(&rings, &over_limit);
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
    if let Some(e) = error {
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

/// As root: the rings (with the filter attached before each socket is
/// bound, so nothing unfiltered is captured) and the outputs; then the
/// privilege drop, pinning and the balancer's threads.
fn setup<'c>(c: &'c CaptureConfig, plan: Plan) -> Result<(Rings, CaptureStage<'c>), Failure> {
    let mut sockets = Vec::with_capacity(c.interfaces.len());
    for name in &c.interfaces {
        let socket = PacketSocket::open(name, &plan.ring)
            .map_err(|e| Failure::Runtime(format!("capture: {e}")))?;
        sockets.push((name.clone(), socket));
    }
    let rings = Rings::new(sockets);
    let mut with_sinks = Vec::with_capacity(plan.apps.len());
    for (app, cfg) in c.apps.iter().zip(plan.apps) {
        with_sinks.push((cfg, make_sinks(c, app, plan.rotation)?));
    }
    let stats_file = match &c.stats_json {
        Some(p) => {
            Some(symrss_pcap::create_output(p).map_err(|e| Failure::Runtime(e.to_string()))?)
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
    let balancer = Balancer::start(with_sinks, plan.engine)
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
    let stage = CaptureStage {
        balancer,
        limit: c.count.unwrap_or(u64::MAX),
        captured: 0,
        over_limit: vec![0; c.interfaces.len()],
        deadline: plan.duration.and_then(|d| started.checked_add(d)),
        started,
        next_stats: started + Duration::from_secs(c.stats_interval.max(1)),
        c,
        stats_file,
        metrics,
        error: None,
        retire_ms: plan.ring.retire_ms,
    };
    Ok((rings, stage))
}

/// After the loop: the block the kernel is filling is handed over when
/// its retire timer fires, so wait that long (a few times over) for the
/// last blocks, at most one ring's worth of rounds so steady traffic
/// cannot keep the capture alive.
fn drain(rings: &mut Rings, stage: &mut CaptureStage<'_>, c: &CaptureConfig) {
    let patience = Duration::from_millis(u64::from(stage.retire_ms) * 3 + 20);
    let mut quiet_since = Instant::now();
    for _ in 0..c.block_count.saturating_mul(2) {
        match rings.poll(&mut |f| stage.frame(f)) {
            Poll::Ready(_) => quiet_since = Instant::now(),
            _ if quiet_since.elapsed() >= patience || stage.captured >= stage.limit => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The capture's side of the driver loop: every frame to the balancer (up
/// to `--count`), the stats line, JSON and Prometheus text on their
/// interval, the `--duration` deadline, a hand-off and a wait when the
/// rings have nothing ready.
struct CaptureStage<'a> {
    balancer: Balancer,
    limit: u64,
    captured: u64,
    /// Per interface: frames read past the `--count` limit (the rest of
    /// what the source handed over was captured).
    over_limit: Vec<u64>,
    deadline: Option<Instant>,
    started: Instant,
    next_stats: Instant,
    c: &'a CaptureConfig,
    stats_file: Option<File>,
    metrics: Arc<Mutex<String>>,
    /// What ended the run early (an interface error, a poll or stats
    /// error).
    error: Option<Failure>,
    /// The rings' block retire timeout (how long the final drain waits).
    retire_ms: u32,
}

impl CaptureStage<'_> {
    /// The deadline and the stats interval.
    fn tick(&mut self, rings: &mut Rings) {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            signals::request_stop();
        }
        if now < self.next_stats {
            return;
        }
        self.next_stats = now + Duration::from_secs(self.c.stats_interval.max(1));
        rings.read_kernel_stats();
        let interfaces = interface_rows(rings, &self.over_limit);
        let snap = self.balancer.snapshot();
        if self.c.stats_interval > 0 {
            eprintln!("{}", stats_line(self.started, &interfaces, &snap));
        }
        if let Err(e) = publish(
            &mut self.stats_file,
            self.c,
            &self.metrics,
            self.started,
            &interfaces,
            &snap,
            self.captured,
        ) {
            self.error.get_or_insert(e);
        }
    }
}

impl Stage<Rings> for CaptureStage<'_> {
    #[inline]
    fn frame(&mut self, f: Frame<'_>) {
        if self.captured >= self.limit {
            self.over_limit[f.input] += 1;
            return;
        }
        self.captured += 1;
        self.balancer.push(f.ts_ns, f.orig_len, f.linktype, f.data);
    }

    fn polled(&mut self, rings: &mut Rings) {
        self.tick(rings);
    }

    fn idle(&mut self, rings: &mut Rings) {
        // Nothing more is ready: hand off what was read before waiting, so
        // no packet sits in a half-full batch while the capture sleeps.
        // While blocks keep coming, batches fill (and go) by size: fewer,
        // larger chunks, fewer consumer wake-ups.
        self.balancer.flush();
        self.tick(rings);
        if let Err(e) = rings.wait(100) {
            self.error
                .get_or_insert(Failure::Runtime(format!("poll: {e}")));
        }
    }

    fn stop(&mut self, rings: &Rings) -> bool {
        if self.error.is_none()
            && let Some(i) = rings.inputs().iter().find(|i| i.error.is_some())
        {
            let e = i.error.as_deref().unwrap_or_default();
            self.error = Some(Failure::Runtime(format!("{}: {e}", i.name)));
        }
        self.error.is_some() || self.captured >= self.limit || signals::stop_requested()
    }
}

/// The report rows: the rings' kernel counters beside what was taken
/// (what each ring handed over, less what was past the limit).
fn interface_rows(rings: &Rings, over_limit: &[u64]) -> Vec<Interface> {
    rings
        .inputs()
        .iter()
        .zip(rings.kernel_counters())
        .zip(over_limit)
        .map(|((i, &(received, drops)), &over_limit)| Interface {
            name: i.name.clone(),
            received,
            drops,
            captured: i.frames - over_limit,
            over_limit,
        })
        .collect()
}
