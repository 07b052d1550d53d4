//! Affinity accounting: how a steering reports its decisions (which
//! queue each flow went to first, how many flows each queue has, and
//! packets of a known flow that reached another queue).
//!
//! Contract: [`Account::steered`] (or [`Account::steered_common`]) is
//! called exactly once per packet and steering, when its queue is decided
//! (for a fragment that waited, when its first fragment came or its hold
//! ended), with the flow's direction-independent digest. The steerings of
//! a steerer ([`crate::steering::Steerer`]) report to one [`Account`]: the
//! balancer's is the flow table of every app ([`crate::flowtable`]), the
//! analyzer's records each decision to compare schemes.

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
    /// A TCP FIN from the endpoint that sorts first (address, port).
    pub(crate) const FIN_LOW: u8 = 16;
    /// A TCP FIN from the other endpoint.
    pub(crate) const FIN_HIGH: u8 = 32;
    /// A TCP RST (from either end).
    pub(crate) const RST: u8 = 64;
    /// Any of the end bits.
    pub(crate) const ENDS: u8 = FIN_LOW | FIN_HIGH | RST;
}

/// Receives each packet's steering decision, for every steering of a
/// steerer (`app` is the steering's position).
pub(crate) trait Account {
    /// Before a step's decisions: it has `common` common packets (looked
    /// up once for every app, at [`Account::settle`]), `decisions` bounds
    /// the calls to come before the next `prepare`, `ts_ns` is the packet
    /// time.
    fn prepare(&mut self, common: usize, decisions: usize, ts_ns: i128);
    /// The packet at input position `index` went to `queue`; `flow` is its
    /// flow digest ([`flow_digest`]), `how` a set of [`how`] bits.
    fn steered(&mut self, app: usize, queue: usize, flow: u64, how: u8, index: u64);
    /// [`Account::steered`] for the `k`-th common packet of the step
    /// (whose digest is `flow`).
    fn steered_common(
        &mut self,
        app: usize,
        queue: usize,
        k: usize,
        flow: u64,
        how: u8,
        index: u64,
    );
    /// Every steering has reported the step: `common` are the flow digests
    /// of its common packets, `how` their [`how`] bits.
    fn settle(&mut self, common: &[u64], how: &[u8]);
    /// The flow table rebalancing steerings place flows in
    /// ([`crate::rebalance`]), if any steering rebalances: the balancer's
    /// own (accounting and placement in one look-up), the analyzer's kept
    /// for them.
    fn placement(&mut self) -> Option<&mut crate::flowtable::FlowTable>;
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

impl Account for crate::flowtable::FlowTable {
    #[inline]
    fn prepare(&mut self, common: usize, decisions: usize, ts_ns: i128) {
        self.prepare(ts_ns, common, decisions);
    }

    #[inline]
    fn settle(&mut self, common: &[u64], how: &[u8]) {
        self.settle(common, how);
    }

    #[inline]
    fn placement(&mut self) -> Option<&mut crate::flowtable::FlowTable> {
        self.places().then_some(self)
    }

    // Always inlined into the steering loop: as a call it cost ~1.5×
    // its instructions (callgrind, BENCHMARKS.md).
    #[inline(always)]
    fn steered(&mut self, app: usize, queue: usize, flow: u64, how: u8, _index: u64) {
        self.steered(app, queue, flow, how);
    }

    #[inline(always)]
    fn steered_common(&mut self, app: usize, queue: usize, k: usize, _: u64, _: u8, _: u64) {
        self.steered_common(app, queue, k);
    }
}
