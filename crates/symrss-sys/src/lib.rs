//! The operating-system layer of symrss: the only crate allowed `unsafe`
//! FFI (DESIGN.md). Today it holds process setup; AF_PACKET TPACKET_V3
//! rings, cBPF attach, TAP devices and the ethtool RSS ioctls will live
//! here too.
#![allow(unsafe_code)]

/// Restores the default action for SIGPIPE, so `symrss ... | head` ends
/// quietly when the reader goes away, as C command-line tools do. (Rust
/// programs start with SIGPIPE ignored, which turns every write to a
/// closed pipe into an error — and `println!` into a panic.)
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` is called with a valid signal number and the
    // `SIG_DFL` disposition; no pointers, no handler code of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
