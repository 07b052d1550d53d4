//! The steering engine of symrss.
//!
//! * [`policy`]: what a scheme hashes for a dissected frame: the layer
//!   (outer, inner, innermost), which protocols get ports, how fragments
//!   and ICMP errors are treated (software: follow the flow; NIC profiles:
//!   the hardware's rules);
//! * [`frag`]: the fragment tracker that lets non-first fragments follow
//!   their first fragment's ports, with a bounded, timed hold;
//! * [`balancer`]: the software balancer: batches copied once, steered per
//!   application, handed to per-queue consumer threads over bounded
//!   channels, with loss policy and accounting;
//! * [`traffic`]: a seeded traffic mix with ground-truth flow ids;
//! * [`nic`]: NIC driver profiles, a verdict on a device's RSS state and
//!   plans that make it symmetric (what `symrss nic` prints and applies);
//! * [`analyze`]: per scheme, per queue load and split flows on a stream
//!   of packets (what `symrss analyze` reports);
//! * [`source`]: where frames come from (capture files one after another
//!   or merged by time; live rings in `symrss-sys`) and the driver loop
//!   that runs a source.
//!
//! Time comes from packet timestamps, never from the wall clock, so a
//! replayed capture runs exactly the code a live capture runs.

pub mod analyze;
pub mod balancer;
pub mod frag;
pub mod nic;
pub mod policy;
pub mod source;
pub mod traffic;

pub use policy::{HashLayer, Policy, PolicyError, Resolved, Subject, software_reta_size};
