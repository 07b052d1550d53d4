//! CPU placement for the balancer: the steering thread on the first CPU,
//! consumer threads spread over the others (all on CPU 0 on a 1-CPU box).

use std::sync::Arc;

use symrss_engine::balancer::ThreadHook;

/// Pins the calling (steering) thread to CPU 0, warning on failure.
pub fn pin_steering() {
    if let Err(e) = symrss_sys::pin_current_thread(0) {
        eprintln!("symrss: warning: cannot pin the steering thread to CPU 0: {e}");
    }
}

/// A hook pinning consumer thread number `k` (counted over all apps'
/// queues as they start) to CPU `1 + k % (cpus - 1)`: the CPUs after the
/// steering thread's.
pub fn consumer_hook() -> ThreadHook {
    consumers_after(1)
}

/// A hook pinning consumer thread number `k` to the `k mod n`-th CPU of
/// the `n` after the first `steering` ones (the capture workers'), or,
/// when the workers take every CPU, to CPU `k mod cpus`.
pub fn consumers_after(steering: usize) -> ThreadHook {
    let cpus = symrss_sys::cpu_count();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    ThreadHook(Arc::new(move |app: &str, q: usize| {
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cpu = if cpus > steering {
            steering + k % (cpus - steering)
        } else {
            k % cpus.max(1)
        };
        if let Err(e) = symrss_sys::pin_current_thread(cpu) {
            eprintln!("symrss: warning: cannot pin {app} queue {q} to CPU {cpu}: {e}");
        }
    }))
}
