//! Steering policy: from a dissected frame to the tuple a scheme hashes.
//!
//! Two families of policy:
//!
//! * **software** (`ms`, `sym`, `sym-ip`, `xor`, `or-xor`, `sort`,
//!   `keyed`, `toeplitz:...`): what symrss's balancer does. TCP, UDP and
//!   SCTP are hashed with ports (unless the scheme hashes addresses only),
//!   non-first fragments take their first fragment's ports from the
//!   [`crate::frag`] tracker, and ICMP errors are steered by the flow they
//!   quote (`icmp_follow`).
//! * **NIC profiles** (`nic:<driver>[:<key>]`): what a NIC's RSS does with
//!   its default hash fields (e.g. ixgbe: TCP by 4-tuple, UDP by 2-tuple)
//!   and the Microsoft rule that every IP fragment, the first included, is
//!   hashed by addresses only ("RSS Hashing Types"); the profiles are
//!   [`crate::nic::DRIVER_PROFILES`]. The key defaults to the
//!   symmetric `0x6d5a` key, i.e. the NIC as `symrss nic apply` would leave
//!   it; `nic:ixgbe:ms` models the Microsoft key.

use symrss_hash::{Fields, Reta, RssKey, Scheme, Transform, Tuple};
use symrss_wire::{FlowKey, IpLayer};

use crate::frag::DatagramId;
use crate::rebalance::RebalanceConfig;

/// Which IP layer is hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HashLayer {
    /// The outermost IP header (what a NIC sees).
    #[default]
    Outer,
    /// The first IP header inside a tunnel (the outer one if none).
    Inner,
    /// The innermost IP header.
    Innermost,
}

impl HashLayer {
    /// Parses `outer`, `inner`, `innermost`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "outer" => Some(Self::Outer),
            "inner" => Some(Self::Inner),
            "innermost" => Some(Self::Innermost),
            _ => None,
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Outer => "outer",
            Self::Inner => "inner",
            Self::Innermost => "innermost",
        }
    }

    /// The selected layer of a frame, if it has IP.
    pub fn pick(self, key: &FlowKey) -> Option<&IpLayer> {
        match self {
            Self::Outer => key.outer(),
            Self::Inner => key.inner(),
            Self::Innermost => key.innermost(),
        }
    }
}

/// Transport protocols whose ports a policy hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortProtocols {
    /// TCP (6).
    pub tcp: bool,
    /// UDP (17).
    pub udp: bool,
    /// SCTP (132).
    pub sctp: bool,
}

impl PortProtocols {
    /// TCP, UDP and SCTP.
    pub const ALL: Self = Self {
        tcp: true,
        udp: true,
        sctp: true,
    };

    /// Whether `proto`'s ports are hashed.
    pub fn contains(self, proto: u8) -> bool {
        match proto {
            6 => self.tcp,
            17 => self.udp,
            132 => self.sctp,
            _ => false,
        }
    }
}

/// How fragments are hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragRule {
    /// Later fragments follow their first fragment's ports (software).
    Track,
    /// Every fragment is hashed by addresses only (NIC, per NDIS).
    AddressesOnly,
}

/// A policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// `nic:<driver>` names no profile.
    UnknownNic {
        /// The driver given.
        driver: String,
        /// The profiles there are.
        known: Vec<&'static str>,
    },
    /// The key of `nic:<driver>:<key>` does not parse.
    BadKey {
        /// The specification.
        spec: String,
        /// Why.
        error: symrss_hash::KeyParseError,
    },
    /// The software scheme was refused.
    Scheme(symrss_hash::scheme::SchemeError),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownNic { driver, known } => write!(
                f,
                "unknown NIC profile `{driver}`; known: {}",
                known.join(", ")
            ),
            Self::BadKey { spec, error } => write!(f, "scheme `{spec}`: {error}"),
            Self::Scheme(e) => write!(f, "{e}, or nic:<driver>[:key]"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// A complete steering policy for one application or one analyzed scheme.
#[derive(Clone, Debug)]
pub struct Policy {
    name: String,
    scheme: Scheme,
    /// Layer hashed.
    pub layer: HashLayer,
    /// Fragment rule.
    pub frag: FragRule,
    /// Protocols hashed with ports.
    pub ports: PortProtocols,
    /// ICMP errors follow the flow they quote.
    pub icmp_follow: bool,
    /// RETA size this policy implies (NIC profiles), if any.
    pub reta_size: Option<usize>,
    /// Affinity-preserving rebalancing of the RETA's buckets
    /// ([`crate::rebalance`]); `None`: the table stays as built.
    pub rebalance: Option<RebalanceConfig>,
}

/// The flow a packet belongs to at the hashed layer: what a first
/// fragment resolves its datagram to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// Addresses and, when present, ports.
    pub tuple: Tuple,
    /// Transport protocol.
    pub proto: u8,
}

/// What a policy hashes for one packet, before fragment resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subject {
    /// Addresses and ports at the hashed layer; for a later fragment, the
    /// fragmented layer's addresses (its payload is not visible).
    pub tuple: Tuple,
    /// Transport protocol.
    pub proto: u8,
    /// For real fragments (not IPv6 atomic ones) at or outside the hashed
    /// layer: the datagram and whether this is its first fragment.
    pub frag: Option<(DatagramId, bool)>,
    /// This is an ICMP error steered by the flow it quotes.
    pub icmp_quote: bool,
}

impl Subject {
    /// The subject of `key` at `layer`: the quoted flow of an ICMP error
    /// when `icmp_follow`, else the layer itself. A fragmented layer at or
    /// outside `layer` (e.g. a fragmented GTP packet analysed at the
    /// innermost layer) makes the packet a fragment of that layer's
    /// datagram. `None` for non-IP frames.
    #[inline]
    pub fn of(key: &FlowKey, layer: HashLayer, icmp_follow: bool) -> Option<Self> {
        if let Some(l) = Self::plain(key, layer) {
            return Some(Self {
                tuple: l.tuple,
                proto: l.proto,
                frag: None,
                icmp_quote: false,
            });
        }
        let l = layer.pick(key)?;
        let candidates = match layer {
            HashLayer::Outer => [key.outer(), None, None],
            HashLayer::Inner => [key.outer(), key.inner(), None],
            HashLayer::Innermost => [key.outer(), key.inner(), key.innermost()],
        };
        let fragmented = candidates
            .into_iter()
            .flatten()
            .find(|c| c.frag.is_some_and(|f| f.more || f.offset != 0));
        let frag = fragmented.map(|c| {
            let f = c.frag.expect("filtered on frag");
            let id = DatagramId {
                addrs: c.tuple.with_ports(None),
                proto: c.proto,
                id: f.id,
            };
            (id, f.offset == 0, c)
        });
        if let Some((id, false, c)) = frag {
            return Some(Self {
                tuple: c.tuple.with_ports(None),
                proto: c.proto,
                frag: Some((id, false)),
                icmp_quote: false,
            });
        }
        let frag = frag.map(|(id, first, _)| (id, first));
        if icmp_follow && let Some(q) = l.quoted {
            return Some(Self {
                tuple: q.tuple,
                proto: q.proto,
                frag,
                icmp_quote: true,
            });
        }
        Some(Self {
            tuple: l.tuple,
            proto: l.proto,
            frag,
            icmp_quote: false,
        })
    }

    /// The common case alone: the frame has one IP layer (so `layer`
    /// picks it), not a fragment, not an ICMP error. Then the subject is
    /// that layer's tuple and protocol (what [`Subject::of`] would return),
    /// without building a [`Subject`].
    #[inline]
    pub fn plain(key: &FlowKey, layer: HashLayer) -> Option<&IpLayer> {
        let l = layer.pick(key)?;
        (key.ip_count == 1 && l.frag.is_none() && l.quoted.is_none()).then_some(l)
    }

    /// Whether a tracker must resolve this subject (a later fragment).
    pub fn needs_tracking(&self) -> bool {
        self.frag.is_some_and(|(_, first)| !first)
    }

    /// The flow this packet belongs to: for a later fragment what the
    /// tracker resolved its datagram to (its own addresses when unknown),
    /// for any other packet the subject itself.
    #[inline]
    pub fn flow(&self, tracked: Option<Resolved>) -> Resolved {
        match (self.needs_tracking(), tracked) {
            (true, Some(r)) => r,
            _ => self.resolved(),
        }
    }

    /// What this subject resolves its datagram to (for a first fragment)
    /// or is (for any other packet).
    pub fn resolved(&self) -> Resolved {
        Resolved {
            tuple: self.tuple,
            proto: self.proto,
        }
    }
}

impl Policy {
    /// A software policy around a scheme.
    pub fn software(name: &str, scheme: Scheme, layer: HashLayer) -> Self {
        Self {
            name: name.to_string(),
            scheme,
            layer,
            frag: FragRule::Track,
            ports: PortProtocols::ALL,
            icmp_follow: true,
            reta_size: None,
            rebalance: None,
        }
    }

    /// Parses a scheme name (see the module docs); `seed` draws the random
    /// keys of `xor`, `or-xor`, `sort` and `keyed`.
    pub fn parse(spec: &str, layer: HashLayer, seed: u64) -> Result<Self, PolicyError> {
        if let Some(rest) = spec.strip_prefix("nic:") {
            let (driver, key) = rest.split_once(':').unwrap_or((rest, "sym"));
            let profile = crate::nic::profile(driver).ok_or_else(|| PolicyError::UnknownNic {
                driver: driver.into(),
                known: crate::nic::DRIVER_PROFILES
                    .iter()
                    .map(|p| p.driver)
                    .collect(),
            })?;
            let key = RssKey::parse(key, Some(profile.key_len))
                .or_else(|_| RssKey::parse(key, None))
                .map_err(|error| PolicyError::BadKey {
                    spec: spec.into(),
                    error,
                })?;
            return Ok(Self {
                name: spec.to_string(),
                scheme: Scheme::toeplitz(spec, key, Fields::L4, Transform::None),
                layer: HashLayer::Outer,
                frag: FragRule::AddressesOnly,
                ports: PortProtocols {
                    tcp: true,
                    udp: profile.udp_default & crate::nic::rxh::L4_B_0_1 != 0,
                    sctp: profile.sctp_ports,
                },
                icmp_follow: false,
                reta_size: Some(profile.reta_size),
                rebalance: None,
            });
        }
        let scheme = Scheme::parse(spec, seed).map_err(PolicyError::Scheme)?;
        Ok(Self::software(spec, scheme, layer))
    }

    /// This policy with its buckets rebalanced by `cfg`.
    pub fn with_rebalance(mut self, cfg: RebalanceConfig) -> Self {
        self.rebalance = Some(cfg);
        self
    }

    /// Name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hash scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Whether this policy models a NIC.
    pub fn is_nic(&self) -> bool {
        self.frag == FragRule::AddressesOnly
    }

    /// The tuple hashed for `subject`; `tracked` is what the fragment
    /// tracker resolved a later fragment to (`None`: unknown, address hash).
    pub fn hash_input(&self, subject: &Subject, tracked: Option<Resolved>) -> Tuple {
        if self.frag == FragRule::AddressesOnly && subject.frag.is_some() {
            return subject.tuple.with_ports(None);
        }
        // A later fragment without a resolution is its own addresses: no
        // ports, so the filter leaves it addresses-only.
        self.flow_input(&subject.flow(tracked))
    }

    /// The tuple hashed for a packet of `flow`: its ports only for a
    /// protocol whose ports this policy hashes.
    fn flow_input(&self, flow: &Resolved) -> Tuple {
        let ports = flow
            .tuple
            .ports()
            .filter(|_| self.ports.contains(flow.proto));
        flow.tuple.with_ports(ports)
    }

    /// Hash of a later fragment that follows `flow` (what its first
    /// fragment resolved to): the same as [`Policy::hash`] gives it with
    /// `flow` as its tracked resolution.
    pub fn hash_flow(&self, flow: &Resolved) -> u32 {
        self.scheme.hash(&self.flow_input(flow))
    }

    /// Whether `subject`'s tuple is hashed as it is (the common case: not
    /// a fragment, and a protocol whose ports are hashed or no ports), so
    /// its hash is `self.scheme().hash(&subject.tuple)` — batchable.
    #[inline]
    pub fn hashes_as_is(&self, subject: &Subject) -> bool {
        subject.frag.is_none() && self.hashes_tuple_as_is(&subject.tuple, subject.proto)
    }

    /// The port rule alone: `tuple` (of a packet that is no fragment) is
    /// hashed as it is when it has no ports or `proto`'s ports are hashed.
    #[inline]
    pub fn hashes_tuple_as_is(&self, tuple: &Tuple, proto: u8) -> bool {
        !tuple.has_ports() || self.ports.contains(proto)
    }

    /// Whether every plain tuple (TCP, UDP or SCTP, see
    /// [`symrss_wire::plain_flow`]) is hashed as it is: no port rule
    /// applies ([`Policy::hashes_tuple_as_is`] holds for all of them).
    pub fn hashes_every_plain_as_is(&self) -> bool {
        [6, 17, 132].iter().all(|&p| self.ports.contains(p))
    }

    /// Hash of `subject`.
    #[inline]
    pub fn hash(&self, subject: &Subject, tracked: Option<Resolved>) -> u32 {
        if self.hashes_as_is(subject) {
            return self.scheme.hash(&subject.tuple);
        }
        self.scheme.hash(&self.hash_input(subject, tracked))
    }

    /// The RETA this policy uses with `queues` queues: a NIC profile's
    /// own table size (a NIC with fewer entries than queues leaves queues
    /// empty, as the hardware would), else [`software_reta_size`]. The one
    /// place `analyze`, `split` and `capture` get their tables from.
    pub fn reta(&self, queues: u32) -> Reta {
        let queues = queues.max(1);
        let size = self.reta_size.unwrap_or_else(|| software_reta_size(queues));
        Reta::equal(size, queues, 0).expect("non-empty table")
    }
}

/// The software schemes' table size for `queues` queues: 128 entries (what
/// most NICs have) up to 32 queues, else the power of two at least 4 ×
/// `queues`, so every queue has entries and no queue has more than a
/// quarter more than another.
pub fn software_reta_size(queues: u32) -> usize {
    (queues as usize * 4).next_power_of_two().max(128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use symrss_wire::build::*;
    use symrss_wire::{Options, dissect};

    #[test]
    fn software_tables_reach_every_queue_evenly() {
        let p = Policy::parse("sym", HashLayer::Outer, 0).unwrap();
        for queues in [1, 4, 32, 33, 129, 200, 256, 1000, 1024] {
            let reta = p.reta(queues);
            let mut per_queue = vec![0u32; queues as usize];
            for i in 0..reta.len() {
                per_queue[reta.queue(i as u32) as usize] += 1;
            }
            let (min, max) = (
                *per_queue.iter().min().unwrap(),
                *per_queue.iter().max().unwrap(),
            );
            assert!(min >= 1, "{queues} queues: a queue without entries");
            assert!(4 * max <= 5 * min, "{queues} queues: {min}..{max} entries");
        }
        assert_eq!(
            p.reta(4).len(),
            128,
            "small counts keep the NIC-sized table"
        );
    }

    #[test]
    fn nic_profile_hashes_fragments_and_udp_by_addresses() {
        let p = Policy::parse("nic:ixgbe", HashLayer::Outer, 0).unwrap();
        assert!(p.is_nic() && p.reta_size == Some(128));
        let frame = ethernet(
            ETH_IPV4,
            &ipv4_frag(
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                TCP,
                Some((7, 0, true)),
                &tcp(1, 2, b""),
            ),
        );
        let s = Subject::of(
            &dissect(1, &frame, &Options::default()),
            HashLayer::Outer,
            false,
        )
        .unwrap();
        assert_eq!(
            p.hash_input(&s, None).ports(),
            None,
            "first fragment: addresses only"
        );
        let udp_frame = ethernet(
            ETH_IPV4,
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, &udp(1, 2, b"")),
        );
        let s = Subject::of(
            &dissect(1, &udp_frame, &Options::default()),
            HashLayer::Outer,
            false,
        )
        .unwrap();
        assert_eq!(
            p.hash_input(&s, None).ports(),
            None,
            "ixgbe hashes UDP by addresses"
        );
        let sw = Policy::parse("sym", HashLayer::Outer, 0).unwrap();
        assert_eq!(sw.hash_input(&s, None).ports(), Some((1, 2)));
        assert!(Policy::parse("nic:nope", HashLayer::Outer, 0).is_err());
    }

    #[test]
    fn icmp_errors_follow_the_quoted_flow() {
        let offending = ipv4([10, 0, 0, 1], [10, 0, 0, 2], UDP, &udp(1000, 53, &[0; 8]));
        let frame = ethernet(
            ETH_IPV4,
            &ipv4(
                [10, 0, 0, 254],
                [10, 0, 0, 1],
                ICMP,
                &icmp(3, 3, &offending[..28]),
            ),
        );
        let k = dissect(1, &frame, &Options::default());
        let s = Subject::of(&k, HashLayer::Outer, true).unwrap();
        assert!(s.icmp_quote);
        assert_eq!(s.tuple.ports(), Some((1000, 53)));
        let p = Policy::parse("sym", HashLayer::Outer, 0).unwrap();
        let flow = Tuple::v4([10, 0, 0, 2].into(), [10, 0, 0, 1].into(), Some((53, 1000)));
        assert_eq!(p.hash(&s, None), p.scheme().hash(&flow));
    }
}
