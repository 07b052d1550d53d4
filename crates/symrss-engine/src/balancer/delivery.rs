//! Delivery: a queue's chunks reach its [`Sink`] — through a bounded
//! channel to a consumer thread, or on the steering thread itself
//! ([`Consumers`]).
//!
//! Contract:
//!
//! * A queue's chunks reach its sink in the order they were sent; a full
//!   channel under [`LossPolicy::DropNewest`] drops the chunk, counted as
//!   `dropped_queue_full`; under [`LossPolicy::Lossless`] the sender waits.
//! * Every packet a sink is offered is counted once: delivered, or
//!   dropped by a [`SinkError`] (no reader / sink error). Packets a sink
//!   took but later lost ([`Sink::take_unwritten`]) move from delivered to
//!   the error's reason.
//! * A failing sink fails only its queue; it is offered every later packet
//!   and decides itself whether to try again.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

pub use symrss_pcap::Unwritten;

use super::merge::Merge;
use super::stats::{QueueCounters, Tally};
use super::{Consumers, LossPolicy};
use crate::arena::{Chunk, PacketMeta};

/// Why a sink did not take a packet.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Nobody reads the output for now (a FIFO whose reader went away):
    /// the packet counts as `dropped_no_reader` and the sink is not
    /// considered broken.
    #[error("no reader")]
    NoReader,
    /// The output failed: the packet counts as `dropped_sink_error` and
    /// the queue's first such error is reported.
    #[error(transparent)]
    Failed(#[from] io::Error),
}

/// Where a queue's packets go. Runs on the queue's consumer thread (or
/// the steering thread under [`Consumers::Inline`]).
///
/// Either kind of [`SinkError`] leaves the queue running: the sink is
/// offered every later packet and decides itself whether to try again (a
/// pcap file on a full disk retries at its next rotation) or to refuse at
/// once.
///
/// `delivered` counts what the sink took; a sink that buffers and later
/// fails to write what it took reports those packets through
/// [`Sink::take_unwritten`], and they move from delivered to the error's
/// reason, so `delivered` stays what reached the output.
pub trait Sink: Send {
    /// Takes one packet.
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<(), SinkError>;

    /// Called after each batch of packets handed to the sink (a chunk):
    /// where a streaming sink flushes, once per chunk instead of once per
    /// packet. Errors count like [`Sink::write`]'s for the next packet.
    fn chunk_done(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes and closes (called once, after the last packet).
    fn finish(&mut self) -> Result<(), SinkError>;

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
    fn write(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<(), SinkError> {
        (self.0)(meta, data);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
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

/// One queue's sink with the counters it publishes and its first error.
pub(crate) struct SinkState {
    sink: Box<dyn Sink>,
    counters: Arc<QueueCounters>,
    error: Option<String>,
    /// The queue's hottest flows, sampled from what it delivers.
    hot: Box<super::hot::Sketch>,
}

impl SinkState {
    /// Hands a chunk's packets to the sink and publishes the counts.
    fn deliver(&mut self, chunk: &Chunk) {
        let mut tally = Tally::default();
        for (meta, data) in chunk.packets() {
            self.write_one(&meta, data, &mut tally);
        }
        self.end(tally);
    }

    /// Offers one packet, counting the outcome in `tally`.
    #[inline]
    pub(crate) fn write_one(&mut self, meta: &PacketMeta, data: &[u8], tally: &mut Tally) {
        match self.sink.write(meta, data) {
            Ok(()) => {
                tally.delivered += 1;
                tally.bytes += data.len() as u64;
                self.hot.observe(meta.linktype, data);
            }
            Err(e) => {
                match e {
                    SinkError::NoReader => tally.no_reader += 1,
                    SinkError::Failed(_) => tally.failed += 1,
                }
                self.failure(&e, tally);
            }
        }
    }

    /// After a run of packets: the sink's `chunk_done`, then the counts
    /// are published.
    pub(crate) fn end(&mut self, mut tally: Tally) {
        if let Err(e) = self.sink.chunk_done() {
            self.failure(&e, &mut tally);
        }
        self.counters.publish(&tally);
        self.counters.publish_hot(&self.hot);
    }

    /// After a sink error: keeps the first message and moves the packets
    /// the sink had accepted but could not write (a failed flush) from
    /// delivered to the error's drop reason.
    fn failure(&mut self, e: &SinkError, tally: &mut Tally) {
        let lost = self.sink.take_unwritten();
        match e {
            SinkError::NoReader => tally.lost_no_reader += lost.packets,
            SinkError::Failed(e) => {
                self.error.get_or_insert_with(|| e.to_string());
                tally.lost_failed += lost.packets;
            }
        }
        tally.lost_bytes += lost.bytes;
    }

    /// Finishes the sink; returns its first error.
    fn finish(mut self) -> Option<String> {
        if let Err(e) = self.sink.finish() {
            let mut tally = Tally::default();
            self.failure(&e, &mut tally);
            self.counters.publish(&tally);
        }
        self.error
    }
}

/// What a worker sends a consumer thread at each hand-off: one message
/// with its chunks for the thread's sinks (at most one per sink, all of
/// apps with one loss policy), or none, only news of its progress (with
/// several workers), and its watermark: no packet it sends the thread
/// later is older. One message per thread and hand-off, not one per
/// queue: each costs a channel operation and often a wake-up of the
/// consumer (a `futex` call, ~19 ns per packet at 8 apps × 4 queues when
/// each queue's chunk was its own message).
#[derive(Debug)]
pub(crate) struct Parcel {
    worker: u16,
    watermark: i64,
    /// (sink among the thread's, chunk).
    chunks: Vec<(u32, Chunk)>,
}

/// A consumer thread: takes parcels until every sender is gone, then
/// finishes its sinks; returns each sink's first error (the counts are in
/// the queues' [`QueueCounters`]). With several workers each sink's
/// chunks are merged in time order ([`Merge`]).
fn consume(rx: Receiver<Parcel>, mut sinks: Vec<SinkState>, workers: usize) -> Vec<Option<String>> {
    if workers <= 1 {
        for parcel in rx {
            for (k, chunk) in &parcel.chunks {
                sinks[*k as usize].deliver(chunk);
            }
        }
    } else {
        let mut merges: Vec<Merge> = (0..sinks.len()).map(|_| Merge::new(workers)).collect();
        for parcel in rx {
            let w = usize::from(parcel.worker);
            // The watermark concerns every sink of the thread: any of them
            // may now release packets another worker sent before.
            for m in &mut merges {
                m.advance(w, parcel.watermark);
            }
            for (k, chunk) in parcel.chunks {
                merges[k as usize].push(w, chunk);
            }
            for (m, sink) in merges.iter_mut().zip(&mut sinks) {
                m.release(sink, false);
            }
        }
        // Every worker is gone (each sent its last watermark, unless one
        // panicked): what is left leaves in time order.
        for (m, sink) in merges.iter_mut().zip(&mut sinks) {
            m.release(sink, true);
        }
    }
    sinks.into_iter().map(SinkState::finish).collect()
}

/// Where a queue's chunks go.
enum Route {
    /// The consumer thread serving the queue (its mailbox among the
    /// worker's) and the queue's place among that thread's sinks.
    Channel { mailbox: usize, sink: u32 },
    /// The queue's sink, run by the steering thread ([`Consumers::Inline`]).
    Inline(SinkState),
    /// Closed.
    Closed,
}

/// One queue's way out, as one worker sees it.
struct QueueOut {
    route: Route,
    loss: LossPolicy,
    dropped_queue_full: u64,
}

/// One worker's channel to one consumer thread, and the chunks of the
/// hand-off being collected for it (one list per loss policy: a lossless
/// parcel waits for room, a dropping one is dropped whole when the
/// channel is full).
struct Mailbox {
    tx: SyncSender<Parcel>,
    lossless: Vec<(u32, Chunk)>,
    dropping: Vec<(u32, Chunk)>,
    /// Per sink of the thread: its (app, queue).
    serves: Vec<(usize, usize)>,
}

/// One worker's ways out: per app, per queue, and its mailbox per
/// consumer thread. Chunks are collected by [`Outs::send`] and leave, one
/// parcel per thread, at [`Outs::post`].
pub(crate) struct Outs {
    worker: u16,
    queues: Vec<Vec<QueueOut>>,
    mailboxes: Vec<Mailbox>,
}

impl Outs {
    /// Queues app `a`'s chunk for queue `q` (an inline sink takes it at
    /// once).
    #[inline]
    pub(crate) fn send(&mut self, a: usize, q: usize, chunk: Chunk) {
        let out = &mut self.queues[a][q];
        match &mut out.route {
            Route::Channel { mailbox, sink } => {
                let m = &mut self.mailboxes[*mailbox];
                match out.loss {
                    LossPolicy::Lossless => m.lossless.push((*sink, chunk)),
                    LossPolicy::DropNewest => m.dropping.push((*sink, chunk)),
                }
            }
            Route::Inline(state) => state.deliver(&chunk),
            Route::Closed => {}
        }
    }

    /// Sends what [`Outs::send`] collected, one parcel per thread and loss
    /// policy, each with `watermark` (the worker sends no older packet
    /// later); with `ticks`, a thread that gets no chunk gets the
    /// watermark alone, unless its channel is full (the next parcel
    /// carries a newer one). A full channel drops a dropping parcel (each
    /// chunk counted as its queue's `dropped_queue_full`) and holds up a
    /// lossless one; a channel whose consumer is gone (it panicked) drops
    /// either.
    pub(crate) fn post(&mut self, watermark: i64, ticks: bool) {
        let worker = self.worker;
        for m in &mut self.mailboxes {
            if ticks && m.lossless.is_empty() && m.dropping.is_empty() {
                let _ = m.tx.try_send(Parcel {
                    worker,
                    watermark,
                    chunks: Vec::new(),
                });
                continue;
            }
            for lossless in [true, false] {
                let list = if lossless {
                    &mut m.lossless
                } else {
                    &mut m.dropping
                };
                if list.is_empty() {
                    continue;
                }
                let parcel = Parcel {
                    worker,
                    watermark,
                    chunks: std::mem::replace(list, Vec::with_capacity(m.serves.len())),
                };
                let unsent = if lossless {
                    m.tx.send(parcel).err().map(|e| e.0)
                } else {
                    m.tx.try_send(parcel).err().map(|e| match e {
                        TrySendError::Full(p) | TrySendError::Disconnected(p) => p,
                    })
                };
                for (k, chunk) in unsent.map(|p| p.chunks).unwrap_or_default() {
                    let (a, q) = m.serves[k as usize];
                    self.queues[a][q].dropped_queue_full += chunk.indices.len() as u64;
                }
            }
        }
    }

    /// Tells every consumer thread the worker's last watermark, waiting
    /// for room (with several workers, the merges wait for it).
    pub(crate) fn tick(&mut self, watermark: i64) {
        for m in &self.mailboxes {
            let _ = m.tx.send(Parcel {
                worker: self.worker,
                watermark,
                chunks: Vec::new(),
            });
        }
    }

    /// Per app, per queue: the packets dropped at a full channel.
    pub(crate) fn dropped_queue_full(&self) -> Vec<Vec<u64>> {
        self.queues
            .iter()
            .map(|qs| qs.iter().map(|o| o.dropped_queue_full).collect())
            .collect()
    }

    /// Closes every queue (for this worker: its channels go with it);
    /// per app and queue, an inline sink is finished and its first error
    /// returned.
    pub(crate) fn close(&mut self) -> Vec<Vec<Option<String>>> {
        self.mailboxes.clear();
        self.queues
            .iter_mut()
            .map(|qs| {
                qs.iter_mut()
                    .map(|o| match std::mem::replace(&mut o.route, Route::Closed) {
                        Route::Inline(state) => state.finish(),
                        Route::Channel { .. } | Route::Closed => None,
                    })
                    .collect()
            })
            .collect()
    }
}

/// A consumer thread and the (app, queue) of each sink it serves, in the
/// order of its sinks.
struct Consumer {
    handle: JoinHandle<Vec<Option<String>>>,
    serves: Vec<(usize, usize)>,
}

/// One application's outputs, as [`start`] takes them.
pub(crate) struct AppSinks {
    /// Its name (for thread names and the start hook).
    pub(crate) name: String,
    /// Its full-queue behaviour.
    pub(crate) loss: LossPolicy,
    /// One sink per queue.
    pub(crate) sinks: Vec<Box<dyn Sink>>,
}

/// A consumer thread before it starts: its sinks and the (app, queue)
/// each serves.
#[derive(Default)]
struct ThreadPlan {
    sinks: Vec<SinkState>,
    serves: Vec<(usize, usize)>,
    /// Whether its apps use [`LossPolicy::DropNewest`] (0), lossless (1).
    losses: [bool; 2],
}

/// The consumer threads, and every queue's counters.
pub(crate) struct ConsumerThreads {
    threads: Vec<Consumer>,
    /// Per app, per queue.
    pub(crate) counters: Vec<Vec<Arc<QueueCounters>>>,
}

impl std::fmt::Debug for ConsumerThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerThreads")
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// Starts the consumer threads for `apps` (in app order) fed by `workers`
/// workers; returns them and each worker's ways out. Queue k (of all
/// apps, in order) goes to thread k mod the thread count; no queues, no
/// threads. Inline sinks need a single worker.
pub(crate) fn start(
    apps: Vec<AppSinks>,
    consumers: Consumers,
    ring_chunks: usize,
    hook: Option<ThreadHook>,
    workers: usize,
) -> io::Result<(ConsumerThreads, Vec<Outs>)> {
    let workers = workers.max(1);
    if consumers == Consumers::Inline && workers > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "inline sinks run on the steering thread: they need a single worker",
        ));
    }
    let total: usize = apps.iter().map(|a| a.sinks.len()).sum();
    let threads = match consumers {
        Consumers::PerQueue => total,
        Consumers::Shared(n) => n.max(1).min(total),
        Consumers::Inline => 0,
    };
    let mut plan: Vec<ThreadPlan> = (0..threads).map(|_| ThreadPlan::default()).collect();
    let mut names = Vec::with_capacity(apps.len());
    let mut queues: Vec<Vec<Vec<QueueOut>>> = (0..workers)
        .map(|_| Vec::with_capacity(apps.len()))
        .collect();
    let mut counters = Vec::with_capacity(apps.len());
    let mut k = 0;
    for (a, AppSinks { name, loss, sinks }) in apps.into_iter().enumerate() {
        for out in &mut queues {
            out.push(Vec::with_capacity(sinks.len()));
        }
        let mut app_counters = Vec::with_capacity(sinks.len());
        for (q, sink) in sinks.into_iter().enumerate() {
            let queue_counters = Arc::new(QueueCounters::default());
            let mut state = Some(SinkState {
                sink,
                counters: Arc::clone(&queue_counters),
                error: None,
                hot: Box::default(),
            });
            let mut place = None;
            if threads > 0 {
                let thread = &mut plan[k % threads];
                thread.serves.push((a, q));
                thread.losses[usize::from(loss == LossPolicy::Lossless)] = true;
                thread.sinks.push(state.take().expect("not yet placed"));
                place = Some(thread.sinks.len() as u32 - 1);
            }
            for out in &mut queues {
                let route = match (place, state.take()) {
                    (Some(sink), _) => Route::Channel {
                        mailbox: k % threads,
                        sink,
                    },
                    (None, Some(state)) => Route::Inline(state),
                    (None, None) => unreachable!("inline sinks have one worker"),
                };
                out[a].push(QueueOut {
                    route,
                    loss,
                    dropped_queue_full: 0,
                });
            }
            app_counters.push(queue_counters);
            k += 1;
        }
        counters.push(app_counters);
        names.push(name);
    }
    // Room for `ring_chunks` hand-offs per worker and loss policy (a
    // hand-off sends a thread one parcel per policy its apps use).
    let channels: Vec<_> = plan
        .iter()
        .map(|t| {
            let policies = t.losses.iter().filter(|&&x| x).count().max(1);
            sync_channel::<Parcel>(ring_chunks.max(1) * workers * policies)
        })
        .collect();
    let outs = queues
        .into_iter()
        .enumerate()
        .map(|(w, queues)| Outs {
            worker: w as u16,
            queues,
            mailboxes: plan
                .iter()
                .zip(&channels)
                .map(|(t, (tx, _))| Mailbox {
                    tx: tx.clone(),
                    lossless: Vec::with_capacity(t.serves.len()),
                    dropping: Vec::with_capacity(t.serves.len()),
                    serves: t.serves.clone(),
                })
                .collect(),
        })
        .collect();
    let mut started = Vec::with_capacity(threads);
    for (
        t,
        (
            ThreadPlan {
                sinks: states,
                serves,
                ..
            },
            (_, rx),
        ),
    ) in plan.into_iter().zip(channels).enumerate()
    {
        let (a, q) = serves[0];
        let first = names[a].clone();
        let name = if serves.len() == 1 {
            format!("{first}-q{q}")
        } else {
            format!("consumer-{t}")
        };
        let hook = hook.clone();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(h) = hook {
                (h.0)(&first, q);
            }
            consume(rx, states, workers)
        })?;
        started.push(Consumer { handle, serves });
    }
    Ok((
        ConsumerThreads {
            threads: started,
            counters,
        },
        outs,
    ))
}

impl ConsumerThreads {
    /// Waits for the consumer threads (each ends once every worker has
    /// closed its queues); returns per app, per queue, the first sink
    /// error of the queues they served. The counters stay, final.
    pub(crate) fn join(&mut self) -> Vec<Vec<Option<String>>> {
        let mut errors: Vec<Vec<Option<String>>> =
            self.counters.iter().map(|q| vec![None; q.len()]).collect();
        for Consumer { handle, serves } in std::mem::take(&mut self.threads) {
            let results = handle
                .join()
                .unwrap_or_else(|_| vec![Some("consumer thread panicked".into()); serves.len()]);
            for ((a, q), e) in serves.into_iter().zip(results) {
                errors[a][q] = e;
            }
        }
        errors
    }
}
