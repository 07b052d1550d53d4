//! The operating-system layer of symrss: the only crate allowed `unsafe`
//! FFI (DESIGN.md): process setup (signals, thread pinning, dropping
//! privileges), the ethtool RSS ioctls ([`ethtool`]), AF_PACKET TPACKET_V3
//! capture rings ([`packet`]) and, over them, the live capture source of
//! the engine's driver loop ([`rings`]), capture filters ([`bpf`]) and the
//! outputs that need the kernel: veth pairs fed through AF_PACKET TX
//! rings ([`veth`], [`packet_tx`]), TAP interfaces ([`tap`]) and FIFOs
//! ([`fifo`]). Every `unsafe` block says why it is sound; every kernel
//! struct has a size assertion.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod bpf;
#[cfg(target_os = "linux")]
pub mod ethtool;
#[cfg(target_os = "linux")]
pub mod fifo;
pub mod memory;
#[cfg(target_os = "linux")]
pub mod netif;
#[cfg(target_os = "linux")]
pub mod notify;
#[cfg(target_os = "linux")]
pub mod packet;
#[cfg(target_os = "linux")]
pub mod packet_tx;
#[cfg(target_os = "linux")]
pub mod privileges;
#[cfg(target_os = "linux")]
pub mod rings;
#[cfg(target_os = "linux")]
pub mod signals;
#[cfg(target_os = "linux")]
pub mod tap;
#[cfg(target_os = "linux")]
pub mod veth;
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

/// The receive queues of `interface` (`/sys/class/net/IF/queues/rx-*`), at
/// least 1 (also when the interface has no such directory).
pub fn rx_queue_count(interface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{interface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// The CPU that serves `interface`'s receive queue `queue`'s interrupt,
/// when the driver names its IRQs by interface and queue (`eth0-TxRx-3`,
/// `i40e-eth0-TxRx-3`, `eth0-rx-3` in `/proc/interrupts`): the first CPU
/// of `/proc/irq/N/smp_affinity_list`. `None` when no IRQ matches (veth,
/// virtio, drivers naming IRQs by PCI address).
pub fn queue_irq_cpu(interface: &str, queue: u32) -> Option<usize> {
    let interrupts = std::fs::read_to_string("/proc/interrupts").ok()?;
    let irq = irq_for_queue(&interrupts, interface, queue)?;
    let list = std::fs::read_to_string(format!("/proc/irq/{irq}/smp_affinity_list")).ok()?;
    first_cpu(&list)
}

/// The IRQ of `interface`'s queue `queue` in a `/proc/interrupts` text:
/// a line whose name (last field) has `interface` as one of its
/// `-`-separated parts and ends in `-<queue>`.
fn irq_for_queue(interrupts: &str, interface: &str, queue: u32) -> Option<u32> {
    let tail = format!("-{queue}");
    interrupts.lines().find_map(|line| {
        let (irq, rest) = line.trim_start().split_once(':')?;
        let irq: u32 = irq.parse().ok()?;
        let name = rest.split_whitespace().last()?;
        (name.ends_with(&tail) && name.split('-').any(|part| part == interface)).then_some(irq)
    })
}

/// The first CPU of an affinity list (`0-3,8` → 0).
fn first_cpu(list: &str) -> Option<usize> {
    list.trim().split([',', '-']).next()?.trim().parse().ok()
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

/// The process's peak resident memory so far, bytes (`VmHWM` of
/// `/proc/self/status`); `None` where it is missing.
pub fn resident_peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

/// A `NAME:   N kB` field of a `/proc/PID/status` text, in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_resident_memory_is_read_and_grows() {
        let before = resident_peak_bytes().expect("VmHWM on Linux");
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let after = resident_peak_bytes().unwrap();
        assert!(after >= before + (60 << 20), "{before} -> {after}");
        assert_eq!(status_kib("VmHWM:\t  1234 kB\n", "VmHWM:"), Some(1234));
        assert_eq!(status_kib("VmRSS: 5 kB\n", "VmHWM:"), None);
    }

    #[test]
    fn queue_irqs_are_found_by_interface_and_queue() {
        let text = "           CPU0       CPU1
  24:          0          0  PCI-MSI 524288-edge      eth0
  25:        100          0  PCI-MSI 524289-edge      i40e-eth0-TxRx-0
  26:          0        200  PCI-MSI 524290-edge      i40e-eth0-TxRx-1
  27:          0        300  PCI-MSI 524291-edge      i40e-eth10-TxRx-2
  28:          0          0  PCI-MSI 524292-edge      eth0-rx-2
 NMI:          0          0   Non-maskable interrupts
";
        assert_eq!(irq_for_queue(text, "eth0", 0), Some(25));
        assert_eq!(irq_for_queue(text, "eth0", 1), Some(26));
        // eth10 is not eth0; eth0-rx-2 is.
        assert_eq!(irq_for_queue(text, "eth0", 2), Some(28));
        assert_eq!(irq_for_queue(text, "eth0", 7), None);
        assert_eq!(irq_for_queue(text, "veth0", 0), None);
        assert_eq!(first_cpu("0-3,8\n"), Some(0));
        assert_eq!(first_cpu("5\n"), Some(5));
        assert_eq!(first_cpu(""), None);
    }

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
