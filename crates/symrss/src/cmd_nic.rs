//! `symrss nic show | plan | apply | verify`: inspect, plan, program and
//! verify a NIC's RSS through the kernel's ethtool interface.
//!
//! The ioctls are in `symrss_sys::ethtool`, the knowledge (driver
//! profiles, verdicts, plans) in `symrss_engine::nic`; this module reads a
//! device's state, prints it for people or as JSON, applies plans with a
//! full read-back, and runs the live check over `PACKET_FANOUT_QM`.
//!
//! Here: the arguments and what the subcommands share (reading a device,
//! describing its RSS state). [`mod@show`], [`mod@plan`] (plan and apply) and
//! [`mod@verify`]: one subcommand each.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use symrss_engine::nic::{self, FlowType, RssState, RssTable};
use symrss_sys::ethtool::{Channels, DriverInfo, Ethtool, EthtoolError};

use crate::Failure;

mod plan;
mod show;
mod verify;

use plan::{apply, plan_cmd};
use show::show;
use verify::verify;

/// `symrss nic` subcommands.
#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// Driver, channels, RSS key, indirection table, hash function, input
    /// transform and per-flow-type hash fields, then a verdict: symmetric
    /// or not for each flow type, and why.
    #[command(after_help = "Examples:\n  symrss nic show eth0\n  symrss nic show eth0 --json")]
    Show(ShowArgs),
    /// The exact ethtool commands that make RSS symmetric (or, where the
    /// NIC cannot, the symrss capture command that does it in software).
    #[command(after_help = "Modes:\n  \
        key       the 0x6d5a key repeated (symmetric without any transform; any Toeplitz NIC that takes a key)\n  \
        xor       the driver's symmetric input transform with a random key (ice/iavf: symmetric-xor, Linux >= 6.8; mlx5: symmetric-or-xor, >= 6.15)\n  \
        software  leave the NIC alone; symrss capture steers every flow in software\n  \
        auto      key if the driver can set its key, else xor if it has the transform, else software (default)\n\n\
        Examples:\n  symrss nic plan eth0 --queues 8\n  symrss nic plan --driver ice --queues 16 --mode xor\n  \
        symrss nic plan --driver ixgbevf      # a VF that cannot set its key")]
    Plan(PlanArgs),
    /// Carry out a plan through the ethtool ioctls, read everything back
    /// and fail loudly if the device does not hold what was written.
    #[command(
        after_help = "Needs CAP_NET_ADMIN (root). Changes channels, key, indirection table and hash fields.\n\n\
        Examples:\n  symrss nic apply eth0 --queues 8\n  symrss nic apply eth0 --queues 8 --mode xor"
    )]
    Apply(PlanArgs),
    /// Capture live traffic with one AF_PACKET socket per hardware queue
    /// (PACKET_FANOUT_QM) and report flows whose two directions arrived on
    /// different queues. Exit status 1 when symmetry is broken or nothing
    /// could be verified.
    #[command(
        after_help = "Needs CAP_NET_RAW (root). Generate two-way traffic on the link while it runs.\n\n\
        Examples:\n  symrss nic verify eth0 --seconds 30\n  symrss nic verify eth0 --packets 100000 --json"
    )]
    Verify(VerifyArgs),
}

/// Arguments of `nic show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Network interface.
    interface: String,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Arguments of `nic plan` and `nic apply`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Network interface (for `plan`, optional with `--driver`).
    interface: Option<String>,
    /// Plan for a driver not on this machine (ixgbe, ixgbevf, igb, igc,
    /// i40e, iavf, ice, mlx5_core, virtio_net, ena, vmxnet3, bnxt_en).
    #[arg(long)]
    driver: Option<String>,
    /// Receive queues, 1..=1024 (default: the device's current count, else the CPU count).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    queues: Option<u32>,
    /// How to make RSS symmetric.
    #[arg(long, default_value = "auto", value_parser = ["auto", "key", "xor", "software"])]
    mode: String,
    /// UDP hash fields: `sd` (addresses: fragments stay with their flow) or
    /// `sdfn` (addresses and ports: better balance, fragmented UDP splits).
    #[arg(long, default_value = "sd", value_parser = ["sd", "sdfn"])]
    udp_fields: String,
    /// Seed for the random key of xor mode (default: from the OS).
    #[arg(long)]
    seed: Option<u64>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Arguments of `nic verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Network interface.
    interface: String,
    /// How long to capture.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Stop after this many packets.
    #[arg(long)]
    packets: Option<u64>,
    /// Hardware receive queues, 1..=1024 (default: from the channel count or sysfs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    queues: Option<u32>,
    /// Flows to list in the report.
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs a `nic` subcommand.
pub fn run(cmd: &NicCommand) -> Result<ExitCode, Failure> {
    match cmd {
        NicCommand::Show(a) => show(a),
        NicCommand::Plan(a) => plan_cmd(a),
        NicCommand::Apply(a) => apply(a),
        NicCommand::Verify(a) => verify(a),
    }
}

fn runtime(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

/// Everything `show` reads.
struct Device {
    info: Result<DriverInfo, EthtoolError>,
    channels: Result<Channels, EthtoolError>,
    state: RssState,
}

fn read_device(interface: &str) -> Result<Device, Failure> {
    let e = Ethtool::open(interface).map_err(|e| runtime(format!("{interface}: {e}")))?;
    let info = e.driver_info();
    if let Err(err) = &info
        && err.is_no_device()
    {
        return Err(runtime(err));
    }
    let channels = e.channels();
    let rss = e
        .rss()
        .map(|r| RssTable {
            key: r.key,
            indir: r.indir,
            hfunc: r.hfunc,
            input_xfrm: r.input_xfrm,
        })
        .map_err(|err| format!("{}: {}", err.request, err.reason()));
    let fields = FlowType::ALL
        .iter()
        .map(|&ft| (ft, e.flow_hash(ft.code()).ok()))
        .collect();
    let rx_queues = channels
        .as_ref()
        .ok()
        .map(Channels::rx_queues)
        .filter(|&n| n > 0)
        .or_else(|| sysfs_rx_queues(interface));
    Ok(Device {
        state: RssState {
            driver: info.as_ref().map(|i| i.driver.clone()).unwrap_or_default(),
            rx_queues,
            rss,
            fields,
        },
        info,
        channels,
    })
}

/// `/sys/class/net/IF/queues/rx-*`.
fn sysfs_rx_queues(interface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{interface}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    (n > 0).then_some(n)
}

fn verdict_json(v: &nic::Verdict) -> Value {
    json!({
        "symmetric": v.symmetric,
        "summary": v.summary,
        "flow_types": v.flow_types.iter().map(|f| json!({
            "flow_type": f.flow_type.name(),
            "fields": f.fields,
            "symmetric": f.symmetric,
            "reasons": f.reasons,
        })).collect::<Vec<_>>(),
        "notes": v.notes,
    })
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn hfunc_name(h: u8) -> &'static str {
    match h {
        0 => "not reported",
        1 => "toeplitz",
        2 => "xor",
        4 => "crc32",
        _ => "several/unknown",
    }
}

fn describe_indir(indir: &[u32]) -> String {
    if indir.is_empty() {
        return "none".into();
    }
    let mut per: BTreeMap<u32, usize> = BTreeMap::new();
    for &q in indir {
        *per.entry(q).or_default() += 1;
    }
    let counts: Vec<String> = per.iter().map(|(q, n)| format!("q{q}:{n}")).collect();
    format!(
        "{} entries over {} queues ({})",
        indir.len(),
        per.len(),
        counts.join(" ")
    )
}

fn print_verdict_details(v: &nic::Verdict) {
    for f in &v.flow_types {
        let state = match f.symmetric {
            Some(true) => "symmetric",
            Some(false) => "NOT symmetric",
            None => "cannot tell from what the device reports",
        };
        let fields = if f.fields.is_empty() {
            "hash fields not reported".to_string()
        } else {
            format!("fields {}", f.fields)
        };
        println!("  {} ({fields}): {state}", f.flow_type.name());
        for r in &f.reasons {
            println!("    - {r}");
        }
    }
    for n in &v.notes {
        println!("  note: {n}");
    }
}
