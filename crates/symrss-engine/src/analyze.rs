//! What each scheme would do with a stream of packets: per-queue load and
//! the flows it splits (`symrss analyze`).
//!
//! A *flow* is a bidirectional 5-tuple at the analysed layer (canonical
//! endpoint order), with later fragments attributed to their datagram's
//! flow through the fragment tracker and ICMP errors to the flow they
//! quote. A flow is *split* under a scheme when its packets reached more
//! than one queue; each split flow gets a reason class from the first
//! packet that left the flow's first queue.

use std::collections::HashMap;

use symrss_hash::{Reta, Tuple};
use symrss_wire::FlowKey;

use crate::frag::{FragConfig, FragStats, FragTracker, Outcome};
use crate::policy::{HashLayer, Policy, Resolved, Subject};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowId {
    tuple: Tuple,
    proto: u8,
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
    per_policy: Vec<FlowOnPolicy>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    key: FlowKey,
    subject: Subject,
    len: u32,
}

/// Streaming analyzer.
pub struct Analyzer {
    cfg: AnalyzeConfig,
    policies: Vec<(Policy, Reta)>,
    loads: Vec<Vec<QueueLoad>>,
    tracker: FragTracker<Pending, Resolved>,
    flows: HashMap<FlowId, FlowState>,
    released: Vec<Pending>,
    packets: u64,
    bytes: u64,
    non_ip: u64,
    dissect_errors: u64,
    packets_untracked: u64,
    icmp_followed: u64,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("packets", &self.packets)
            .field("flows", &self.flows.len())
            .finish()
    }
}

impl Analyzer {
    /// An analyzer for these policies.
    pub fn new(policies: Vec<Policy>, cfg: AnalyzeConfig) -> Self {
        let policies: Vec<(Policy, Reta)> = policies
            .into_iter()
            .map(|p| {
                let reta = p.reta(cfg.queues);
                (p, reta)
            })
            .collect();
        let loads = policies
            .iter()
            .map(|_| vec![QueueLoad::default(); cfg.queues.max(1) as usize])
            .collect();
        Self {
            tracker: FragTracker::new(cfg.frag),
            cfg,
            policies,
            loads,
            flows: HashMap::new(),
            released: Vec::new(),
            packets: 0,
            bytes: 0,
            non_ip: 0,
            dissect_errors: 0,
            packets_untracked: 0,
            icmp_followed: 0,
        }
    }

    /// Feeds one packet (`wire_len`: length on the wire; `ts_ns`: its time).
    pub fn packet(&mut self, key: &FlowKey, wire_len: u32, ts_ns: i128) {
        self.packets += 1;
        self.bytes += u64::from(wire_len);
        if key.error.is_some() {
            self.dissect_errors += 1;
        }
        let mut released = std::mem::take(&mut self.released);
        self.tracker.expire(ts_ns, &mut released);
        for p in released.drain(..) {
            self.account(&p, None, true);
        }
        self.released = released;
        let Some(subject) = Subject::of(key, self.cfg.layer, true) else {
            self.non_ip += 1;
            for load in &mut self.loads {
                load[0].packets += 1;
                load[0].bytes += u64::from(wire_len);
            }
            return;
        };
        let pending = Pending {
            key: *key,
            subject,
            len: wire_len,
        };
        match subject.frag {
            None => self.account(&pending, None, false),
            Some((id, first)) => {
                match self
                    .tracker
                    .fragment(id, first, Some(subject.resolved()), ts_ns, pending)
                {
                    Outcome::Steer(p, r) => self.account(&p, r, !first && r.is_none()),
                    Outcome::Release(p, held, r) => {
                        self.account(&p, r, false);
                        for h in held {
                            self.account(&h, r, false);
                        }
                    }
                    Outcome::Held => {}
                }
            }
        }
    }

    fn account(&mut self, p: &Pending, tracked: Option<Resolved>, unresolved: bool) {
        let s = &p.subject;
        if s.icmp_quote {
            self.icmp_followed += 1;
        }
        let flow = s.flow(tracked);
        let canon = flow.tuple.canonical();
        let forward = canon == flow.tuple;
        let id = FlowId {
            tuple: canon,
            proto: flow.proto,
        };
        let n = self.policies.len();
        let known = self.flows.contains_key(&id);
        if !known && self.flows.len() >= self.cfg.max_flows {
            self.packets_untracked += 1;
        }
        for i in 0..n {
            let (policy, reta) = &self.policies[i];
            let own = if policy.is_nic() || policy.layer != self.cfg.layer || !policy.icmp_follow {
                Subject::of(&p.key, policy.layer, policy.icmp_follow)
            } else {
                Some(*s)
            };
            let Some(own) = own else { continue };
            let q = reta.queue(policy.hash(&own, tracked));
            let load = &mut self.loads[i][q as usize];
            load.packets += 1;
            load.bytes += u64::from(p.len);
            if !known && self.flows.len() >= self.cfg.max_flows {
                continue;
            }
            let class = if own.frag.is_some() && policy.is_nic() {
                SplitClass::FragmentsByAddress
            } else if unresolved {
                SplitClass::UnresolvedFragments
            } else if p.key.layers_quote() && !own.icmp_quote {
                SplitClass::IcmpErrors
            } else {
                SplitClass::Directions
            };
            let state = self.flows.entry(id).or_insert_with(|| FlowState {
                first_forward: forward,
                per_policy: Vec::with_capacity(n),
            });
            if state.per_policy.len() <= i {
                state.per_policy.push(FlowOnPolicy {
                    first: q,
                    first_count: 0,
                    others: Vec::new(),
                    class: None,
                });
                self.loads[i][q as usize].flows += 1;
            }
            let first_forward = state.first_forward;
            let f = &mut state.per_policy[i];
            if q == f.first {
                f.first_count += 1;
            } else {
                if f.class.is_none() {
                    let class = if class == SplitClass::Directions && forward == first_forward {
                        SplitClass::Other
                    } else {
                        class
                    };
                    f.class = Some(class);
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
    }

    /// Packets seen so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Ends the stream (held fragments fall back) and reports.
    pub fn finish(mut self) -> Report {
        let mut released = Vec::new();
        self.tracker.drain(&mut released);
        for p in released {
            self.account(&p, None, true);
        }
        let mut schemes = Vec::with_capacity(self.policies.len());
        for (i, (policy, _)) in self.policies.iter().enumerate() {
            let mut split = 0;
            let mut minority = 0;
            let mut classes: HashMap<SplitClass, u64> = HashMap::new();
            for flow in self.flows.values() {
                let Some(f) = flow.per_policy.get(i) else {
                    continue;
                };
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
            schemes.push(SchemeReport {
                name: policy.name().to_string(),
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
            packets: self.packets,
            bytes: self.bytes,
            non_ip: self.non_ip,
            dissect_errors: self.dissect_errors,
            flows: self.flows.len() as u64,
            packets_untracked: self.packets_untracked,
            flow_limit_reached: self.packets_untracked > 0,
            icmp_followed: self.icmp_followed,
            fragments: self.tracker.stats(),
            schemes,
        }
    }
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
