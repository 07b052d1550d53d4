//! The batch arena: where a packet is copied, once.
//!
//! Contract:
//!
//! * A packet pushed is copied into the current [`Batch`] (its bytes into
//!   one growing buffer, its metadata into a 24-byte record) and is never
//!   copied again in the engine: every queue that receives it gets an
//!   index into the batch, shared through an [`Arc`] once the batch is
//!   handed off ([`Chunk`]).
//! * A packet's input position is its batch's first position plus its
//!   place in the batch (so the record need not store it).
//! * Batches are reused oldest first, and only once [`REUSE_DEPTH`] of
//!   them rotate and nobody else holds the oldest (see [`Arena::rotate`]).
//! * A packet still wanted after its batch was handed off (a fragment
//!   waiting for its first fragment, a packet behind it in a delay line)
//!   is a [`PacketRef::Shared`], which keeps its batch alive.

use std::collections::VecDeque;
use std::sync::Arc;

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

/// A batch of packets copied once, shared by every queue that gets one.
#[derive(Debug, Default)]
pub(crate) struct Batch {
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
    /// Packet `i` of the batch.
    #[inline]
    pub(crate) fn packet(&self, i: u32) -> (PacketMeta, &[u8]) {
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

    /// Packets in the batch.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.metas.len()
    }

    /// Input position of the batch's first packet.
    #[inline]
    pub(crate) fn first_index(&self) -> u64 {
        self.first_index
    }
}

/// A packet held beyond the steering step that saw it: an index into the
/// batch being filled, or — once that batch was handed off — a share of it.
#[derive(Debug)]
pub(crate) enum PacketRef {
    Current(u32),
    Shared(Arc<Batch>, u32),
}

impl PacketRef {
    /// Its input position; `current_first` is the current batch's first.
    pub(crate) fn index(&self, current_first: u64) -> u64 {
        match self {
            Self::Current(i) => current_first + u64::from(*i),
            Self::Shared(b, i) => b.first_index + u64::from(*i),
        }
    }

    /// The packet, `current` being the batch being filled.
    pub(crate) fn packet<'a>(&'a self, current: &'a Batch) -> (PacketMeta, &'a [u8]) {
        match self {
            Self::Current(i) => current.packet(*i),
            Self::Shared(b, i) => b.packet(*i),
        }
    }

    /// A handle into the current batch becomes a share of it (`batch`,
    /// being handed off).
    pub(crate) fn share(&mut self, batch: &Arc<Batch>) {
        if let Self::Current(i) = *self {
            *self = Self::Shared(Arc::clone(batch), i);
        }
    }
}

/// Indices of one batch's packets bound for one queue: the hand-off unit.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) batch: Arc<Batch>,
    pub(crate) indices: Vec<u32>,
}

impl Chunk {
    /// Its packets in order.
    pub(crate) fn packets(&self) -> impl Iterator<Item = (PacketMeta, &[u8])> {
        self.indices.iter().map(|&i| self.batch.packet(i))
    }
}

/// Batches in rotation before the oldest is reused. The consumer threads
/// read a batch's packet records on another core; writing those cache
/// lines again while the other core still holds them costs the steering
/// thread an ownership transfer per line that its prefetchers cannot hide
/// (measured: ~8 ns per 64-byte packet, BENCHMARKS.md). Reusing the batch
/// consumed longest ago, after several newer ones pushed it out of the
/// consumer core's cache, avoids most of that.
pub(crate) const REUSE_DEPTH: usize = 8;

/// The batch being filled and the pool of batches handed out.
#[derive(Debug)]
pub(crate) struct Arena {
    batch: Batch,
    /// Batches handed out, oldest first; one whose consumers are all done
    /// (the pool holds the last reference) is reused instead of allocating
    /// a new one.
    pool: VecDeque<Arc<Batch>>,
    /// Most batches the pool keeps.
    pool_max: usize,
    next_index: u64,
    batch_packets: usize,
    batch_bytes: usize,
}

impl Arena {
    /// An arena handing off batches of at most `batch_packets` packets or
    /// `batch_bytes` bytes, keeping up to `pool_max` of them for reuse.
    pub(crate) fn new(batch_packets: usize, batch_bytes: usize, pool_max: usize) -> Self {
        Self {
            batch: Batch::default(),
            pool: VecDeque::new(),
            pool_max: pool_max.max(REUSE_DEPTH),
            next_index: 0,
            batch_packets: batch_packets.max(1),
            batch_bytes,
        }
    }

    /// Copies one packet in; returns whether the batch is now full (to be
    /// handed off).
    #[inline]
    pub(crate) fn push(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) -> bool {
        let b = &mut self.batch;
        if b.metas.is_empty() {
            b.first_index = self.next_index;
        }
        self.next_index += 1;
        let start = b.data.len() as u32;
        b.data.extend_from_slice(data);
        b.metas.push(StoredMeta {
            ts_ns: ts_ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            start,
            len: data.len() as u32,
            orig_len,
            linktype,
        });
        b.metas.len() >= self.batch_packets || b.data.len() >= self.batch_bytes
    }

    /// The batch being filled.
    #[inline]
    pub(crate) fn current(&self) -> &Batch {
        &self.batch
    }

    /// Packets pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.next_index
    }

    /// Hands off the current batch (to be shared) and starts an empty one:
    /// the oldest of the pool once at least [`REUSE_DEPTH`] batches rotate
    /// and it is finished, else a new one. An oldest batch still in use (a
    /// consumer behind, or a fragment held for its first fragment) goes to
    /// the back, so it cannot stall reuse.
    pub(crate) fn rotate(&mut self) -> Arc<Batch> {
        let mut next = Batch::default();
        if self.pool.len() >= REUSE_DEPTH
            && let Some(oldest) = self.pool.pop_front()
        {
            match Arc::try_unwrap(oldest) {
                Ok(mut b) => {
                    b.data.clear();
                    b.metas.clear();
                    next = b;
                }
                Err(in_use) => self.pool.push_back(in_use),
            }
        }
        let batch = Arc::new(std::mem::replace(&mut self.batch, next));
        if self.pool.len() < self.pool_max {
            self.pool.push_back(Arc::clone(&batch));
        }
        batch
    }
}
