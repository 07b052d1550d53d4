//! The balancer's counters: per queue (published by the consumer threads
//! as they go) and per application.
//!
//! Invariant, per application once the balancer has finished:
//! `received = delivered + dropped`, `dropped` being the sum of every
//! queue's drop reasons. While running, packets still in a channel are
//! neither yet, so `received >= delivered + dropped`.

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::flowtable::TableStats;
use crate::frag::FragStats;
use crate::steering::DissectErrors;

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
    /// Packets of flows the flow table had no room for (`max_flows`
    /// reached): steered as usual, but not counted in the queues' flows
    /// nor checked for affinity. In a flood of one-packet flows, the flows
    /// that did not fit.
    pub packets_untracked: u64,
    /// Fragment tracker counters.
    pub fragments: FragStats,
    /// First sink error, if any.
    pub sink_error: Option<String>,
    /// Per queue, its hottest flows (sampled estimates, largest first;
    /// [`super::hot`]).
    pub hot_flows: Vec<Vec<super::hot::HotFlow>>,
    /// Per queue, its first sink error (set by
    /// [`Balancer::finish`](super::Balancer::finish)).
    pub queue_errors: Vec<Option<String>>,
    /// Frames whose dissection stopped early (the same for every app:
    /// each frame is dissected once); they were steered by the layers
    /// read before the error.
    pub dissect_errors: DissectErrors,
    /// The flow table (the same for every app: one table holds every
    /// app's queue of a flow; summed over steering workers).
    pub flow_table: TableStats,
    /// What rebalancing did, for an app that rebalances.
    pub rebalance: Option<crate::rebalance::RebalanceStats>,
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
/// running balancer can report them.
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    delivered: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
    no_reader: AtomicU64,
    /// The consumer's hottest flows after its last chunk ([`super::hot`]).
    hot: std::sync::Mutex<Vec<super::hot::Entry>>,
}

/// One chunk's counts, published at once.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) delivered: u64,
    pub(crate) bytes: u64,
    pub(crate) failed: u64,
    pub(crate) no_reader: u64,
    /// Packets delivered earlier that the sink then lost, by reason.
    pub(crate) lost_failed: u64,
    pub(crate) lost_no_reader: u64,
    pub(crate) lost_bytes: u64,
}

impl Tally {
    /// Packets the sink was offered.
    pub(crate) fn offered(&self) -> u64 {
        self.delivered + self.failed + self.no_reader
    }
}

impl QueueCounters {
    /// Adds a chunk's counts; packets lost after delivery move from
    /// delivered to their reason.
    pub(crate) fn publish(&self, t: &Tally) {
        self.delivered.fetch_add(t.delivered, Ordering::Relaxed);
        self.bytes.fetch_add(t.bytes, Ordering::Relaxed);
        self.no_reader
            .fetch_add(t.no_reader + t.lost_no_reader, Ordering::Relaxed);
        self.failed
            .fetch_add(t.failed + t.lost_failed, Ordering::Relaxed);
        if t.lost_no_reader + t.lost_failed > 0 {
            self.delivered
                .fetch_sub(t.lost_no_reader + t.lost_failed, Ordering::Relaxed);
            self.bytes.fetch_sub(t.lost_bytes, Ordering::Relaxed);
        }
    }

    /// Publishes the queue's hottest flows (after a chunk).
    pub(crate) fn publish_hot(&self, sketch: &super::hot::Sketch) {
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        sketch.top(&mut hot);
    }

    /// The hottest flows published last, largest first: those sampled at
    /// least [`super::hot::LISTED_SAMPLES`] times for sure (a flow that
    /// took a slot over inherits a count it may not have).
    pub(crate) fn hot_flows(&self) -> Vec<super::hot::HotFlow> {
        let hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        hot.iter()
            .filter(|e| e.surely_sampled() >= super::hot::LISTED_SAMPLES)
            .map(super::hot::Entry::hot_flow)
            .collect()
    }

    /// The queue's counters now; `flows` and `dropped_queue_full` are kept
    /// by the steering thread.
    pub(crate) fn stats(&self, flows: u64, dropped_queue_full: u64) -> QueueStats {
        QueueStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            flows,
            dropped_queue_full,
            dropped_sink_error: self.failed.load(Ordering::Relaxed),
            dropped_no_reader: self.no_reader.load(Ordering::Relaxed),
        }
    }
}
