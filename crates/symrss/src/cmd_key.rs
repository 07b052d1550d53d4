//! `symrss key check` and `symrss key gen`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;
use symrss_hash::analysis::{KeyCheck, LayoutCheck, RETA_SIZES, check_key};
use symrss_hash::keygen::{LevelsReport, generate_levels, generate_symmetric, levels_report};
use symrss_hash::{RssKey, SYM_PATTERN};

use crate::Failure;
use crate::output::{Table, hex32, print_json};

/// `symrss key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Is the key symmetric for ip4/tcp4/ip6/tcp6? Counterexample, GF(2) rank
    /// (effective bits) and warnings for the known traps.
    #[command(
        after_help = "Examples:\n  symrss key check sym\n  symrss key check ms --json\n  \
        symrss key check 6d:5a:6d:5a:...   # as printed by `ethtool -x IF`"
    )]
    Check(CheckArgs),
    /// Generate a random symmetric key with the best rank the symmetry
    /// conditions allow, or a key pair for two-level balancing (--levels).
    #[command(after_help = "Examples:\n  symrss key gen --len 52 --seed 1\n  \
        symrss key gen --levels 4x8     # broker over 4 hosts, 8 NIC queues each")]
    Gen(GenArgs),
}

/// Arguments of `key check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The key: `ms`, `sym` or hex bytes.
    key: String,
    /// Stretch a named key to this many bytes (40 or 52).
    #[arg(long, value_parser = parse_key_len)]
    key_len: Option<usize>,
    /// Exit with status 1 unless the key is symmetric for every layout.
    #[arg(long)]
    strict: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Arguments of `key gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Key length in bytes (40: ixgbe, igb, mlx5; 52: i40e, ice).
    #[arg(long, default_value_t = 40, value_parser = parse_len)]
    len: usize,
    /// Seed for reproducible keys (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Two-level balancing HOSTSxQUEUES (e.g. 4x8): a broker spreads flows over
    /// HOSTS hosts, each NIC over QUEUES queues; keys are chosen so the two
    /// levels' RETA index bits are independent (no hash polarization).
    #[arg(long, value_parser = parse_levels)]
    levels: Option<(u32, u32)>,
    /// RETA size at both levels for --levels (a power of two).
    #[arg(long, default_value_t = 128)]
    reta: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_len(s: &str) -> Result<usize, String> {
    match s {
        "40" => Ok(40),
        "52" => Ok(52),
        _ => Err(format!("`{s}`: NIC keys are 40 or 52 bytes")),
    }
}

fn parse_levels(s: &str) -> Result<(u32, u32), String> {
    let (h, q) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not HOSTSxQUEUES, e.g. 4x8"))?;
    let n = |v: &str| v.parse::<u32>().ok().filter(|&n| (1..=1024).contains(&n));
    match (n(h), n(q)) {
        (Some(h), Some(q)) => Ok((h, q)),
        _ => Err(format!("`{s}`: hosts and queues must be 1..=1024")),
    }
}

/// Runs `symrss key ...`.
pub fn run(cmd: &KeyCommand) -> Result<ExitCode, Failure> {
    match cmd {
        KeyCommand::Check(a) => check(a),
        KeyCommand::Gen(a) => gen_key(a),
    }
}

#[derive(Serialize)]
struct CounterexampleJson {
    src: String,
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    hash: String,
    reverse_hash: String,
}

#[derive(Serialize)]
struct LayoutJson {
    layout: &'static str,
    symmetric: bool,
    counterexample: Option<CounterexampleJson>,
    rank: u32,
    reta_index_rank: serde_json::Map<String, serde_json::Value>,
    key_covers: bool,
}

#[derive(Serialize)]
struct WarningJson {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct CheckJson {
    key_hex: String,
    length: usize,
    symmetric: bool,
    period16_pattern: Option<String>,
    layouts: Vec<LayoutJson>,
    warnings: Vec<WarningJson>,
}

fn layout_json(l: &LayoutCheck) -> LayoutJson {
    LayoutJson {
        layout: l.layout.name(),
        symmetric: l.symmetric,
        counterexample: l.counterexample.map(|c| CounterexampleJson {
            src: c.tuple.src_ip().to_string(),
            dst: c.tuple.dst_ip().to_string(),
            sport: c.tuple.ports().map(|p| p.0),
            dport: c.tuple.ports().map(|p| p.1),
            hash: hex32(c.hash),
            reverse_hash: hex32(c.reverse_hash),
        }),
        rank: l.rank,
        reta_index_rank: RETA_SIZES
            .iter()
            .zip(l.reta_ranks)
            .map(|(s, r)| (s.to_string(), r.into()))
            .collect(),
        key_covers: l.key_covers,
    }
}

fn check_json(c: &KeyCheck) -> CheckJson {
    CheckJson {
        key_hex: c.key.to_hex(),
        length: c.key.len(),
        symmetric: c.symmetric_all(),
        period16_pattern: c.period16.map(|p| format!("0x{p:04x}")),
        layouts: c.layouts.iter().map(layout_json).collect(),
        warnings: c
            .warnings
            .iter()
            .map(|w| WarningJson {
                code: w.code(),
                message: w.to_string(),
            })
            .collect(),
    }
}

fn print_layouts(c: &KeyCheck) {
    let mut t = Table::new(&[
        "layout",
        "symmetric",
        "rank",
        "reta128",
        "reta512",
        "counterexample",
    ]);
    for l in &c.layouts {
        t.row(vec![
            l.layout.name().into(),
            if l.symmetric { "yes" } else { "NO" }.into(),
            format!("{}/32", l.rank),
            format!("{}/7", l.reta_ranks[0]),
            format!("{}/9", l.reta_ranks[1]),
            l.counterexample.map_or_else(
                || "-".into(),
                |ce| {
                    format!(
                        "{}: {} vs {}",
                        ce.tuple,
                        hex32(ce.hash),
                        hex32(ce.reverse_hash)
                    )
                },
            ),
        ]);
    }
    print!("{}", t.render());
}

fn check(a: &CheckArgs) -> Result<ExitCode, Failure> {
    let key = RssKey::parse(&a.key, a.key_len).map_err(|e| Failure::Usage(e.to_string()))?;
    let c = check_key(&key);
    if a.json {
        print_json(&check_json(&c))?;
    } else {
        println!("key {} ({} bytes)", key, key.len());
        print_layouts(&c);
        println!(
            "verdict: {}",
            if c.symmetric_all() {
                "symmetric for every layout"
            } else {
                "NOT symmetric (see counterexamples)"
            }
        );
        for w in &c.warnings {
            println!("warning: {w}");
        }
    }
    Ok(if a.strict && !c.symmetric_all() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Serialize)]
struct LevelLayoutJson {
    layout: &'static str,
    broker_rank: u32,
    nic_rank: u32,
    joint_rank: u32,
    independent: bool,
    worst_host_queues: u32,
}

#[derive(Serialize)]
struct LevelsJson {
    hosts: u32,
    queues: u32,
    reta_size: usize,
    broker_key_hex: String,
    nic_key_hex: String,
    independent: bool,
    layouts: Vec<LevelLayoutJson>,
    same_key_baseline: Vec<LevelLayoutJson>,
}

#[derive(Serialize)]
struct GenJson {
    key_hex: String,
    ethtool_hkey: String,
    length: usize,
    seed: u64,
    free_bit_classes: usize,
    check: CheckJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    levels: Option<LevelsJson>,
}

fn levels_layouts(r: &LevelsReport) -> Vec<LevelLayoutJson> {
    r.layouts
        .iter()
        .map(|l| LevelLayoutJson {
            layout: l.layout.name(),
            broker_rank: l.rank1,
            nic_rank: l.rank2,
            joint_rank: l.joint,
            independent: l.independent(),
            worst_host_queues: l.worst_host_queues,
        })
        .collect()
}

fn print_levels(title: &str, r: &LevelsReport) {
    println!("{title}");
    let mut t = Table::new(&[
        "layout",
        "broker bits",
        "nic bits",
        "joint",
        "independent",
        "worst host reaches",
    ]);
    for l in &r.layouts {
        t.row(vec![
            l.layout.name().into(),
            l.rank1.to_string(),
            l.rank2.to_string(),
            l.joint.to_string(),
            if l.independent() {
                "yes"
            } else {
                "NO (polarized)"
            }
            .into(),
            format!("{}/{} queues", l.worst_host_queues, r.queues),
        ]);
    }
    print!("{}", t.render());
}

fn gen_key(a: &GenArgs) -> Result<ExitCode, Failure> {
    let seed = match a.seed {
        Some(s) => s,
        None => getrandom::u64()
            .map_err(|e| Failure::Runtime(format!("no OS randomness for the seed: {e}")))?,
    };
    if a.levels.is_some() && !(a.reta.is_power_of_two() && (2..=2048).contains(&a.reta)) {
        return Err(Failure::Usage(format!(
            "--reta {} must be a power of two in 2..=2048",
            a.reta
        )));
    }
    let (key, levels) = match a.levels {
        None => (generate_symmetric(a.len, seed), None),
        Some((hosts, queues)) => {
            let (k1, k2, report) = generate_levels(a.len, seed, hosts, queues, a.reta);
            let sym = RssKey::repeating(SYM_PATTERN, a.len);
            let baseline = levels_report(&sym, &sym, hosts, queues, a.reta);
            (k1, Some((k2, report, baseline)))
        }
    };
    if a.json {
        let levels_json = levels.as_ref().map(|(k2, r, base)| LevelsJson {
            hosts: r.hosts,
            queues: r.queues,
            reta_size: r.reta_size,
            broker_key_hex: key.key.to_hex(),
            nic_key_hex: k2.key.to_hex(),
            independent: r.independent(),
            layouts: levels_layouts(r),
            same_key_baseline: levels_layouts(base),
        });
        print_json(&GenJson {
            key_hex: key.key.to_hex(),
            ethtool_hkey: key.key.to_ethtool(),
            length: key.key.len(),
            seed,
            free_bit_classes: key.free_classes,
            check: check_json(&key.check),
            levels: levels_json,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    match &levels {
        None => {
            println!("symmetric key ({} bytes, seed {seed}):", key.key.len());
            println!("  {}", key.key);
            println!(
                "symmetric keys of this length have {} free bit classes; this one has the best ranks found:",
                key.free_classes
            );
            print_layouts(&key.check);
            println!("program it:  ethtool -X IF hkey {} equal N", key.key);
        }
        Some((k2, report, baseline)) => {
            println!("broker key (level 1, {} hosts, seed {seed}):", report.hosts);
            println!("  {}", key.key);
            println!("NIC key (level 2, {} queues per host):", report.queues);
            println!("  {}", k2.key);
            print_levels(
                "\nindex bits of a RETA of {reta} entries at each level:"
                    .replace("{reta}", &report.reta_size.to_string())
                    .as_str(),
                report,
            );
            print_levels(
                "\nfor comparison, the 0x6d5a key at both levels (hash polarization):",
                baseline,
            );
            if !report.independent() {
                println!("warning: no fully independent pair found; the best pair found is shown");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--key-len`: the two key sizes NICs use.
pub fn parse_key_len(s: &str) -> Result<usize, String> {
    match s {
        "40" => Ok(40),
        "52" => Ok(52),
        _ => Err(format!(
            "`{s}`: 40 or 52 (the key lengths RSS NICs use: 40 for most, 52 for i40e/ice)"
        )),
    }
}
