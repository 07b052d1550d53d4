//! The capture's checked settings: everything the configuration asks for,
//! validated before any socket, file or thread is opened, so a usage
//! error never leaves half-made outputs behind.

use std::collections::HashSet;
use std::time::Duration;

use symrss_engine::Policy;
use symrss_engine::balancer::{
    AppConfig, Consumers, EngineConfig, FLOW_IDLE_MAX_S, LossPolicy, MAX_FLOWS_LIMIT,
};
use symrss_engine::frag::FragConfig;
use symrss_pcap::Rotation;
use symrss_sinks::SinkKind;
use symrss_sys::bpf;
use symrss_sys::packet::RingConfig;

use super::config::{CaptureConfig, Loss, parse_size};
use super::{LINKTYPE_ETHERNET, SNAPLEN};
use crate::Failure;
use crate::outdir::{MAX_QUEUES, check_app_name, check_interface_names};

/// Most capture workers.
const MAX_WORKERS: usize = 256;

/// The default worker count: the interfaces' receive queues (the most of
/// any), at most the CPUs, at least one.
fn default_workers(interfaces: &[String]) -> usize {
    let queues = interfaces
        .iter()
        .map(|i| symrss_sys::rx_queue_count(i) as usize)
        .max()
        .unwrap_or(1);
    queues.min(symrss_sys::cpu_count()).max(1)
}

/// Longest `--duration`.
const MAX_DURATION_SECONDS: u64 = 1_000_000_000;

/// What the capture will do, checked.
#[derive(Debug)]
pub(super) struct Plan {
    /// One per `c.apps`, in order.
    pub(super) apps: Vec<AppConfig>,
    /// `--duration`.
    pub(super) duration: Option<Duration>,
    /// Pcap file rotation.
    pub(super) rotation: Rotation,
    /// The rings, with the compiled filter.
    pub(super) ring: RingConfig,
    /// The balancer's settings.
    pub(super) engine: EngineConfig,
    /// Capture workers.
    pub(super) workers: usize,
}

impl Plan {
    /// Checks `c`; every error is a usage error naming the setting.
    pub(super) fn validate(c: &CaptureConfig) -> Result<Self, Failure> {
        let usage = |m: String| Failure::Usage(m);
        if c.interfaces.is_empty() {
            return Err(usage("give at least one interface (-i IF)".into()));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = c.interfaces.iter().find(|i| !seen.insert(i.as_str())) {
            return Err(usage(format!(
                "interface {twice} given twice: its packets would be captured twice"
            )));
        }
        if c.inline_sinks && c.consumer_threads.is_some() {
            return Err(usage(
                "inline_sinks writes the outputs on the capture thread: consumer_threads does not apply"
                    .into(),
            ));
        }
        if !(1..=60_000).contains(&c.frag_hold_ms) {
            return Err(usage(format!(
                "frag hold {} ms: give 1..=60000",
                c.frag_hold_ms
            )));
        }
        if !(1..=FLOW_IDLE_MAX_S).contains(&c.flow_idle_s) {
            return Err(usage(format!(
                "flow idle {} s: give 1..={FLOW_IDLE_MAX_S}",
                c.flow_idle_s
            )));
        }
        if c.max_flows > MAX_FLOWS_LIMIT {
            return Err(usage(format!(
                "max flows {}: give at most {MAX_FLOWS_LIMIT} (0 turns the flow accounting off)",
                c.max_flows
            )));
        }
        if c.rotate.files == Some(0) {
            return Err(usage(
                "rotate files must be at least 1 (the number of files kept per queue)".into(),
            ));
        }
        let duration = c.duration.map(duration).transpose()?;
        let rotation = Rotation {
            max_bytes: c
                .rotate
                .size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(usage)?,
            max_packets: None,
            max_seconds: c.rotate.seconds,
            ring: c.rotate.files,
        };
        for (what, n) in [("xdp frames", c.xdp_frames), ("xdp ring", c.xdp_ring)] {
            if !(64..=1 << 20).contains(&n) || !n.is_power_of_two() {
                return Err(usage(format!(
                    "{what} {n}: give a power of two from 64 to 1048576"
                )));
            }
        }
        let apps = apps(c)?;
        let workers = match c.workers {
            Some(0) => return Err(usage("workers must be at least 1".into())),
            Some(n) if n > MAX_WORKERS => {
                return Err(usage(format!("workers {n}: at most {MAX_WORKERS}")));
            }
            Some(n) if n > 1 && c.apps.iter().any(|a| a.rebalance) => {
                return Err(usage(format!(
                    "workers {n}: an app that rebalances needs one steering worker (it must \
                     see every packet of a flow to keep the flow on its queue); give --workers 1"
                )));
            }
            Some(n) => n,
            // Inline sinks run on the one capture thread, and rebalancing
            // needs one steering worker.
            None if c.inline_sinks || c.apps.iter().any(|a| a.rebalance) => 1,
            None => default_workers(&c.interfaces),
        };
        if workers > 1 && c.inline_sinks {
            return Err(usage(
                "inline_sinks writes the outputs on the capture thread: give --workers 1".into(),
            ));
        }
        for i in &c.interfaces {
            let kind =
                std::fs::read_to_string(format!("/sys/class/net/{i}/type")).unwrap_or_default();
            if !kind.trim().is_empty() && kind.trim() != "1" {
                return Err(usage(format!(
                    "{i}: only Ethernet-type interfaces are supported (ARPHRD {})",
                    kind.trim()
                )));
            }
        }
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
        ring.validate().map_err(usage)?;
        let engine = EngineConfig {
            on_consumer_start: c.pin.then(|| crate::pinning::consumers_after(workers)),
            on_table_alloc: Some(symrss_sys::memory::advise_huge_pages),
            consumers: consumers(c, workers),
            frag: FragConfig {
                hold_ns: i128::from(c.frag_hold_ms) * 1_000_000,
                ..Default::default()
            },
            max_flows: c.max_flows,
            flow_idle_ns: c.flow_idle_s * 1_000_000_000,
            ..EngineConfig::default()
        };
        Ok(Self {
            apps,
            duration,
            rotation,
            ring,
            engine,
            workers,
        })
    }
}

/// `--duration` seconds as a duration.
fn duration(d: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(d)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() <= MAX_DURATION_SECONDS)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "duration {d}: give a positive number of seconds, at most \
                 {MAX_DURATION_SECONDS} (about 31 years)"
            ))
        })
}

/// Each app's name, queues and policy, checked.
fn apps(c: &CaptureConfig) -> Result<Vec<AppConfig>, Failure> {
    let layer = c.layer.hash_layer();
    let loss = match c.loss {
        Loss::Drop => LossPolicy::DropNewest,
        Loss::Lossless => LossPolicy::Lossless,
    };
    let mut names = HashSet::new();
    let mut configs = Vec::with_capacity(c.apps.len());
    for app in &c.apps {
        if !names.insert(app.name.as_str()) {
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
        if app.sink.makes_interfaces() {
            check_interface_names(&app.name, app.queues).map_err(Failure::Usage)?;
        }
        let mut policy = Policy::parse(&app.scheme, layer, c.seed)
            .map_err(|e| Failure::Usage(format!("app {}: {e}", app.name)))?;
        if app.rebalance {
            if c.max_flows == 0 {
                return Err(Failure::Usage(format!(
                    "app {} rebalances, which keeps each flow's queue in the flow table: \
                     max_flows 0 turns it off",
                    app.name
                )));
            }
            let cfg = c.rebalance.config(c.flow_idle_s * 1_000_000_000);
            policy = crate::rebalance_args::rebalance(policy, cfg)
                .map_err(|e| Failure::Usage(format!("app {}: {e}", app.name)))?;
        }
        configs.push(AppConfig {
            name: app.name.clone(),
            queues: app.queues,
            policy,
            loss,
        });
    }
    Ok(configs)
}

/// Which threads write the outputs: the capture thread itself with
/// [`CaptureConfig::inline_sinks`]; else [`CaptureConfig::consumer_threads`],
/// or its default: when every app writes files or counts, one thread per
/// CPU but those the capture workers keep busy (at least one: the layout
/// `--pin` makes explicit); when `veth` sinks are among them, one per CPU
/// (sending into a veth runs the reader's kernel receive work on the
/// sending thread, ~1 µs a packet here: one thread would be the
/// bottleneck; a veth never waits for its reader); else one per queue, so
/// a FIFO or TAP whose reader lags holds up only its own queue.
fn consumers(c: &CaptureConfig, workers: usize) -> Consumers {
    if c.inline_sinks {
        return Consumers::Inline;
    }
    let files_or_count = |k: SinkKind| matches!(k, SinkKind::Pcap | SinkKind::Count);
    let threads = c.consumer_threads.unwrap_or_else(|| {
        if c.apps.iter().all(|a| files_or_count(a.sink)) {
            symrss_sys::cpu_count().saturating_sub(workers).max(1)
        } else if c
            .apps
            .iter()
            .all(|a| files_or_count(a.sink) || a.sink == SinkKind::Veth)
        {
            symrss_sys::cpu_count().max(1)
        } else {
            0
        }
    });
    match threads {
        0 => Consumers::PerQueue,
        n => Consumers::Shared(n),
    }
}
