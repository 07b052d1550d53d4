//! The software balancer: packets in, every flow of every application on
//! one of its queues, each queue drained by a consumer thread (its own, or
//! one it shares with other queues) or by the steering thread itself
//! ([`Consumers`]).
//!
//! ```text
//!  push() ─copy once─▶ Batch ──steer (dissect once, per app: policy → RETA)──▶
//!        per (app, queue): Chunk { Arc<Batch>, indices } ──bounded channel──▶ consumer thread ──▶ Sink
//! ```
//!
//! * **One copy**: a packet is copied once into a batch arena; every app
//!   and queue that receives it gets an index into the shared batch.
//! * **Affinity**: each app's policy decides the queue; later fragments
//!   follow their first fragment (bounded, timed hold by packet time), ICMP
//!   errors follow the flow they quote; non-IP frames go to queue 0.
//! * **Accounting**: per app, `received = delivered + Σ dropped[reason]`;
//!   drops happen only at a full queue under [`LossPolicy::DropNewest`] or
//!   when a sink fails, and are counted per queue.
//! * **Order**: within a queue, packets leave in input order — so a
//!   time-ordered input gives time-ordered queues — later fragments that
//!   waited for their first fragment included: while one waits, the app's
//!   later packets wait behind it in a delay line (bounded by packet time,
//!   [`FragConfig::hold_ns`], and by [`FragConfig::max_delayed`]), and the
//!   fragment takes its own place once its queue is known (its first
//!   fragment came: [`FragStats::released`]; or the hold ended: the
//!   fallback counters).
//! * **Bounded memory**: channels hold at most `ring_chunks` batches' worth
//!   of descriptors per queue; the fragment hold and the affinity table are
//!   bounded.
//!
//! Time comes from packet timestamps only.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use symrss_hash::{Reta, Tuple};
pub use symrss_pcap::Unwritten;
use symrss_wire::{FlowKey, Options, dissect_into, plain_tuple};

use crate::frag::{FragConfig, FragStats, FragTracker, Outcome};
use crate::policy::{Policy, Resolved, Subject};

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

/// Metadata of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Position in the input stream (0-based).
    pub index: u64,
    /// Timestamp, ns since the epoch. The balancer keeps 64 bits of it
    /// (years 1678–2262, every pcap timestamp); a time outside that range
    /// reaches the sinks saturated to it.
    pub ts_ns: i128,
    /// Length on the wire.
    pub orig_len: u32,
    /// LINKTYPE of the frame.
    pub linktype: u32,
}

/// Where a queue's packets go. Runs on the queue's consumer thread.
///
/// A sink that cannot take a packet for now but is not broken (a FIFO
/// whose reader went away) returns an error of kind
/// [`io::ErrorKind::NotConnected`]: the packet is counted as
/// `dropped_no_reader`. Any other error counts the packet as
/// `dropped_sink_error` and the queue's first such error is reported.
/// Either way the queue goes on: the sink is offered every later packet
/// and decides itself whether to try again (a pcap file on a full disk
/// retries at its next rotation) or to refuse at once.
///
/// `delivered` counts what the sink took; a sink that buffers and later
/// fails to write what it took reports those packets through
/// [`Sink::take_unwritten`], and they move from delivered to the error's
/// reason, so `delivered` stays what reached the output.
pub trait Sink: Send {
    /// Takes one packet.
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()>;
    /// Called after each batch of packets handed to the sink (a chunk):
    /// where a streaming sink flushes, once per chunk instead of once per
    /// packet. Errors count like [`Sink::write`]'s for the next packet.
    fn chunk_done(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Flushes and closes (called once, after the last packet).
    fn finish(&mut self) -> io::Result<()>;

    /// Packets taken earlier but lost since the last call (asked after
    /// every error).
    fn take_unwritten(&mut self) -> Unwritten {
        Unwritten::default()
    }
}

/// An in-process consumer: a closure called per packet.
pub struct FnSink<F>(pub F);

impl<F> std::fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSink")
    }
}

impl<F: FnMut(&PacketMeta, &[u8]) + Send> Sink for FnSink<F> {
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        (self.0)(meta, data);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Called on each consumer thread as it starts, with the app name and the
/// queue number (of the first queue it serves) — e.g. to pin the thread to
/// a core (the engine does no OS calls itself; `symrss-sys` has the
/// pinning).
#[derive(Clone)]
pub struct ThreadHook(pub Arc<ThreadStartFn>);

/// The function of a [`ThreadHook`]: app name, queue number.
pub type ThreadStartFn = dyn Fn(&str, usize) + Send + Sync;

impl std::fmt::Debug for ThreadHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadHook")
    }
}

/// Tuning.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Packets per batch (the unit of steering and hand-off).
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

/// A batch of packets copied once, shared by every queue that gets one.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    metas: Vec<StoredMeta>,
    /// Input position of the batch's first packet.
    first_index: u64,
}

/// A packet's metadata as a batch keeps it: 24 bytes (its input position
/// is the batch's first plus its place in the batch). The consumer threads
/// read these records from another core, and each cache line they read
/// can cost the steering thread an ownership transfer when it reuses the
/// batch (~8 ns per packet before [`REUSE_DEPTH`], BENCHMARKS.md); half
/// the bytes, half the lines.
#[derive(Clone, Copy, Debug)]
struct StoredMeta {
    ts_ns: i64,
    start: u32,
    len: u32,
    orig_len: u32,
    linktype: u32,
}

const _: () = assert!(size_of::<StoredMeta>() == 24);

impl Batch {
    fn packet(&self, i: u32) -> (PacketMeta, &[u8]) {
        let m = &self.metas[i as usize];
        let meta = PacketMeta {
            index: self.first_index + u64::from(i),
            ts_ns: i128::from(m.ts_ns),
            orig_len: m.orig_len,
            linktype: m.linktype,
        };
        (
            meta,
            &self.data[m.start as usize..(m.start + m.len) as usize],
        )
    }
}

/// A packet the fragment tracker holds: an index into the batch being
/// filled, or — once that batch was handed off — a share of it.
#[derive(Debug)]
enum PacketRef {
    Current(u32),
    Shared(Arc<Batch>, u32),
}

impl PacketRef {
    /// Its input position; `current_first` is the current batch's first.
    fn index(&self, current_first: u64) -> u64 {
        match self {
            Self::Current(i) => current_first + u64::from(*i),
            Self::Shared(b, i) => b.first_index + u64::from(*i),
        }
    }

    fn packet<'a>(&'a self, current: &'a Batch) -> (PacketMeta, &'a [u8]) {
        match self {
            Self::Current(i) => current.packet(*i),
            Self::Shared(b, i) => b.packet(*i),
        }
    }
}

/// Counts a packet of `$flow` steered to queue `$q` of `$app` in the flow
/// accounting: a flow's first queue, its queue's flow count, and a packet
/// of a known flow on another queue (an affinity violation). A macro, not
/// a method, so the hot loop borrows the fields it touches one by one
/// while it walks `slots` (measured: a method costs ~4 instructions per
/// packet more).
macro_rules! account {
    ($app:ident, $q:expr, $flow:expr) => {{
        let q: usize = $q;
        if let Some(id) = $flow.filter(|_| $app.max_flows > 0) {
            // The digest is well mixed: its low bits index the cache.
            let cached = &mut $app.recent[id as usize & (RECENT - 1)];
            let first = if cached.1 & RECENT_USED != 0 && cached.0 == id {
                Some(cached.1 & !RECENT_USED)
            } else {
                let known = $app.flows.get(&id).copied();
                match known {
                    Some(f) => *cached = (id, f | RECENT_USED),
                    None if $app.flows.len() < $app.max_flows => {
                        $app.flows.insert(id, q as u32);
                        $app.queues[q].flows += 1;
                        *cached = (id, q as u32 | RECENT_USED);
                    }
                    None => $app.stats.flows_untracked += 1,
                }
                known
            };
            if first.is_some_and(|f| f as usize != q) {
                $app.stats.affinity_violations += 1;
            }
        }
    }};
}

/// Packets steered together (dissected, classified and hashed while the
/// packets are still in the L1 cache); the hand-off unit stays
/// `batch_packets`.
const STEER_PACKETS: usize = 256;

/// Indices of one batch's packets bound for one queue.
struct Chunk {
    batch: Arc<Batch>,
    indices: Vec<u32>,
}

/// Counters of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets handed to the sink.
    pub delivered: u64,
    /// Bytes (captured) handed to the sink.
    pub bytes: u64,
    /// Flows seen on this queue (up to the flow-table bound).
    pub flows: u64,
    /// Dropped at a full queue.
    pub dropped_queue_full: u64,
    /// Dropped because the sink failed.
    pub dropped_sink_error: u64,
    /// Dropped because the sink had no reader (a FIFO nobody reads).
    pub dropped_no_reader: u64,
}

/// Counters of one application.
#[derive(Clone, Debug, Default)]
pub struct AppStats {
    /// Name.
    pub name: String,
    /// Packets this app received (every input packet).
    pub received: u64,
    /// Per queue.
    pub queues: Vec<QueueStats>,
    /// Non-IP frames (steered to queue 0).
    pub non_ip: u64,
    /// Packets of a flow that reached a different queue than the flow's
    /// first packet (0 under a symmetric scheme, except fragments whose
    /// first fragment never came).
    pub affinity_violations: u64,
    /// Flows not tracked for affinity (table bound reached).
    pub flows_untracked: u64,
    /// Fragment tracker counters.
    pub fragments: FragStats,
    /// First sink error, if any.
    pub sink_error: Option<String>,
    /// Per queue, its first sink error (set by [`Balancer::finish`]).
    pub queue_errors: Vec<Option<String>>,
    /// Frames whose dissection stopped early (the same for every app:
    /// each frame is dissected once); they were steered by the layers
    /// read before the error.
    pub dissect_errors: DissectErrors,
}

/// Dissection errors of a run: how many, and the first one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DissectErrors {
    /// Frames with an error.
    pub count: u64,
    /// The first: its input position (0-based) and what was wrong (layer,
    /// offset).
    pub first: Option<(u64, String)>,
}

impl DissectErrors {
    fn record(&mut self, index: u64, e: &symrss_wire::DissectError) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((index, e.to_string()));
        }
    }
}

impl AppStats {
    /// Delivered packets over all queues.
    pub fn delivered(&self) -> u64 {
        self.queues.iter().map(|q| q.delivered).sum()
    }

    /// Dropped packets over all queues and reasons.
    pub fn dropped(&self) -> u64 {
        self.queues
            .iter()
            .map(|q| q.dropped_queue_full + q.dropped_sink_error + q.dropped_no_reader)
            .sum()
    }
}

/// Counters a consumer thread publishes as it goes (per chunk), so a
/// running balancer can report them ([`Balancer::snapshot`]).
#[derive(Debug, Default)]
struct QueueCounters {
    delivered: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
    no_reader: AtomicU64,
}

/// Where a queue's chunks go.
enum Delivery {
    /// The channel of the consumer thread serving the queue, and the
    /// queue's place among that thread's sinks.
    Channel {
        tx: SyncSender<(u32, Chunk)>,
        sink: u32,
    },
    /// The queue's sink, run by the steering thread ([`Consumers::Inline`]).
    Inline(SinkState),
    /// Closed by [`Balancer::finish`].
    Closed,
}

struct QueueOut {
    delivery: Delivery,
    counters: Arc<QueueCounters>,
    /// This batch's packets for the queue in order (those not kept back
    /// in [`App::delay`]).
    pending: Vec<u32>,
    dropped_queue_full: u64,
    flows: u64,
}

/// One packet's place in an app's steering of a batch, in input order.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Queue, or [`FAST`]: the next of the batch's fast-path hashes.
    queue: u32,
    /// Index into the batch.
    entry: u32,
    /// Flow digest for affinity and flow accounting (`None`: non-IP).
    flow: Option<u64>,
}

/// [`Slot::queue`] of a packet hashed with the batch (the common case: not
/// a fragment, no port rule to apply).
const FAST: u32 = u32::MAX;
/// [`Slot::queue`] of a later fragment waiting for its first fragment: its
/// queue is not known yet, so its place is kept in [`App::delay`].
const HOLE: u32 = u32::MAX - 1;

struct App {
    cfg: AppConfig,
    dissect: Options,
    reta: Reta,
    tracker: FragTracker<PacketRef, Resolved>,
    max_flows: usize,
    /// Flow (64-bit digest of its direction-independent id) → first queue.
    /// FxHash: bounded by `max_flows`, so a flood cannot grow it; a digest
    /// collision between two live flows (~n²/2⁶⁵) could at worst miscount
    /// one affinity check.
    flows: rustc_hash::FxHashMap<u64, u32>,
    /// Recently seen flows (digest, first queue | [`RECENT_USED`]), a
    /// direct-mapped cache in front of `flows`: the map stays the record,
    /// the cache saves its lookup for the flows of the last packets.
    recent: Box<[(u64, u32)]>,
    queues: Vec<QueueOut>,
    stats: AppStats,
    /// This batch's packets in input order (steered in three steps:
    /// classify each packet, hash the fast-path tuples as one batch, then
    /// assign queues in order).
    slots: Vec<Slot>,
    /// Tuples of the fast-path packets, in order, and their hashes.
    fast: Vec<Tuple>,
    fast_hashes: Vec<u32>,
    /// Input position of the current batch's first packet.
    batch_first: u64,
    /// Whether this step's slots hold a [`HOLE`].
    step_has_hole: bool,
    /// The delay line: while a fragment waits for its first fragment
    /// (a [`HOLE`]), every later packet of this app is kept back here, in
    /// input order, with its queue; the front leaves once its hole is
    /// filled (the first fragment came, or the hold expired). So each
    /// queue receives its packets in input order — in time order for a
    /// time-ordered input — fragments that waited included. Bounded by
    /// [`FragConfig::max_delayed`].
    delay: VecDeque<(PacketRef, u32)>,
    /// Input position of `delay[0]`.
    delay_front: u64,
    /// Holes filled since the last [`App::assign`]: (input position,
    /// queue, flow digest).
    filled: Vec<(u64, u32, Option<u64>)>,
}

/// The running balancer.
pub struct Balancer {
    cfg: EngineConfig,
    apps: Vec<App>,
    batch: Batch,
    /// Batches handed out, oldest first; one whose consumers are all done
    /// (the pool holds the last reference) is reused instead of allocating
    /// a new one (see [`REUSE_DEPTH`]).
    pool: VecDeque<Arc<Batch>>,
    key: FlowKey,
    next_index: u64,
    /// Packets of the current batch already steered.
    steered: usize,
    released: Vec<PacketRef>,
    consumers: Vec<Consumer>,
    dissect_errors: DissectErrors,
}

/// A consumer thread and the (app, queue) of each sink it serves, in the
/// order of its sinks.
struct Consumer {
    handle: JoinHandle<Vec<Option<String>>>,
    serves: Vec<(usize, usize)>,
}

/// A consumer thread before it starts: its sinks and whom they serve.
#[derive(Default)]
struct ConsumerPlan {
    sinks: Vec<SinkState>,
    serves: Vec<(usize, usize)>,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("packets", &self.next_index)
            .finish()
    }
}

/// One queue's sink on its consumer thread, with the counters it
/// publishes and its first error (after which the queue's packets count as
/// failed).
struct SinkState {
    sink: Box<dyn Sink>,
    counters: Arc<QueueCounters>,
    error: Option<String>,
}

/// A consumer thread: takes (sink, chunk) messages until every queue it
/// serves is closed, then finishes its sinks; returns each sink's first
/// error (the counts are in the queues' [`QueueCounters`]).
fn consume(rx: Receiver<(u32, Chunk)>, mut sinks: Vec<SinkState>) -> Vec<Option<String>> {
    for (k, chunk) in rx {
        sinks[k as usize].deliver(&chunk);
    }
    sinks.into_iter().map(SinkState::finish).collect()
}

impl SinkState {
    /// Hands a chunk's packets to the sink and publishes the counts.
    fn deliver(&mut self, chunk: &Chunk) {
        let mut tally = Tally::default();
        for &i in &chunk.indices {
            let (meta, data) = chunk.batch.packet(i);
            match self.sink.write(&meta, data) {
                Ok(()) => {
                    tally.delivered += 1;
                    tally.bytes += data.len() as u64;
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::NotConnected {
                        tally.no_reader += 1;
                    } else {
                        tally.failed += 1;
                    }
                    self.failure(&e, &mut tally);
                }
            }
        }
        if let Err(e) = self.sink.chunk_done() {
            self.failure(&e, &mut tally);
        }
        self.publish(tally);
    }

    /// After a sink error: keeps the first message and moves the packets
    /// the sink had accepted but could not write (a failed flush) from
    /// delivered to the error's drop reason.
    fn failure(&mut self, e: &io::Error, tally: &mut Tally) {
        let lost = self.sink.take_unwritten();
        if e.kind() == io::ErrorKind::NotConnected {
            tally.lost_no_reader += lost.packets;
        } else {
            self.error.get_or_insert_with(|| e.to_string());
            tally.lost_failed += lost.packets;
        }
        tally.lost_bytes += lost.bytes;
    }

    fn publish(&self, t: Tally) {
        let c = &self.counters;
        c.delivered.fetch_add(t.delivered, Ordering::Relaxed);
        c.bytes.fetch_add(t.bytes, Ordering::Relaxed);
        c.no_reader
            .fetch_add(t.no_reader + t.lost_no_reader, Ordering::Relaxed);
        c.failed
            .fetch_add(t.failed + t.lost_failed, Ordering::Relaxed);
        if t.lost_no_reader + t.lost_failed > 0 {
            c.delivered
                .fetch_sub(t.lost_no_reader + t.lost_failed, Ordering::Relaxed);
            c.bytes.fetch_sub(t.lost_bytes, Ordering::Relaxed);
        }
    }

    /// Finishes the sink; returns its first error.
    fn finish(mut self) -> Option<String> {
        if let Err(e) = self.sink.finish() {
            let mut tally = Tally::default();
            self.failure(&e, &mut tally);
            self.publish(tally);
        }
        self.error
    }
}

/// One chunk's counts, published at once.
#[derive(Default)]
struct Tally {
    delivered: u64,
    bytes: u64,
    failed: u64,
    no_reader: u64,
    /// Packets delivered earlier that the sink then lost, by reason.
    lost_failed: u64,
    lost_no_reader: u64,
    lost_bytes: u64,
}

impl Balancer {
    /// Starts the consumer threads (see [`EngineConfig::consumers`]);
    /// `sinks[a][q]` receives app `a`'s queue `q`.
    pub fn start(
        apps: Vec<(AppConfig, Vec<Box<dyn Sink>>)>,
        cfg: EngineConfig,
    ) -> io::Result<Self> {
        let total: usize = apps.iter().map(|(a, _)| a.queues as usize).sum();
        // Queue k (of all apps, in order) goes to thread k mod `threads`;
        // no queues, no threads.
        let threads = match cfg.consumers {
            Consumers::PerQueue => total,
            Consumers::Shared(n) => n.max(1).min(total),
            Consumers::Inline => 0,
        };
        let mut plan: Vec<ConsumerPlan> = (0..threads).map(|_| ConsumerPlan::default()).collect();
        let channels: Vec<_> = (0..threads)
            .map(|t| {
                // Room for `ring_chunks` per queue the thread serves.
                let served = (total - t).div_ceil(threads);
                sync_channel::<(u32, Chunk)>(cfg.ring_chunks.max(1) * served)
            })
            .collect();
        let mut out = Vec::with_capacity(apps.len());
        let mut k = 0;
        for (a, (app, sinks)) in apps.into_iter().enumerate() {
            assert_eq!(sinks.len(), app.queues as usize, "one sink per queue");
            let mut queues = Vec::with_capacity(sinks.len());
            for (q, sink) in sinks.into_iter().enumerate() {
                let counters = Arc::new(QueueCounters::default());
                let state = SinkState {
                    sink,
                    counters: Arc::clone(&counters),
                    error: None,
                };
                let delivery = if cfg.consumers == Consumers::Inline {
                    Delivery::Inline(state)
                } else {
                    let ConsumerPlan {
                        sinks: states,
                        serves,
                    } = &mut plan[k % threads];
                    serves.push((a, q));
                    states.push(state);
                    Delivery::Channel {
                        tx: channels[k % threads].0.clone(),
                        sink: states.len() as u32 - 1,
                    }
                };
                queues.push(QueueOut {
                    delivery,
                    counters,
                    pending: Vec::new(),
                    dropped_queue_full: 0,
                    flows: 0,
                });
                k += 1;
            }
            out.push(App {
                dissect: cfg.dissect,
                reta: app.policy.reta(app.queues),
                tracker: FragTracker::new(cfg.frag),
                max_flows: cfg.max_flows,
                flows: rustc_hash::FxHashMap::default(),
                recent: vec![(0, 0); RECENT].into_boxed_slice(),
                queues,
                stats: AppStats {
                    name: app.name.clone(),
                    ..AppStats::default()
                },
                slots: Vec::with_capacity(cfg.batch_packets),
                fast: Vec::with_capacity(cfg.batch_packets),
                fast_hashes: Vec::with_capacity(cfg.batch_packets),
                batch_first: 0,
                step_has_hole: false,
                delay: VecDeque::new(),
                delay_front: 0,
                filled: Vec::new(),
                cfg: app,
            });
        }
        let mut consumers = Vec::with_capacity(threads);
        for (
            t,
            (
                ConsumerPlan {
                    sinks: states,
                    serves,
                },
                (_, rx),
            ),
        ) in plan.into_iter().zip(channels).enumerate()
        {
            let (a, q) = serves[0];
            let first = out[a].cfg.name.clone();
            let name = if serves.len() == 1 {
                format!("{first}-q{q}")
            } else {
                format!("consumer-{t}")
            };
            let hook = cfg.on_consumer_start.clone();
            let handle = std::thread::Builder::new().name(name).spawn(move || {
                if let Some(h) = hook {
                    (h.0)(&first, q);
                }
                consume(rx, states)
            })?;
            consumers.push(Consumer { handle, serves });
        }
        Ok(Self {
            cfg,
            apps: out,
            batch: Batch::default(),
            pool: VecDeque::new(),
            key: FlowKey::default(),
            next_index: 0,
            steered: 0,
            released: Vec::new(),
            consumers,
            dissect_errors: DissectErrors::default(),
        })
    }

    /// Takes one packet (copied into the current batch).
    pub fn push(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) {
        if self.batch.metas.is_empty() {
            self.batch.first_index = self.next_index;
        }
        self.next_index += 1;
        let start = self.batch.data.len() as u32;
        self.batch.data.extend_from_slice(data);
        self.batch.metas.push(StoredMeta {
            ts_ns: ts_ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            start,
            len: data.len() as u32,
            orig_len,
            linktype,
        });
        if self.batch.metas.len() >= self.cfg.batch_packets
            || self.batch.data.len() >= self.cfg.batch_bytes
        {
            self.flush();
        } else if self.batch.metas.len() - self.steered >= STEER_PACKETS {
            self.steer();
        }
    }

    /// Steers the packets pushed since the last call: dissect and
    /// classify each for every app, then hash and assign per app. The
    /// commonest frames (one plain Ethernet/IPv4 TCP/UDP layer) skip the
    /// full dissection when every app hashes their tuple as it is.
    fn steer(&mut self) {
        let batch = &self.batch;
        for app in &mut self.apps {
            app.batch_first = batch.first_index;
        }
        for i in self.steered as u32..batch.metas.len() as u32 {
            let (meta, data) = batch.packet(i);
            let plain = plain_tuple(meta.linktype, data, &self.cfg.dissect)
                .map(|(tuple, proto)| (tuple, proto, flow_digest(&tuple, proto)));
            let mut dissected = false;
            for app in &mut self.apps {
                app.stats.received += 1;
                app.expire_held(meta.ts_ns, batch, &mut self.released);
                if let Some((tuple, proto, digest)) = plain
                    && app.cfg.policy.hashes_tuple_as_is(&tuple, proto)
                {
                    app.push_fast(tuple, digest, i);
                    continue;
                }
                if !dissected {
                    dissect_into(meta.linktype, data, &self.cfg.dissect, &mut self.key);
                    dissected = true;
                    if let Some(e) = &self.key.error {
                        self.dissect_errors.record(meta.index, e);
                    }
                }
                app.classify(&self.key, meta.ts_ns, i);
            }
        }
        let max_delayed = self.cfg.frag.max_delayed;
        for app in &mut self.apps {
            app.assign();
            if app.delay.len() > max_delayed {
                app.shorten_delay(batch, &mut self.released);
                app.assign();
            }
        }
        self.steered = batch.metas.len();
    }

    /// Steers and hands off the packets pushed so far without waiting for
    /// a full batch (a live source calls this when its input goes quiet,
    /// so packets do not wait in a half-full batch).
    pub fn flush(&mut self) {
        if self.batch.metas.is_empty() {
            return;
        }
        self.steer();
        let next = self.recycled_batch();
        let batch = Arc::new(std::mem::replace(&mut self.batch, next));
        self.steered = 0;
        for app in &mut self.apps {
            // Fragments still waiting keep their packet through a share of
            // the batch.
            app.tracker.for_each_held(|r| {
                if let PacketRef::Current(i) = *r {
                    *r = PacketRef::Shared(Arc::clone(&batch), i);
                }
            });
            app.send(&batch);
        }
        if self.pool.len() < 2 * self.cfg.ring_chunks.max(1) + 8 {
            self.pool.push_back(batch);
        }
    }

    /// An empty batch: the oldest of the pool once at least
    /// [`REUSE_DEPTH`] batches rotate and it is finished, else a new one.
    /// An oldest batch still in use (a consumer behind, or a fragment held
    /// for its first fragment) goes to the back, so it cannot stall reuse.
    fn recycled_batch(&mut self) -> Batch {
        if self.pool.len() >= REUSE_DEPTH
            && let Some(oldest) = self.pool.pop_front()
        {
            match Arc::try_unwrap(oldest) {
                Ok(mut b) => {
                    b.data.clear();
                    b.metas.clear();
                    return b;
                }
                Err(in_use) => self.pool.push_back(in_use),
            }
        }
        Batch::default()
    }

    /// Counters while running: packets still in a channel are neither
    /// delivered nor dropped yet, so `received >= delivered + dropped`
    /// until [`Balancer::finish`], which makes it an equality. Packets not
    /// yet steered (fewer than 256, or a batch not yet flushed) are not yet
    /// received.
    pub fn snapshot(&self) -> Vec<AppStats> {
        self.apps
            .iter()
            .map(|app| {
                let mut st = app.stats.clone();
                st.dissect_errors = self.dissect_errors.clone();
                st.fragments = app.tracker.stats();
                st.queues = app.queues.iter().map(QueueOut::stats).collect();
                st
            })
            .collect()
    }

    /// Flushes, releases held fragments, closes the queues, waits for the
    /// consumers and returns the counters.
    pub fn finish(mut self) -> Vec<AppStats> {
        self.flush();
        let empty = Arc::new(Batch::default());
        let current = Batch::default();
        for app in &mut self.apps {
            let mut held = Vec::new();
            app.tracker.drain(&mut held);
            for r in held {
                app.route_fallback(r, &current);
            }
            app.assign();
            app.send(&empty);
            app.stats.fragments = app.tracker.stats();
        }
        // Inline sinks finish here; once every sender is gone, each
        // consumer thread finishes its sinks and ends.
        let mut errors: Vec<Vec<Option<String>>> = self
            .apps
            .iter_mut()
            .map(|app| {
                app.queues
                    .iter_mut()
                    .map(
                        |out| match std::mem::replace(&mut out.delivery, Delivery::Closed) {
                            Delivery::Inline(state) => state.finish(),
                            Delivery::Channel { .. } | Delivery::Closed => None,
                        },
                    )
                    .collect()
            })
            .collect();
        for Consumer { handle, serves } in std::mem::take(&mut self.consumers) {
            let results = handle
                .join()
                .unwrap_or_else(|_| vec![Some("consumer thread panicked".into()); serves.len()]);
            for ((a, q), e) in serves.into_iter().zip(results) {
                errors[a][q] = e;
            }
        }
        let mut stats = Vec::with_capacity(self.apps.len());
        for (mut app, errors) in std::mem::take(&mut self.apps).into_iter().zip(errors) {
            app.stats.sink_error = errors.iter().enumerate().find_map(|(q, e)| {
                e.as_ref()
                    .map(|e| format!("{} queue {q}: {e}", app.cfg.name))
            });
            app.stats.queue_errors = errors;
            app.stats.dissect_errors = self.dissect_errors.clone();
            app.stats.queues = app.queues.iter().map(QueueOut::stats).collect();
            stats.push(app.stats);
        }
        stats
    }
}

impl QueueOut {
    fn stats(&self) -> QueueStats {
        QueueStats {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            flows: self.flows,
            dropped_queue_full: self.dropped_queue_full,
            dropped_sink_error: self.counters.failed.load(Ordering::Relaxed),
            dropped_no_reader: self.counters.no_reader.load(Ordering::Relaxed),
        }
    }
}

impl App {
    /// Before a packet at `ts_ns`: fragments held longer than the hold
    /// allows fall back to their own addresses.
    #[inline]
    fn expire_held(&mut self, ts_ns: i128, batch: &Batch, released: &mut Vec<PacketRef>) {
        if self.tracker.datagrams() > 0 {
            self.tracker.expire(ts_ns, released);
            for r in released.drain(..) {
                self.route_fallback(r, batch);
            }
        }
    }

    /// The slot of a packet hashed with the batch (the fast path).
    #[inline]
    fn push_fast(&mut self, tuple: Tuple, digest: u64, i: u32) {
        self.fast.push(tuple);
        self.slots.push(Slot {
            queue: FAST,
            entry: i,
            flow: Some(digest),
        });
    }

    /// First step for one dissected packet: its slot, with the queue
    /// decided now unless it takes the fast path (hashed with the batch).
    fn classify(&mut self, key: &FlowKey, ts_ns: i128, i: u32) {
        let policy = &self.cfg.policy;
        if let Some(l) = Subject::plain(key, policy.layer)
            && policy.hashes_tuple_as_is(&l.tuple, l.proto)
        {
            self.push_fast(l.tuple, flow_digest(&l.tuple, l.proto), i);
            return;
        }
        let Some(subject) = Subject::of(key, policy.layer, policy.icmp_follow) else {
            self.stats.non_ip += 1;
            self.slots.push(Slot {
                queue: 0,
                entry: i,
                flow: None,
            });
            return;
        };
        if policy.hashes_as_is(&subject) {
            self.push_fast(subject.tuple, flow_digest(&subject.tuple, subject.proto), i);
            return;
        }
        match subject.frag {
            Some((id, first)) if !policy.is_nic() => {
                match self.tracker.fragment(
                    id,
                    first,
                    Some(subject.resolved()),
                    ts_ns,
                    PacketRef::Current(i),
                ) {
                    Outcome::Steer(_, r) => {
                        self.push_slot(&subject, r, i);
                    }
                    Outcome::Release(_, held, r) => {
                        // The fragments that waited for the first one go
                        // where it goes, each in its own place.
                        let q = self.push_slot(&subject, r, i);
                        let flow = resolved_digest(&subject.flow(r));
                        for other in held {
                            let at = other.index(self.batch_first);
                            self.filled.push((at, q, Some(flow)));
                        }
                    }
                    Outcome::Held => {
                        self.step_has_hole = true;
                        self.slots.push(Slot {
                            queue: HOLE,
                            entry: i,
                            flow: None,
                        });
                    }
                }
            }
            _ => {
                self.push_slot(&subject, None, i);
            }
        }
    }

    /// The slot of a packet of this batch whose queue is decided now.
    fn push_slot(&mut self, subject: &Subject, tracked: Option<Resolved>, i: u32) -> u32 {
        let queue = self.queue_of(subject, tracked);
        self.slots.push(Slot {
            queue,
            entry: i,
            flow: Some(resolved_digest(&subject.flow(tracked))),
        });
        queue
    }

    fn queue_of(&self, subject: &Subject, tracked: Option<Resolved>) -> u32 {
        self.reta.queue(self.cfg.policy.hash(subject, tracked))
    }

    /// A fragment whose first fragment never came in time: hashed by its
    /// own addresses; its hole in the delay line is filled.
    fn route_fallback(&mut self, packet: PacketRef, current: &Batch) {
        let (meta, data) = packet.packet(current);
        let mut key = FlowKey::default();
        dissect_into(meta.linktype, data, &self.dissect, &mut key);
        let fill = match Subject::of(&key, self.cfg.policy.layer, self.cfg.policy.icmp_follow) {
            Some(s) => (
                meta.index,
                self.queue_of(&s, None),
                Some(resolved_digest(&s.resolved())),
            ),
            None => (meta.index, 0, None),
        };
        self.filled.push(fill);
    }

    /// The delay line grew past its bound: the fragments that have waited
    /// longest give up on their first fragment now (as if their hold had
    /// expired), so its front can leave.
    fn shorten_delay(&mut self, current: &Batch, released: &mut Vec<PacketRef>) {
        let Some((r, _)) = self.delay.iter().find(|(_, q)| *q == HOLE) else {
            return;
        };
        let since = r.packet(current).0.ts_ns;
        self.tracker
            .expire(since + self.tracker.hold_ns() + 1, released);
        for r in released.drain(..) {
            self.route_fallback(r, current);
        }
    }

    /// Second and third steps: hashes the fast-path tuples as one batch,
    /// then walks the slots in input order, filling each queue's pending
    /// list (or, while a fragment waits, the delay line) and the affinity
    /// and per-queue flow accounting; then fills the holes whose fragment
    /// was resolved.
    fn assign(&mut self) {
        self.fast_hashes.resize(self.fast.len(), 0);
        self.cfg
            .policy
            .scheme()
            .hash_batch(&self.fast, &mut self.fast_hashes);
        let mut fast = self.fast_hashes.iter();
        if self.delay.is_empty() && !self.step_has_hole {
            // The common case: no fragment waits, every packet goes
            // straight to its queue's pending list.
            for slot in &self.slots {
                let q = match slot.queue {
                    FAST => self
                        .reta
                        .queue(*fast.next().expect("one hash per fast slot")),
                    q => q,
                } as usize;
                self.queues[q].pending.push(slot.entry);
                account!(self, q, slot.flow);
            }
        } else {
            // Until the first hole, packets still go to their pending
            // lists; from it on, every packet waits behind it.
            for slot in &self.slots {
                let q = match slot.queue {
                    FAST => self
                        .reta
                        .queue(*fast.next().expect("one hash per fast slot")),
                    q => q,
                };
                if self.delay.is_empty() && q != HOLE {
                    self.queues[q as usize].pending.push(slot.entry);
                } else {
                    if self.delay.is_empty() {
                        self.delay_front = self.batch_first + u64::from(slot.entry);
                    }
                    self.delay.push_back((PacketRef::Current(slot.entry), q));
                    if q == HOLE {
                        continue;
                    }
                }
                account!(self, q as usize, slot.flow);
            }
            self.step_has_hole = false;
        }
        // (A hole always lands in the delay line: it starts there.)
        for &(at, q, flow) in &self.filled {
            let place = &mut self.delay[(at - self.delay_front) as usize].1;
            debug_assert_eq!(*place, HOLE);
            *place = q;
            account!(self, q as usize, flow);
        }
        self.filled.clear();
        self.slots.clear();
        self.fast.clear();
    }

    /// Sends each queue's pending packets of this batch as one chunk, then
    /// what can leave the delay line: its front up to the first hole, as
    /// chunks of consecutive packets of one batch per queue.
    fn send(&mut self, batch: &Arc<Batch>) {
        let loss = self.cfg.loss;
        for out in &mut self.queues {
            if out.pending.is_empty() {
                continue;
            }
            // The next batch's list starts at this one's size, so it
            // rarely grows (no reallocation per packet).
            let capacity = out.pending.len() + out.pending.len() / 4 + 16;
            let pending = std::mem::replace(&mut out.pending, Vec::with_capacity(capacity));
            send_chunk(
                out,
                loss,
                Chunk {
                    batch: Arc::clone(batch),
                    indices: pending,
                },
            );
        }
        if self.delay.is_empty() {
            return;
        }
        // This batch's packets keep a share of it.
        for (r, _) in self.delay.iter_mut().rev() {
            match r {
                PacketRef::Current(i) => *r = PacketRef::Shared(Arc::clone(batch), *i),
                PacketRef::Shared(..) => break,
            }
        }
        let mut runs: Vec<Option<(Arc<Batch>, Vec<u32>)>> = vec![None; self.queues.len()];
        while self.delay.front().is_some_and(|(_, q)| *q != HOLE) {
            let Some((PacketRef::Shared(b, i), q)) = self.delay.pop_front() else {
                unreachable!("the delay line holds shares once its batch is sent");
            };
            self.delay_front += 1;
            let run = &mut runs[q as usize];
            match run {
                Some((rb, indices)) if Arc::ptr_eq(rb, &b) => indices.push(i),
                _ => {
                    if let Some((rb, indices)) = run.replace((b, vec![i])) {
                        send_chunk(
                            &mut self.queues[q as usize],
                            loss,
                            Chunk { batch: rb, indices },
                        );
                    }
                }
            }
        }
        for (q, run) in runs.into_iter().enumerate() {
            if let Some((batch, indices)) = run {
                send_chunk(&mut self.queues[q], loss, Chunk { batch, indices });
            }
        }
    }
}

/// Direction-independent id of a flow for the affinity table.
#[inline]
fn flow_digest(tuple: &Tuple, proto: u8) -> u64 {
    tuple.flow_digest() ^ u64::from(proto).wrapping_mul(0xff51_afd7_ed55_8ccd)
}

#[inline]
fn resolved_digest(flow: &Resolved) -> u64 {
    flow_digest(&flow.tuple, flow.proto)
}

/// Batches in rotation before the oldest is reused. The consumer threads
/// read a batch's packet records on another core; writing those cache
/// lines again while the other core still holds them costs the steering
/// thread an ownership transfer per line that its prefetchers cannot hide
/// (measured: ~8 ns per 64-byte packet, BENCHMARKS.md). Reusing the batch
/// consumed longest ago, after several newer ones pushed it out of the
/// consumer core's cache, avoids most of that.
const REUSE_DEPTH: usize = 8;

/// Entries of an app's recent-flow cache (a power of two).
const RECENT: usize = 4096;
/// Marks a used [`App::recent`] entry.
const RECENT_USED: u32 = 1 << 31;

fn send_chunk(out: &mut QueueOut, loss: LossPolicy, chunk: Chunk) {
    let (tx, sink) = match &mut out.delivery {
        Delivery::Channel { tx, sink } => (tx, *sink),
        Delivery::Inline(state) => return state.deliver(&chunk),
        Delivery::Closed => return,
    };
    match loss {
        LossPolicy::Lossless => {
            if let Err(e) = tx.send((sink, chunk)) {
                // The consumer is gone (it panicked): count as dropped.
                out.dropped_queue_full += (e.0).1.indices.len() as u64;
            }
        }
        LossPolicy::DropNewest => match tx.try_send((sink, chunk)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, c)) | TrySendError::Disconnected((_, c))) => {
                out.dropped_queue_full += c.indices.len() as u64;
            }
        },
    }
}
