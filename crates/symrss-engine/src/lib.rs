//! The steering engine of symrss.
//!
//! * [`policy`]: what a scheme hashes for a dissected frame: the layer
//!   (outer, inner, innermost), which protocols get ports, how fragments
//!   and ICMP errors are treated (software: follow the flow; NIC profiles:
//!   the hardware's rules);
//! * [`frag`]: the fragment tracker that lets non-first fragments follow
//!   their first fragment's ports, with a bounded, timed hold;
//! * [`analyze`]: per scheme, per queue load and split flows on a stream
//!   of packets (what `symrss analyze` reports).
//!
//! Time comes from packet timestamps, never from the wall clock, so a
//! replayed capture runs exactly the code a live capture runs.

pub mod analyze;
pub mod frag;
pub mod policy;

pub use policy::{HashLayer, Policy, PolicyError, Resolved, Subject};
