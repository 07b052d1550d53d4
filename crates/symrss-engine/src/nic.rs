//! NIC RSS knowledge: driver profiles, a verdict on a device's RSS state
//! (is it symmetric, and why not), and plans that make it symmetric.
//!
//! Pure logic: the ethtool requests themselves are in `symrss-sys`; the
//! command line in `symrss nic`. Hash fields use the kernel's `RXH_*` bits
//! and flow types its `*_FLOW` numbers (`include/uapi/linux/ethtool.h`).
//!
//! Facts per driver come from `notes/theory.md` §5.5–5.7 and the sources
//! named in [`DRIVER_PROFILES`]; where a capability depends on firmware,
//! instance type or kernel version the profile says so, and `nic show` /
//! `nic verify` check the real device.
//!
//! Modules: `fields` (the ethtool vocabulary: hash-field bits, flow types,
//! transforms), `profile` (the driver profiles), `verdict` (judging a
//! device's state), `plan` (making it symmetric); their items are
//! re-exported here.

mod fields;
mod plan;
mod profile;
mod verdict;

pub use fields::{
    FlowType, HFUNC_TOEPLITZ, XFRM_SYM_OR_XOR, XFRM_SYM_XOR, colon_hex, fields_letters,
    parse_fields_letters, rxh, xfrm_name,
};
pub use plan::{Mode, Plan, PlanError, PlanRequest, Step, plan};
pub use profile::{DRIVER_PROFILES, DriverProfile, KeyControl, profile};
pub use verdict::{FlowVerdict, RssState, RssTable, Verdict, verdict};
