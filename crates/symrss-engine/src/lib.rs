//! The pipeline of symrss, without I/O of its own:
//!
//! ```text
//!  Source ──▶ arena ──▶ steering ──▶ delivery ──▶ Sink
//! ```
//!
//! * [`source`]: where frames come from (capture files one after another
//!   or merged by time; live rings in `symrss-sys`) and the one driver
//!   loop that `split`, `analyze` and `capture` run;
//! * `arena` (internal): each packet copied once into a batch shared by
//!   every queue that receives it;
//! * `steering` (internal): the one place a packet's queue is chosen, for
//!   the balancer and the analyzer alike — one dissection per packet, then
//!   per application its [`policy`], the [`frag`] tracker, ICMP-error
//!   following, hash and RETA, in input order per queue; `affinity`
//!   (internal) counts flows per queue and affinity violations;
//! * [`balancer`]: steering plus delivery — chunks handed to consumer
//!   threads over bounded channels (or run inline), loss policy, the
//!   [`balancer::Sink`] trait and the counters (sinks themselves are in
//!   `symrss-sinks`);
//! * [`analyze`]: per scheme, per queue load and split flows (what
//!   `symrss analyze` reports), from the same steering;
//! * [`policy`]: what a scheme hashes for a dissected frame: the layer
//!   (outer, inner, innermost), which protocols get ports, how fragments
//!   and ICMP errors are treated (software: follow the flow; NIC profiles:
//!   the hardware's rules);
//! * [`rebalance`]: affinity-preserving rebalancing of a policy's RETA
//!   buckets by measured load, without moving a live flow;
//! * [`frag`]: the fragment tracker that lets later fragments follow
//!   their first fragment's ports, with a bounded, timed hold;
//! * [`nic`]: NIC driver profiles, a verdict on a device's RSS state and
//!   plans that make it symmetric (what `symrss nic` prints and applies);
//! * [`traffic`]: a seeded traffic mix with ground-truth flow ids.
//!
//! Time comes from packet timestamps, never from the wall clock, so a
//! replayed capture runs exactly the code a live capture runs.

mod affinity;
pub mod analyze;
mod arena;
pub mod balancer;
mod flowtable;
pub mod frag;
pub mod nic;
pub mod policy;
pub mod rebalance;
pub mod source;
mod steering;
pub mod traffic;
mod workers;

pub use policy::{HashLayer, Policy, PolicyError, Resolved, Subject, software_reta_size};
