//! `symrss demo`: the main job on a built-in traffic mix.
//!
//! For now (until the balancer engine lands) the demo shows what the hash
//! work establishes: a few flows of a typical sensor's traffic, both
//! directions, hashed with the Microsoft default key (`ms`) and with the
//! symmetric `0x6d5a` key (`sym`), and the queue of a 4-queue RETA each
//! direction lands on; then the key check verdict for both keys. Every
//! number printed is computed, nothing is canned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

use clap::Args;
use symrss_hash::analysis::check_key;
use symrss_hash::{Layout, Reta, RssKey, Scheme, Tuple};

use crate::Failure;
use crate::output::{Table, hex32};

/// Arguments of `symrss demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Queues per application.
    #[arg(long, default_value_t = 4)]
    queues: u32,
}

fn flows() -> Vec<(&'static str, Tuple)> {
    let v4 = |a: [u8; 4], b: [u8; 4], sp, dp| {
        Tuple::v4(Ipv4Addr::from(a), Ipv4Addr::from(b), Some((sp, dp)))
    };
    let v6 = |a: &str, b: &str, sp, dp| {
        let a: Ipv6Addr = a.parse().expect("literal");
        let b: Ipv6Addr = b.parse().expect("literal");
        Tuple::v6(a, b, Some((sp, dp)))
    };
    vec![
        (
            "HTTPS client",
            v4([10, 1, 0, 23], [93, 184, 216, 34], 51544, 443),
        ),
        ("DNS query", v4([10, 1, 0, 23], [9, 9, 9, 9], 40112, 53)),
        (
            "SSH session",
            v4([192, 168, 7, 2], [10, 1, 0, 5], 62022, 22),
        ),
        ("SMB share", v4([10, 1, 3, 40], [10, 1, 0, 8], 49822, 445)),
        (
            "IPv6 web",
            v6("2001:db8:10::23", "2001:db8:ffff::80", 53412, 443),
        ),
        ("IPv6 DNS", v6("2001:db8:10::23", "2001:db8::53", 35008, 53)),
        (
            "ICMP echo",
            Tuple::new(
                IpAddr::from([10, 1, 0, 23]),
                IpAddr::from([1, 1, 1, 1]),
                None,
            )
            .expect("same family"),
        ),
    ]
}

/// Runs `symrss demo`.
pub fn run(args: &DemoArgs) -> Result<ExitCode, Failure> {
    if args.queues == 0 {
        return Err(Failure::Usage("--queues must be at least 1".into()));
    }
    let reta = Reta::equal(128, args.queues, 0).map_err(|e| Failure::Usage(e.to_string()))?;
    let schemes = [
        Scheme::parse("ms", 0).expect("built-in"),
        Scheme::parse("sym", 0).expect("built-in"),
    ];
    println!(
        "symrss demo: {} flows, both directions, hashed as a NIC would (Toeplitz, 128-entry RETA, {} queues)\n",
        flows().len(),
        args.queues
    );
    let mut t = Table::new(&[
        "flow",
        "5-tuple (forward)",
        "ms fwd",
        "ms rev",
        "ms queues",
        "sym fwd",
        "sym rev",
        "sym queues",
    ]);
    let mut split = [0usize; 2];
    for (label, f) in flows() {
        let mut cells = vec![label.to_string(), f.to_string()];
        for (i, s) in schemes.iter().enumerate() {
            let (h, r) = (s.hash(&f), s.hash(&f.reversed()));
            let (qf, qr) = (reta.queue(h), reta.queue(r));
            if qf != qr {
                split[i] += 1;
            }
            cells.push(hex32(h));
            cells.push(hex32(r));
            cells.push(if qf == qr {
                format!("{qf} = {qr}")
            } else {
                format!("{qf} / {qr} SPLIT")
            });
        }
        t.row(cells);
    }
    print!("{}", t.render());
    let n = flows().len();
    println!(
        "\nms  (Microsoft default key): {} of {n} flows have their two directions on different queues.",
        split[0]
    );
    println!(
        "sym (0x6d5a repeated):        {} of {n} flows split; one worker sees both directions of every flow.",
        split[1]
    );
    println!("\nWhy (symrss key check):");
    for (name, key) in [
        ("ms", RssKey::microsoft(40)),
        ("sym", RssKey::repeating(0x6d5a, 40)),
    ] {
        let c = check_key(&key);
        let tcp4 = c.layout(Layout::Tcp4);
        println!(
            "  {name:<4} symmetric for all layouts: {:<5}  tcp4 effective bits: {}",
            c.symmetric_all(),
            tcp4.rank
        );
    }
    println!(
        "  The 0x6d5a key buys symmetry with entropy: its hash is a function of a 16-bit fold of the\n  \
         tuple. `symrss key gen` finds symmetric keys with 32 effective bits for tcp4."
    );
    Ok(ExitCode::SUCCESS)
}
