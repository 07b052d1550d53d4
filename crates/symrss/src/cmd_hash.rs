//! `symrss hash`: hash one flow in both directions, show input bytes, hash,
//! RETA index and queue.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;
use symrss_engine::software_reta_size;
use symrss_hash::{Fields, Reta, RssKey, Scheme, Transform, Tuple};

use crate::Failure;
use crate::output::{Table, hex_bytes, hex32, print_json};

/// Transport protocol of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// TCP: ports are hashed (4-tuple layouts).
    Tcp,
    /// UDP: same layout as TCP.
    Udp,
    /// SCTP: ports hashed like TCP.
    Sctp,
    /// Anything without ports (ICMP, GRE, ...): addresses only.
    Other,
}

/// Arguments of `symrss hash`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    symrss hash --key ms 66.9.149.187 161.142.100.80 2794 1766        # 0x51ccc178 (Microsoft vector)\n  \
    symrss hash --key sym 10.0.0.1 10.0.0.2 40000 443 --reta 128 --queues 4\n  \
    symrss hash --scheme keyed 2001:db8::1 2001:db8::2 5353 53 --proto udp --json")]
pub struct HashArgs {
    /// Toeplitz key: `ms`, `sym` or hex bytes (ignored with a non-Toeplitz --scheme).
    #[arg(long, default_value = "ms")]
    key: String,
    /// Stretch a named key to 40 or 52 bytes (`ms` zero-padded, `sym` repeated).
    #[arg(long, value_parser = crate::cmd_key::parse_key_len)]
    key_len: Option<usize>,
    /// A named scheme instead of --key: ms, sym, sym-ip, xor, or-xor, sort, keyed,
    /// or toeplitz:key=K,fields=ip|l4,xfrm=none|xor|or-xor|sort.
    #[arg(long)]
    scheme: Option<String>,
    /// Seed for the random keys of the xor/or-xor/sort/keyed schemes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Source address (IPv4 or IPv6).
    src: IpAddr,
    /// Destination address (same family).
    dst: IpAddr,
    /// Source port (give both ports or neither).
    sport: Option<u16>,
    /// Destination port.
    dport: Option<u16>,
    /// Protocol; ports are hashed only for tcp, udp and sctp.
    #[arg(long, value_enum, default_value = "tcp")]
    proto: Proto,
    /// Indirection table size (queue = reta[hash % size]), 1..=2048 (real
    /// tables have at most 2048 entries). Default: what `split` and
    /// `capture` use, 128 up to 32 queues, else a power of two ≥ 4 × queues.
    #[arg(long, requires = "queues", value_parser = parse_reta_size)]
    reta: Option<usize>,
    /// Number of queues (1..=1024), filled `equal` like `ethtool -X IF equal N`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    queues: Option<u32>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Direction {
    flow: String,
    hash: String,
    input_hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reta_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<u32>,
}

#[derive(Serialize)]
struct HashReport {
    scheme: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    layout: &'static str,
    hash: String,
    input_hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reta_index: Option<usize>,
    reverse: Direction,
    symmetric: bool,
    same_queue: Option<bool>,
}

fn scheme_from(args: &HashArgs) -> Result<Scheme, Failure> {
    match &args.scheme {
        Some(s) => Scheme::parse(s, args.seed).map_err(|e| Failure::Usage(e.to_string())),
        None => {
            let key = RssKey::parse(&args.key, args.key_len)
                .map_err(|e| Failure::Usage(format!("--key: {e}")))?;
            let name = format!("toeplitz:key={}", args.key);
            Ok(Scheme::toeplitz(&name, key, Fields::L4, Transform::None))
        }
    }
}

/// Runs `symrss hash`.
pub fn run(args: &HashArgs) -> Result<ExitCode, Failure> {
    let ports = match (args.sport, args.dport) {
        (Some(s), Some(d)) => Some((s, d)),
        (None, None) => None,
        _ => return Err(Failure::Usage("give both ports or neither".into())),
    };
    let ports = if args.proto == Proto::Other {
        None
    } else {
        ports
    };
    let tuple = Tuple::new(args.src, args.dst, ports).map_err(|e| Failure::Usage(e.to_string()))?;
    let scheme = scheme_from(args)?;
    if let Some(key) = scheme.key() {
        let input = scheme.input_bytes(&tuple).len();
        if key.len() < input + 4 {
            return Err(Failure::Usage(format!(
                "the key has {} bytes; a {input}-byte input needs at least {} (Toeplitz slides \
                 a 32-bit window over the key: it must be 4 bytes longer than the input)",
                key.len(),
                input + 4
            )));
        }
    }
    let reta = match (args.reta, args.queues) {
        (size, Some(q)) => Some(
            Reta::equal(size.unwrap_or_else(|| software_reta_size(q)), q, 0)
                .map_err(|e| Failure::Usage(e.to_string()))?,
        ),
        (_, None) => None,
    };
    let dir = |t: &Tuple| {
        let h = scheme.hash(t);
        Direction {
            flow: t.to_string(),
            hash: hex32(h),
            input_hex: hex_bytes(&scheme.input_bytes(t)),
            reta_index: reta.as_ref().map(|r| r.index(h)),
            queue: reta.as_ref().map(|r| r.queue(h)),
        }
    };
    let fwd = dir(&tuple);
    let rev = dir(&tuple.reversed());
    let report = HashReport {
        scheme: scheme.name().to_string(),
        key_hex: scheme.key().map(RssKey::to_hex),
        layout: tuple.layout(scheme.fields()).name(),
        symmetric: fwd.hash == rev.hash,
        same_queue: fwd.queue.map(|q| Some(q) == rev.queue),
        hash: fwd.hash,
        input_hex: fwd.input_hex,
        queue: fwd.queue,
        reta_index: fwd.reta_index,
        reverse: rev,
    };
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("scheme  {}", report.scheme);
    if let Some(k) = &report.key_hex {
        println!("key     {k} ({} bytes)", k.len() / 2);
    }
    println!("layout  {}", report.layout);
    let mut t = Table::new(&["direction", "flow", "input", "hash", "reta", "queue"]);
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    t.row(vec![
        "forward".into(),
        tuple.to_string(),
        report.input_hex.clone(),
        report.hash.clone(),
        opt(report.reta_index.map(|i| i.to_string())),
        opt(report.queue.map(|q| q.to_string())),
    ]);
    t.row(vec![
        "reverse".into(),
        report.reverse.flow.clone(),
        report.reverse.input_hex.clone(),
        report.reverse.hash.clone(),
        opt(report.reverse.reta_index.map(|i| i.to_string())),
        opt(report.reverse.queue.map(|q| q.to_string())),
    ]);
    print!("{}", t.render());
    match (report.symmetric, report.same_queue) {
        (true, _) => {
            println!("both directions hash alike: this flow is symmetric under this scheme")
        }
        (false, Some(true)) => println!("directions hash differently but happen to share a queue"),
        (false, Some(false)) => {
            println!("directions land on different queues: this scheme splits the flow")
        }
        (false, None) => {
            println!("directions hash differently: this scheme is not symmetric for this flow")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--reta`: 1..=2048 entries.
fn parse_reta_size(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=2048).contains(n))
        .ok_or_else(|| {
            format!("`{s}`: the table size must be 1..=2048 (real indirection tables have at most 2048 entries)")
        })
}
