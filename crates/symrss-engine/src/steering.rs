//! The steering core: the one place a packet's queue is chosen, for the
//! balancer (`split`, `capture`) and for the analyzer (`analyze`) alike.
//!
//! Per packet and application (or analyzed scheme) a [`Steering`]:
//! dissects (once per packet for all of them, [`Steerer`]), classifies the
//! frame through its [`Policy`] (layer, ports, ICMP-error follow,
//! fragments), lets a later fragment follow its first fragment through the
//! fragment tracker (bounded, timed hold by packet time), hashes, looks the
//! hash up in the RETA and reports the decision to its [`Account`].
//!
//! It works in steps of [`STEER_PACKETS`] packets, while they are still in
//! L1: first each packet is classified (its queue decided at once, or left
//! for the batch hash — the fast path — or a *hole* while a fragment
//! waits), then the fast-path tuples are hashed as one batch, then the
//! queues are assigned in input order.
//!
//! Order: within a queue, packets leave in input order. While a fragment
//! waits for its first fragment, every later packet of the same steering
//! waits behind it in a delay line (bounded by [`FragConfig::hold_ns`] and
//! [`FragConfig::max_delayed`]); the fragment takes its own place once its
//! queue is known. [`Steering::emit`] hands each queue its packets of a
//! batch as a [`Chunk`] (in order), then what can leave the delay line.
//!
//! Non-IP frames go to queue 0.

use std::collections::VecDeque;
use std::sync::Arc;

use symrss_hash::{Reta, Tuple};
use symrss_wire::{FlowKey, Options, dissect_into, plain_flow};

use crate::affinity::{Account, flow_digest, how, resolved_digest};
use crate::arena::{Arena, Batch, Chunk, PacketRef};
use crate::frag::{FragConfig, FragStats, FragTracker, Outcome};
use crate::policy::{Policy, Resolved, Subject};
use crate::rebalance::{RebalanceStats, Rebalancer};
use crate::workers::Shared;

/// Packets steered together (dissected, classified and hashed while the
/// packets are still in the L1 cache); the hand-off unit is the batch.
pub(crate) const STEER_PACKETS: usize = 256;

/// One packet's place in a steering step, in input order: 24 bytes.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Queue, or [`FAST`]: the next of the step's fast-path hashes, or
    /// [`HOLE`].
    queue: u32,
    /// Index into the batch.
    entry: u32,
    /// Flow digest (meaningless without [`how::IP`]).
    flow: u64,
    /// [`how`] bits.
    how: u8,
}

const _: () = assert!(size_of::<Slot>() == 24);

/// [`Slot::queue`] of a packet hashed with the step (the common case: not
/// a fragment, no port rule to apply).
const FAST: u32 = u32::MAX;
/// [`Slot::queue`] of a later fragment waiting for its first fragment: its
/// queue is not known yet, so its place is kept in the delay line.
const HOLE: u32 = u32::MAX - 1;
/// [`Slot::queue`] of one of the step's common packets ([`Common`]): hashed
/// once per scheme for every steering, looked up once in the flow table;
/// [`Slot::flow`] is then its position among them.
const COMMON: u32 = u32::MAX - 2;

/// Where a decision's flow is in the flow table: a common packet's,
/// looked up with its step, or by its digest.
#[derive(Clone, Copy, Debug)]
enum FlowAt {
    Common(usize),
    Digest(u64),
}

/// The queue of an IP packet whose hash is `hash`: the RETA's entry, or
/// with rebalancing its flow's placement in the account's flow table
/// (`at` the flow, `how` its [`how`] bits, `ts` its decision's packet
/// time, read only then; `app` the steering's position).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the one place a queue is decided
fn decide<A: Account>(
    reta: &Reta,
    placing: &mut Placing,
    account: &mut A,
    app: usize,
    hash: u32,
    at: FlowAt,
    how: u8,
    ts: impl Fn() -> i128,
) -> u32 {
    if let Some(b) = &mut placing.buckets {
        b[reta.index(hash)] += 1;
    }
    let Some(r) = &mut placing.rebalance else {
        return reta.queue(hash);
    };
    let table = account
        .placement()
        .expect("a rebalancing steering's account places flows");
    // (A common packet's flow was looked up with its step, at its time.)
    let slot = match at {
        FlowAt::Common(k) => table.step_slot(k),
        FlowAt::Digest(d) => table.find_live(d, crate::flowtable::time_unit(ts())),
    };
    r.place(table, app, slot, reta.index(hash), how, ts)
}

/// How a steering decides beyond its RETA: rebalancing, and (for the
/// analyzer) counting packets per RETA bucket.
#[derive(Debug, Default)]
pub(crate) struct Placing {
    /// With rebalancing: the live bucket table, the windows' loads.
    rebalance: Option<Box<Rebalancer>>,
    /// Packets per RETA bucket (what makes a static table's queue hot).
    buckets: Option<Vec<u64>>,
}

/// What deciding and reporting a step's slots needs besides the slots.
struct Decider<'a, A> {
    reta: &'a Reta,
    placing: &'a mut Placing,
    account: &'a mut A,
    app: usize,
    batch: &'a Batch,
    common: &'a Common,
    /// The step's common packets' hashes under this steering's scheme.
    hashes: &'a [u32],
    /// Input position of the batch's first packet.
    first: u64,
}

impl<A: Account> Decider<'_, A> {
    /// A slot's queue: its own, for a fast-path slot the queue of the
    /// step's next batch hash, for a common packet the queue of its
    /// scheme's hash ([`HOLE`] stays a hole).
    #[inline(always)]
    fn queue(&mut self, slot: &Slot, fast: &mut std::slice::Iter<'_, u32>) -> u32 {
        let batch = self.batch;
        let ts = || batch.packet(slot.entry).0.ts_ns;
        let (hash, at, how) = match slot.queue {
            COMMON => {
                let k = slot.flow as usize;
                (self.hashes[k], FlowAt::Common(k), self.common.how[k])
            }
            FAST => {
                let hash = *fast.next().expect("one hash per fast slot");
                (hash, FlowAt::Digest(slot.flow), slot.how)
            }
            q => return q,
        };
        decide(
            self.reta,
            self.placing,
            self.account,
            self.app,
            hash,
            at,
            how,
            ts,
        )
    }

    /// Reports one decision (a common packet's flow by its position).
    #[inline(always)]
    fn report(&mut self, slot: &Slot, q: usize) {
        let index = self.first + u64::from(slot.entry);
        if slot.queue == COMMON {
            let k = slot.flow as usize;
            let c = self.common;
            self.account
                .steered_common(self.app, q, k, c.digests[k], c.how[k], index);
        } else {
            self.account
                .steered(self.app, q, slot.flow, slot.how, index);
        }
    }
}

/// The step's common packets: plain frames (one Ethernet/IPv4 TCP/UDP
/// layer) that steerings hash as they are. Their tuples are hashed once
/// per distinct scheme and their flows looked up once for all apps, so an
/// app beyond the first costs only its RETA lookup and its hand-off.
#[derive(Debug, Default)]
struct Common {
    tuples: Vec<Tuple>,
    digests: Vec<u64>,
    /// Per tuple, its [`how`] bits (the same for every steering).
    how: Vec<u8>,
    /// Per tuple, its packet time in flow-table units, kept only when
    /// some steering rebalances (its flows are placed by their times).
    units: Vec<u32>,
    keep_units: bool,
    /// Per scheme group, the hash of each tuple.
    hashes: Vec<Vec<u32>>,
}

impl Common {
    /// Adds a common packet; returns its position among them.
    #[inline]
    fn push(&mut self, p: &symrss_wire::PlainFlow, ts_ns: i128) -> usize {
        if self.keep_units {
            self.units.push(crate::flowtable::time_unit(ts_ns));
        }
        self.tuples.push(p.tuple);
        self.digests.push(flow_digest(&p.tuple, p.proto));
        self.how
            .push(how::IP | end_bits(&p.tuple, p.proto, p.tcp_flags));
        self.tuples.len() - 1
    }
}

/// TCP end bits ([`how::FIN_LOW`], [`how::FIN_HIGH`], [`how::RST`]) of a
/// packet with these flags.
#[inline]
fn end_bits(tuple: &Tuple, proto: u8, tcp_flags: u8) -> u8 {
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;
    if proto != 6 || tcp_flags & (FIN | RST) == 0 {
        0
    } else if tcp_flags & RST != 0 {
        how::RST
    } else if tuple.src_sorts_first() {
        how::FIN_LOW
    } else {
        how::FIN_HIGH
    }
}

/// [`end_bits`] of a dissected layer whose TCP header is in `frame`.
#[inline]
fn layer_end_bits(frame: &[u8], l: &symrss_wire::IpLayer) -> u8 {
    if l.proto != 6 || l.frag.is_some_and(|f| !f.is_first()) || l.quoted.is_some() {
        return 0;
    }
    let flags = frame.get(l.l4_offset as usize + 13).copied().unwrap_or(0);
    end_bits(&l.tuple, l.proto, flags)
}

/// A hole whose queue became known: its input position, queue, flow and
/// [`how`] bits.
#[derive(Clone, Copy, Debug)]
struct Filled {
    at: u64,
    queue: u32,
    flow: u64,
    how: u8,
}

/// The steering of one application (or analyzed scheme).
#[derive(Debug)]
pub(crate) struct Steering {
    policy: Policy,
    /// Its scheme's group in the steerer (steerings of one scheme share
    /// the hashes of the common packets).
    group: usize,
    reta: Reta,
    dissect: Options,
    tracker: FragTracker<PacketRef, Resolved>,
    /// The step's first packets, while every one so far is a common
    /// packet: the run's length (the common packets 0..run of the step)
    /// and its first packet's place in the batch. Kept as a count, not as
    /// slots: an app's cost per common packet is then its RETA lookup, its
    /// queue's list and its flow-table note. [`Steering::slots`] follow it.
    run: u32,
    run_first: u32,
    /// This step's packets in input order (after the run).
    slots: Vec<Slot>,
    /// Tuples of the step's fast-path packets, in order, and their hashes.
    fast: Vec<Tuple>,
    fast_hashes: Vec<u32>,
    /// Input position of the current batch's first packet.
    batch_first: u64,
    /// Whether this step's slots hold a [`HOLE`].
    step_has_hole: bool,
    /// The delay line: while a fragment waits for its first fragment (a
    /// [`HOLE`]), every later packet is kept back here, in input order,
    /// with its queue; the front leaves once its hole is filled. Bounded
    /// by [`FragConfig::max_delayed`].
    delay: VecDeque<(PacketRef, u32)>,
    /// Input position of `delay[0]`.
    delay_front: u64,
    /// Holes filled since the last [`Steering::assign`].
    filled: Vec<Filled>,
    /// Per queue, the current batch's packets in order (those not kept
    /// back in the delay line).
    pending: Vec<Vec<u32>>,
    /// Packets seen.
    pub(crate) received: u64,
    /// Non-IP frames (steered to queue 0).
    pub(crate) non_ip: u64,
    /// With several workers: the directory of first fragments and this
    /// steering's app number in it.
    remote: Option<(Arc<Shared>, u16)>,
    /// Rebalancing and bucket counts, if any.
    placing: Placing,
}

impl Steering {
    /// Steering by `policy` over `queues` queues.
    pub(crate) fn new(policy: Policy, queues: u32, frag: FragConfig, dissect: Options) -> Self {
        let queues = queues.max(1);
        let reta = policy.reta(queues);
        Self {
            placing: Placing {
                rebalance: policy
                    .rebalance
                    .map(|cfg| Box::new(Rebalancer::new(cfg, &reta))),
                buckets: None,
            },
            reta,
            policy,
            group: 0,
            dissect,
            tracker: FragTracker::new(frag),
            run: 0,
            run_first: 0,
            slots: Vec::with_capacity(STEER_PACKETS),
            fast: Vec::with_capacity(STEER_PACKETS),
            fast_hashes: Vec::with_capacity(STEER_PACKETS),
            batch_first: 0,
            step_has_hole: false,
            delay: VecDeque::new(),
            delay_front: 0,
            filled: Vec::new(),
            pending: vec![Vec::new(); queues as usize],
            received: 0,
            non_ip: 0,
            remote: None,
        }
    }

    /// Shares first fragments with the other workers' steerings of app
    /// `app` through `shared`.
    pub(crate) fn with_remote(mut self, shared: Arc<Shared>, app: u16) -> Self {
        debug_assert!(
            self.placing.rebalance.is_none(),
            "rebalancing needs every packet of a flow on one worker"
        );
        self.remote = Some((shared, app));
        self
    }

    /// This steering counts its packets per RETA bucket (the analyzer's
    /// explanation of a static table's hot queue).
    pub(crate) fn with_bucket_counts(mut self) -> Self {
        self.placing.buckets = Some(vec![0; self.reta.len()]);
        self
    }

    /// Packets per RETA bucket (with [`Steering::with_bucket_counts`]),
    /// and the table's entries as built.
    pub(crate) fn bucket_counts(&self) -> Option<(&[u64], &[u32])> {
        let b = self.placing.buckets.as_deref()?;
        Some((b, self.reta.entries()))
    }

    /// What rebalancing did (`None` without it), with every window's
    /// load when `windows`.
    pub(crate) fn rebalance_stats(&self, windows: bool) -> Option<RebalanceStats> {
        self.placing.rebalance.as_ref().map(|r| r.stats(windows))
    }

    /// Timestamp of the oldest packet waiting in the delay line.
    fn delay_front_ts(&self, current: &Batch) -> Option<i64> {
        self.delay
            .front()
            .map(|(r, _)| r.packet(current).0.ts_ns as i64)
    }

    /// With several workers: the fragments waiting here whose first
    /// fragment another worker has seen follow it now (their holes are
    /// filled).
    fn poll_remote(&mut self) {
        let Some((shared, app)) = self.remote.clone() else {
            return;
        };
        if self.tracker.held() == 0 {
            return;
        }
        let hold = self.tracker.hold_ns();
        let waiting: Vec<_> = self.tracker.waiting().collect();
        for (id, since) in waiting {
            // A first fragment later than the hold comes too late, as it
            // would for one worker: the fragments fall back at expiry.
            let Some((flow, _)) = shared
                .lookup(app, &id)
                .filter(|(_, first)| first - since <= hold)
            else {
                continue;
            };
            let waited = self.tracker.learn(id, Some(flow), i128::MIN);
            self.follow(flow, waited);
        }
    }

    /// Later fragments that waited (their holes in the delay line) follow
    /// `flow`, which their first fragment resolved to on another worker.
    fn follow(&mut self, flow: Resolved, waited: Vec<PacketRef>) {
        if waited.is_empty() {
            return;
        }
        // (Rebalancing runs with one worker only: `with_remote`.)
        let queue = self.reta.queue(self.policy.hash_flow(&flow));
        let digest = resolved_digest(&flow);
        for r in waited {
            self.filled.push(Filled {
                at: r.index(self.batch_first),
                queue,
                flow: digest,
                how: how::IP | how::FRAGMENT,
            });
        }
    }

    /// The policy.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Fragment tracker counters.
    pub(crate) fn frag_stats(&self) -> FragStats {
        self.tracker.stats()
    }

    /// Before a packet at `ts_ns`: fragments held longer than the hold
    /// allows fall back to their own addresses.
    #[inline]
    fn expire_held<A: Account>(
        &mut self,
        ts_ns: i128,
        batch: &Batch,
        released: &mut Vec<PacketRef>,
        (account, app): (&mut A, usize),
    ) {
        if self.tracker.datagrams() > 0 {
            self.tracker.expire(ts_ns, released);
            for r in released.drain(..) {
                self.route_fallback(r, batch, ts_ns, (&mut *account, app));
            }
        }
    }

    /// The slot of a packet hashed with the step (the fast path); `how`
    /// says whether it is an ICMP error steered as the flow it quotes.
    #[inline]
    fn push_fast(&mut self, tuple: Tuple, digest: u64, i: u32, how: u8) {
        self.fast.push(tuple);
        self.push(Slot {
            queue: FAST,
            entry: i,
            flow: digest,
            how,
        });
    }

    /// The slot of one of the step's common packets (the `k`-th, packet
    /// `i` of the batch). While every packet of the step so far is common
    /// (nearly always), it only extends the step's run of them.
    #[inline]
    fn push_common(&mut self, k: usize, i: u32) {
        if self.slots.is_empty() && k == self.run as usize {
            if k == 0 {
                self.run_first = i;
            }
            self.run += 1;
            return;
        }
        self.push(Slot {
            queue: COMMON,
            entry: i,
            flow: k as u64,
            how: 0,
        });
    }

    /// Appends a slot, after the run of common packets before it.
    #[inline]
    fn push(&mut self, slot: Slot) {
        self.materialize();
        self.slots.push(slot);
    }

    /// Turns the step's run of common packets into slots (a packet that is
    /// not common came after it, or a fragment waits).
    fn materialize(&mut self) {
        for k in 0..self.run {
            self.slots.push(Slot {
                queue: COMMON,
                entry: self.run_first + k,
                flow: u64::from(k),
                how: 0,
            });
        }
        self.run = 0;
    }

    /// First step for one dissected packet (`frame`): its slot, with the
    /// queue decided now unless it takes the fast path (hashed with the
    /// step).
    fn classify<A: Account>(
        &mut self,
        key: &FlowKey,
        frame: &[u8],
        ts_ns: i128,
        i: u32,
        (account, app): (&mut A, usize),
    ) {
        let policy = &self.policy;
        if let Some(l) = Subject::plain(key, policy.layer)
            && policy.hashes_tuple_as_is(&l.tuple, l.proto)
        {
            let ends = layer_end_bits(frame, l);
            self.push_fast(l.tuple, flow_digest(&l.tuple, l.proto), i, how::IP | ends);
            return;
        }
        let Some(subject) = Subject::of(key, policy.layer, policy.icmp_follow) else {
            self.non_ip += 1;
            if let Some(r) = &mut self.placing.rebalance {
                r.count(0);
            }
            self.push(Slot {
                queue: 0,
                entry: i,
                flow: 0,
                how: 0,
            });
            return;
        };
        let quote = if subject.icmp_quote { how::QUOTE } else { 0 };
        if policy.hashes_as_is(&subject) {
            let digest = flow_digest(&subject.tuple, subject.proto);
            let ends = match policy.layer.pick(key) {
                Some(l) if !subject.icmp_quote => layer_end_bits(frame, l),
                _ => 0,
            };
            self.push_fast(subject.tuple, digest, i, how::IP | quote | ends);
            return;
        }
        match subject.frag {
            Some((id, first)) if !policy.is_nic() => {
                if let Some((shared, app)) = &self.remote {
                    if first {
                        shared.publish(*app, id, subject.resolved(), ts_ns);
                    } else if !self.tracker.knows(&id)
                        && let Some((flow, _)) = shared
                            .lookup(*app, &id)
                            .filter(|(_, first)| ts_ns - first <= self.tracker.hold_ns())
                    {
                        // Its first fragment reached another worker; the
                        // fragments of it already waiting here follow it.
                        let waited = self.tracker.learn(id, Some(flow), ts_ns);
                        self.follow(flow, waited);
                    }
                }
                let outcome = self.tracker.fragment(
                    id,
                    first,
                    Some(subject.resolved()),
                    ts_ns,
                    PacketRef::Current(i),
                );
                let bits = how::IP | how::FRAGMENT | quote;
                match outcome {
                    Outcome::Steer(_, r) => {
                        let fallback = if !first && r.is_none() {
                            how::FALLBACK
                        } else {
                            0
                        };
                        let at = (ts_ns, &mut *account, app);
                        self.push_slot(&subject, r, i, bits | fallback, at);
                    }
                    Outcome::Release(_, held, r) => {
                        // The fragments that waited for the first one go
                        // where it goes, each in its own place.
                        let q = self.push_slot(&subject, r, i, bits, (ts_ns, &mut *account, app));
                        let flow = resolved_digest(&subject.flow(r));
                        if let Some(b) = &mut self.placing.buckets {
                            // (Counted in their first fragment's bucket.)
                            b[self.reta.index(self.policy.hash(&subject, r))] += held.len() as u64;
                        }
                        for other in held {
                            if let Some(r) = &mut self.placing.rebalance {
                                r.count(q);
                            }
                            let at = other.index(self.batch_first);
                            self.filled.push(Filled {
                                at,
                                queue: q,
                                flow,
                                how: how::IP | how::FRAGMENT,
                            });
                        }
                    }
                    Outcome::Held => {
                        self.step_has_hole = true;
                        self.push(Slot {
                            queue: HOLE,
                            entry: i,
                            flow: 0,
                            how: 0,
                        });
                    }
                }
            }
            frag => {
                let bits = how::IP | quote | if frag.is_some() { how::FRAGMENT } else { 0 };
                self.push_slot(&subject, None, i, bits, (ts_ns, account, app));
            }
        }
    }

    /// The slot of a packet of this step whose queue is decided now (at
    /// packet time `ts_ns`).
    fn push_slot<A: Account>(
        &mut self,
        subject: &Subject,
        tracked: Option<Resolved>,
        i: u32,
        how: u8,
        at: (i128, &mut A, usize),
    ) -> u32 {
        let flow = resolved_digest(&subject.flow(tracked));
        let queue = self.queue_of(subject, tracked, flow, how, at);
        self.push(Slot {
            queue,
            entry: i,
            flow,
            how,
        });
        queue
    }

    /// The queue of a packet of flow `flow` decided at packet time `ts_ns`
    /// (this steering being app `app` of `account`).
    fn queue_of<A: Account>(
        &mut self,
        subject: &Subject,
        tracked: Option<Resolved>,
        flow: u64,
        how: u8,
        (ts_ns, account, app): (i128, &mut A, usize),
    ) -> u32 {
        let hash = self.policy.hash(subject, tracked);
        let at = FlowAt::Digest(flow);
        decide(
            &self.reta,
            &mut self.placing,
            account,
            app,
            hash,
            at,
            how,
            || ts_ns,
        )
    }

    /// A fragment whose first fragment never came in time (decided at
    /// packet time `now`): hashed by its own addresses; its hole in the
    /// delay line is filled.
    fn route_fallback<A: Account>(
        &mut self,
        packet: PacketRef,
        current: &Batch,
        now: i128,
        (account, app): (&mut A, usize),
    ) {
        let (meta, data) = packet.packet(current);
        let index = meta.index;
        let mut key = FlowKey::default();
        dissect_into(meta.linktype, data, &self.dissect, &mut key);
        let fill = match Subject::of(&key, self.policy.layer, self.policy.icmp_follow) {
            Some(s) => {
                let flow = resolved_digest(&s.resolved());
                let how = how::IP | how::FRAGMENT | how::FALLBACK;
                Filled {
                    at: index,
                    queue: self.queue_of(&s, None, flow, how, (now, account, app)),
                    flow,
                    how,
                }
            }
            None => {
                if let Some(r) = &mut self.placing.rebalance {
                    r.count(0);
                }
                Filled {
                    at: index,
                    queue: 0,
                    flow: 0,
                    how: 0,
                }
            }
        };
        self.filled.push(fill);
    }

    /// The delay line grew past its bound: the fragments that have waited
    /// longest give up on their first fragment now (as if their hold had
    /// expired), so its front can leave.
    fn shorten_delay<A: Account>(
        &mut self,
        current: &Batch,
        released: &mut Vec<PacketRef>,
        (account, app): (&mut A, usize),
    ) {
        let Some((r, _)) = self.delay.iter().find(|(_, q)| *q == HOLE) else {
            return;
        };
        let since = r.packet(current).0.ts_ns;
        let now = since + self.tracker.hold_ns() + 1;
        self.tracker.expire(now, released);
        for r in released.drain(..) {
            self.route_fallback(r, current, now, (&mut *account, app));
        }
    }

    /// Second and third steps: hashes the fast-path tuples as one batch,
    /// then walks the slots in input order, filling each queue's pending
    /// list (or, while a fragment waits, the delay line) and reporting each
    /// decision; then fills the holes whose fragment was resolved.
    fn assign<A: Account>(&mut self, app: usize, account: &mut A, common: &Common, batch: &Batch) {
        if !self.delay.is_empty() || self.step_has_hole {
            self.materialize();
        }
        self.fast_hashes.resize(self.fast.len(), 0);
        self.policy
            .scheme()
            .hash_batch(&self.fast, &mut self.fast_hashes);
        let mut fast = self.fast_hashes.iter();
        let first = self.batch_first;
        let mut d = Decider {
            reta: &self.reta,
            placing: &mut self.placing,
            account,
            app,
            batch,
            common,
            hashes: common.hashes.get(self.group).map_or(&[][..], Vec::as_slice),
            first,
        };
        if self.delay.is_empty() && !self.step_has_hole {
            // The common case: no fragment waits, every packet goes
            // straight to its queue's pending list; first the run of
            // common packets.
            for k in 0..self.run {
                let slot = Slot {
                    queue: COMMON,
                    entry: self.run_first + k,
                    flow: u64::from(k),
                    how: 0,
                };
                let q = d.queue(&slot, &mut fast) as usize;
                self.pending[q].push(slot.entry);
                d.report(&slot, q);
            }
            self.run = 0;
            for slot in &self.slots {
                let q = d.queue(slot, &mut fast) as usize;
                self.pending[q].push(slot.entry);
                d.report(slot, q);
            }
        } else {
            // Until the first hole, packets still go to their pending
            // lists; from it on, every packet waits behind it.
            for slot in &self.slots {
                let q = d.queue(slot, &mut fast);
                if self.delay.is_empty() && q != HOLE {
                    self.pending[q as usize].push(slot.entry);
                } else {
                    if self.delay.is_empty() {
                        self.delay_front = first + u64::from(slot.entry);
                    }
                    self.delay.push_back((PacketRef::Current(slot.entry), q));
                    if q == HOLE {
                        continue;
                    }
                }
                d.report(slot, q as usize);
            }
            self.step_has_hole = false;
        }
        let account = d.account;
        // (A hole always lands in the delay line: it starts there.)
        for f in &self.filled {
            let place = &mut self.delay[(f.at - self.delay_front) as usize].1;
            debug_assert_eq!(*place, HOLE);
            *place = f.queue;
            account.steered(app, f.queue as usize, f.flow, f.how, f.at);
        }
        self.filled.clear();
        self.slots.clear();
        self.fast.clear();
    }

    /// Hands each queue its pending packets of `batch` (being handed off)
    /// as one chunk, then what can leave the delay line: its front up to
    /// the first hole, as chunks of consecutive packets of one batch per
    /// queue. Packets still held keep a share of `batch`.
    fn emit(&mut self, batch: &Arc<Batch>, deliver: &mut impl FnMut(usize, Chunk)) {
        self.tracker.for_each_held(|r| r.share(batch));
        for (q, pending) in self.pending.iter_mut().enumerate() {
            if pending.is_empty() {
                continue;
            }
            // The next batch's list starts at this one's size, so it
            // rarely grows (no reallocation per packet).
            let capacity = pending.len() + pending.len() / 4 + 16;
            let indices = std::mem::replace(pending, Vec::with_capacity(capacity));
            deliver(
                q,
                Chunk {
                    batch: Arc::clone(batch),
                    indices,
                },
            );
        }
        if self.delay.is_empty() {
            return;
        }
        // This batch's packets keep a share of it.
        for (r, _) in self.delay.iter_mut().rev() {
            if matches!(r, PacketRef::Shared(..)) {
                break;
            }
            r.share(batch);
        }
        let mut runs: Vec<Option<Chunk>> = (0..self.pending.len()).map(|_| None).collect();
        while self.delay.front().is_some_and(|(_, q)| *q != HOLE) {
            let Some((PacketRef::Shared(b, i), q)) = self.delay.pop_front() else {
                unreachable!("the delay line holds shares once its batch is emitted");
            };
            self.delay_front += 1;
            let q = q as usize;
            match &mut runs[q] {
                Some(run) if Arc::ptr_eq(&run.batch, &b) => run.indices.push(i),
                run => {
                    let next = Chunk {
                        batch: b,
                        indices: vec![i],
                    };
                    if let Some(done) = run.replace(next) {
                        deliver(q, done);
                    }
                }
            }
        }
        for (q, run) in runs.into_iter().enumerate() {
            if let Some(chunk) = run {
                deliver(q, chunk);
            }
        }
    }
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

/// What the steerer saw of one frame, for an observer that wants more than
/// the decisions (the analyzer's flow direction): its one plain IP layer,
/// or the full dissection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Seen<'a> {
    /// One Ethernet/IPv4-or-IPv6 TCP/UDP layer: its tuple and protocol.
    Plain(&'a Tuple, u8),
    /// Anything else, dissected.
    Dissected(&'a FlowKey),
}

/// Packets in, decisions out: the arena, one [`Steering`] per application
/// (or scheme), and the one dissection per packet they share.
#[derive(Debug)]
pub(crate) struct Steerer<A> {
    arena: Arena,
    /// The steerings, in application order.
    pub(crate) cores: Vec<Steering>,
    /// Where every steering's decisions are reported.
    pub(crate) account: A,
    /// The distinct schemes of the steerings ([`Steering::group`]).
    schemes: Vec<symrss_hash::Scheme>,
    /// The current step's common packets.
    common: Common,
    dissect: Options,
    max_delayed: usize,
    key: FlowKey,
    /// Packets of the current batch already steered.
    steered: usize,
    released: Vec<PacketRef>,
    /// Frames whose dissection stopped early (they were steered by the
    /// layers read before the error).
    pub(crate) dissect_errors: DissectErrors,
    /// Timestamp of the last packet steered (its input is in time order).
    last_ts: i64,
    /// With several workers: what they share, and this worker's number.
    shared: Option<(Arc<Shared>, usize)>,
    /// Whether every steering hashes every plain tuple as it is (no port
    /// rule): a step may then start with a prefix of common packets.
    every_plain: bool,
    /// Whether some steering rebalances (steps then end at its windows).
    rebalancing: bool,
}

impl<A: Account> Steerer<A> {
    /// A steerer over `cores`, handing off batches from `arena`.
    pub(crate) fn new(
        arena: Arena,
        mut cores: Vec<Steering>,
        dissect: Options,
        frag: FragConfig,
        account: A,
    ) -> Self {
        let mut schemes: Vec<symrss_hash::Scheme> = Vec::new();
        for core in &mut cores {
            let scheme = core.policy.scheme();
            core.group = match schemes.iter().position(|s| s.same_hash(scheme)) {
                Some(g) => g,
                None => {
                    schemes.push(scheme.clone());
                    schemes.len() - 1
                }
            };
        }
        let every_plain = cores.iter().all(|c| c.policy.hashes_every_plain_as_is());
        let rebalancing = cores.iter().any(|c| c.placing.rebalance.is_some());
        let common = Common {
            hashes: vec![Vec::with_capacity(STEER_PACKETS); schemes.len()],
            tuples: Vec::with_capacity(STEER_PACKETS),
            digests: Vec::with_capacity(STEER_PACKETS),
            how: Vec::with_capacity(STEER_PACKETS),
            units: Vec::with_capacity(STEER_PACKETS),
            keep_units: rebalancing,
        };
        Self {
            arena,
            cores,
            account,
            schemes,
            common,
            dissect,
            max_delayed: frag.max_delayed,
            key: FlowKey::default(),
            steered: 0,
            released: Vec::new(),
            dissect_errors: DissectErrors::default(),
            last_ts: i64::MIN,
            shared: None,
            every_plain,
            rebalancing,
        }
    }

    /// One of several workers: worker `me` of those sharing `shared`.
    pub(crate) fn with_shared(mut self, shared: Arc<Shared>, me: usize) -> Self {
        self.shared = Some((shared, me));
        self
    }

    /// The least timestamp this steerer may still hand off: every packet
    /// it emits from now on is at least this old (its input being in time
    /// order) — what lets a queue fed by several workers merge them in
    /// time order.
    pub(crate) fn watermark(&self) -> i64 {
        let current = self.arena.current();
        self.cores
            .iter()
            .filter_map(|c| c.delay_front_ts(current))
            .fold(self.last_ts, i64::min)
    }

    /// No packet older than `ts_ns` will come any more (a live source that
    /// went quiet): progress for the other workers and the merge.
    pub(crate) fn advance(&mut self, ts_ns: i64) {
        if self.arena.current().len() == self.steered {
            self.last_ts = self.last_ts.max(ts_ns);
            if let Some((shared, me)) = &self.shared {
                shared.advance(*me, self.last_ts);
            }
        }
    }

    /// Packets pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.arena.pushed()
    }

    /// Takes one packet (copied into the current batch); steers every
    /// [`STEER_PACKETS`] and hands off a full batch through `deliver`
    /// (app, queue, chunk), then returns true. `observe` sees each frame
    /// as it is steered.
    #[inline]
    pub(crate) fn push(
        &mut self,
        ts_ns: i128,
        orig_len: u32,
        linktype: u32,
        data: &[u8],
        observe: &mut impl FnMut(u64, Seen<'_>),
        deliver: &mut impl FnMut(usize, usize, Chunk),
    ) -> bool {
        if self.arena.push(ts_ns, orig_len, linktype, data) {
            self.flush(observe, deliver);
            return true;
        }
        if self.arena.current().len() - self.steered >= STEER_PACKETS {
            self.steer(observe);
        }
        false
    }

    /// The step's prefix (its first packets, all common, from batch packet
    /// `start` on) becomes every steering's run of common packets.
    fn hand_prefix(cores: &mut [Steering], n: usize, start: u32) {
        for core in cores {
            debug_assert!(core.run == 0 && core.slots.is_empty());
            core.run = n as u32;
            core.run_first = start;
        }
    }

    /// Steers the packets pushed since the last call, in steps that end
    /// at every rebalancing tick and report window.
    fn steer(&mut self, observe: &mut impl FnMut(u64, Seen<'_>)) {
        let len = self.arena.current().len();
        while self.steered < len {
            let end = self.window_cut();
            self.steer_to(end, observe);
        }
    }

    /// With rebalancing: runs the ticks and closes the windows that the
    /// next packet to steer reaches, and returns where this step must end:
    /// before the first later packet at or past the next tick or window
    /// end (else the batch's end). So decisions are made at packets, not
    /// at batch boundaries.
    fn window_cut(&mut self) -> usize {
        let batch = self.arena.current();
        if !self.rebalancing {
            return batch.len();
        }
        let ts = batch.packet(self.steered as u32).0.ts_ns;
        let mut end = i128::MAX;
        for core in &mut self.cores {
            if let Some(r) = &mut core.placing.rebalance {
                r.advance(ts);
                end = end.min(r.next_event().unwrap_or(i128::MAX));
            }
        }
        (self.steered + 1..batch.len())
            .find(|&i| batch.packet(i as u32).0.ts_ns >= end)
            .unwrap_or(batch.len())
    }

    /// Steers the packets pushed since the last call up to batch position
    /// `end`: dissect and classify each for every steering, then hash and
    /// assign per steering. The commonest frames (one plain Ethernet/IP
    /// TCP/UDP layer) skip the full dissection when every steering hashes
    /// their tuple as it is.
    fn steer_to(&mut self, end: usize, observe: &mut impl FnMut(u64, Seen<'_>)) {
        let batch = self.arena.current();
        // With several workers, a held fragment may only give up on its
        // first fragment once every worker is past its hold (read before
        // the directory, so "past" implies "published").
        let others = match &self.shared {
            Some((shared, me)) => i128::from(shared.others(*me)),
            None => i128::MAX,
        };
        let first_ts = batch.packet(self.steered as u32).0.ts_ns;
        let mut held = 0;
        for core in &mut self.cores {
            core.batch_first = batch.first_index();
            core.poll_remote();
            core.received += (end - self.steered) as u64;
            held += core.tracker.held();
        }
        if self.rebalancing {
            // Rebalancing steerings place flows as they classify: the
            // table makes room for the whole step first (and sweeps by the
            // step's first packet time, so a flow is gone only by its own
            // packets' times).
            self.account.prepare(0, end - self.steered + held, first_ts);
        }
        // The step's prefix: while every packet so far is plain and every
        // steering hashes it as it is (and no fragment is held, so there is
        // nothing to expire), the packets are only added to the common
        // ones; the steerings take the prefix as their run of common
        // packets when it ends. An app then costs nothing per packet here.
        let start = self.steered as u32;
        let mut prefix = self.every_plain && self.cores.iter().all(|c| c.tracker.datagrams() == 0);
        for i in start..end as u32 {
            let (meta, data) = batch.packet(i);
            self.last_ts = meta.ts_ns as i64;
            let now = meta.ts_ns.min(others);
            let plain = plain_flow(meta.linktype, data, &self.dissect);
            if prefix {
                if let Some(p) = &plain {
                    self.common.push(p, meta.ts_ns);
                    observe(meta.index, Seen::Plain(&p.tuple, p.proto));
                    continue;
                }
                prefix = false;
                Self::hand_prefix(&mut self.cores, self.common.tuples.len(), start);
            }
            // This packet's position among the common ones, once some
            // steering hashes its plain tuple as it is.
            let mut common = None;
            let mut dissected = false;
            for (app, core) in self.cores.iter_mut().enumerate() {
                let account = (&mut self.account, app);
                core.expire_held(now, batch, &mut self.released, account);
                if let Some(p) = &plain
                    && core.policy.hashes_tuple_as_is(&p.tuple, p.proto)
                {
                    let k = *common.get_or_insert_with(|| self.common.push(p, meta.ts_ns));
                    core.push_common(k, i);
                    continue;
                }
                if !dissected {
                    dissect_into(meta.linktype, data, &self.dissect, &mut self.key);
                    dissected = true;
                    if let Some(e) = &self.key.error {
                        self.dissect_errors.record(meta.index, e);
                    }
                }
                core.classify(&self.key, data, meta.ts_ns, i, (&mut self.account, app));
            }
            // (A frame without the plain tuple was dissected above: every
            // steering took the general path.)
            match &plain {
                Some(p) => observe(meta.index, Seen::Plain(&p.tuple, p.proto)),
                None => observe(meta.index, Seen::Dissected(&self.key)),
            }
        }
        if prefix {
            Self::hand_prefix(&mut self.cores, self.common.tuples.len(), start);
        }
        for (scheme, hashes) in self.schemes.iter().zip(&mut self.common.hashes) {
            hashes.resize(self.common.tuples.len(), 0);
            scheme.hash_batch(&self.common.tuples, hashes);
        }
        let decisions = self.common.digests.len()
            + self
                .cores
                .iter()
                .map(|c| c.run as usize + c.slots.len() + c.filled.len())
                .sum::<usize>();
        let time = if self.rebalancing {
            first_ts
        } else {
            i128::from(self.last_ts)
        };
        self.account
            .prepare(self.common.digests.len(), decisions, time);
        if let Some(table) = self.account.placement() {
            // Rebalancing steerings place the common packets' flows as
            // they assign: each is looked up once, now, for them and for
            // the accounting at `settle`.
            table.look_up_step(&self.common.digests, &self.common.units);
        }
        for (app, core) in self.cores.iter_mut().enumerate() {
            core.assign(app, &mut self.account, &self.common, batch);
            if core.delay.len() > self.max_delayed {
                core.shorten_delay(batch, &mut self.released, (&mut self.account, app));
                core.assign(app, &mut self.account, &self.common, batch);
            }
        }
        self.account.settle(&self.common.digests, &self.common.how);
        self.common.tuples.clear();
        self.common.digests.clear();
        self.common.how.clear();
        self.common.units.clear();
        self.steered = end;
        if let Some((shared, me)) = &self.shared {
            shared.advance(*me, self.last_ts);
        }
    }

    /// Steers and hands off the packets pushed so far without waiting for
    /// a full batch (a live source calls this when its input goes quiet,
    /// so packets do not wait in a half-full batch).
    pub(crate) fn flush(
        &mut self,
        observe: &mut impl FnMut(u64, Seen<'_>),
        deliver: &mut impl FnMut(usize, usize, Chunk),
    ) {
        if self.arena.current().len() == 0 {
            return;
        }
        self.steer(observe);
        let batch = self.arena.rotate();
        self.steered = 0;
        for (a, core) in self.cores.iter_mut().enumerate() {
            core.emit(&batch, &mut |q, chunk| deliver(a, q, chunk));
        }
    }

    /// End of input: flushes, then every fragment still held falls back
    /// to its own addresses and everything still delayed is handed off.
    pub(crate) fn finish(
        &mut self,
        observe: &mut impl FnMut(u64, Seen<'_>),
        deliver: &mut impl FnMut(usize, usize, Chunk),
    ) {
        self.flush(observe, deliver);
        let current = Batch::default();
        if let Some((shared, me)) = &self.shared {
            // This worker publishes nothing more; its held fragments wait
            // until their first fragment shows up elsewhere or every
            // worker is past their hold.
            shared.advance(*me, i64::MAX);
            loop {
                let others = shared.others(*me);
                let mut waiting = false;
                for (a, core) in self.cores.iter_mut().enumerate() {
                    core.poll_remote();
                    let account = (&mut self.account, a);
                    core.expire_held(i128::from(others), &current, &mut self.released, account);
                    waiting |= core.tracker.held() > 0;
                }
                if !waiting || others == i64::MAX {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let empty = Arc::new(Batch::default());
        let held: usize = self.cores.iter().map(|c| c.tracker.held()).sum();
        self.account.prepare(0, held, i128::from(self.last_ts));
        for (a, core) in self.cores.iter_mut().enumerate() {
            let mut held = Vec::new();
            core.tracker.drain(&mut held);
            for r in held {
                let account = (&mut self.account, a);
                core.route_fallback(r, &current, i128::from(self.last_ts), account);
            }
            core.assign(a, &mut self.account, &self.common, &current);
            core.emit(&empty, &mut |q, chunk| deliver(a, q, chunk));
            if let Some(r) = &mut core.placing.rebalance {
                r.finish();
            }
        }
    }
}
