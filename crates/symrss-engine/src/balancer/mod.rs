//! The software balancer: packets in, every flow of every application on
//! one of its queues, each queue drained by a consumer thread (its own, or
//! one it shares with other queues) or by the steering thread itself
//! ([`Consumers`]).
//!
//! ```text
//!  push() ──▶ arena (copy once) ──▶ steering (per app: policy → RETA) ──▶
//!        per (app, queue): chunk { batch share, indices } ──▶ delivery ──▶ Sink
//! ```
//!
//! The data flow, one file per stage:
//!
//! * `arena.rs`: a packet is copied once into a batch; every app and
//!   queue that receives it gets an index into the shared batch;
//! * `steering.rs`: where each packet's queue is chosen (the same
//!   code `analyze` runs): policy, fragments following their first
//!   fragment, ICMP errors following the flow they quote, hash, RETA, and
//!   per-queue input order through the delay line;
//! * `affinity.rs`: per app, which queue each flow went to first
//!   (flow counts per queue, affinity violations);
//! * [`delivery`]: chunks to sinks over bounded channels (or inline), loss
//!   policy, the [`Sink`] trait;
//! * [`stats`]: the counters; per app, `received = delivered + Σ
//!   dropped[reason]` once finished; drops happen only at a full queue
//!   under [`LossPolicy::DropNewest`] or when a sink fails, and are
//!   counted per queue.
//!
//! Bounded memory: channels hold at most `ring_chunks` batches' worth of
//! descriptors per queue; the fragment hold, the delay line and the
//! affinity table are bounded. Time comes from packet timestamps only.

pub mod delivery;
pub mod stats;

use std::io;

pub use delivery::{FnSink, Sink, SinkError, ThreadHook, ThreadStartFn, Unwritten};
pub use stats::{AppStats, QueueStats};
use symrss_wire::Options;

use crate::affinity::FlowTable;
pub use crate::arena::PacketMeta;
use crate::arena::{Arena, Chunk};
use crate::frag::FragConfig;
use crate::policy::Policy;
pub use crate::steering::DissectErrors;
use crate::steering::{Seen, Steerer, Steering};
use delivery::{AppSinks, Delivery};

/// What happens at a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossPolicy {
    /// Wait for the consumer (back-pressure; the default for files).
    Lossless,
    /// Drop the newest packets and count them (the default for live capture).
    DropNewest,
}

/// One application: a name, its queues and how flows are steered to them.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Name (used for output directories and stats).
    pub name: String,
    /// Number of queues.
    pub queues: u32,
    /// Steering policy.
    pub policy: Policy,
    /// Full-queue behaviour.
    pub loss: LossPolicy,
}

/// Tuning.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Packets per batch (the unit of hand-off).
    pub batch_packets: usize,
    /// Bytes per batch arena.
    pub batch_bytes: usize,
    /// Chunks a queue's channel holds before the loss policy applies.
    pub ring_chunks: usize,
    /// Fragment tracker limits.
    pub frag: FragConfig,
    /// Most flows remembered per app for affinity accounting and per-queue
    /// flow counts (0 turns both off).
    pub max_flows: usize,
    /// Dissector options.
    pub dissect: Options,
    /// Run on each consumer thread at start (core pinning).
    pub on_consumer_start: Option<ThreadHook>,
    /// Which threads run the sinks.
    pub consumers: Consumers,
}

/// Which threads run the sinks. Whatever the choice, each queue has its
/// own sink, order and counters, and a failing sink fails only its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumers {
    /// Every (app, queue) has its own thread: a slow sink — a FIFO whose
    /// reader lags — holds up only its queue.
    PerQueue,
    /// N threads shared among all queues, queue k of the apps in order on
    /// thread k mod N: fewer wake-ups and context switches when queues
    /// outnumber cores. A queue's chunks wait in its thread's channel,
    /// which holds `ring_chunks` per queue it serves.
    Shared(usize),
    /// No consumer threads: the steering thread hands each chunk to its
    /// sink itself (run to completion). The least CPU per packet — no
    /// channel, no wake-ups, no packet crossing to another core — but one
    /// core does all the work, and a sink that blocks stalls the input
    /// (no queue is ever full, so the loss policy never applies).
    Inline,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            // Large batches amortise the hand-off: each chunk sent wakes a
            // consumer thread (measured: 256-packet batches cost ~30 ns
            // more per packet than 1024-packet ones, and 4096 another ~20 ns
            // less, BENCHMARKS.md).
            batch_packets: 4096,
            batch_bytes: 1 << 20,
            ring_chunks: 16,
            frag: FragConfig::default(),
            max_flows: 1 << 20,
            dissect: Options::default(),
            on_consumer_start: None,
            consumers: Consumers::PerQueue,
        }
    }
}

/// The running balancer.
pub struct Balancer {
    steerer: Steerer<FlowTable>,
    delivery: Delivery,
    names: Vec<String>,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("packets", &self.steerer.pushed())
            .finish()
    }
}

/// The balancer observes nothing beyond the decisions.
#[inline]
fn unobserved(_: u64, _: Seen<'_>) {}

impl Balancer {
    /// Starts the consumer threads (see [`EngineConfig::consumers`]);
    /// `sinks[a][q]` receives app `a`'s queue `q`.
    pub fn start(
        apps: Vec<(AppConfig, Vec<Box<dyn Sink>>)>,
        cfg: EngineConfig,
    ) -> io::Result<Self> {
        let mut cores = Vec::with_capacity(apps.len());
        let mut outs = Vec::with_capacity(apps.len());
        let mut names = Vec::with_capacity(apps.len());
        for (app, sinks) in apps {
            assert_eq!(sinks.len(), app.queues as usize, "one sink per queue");
            let table = FlowTable::new(app.queues.max(1) as usize, cfg.max_flows);
            cores.push(Steering::new(
                app.policy,
                app.queues,
                cfg.frag,
                cfg.dissect,
                table,
            ));
            outs.push(AppSinks {
                name: app.name.clone(),
                loss: app.loss,
                sinks,
            });
            names.push(app.name);
        }
        let delivery = Delivery::start(
            outs,
            cfg.consumers,
            cfg.ring_chunks,
            cfg.on_consumer_start.clone(),
        )?;
        let arena = Arena::new(
            cfg.batch_packets,
            cfg.batch_bytes,
            2 * cfg.ring_chunks.max(1) + 8,
        );
        Ok(Self {
            steerer: Steerer::new(arena, cores, cfg.dissect, cfg.frag),
            delivery,
            names,
        })
    }

    /// Takes one packet (copied into the current batch).
    pub fn push(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) {
        let outs = &mut self.delivery.apps;
        self.steerer.push(
            ts_ns,
            orig_len,
            linktype,
            data,
            &mut unobserved,
            &mut |a, q, chunk: Chunk| outs[a][q].send(chunk),
        );
    }

    /// Steers and hands off the packets pushed so far without waiting for
    /// a full batch (a live source calls this when its input goes quiet,
    /// so packets do not wait in a half-full batch).
    pub fn flush(&mut self) {
        let outs = &mut self.delivery.apps;
        self.steerer
            .flush(&mut unobserved, &mut |a, q, chunk| outs[a][q].send(chunk));
    }

    /// Counters while running: packets still in a channel are neither
    /// delivered nor dropped yet, so `received >= delivered + dropped`
    /// until [`Balancer::finish`], which makes it an equality. Packets not
    /// yet steered (fewer than 256, or a batch not yet flushed) are not yet
    /// received.
    pub fn snapshot(&self) -> Vec<AppStats> {
        (0..self.names.len()).map(|a| self.app_stats(a)).collect()
    }

    fn app_stats(&self, a: usize) -> AppStats {
        let core = &self.steerer.cores[a];
        let table = &core.account;
        AppStats {
            name: self.names[a].clone(),
            received: core.received,
            queues: self.delivery.apps[a]
                .iter()
                .zip(&table.per_queue)
                .map(|(out, &flows)| out.counters.stats(flows, out.dropped_queue_full))
                .collect(),
            non_ip: core.non_ip,
            affinity_violations: table.affinity_violations,
            flows_untracked: table.untracked,
            fragments: core.frag_stats(),
            sink_error: None,
            queue_errors: Vec::new(),
            dissect_errors: self.steerer.dissect_errors.clone(),
        }
    }

    /// Flushes, releases held fragments, closes the queues, waits for the
    /// consumers and returns the counters.
    pub fn finish(mut self) -> Vec<AppStats> {
        let outs = &mut self.delivery.apps;
        self.steerer
            .finish(&mut unobserved, &mut |a, q, chunk| outs[a][q].send(chunk));
        let errors = self.delivery.close();
        errors
            .into_iter()
            .enumerate()
            .map(|(a, errors)| {
                let mut st = self.app_stats(a);
                st.sink_error = errors
                    .iter()
                    .enumerate()
                    .find_map(|(q, e)| e.as_ref().map(|e| format!("{} queue {q}: {e}", st.name)));
                st.queue_errors = errors;
                st
            })
            .collect()
    }
}
