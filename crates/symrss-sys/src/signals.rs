//! Stop and rotate requests from signals: SIGINT/SIGTERM ask a capture to
//! stop (drain, flush, close), SIGHUP to rotate its files; SIGPIPE is
//! ignored so a FIFO whose reader left fails the write (EPIPE) instead of
//! killing the process.
//!
//! The handlers only store to atomics (async-signal-safe) and are
//! installed without `SA_RESTART`, so a blocking `poll` returns `EINTR`
//! at once and the capture loop sees the request.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static HANGUPS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_stop(_: libc::c_int) {
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

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks for a stop as a signal would (for `--count`/`--duration`).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
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
        // SIGPIPE is ignored: the process is still here.
        // SAFETY: as above; SIGPIPE's disposition is SIG_IGN.
        unsafe {
            libc::raise(libc::SIGPIPE);
        }
    }
}
