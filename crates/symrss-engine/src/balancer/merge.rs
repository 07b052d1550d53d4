//! A queue fed by several workers: their chunks merged into one stream in
//! timestamp order.
//!
//! Each worker's own stream to a queue is in time order (its input is,
//! and its delay line keeps it so), and each message carries the worker's
//! *watermark*: no packet it sends later is older. A packet leaves when it
//! is the oldest head of all streams and no worker whose stream is empty
//! could still send an older one (its watermark is not below the packet's
//! time). Equal times leave in worker order, so the result is
//! deterministic for a given split of the input. A worker that has
//! finished sends `i64::MAX`.

use std::collections::VecDeque;

use super::delivery::SinkState;
use super::stats::Tally;
use crate::arena::Chunk;

/// One queue's merge.
#[derive(Debug)]
pub(crate) struct Merge {
    /// Per worker: chunks not fully delivered, and the place in the first.
    streams: Vec<(VecDeque<Chunk>, usize)>,
    watermarks: Vec<i64>,
    /// Per worker: the time of its next packet (`None`: its stream is
    /// empty), kept as the streams move.
    heads: Vec<Option<i64>>,
}

impl Merge {
    /// A merge of `workers` streams.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            streams: (0..workers).map(|_| (VecDeque::new(), 0)).collect(),
            watermarks: vec![i64::MIN; workers],
            heads: vec![None; workers],
        }
    }

    /// Worker `w` will send nothing older than `watermark`.
    pub(crate) fn advance(&mut self, w: usize, watermark: i64) {
        self.watermarks[w] = self.watermarks[w].max(watermark);
    }

    /// Takes worker `w`'s next chunk (after the [`Merge::advance`] of the
    /// parcel it came in).
    pub(crate) fn push(&mut self, w: usize, chunk: Chunk) {
        if chunk.indices.is_empty() {
            return;
        }
        self.streams[w].0.push_back(chunk);
        if self.heads[w].is_none() {
            self.heads[w] = self.head(w);
        }
    }

    /// The time of worker `w`'s next packet.
    fn head(&self, w: usize) -> Option<i64> {
        let (chunks, at) = &self.streams[w];
        chunks
            .front()
            .map(|c| c.batch.packet(c.indices[*at]).0.ts_ns as i64)
    }

    /// Hands the sink every packet that can leave now (`all`: every
    /// packet, at the end): runs of the stream with the oldest head, each
    /// as long as it stays older than every other head and every empty
    /// stream's watermark.
    pub(crate) fn release(&mut self, sink: &mut SinkState, all: bool) {
        let mut tally = Tally::default();
        loop {
            // The oldest head (the first worker on a tie), and what the
            // run from it must stay below: the other heads and the
            // watermarks of the empty streams.
            let mut oldest: Option<(i64, usize)> = None;
            for (w, head) in self.heads.iter().enumerate() {
                if let Some(t) = *head
                    && oldest.is_none_or(|(o, _)| t < o)
                {
                    oldest = Some((t, w));
                }
            }
            let Some((t, w)) = oldest else { break };
            // A packet may leave at `limit` itself when the stream it
            // would tie with comes later in worker order.
            let mut limit = (i64::MAX, true);
            for x in (0..self.streams.len()).filter(|&x| x != w) {
                let (other, ties_after) = match self.heads[x] {
                    Some(h) => (h, x > w),
                    None if all => continue,
                    None => (self.watermarks[x], true),
                };
                if (other, ties_after) < limit {
                    limit = (other, ties_after);
                }
            }
            let fits = |ts: i64| ts < limit.0 || (ts == limit.0 && limit.1);
            if !fits(t) {
                break;
            }
            let (chunks, at) = &mut self.streams[w];
            let mut next = None;
            while let Some(chunk) = chunks.front() {
                let (meta, data) = chunk.batch.packet(chunk.indices[*at]);
                if !fits(meta.ts_ns as i64) {
                    next = Some(meta.ts_ns as i64);
                    break;
                }
                sink.write_one(&meta, data, &mut tally);
                *at += 1;
                if *at == chunk.indices.len() {
                    chunks.pop_front();
                    *at = 0;
                }
            }
            self.heads[w] = next;
        }
        if tally.offered() > 0 {
            sink.end(tally);
        }
    }
}
