//! Capture filters in tcpdump syntax, compiled to classic BPF by libpcap
//! and attached to the capture sockets (`SO_ATTACH_FILTER`).
//!
//! libpcap is loaded at run time (`dlopen` of `libpcap.so.0.8`, the
//! library every tcpdump install has) instead of linked: symrss builds
//! and runs without libpcap's headers or library, and only a capture that
//! asks for a filter needs it — with a clear error naming the library
//! when it is missing. The compiler is libpcap's own, so a filter means
//! exactly what it means to `tcpdump -r FILE FILTER`.
//!
//! The program is compiled for the link type as a capture file stores
//! it; a kernel that strips VLAN tags before the socket filter sees the
//! frame makes `vlan` primitives behave differently than on a file (as
//! for libpcap's own "dead" handles).

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io;

/// One classic BPF instruction: `(code, jt, jf, k)`.
pub type Insn = (u16, u8, u8, u32);

#[repr(C)]
struct BpfProgram {
    len: c_uint,
    insns: *const BpfInsn,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}
const _: () = assert!(size_of::<BpfInsn>() == 8);

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type FreeCode = unsafe extern "C" fn(*mut BpfProgram);
type GetErr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type Close = unsafe extern "C" fn(*mut c_void);

const LIBRARIES: [&CStr; 3] = [c"libpcap.so.0.8", c"libpcap.so.1", c"libpcap.so"];
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

fn symbol(lib: *mut c_void, name: &CStr) -> io::Result<*mut c_void> {
    // SAFETY: `lib` is a handle returned by dlopen and `name` a valid C string.
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if p.is_null() {
        return Err(io::Error::other(format!(
            "libpcap has no symbol {}",
            name.to_string_lossy()
        )));
    }
    Ok(p)
}

/// Compiles `filter` for frames of `linktype` (optimised, as tcpdump does).
pub fn compile(filter: &str, linktype: u32, snaplen: u32) -> io::Result<Vec<Insn>> {
    let expr = CString::new(filter)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter contains NUL"))?;
    let lib = LIBRARIES
        .iter()
        // SAFETY: dlopen with a valid C string; a null result is handled.
        .map(|name| unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) })
        .find(|h| !h.is_null())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "capture filters need libpcap (libpcap.so.0.8 or libpcap.so.1, Debian package libpcap0.8), which is not installed",
            )
        })?;
    // SAFETY: the symbols are libpcap's documented functions with the
    // signatures declared above (pcap(3PCAP)); transmuting the data
    // pointers dlsym returns to those function pointer types is how
    // dlsym is used.
    let (open_dead, compile, free_code, get_err, close) = unsafe {
        (
            std::mem::transmute::<*mut c_void, OpenDead>(symbol(lib, c"pcap_open_dead")?),
            std::mem::transmute::<*mut c_void, Compile>(symbol(lib, c"pcap_compile")?),
            std::mem::transmute::<*mut c_void, FreeCode>(symbol(lib, c"pcap_freecode")?),
            std::mem::transmute::<*mut c_void, GetErr>(symbol(lib, c"pcap_geterr")?),
            std::mem::transmute::<*mut c_void, Close>(symbol(lib, c"pcap_close")?),
        )
    };
    // SAFETY: pcap_open_dead takes plain integers; a null result is handled.
    let pcap = unsafe { open_dead(linktype as c_int, snaplen as c_int) };
    if pcap.is_null() {
        return Err(io::Error::other("pcap_open_dead failed"));
    }
    let mut prog = BpfProgram {
        len: 0,
        insns: std::ptr::null(),
    };
    // SAFETY: `pcap` is a live handle, `prog` a writable bpf_program and
    // `expr` a valid C string; on success libpcap fills `prog`, which is
    // read within its length and then freed with pcap_freecode; the error
    // string is copied before pcap_close frees it.
    let result = unsafe {
        if compile(pcap, &mut prog, expr.as_ptr(), 1, NETMASK_UNKNOWN) < 0 {
            let msg = CStr::from_ptr(get_err(pcap)).to_string_lossy().into_owned();
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("filter `{filter}`: {msg}"),
            ))
        } else {
            let insns = std::slice::from_raw_parts(prog.insns, prog.len as usize)
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect();
            free_code(&mut prog);
            Ok(insns)
        }
    };
    // SAFETY: closes the handle opened above, once.
    unsafe { close(pcap) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_like_tcpdump_or_says_why_not() {
        match compile("tcp port 80", 1, 262_144) {
            Ok(p) => {
                // `tcpdump -d 'tcp port 80'` on Ethernet: starts by loading
                // the EtherType (ldh [12]) and ends with two returns.
                assert_eq!(p[0], (0x28, 0, 0, 12));
                assert!(p.iter().filter(|i| i.0 == 0x06).count() >= 2, "{p:?}");
                let err = compile("tcp port", 1, 262_144).unwrap_err();
                assert!(err.to_string().contains("filter `tcp port`"), "{err}");
            }
            Err(e) => {
                assert!(e.to_string().contains("libpcap"), "{e}");
                symrss_skip(&e);
            }
        }
    }

    fn symrss_skip(e: &io::Error) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libpcap missing under CI: {e}"
        );
        eprintln!("skipped: {e}");
    }
}

/// Runs a classic BPF program on `packet` in user space (what the kernel
/// does for a socket filter; AF_XDP sockets have none): returns the
/// accepted length, 0 to drop. Loads outside the packet drop it, as in
/// the kernel; a program that runs off its end or divides by zero drops.
/// Opcodes: `linux/filter.h` (`BPF_LD`, `BPF_LDX`, `BPF_ST`, `BPF_STX`,
/// `BPF_ALU`, `BPF_JMP`, `BPF_RET`, `BPF_MISC`).
pub fn run(program: &[Insn], packet: &[u8]) -> u32 {
    let load = |at: u32, size: u32| -> Option<u32> {
        let at = at as usize;
        let bytes = packet.get(at..at.checked_add(size as usize)?)?;
        Some(bytes.iter().fold(0u32, |v, &b| v << 8 | u32::from(b)))
    };
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let len = packet.len() as u32;
    while let Some(&(code, jt, jf, k)) = program.get(pc) {
        pc += 1;
        let size = match code & 0x18 {
            0x00 => 4,
            0x08 => 2,
            _ => 1,
        };
        match code & 0x07 {
            // BPF_LD
            0x00 => {
                a = match code & 0xe0 {
                    0x00 => k,
                    0x20 => match load(k, size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    0x40 => match load(x.wrapping_add(k), size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    0x60 => mem[(k & 15) as usize],
                    0x80 => len,
                    _ => return 0,
                }
            }
            // BPF_LDX
            0x01 => {
                x = match code & 0xe0 {
                    0x00 => k,
                    0x60 => mem[(k & 15) as usize],
                    0x80 => len,
                    // BPF_MSH: 4 * (packet[k] & 0xf), the IPv4 header length.
                    0xa0 => match load(k, 1) {
                        Some(v) => (v & 0xf) << 2,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            0x02 => mem[(k & 15) as usize] = a,
            0x03 => mem[(k & 15) as usize] = x,
            // BPF_ALU
            0x04 => {
                let v = if code & 0x08 != 0 { x } else { k };
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 if v == 0 => return 0,
                    0x30 => a / v,
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 if v == 0 => return 0,
                    0x90 => a % v,
                    0xa0 => a ^ v,
                    _ => return 0,
                }
            }
            // BPF_JMP
            0x05 => {
                let v = if code & 0x08 != 0 { x } else { k };
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc = pc.saturating_add(k as usize);
                        continue;
                    }
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            // BPF_RET
            0x06 => {
                return match code & 0x18 {
                    0x10 => a,
                    _ => k,
                };
            }
            // BPF_MISC: TAX / TXA
            _ => {
                if code & 0xf8 == 0 {
                    x = a;
                } else {
                    a = x;
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod interpreter_tests {
    use super::*;

    /// `ether type 0x0800 and ip proto 17` by hand: ldh [12]; jeq 0x800;
    /// ldb [23]; jeq 17; ret 262144; ret 0.
    const UDP4: [Insn; 6] = [
        (0x28, 0, 0, 12),
        (0x15, 0, 3, 0x0800),
        (0x30, 0, 0, 23),
        (0x15, 0, 1, 17),
        (0x06, 0, 0, 262_144),
        (0x06, 0, 0, 0),
    ];

    fn frame(ethertype: u16, proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = 0x45;
        f[23] = proto;
        f
    }

    #[test]
    fn accepts_what_the_program_accepts() {
        assert_eq!(run(&UDP4, &frame(0x0800, 17)), 262_144);
        assert_eq!(run(&UDP4, &frame(0x0800, 6)), 0);
        assert_eq!(run(&UDP4, &frame(0x86dd, 17)), 0);
        // Out of the packet: dropped, as the kernel does.
        assert_eq!(run(&UDP4, &[0u8; 20]), 0);
        assert_eq!(run(&DROP_ALL_PROGRAM, &frame(0x0800, 17)), 0);
        // Off the end of the program: dropped.
        assert_eq!(run(&UDP4[..2], &frame(0x0800, 17)), 0);
    }

    const DROP_ALL_PROGRAM: [Insn; 1] = [(0x06, 0, 0, 0)];

    #[test]
    fn msh_loads_the_ipv4_header_length_and_ind_loads_through_it() {
        // ldxb 4*([14]&0xf); ldh [x + 16] (the UDP destination port at
        // 14 + ihl + 2); ret a.
        let prog: [Insn; 3] = [(0xb1, 0, 0, 14), (0x48, 0, 0, 16), (0x16, 0, 0, 0)];
        let mut f = frame(0x0800, 17);
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(run(&prog, &f), 53);
    }
}
