//! Affinity accounting: which queue each flow went to first, how many
//! flows each queue has, and packets of a known flow that reached another
//! queue (affinity violations).
//!
//! Contract: [`Account::steered`] is called exactly once per packet, when
//! its queue is decided (for a fragment that waited, when its first
//! fragment came or its hold ended), with the flow's direction-independent
//! digest. A steering core ([`crate::steering::Steering`]) reports to any
//! [`Account`]; the balancer's is the [`FlowTable`] here, the analyzer's
//! records each decision to compare schemes.
//!
//! The table is bounded (`max_flows`; beyond it flows are counted as
//! untracked, never stored), so a flood cannot grow it.

use symrss_hash::Tuple;

use crate::policy::Resolved;

/// What kind of decision a packet got (bits of [`Account::steered`]'s
/// `how`).
pub(crate) mod how {
    /// The packet has an IP flow (else it is non-IP, steered to queue 0,
    /// and its digest means nothing).
    pub(crate) const IP: u8 = 1;
    /// The packet is an IP fragment at or outside the steered layer.
    pub(crate) const FRAGMENT: u8 = 2;
    /// A later fragment whose first fragment was not known: hashed by its
    /// own addresses (hold expired or a tracker bound reached).
    pub(crate) const FALLBACK: u8 = 4;
    /// An ICMP error steered as the flow it quotes.
    pub(crate) const QUOTE: u8 = 8;
}

/// Receives each packet's steering decision.
pub(crate) trait Account {
    /// The packet at input position `index` went to `queue`; `flow` is its
    /// flow digest ([`flow_digest`]), `how` a set of [`how`] bits.
    fn steered(&mut self, queue: usize, flow: u64, how: u8, index: u64);
}

/// Direction-independent id of a flow for the affinity table.
#[inline]
pub(crate) fn flow_digest(tuple: &Tuple, proto: u8) -> u64 {
    tuple.flow_digest() ^ u64::from(proto).wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// [`flow_digest`] of a resolved flow.
#[inline]
pub(crate) fn resolved_digest(flow: &Resolved) -> u64 {
    flow_digest(&flow.tuple, flow.proto)
}

/// Entries of the recent-flow cache (a power of two).
const RECENT: usize = 4096;
/// Marks a used [`FlowTable::recent`] entry.
const RECENT_USED: u32 = 1 << 31;

/// The balancer's per-app flow table.
#[derive(Debug)]
pub(crate) struct FlowTable {
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
    /// Flows first seen on each queue.
    pub(crate) per_queue: Vec<u64>,
    /// Packets of a known flow on another queue than its first.
    pub(crate) affinity_violations: u64,
    /// Packets of flows not tracked (bound reached).
    pub(crate) untracked: u64,
}

impl FlowTable {
    /// A table for `queues` queues remembering at most `max_flows` flows
    /// (0: accounting off).
    pub(crate) fn new(queues: usize, max_flows: usize) -> Self {
        Self {
            max_flows,
            flows: rustc_hash::FxHashMap::default(),
            recent: vec![(0, 0); RECENT].into_boxed_slice(),
            per_queue: vec![0; queues],
            affinity_violations: 0,
            untracked: 0,
        }
    }
}

impl Account for FlowTable {
    // Always inlined into the steering loop: as a call it cost ~1.5×
    // its instructions (callgrind, BENCHMARKS.md).
    #[inline(always)]
    fn steered(&mut self, q: usize, id: u64, how: u8, _index: u64) {
        if how & how::IP == 0 || self.max_flows == 0 {
            return;
        }
        // The digest is well mixed: its low bits index the cache.
        let cached = &mut self.recent[id as usize & (RECENT - 1)];
        let first = if cached.1 & RECENT_USED != 0 && cached.0 == id {
            Some(cached.1 & !RECENT_USED)
        } else {
            let known = self.flows.get(&id).copied();
            match known {
                Some(f) => *cached = (id, f | RECENT_USED),
                None if self.flows.len() < self.max_flows => {
                    self.flows.insert(id, q as u32);
                    self.per_queue[q] += 1;
                    *cached = (id, q as u32 | RECENT_USED);
                }
                None => self.untracked += 1,
            }
            known
        };
        if first.is_some_and(|f| f as usize != q) {
            self.affinity_violations += 1;
        }
    }
}
