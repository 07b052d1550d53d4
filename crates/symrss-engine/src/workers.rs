//! What several steering workers share: how far each has got in packet
//! time, and the first fragments each has seen.
//!
//! Affinity must not depend on which worker a packet reached: the hash is
//! the same on every worker, so every packet but a later fragment is
//! steered the same wherever it lands. A later fragment needs its first
//! fragment's ports, and the first fragment may have reached another
//! worker. So every worker publishes each first fragment's resolution in
//! a [`Shared`] directory (sharded, locked only for fragments), and a
//! worker holding a later fragment looks it up there; it waits (in its
//! delay line, as a single worker does) until the resolution appears or
//! until *every* worker has passed the hold time in packet time — only
//! then is it certain the first fragment never came — and falls back to
//! the address hash, counted.
//!
//! The hold means what it means for one worker: a first fragment that
//! came more than the hold after the first later fragment waiting for it
//! is not followed (one worker would have given up by then); a later
//! fragment follows a first fragment seen up to the hold before it (one
//! worker remembers a datagram for the hold after its last fragment, so
//! only datagrams whose fragments span more than the hold can differ).
//!
//! Progress: each worker publishes the timestamp up to which it has
//! steered its input (its inputs are in time order), after publishing the
//! first fragments seen so far (release/acquire order makes "progress ≥ t"
//! imply "every first fragment up to t is visible").

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::frag::DatagramId;
use crate::policy::Resolved;

/// Directory shards (a power of two).
const SHARDS: usize = 64;
/// Resolutions kept per shard before old ones are pruned.
const SHARD_CAP: usize = 4096;

/// One shard: (app, datagram) → (resolution, first fragment's time).
type Shard = HashMap<(u16, DatagramId), (Resolved, i128)>;

/// The state the workers of one balancer share.
#[derive(Debug)]
pub(crate) struct Shared {
    progress: Box<[AtomicI64]>,
    shards: Box<[Mutex<Shard>]>,
    hold_ns: i128,
}

impl Shared {
    /// State for `workers` workers; resolutions are kept at least
    /// `hold_ns` of packet time.
    pub(crate) fn new(workers: usize, hold_ns: i128) -> Self {
        Self {
            progress: (0..workers).map(|_| AtomicI64::new(i64::MIN)).collect(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hold_ns,
        }
    }

    fn shard(&self, id: &DatagramId) -> &Mutex<Shard> {
        // The identification and the low address bytes spread datagrams.
        let h = id.id ^ u32::from(id.proto) ^ (id.addrs.flow_digest() as u32);
        &self.shards[h as usize & (SHARDS - 1)]
    }

    /// Worker-visible: app `app`'s datagram `id` has its first fragment
    /// (at `ts_ns`), resolved to `flow`. Bounded: a full shard drops
    /// resolutions older than twice the hold first; still full, the new one
    /// is not kept (later fragments elsewhere then fall back, counted).
    pub(crate) fn publish(&self, app: u16, id: DatagramId, flow: Resolved, ts_ns: i128) {
        let mut shard = self.shard(&id).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= SHARD_CAP {
            let horizon = ts_ns - 2 * self.hold_ns;
            shard.retain(|_, (_, t)| *t >= horizon);
            if shard.len() >= SHARD_CAP {
                return;
            }
        }
        shard.insert((app, id), (flow, ts_ns));
    }

    /// What app `app`'s datagram `id` resolved to and when its first
    /// fragment came, if a worker saw it.
    pub(crate) fn lookup(&self, app: u16, id: &DatagramId) -> Option<(Resolved, i128)> {
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&(app, *id)).copied()
    }

    /// Worker `me` has steered everything up to `ts_ns` (and published
    /// its first fragments up to there).
    pub(crate) fn advance(&self, me: usize, ts_ns: i64) {
        self.progress[me].fetch_max(ts_ns, Ordering::Release);
    }

    /// The least progress of the other workers (`i64::MAX` when alone).
    pub(crate) fn others(&self, me: usize) -> i64 {
        self.progress
            .iter()
            .enumerate()
            .filter(|(w, _)| *w != me)
            .map(|(_, p)| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(i64::MAX)
    }
}
