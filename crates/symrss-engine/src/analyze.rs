//! What each scheme would do with a stream of packets: per-queue load and
//! the flows it splits (`symrss analyze`).
//!
//! A *flow* is a bidirectional 5-tuple at the analysed layer (canonical
//! endpoint order), with later fragments attributed to their datagram's
//! flow through the fragment tracker and ICMP errors to the flow they
//! quote (decided by a software steering at the analysed layer). Each
//! scheme's queues are decided by the balancer's own steering core
//! (`steering.rs`), so `analyze` predicts exactly what `split` and
//! `capture` deliver. A flow is *split* under a scheme when its packets reached more
//! than one queue; each split flow gets a reason class from the first
//! packet that left the flow's first queue.

use std::collections::{HashMap, VecDeque};

use symrss_hash::{Scheme, Tuple};
use symrss_wire::{FlowKey, Options};

use crate::affinity::{Account, how};
use crate::arena::Arena;
use crate::flowtable::FlowTable;
use crate::frag::{FragConfig, FragStats};
use crate::policy::{HashLayer, Policy, Subject};
use crate::rebalance::RebalanceStats;
use crate::steering::{Seen, Steerer, Steering};

/// Why a flow was split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SplitClass {
    /// The two directions hash differently (asymmetric scheme).
    Directions,
    /// Fragments were hashed by addresses only while the flow's other
    /// packets were hashed with ports.
    FragmentsByAddress,
    /// Later fragments whose first fragment never arrived fell back to the
    /// address hash.
    UnresolvedFragments,
    /// ICMP errors were hashed by their own header, not the quoted flow.
    IcmpErrors,
    /// Same direction, different fields (e.g. a protocol hashed by
    /// addresses under one rule and ports under another).
    Other,
}

impl SplitClass {
    /// Stable identifier.
    pub fn code(self) -> &'static str {
        match self {
            Self::Directions => "directions_hash_differently",
            Self::FragmentsByAddress => "fragments_hashed_by_addresses",
            Self::UnresolvedFragments => "fragments_without_first_fragment",
            Self::IcmpErrors => "icmp_errors_by_own_header",
            Self::Other => "other",
        }
    }

    /// One-line explanation.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Directions => "the two directions hash differently (the scheme is not symmetric)",
            Self::FragmentsByAddress => {
                "IP fragments hashed by addresses only, the rest of the flow by ports"
            }
            Self::UnresolvedFragments => {
                "fragments whose first fragment never arrived fell back to the address hash"
            }
            Self::IcmpErrors => {
                "ICMP errors hashed by their own header instead of the flow they quote"
            }
            Self::Other => "same direction hashed with different fields",
        }
    }
}

/// Limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnalyzeConfig {
    /// Queues per scheme.
    pub queues: u32,
    /// Layer hashed by software schemes and used for flow identity.
    pub layer: HashLayer,
    /// Fragment tracker limits.
    pub frag: FragConfig,
    /// Most flows tracked for split detection (memory bound).
    pub max_flows: usize,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        Self {
            queues: 4,
            layer: HashLayer::Outer,
            frag: FragConfig::default(),
            max_flows: 10_000_000,
        }
    }
}

/// Load of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLoad {
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
    /// Flows with at least one packet here.
    pub flows: u64,
}

/// Result for one scheme.
#[derive(Clone, Debug)]
pub struct SchemeReport {
    /// Scheme name.
    pub name: String,
    /// Whether it models a NIC.
    pub nic: bool,
    /// Per queue.
    pub queues: Vec<QueueLoad>,
    /// Flows whose packets reached more than one queue.
    pub flows_split: u64,
    /// Packets of split flows outside their flow's busiest queue.
    pub packets_on_minority_queue: u64,
    /// max/mean of per-queue packets.
    pub imbalance_packets: f64,
    /// max/mean of per-queue flows.
    pub imbalance_flows: f64,
    /// Split flows per reason, most common first.
    pub split_classes: Vec<(SplitClass, u64)>,
    /// For a rebalanced scheme, what rebalancing did (per window: load as
    /// placed, as the static RETA would have placed it, largest flow).
    pub rebalance: Option<RebalanceStats>,
    /// Per queue, its [`TOP_FLOWS`] largest flows by packets on it (exact
    /// counts), largest first: what makes a queue hot.
    pub top_flows: Vec<Vec<TopFlow>>,
    /// Per RETA bucket, its packets (IP packets, by their hash) and the
    /// queue the table as built gives it: a queue is hot because of a
    /// bucket, or of a flow within it.
    pub buckets: Vec<(u64, u32)>,
}

/// Flows listed per queue in [`SchemeReport::top_flows`].
pub const TOP_FLOWS: usize = 5;

/// One of a queue's largest flows.
#[derive(Clone, Debug, PartialEq)]
pub struct TopFlow {
    /// Both endpoints (at the analysed layer) and the protocol.
    pub flow: String,
    /// Its packets on this queue.
    pub packets: u64,
    /// Its bytes on the wire (all of them: on this queue unless the scheme
    /// split it).
    pub bytes: u64,
    /// Its share of the queue's packets.
    pub share: f64,
}

/// Result of an analysis.
#[derive(Clone, Debug)]
pub struct Report {
    /// Packets seen.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
    /// Packets without IP at any layer (steered to queue 0).
    pub non_ip: u64,
    /// Packets whose dissection stopped early (their parsed layers were used).
    pub dissect_errors: u64,
    /// Flows (bidirectional 5-tuples at the analysed layer).
    pub flows: u64,
    /// Packets of flows not tracked because `max_flows` was reached
    /// (counted in the queue loads, not in the split-flow figures).
    pub packets_untracked: u64,
    /// Whether `max_flows` was reached (`flows` is then that bound).
    pub flow_limit_reached: bool,
    /// ICMP errors attributed to the flow they quote.
    pub icmp_followed: u64,
    /// Fragment tracker counters.
    pub fragments: FragStats,
    /// One per scheme, in the order given.
    pub schemes: Vec<SchemeReport>,
}

#[derive(Clone, Debug)]
struct FlowOnPolicy {
    first: u32,
    first_count: u64,
    /// Other queues with counts; empty unless split.
    others: Vec<(u32, u64)>,
    class: Option<SplitClass>,
}

#[derive(Clone, Debug)]
struct FlowState {
    first_forward: bool,
    /// Canonical tuple and protocol, from the flow's first packet.
    name: (Tuple, u8),
    bytes: u64,
    per_policy: Vec<FlowOnPolicy>,
}

/// One scheme's decision for one packet, as its steering reported it.
#[derive(Clone, Copy, Debug)]
struct Decision {
    queue: u32,
    flow: u64,
    how: u8,
}

/// [`Decision::queue`] not reported yet.
const UNDECIDED: u32 = u32::MAX;

/// What the analyzer knows of a packet whose decisions are not all in.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Length on the wire.
    len: u32,
    /// Seen in the forward direction (canonical endpoint order) at the
    /// analysed layer.
    forward: bool,
    /// Some layer carries an ICMP error quote.
    quote: bool,
    /// Its tuple (canonical) and protocol at the analysed layer.
    name: Option<(Tuple, u8)>,
    /// Decisions (and the observation) still missing.
    missing: usize,
}

/// A steering's decisions as they come (a later fragment's when its first
/// fragment came, so not in input order).
#[derive(Debug, Default)]
struct Recorder {
    /// (steering, input position, decision).
    decisions: Vec<(usize, u64, Decision)>,
    /// Where rebalanced schemes place their flows (the balancer keeps the
    /// same in its flow table); `None` if no scheme rebalances.
    placement: Option<FlowTable>,
}

impl Account for Recorder {
    fn prepare(&mut self, common: usize, decisions: usize, ts_ns: i128) {
        if let Some(t) = &mut self.placement {
            t.prepare(ts_ns, common, decisions);
        }
    }

    fn settle(&mut self, _: &[u64], _: &[u8]) {}

    fn placement(&mut self) -> Option<&mut FlowTable> {
        self.placement.as_mut()
    }

    #[inline]
    fn steered(&mut self, app: usize, queue: usize, flow: u64, how: u8, index: u64) {
        self.decisions.push((
            app,
            index,
            Decision {
                queue: queue as u32,
                flow,
                how,
            },
        ));
    }

    #[inline]
    fn steered_common(
        &mut self,
        app: usize,
        queue: usize,
        _: usize,
        flow: u64,
        how: u8,
        index: u64,
    ) {
        self.steered(app, queue, flow, how, index);
    }
}

/// Streaming analyzer. Each scheme is steered by the same steering core
/// the balancer runs (so its per-queue loads are what `split` and
/// `capture` deliver); one more steering, a software one at the analysed
/// layer, gives every packet its flow identity (later fragments through
/// their first fragment, ICMP errors through the flow they quote). The
/// decisions of one packet are joined by its input position.
pub struct Analyzer {
    cfg: AnalyzeConfig,
    steerer: Steerer<Recorder>,
    /// Schemes (the steerer has one more core: the flow identity).
    schemes: usize,
    /// Packets not yet accounted, from input position `base`.
    records: VecDeque<Record>,
    /// Their decisions, `schemes + 1` per record.
    decided: VecDeque<Decision>,
    base: u64,
    loads: Vec<Vec<QueueLoad>>,
    flows: HashMap<u64, FlowState>,
    bytes: u64,
    non_ip: u64,
    packets_untracked: u64,
    icmp_followed: u64,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("packets", &self.steerer.pushed())
            .field("flows", &self.flows.len())
            .finish()
    }
}

impl Analyzer {
    /// An analyzer for these policies.
    pub fn new(policies: Vec<Policy>, cfg: AnalyzeConfig) -> Self {
        let queues = cfg.queues.max(1);
        let loads = policies
            .iter()
            .map(|_| vec![QueueLoad::default(); queues as usize])
            .collect();
        let schemes = policies.len();
        let dissect = Options::default();
        let identity = Policy::software(
            "flow identity",
            Scheme::parse("sym", 0).expect("a built-in scheme"),
            cfg.layer,
        );
        let placing: Vec<bool> = policies
            .iter()
            .map(|p| p.rebalance.is_some())
            .chain([false])
            .collect();
        // The balancer's flow table would hold the same (10 M flows by
        // default here too, so nothing is untracked that split tracks).
        let placement = policies.iter().find_map(|p| p.rebalance).map(|r| {
            let queues: Vec<u32> = placing.iter().map(|_| queues).collect();
            FlowTable::with_placing(
                &queues,
                &placing,
                cfg.max_flows,
                r.idle_ns,
                r.ended_linger_ns,
                None,
            )
        });
        let cores = policies
            .into_iter()
            .map(|p| (p, queues))
            .chain([(identity, 1)])
            .map(|(p, q)| Steering::new(p, q, cfg.frag, dissect).with_bucket_counts())
            .collect();
        let arena = Arena::new(4096, 1 << 20, 8);
        let recorder = Recorder {
            decisions: Vec::new(),
            placement,
        };
        Self {
            steerer: Steerer::new(arena, cores, dissect, cfg.frag, recorder),
            cfg,
            schemes,
            records: VecDeque::new(),
            decided: VecDeque::new(),
            base: 0,
            loads,
            flows: HashMap::new(),
            bytes: 0,
            non_ip: 0,
            packets_untracked: 0,
            icmp_followed: 0,
        }
    }

    /// Feeds one packet: its time, length on the wire, LINKTYPE and
    /// captured bytes.
    pub fn packet(&mut self, ts_ns: i128, orig_len: u32, linktype: u32, data: &[u8]) {
        let len = orig_len.max(data.len() as u32);
        self.bytes += u64::from(len);
        self.records.push_back(Record {
            len,
            forward: true,
            quote: false,
            name: None,
            missing: self.schemes + 2,
        });
        let undecided = Decision {
            queue: UNDECIDED,
            flow: 0,
            how: 0,
        };
        self.decided
            .extend(std::iter::repeat_n(undecided, self.schemes + 1));
        let (records, base, layer) = (&mut self.records, self.base, self.cfg.layer);
        self.steerer.push(
            ts_ns,
            orig_len,
            linktype,
            data,
            &mut |index, seen| observe(&mut records[(index - base) as usize], seen, layer),
            &mut |_, _, _| {},
        );
        self.join();
    }

    /// Moves the steerings' decisions to their packets and accounts every
    /// packet at the front whose decisions are all in.
    fn join(&mut self) {
        let stride = self.schemes + 1;
        for (c, index, d) in self.steerer.account.decisions.drain(..) {
            let at = (index - self.base) as usize;
            self.decided[at * stride + c] = d;
            self.records[at].missing -= 1;
        }
        while self.records.front().is_some_and(|r| r.missing == 0) {
            let r = self.records.pop_front().expect("checked");
            let d: Vec<Decision> = self.decided.drain(..stride).collect();
            self.base += 1;
            self.account(&r, &d);
        }
    }

    fn account(&mut self, r: &Record, d: &[Decision]) {
        let n = self.schemes;
        for (load, own) in self.loads.iter_mut().zip(d) {
            let q = &mut load[own.queue as usize];
            q.packets += 1;
            q.bytes += u64::from(r.len);
        }
        let identity = d[n];
        if identity.how & how::IP == 0 {
            self.non_ip += 1;
            return;
        }
        if identity.how & how::QUOTE != 0 {
            self.icmp_followed += 1;
        }
        let unresolved = identity.how & how::FALLBACK != 0;
        if !self.flows.contains_key(&identity.flow) && self.flows.len() >= self.cfg.max_flows {
            self.packets_untracked += 1;
            return;
        }
        let loads = &mut self.loads;
        let state = self
            .flows
            .entry(identity.flow)
            .or_insert_with(|| FlowState {
                first_forward: r.forward,
                name: r.name.unwrap_or_default(),
                bytes: 0,
                per_policy: d[..n]
                    .iter()
                    .zip(loads.iter_mut())
                    .map(|(own, load)| {
                        load[own.queue as usize].flows += 1;
                        FlowOnPolicy {
                            first: own.queue,
                            first_count: 0,
                            others: Vec::new(),
                            class: None,
                        }
                    })
                    .collect(),
            });
        state.bytes += u64::from(r.len);
        let steerings = &self.steerer.cores;
        for (i, own) in d[..n].iter().enumerate() {
            let f = &mut state.per_policy[i];
            let q = own.queue;
            if q == f.first {
                f.first_count += 1;
                continue;
            }
            if f.class.is_none() {
                let nic = steerings[i].policy().is_nic();
                f.class = Some(if own.how & how::FRAGMENT != 0 && nic {
                    SplitClass::FragmentsByAddress
                } else if unresolved {
                    SplitClass::UnresolvedFragments
                } else if r.quote && own.how & how::QUOTE == 0 {
                    SplitClass::IcmpErrors
                } else if r.forward == state.first_forward {
                    SplitClass::Other
                } else {
                    SplitClass::Directions
                });
            }
            match f.others.iter_mut().find(|(oq, _)| *oq == q) {
                Some((_, c)) => *c += 1,
                None => {
                    f.others.push((q, 1));
                    self.loads[i][q as usize].flows += 1;
                }
            }
        }
    }

    /// Packets seen so far.
    pub fn packets(&self) -> u64 {
        self.steerer.pushed()
    }

    /// Ends the stream (held fragments fall back) and reports.
    pub fn finish(mut self) -> Report {
        let (records, base, layer) = (&mut self.records, self.base, self.cfg.layer);
        self.steerer.finish(
            &mut |index, seen| observe(&mut records[(index - base) as usize], seen, layer),
            &mut |_, _, _| {},
        );
        self.join();
        debug_assert!(self.records.is_empty(), "every packet decided");
        let mut schemes = Vec::with_capacity(self.schemes);
        for (i, core) in self.steerer.cores[..self.schemes].iter().enumerate() {
            let policy = core.policy();
            let mut split = 0;
            let mut minority = 0;
            let mut classes: HashMap<SplitClass, u64> = HashMap::new();
            for flow in self.flows.values() {
                let f = &flow.per_policy[i];
                if f.others.is_empty() {
                    continue;
                }
                split += 1;
                let total: u64 = f.first_count + f.others.iter().map(|(_, c)| c).sum::<u64>();
                let max = f
                    .others
                    .iter()
                    .map(|(_, c)| *c)
                    .max()
                    .unwrap_or(0)
                    .max(f.first_count);
                minority += total - max;
                *classes
                    .entry(f.class.unwrap_or(SplitClass::Other))
                    .or_default() += 1;
            }
            let mut split_classes: Vec<(SplitClass, u64)> = classes.into_iter().collect();
            split_classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let queues = self.loads[i].clone();
            let rebalance = core.rebalance_stats(true);
            let top_flows = self.top_flows(i);
            let buckets = core
                .bucket_counts()
                .map(|(packets, queues)| {
                    packets
                        .iter()
                        .copied()
                        .zip(queues.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            schemes.push(SchemeReport {
                top_flows,
                buckets,
                name: match rebalance {
                    Some(_) => format!("{} rebalanced", policy.name()),
                    None => policy.name().to_string(),
                },
                rebalance,
                nic: policy.is_nic(),
                imbalance_packets: imbalance(queues.iter().map(|q| q.packets)),
                imbalance_flows: imbalance(queues.iter().map(|q| q.flows)),
                queues,
                flows_split: split,
                packets_on_minority_queue: minority,
                split_classes,
            });
        }
        Report {
            packets: self.steerer.pushed(),
            bytes: self.bytes,
            non_ip: self.non_ip,
            dissect_errors: self.steerer.dissect_errors.count,
            flows: self.flows.len() as u64,
            packets_untracked: self.packets_untracked,
            flow_limit_reached: self.packets_untracked > 0,
            icmp_followed: self.icmp_followed,
            fragments: self.steerer.cores[self.schemes].frag_stats(),
            schemes,
        }
    }
}

impl Analyzer {
    /// Scheme `i`'s [`TOP_FLOWS`] largest flows per queue.
    fn top_flows(&self, i: usize) -> Vec<Vec<TopFlow>> {
        let loads = &self.loads[i];
        // (packets, flow digest, flow): largest first, ties by digest, so
        // the list does not depend on the map's order.
        let mut top: Vec<Vec<(u64, u64, &FlowState)>> = vec![Vec::new(); loads.len()];
        for (&digest, flow) in &self.flows {
            let f = &flow.per_policy[i];
            let on = [(f.first, f.first_count)]
                .into_iter()
                .chain(f.others.iter().copied());
            for (q, packets) in on {
                let list = &mut top[q as usize];
                let before = |&(p, d, _): &(u64, u64, &FlowState)| {
                    (p, std::cmp::Reverse(d)) > (packets, std::cmp::Reverse(digest))
                };
                let at = list.partition_point(before);
                if at < TOP_FLOWS {
                    list.insert(at, (packets, digest, flow));
                    list.truncate(TOP_FLOWS);
                }
            }
        }
        top.iter()
            .zip(loads)
            .map(|(list, load)| {
                list.iter()
                    .map(|(packets, _, flow)| TopFlow {
                        flow: crate::balancer::hot::flow_name(&flow.name.0, flow.name.1),
                        packets: *packets,
                        bytes: flow.bytes,
                        share: if load.packets > 0 {
                            *packets as f64 / load.packets as f64
                        } else {
                            0.0
                        },
                    })
                    .collect()
            })
            .collect()
    }
}

/// Notes what the steerer saw of a packet: its direction at `layer` and
/// whether it quotes a flow (an ICMP error).
fn observe(record: &mut Record, seen: Seen<'_>, layer: HashLayer) {
    let (forward, quote, name) = match seen {
        Seen::Plain(tuple, proto) => (
            tuple.canonical() == *tuple,
            false,
            Some((tuple.canonical(), proto)),
        ),
        Seen::Dissected(key) => {
            let subject = Subject::of(key, layer, true);
            (
                subject.is_none_or(|s| s.tuple.canonical() == s.tuple),
                key.layers_quote(),
                subject.map(|s| (s.tuple.canonical(), s.proto)),
            )
        }
    };
    record.forward = forward;
    record.quote = quote;
    record.name = name;
    record.missing -= 1;
}

/// max/mean of the values (1.0 when all are zero).
fn imbalance(values: impl Iterator<Item = u64> + Clone) -> f64 {
    let n = values.clone().count() as f64;
    let sum: u64 = values.clone().sum();
    let max = values.max().unwrap_or(0);
    if sum == 0 {
        1.0
    } else {
        max as f64 / (sum as f64 / n)
    }
}

trait QuoteExt {
    fn layers_quote(&self) -> bool;
}

impl QuoteExt for FlowKey {
    /// Whether any kept layer carries an ICMP error quote.
    fn layers_quote(&self) -> bool {
        [self.outer(), self.inner(), self.innermost()]
            .into_iter()
            .flatten()
            .any(|l| l.quoted.is_some())
    }
}
