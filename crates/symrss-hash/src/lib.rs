//! Exact Microsoft Toeplitz RSS hashing and key science for symrss.
//!
//! * [`mod@reference`]: the bit-serial definition (the oracle);
//! * [`Toeplitz`]: the fast exact hasher (fold / GFNI / table paths);
//! * [`kernel`]: one path as a concrete type for hot loops;
//! * [`input`]: tuples, the Microsoft layouts and symmetric transforms;
//! * [`keyed`]: a keyed symmetric hash (SipHash) for flood resistance;
//! * [`scheme`]: the named schemes of the command line;
//! * [`reta`]: indirection tables filled like `ethtool -X`;
//! * [`analysis`], [`keygen`]: symmetry proofs, counterexamples, GF(2) ranks,
//!   warnings, symmetric key generation, two-level planning.
//!
//! The crate does no I/O and reads no clock; it is `no_std` + `alloc`
//! (the default `std` feature only adds run-time CPU feature detection).
//! Hash definition: Microsoft "RSS Hashing Functions"; theory and the facts
//! used here: `shared/notes/theory.md`.
//!
//! ```
//! use symrss_hash::{Fields, RssKey, Toeplitz, Transform, Tuple};
//!
//! let flow = Tuple::v4([66, 9, 149, 187].into(), [161, 142, 100, 80].into(), Some((2794, 1766)));
//! let ms = Toeplitz::new(RssKey::microsoft(40));
//! assert_eq!(ms.hash_tuple(&flow, Fields::L4, Transform::None), 0x51cc_c178);
//! let sym = Toeplitz::new(RssKey::parse("sym", None).unwrap());
//! assert_eq!(
//!     sym.hash_tuple(&flow, Fields::L4, Transform::None),
//!     sym.hash_tuple(&flow.reversed(), Fields::L4, Transform::None)
//! );
//! ```
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod analysis;
pub mod fold;
pub mod gf2;
#[cfg(target_arch = "x86_64")]
pub mod gfni;
pub mod input;
pub mod kernel;
pub mod key;
pub mod keyed;
pub mod keygen;
pub mod reference;
pub mod reta;
pub mod scheme;
pub mod table;
pub mod toeplitz;

pub use input::{Addrs, Fields, FlowId, HashInput, Layout, Transform, Tuple};
pub use key::{KeyParseError, MS_KEY, RssKey, SYM_PATTERN};
pub use reta::Reta;
pub use scheme::Scheme;
pub use toeplitz::{Path, Toeplitz};
