//! `symrss capture`: the live capture daemon. AF_PACKET TPACKET_V3 rings
//! on one or more interfaces → the balancer (every flow, both directions,
//! on one queue of each application) → per-queue sinks that unmodified
//! tools read: rotating pcap files, FIFOs streaming pcap, veth or TAP
//! interfaces, or an in-process counter.
//!
//! Stops on SIGINT/SIGTERM (or `--count`/`--duration`): drains the rings,
//! flushes and closes every output, prints tcpdump's summary and the
//! per-queue table. SIGHUP rotates the pcap files. The control socket
//! ([`crate::control`]: `stats`, `rotate`, `stop`) and systemd's
//! notification socket ([`symrss_sys::notify`]: READY, STATUS, WATCHDOG,
//! STOPPING) are served when present.
//!
//! Here: the workers (`--workers`; each a thread running the engine's
//! driver loop, [`symrss_engine::source::run`], over its own [`Rings`] —
//! one fanout member per interface: frames → its steering worker, the
//! `--count` limit, the hand-off, progress and wait when its rings are
//! idle — then the final drain), and on the main thread the deadline, a
//! stats snapshot every second (control socket, metrics, systemd status),
//! the watchdog, and the stats line and file on their interval. [`config`]: the
//! flags and the TOML file they mirror; [`plan`]: the checked settings
//! (every usage error is found before anything is opened); [`sinks`]: the
//! outputs (from `symrss-sinks`); [`report`]: stats line, JSON, Prometheus
//! and the final summary.

use std::fs::File;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use symrss_engine::balancer::{Collector, Worker, WorkerShare, start_workers};
use symrss_engine::source::{Frame, Poll, Source, Stage, run as run_source};
use symrss_sys::packet::{DROP_ALL, PacketSocket};
use symrss_sys::rings::Rings;
use symrss_sys::xdp::{XdpConfig, XdpProgram, XdpRings, XdpSocket};
use symrss_sys::{privileges, signals};

use crate::Failure;

mod config;
mod live;
mod plan;
mod report;
mod sinks;

pub use config::CaptureArgs;
use config::{CaptureConfig, SourceKind, effective_config};
use live::Live;
use plan::Plan;
use report::{Outlets, View, print_summary, publish, serve_prometheus, stats_line};
use sinks::make_sinks;
use symrss_sys::notify::Notifier;

const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;

/// Per interface, what the report shows: the kernel's counters and what
/// the capture took.
#[derive(Clone, Debug, Default)]
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
/// privileges), the workers (each the engine's driver loop over its share
/// of the rings, then the final drain), stats on their interval, and the
/// report.
pub fn run(a: &CaptureArgs) -> Result<ExitCode, Failure> {
    let c = effective_config(a)?;
    if a.print_config {
        let text = toml::to_string_pretty(&c).map_err(|e| Failure::Runtime(e.to_string()))?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::validate(&c)?;
    signals::install().map_err(|e| Failure::Runtime(format!("signal handlers: {e}")))?;
    let capture = setup(&c, plan)?;
    let Finished {
        interfaces,
        stats,
        captured,
        error,
    } = capture.run(&c)?;
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

/// Everything set up, before the workers start.
struct Capture {
    /// Per worker: its input.
    rings: Vec<Live>,
    /// AF_XDP: each interface's redirect program (detached when dropped,
    /// after the workers).
    programs: Vec<XdpProgram>,
    workers: Vec<Worker>,
    collector: Collector,
    stats_file: Option<File>,
    metrics: Arc<Mutex<String>>,
    /// The latest stats document, served on the control socket.
    state: Arc<Mutex<String>>,
    /// The control socket (removed when dropped, after the capture).
    _control: Option<crate::control::Server>,
    /// systemd, when it started us with `Type=notify`.
    notifier: Option<Notifier>,
    /// The "capturing on" line, also systemd's first status.
    banner: String,
    duration: Option<Duration>,
    retire_ms: u32,
}

/// The outcome of a capture.
struct Finished {
    interfaces: Vec<Interface>,
    stats: Vec<symrss_engine::balancer::AppStats>,
    captured: u64,
    error: Option<Failure>,
}

/// As root: the rings (with the filter attached before each socket is
/// bound, so nothing unfiltered is captured; with several workers each
/// interface's sockets form a fanout group, and take no packet until the
/// group is complete), the outputs; then the privilege drop and the
/// balancer's threads.
fn setup(c: &CaptureConfig, plan: Plan) -> Result<Capture, Failure> {
    let (rings, programs) = match c.source {
        SourceKind::Afpacket => (
            open_rings(c, &plan)?
                .into_iter()
                .map(Live::Packet)
                .collect(),
            Vec::new(),
        ),
        SourceKind::Afxdp => open_xdp(c, &plan)?,
    };
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
    let ids = match &c.user {
        Some(user) => Some(privileges::lookup(user).map_err(|e| Failure::Usage(e.to_string()))?),
        None => None,
    };
    let state = Arc::new(Mutex::new(String::from("{}")));
    let control = open_control(c, Arc::clone(&state), ids)?;
    if let Some(ids) = ids {
        for app in &c.apps {
            let dir = c.output_dir.join(&app.name);
            if dir.exists() {
                privileges::chown(&dir, ids)
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
            }
        }
        privileges::drop_to(ids).map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    let (collector, workers) = start_workers(with_sinks, plan.engine, plan.workers)
        .map_err(|e| Failure::Runtime(format!("starting consumer threads: {e}")))?;
    let metrics = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = &c.prometheus {
        serve_prometheus(addr, Arc::clone(&metrics))?;
    }
    let banner = format!(
        "capturing on {} ({} app(s): {}){}{}",
        c.interfaces.join(", "),
        c.apps.len(),
        c.apps
            .iter()
            .map(|a| format!("{}:{}:{}:{}", a.name, a.queues, a.scheme, a.sink.name()))
            .collect::<Vec<_>>()
            .join(" "),
        match (c.source, plan.workers) {
            (SourceKind::Afxdp, w) => format!(
                ", AF_XDP: {}, {w} worker(s)",
                programs
                    .iter()
                    .zip(&c.interfaces)
                    .map(|(p, i)| format!("{i} {:?} mode", p.mode()).to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (SourceKind::Afpacket, 1) => String::new(),
            (SourceKind::Afpacket, w) =>
                format!(", {w} workers (fanout {:?})", c.fanout).to_lowercase(),
        },
        c.filter
            .as_ref()
            .map_or(String::new(), |f| format!(", filter `{f}`"))
    );
    eprintln!("symrss: {banner}");
    Ok(Capture {
        rings,
        programs,
        workers,
        collector,
        stats_file,
        metrics,
        state,
        _control: control,
        notifier: Notifier::from_env(),
        banner,
        duration: plan.duration,
        retire_ms: plan.ring.retire_ms,
    })
}

/// Serves the control socket ([`crate::control`]) unless `--control none`.
/// The default socket is best effort (a capture run without the right to
/// write `/run/symrss` goes on without it, saying so); one given
/// explicitly must open.
fn open_control(
    c: &CaptureConfig,
    state: Arc<Mutex<String>>,
    owner: Option<privileges::UserIds>,
) -> Result<Option<crate::control::Server>, Failure> {
    let (path, explicit) = match c.control.as_deref() {
        Some("none") => return Ok(None),
        Some(p) => (std::path::PathBuf::from(p), true),
        None => (
            crate::control::default_path(c.config_file.as_deref()),
            false,
        ),
    };
    match crate::control::serve(&path, state, owner.map(|i| (i.uid, i.gid))) {
        Ok(server) => Ok(Some(server)),
        Err(e) if !explicit => {
            eprintln!("symrss: warning: {e}; going on without a control socket");
            Ok(None)
        }
        Err(e) => Err(Failure::Runtime(e)),
    }
}

/// Per worker, one ring per interface. With several workers, each
/// interface's sockets join one fanout group (the kernel picks its id),
/// holding a take-nothing filter until every member has joined, so no
/// packet reaches two workers; then the capture filter replaces it.
fn open_rings(c: &CaptureConfig, plan: &Plan) -> Result<Vec<Rings>, Failure> {
    let fail = |e: std::io::Error| Failure::Runtime(format!("capture: {e}"));
    let several = plan.workers > 1;
    let mut paused = plan.ring.clone();
    if several {
        paused.filter = DROP_ALL.to_vec();
    }
    let mut sockets: Vec<Vec<(String, PacketSocket)>> = Vec::with_capacity(plan.workers);
    for _ in 0..plan.workers {
        let mut mine = Vec::with_capacity(c.interfaces.len());
        for name in &c.interfaces {
            mine.push((
                name.clone(),
                PacketSocket::open(name, &paused).map_err(fail)?,
            ));
        }
        sockets.push(mine);
    }
    if several {
        let mode = c.fanout.mode();
        for i in 0..c.interfaces.len() {
            let group = sockets[0][i].1.fanout_new_group(mode).map_err(fail)?;
            for mine in &sockets[1..] {
                mine[i].1.fanout(group, mode).map_err(fail)?;
            }
        }
        for (_, socket) in sockets.iter().flatten() {
            socket.set_filter(&plan.ring.filter).map_err(fail)?;
        }
    }
    Ok(sockets.into_iter().map(Rings::new).collect())
}

/// AF_XDP: per interface the redirect program; per worker one socket on
/// every receive queue it owns (queues `w`, `w + workers`, …, of each
/// interface), so every queue has a reader (a queue without one would
/// pass its packets to the kernel stack, uncaptured).
fn open_xdp(c: &CaptureConfig, plan: &Plan) -> Result<(Vec<Live>, Vec<XdpProgram>), Failure> {
    // (What was attached is shown on the "capturing on" line.)
    let fail = |e: std::io::Error| Failure::Runtime(format!("capture (AF_XDP): {e}"));
    let cfg = XdpConfig {
        bind: c.xdp_bind.bind(),
        frames: c.xdp_frames,
        rx_ring: c.xdp_ring,
        ..XdpConfig::default()
    };
    let mut programs = Vec::with_capacity(c.interfaces.len());
    let mut per_worker: Vec<Vec<(String, XdpSocket)>> =
        (0..plan.workers).map(|_| Vec::new()).collect();
    for name in &c.interfaces {
        let queues = symrss_sys::rx_queue_count(name);
        let program = XdpProgram::attach(name, queues, c.xdp_mode.mode()).map_err(fail)?;
        for q in 0..queues {
            let socket = XdpSocket::open(name, q, &cfg).map_err(fail)?;
            program.register(q, &socket).map_err(fail)?;
            per_worker[q as usize % plan.workers].push((format!("{name}:q{q}"), socket));
        }
        programs.push(program);
    }
    let live = per_worker
        .into_iter()
        .map(|sockets| Live::Xdp(XdpRings::new(sockets, plan.ring.filter.clone())))
        .collect();
    Ok((live, programs))
}

/// What each worker publishes for the stats while it runs.
#[derive(Debug, Default)]
struct Published {
    share: WorkerShare,
    interfaces: Vec<Interface>,
    cpu_ns: u64,
}

/// One worker's row in the stats: what its sockets received and the
/// kernel dropped, and its thread's CPU time.
#[derive(Clone, Copy, Debug, Default)]
struct WorkerRow {
    received: u64,
    drops: u64,
    cpu_ns: u64,
}

impl Published {
    fn row(&self) -> WorkerRow {
        WorkerRow {
            received: self
                .interfaces
                .iter()
                .map(|i| i.captured + i.over_limit)
                .sum(),
            drops: self.interfaces.iter().map(|i| i.drops).sum(),
            cpu_ns: self.cpu_ns,
        }
    }
}

/// What the workers share: the `--count` limit and the packets taken
/// (counted in one atomic only when several workers share the limit).
#[derive(Debug)]
struct Taken {
    limit: u64,
    count: AtomicU64,
    shared: bool,
}

impl Capture {
    /// Runs the workers on their threads; this thread keeps the deadline
    /// and the stats interval until every worker has stopped (a stop
    /// request, `--count`, an interface error), then collects.
    fn run(self, c: &CaptureConfig) -> Result<Finished, Failure> {
        let Capture {
            rings,
            programs,
            workers,
            collector,
            mut stats_file,
            metrics,
            state,
            _control,
            notifier,
            banner,
            duration,
            retire_ms,
        } = self;
        let taken = Arc::new(Taken {
            limit: c.count.unwrap_or(u64::MAX),
            count: AtomicU64::new(0),
            shared: workers.len() > 1,
        });
        let published: Vec<Arc<Mutex<Published>>> =
            workers.iter().map(|_| Arc::default()).collect();
        let started = Instant::now();
        let cpus = symrss_sys::cpu_count();
        let mut handles = Vec::with_capacity(workers.len());
        // Each worker says when it is done, so this thread sleeps until
        // then or its next stats line or deadline: no periodic wake-ups
        // (each cost a context switch on a busy core).
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        for (w, (worker, mut rings)) in workers.into_iter().zip(rings).enumerate() {
            let done_tx = done_tx.clone();
            let mut stage = WorkerStage {
                worker,
                taken: Arc::clone(&taken),
                local: 0,
                over_limit: vec![0; rings.inputs().len()],
                idle_slack_ns: i64::from(retire_ms) * 2_000_000 + 20_000_000,
                published: Arc::clone(&published[w]),
                next_publish: started,
                cpu_start: 0,
                busy: false,
                error: None,
            };
            // Worker w's first receive queue is w (AF_XDP, fanout qm): on
            // its IRQ's CPU when the driver names it; else CPU w.
            let queue_cpu = (c.source == SourceKind::Afxdp || c.fanout == config::FanoutMode::Qm)
                .then(|| symrss_sys::queue_irq_cpu(&c.interfaces[0], w as u32))
                .flatten();
            let cpu = queue_cpu.unwrap_or(w % cpus);
            let (pin, block_count) = (c.pin, c.block_count);
            let handle = std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || {
                    if pin && let Err(e) = symrss_sys::pin_current_thread(cpu) {
                        eprintln!("symrss: warning: cannot pin worker {w} to CPU {cpu}: {e}");
                    }
                    let cpu = symrss_sys::thread_cpu_ns();
                    stage.cpu_start = cpu;
                    run_source(&mut rings, &mut stage);
                    drain(&mut rings, &mut stage, block_count, retire_ms);
                    rings.read_kernel_stats();
                    let share = stage.worker.finish();
                    let done = Published {
                        share,
                        interfaces: interface_rows(&rings, &stage.over_limit),
                        cpu_ns: symrss_sys::thread_cpu_ns() - cpu,
                    };
                    let _ = done_tx.send(());
                    (done, stage.error)
                })
                .map_err(|e| Failure::Runtime(format!("starting a worker: {e}")))?;
            handles.push(handle);
        }
        let mut deadline = duration.and_then(|d| started.checked_add(d));
        // Every second the stats document (control socket), the metrics
        // and systemd's status are refreshed, from the start; the stderr
        // line and the --stats-json file at the stats interval.
        const TICK: Duration = Duration::from_secs(1);
        let interval = Duration::from_secs(c.stats_interval.max(1));
        let mut next_tick = started;
        let mut next_stats = started + interval;
        let watchdog = notifier.as_ref().and_then(Notifier::watchdog_interval);
        let mut next_watchdog = started;
        if let Some(n) = &notifier {
            n.ready(&banner);
        }
        let mut error = None;
        let mut finished = 0;
        while finished < handles.len() && !handles.iter().all(|h| h.is_finished()) {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                signals::request_stop();
                deadline = None;
            }
            if let (Some(w), Some(n)) = (watchdog, &notifier)
                && now >= next_watchdog
            {
                n.watchdog();
                next_watchdog = now + w;
            }
            if now >= next_tick {
                next_tick = now + TICK;
                let line_due = now >= next_stats;
                if line_due {
                    next_stats = now + interval;
                }
                let (interfaces, rows, shares) = {
                    let latest: Vec<_> = published
                        .iter()
                        .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()))
                        .collect();
                    gather(latest.iter().map(|p| &**p))
                };
                let snap = collector.stats(&shares);
                let captured = interfaces.iter().map(|i| i.captured).sum();
                let line = stats_line(started, &interfaces, &snap);
                if line_due && c.stats_interval > 0 {
                    eprintln!("{line}");
                }
                if let Some(n) = &notifier {
                    n.status(line.trim_start_matches("symrss: "));
                }
                let view = View {
                    interfaces: &interfaces,
                    workers: &rows,
                    apps: &snap,
                    captured,
                };
                let out = Outlets {
                    stats_file: &mut stats_file,
                    metrics: &metrics,
                    state: &state,
                };
                if let Err(e) = publish(out, c, started, view, line_due) {
                    error.get_or_insert(e);
                    signals::request_stop();
                }
            }
            let mut wake = next_tick;
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            if watchdog.is_some() {
                wake = wake.min(next_watchdog);
            }
            let wait = wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            if done_rx.recv_timeout(wait).is_ok() {
                finished += 1;
            }
        }
        if let Some(n) = &notifier {
            n.stopping();
        }
        let mut done = Vec::with_capacity(handles.len());
        for h in handles {
            let (p, e) = h
                .join()
                .map_err(|_| Failure::Runtime("a capture worker panicked".into()))?;
            done.push(p);
            if let Some(e) = e {
                error.get_or_insert(Failure::Runtime(e));
            }
        }
        // Every worker is done: the XDP programs come off the interfaces.
        drop(programs);
        let (interfaces, rows, shares) = gather(done.iter());
        let captured = interfaces.iter().map(|i| i.captured).sum();
        let stats = collector.finish(shares);
        let view = View {
            interfaces: &interfaces,
            workers: &rows,
            apps: &stats,
            captured,
        };
        let out = Outlets {
            stats_file: &mut stats_file,
            metrics: &metrics,
            state: &state,
        };
        publish(out, c, started, view, true)?;
        Ok(Finished {
            interfaces,
            stats,
            captured,
            error,
        })
    }
}

/// The workers' counters: interface rows summed over workers, each
/// worker's row, and each worker's share.
fn gather<'a>(
    published: impl Iterator<Item = &'a Published>,
) -> (Vec<Interface>, Vec<WorkerRow>, Vec<WorkerShare>) {
    let mut interfaces = Vec::new();
    let mut rows = Vec::new();
    let mut shares = Vec::new();
    for p in published {
        interfaces.push(p.interfaces.clone());
        rows.push(p.row());
        shares.push(p.share.clone());
    }
    (sum_rows(interfaces), rows, shares)
}

/// Per interface, the sum of the workers' rows (by name: an AF_PACKET
/// worker has one socket per interface, an AF_XDP one a socket per queue
/// it owns, `IF:q<N>`), in the order interfaces first appear.
fn sum_rows(rows: Vec<Vec<Interface>>) -> Vec<Interface> {
    let mut total: Vec<Interface> = Vec::new();
    for mut r in rows.into_iter().flatten() {
        if let Some((interface, _)) = r.name.rsplit_once(":q") {
            r.name = interface.to_string();
        }
        match total.iter_mut().find(|t| t.name == r.name) {
            Some(t) => {
                t.received += r.received;
                t.drops += r.drops;
                t.captured += r.captured;
                t.over_limit += r.over_limit;
            }
            None => total.push(r),
        }
    }
    total
}

/// After the loop: the block the kernel is filling is handed over when
/// its retire timer fires, so wait that long (a few times over) for the
/// last blocks, at most one ring's worth of rounds so steady traffic
/// cannot keep the capture alive.
fn drain(rings: &mut Live, stage: &mut WorkerStage, block_count: u32, retire_ms: u32) {
    let patience = Duration::from_millis(u64::from(retire_ms) * 3 + 20);
    let mut quiet_since = Instant::now();
    for _ in 0..block_count.saturating_mul(2) {
        match rings.poll(&mut |f| stage.frame(f)) {
            Poll::Ready(_) => quiet_since = Instant::now(),
            _ if quiet_since.elapsed() >= patience || stage.reached() => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// One worker's side of the driver loop: every frame to its steering (up
/// to `--count` over all workers), its counters published for the stats,
/// and when its rings have nothing ready a hand-off, a promise of
/// progress to the other workers, and a wait.
struct WorkerStage {
    worker: Worker,
    taken: Arc<Taken>,
    /// Packets taken, when this is the only worker.
    local: u64,
    /// Per interface: frames read past the `--count` limit (the rest of
    /// what the source handed over was captured).
    over_limit: Vec<u64>,
    /// How far behind the wall clock a packet still in a ring can be (its
    /// block not yet retired).
    idle_slack_ns: i64,
    published: Arc<Mutex<Published>>,
    next_publish: Instant,
    /// The thread's CPU time when it started.
    cpu_start: u64,
    /// Frames came since the last idle round.
    busy: bool,
    /// What ended the run early (an interface or poll error).
    error: Option<String>,
}

impl WorkerStage {
    /// Takes one packet if `--count` allows.
    #[inline]
    fn take(&mut self) -> bool {
        let t = &self.taken;
        if t.limit == u64::MAX {
            true
        } else if t.shared {
            t.count.fetch_add(1, Ordering::Relaxed) < t.limit
        } else {
            self.local += 1;
            self.local <= t.limit
        }
    }

    /// Whether `--count` packets were taken (by all workers).
    fn reached(&self) -> bool {
        let t = &self.taken;
        t.limit != u64::MAX
            && if t.shared {
                t.count.load(Ordering::Relaxed) >= t.limit
            } else {
                self.local >= t.limit
            }
    }

    /// Every quarter second: the counters for the stats thread.
    fn publish(&mut self, rings: &mut Live) {
        let now = Instant::now();
        if now < self.next_publish {
            return;
        }
        self.next_publish = now + Duration::from_millis(250);
        rings.read_kernel_stats();
        let p = Published {
            share: self.worker.share(),
            interfaces: interface_rows(rings, &self.over_limit),
            cpu_ns: symrss_sys::thread_cpu_ns() - self.cpu_start,
        };
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

impl Stage<Live> for WorkerStage {
    #[inline]
    fn frame(&mut self, f: Frame<'_>) {
        if !self.take() {
            self.over_limit[f.input] += 1;
            return;
        }
        self.worker.push(f.ts_ns, f.orig_len, f.linktype, f.data);
    }

    fn polled(&mut self, rings: &mut Live) {
        self.busy = true;
        self.publish(rings);
    }

    fn idle(&mut self, rings: &mut Live) {
        if std::mem::take(&mut self.busy) {
            // Frames just came: wait a moment before handing off a
            // half-full batch (an AF_XDP socket wakes for every frame; a
            // hand-off per wake-up would wake a consumer per packet).
            if let Err(e) = rings.wait(1) {
                self.error.get_or_insert(format!("poll: {e}"));
            }
            return;
        }
        // Nothing more is ready: hand off what was read before waiting, so
        // no packet sits in a half-full batch while the capture sleeps,
        // and tell the other workers (and the queues' merge) that nothing
        // older than the ring's retire delay can still come from here.
        // While blocks keep coming, batches fill (and go) by size.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        self.worker.advance(now - self.idle_slack_ns);
        self.publish(rings);
        if let Err(e) = rings.wait(100) {
            self.error.get_or_insert(format!("poll: {e}"));
        }
    }

    fn stop(&mut self, rings: &Live) -> bool {
        if self.error.is_none()
            && let Some(i) = rings.inputs().iter().find(|i| i.error.is_some())
        {
            let e = i.error.as_deref().unwrap_or_default();
            self.error = Some(format!("{}: {e}", i.name));
        }
        if self.error.is_some() {
            // One worker's interface went away: the capture ends.
            signals::request_stop();
            return true;
        }
        self.reached() || signals::stop_requested()
    }
}

/// The report rows: the rings' kernel counters beside what was taken
/// (what each ring handed over, less what was past the limit).
fn interface_rows(rings: &Live, over_limit: &[u64]) -> Vec<Interface> {
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
