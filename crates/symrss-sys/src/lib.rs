//! The operating-system layer of symrss: the only crate allowed `unsafe`
//! FFI (DESIGN.md): process setup (signals, thread pinning, dropping
//! privileges), the ethtool RSS ioctls ([`ethtool`]), AF_PACKET TPACKET_V3
//! capture rings ([`packet`]) and, over them, the live capture source of
//! the engine's driver loop ([`rings`]), capture filters ([`bpf`]) and the
//! outputs that need the kernel: TAP interfaces ([`tap`]) and FIFOs
//! ([`fifo`]). Every `unsafe` block says why it is sound; every kernel
//! struct has a size assertion.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod bpf;
#[cfg(target_os = "linux")]
pub mod ethtool;
#[cfg(target_os = "linux")]
pub mod fifo;
#[cfg(target_os = "linux")]
pub mod packet;
#[cfg(target_os = "linux")]
pub mod privileges;
#[cfg(target_os = "linux")]
pub mod rings;
#[cfg(target_os = "linux")]
pub mod signals;
#[cfg(target_os = "linux")]
pub mod tap;
#[cfg(target_os = "linux")]
pub mod xdp;

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

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity(2)`).
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("CPU {cpu} out of range"),
            ));
        }
        // SAFETY: `cpu_set_t` is plain data for which all-zero is the empty
        // set; CPU_SET writes inside it (the index was checked against
        // CPU_SETSIZE); sched_setaffinity reads `size_of::<cpu_set_t>()`
        // bytes from a valid, initialised set; pid 0 is the calling thread.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "thread pinning needs Linux",
        ))
    }
}

/// CPUs online (at least 1).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time of the calling thread so far, ns: the scheduler's own account
/// (`/proc/thread-self/schedstat`, first field), to the nanosecond; 0
/// where it is missing.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_accrues_cpu_time() {
        let before = thread_cpu_ns();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_ns() > before, "{x}");
    }

    #[test]
    fn pins_to_an_existing_cpu_and_rejects_a_missing_one() {
        let cpu = cpu_count() - 1;
        std::thread::spawn(move || pin_current_thread(cpu).unwrap())
            .join()
            .unwrap();
        assert!(pin_current_thread(100_000).is_err());
    }
}
