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
            match self.sink.write(&meta, data) {
                Ok(()) => {
                    tally.delivered += 1;
                    tally.bytes += data.len() as u64;
                }
                Err(e) => {
                    match e {
                        SinkError::NoReader => tally.no_reader += 1,
                        SinkError::Failed(_) => tally.failed += 1,
                    }
                    self.failure(&e, &mut tally);
                }
            }
        }
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

/// A consumer thread: takes (sink, chunk) messages until every queue it
/// serves is closed, then finishes its sinks; returns each sink's first
/// error (the counts are in the queues' [`QueueCounters`]).
fn consume(rx: Receiver<(u32, Chunk)>, mut sinks: Vec<SinkState>) -> Vec<Option<String>> {
    for (k, chunk) in rx {
        sinks[k as usize].deliver(&chunk);
    }
    sinks.into_iter().map(SinkState::finish).collect()
}

/// Where a queue's chunks go.
enum Route {
    /// The channel of the consumer thread serving the queue, and the
    /// queue's place among that thread's sinks.
    Channel {
        tx: SyncSender<(u32, Chunk)>,
        sink: u32,
    },
    /// The queue's sink, run by the steering thread ([`Consumers::Inline`]).
    Inline(SinkState),
    /// Closed by [`Delivery::close`].
    Closed,
}

/// One queue's way out.
pub(crate) struct QueueOut {
    route: Route,
    loss: LossPolicy,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) dropped_queue_full: u64,
}

impl QueueOut {
    /// Sends one chunk (on the steering thread).
    pub(crate) fn send(&mut self, chunk: Chunk) {
        let (tx, sink) = match &mut self.route {
            Route::Channel { tx, sink } => (tx, *sink),
            Route::Inline(state) => return state.deliver(&chunk),
            Route::Closed => return,
        };
        match self.loss {
            LossPolicy::Lossless => {
                if let Err(e) = tx.send((sink, chunk)) {
                    // The consumer is gone (it panicked): count as dropped.
                    self.dropped_queue_full += (e.0).1.indices.len() as u64;
                }
            }
            LossPolicy::DropNewest => match tx.try_send((sink, chunk)) {
                Ok(()) => {}
                Err(TrySendError::Full((_, c)) | TrySendError::Disconnected((_, c))) => {
                    self.dropped_queue_full += c.indices.len() as u64;
                }
            },
        }
    }
}

/// A consumer thread and the (app, queue) of each sink it serves, in the
/// order of its sinks.
struct Consumer {
    handle: JoinHandle<Vec<Option<String>>>,
    serves: Vec<(usize, usize)>,
}

/// One application's outputs, as [`Delivery::start`] takes them.
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

/// Every queue's way out and the consumer threads.
pub(crate) struct Delivery {
    /// Per app, per queue.
    pub(crate) apps: Vec<Vec<QueueOut>>,
    consumers: Vec<Consumer>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("threads", &self.consumers.len())
            .finish()
    }
}

impl Delivery {
    /// Starts the consumer threads for `apps` (in app order). Queue k (of
    /// all apps, in order) goes to thread k mod the thread count; no
    /// queues, no threads.
    pub(crate) fn start(
        apps: Vec<AppSinks>,
        consumers: Consumers,
        ring_chunks: usize,
        hook: Option<ThreadHook>,
    ) -> io::Result<Self> {
        let total: usize = apps.iter().map(|a| a.sinks.len()).sum();
        let threads = match consumers {
            Consumers::PerQueue => total,
            Consumers::Shared(n) => n.max(1).min(total),
            Consumers::Inline => 0,
        };
        let mut plan: Vec<ThreadPlan> = (0..threads).map(|_| ThreadPlan::default()).collect();
        let channels: Vec<_> = (0..threads)
            .map(|t| {
                // Room for `ring_chunks` per queue the thread serves.
                let served = (total - t).div_ceil(threads);
                sync_channel::<(u32, Chunk)>(ring_chunks.max(1) * served)
            })
            .collect();
        let mut names = Vec::with_capacity(apps.len());
        let mut out = Vec::with_capacity(apps.len());
        let mut k = 0;
        for (a, AppSinks { name, loss, sinks }) in apps.into_iter().enumerate() {
            let mut queues = Vec::with_capacity(sinks.len());
            for (q, sink) in sinks.into_iter().enumerate() {
                let counters = Arc::new(QueueCounters::default());
                let state = SinkState {
                    sink,
                    counters: Arc::clone(&counters),
                    error: None,
                };
                let route = if threads == 0 {
                    Route::Inline(state)
                } else {
                    let thread = &mut plan[k % threads];
                    thread.serves.push((a, q));
                    thread.sinks.push(state);
                    Route::Channel {
                        tx: channels[k % threads].0.clone(),
                        sink: thread.sinks.len() as u32 - 1,
                    }
                };
                queues.push(QueueOut {
                    route,
                    loss,
                    counters,
                    dropped_queue_full: 0,
                });
                k += 1;
            }
            out.push(queues);
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
                consume(rx, states)
            })?;
            started.push(Consumer { handle, serves });
        }
        Ok(Self {
            apps: out,
            consumers: started,
        })
    }

    /// Closes every queue, finishes the inline sinks, waits for the
    /// consumer threads; returns per app, per queue, the first sink error.
    pub(crate) fn close(&mut self) -> Vec<Vec<Option<String>>> {
        let mut errors: Vec<Vec<Option<String>>> = self
            .apps
            .iter_mut()
            .map(|queues| {
                queues
                    .iter_mut()
                    .map(
                        |out| match std::mem::replace(&mut out.route, Route::Closed) {
                            Route::Inline(state) => state.finish(),
                            Route::Channel { .. } | Route::Closed => None,
                        },
                    )
                    .collect()
            })
            .collect();
        // Once every sender is gone, each consumer thread finishes its
        // sinks and ends.
        for Consumer { handle, serves } in std::mem::take(&mut self.consumers) {
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
