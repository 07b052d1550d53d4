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
//! Bounded memory: a consumer thread's channel holds at most `ring_chunks`
//! hand-offs (batches' worth of descriptors) per worker; the fragment
//! hold, the delay line and the flow table are bounded. Time comes from
//! packet timestamps only.

pub mod delivery;
pub mod hot;
mod merge;
pub mod stats;

use std::io;
use std::sync::Arc;

pub use delivery::{FnSink, Sink, SinkError, ThreadHook, ThreadStartFn, Unwritten};
pub use hot::HotFlow;
pub use stats::{AppStats, QueueStats, TableStats};

pub use crate::rebalance::RebalanceStats;
use symrss_wire::Options;

pub use crate::arena::PacketMeta;
use crate::arena::{Arena, Chunk};
use crate::flowtable::FlowTable;
use crate::frag::{FragConfig, FragStats};
use crate::policy::Policy;
pub use crate::steering::DissectErrors;
use crate::steering::{Seen, Steerer, Steering};
use crate::workers::Shared;
use delivery::{AppSinks, ConsumerThreads, Outs};

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

/// The largest `max_flows` the front ends accept (the table then takes up
/// to 4 GiB of 32-byte slots per steering worker).
pub const MAX_FLOWS_LIMIT: usize = 1 << 26;

/// The longest flow idle timeout the front ends accept (seconds: a day).
pub const FLOW_IDLE_MAX_S: u64 = 86_400;

/// Tuning.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Packets per batch (the unit of hand-off).
    pub batch_packets: usize,
    /// Bytes per batch arena.
    pub batch_bytes: usize,
    /// Hand-offs (one batch's chunks for a consumer thread's queues) a
    /// consumer thread's channel holds per worker before the loss policy
    /// applies.
    pub ring_chunks: usize,
    /// Fragment tracker limits.
    pub frag: FragConfig,
    /// Most flows remembered at once (per worker, for all apps together)
    /// for affinity accounting and per-queue flow counts (0 turns both
    /// off). The flow table takes up to `next_pow2(2 × max_flows)` slots
    /// of 16 bytes (up to 2 apps; 32 up to 10 apps, else 64).
    pub max_flows: usize,
    /// A flow idle this long (packet time) is forgotten; an ended TCP flow
    /// (RST, or FIN both ways) after ~2 s.
    pub flow_idle_ns: u64,
    /// Dissector options.
    pub dissect: Options,
    /// Run on each consumer thread at start (core pinning).
    pub on_consumer_start: Option<ThreadHook>,
    /// Which threads run the sinks.
    pub consumers: Consumers,
    /// Called on the flow table's memory each time it is allocated, before
    /// first use: `symrss_sys::memory::advise_huge_pages`, so lookups at
    /// random over a large table do not each miss the TLB (the engine
    /// makes no OS calls itself).
    pub on_table_alloc: Option<fn(&mut [u64]) -> bool>,
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
    /// which holds `ring_chunks` hand-offs per worker (each hand-off is
    /// one message with a chunk for each of the thread's queues).
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
            flow_idle_ns: 300_000_000_000,
            dissect: Options::default(),
            on_consumer_start: None,
            on_table_alloc: None,
            consumers: Consumers::PerQueue,
        }
    }
}

/// One worker's share of the counters: what its steering counted and
/// what it dropped at full queues (the sinks' counts are the consumers').
#[derive(Clone, Debug, Default)]
pub struct WorkerShare {
    apps: Vec<AppShare>,
    dissect_errors: DissectErrors,
    table: TableStats,
    /// Per app, per queue: the first error of a sink this worker ran
    /// inline.
    inline_errors: Vec<Vec<Option<String>>>,
}

#[derive(Clone, Debug, Default)]
struct AppShare {
    received: u64,
    non_ip: u64,
    affinity_violations: u64,
    packets_untracked: u64,
    fragments: FragStats,
    /// Per queue.
    flows: Vec<u64>,
    dropped_queue_full: Vec<u64>,
    rebalance: Option<RebalanceStats>,
}

/// One steering worker: its input (in time order) in, every flow of every
/// application on one of its queues. Several workers feed the same
/// queues ([`start_workers`]); each queue merges them in time order, and a
/// packet's queue does not depend on which worker it reached (later
/// fragments follow their first fragment across workers, see the
/// `workers` module). A worker is `Send`: each runs on its own thread.
pub struct Worker {
    steerer: Steerer<FlowTable>,
    outs: Outs,
    workers: usize,
    /// The watermark sent with chunks (updated after each hand-off).
    watermark: i64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("packets", &self.steerer.pushed())
            .finish()
    }
}

/// The balancer observes nothing beyond the decisions.
#[inline]
fn unobserved(_: u64, _: Seen<'_>) {}

impl Worker {
    /// Takes one packet (copied into the current batch). With several
    /// workers, each worker's packets must come in time order.
    #[inline]
    pub fn push(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) {
        let outs = &mut self.outs;
        let handed_off = self.steerer.push(
            ts_ns,
            orig_len,
            linktype,
            data,
            &mut unobserved,
            &mut |a, q, chunk: Chunk| outs.send(a, q, chunk),
        );
        if handed_off {
            self.post();
        }
    }

    /// Steers and hands off the packets pushed so far without waiting for
    /// a full batch (a live source calls this when its input goes quiet,
    /// so packets do not wait in a half-full batch).
    pub fn flush(&mut self) {
        let outs = &mut self.outs;
        self.steerer
            .flush(&mut unobserved, &mut |a, q, chunk| outs.send(a, q, chunk));
        self.post();
    }

    /// A live input that went quiet: flushes, and promises that no packet
    /// older than `ts_ns` will come (the other workers' held fragments and
    /// the queues' merge go on past it).
    pub fn advance(&mut self, ts_ns: i64) {
        self.flush();
        self.steerer.advance(ts_ns);
        self.post();
    }

    /// After a hand-off: sends the chunks collected, one parcel per
    /// consumer thread. With several workers each parcel carries the
    /// worker's watermark after them (no packet it sends later is older),
    /// and a thread that got no chunk still gets the watermark (its merges
    /// may be waiting for it).
    fn post(&mut self) {
        let ticks = self.workers > 1;
        if ticks {
            self.watermark = self.steerer.watermark();
        }
        self.outs.post(self.watermark, ticks);
    }

    /// This worker's counters so far (rebalancing's windows one by one
    /// only at [`Worker::finish`]).
    pub fn share(&self) -> WorkerShare {
        self.share_with(false)
    }

    fn share_with(&self, windows: bool) -> WorkerShare {
        WorkerShare {
            apps: self
                .steerer
                .cores
                .iter()
                .zip(self.outs.dropped_queue_full())
                .zip(&self.steerer.account.apps)
                .map(|((core, dropped_queue_full), flows)| AppShare {
                    received: core.received,
                    non_ip: core.non_ip,
                    affinity_violations: flows.affinity_violations,
                    packets_untracked: flows.untracked,
                    fragments: core.frag_stats(),
                    flows: flows.per_queue.clone(),
                    dropped_queue_full,
                    rebalance: core.rebalance_stats(windows),
                })
                .collect(),
            dissect_errors: self.steerer.dissect_errors.clone(),
            table: self.steerer.account.stats(),
            inline_errors: Vec::new(),
        }
    }

    /// End of this worker's input: flushes, lets its held fragments wait
    /// for the other workers (see the `workers` module), hands off
    /// everything, closes its side of the queues; returns its counters.
    pub fn finish(mut self) -> WorkerShare {
        let outs = &mut self.outs;
        self.steerer
            .finish(&mut unobserved, &mut |a, q, chunk| outs.send(a, q, chunk));
        self.post();
        if self.workers > 1 {
            // The last word to every consumer: nothing more will come.
            self.outs.tick(i64::MAX);
        }
        let mut share = self.share_with(true);
        share.inline_errors = self.outs.close();
        share
    }
}

/// The consumer side of a balancer: the threads that run the sinks and
/// every queue's counters.
#[derive(Debug)]
pub struct Collector {
    consumers: ConsumerThreads,
    names: Vec<String>,
}

impl Collector {
    /// The counters of the whole balancer from its workers' shares: while
    /// running, packets still in a channel are neither delivered nor
    /// dropped yet, so `received >= delivered + dropped`.
    pub fn stats(&self, shares: &[WorkerShare]) -> Vec<AppStats> {
        let mut dissect_errors = DissectErrors::default();
        let mut flow_table = TableStats::default();
        for s in shares {
            flow_table.add(&s.table);
            dissect_errors.count += s.dissect_errors.count;
            if dissect_errors.first.is_none() {
                dissect_errors.first.clone_from(&s.dissect_errors.first);
            }
        }
        self.names
            .iter()
            .enumerate()
            .map(|(a, name)| {
                let mut total = AppShare {
                    flows: vec![0; self.consumers.counters[a].len()],
                    dropped_queue_full: vec![0; self.consumers.counters[a].len()],
                    ..AppShare::default()
                };
                for share in shares {
                    // A worker that has published nothing yet counts nothing.
                    let Some(s) = share.apps.get(a) else {
                        continue;
                    };
                    total.received += s.received;
                    total.non_ip += s.non_ip;
                    total.affinity_violations += s.affinity_violations;
                    total.packets_untracked += s.packets_untracked;
                    total.fragments.add(&s.fragments);
                    // (Rebalancing runs with one worker: `start_workers`.)
                    total.rebalance.clone_from(&s.rebalance);
                    for (t, v) in total.flows.iter_mut().zip(&s.flows) {
                        *t += v;
                    }
                    for (t, v) in total
                        .dropped_queue_full
                        .iter_mut()
                        .zip(&s.dropped_queue_full)
                    {
                        *t += v;
                    }
                }
                AppStats {
                    name: name.clone(),
                    received: total.received,
                    queues: self.consumers.counters[a]
                        .iter()
                        .zip(total.flows.iter().zip(&total.dropped_queue_full))
                        .map(|(c, (&flows, &full))| c.stats(flows, full))
                        .collect(),
                    non_ip: total.non_ip,
                    affinity_violations: total.affinity_violations,
                    packets_untracked: total.packets_untracked,
                    fragments: total.fragments,
                    hot_flows: self.consumers.counters[a]
                        .iter()
                        .map(|c| c.hot_flows())
                        .collect(),
                    sink_error: None,
                    queue_errors: Vec::new(),
                    dissect_errors: dissect_errors.clone(),
                    flow_table,
                    rebalance: total.rebalance,
                }
            })
            .collect()
    }

    /// Waits for the consumers (every worker must have finished) and
    /// returns the final counters: `received = delivered + dropped` per
    /// app.
    pub fn finish(mut self, shares: Vec<WorkerShare>) -> Vec<AppStats> {
        let mut errors = self.consumers.join();
        let mut stats = self.stats(&shares);
        for share in &shares {
            for (app, inline) in errors.iter_mut().zip(&share.inline_errors) {
                for (e, i) in app.iter_mut().zip(inline) {
                    if e.is_none() {
                        e.clone_from(i);
                    }
                }
            }
        }
        for (st, errors) in stats.iter_mut().zip(errors) {
            st.sink_error = errors
                .iter()
                .enumerate()
                .find_map(|(q, e)| e.as_ref().map(|e| format!("{} queue {q}: {e}", st.name)));
            st.queue_errors = errors;
        }
        stats
    }
}

/// Starts a balancer fed by `workers` steering workers: the consumer
/// threads (see [`EngineConfig::consumers`]; inline sinks need one
/// worker) and the workers, each to be moved to its own thread;
/// `sinks[a][q]` receives app `a`'s queue `q`. An app that rebalances
/// needs one worker (it must see every packet of a flow to keep the flow
/// where it is): with more, this is an `InvalidInput` error.
pub fn start_workers(
    apps: Vec<(AppConfig, Vec<Box<dyn Sink>>)>,
    cfg: EngineConfig,
    workers: usize,
) -> io::Result<(Collector, Vec<Worker>)> {
    let workers = workers.max(1);
    if let Some((app, _)) = apps.iter().find(|(a, _)| a.policy.rebalance.is_some()) {
        let why = if cfg.max_flows == 0 {
            Some("keeps each flow's queue in the flow table: give max_flows above 0")
        } else if workers > 1 {
            Some(
                "needs one steering worker (it must see every packet of a flow to keep the \
                 flow on its queue); use --workers 1",
            )
        } else {
            None
        };
        if let Some(why) = why {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("app `{}` rebalances, which {why}", app.name),
            ));
        }
    }
    let mut policies = Vec::with_capacity(apps.len());
    let mut sinks = Vec::with_capacity(apps.len());
    let mut names = Vec::with_capacity(apps.len());
    for (app, app_sinks) in apps {
        assert_eq!(app_sinks.len(), app.queues as usize, "one sink per queue");
        sinks.push(AppSinks {
            name: app.name.clone(),
            loss: app.loss,
            sinks: app_sinks,
        });
        policies.push((app.policy, app.queues));
        names.push(app.name);
    }
    let (consumers, outs) = delivery::start(
        sinks,
        cfg.consumers,
        cfg.ring_chunks,
        cfg.on_consumer_start.clone(),
        workers,
    )?;
    let shared = (workers > 1).then(|| Arc::new(Shared::new(workers, cfg.frag.hold_ns)));
    let workers_list = outs
        .into_iter()
        .enumerate()
        .map(|(w, outs)| {
            let cores = policies
                .iter()
                .enumerate()
                .map(|(a, (policy, queues))| {
                    let core = Steering::new(policy.clone(), *queues, cfg.frag, cfg.dissect);
                    match &shared {
                        Some(s) => core.with_remote(Arc::clone(s), a as u16),
                        None => core,
                    }
                })
                .collect();
            let arena = Arena::new(
                cfg.batch_packets,
                cfg.batch_bytes,
                2 * cfg.ring_chunks.max(1) + 8,
            );
            let queues: Vec<u32> = policies.iter().map(|(_, q)| *q).collect();
            let placing: Vec<bool> = policies
                .iter()
                .map(|(p, _)| p.rebalance.is_some())
                .collect();
            // Rebalancing apps place their flows in this table: its
            // timeouts are theirs (the front ends give both the same idle
            // timeout).
            let rebalancing = policies.iter().find_map(|(p, _)| p.rebalance);
            let table = FlowTable::with_placing(
                &queues,
                &placing,
                cfg.max_flows,
                rebalancing.map_or(cfg.flow_idle_ns, |r| r.idle_ns),
                rebalancing.map_or(0, |r| r.ended_linger_ns),
                cfg.on_table_alloc,
            );
            let steerer = Steerer::new(arena, cores, cfg.dissect, cfg.frag, table);
            let steerer = match &shared {
                Some(s) => steerer.with_shared(Arc::clone(s), w),
                None => steerer,
            };
            Worker {
                steerer,
                outs,
                workers,
                watermark: i64::MIN,
            }
        })
        .collect();
    Ok((Collector { consumers, names }, workers_list))
}

/// The running balancer with one steering worker (the caller's thread).
pub struct Balancer {
    worker: Worker,
    collector: Collector,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("packets", &self.worker.steerer.pushed())
            .finish()
    }
}

impl Balancer {
    /// Starts the consumer threads (see [`EngineConfig::consumers`]);
    /// `sinks[a][q]` receives app `a`'s queue `q`.
    pub fn start(
        apps: Vec<(AppConfig, Vec<Box<dyn Sink>>)>,
        cfg: EngineConfig,
    ) -> io::Result<Self> {
        let (collector, mut workers) = start_workers(apps, cfg, 1)?;
        let worker = workers.pop().expect("one worker");
        Ok(Self { worker, collector })
    }

    /// Takes one packet (copied into the current batch).
    #[inline]
    pub fn push(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) {
        self.worker.push(ts_ns, orig_len, linktype, data);
    }

    /// Steers and hands off the packets pushed so far without waiting for
    /// a full batch (a live source calls this when its input goes quiet,
    /// so packets do not wait in a half-full batch).
    pub fn flush(&mut self) {
        self.worker.flush();
    }

    /// Counters while running: packets still in a channel are neither
    /// delivered nor dropped yet, so `received >= delivered + dropped`
    /// until [`Balancer::finish`], which makes it an equality. Packets not
    /// yet steered (fewer than 256, or a batch not yet flushed) are not yet
    /// received.
    pub fn snapshot(&self) -> Vec<AppStats> {
        self.collector.stats(&[self.worker.share()])
    }

    /// Flushes, releases held fragments, closes the queues, waits for the
    /// consumers and returns the counters.
    pub fn finish(self) -> Vec<AppStats> {
        let share = self.worker.finish();
        self.collector.finish(vec![share])
    }
}
