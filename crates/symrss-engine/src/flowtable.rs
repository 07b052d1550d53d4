//! The balancer's flow table: one entry per flow for *every* application,
//! so a packet costs one lookup however many apps steer it.
//!
//! What it records: for each flow (its direction-independent 64-bit
//! digest, [`crate::affinity::flow_digest`]) and each app, the queue the
//! flow went to first. From that come the per-queue flow counts and the
//! affinity violations (packets of a known flow on another queue than its
//! first) that `split`, `capture` and `analyze` report. Steering by hash
//! never reads it: a packet's queue comes from its hash alone, so a full
//! table costs accounting, never placement. An app that *rebalances*
//! ([`crate::rebalance`]) does read it — the flow's first queue is where
//! the flow stays ([`FlowTable::with_placing`], [`FlowTable::place`]) —
//! and for such a table a step's common packets are looked up before the
//! apps assign ([`FlowTable::look_up_step`]), once for placement and
//! accounting together; a flow it has no room for is steered by its
//! bucket (which then does not move while such a flow may be live).
//!
//! Layout: open addressing over buckets of one cache line each, with
//! linear probing from bucket to bucket. A bucket holds 64 bytes / the
//! slot size slots (4, 2 or 1); a slot is [`FlowTable::stride`] 64-bit
//! words:
//!
//! ```text
//!  word 0      digest (0: empty slot)
//!  word 1      bits 0..24 last seen (packet time, 2^30 ns units, wrapping
//!              after ~208 days), 24..27 end state, 32..48 and 48..64 apps
//!              0 and 1: first queue + 1 (0: not seen by that app)
//!  word 2..    apps 2.., four per word, the same way
//! ```
//!
//! Up to 2 apps fit in 16 bytes (4 slots per line), 10 in 32, 26 in 64. A
//! lookup reads its home bucket's line, which nearly always decides it (a
//! match, or an empty slot: the flow is new); only a full bucket sends it
//! on to the next line. (Slots probed one by one, as before, ran past the
//! line a lookup had touched often enough at half load to cost ~14 ns per
//! packet at 1 M flows: BENCHMARKS.md.) Why in-house: no crate
//! offers a table whose value is a run-time number of per-app fields in
//! the same cache line as the key, a bulk lookup that overlaps the cache
//! misses of a whole batch, and expiry by packet time; a `HashMap` per
//! app cost one cache miss per app per packet (issue 18's profile).
//!
//! Bounds: at most `max_flows` flows at once (at most half the slots, so
//! buckets rarely overflow); a new flow beyond that is not stored and its
//! packets count as untracked. Memory: the table starts small and doubles
//! as flows come, up to `next_pow2(2 × max_flows)` slots; while it doubles,
//! the old half-size table is still held (the peak is 1.5× the final size:
//! measured 1.6 GB resident for 10 M flows with `max_flows` at 20 M, with
//! the 32-byte slots of before). Each new allocation is handed to the
//! engine's `on_table_alloc` hook first (huge-page advice from
//! `symrss-sys`: a lookup at random over a large table would otherwise
//! also miss the TLB).
//!
//! Expiry by packet time, never by wall clock: a flow idle for longer
//! than the idle timeout, or ended (TCP RST, or FIN seen from both ends)
//! and idle for [`ENDED_LINGER`], is removed when the table is rebuilt.
//! Rebuilds happen when the table fills past half its slots, to grow
//! (amortised, like any growing table), and when it reaches `max_flows`,
//! at most once per eighth of the idle timeout of packet time (a flood
//! then costs one rebuild per interval, and its flows are untracked until
//! idle or ended ones leave). No scan runs on the packet path.
//!
//! A step's common packets (plain frames, [`crate::steering`]) are
//! accounted together once every app has steered them
//! ([`FlowTable::settle`]): first each one's home line is touched (the
//! loads are independent, so the CPU overlaps their cache misses — the
//! bulk pattern of DPDK's `rte_hash_lookup_bulk`, with plain loads instead
//! of prefetch instructions, so no `unsafe`), then each flow is looked up
//! once and accounted for every app in one visit of its slot.

use std::hint::black_box;

use crate::affinity::how;

/// Word 1: the packet time's bits, then the end state bits.
const TIME_BITS: u32 = 24;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const FIN_LOW: u64 = 1 << TIME_BITS;
const FIN_HIGH: u64 = 1 << (TIME_BITS + 1);
const RST: u64 = 1 << (TIME_BITS + 2);
/// Most table time units an idle timeout may span (the difference of two
/// times is only meaningful below half the wrap).
const MAX_IDLE_UNITS: u32 = 1 << (TIME_BITS - 2);

/// An ended flow stays this long (2^30 ns units: ~2 s) for its last ACKs.
pub const ENDED_LINGER: u32 = 2;

/// Packet time in the table's units (2^30 ns, ~1.07 s), wrapping at
/// 2^24 units.
#[inline]
pub(crate) fn time_unit(ts_ns: i128) -> u32 {
    ((ts_ns >> 30) as u64 & TIME_MASK) as u32
}

/// Table time units from `then` to `now` (wrapping).
#[inline]
fn since(now: u32, then: u32) -> u32 {
    now.wrapping_sub(then) & TIME_MASK as u32
}

/// One app's accounting.
#[derive(Clone, Debug)]
pub(crate) struct AppFlows {
    /// Flows first seen on each queue.
    pub(crate) per_queue: Vec<u64>,
    /// Packets of a known flow on another queue than its first.
    pub(crate) affinity_violations: u64,
    /// Packets of flows not tracked (table full).
    pub(crate) untracked: u64,
}

/// What a flow table holds and did, for the stats. With several steering
/// workers (one table each) the balancer reports the sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Flows stored now.
    pub flows: u64,
    /// Most flows stored at once.
    pub peak_flows: u64,
    /// Most flows the table may hold (`max_flows`; 0: accounting off).
    pub capacity: u64,
    /// Flows removed after idling out.
    pub expired: u64,
    /// Flows removed after they ended (RST, or FIN both ways).
    pub ended: u64,
    /// Table rebuilds (growth or expiry sweeps).
    pub rebuilds: u64,
    /// Bytes the slots take now.
    pub bytes: u64,
    /// Bytes the slots take at full size (the table's memory at
    /// capacity; it never takes more).
    pub bytes_at_capacity: u64,
    /// Bytes per slot.
    pub slot_bytes: u64,
}

impl TableStats {
    /// Memory per flow at capacity (bytes), `None` with accounting off.
    pub fn bytes_per_flow(&self) -> Option<f64> {
        (self.capacity > 0).then(|| self.bytes_at_capacity as f64 / self.capacity as f64)
    }

    /// Adds another worker's table.
    pub fn add(&mut self, o: &TableStats) {
        self.flows += o.flows;
        self.peak_flows += o.peak_flows;
        self.capacity += o.capacity;
        self.expired += o.expired;
        self.ended += o.ended;
        self.rebuilds += o.rebuilds;
        self.bytes += o.bytes;
        self.bytes_at_capacity += o.bytes_at_capacity;
        self.slot_bytes = self.slot_bytes.max(o.slot_bytes);
    }
}

/// The flow table of one steerer (all its apps).
#[derive(Debug)]
pub(crate) struct FlowTable {
    words: Vec<u64>,
    /// Words of `words` before slot 0, which starts a cache line (a
    /// `Vec<u64>` is only 8-byte aligned: unaligned, every other 32-byte
    /// slot straddled two lines, and its app words cost a second miss).
    base: usize,
    /// Words per slot (a power of two).
    stride: usize,
    /// Slots per bucket (one cache line): 4, 2 or 1.
    per_line: usize,
    /// log2(buckets): at least 8, as a table has at least
    /// [`INITIAL_SLOTS`] slots (with accounting off there is no table, and
    /// nothing looks up).
    bucket_bits: u32,
    /// Slots − 1.
    mask: usize,
    len: usize,
    max_flows: usize,
    max_slots: usize,
    idle: u32,
    /// Table time units an ended flow stays for its last packets: it is
    /// gone once more than this many units passed since its last packet
    /// (times are whole units, so "more than" is what guarantees the
    /// silence: two packets 10 ms apart may fall in two units).
    linger: u32,
    /// Packet time now and at the last rebuild at full size.
    now: u32,
    last_sweep: u32,
    /// The step's common packets as the apps steer them: per packet and
    /// app, its queue + 1 (0: not steered as a common packet).
    step_queues: Vec<u16>,
    /// Called on each new allocation of `words` (huge-page advice).
    on_alloc: Option<fn(&mut [u64]) -> bool>,
    /// Per app, the word of its placement state in a slot, for the apps
    /// that place flows ([`FlowTable::with_placing`]); empty if none do.
    place_word: Vec<Option<u8>>,
    /// With placing apps: the step's common packets' slots
    /// ([`FlowTable::look_up_step`]), and whether they are this step's.
    step_slots: Vec<u32>,
    step_looked_up: bool,
    pub(crate) apps: Vec<AppFlows>,
    pub(crate) stats: TableStats,
}

/// Words in a 64-byte cache line.
const LINE_WORDS: usize = 8;

/// Slots a table starts with.
const INITIAL_SLOTS: usize = 1024;

impl FlowTable {
    /// A table for apps with these queue counts, holding at most
    /// `max_flows` flows (0: accounting off), forgetting flows idle for
    /// `idle_ns` of packet time; `on_alloc` is called on its memory each
    /// time it is allocated, before first use (huge-page advice).
    #[cfg(test)]
    pub(crate) fn new(
        queues: &[u32],
        max_flows: usize,
        idle_ns: u64,
        on_alloc: Option<fn(&mut [u64]) -> bool>,
    ) -> Self {
        Self::with_placing(queues, &[], max_flows, idle_ns, 0, on_alloc)
    }

    /// A table for apps with these queue counts (see above) that also
    /// *places* flows for the apps marked in `placing` (they rebalance,
    /// [`FlowTable::place`]): each such app has one more word per slot
    /// (see [`FlowTable::place`]), and a flow is gone — its next packet a
    /// new flow's, for every app — once idle for more than `idle_ns` or,
    /// ended, for more than `linger_ns` of packet time (both rounded up to
    /// whole table units). With no app placing (`placing` all false or
    /// empty) it is a plain accounting table: `linger_ns` is unused, ended
    /// flows leave after [`ENDED_LINGER`].
    pub(crate) fn with_placing(
        queues: &[u32],
        placing: &[bool],
        max_flows: usize,
        idle_ns: u64,
        linger_ns: u64,
        on_alloc: Option<fn(&mut [u64]) -> bool>,
    ) -> Self {
        // Apps 0 and 1 share word 1 with the time; four more per word;
        // then one word per placing app.
        let mut words = 2 + queues.len().saturating_sub(2).div_ceil(4);
        let place_word: Vec<Option<u8>> = if placing.contains(&true) {
            placing
                .iter()
                .map(|&p| {
                    p.then(|| {
                        words += 1;
                        (words - 1) as u8
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let stride = words.next_power_of_two();
        let (idle, linger) = if place_word.is_empty() {
            let idle = (idle_ns >> 30).clamp(1, u64::from(MAX_IDLE_UNITS)) as u32;
            (idle, ENDED_LINGER)
        } else {
            // Rounded up: a flow is gone only after at least the time given.
            let units = |ns: u64| ns.div_ceil(1 << 30).clamp(1, u64::from(MAX_IDLE_UNITS)) as u32;
            (units(idle_ns), units(linger_ns))
        };
        let max_slots = (2 * max_flows).next_power_of_two().max(INITIAL_SLOTS);
        let mut t = Self {
            words: Vec::new(),
            base: 0,
            stride,
            per_line: (LINE_WORDS / stride).max(1),
            bucket_bits: 0,
            mask: 0,
            len: 0,
            max_flows,
            max_slots,
            idle,
            linger,
            now: 0,
            last_sweep: 0,
            step_queues: Vec::new(),
            on_alloc,
            place_word,
            step_slots: Vec::new(),
            step_looked_up: false,
            apps: queues
                .iter()
                .map(|&q| AppFlows {
                    per_queue: vec![0; q.max(1) as usize],
                    affinity_violations: 0,
                    untracked: 0,
                })
                .collect(),
            stats: TableStats {
                capacity: max_flows as u64,
                bytes_at_capacity: if max_flows > 0 {
                    (max_slots * stride * 8) as u64
                } else {
                    0
                },
                slot_bytes: 8 * stride as u64,
                ..TableStats::default()
            },
        };
        if max_flows > 0 {
            t.resize(INITIAL_SLOTS);
        }
        t
    }

    fn resize(&mut self, slots: usize) {
        self.words = vec![0; slots * self.stride + LINE_WORDS];
        if let Some(h) = self.on_alloc {
            h(&mut self.words);
        }
        // (The address is only read, to find the first line boundary.)
        let misalign = (self.words.as_ptr() as usize / 8) % LINE_WORDS;
        self.base = (LINE_WORDS - misalign) % LINE_WORDS;
        self.mask = slots - 1;
        self.bucket_bits = (slots / self.per_line).trailing_zeros();
        self.stats.bytes = (slots * self.stride * 8) as u64;
    }

    /// The table's counters now.
    pub(crate) fn stats(&self) -> TableStats {
        TableStats {
            flows: self.len as u64,
            ..self.stats
        }
    }

    /// Word index of slot `slot`.
    #[inline(always)]
    fn at(&self, slot: usize) -> usize {
        self.base + slot * self.stride
    }

    /// First slot of a digest's home bucket (Fibonacci hashing of the
    /// already mixed digest: its high bits pick the bucket).
    #[inline(always)]
    fn home(&self, digest: u64) -> usize {
        let bucket = digest.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bucket_bits);
        bucket as usize * self.per_line
    }

    /// The first slot of the next bucket after the one slot `i` is in.
    #[inline(always)]
    fn next_bucket(&self, i: usize) -> usize {
        (i + self.per_line) & self.mask
    }

    /// Where `d` (not 0) is, or the first empty slot where it would go:
    /// (slot, whether it is `d`'s). Probes the home bucket's slots, then
    /// the next buckets'; a flow is always stored at the first empty slot
    /// of its probe (slots empty only at rebuilds), so an empty slot ends
    /// the search.
    #[inline(always)]
    fn probe(&self, d: u64) -> (usize, bool) {
        let mut bucket = self.home(d);
        loop {
            // Every slot of the bucket is compared, without a branch per
            // slot: where in the bucket a flow sits is random, and a
            // branch on it mispredicted about once per lookup.
            let (mut hits, mut free) = (0u32, 0u32);
            for j in 0..self.per_line {
                let w = self.words[self.at(bucket + j)];
                hits |= u32::from(w == d) << j;
                free |= u32::from(w == 0) << j;
            }
            let ends = hits | free;
            if ends != 0 {
                let j = ends.trailing_zeros();
                return (bucket + j as usize, hits >> j & 1 == 1);
            }
            bucket = self.next_bucket(bucket);
        }
    }

    /// The slot of `digest`, inserting it if there is room.
    #[inline(always)]
    fn find_or_insert(&mut self, digest: u64) -> Option<usize> {
        let d = digest.max(1);
        let (i, found) = self.probe(d);
        let at = self.at(i);
        if found {
            // Written only when the time unit changed: a line that is only
            // read stays clean (no write-back traffic).
            let t = &mut self.words[at + 1];
            if (*t & TIME_MASK) as u32 != self.now {
                *t = (*t & !TIME_MASK) | u64::from(self.now);
            }
            return Some(i);
        }
        self.insert(i, d, self.now)
    }

    /// Stores flow `d` (not 0) at table time `unit` in the empty slot `i`
    /// its probe ended at, if there is room.
    #[inline(always)]
    fn insert(&mut self, i: usize, d: u64, unit: u32) -> Option<usize> {
        if self.len >= self.max_flows || 4 * self.len >= 3 * (self.mask + 1) {
            return None;
        }
        let at = self.at(i);
        self.words[at] = d;
        self.words[at + 1] = u64::from(unit);
        self.len += 1;
        self.stats.peak_flows = self.stats.peak_flows.max(self.len as u64);
        Some(i)
    }

    /// Whether the flow whose word 1 is `meta`, `idle` table units since
    /// its last packet, is gone: idle past the timeout, or ended (RST, or
    /// FIN both ways) and quiet past the linger; `Some(true)` if it ended.
    /// A time ahead of now (input out of order) is not idle. The one rule
    /// for a rebuild and for a placing look-up.
    #[inline(always)]
    fn gone(&self, meta: u64, idle: u32) -> Option<bool> {
        if idle >= 2 * MAX_IDLE_UNITS {
            return None;
        }
        let ended = meta & RST != 0 || meta & (FIN_LOW | FIN_HIGH) == FIN_LOW | FIN_HIGH;
        if ended && idle > self.linger {
            Some(true)
        } else if idle > self.idle {
            Some(false)
        } else {
            None
        }
    }

    /// Before a step of `common` common packets: packet time is now
    /// `ts_ns`, and up to `inserts` flows may be added before the next
    /// call. Grows or sweeps the table if that could take it past half
    /// full.
    pub(crate) fn prepare(&mut self, ts_ns: i128, common: usize, inserts: usize) {
        self.step_looked_up = false;
        self.step_queues.clear();
        self.step_queues.resize(common * self.apps.len(), 0);
        self.now = time_unit(ts_ns);
        let slots = self.mask + 1;
        let over_half = 2 * (self.len + inserts) > slots;
        let over_bound = self.len + inserts > self.max_flows;
        if self.max_flows == 0 || !(over_half || over_bound) {
            return;
        }
        if slots < self.max_slots && over_half {
            self.rebuild(true);
        } else if over_bound && since(self.now, self.last_sweep) >= (self.idle / 8).max(1) {
            self.last_sweep = self.now;
            self.rebuild(false);
        }
    }

    /// Copies the live flows into a fresh table (twice the size when
    /// `grow` and they fill more than a quarter of this one), dropping
    /// those idle past the timeout and those ended.
    fn rebuild(&mut self, grow: bool) {
        self.stats.rebuilds += 1;
        let old = std::mem::take(&mut self.words);
        let old_slots = &old[self.base..self.base + (self.mask + 1) * self.stride];
        let live = self.len;
        let slots = self.mask + 1;
        let slots = if grow && 4 * live >= slots {
            (2 * slots).min(self.max_slots)
        } else {
            slots
        };
        self.resize(slots);
        self.len = 0;
        for s in old_slots.chunks_exact(self.stride) {
            if s[0] == 0 {
                continue;
            }
            match self.gone(s[1], since(self.now, (s[1] & TIME_MASK) as u32)) {
                Some(true) => {
                    self.stats.ended += 1;
                    continue;
                }
                Some(false) => {
                    self.stats.expired += 1;
                    continue;
                }
                None => {}
            }
            let (i, _) = self.probe(s[0]);
            let at = self.at(i);
            self.words[at..at + self.stride].copy_from_slice(s);
            self.len += 1;
        }
    }

    /// App `app` sent the `k`-th common packet of the step to queue `q`
    /// (accounted at [`FlowTable::settle`], with the other apps').
    #[inline(always)]
    pub(crate) fn steered_common(&mut self, app: usize, q: usize, k: usize) {
        let apps = self.apps.len();
        if let Some(first) = self.step_queues.get_mut(k * apps + app) {
            // Queues are below 65,535 (checked where apps are configured).
            *first = q as u16 + 1;
        }
    }

    /// After every app assigned the step: looks up (inserting) each
    /// common packet's flow once and accounts it for every app that
    /// steered it. First each lookup's home line is touched
    /// ([`FlowTable::touch`]), so their cache misses overlap instead of
    /// coming one after another.
    pub(crate) fn settle(&mut self, digests: &[u64], hows: &[u8]) {
        if self.max_flows == 0 || digests.is_empty() {
            return;
        }
        // A placing table looked the step up before the apps assigned it
        // (and its placing apps accounted their packets as they placed
        // them); else each flow is looked up now, home lines touched first.
        let looked_up = std::mem::replace(&mut self.step_looked_up, false);
        if !looked_up {
            self.touch(digests);
        }
        let apps = self.apps.len();
        let queues = std::mem::take(&mut self.step_queues);
        for (k, &d) in digests.iter().enumerate() {
            let firsts = &queues[k * apps..(k + 1) * apps];
            let how_bits = hows[k];
            let slot = if looked_up {
                self.step_slot(k)
            } else {
                self.find_or_insert(d)
            };
            match slot {
                Some(slot) => {
                    let at = self.at(slot);
                    if how_bits & how::ENDS != 0 {
                        self.words[at + 1] |= end_state(how_bits);
                    }
                    for (app, &mine) in firsts.iter().enumerate() {
                        if mine != 0 && !self.places_for(app) {
                            self.account_queue(at, app, mine);
                        }
                    }
                }
                None => {
                    for (app, &mine) in firsts.iter().enumerate() {
                        let counted = mine != 0 && !self.places_for(app);
                        self.apps[app].untracked += u64::from(counted);
                    }
                }
            }
        }
        self.step_queues = queues;
    }

    /// Touches the line every lookup of `digests` nearly always ends in:
    /// its home bucket. The loads are independent, so their misses
    /// overlap.
    fn touch(&self, digests: &[u64]) {
        let mut touched = 0u64;
        for &d in digests {
            touched ^= self.words[self.at(self.home(d.max(1)))];
        }
        black_box(touched);
    }

    /// App `app` sent a packet of flow `digest` to queue `q` (any packet:
    /// the general path, one lookup each).
    #[inline]
    pub(crate) fn steered(&mut self, app: usize, q: usize, digest: u64, how_bits: u8) {
        if how_bits & how::IP == 0 || self.max_flows == 0 || self.places_for(app) {
            // (A placing app's packets were accounted as they were placed.)
            return;
        }
        match self.find_or_insert(digest) {
            Some(slot) => self.account(slot, app, q, how_bits),
            None => self.apps[app].untracked += 1,
        }
    }

    #[inline(always)]
    fn account(&mut self, slot: usize, app: usize, q: usize, how_bits: u8) {
        let at = self.at(slot);
        if how_bits & how::ENDS != 0 {
            self.words[at + 1] |= end_state(how_bits);
        }
        // Queues are below 65,535 (checked where apps are configured).
        self.account_queue(at, app, q as u16 + 1);
    }

    /// App `app` sent a packet of the flow at word `at` to queue
    /// `mine - 1`.
    #[inline(always)]
    fn account_queue(&mut self, at: usize, app: usize, mine: u16) {
        let (word, shift) = queue_field(at, app);
        let word = &mut self.words[word];
        let first = (*word >> shift) as u16;
        let counts = &mut self.apps[app];
        if first == 0 {
            *word |= u64::from(mine) << shift;
            counts.per_queue[usize::from(mine - 1)] += 1;
        } else if first != mine {
            counts.affinity_violations += 1;
        }
    }
}

/// Where [`FlowTable::place`] put a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Its flow's queue.
    pub(crate) queue: u16,
    /// The flow's packets in this window, this one included.
    pub(crate) window_packets: u32,
    /// The flow's queue is not the proposed one (its bucket moved while
    /// it was live) and this is the first packet to find that out.
    pub(crate) newly_pinned: bool,
    /// Control ticks since the flow was placed (16 bits, wrapping).
    pub(crate) age_ticks: u16,
}

/// A placing app's word: bits 0..24 the flow's packets in the current
/// window (saturating), 24..47 the window's number (23 bits), 47 set once
/// the flow was found off its bucket's queue (pinned), 48..64 the control
/// tick it was placed at.
const WINDOW_COUNT: u64 = (1 << 24) - 1;
const WINDOW_ID: u64 = (1 << 23) - 1;
const PINNED: u64 = 1 << 47;

/// [`FlowTable::step_slot`] of a common packet whose flow had no room.
const NO_SLOT: u32 = u32::MAX;

impl FlowTable {
    /// Whether some app places flows here.
    pub(crate) fn places(&self) -> bool {
        !self.place_word.is_empty()
    }

    /// Whether app `app` places its flows here (it accounts its packets as
    /// it places them).
    #[inline(always)]
    fn places_for(&self, app: usize) -> bool {
        self.place_word.get(app).is_some_and(Option::is_some)
    }

    /// A placing table's slot of `digest` at table time `unit` (inserted
    /// if new and there is room): a flow that is gone — idle past the
    /// timeout, or ended (RST, or FIN both ways) and quiet past the
    /// linger — starts again in its slot, a new flow for every app, so a
    /// decision depends on the flow's own packets only, never on when the
    /// table was rebuilt (a rebuild drops only flows this rule calls
    /// gone).
    #[inline(always)]
    pub(crate) fn find_live(&mut self, digest: u64, unit: u32) -> Option<usize> {
        let d = digest.max(1);
        let (i, found) = self.probe(d);
        if !found {
            return self.insert(i, d, unit);
        }
        let at = self.at(i);
        let meta = self.words[at + 1];
        let idle = since(unit, (meta & TIME_MASK) as u32);
        match self.gone(meta, idle) {
            Some(ended) => {
                if ended {
                    self.stats.ended += 1;
                } else {
                    self.stats.expired += 1;
                }
                self.words[at + 1..at + self.stride].fill(0);
                self.words[at + 1] = u64::from(unit);
            }
            None => {
                // Written only when the time moved on (never back: a time
                // ahead of `unit` stays).
                if idle != 0 && idle < 2 * MAX_IDLE_UNITS {
                    self.words[at + 1] = (meta & !TIME_MASK) | u64::from(unit);
                }
            }
        }
        Some(i)
    }

    /// A placing table, before the apps assign a step: looks up every
    /// common packet's flow once ([`FlowTable::find_live`]; their home
    /// lines touched first so the misses overlap), for the placing apps'
    /// decisions now and the accounting at [`FlowTable::settle`].
    pub(crate) fn look_up_step(&mut self, digests: &[u64], units: &[u32]) {
        self.touch(digests);
        self.step_slots.clear();
        for (&d, &u) in digests.iter().zip(units) {
            let slot = self.find_live(d, u).map_or(NO_SLOT, |i| i as u32);
            self.step_slots.push(slot);
        }
        self.step_looked_up = true;
    }

    /// The slot of the step's `k`-th common packet's flow (after
    /// [`FlowTable::look_up_step`]), `None` if it had no room.
    #[inline(always)]
    pub(crate) fn step_slot(&self, k: usize) -> Option<usize> {
        let s = self.step_slots[k];
        (s != NO_SLOT).then_some(s as usize)
    }

    /// Placing app `app`'s decision for a packet (its [`how`] bits
    /// `how_bits`) of the flow in `slot`, in report window `window` and at
    /// control tick `tick`: a flow the app has placed keeps its queue; a
    /// flow new to it is placed on `proposed` (and counted as one of the
    /// queue's flows, the accounting [`FlowTable::settle`] and
    /// [`FlowTable::steered`] then leave to this).
    #[inline(always)]
    pub(crate) fn place(
        &mut self,
        app: usize,
        slot: usize,
        how_bits: u8,
        proposed: u16,
        window: u32,
        tick: u16,
    ) -> Placed {
        let at = self.at(slot);
        if how_bits & how::ENDS != 0 {
            self.words[at + 1] |= end_state(how_bits);
        }
        let own = at + usize::from(self.place_word[app].expect("a placing app"));
        let (word, shift) = queue_field(at, app);
        let first = (self.words[word] >> shift) as u16;
        let window = u64::from(window) & WINDOW_ID;
        if first == 0 {
            self.words[word] |= u64::from(proposed + 1) << shift;
            self.apps[app].per_queue[usize::from(proposed)] += 1;
            self.words[own] = u64::from(tick) << 48 | window << 24 | 1;
            return Placed {
                queue: proposed,
                window_packets: 1,
                newly_pinned: false,
                age_ticks: 0,
            };
        }
        let queue = first - 1;
        let w = self.words[own];
        let newly_pinned = queue != proposed && w & PINNED == 0;
        let count = if (w >> 24) & WINDOW_ID == window {
            (w & WINDOW_COUNT) + u64::from(w & WINDOW_COUNT != WINDOW_COUNT)
        } else {
            1
        };
        let pinned = if newly_pinned { PINNED } else { 0 };
        self.words[own] = (w & !(WINDOW_COUNT | WINDOW_ID << 24)) | pinned | window << 24 | count;
        Placed {
            queue,
            window_packets: count as u32,
            newly_pinned,
            age_ticks: tick.wrapping_sub((w >> 48) as u16),
        }
    }

    /// Placing app `app` steered a packet of a flow the table had no room
    /// for.
    pub(crate) fn untracked(&mut self, app: usize) {
        self.apps[app].untracked += 1;
    }
}

/// The word and bit shift of app `app`'s first-queue field in the slot at
/// word `at`.
#[inline(always)]
fn queue_field(at: usize, app: usize) -> (usize, usize) {
    if app < 2 {
        (at + 1, 32 + 16 * app)
    } else {
        (at + 2 + (app - 2) / 4, 16 * ((app - 2) % 4))
    }
}

/// Word 1's end bits for a packet's [`how`] bits.
#[inline]
fn end_state(how_bits: u8) -> u64 {
    let mut s = 0;
    if how_bits & how::FIN_LOW != 0 {
        s |= FIN_LOW;
    }
    if how_bits & how::FIN_HIGH != 0 {
        s |= FIN_HIGH;
    }
    if how_bits & how::RST != 0 {
        s |= RST;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = 1 << 30;

    #[test]
    fn first_queue_and_violations_per_app() {
        let mut t = FlowTable::new(&[4, 2], 100, 300 << 30, None);
        t.prepare(0, 3, 4);
        t.steered_common(0, 1, 0);
        t.steered_common(1, 0, 0);
        t.steered_common(0, 2, 1);
        t.steered_common(0, 3, 2); // flow 7 on another queue
        t.steered_common(1, 0, 2);
        t.settle(&[7, 8, 7], &[how::IP; 3]);
        t.steered(1, 1, 8, how::IP); // flow 8 first seen by app 1
        t.steered(1, 0, 8, how::IP); // and then elsewhere
        assert_eq!(t.apps[0].per_queue, vec![0, 1, 1, 0]);
        assert_eq!(t.apps[0].affinity_violations, 1);
        assert_eq!(t.apps[1].per_queue, vec![1, 1]);
        assert_eq!(t.apps[1].affinity_violations, 1);
        assert_eq!(t.len as u64, 2);
    }

    #[test]
    fn bounded_with_untracked_counted() {
        let mut t = FlowTable::new(&[1], 1000, 300 << 30, None);
        for d in 1..=5000u64 {
            t.prepare(0, 0, 1);
            t.steered(0, 0, d.wrapping_mul(0x2545_f491_4f6c_dd1d), how::IP);
        }
        assert_eq!(t.len as u64, 1000);
        assert_eq!(t.apps[0].per_queue, vec![1000]);
        assert_eq!(t.apps[0].untracked, 4000);
        // The slots never exceed twice the bound (rounded to a power of 2).
        assert!(t.stats.bytes <= 2048 * t.stats.slot_bytes, "{:?}", t.stats);
    }

    #[test]
    fn idle_and_ended_flows_leave() {
        let mut t = FlowTable::new(&[1], 600, 10 << 30, None);
        // 500 flows at time 0, 250 of them ended by RST or both FINs.
        for d in 1..=500u64 {
            t.prepare(0, 0, 1);
            let ends = match d % 4 {
                0 => how::RST,
                1 => how::FIN_LOW | how::FIN_HIGH,
                2 => how::FIN_LOW, // half-closed: still live
                _ => 0,
            };
            t.steered(0, 0, d.wrapping_mul(0x9e37_79b9), how::IP | ends);
        }
        assert_eq!(t.len as u64, 500);
        // 5 s later a flood of new flows: the ended ones leave at the first
        // sweep, the idle ones only after the timeout.
        let mut d = 1u64 << 40;
        for ts in [5 * SEC, 12 * SEC] {
            for _ in 0..400 {
                t.prepare(ts, 0, 1);
                d += 1;
                t.steered(0, 0, d.wrapping_mul(0x9e37_79b9), how::IP);
            }
        }
        assert_eq!(t.stats.ended, 250);
        assert_eq!(t.stats.expired, 250);
        assert!(t.len as u64 <= 600);
    }

    #[test]
    fn slots_start_on_a_cache_line() {
        for apps in [1usize, 8, 24] {
            let t = FlowTable::new(&vec![4; apps], 100, 300 << 30, None);
            let first = t.words.as_ptr() as usize + 8 * t.base;
            assert_eq!(first % 64, 0, "{apps} apps");
            assert_eq!(64 % (8 * t.stride), 0, "a slot never straddles two lines");
        }
    }

    #[test]
    fn many_apps_share_one_slot() {
        let queues: Vec<u32> = (1..=24).collect();
        let mut t = FlowTable::new(&queues, 10, 300 << 30, None);
        assert_eq!(t.stats.slot_bytes, 64);
        t.prepare(0, 1, 1);
        for app in 0..24 {
            t.steered_common(app, app, 0);
        }
        t.settle(&[42], &[how::IP]);
        for (app, a) in t.apps.iter().enumerate() {
            assert_eq!(a.per_queue[app], 1, "app {app}");
        }
        assert_eq!(t.len as u64, 1);
    }
}
