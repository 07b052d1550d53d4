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

/// What a worker sends a queue's consumer: a chunk, or only news of its
/// progress (with several workers), and its watermark: no packet it sends
/// the queue later is older.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) worker: u16,
    pub(crate) chunk: Option<Chunk>,
    pub(crate) watermark: i64,
}

/// A message on a consumer thread's channel: the sink (its place among
/// the thread's sinks) and the envelope.
type Message = (u32, Envelope);

/// A consumer thread: takes messages until every sender is gone, then
/// finishes its sinks; returns each sink's first error (the counts are in
/// the queues' [`QueueCounters`]). With several workers each sink's
/// messages are merged in time order ([`Merge`]).
fn consume(
    rx: Receiver<Message>,
    mut sinks: Vec<SinkState>,
    workers: usize,
) -> Vec<Option<String>> {
    if workers <= 1 {
        for (k, env) in rx {
            if let Some(chunk) = env.chunk {
                sinks[k as usize].deliver(&chunk);
            }
        }
    } else {
        let mut merges: Vec<Merge> = (0..sinks.len()).map(|_| Merge::new(workers)).collect();
        for (k, env) in rx {
            let k = k as usize;
            merges[k].push(env);
            merges[k].release(&mut sinks[k], false);
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
    /// The channel of the consumer thread serving the queue, and the
    /// queue's place among that thread's sinks.
    Channel { tx: SyncSender<Message>, sink: u32 },
    /// The queue's sink, run by the steering thread ([`Consumers::Inline`]).
    Inline(SinkState),
    /// Closed.
    Closed,
}

/// One queue's way out, as one worker sees it.
pub(crate) struct QueueOut {
    route: Route,
    loss: LossPolicy,
    worker: u16,
    pub(crate) dropped_queue_full: u64,
}

impl QueueOut {
    /// Sends one chunk (on the steering thread); `watermark` is the
    /// worker's before it.
    pub(crate) fn send(&mut self, chunk: Chunk, watermark: i64) {
        let (tx, sink) = match &mut self.route {
            Route::Channel { tx, sink } => (tx, *sink),
            Route::Inline(state) => return state.deliver(&chunk),
            Route::Closed => return,
        };
        let env = Envelope {
            worker: self.worker,
            chunk: Some(chunk),
            watermark,
        };
        let unsent = match self.loss {
            // The consumer is gone (it panicked): count as dropped.
            LossPolicy::Lossless => tx.send((sink, env)).err().map(|e| (e.0).1),
            LossPolicy::DropNewest => match tx.try_send((sink, env)) {
                Ok(()) => None,
                Err(TrySendError::Full((_, e)) | TrySendError::Disconnected((_, e))) => Some(e),
            },
        };
        if let Some(Envelope { chunk: Some(c), .. }) = unsent {
            self.dropped_queue_full += c.indices.len() as u64;
        }
    }

    /// Tells the queue's consumer the worker's new watermark (with several
    /// workers; the merge waits for it). A full channel skips it — the
    /// next message carries a newer one — except the last, which waits.
    pub(crate) fn tick(&mut self, watermark: i64, last: bool) {
        let Route::Channel { tx, sink } = &self.route else {
            return;
        };
        let env = Envelope {
            worker: self.worker,
            chunk: None,
            watermark,
        };
        if last {
            let _ = tx.send((*sink, env));
        } else {
            let _ = tx.try_send((*sink, env));
        }
    }

    /// Closes the queue (for this worker); an inline sink is finished and
    /// its first error returned.
    pub(crate) fn close(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.route, Route::Closed) {
            Route::Inline(state) => state.finish(),
            Route::Channel { .. } | Route::Closed => None,
        }
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

/// Per app, per queue: one worker's ways out.
pub(crate) type Outs = Vec<Vec<QueueOut>>;

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
    let channels: Vec<_> = (0..threads)
        .map(|t| {
            // Room for `ring_chunks` per queue the thread serves and worker.
            let served = (total - t).div_ceil(threads);
            sync_channel::<Message>(ring_chunks.max(1) * served * workers)
        })
        .collect();
    let mut names = Vec::with_capacity(apps.len());
    let mut outs: Vec<Outs> = (0..workers)
        .map(|_| Vec::with_capacity(apps.len()))
        .collect();
    let mut counters = Vec::with_capacity(apps.len());
    let mut k = 0;
    for (a, AppSinks { name, loss, sinks }) in apps.into_iter().enumerate() {
        for out in &mut outs {
            out.push(Vec::with_capacity(sinks.len()));
        }
        let mut app_counters = Vec::with_capacity(sinks.len());
        for (q, sink) in sinks.into_iter().enumerate() {
            let queue_counters = Arc::new(QueueCounters::default());
            let mut state = Some(SinkState {
                sink,
                counters: Arc::clone(&queue_counters),
                error: None,
            });
            let mut place = None;
            if threads > 0 {
                let thread = &mut plan[k % threads];
                thread.serves.push((a, q));
                thread.sinks.push(state.take().expect("not yet placed"));
                place = Some(thread.sinks.len() as u32 - 1);
            }
            for (w, out) in outs.iter_mut().enumerate() {
                let route = match (place, state.take()) {
                    (Some(sink), _) => Route::Channel {
                        tx: channels[k % threads].0.clone(),
                        sink,
                    },
                    (None, Some(state)) => Route::Inline(state),
                    (None, None) => unreachable!("inline sinks have one worker"),
                };
                out[a].push(QueueOut {
                    route,
                    loss,
                    worker: w as u16,
                    dropped_queue_full: 0,
                });
            }
            app_counters.push(queue_counters);
            k += 1;
        }
        counters.push(app_counters);
        names.push(name);
    }
    let mut started = Vec::with_capacity(threads);
    for (
        t,
        (
            ThreadPlan {
                sinks: states,
                serves,
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
