//! Fragment tracking: non-first fragments carry no ports (nor, for a
//! fragmented tunnel packet, the inner header), so a scheme that hashes
//! them would send them elsewhere than their flow. The tracker remembers,
//! per datagram (`src`, `dst`, protocol, IP identification), what its first
//! fragment resolved to (`R`: the flow it belongs to); later fragments
//! follow it. Fragments that
//! arrive before their first fragment wait in a bounded hold until it comes
//! or until `hold_ns` of packet time has passed, then fall back to the
//! address-only hash. Every outcome is counted.
//!
//! Memory is bounded: at most `max_datagrams` datagrams are tracked and at
//! most `max_held` items wait in total; beyond that fragments fall back
//! immediately (counted as `fallback_full`).

use std::collections::{HashMap, VecDeque};

use symrss_hash::Tuple;

/// Identifies one fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramId {
    /// Addresses (ports ignored).
    pub addrs: Tuple,
    /// Transport protocol.
    pub proto: u8,
    /// IP identification.
    pub id: u32,
}

/// Limits and timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams tracked at once.
    pub max_datagrams: usize,
    /// Fragments waiting for their first fragment, in total.
    pub max_held: usize,
    /// How long (packet time) a fragment may wait, and how long a
    /// datagram's resolution is remembered after its last fragment.
    pub hold_ns: i128,
    /// Packets an app keeps back while a fragment waits (its queues stay
    /// in input order); past it, the fragments that waited longest give up
    /// on their first fragment.
    pub max_delayed: usize,
}

impl Default for FragConfig {
    fn default() -> Self {
        Self {
            max_datagrams: 65_536,
            max_held: 8192,
            hold_ns: 1_000_000_000,
            max_delayed: 1 << 16,
        }
    }
}

/// Counters (all fragments are counted exactly once in `first`, `followed`,
/// `released`, `fallback_timeout` or `fallback_full`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    /// First fragments (they resolve their datagram).
    pub first: u64,
    /// Later fragments steered at once as their first fragment.
    pub followed: u64,
    /// Later fragments that waited and were released when the first came.
    pub released: u64,
    /// Later fragments whose first fragment never came in time (address hash).
    pub fallback_timeout: u64,
    /// Later fragments not tracked because a bound was reached (address hash).
    pub fallback_full: u64,
}

impl FragStats {
    /// Adds another tracker's counts (several workers).
    pub fn add(&mut self, o: &FragStats) {
        self.first += o.first;
        self.followed += o.followed;
        self.released += o.released;
        self.fallback_timeout += o.fallback_timeout;
        self.fallback_full += o.fallback_full;
    }
}

/// What to do with a fragment now.
#[derive(Debug)]
pub enum Outcome<T, R> {
    /// Steer as this flow (`None`: address-only fallback).
    Steer(T, Option<R>),
    /// The first fragment arrived: steer it and the released items, all
    /// as this flow.
    Release(T, Vec<T>, Option<R>),
    /// Held until its first fragment arrives or the hold expires.
    Held,
}

struct Datagram<T, R> {
    resolved: Option<R>,
    known: bool,
    last_ns: i128,
    held: Vec<(i128, T)>,
}

/// The tracker; `T` is what the caller holds per fragment (a packet
/// handle), `R` what a first fragment resolves its datagram to.
pub struct FragTracker<T, R> {
    cfg: FragConfig,
    table: HashMap<DatagramId, Datagram<T, R>>,
    /// Insertion order for expiry (id, insertion time).
    order: VecDeque<(DatagramId, i128)>,
    held: usize,
    stats: FragStats,
}

impl<T, R> std::fmt::Debug for FragTracker<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragTracker")
            .field("datagrams", &self.table.len())
            .field("held", &self.held)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<T, R: Copy> FragTracker<T, R> {
    /// An empty tracker.
    pub fn new(cfg: FragConfig) -> Self {
        Self {
            cfg,
            table: HashMap::new(),
            order: VecDeque::new(),
            held: 0,
            stats: FragStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FragStats {
        self.stats
    }

    /// How long an item may wait (packet time, ns).
    pub fn hold_ns(&self) -> i128 {
        self.cfg.hold_ns
    }

    /// Items currently held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Datagrams currently tracked.
    pub fn datagrams(&self) -> usize {
        self.table.len()
    }

    /// Visits every held item (e.g. to turn a handle into the current
    /// batch into a shared one before the batch is handed off).
    pub fn for_each_held(&mut self, mut f: impl FnMut(&mut T)) {
        if self.held == 0 {
            return;
        }
        for d in self.table.values_mut() {
            for (_, t) in &mut d.held {
                f(t);
            }
        }
    }

    /// Whether `id`'s first fragment is known here.
    pub fn knows(&self, id: &DatagramId) -> bool {
        self.table.get(id).is_some_and(|d| d.known)
    }

    /// The datagrams whose first fragment is not known yet and that have
    /// items waiting, with the time the first of them came (their hold
    /// counts from it).
    pub fn waiting(&self) -> impl Iterator<Item = (DatagramId, i128)> + '_ {
        self.table
            .iter()
            .filter(|(_, d)| !d.known)
            .filter_map(|(id, d)| d.held.first().map(|(t, _)| (*id, *t)))
    }

    /// `id`'s first fragment was seen elsewhere (another worker) and
    /// resolved to `resolved`: the datagram is known from now on, and the
    /// items that waited for it are returned, to steer as `resolved`
    /// (counted as released).
    pub fn learn(&mut self, id: DatagramId, resolved: Option<R>, now_ns: i128) -> Vec<T> {
        if let Some(d) = self.table.get_mut(&id) {
            if d.known {
                return Vec::new();
            }
            d.known = true;
            d.resolved = resolved;
            d.last_ns = d.last_ns.max(now_ns);
            let held: Vec<T> = d.held.drain(..).map(|(_, t)| t).collect();
            self.held -= held.len();
            self.stats.released += held.len() as u64;
            return held;
        }
        if self.table.len() < self.cfg.max_datagrams {
            self.table.insert(
                id,
                Datagram {
                    resolved,
                    known: true,
                    last_ns: now_ns,
                    held: Vec::new(),
                },
            );
            self.order.push_back((id, now_ns));
        }
        Vec::new()
    }

    /// Handles one fragment. `resolved` is what a first fragment resolves
    /// its datagram to (ignored for later fragments).
    pub fn fragment(
        &mut self,
        id: DatagramId,
        first: bool,
        resolved: Option<R>,
        now_ns: i128,
        item: T,
    ) -> Outcome<T, R> {
        if first {
            self.stats.first += 1;
        }
        if let Some(d) = self.table.get_mut(&id) {
            d.last_ns = now_ns;
            if d.known {
                if !first {
                    self.stats.followed += 1;
                }
                return Outcome::Steer(item, d.resolved);
            }
            if first {
                d.known = true;
                d.resolved = resolved;
                let held: Vec<T> = d.held.drain(..).map(|(_, t)| t).collect();
                self.held -= held.len();
                self.stats.released += held.len() as u64;
                return Outcome::Release(item, held, resolved);
            }
            if self.held >= self.cfg.max_held {
                self.stats.fallback_full += 1;
                return Outcome::Steer(item, None);
            }
            d.held.push((now_ns, item));
            self.held += 1;
            return Outcome::Held;
        }
        if self.table.len() >= self.cfg.max_datagrams || (!first && self.held >= self.cfg.max_held)
        {
            if !first {
                self.stats.fallback_full += 1;
            }
            return Outcome::Steer(item, if first { resolved } else { None });
        }
        let mut d = Datagram {
            resolved: if first { resolved } else { None },
            known: first,
            last_ns: now_ns,
            held: Vec::new(),
        };
        let outcome = if first {
            Outcome::Steer(item, resolved)
        } else {
            d.held.push((now_ns, item));
            self.held += 1;
            Outcome::Held
        };
        self.table.insert(id, d);
        self.order.push_back((id, now_ns));
        outcome
    }

    /// Releases everything that waited longer than the hold time and forgets
    /// idle datagrams. Released items fall back to the address hash.
    pub fn expire(&mut self, now_ns: i128, released: &mut Vec<T>) {
        while let Some(&(id, since)) = self.order.front() {
            if now_ns - since <= self.cfg.hold_ns {
                break;
            }
            self.order.pop_front();
            let Some(d) = self.table.get(&id) else {
                continue;
            };
            if now_ns - d.last_ns <= self.cfg.hold_ns && d.held.is_empty() {
                // Still active: check again later.
                self.order.push_back((id, d.last_ns));
                continue;
            }
            if let Some(d) = self.table.remove(&id) {
                self.held -= d.held.len();
                self.stats.fallback_timeout += d.held.len() as u64;
                released.extend(d.held.into_iter().map(|(_, t)| t));
            }
        }
    }

    /// Releases every held item (end of input), with address-only fallback.
    pub fn drain(&mut self, released: &mut Vec<T>) {
        for (_, d) in self.table.drain() {
            self.stats.fallback_timeout += d.held.len() as u64;
            released.extend(d.held.into_iter().map(|(_, t)| t));
        }
        self.order.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn id(n: u32) -> DatagramId {
        DatagramId {
            addrs: Tuple::v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), None),
            proto: 17,
            id: n,
        }
    }

    #[test]
    fn later_fragments_follow_and_early_ones_wait() {
        let mut t: FragTracker<char, (u16, u16)> = FragTracker::new(FragConfig::default());
        // In order: first, then a later one.
        assert!(matches!(
            t.fragment(id(1), true, Some((5, 6)), 0, 'a'),
            Outcome::Steer('a', Some((5, 6)))
        ));
        assert!(matches!(
            t.fragment(id(1), false, None, 1, 'b'),
            Outcome::Steer('b', Some((5, 6)))
        ));
        // Reversed (Linux sends the last fragment first): wait, then release.
        assert!(matches!(
            t.fragment(id(2), false, None, 2, 'c'),
            Outcome::Held
        ));
        assert!(matches!(
            t.fragment(id(2), false, None, 3, 'd'),
            Outcome::Held
        ));
        match t.fragment(id(2), true, Some((7, 8)), 4, 'e') {
            Outcome::Release('e', held, Some((7, 8))) => assert_eq!(held, vec!['c', 'd']),
            other => panic!("{other:?}"),
        }
        // Orphan: expires to the address hash.
        assert!(matches!(
            t.fragment(id(3), false, None, 5, 'f'),
            Outcome::Held
        ));
        let mut out = Vec::new();
        t.expire(5 + 1_000_000_000, &mut out);
        assert!(out.is_empty());
        t.expire(5 + 3_000_000_000, &mut out);
        assert_eq!(out, vec!['f']);
        let s = t.stats();
        assert_eq!(
            (s.first, s.followed, s.released, s.fallback_timeout),
            (2, 1, 2, 1)
        );
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn bounds_are_kept_and_counted() {
        let cfg = FragConfig {
            max_datagrams: 2,
            max_held: 1,
            hold_ns: 10,
            max_delayed: 16,
        };
        let mut t: FragTracker<i32, (u16, u16)> = FragTracker::new(cfg);
        assert!(matches!(
            t.fragment(id(1), false, None, 0, 1),
            Outcome::Held
        ));
        assert!(matches!(
            t.fragment(id(2), false, None, 0, 2),
            Outcome::Steer(2, None)
        ));
        assert!(matches!(
            t.fragment(id(3), true, Some((1, 2)), 0, 3),
            Outcome::Steer(3, Some((1, 2)))
        ));
        assert!(matches!(
            t.fragment(id(4), true, Some((1, 2)), 0, 4),
            Outcome::Steer(4, Some((1, 2)))
        ));
        assert!(t.datagrams() <= 2 && t.held() <= 1);
        let mut out = Vec::new();
        t.drain(&mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(t.stats().fallback_full, 1);
    }
}
