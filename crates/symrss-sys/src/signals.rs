//! Stop and rotate requests from signals.
//!
//! * [`install`] (a capture): SIGINT/SIGTERM ask it to stop (drain, flush,
//!   close), SIGHUP to rotate its files; SIGPIPE is ignored so a FIFO
//!   whose reader left fails the write (EPIPE) instead of killing the
//!   process.
//! * [`install_for_batch`] (`split`, which has nothing to rotate):
//!   SIGINT, SIGTERM, SIGHUP and SIGPIPE all ask it to stop reading and
//!   finish what was read.
//!
//! A second stop signal while the first is being handled ends the process
//! at once (`_exit(128 + signal)`), as a second Ctrl-C does in other
//! tools. The handlers only touch atomics and call `_exit`
//! (async-signal-safe) and are installed without `SA_RESTART`, so a
//! blocking `poll` returns `EINTR` at once and the loop sees the request.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that asked for the stop (0: none, or `request_stop`).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
static HANGUPS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_stop(signal: libc::c_int) {
    if STOP_SIGNAL.swap(signal, Ordering::SeqCst) != 0 {
        // SAFETY: `_exit` is async-signal-safe; it ends the process
        // without running anything of ours.
        unsafe { libc::_exit(128 + signal) }
    }
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hangup(_: libc::c_int) {
    HANGUPS.fetch_add(1, Ordering::SeqCst);
}

fn handle(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: `sigaction` is plain data for which all-zero is valid (empty
    // mask, no flags); the handler is either SIG_IGN or an `extern "C"`
    // function that only touches atomics, which is async-signal-safe.
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(signal, &act, std::ptr::null_mut())
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs the handlers (idempotent).
pub fn install() -> io::Result<()> {
    handle(libc::SIGINT, on_stop as *const () as libc::sighandler_t)?;
    handle(libc::SIGTERM, on_stop as *const () as libc::sighandler_t)?;
    handle(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t)?;
    handle(libc::SIGPIPE, libc::SIG_IGN)
}

/// Installs the handlers of a batch job (see the module docs).
pub fn install_for_batch() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        handle(signal, on_stop as *const () as libc::sighandler_t)?;
    }
    Ok(())
}

/// The signal that asked for the stop, if a signal did.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks for a stop as a signal would (for `--count`/`--duration`).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Asks for a rotation as SIGHUP would (the control socket's `rotate`).
pub fn request_rotate() {
    HANGUPS.fetch_add(1, Ordering::SeqCst);
}

/// How many SIGHUPs arrived so far (a sink rotates when this grows).
pub fn hangups() -> u64 {
    HANGUPS.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangup_and_terminate_set_the_flags() {
        install().unwrap();
        let before = hangups();
        // SAFETY: raise(2) delivers the signal to this thread; the handlers
        // installed above only touch atomics.
        unsafe {
            libc::raise(libc::SIGHUP);
        }
        assert_eq!(hangups(), before + 1);
        assert!(!stop_requested());
        // SAFETY: as above.
        unsafe {
            libc::raise(libc::SIGTERM);
        }
        assert!(stop_requested());
        assert_eq!(stop_signal(), Some(libc::SIGTERM));
        // (A second SIGTERM would end the test process: not raised.)
        // SIGPIPE is ignored: the process is still here.
        // SAFETY: as above; SIGPIPE's disposition is SIG_IGN.
        unsafe {
            libc::raise(libc::SIGPIPE);
        }
    }
}
