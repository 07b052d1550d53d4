//! `symrss nic show | plan | apply | verify`: inspect, plan, program and
//! verify a NIC's RSS through the kernel's ethtool interface.
//!
//! The ioctls are in `symrss_sys::ethtool`, the knowledge (driver
//! profiles, verdicts, plans) in `symrss_engine::nic`; this module reads a
//! device's state, prints it for people or as JSON, applies plans with a
//! full read-back, and runs the live check over `PACKET_FANOUT_QM`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use symrss_engine::nic::{
    self, DriverProfile, FlowType, KeyControl, Mode, Plan, PlanRequest, RssState, RssTable, Step,
    colon_hex, fields_letters, rxh, xfrm_name,
};
use symrss_hash::{Fields, RssKey, Toeplitz, Transform, Tuple};
use symrss_sys::ethtool::{Channels, DriverInfo, Ethtool, EthtoolError};
use symrss_sys::packet::{Fanout, PacketSocket, RingConfig};

use crate::Failure;
use crate::output::{Table, print_json};

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
    /// Receive queues (default: the device's current count, else the CPU count).
    #[arg(long)]
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
    /// Hardware receive queues (default: from the channel count or sysfs).
    #[arg(long)]
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

fn show(a: &ShowArgs) -> Result<ExitCode, Failure> {
    let d = read_device(&a.interface)?;
    let v = nic::verdict(&d.state);
    if a.json {
        let info = d.info.as_ref().ok();
        let ch = d.channels.as_ref().ok();
        print_json(&json!({
            "interface": a.interface,
            "driver": info.map(|i| i.driver.clone()),
            "driver_version": info.map(|i| i.version.clone()),
            "firmware": info.map(|i| i.firmware.clone()),
            "bus": info.map(|i| i.bus.clone()),
            "channels": ch.map(|c| json!({
                "max_rx": c.max_rx, "max_tx": c.max_tx, "max_other": c.max_other, "max_combined": c.max_combined,
                "rx": c.rx_count, "tx": c.tx_count, "other": c.other_count, "combined": c.combined_count,
            })),
            "rx_queues": d.state.rx_queues,
            "rss": match &d.state.rss {
                Ok(t) => json!({
                    "supported": true,
                    "key_hex": colon_hex(&t.key),
                    "key_length": t.key.len(),
                    "indir": t.indir,
                    "hfunc": hfunc_name(t.hfunc),
                    "input_xfrm": xfrm_name(t.input_xfrm),
                }),
                Err(e) => json!({"supported": false, "error": e}),
            },
            "flow_hash": d.state.fields.iter().map(|(ft, f)| json!({
                "flow_type": ft.name(),
                "fields": f.map(fields_letters),
            })).collect::<Vec<_>>(),
            "verdict": verdict_json(&v),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["", ""]);
    match &d.info {
        Ok(i) => t.row(vec![
            "driver".into(),
            format!(
                "{} {} (firmware {}, bus {})",
                i.driver,
                i.version,
                dash(&i.firmware),
                dash(&i.bus)
            ),
        ]),
        Err(e) => t.row(vec!["driver".into(), format!("unknown ({})", e.reason())]),
    }
    match &d.channels {
        Ok(c) => t.row(vec![
            "channels".into(),
            format!(
                "combined {} of {}, rx {} of {}, tx {} of {}",
                c.combined_count, c.max_combined, c.rx_count, c.max_rx, c.tx_count, c.max_tx
            ),
        ]),
        Err(e) => t.row(vec!["channels".into(), e.reason()]),
    }
    if let Some(n) = d.state.rx_queues {
        t.row(vec!["rx queues".into(), n.to_string()]);
    }
    match &d.state.rss {
        Ok(r) => {
            t.row(vec![
                "rss key".into(),
                format!("{} ({} bytes)", colon_hex(&r.key), r.key.len()),
            ]);
            t.row(vec![
                "hash".into(),
                format!(
                    "{}, input transform {}",
                    hfunc_name(r.hfunc),
                    xfrm_name(r.input_xfrm)
                ),
            ]);
            t.row(vec!["indirection".into(), describe_indir(&r.indir)]);
        }
        Err(e) => t.row(vec!["rss".into(), format!("not available: {e}")]),
    }
    let fields: Vec<String> = d
        .state
        .fields
        .iter()
        .map(|(ft, f)| format!("{} {}", ft.name(), f.map_or("?".into(), fields_letters)))
        .collect();
    t.row(vec!["flow hash".into(), fields.join("  ")]);
    println!("{}: {}", a.interface, v.summary);
    print!(
        "{}",
        t.render()
            .lines()
            .skip(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    print_verdict_details(&v);
    Ok(ExitCode::SUCCESS)
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
            None => "unknown",
        };
        println!("  {} ({}): {state}", f.flow_type.name(), f.fields);
        for r in &f.reasons {
            println!("    - {r}");
        }
    }
    for n in &v.notes {
        println!("  note: {n}");
    }
}

/// A profile for a driver symrss has no facts about: what the device
/// reported, nothing assumed about keys or transforms.
const UNKNOWN_DRIVER: DriverProfile = DriverProfile {
    driver: "unknown",
    devices: "a driver without a symrss profile",
    key_len: 40,
    reta_size: 128,
    max_rss_queues: None,
    vf: false,
    set_key: KeyControl::Depends("the driver implementing ETHTOOL_SRSSH with a key"),
    xfrm: (0, ""),
    udp_default: rxh::SD,
    sctp_ports: false,
    source: "the device's own ETHTOOL_GRSSH answer",
    note: "",
};

fn random_key(seed: Option<u64>) -> Result<Vec<u8>, Failure> {
    let mut key = vec![0u8; 52];
    match seed {
        Some(s) => {
            let mut r = symrss_engine::traffic::SplitMix64(s);
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&r.next_u64().to_le_bytes()[..chunk.len()]);
            }
        }
        None => getrandom::fill(&mut key).map_err(|e| runtime(format!("random key: {e}")))?,
    }
    Ok(key)
}

/// Builds the plan for `a`, reading the device when an interface is given.
fn make_plan(a: &PlanArgs) -> Result<(Plan, Option<Device>), Failure> {
    let device = match &a.interface {
        Some(i) if a.driver.is_none() => Some(read_device(i)?),
        _ => None,
    };
    let driver = match (&a.driver, &device) {
        (Some(d), _) => d.clone(),
        (None, Some(dev)) => dev.state.driver.clone(),
        (None, None) => {
            return Err(Failure::Usage(
                "give an interface (`symrss nic plan eth0`) or a driver (`--driver ixgbe`)".into(),
            ));
        }
    };
    let profile = match nic::profile(&driver) {
        Some(p) => p,
        None if a.driver.is_some() => {
            let known: Vec<&str> = nic::DRIVER_PROFILES.iter().map(|p| p.driver).collect();
            return Err(Failure::Usage(format!(
                "no profile for driver `{driver}`; known: {}",
                known.join(", ")
            )));
        }
        None => &UNKNOWN_DRIVER,
    };
    let device_sizes = device
        .as_ref()
        .and_then(|d| d.state.rss.as_ref().ok())
        .map(|t| (t.key.len(), t.indir.len()));
    let queues = a
        .queues
        .or(device.as_ref().and_then(|d| d.state.rx_queues))
        .unwrap_or(symrss_sys::cpu_count() as u32);
    let key = random_key(a.seed)?;
    let mode = Mode::parse(&a.mode).expect("clap checked the mode");
    let udp_fields = nic::parse_fields_letters(&a.udp_fields).expect("clap checked the fields");
    let interface = a.interface.clone().unwrap_or_else(|| "IF".into());
    let current_queues = device
        .as_ref()
        .and_then(|d| d.channels.as_ref().ok())
        .map(|c| c.combined_count)
        .filter(|&n| n > 0);
    let plan = nic::plan(&PlanRequest {
        interface: &interface,
        profile,
        device_sizes,
        queues,
        current_queues,
        mode,
        udp_fields,
        random_key: &key,
    })
    .map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((plan, device))
}

fn plan_json(plan: &Plan, profile_driver: &str) -> Value {
    json!({
        "interface": plan.interface,
        "driver": profile_driver,
        "mode": plan.mode.name(),
        "queues": plan.queues,
        "commands": plan.commands(),
        "explanation": plan.explanation,
        "software": plan.software,
    })
}

fn print_plan(plan: &Plan) {
    if plan.steps.is_empty() {
        println!(
            "# {} cannot be made symmetric in the NIC here; steer in software:",
            plan.interface
        );
        println!("{}", plan.software);
    } else {
        println!(
            "# make {}'s RSS symmetric ({} mode, {} queues):",
            plan.interface,
            plan.mode.name(),
            plan.queues
        );
        for c in plan.commands() {
            println!("{c}");
        }
    }
    println!();
    for e in &plan.explanation {
        println!("# {e}");
    }
    if !plan.steps.is_empty() {
        println!(
            "# then check on live traffic: symrss nic verify {}",
            plan.interface
        );
        println!("# software alternative (no NIC change): {}", plan.software);
    }
}

fn plan_cmd(a: &PlanArgs) -> Result<ExitCode, Failure> {
    let (plan, device) = make_plan(a)?;
    if let Some(d) = &device
        && let Err(e) = &d.state.rss
        && plan.mode != Mode::Software
    {
        eprintln!(
            "symrss: note: {}: RSS not available ({e}); the commands below will be refused — `--mode software` is the way here",
            plan.interface
        );
    }
    if a.json {
        let driver = a
            .driver
            .clone()
            .or(device.map(|d| d.state.driver))
            .unwrap_or_default();
        print_json(&plan_json(&plan, &driver))?;
    } else {
        print_plan(&plan);
    }
    Ok(ExitCode::SUCCESS)
}

fn apply(a: &PlanArgs) -> Result<ExitCode, Failure> {
    let Some(interface) = a.interface.clone() else {
        return Err(Failure::Usage("nic apply needs an interface".into()));
    };
    if a.driver.is_some() {
        return Err(Failure::Usage(
            "nic apply works on the device's own driver; drop --driver".into(),
        ));
    }
    let (plan, device) = make_plan(a)?;
    let device = device.expect("an interface was given");
    let table = match &device.state.rss {
        Ok(t) => t.clone(),
        Err(e) => {
            let driver = dash(&device.state.driver).to_string();
            return Err(runtime(format!(
                "nic apply: {interface}: RSS not supported by {driver} ({e}); nothing was changed.\n\
                 The NIC cannot steer symmetrically here; do it in software instead:\n  {}",
                plan.software
            )));
        }
    };
    if plan.mode == Mode::Software {
        print_plan(&plan);
        return Err(runtime(format!(
            "nic apply: nothing to program on {interface} in software mode; nothing was changed"
        )));
    }
    let e = Ethtool::open(&interface).map_err(runtime)?;
    // Validate every step against the device before changing anything.
    let channels = device.channels.as_ref().map_err(runtime)?;
    for step in &plan.steps {
        match step {
            Step::Channels(n) if channels.max_combined > 0 && *n > channels.max_combined => {
                return Err(runtime(format!(
                    "nic apply: {interface} has at most {} combined channels, {n} asked; nothing was changed",
                    channels.max_combined
                )));
            }
            Step::Rss { key, indir, .. }
                if key.len() != table.key.len() || indir.len() != table.indir.len() =>
            {
                return Err(runtime(format!(
                    "nic apply: {interface} has a {}-byte key and {} table entries, the plan {} and {}; nothing was changed",
                    table.key.len(),
                    table.indir.len(),
                    key.len(),
                    indir.len()
                )));
            }
            _ => {}
        }
    }
    let mut done: Vec<String> = Vec::new();
    for (step, cmd) in plan.steps.iter().zip(plan.commands()) {
        let r = match step {
            Step::Channels(n) => {
                if channels.combined_count == *n || channels.max_combined == 0 {
                    continue;
                }
                let mut c = *channels;
                c.combined_count = *n;
                e.set_channels(&c)
            }
            Step::Rss { key, indir, xfrm } => {
                e.set_rss(Some(indir), Some(key), nic::HFUNC_TOEPLITZ, *xfrm)
            }
            Step::Fields(ft, f) => e.set_flow_hash(ft.code(), *f),
        };
        if let Err(err) = r {
            let already = if done.is_empty() {
                "nothing was changed".to_string()
            } else {
                format!("already done: {}", done.join("; "))
            };
            return Err(runtime(format!("nic apply: `{cmd}`: {err} ({already})")));
        }
        done.push(cmd);
    }
    // Read back everything.
    let mut differs = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Channels(n) => match e.channels() {
                Ok(c) if c.max_combined == 0 || c.combined_count == *n => {}
                Ok(c) => differs.push(format!(
                    "channels: combined {} (wanted {n})",
                    c.combined_count
                )),
                Err(err) => differs.push(err.to_string()),
            },
            Step::Rss { key, indir, xfrm } => match e.rss() {
                Ok(r) => {
                    if &r.key != key {
                        differs.push(format!(
                            "key reads {} (wanted {})",
                            colon_hex(&r.key),
                            colon_hex(key)
                        ));
                    }
                    if &r.indir != indir {
                        differs.push(format!(
                            "indirection table reads {}",
                            describe_indir(&r.indir)
                        ));
                    }
                    if r.input_xfrm != *xfrm {
                        differs.push(format!(
                            "input transform reads {} (wanted {})",
                            xfrm_name(r.input_xfrm),
                            xfrm_name(*xfrm)
                        ));
                    }
                    if r.hfunc != 0 && r.hfunc != nic::HFUNC_TOEPLITZ {
                        differs.push(format!("hash function reads {}", hfunc_name(r.hfunc)));
                    }
                }
                Err(err) => differs.push(err.to_string()),
            },
            Step::Fields(ft, f) => match e.flow_hash(ft.code()) {
                Ok(got) if got == *f => {}
                Ok(got) => differs.push(format!(
                    "{} hash fields read {} (wanted {})",
                    ft.name(),
                    fields_letters(got),
                    fields_letters(*f)
                )),
                Err(err) => differs.push(err.to_string()),
            },
        }
    }
    if !differs.is_empty() {
        return Err(runtime(format!(
            "nic apply: {interface}: the device does not hold what was written:\n  - {}\n(done: {})",
            differs.join("\n  - "),
            done.join("; ")
        )));
    }
    let after = read_device(&interface)?;
    let v = nic::verdict(&after.state);
    if a.json {
        print_json(&json!({
            "interface": interface,
            "mode": plan.mode.name(),
            "queues": plan.queues,
            "applied": done,
            "read_back": "equal",
            "verdict": verdict_json(&v),
        }))?;
    } else {
        println!(
            "{interface}: applied ({} mode, {} queues), read back equal:",
            plan.mode.name(),
            plan.queues
        );
        for c in &done {
            println!("  {c}");
        }
        println!("{interface}: {}", v.summary);
        print_verdict_details(&v);
        println!("check on live traffic: symrss nic verify {interface}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A flow as verify sees it: canonical tuple and protocol.
type FlowId = (Tuple, u8);

/// What one queue's socket saw.
#[derive(Default)]
struct QueueSeen {
    packets: u64,
    non_ip: u64,
    /// (flow, forward direction?) → packets.
    flows: HashMap<(FlowId, bool), u64>,
    hash_compared: u64,
    hash_matched: u64,
    hash_zero: u64,
    kernel_drops: u64,
}

/// What verify compares the RX hash with: the device's key and fields.
struct Expected {
    hasher: Toeplitz,
    fields: HashMap<FlowType, u64>,
    xfrm: Transform,
}

impl Expected {
    fn hash(&self, t: &Tuple, proto: u8) -> Option<u32> {
        let ft = FlowType::of(proto, t.is_v6())?;
        let f = *self.fields.get(&ft)?;
        let fields = if f & rxh::L4_B_0_1 != 0 {
            Fields::L4
        } else {
            Fields::Ip
        };
        Some(self.hasher.hash_tuple(t, fields, self.xfrm))
    }
}

fn capture_queue(
    mut sock: PacketSocket,
    stop: &AtomicBool,
    total: &AtomicU64,
    limit: u64,
    expected: Option<&Expected>,
) -> QueueSeen {
    let mut seen = QueueSeen::default();
    let opts = symrss_wire::Options::default();
    let mut key = symrss_wire::FlowKey::default();
    while !stop.load(Ordering::Relaxed) {
        let r = sock.next_block(50, |p| {
            seen.packets += 1;
            let mut frame = Vec::with_capacity(p.data.len() + 4);
            p.frame_into(&mut frame);
            symrss_wire::dissect_into(symrss_wire::linktype::ETHERNET, &frame, &opts, &mut key);
            let Some(l) = key.outer() else {
                seen.non_ip += 1;
                return;
            };
            let t = if l.frag.is_some_and(|f| f.more || f.offset != 0) {
                l.tuple.with_ports(None)
            } else {
                l.tuple
            };
            let canonical = t.canonical();
            *seen
                .flows
                .entry(((canonical, l.proto), canonical == t))
                .or_default() += 1;
            if let Some(exp) = expected
                && let Some(h) = exp.hash(&t, l.proto)
            {
                seen.hash_compared += 1;
                seen.hash_matched += u64::from(h == p.rx_hash);
                seen.hash_zero += u64::from(p.rx_hash == 0);
            }
        });
        match r {
            Ok(n) => {
                if total.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= limit {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                eprintln!("symrss: capture error: {e}");
                break;
            }
        }
    }
    // Packets still in the ring after the stop are not counted; the
    // kernel's counters are read last.
    if let Ok(s) = sock.stats() {
        seen.kernel_drops = s.drops;
    }
    seen
}

fn verify(a: &VerifyArgs) -> Result<ExitCode, Failure> {
    let interface = &a.interface;
    let device = read_device(interface)?;
    let queues = a
        .queues
        .or(device.state.rx_queues)
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            runtime(format!(
                "{interface}: cannot tell how many receive queues it has; give --queues"
            ))
        })?;
    if queues > 1024 {
        return Err(Failure::Usage(format!(
            "{queues} queues is more than fanout allows (1024)"
        )));
    }
    let expected = device.state.rss.as_ref().ok().and_then(|t| {
        if t.hfunc != 0 && t.hfunc != nic::HFUNC_TOEPLITZ {
            return None;
        }
        let key = RssKey::from_bytes(&t.key).ok()?;
        let fields: HashMap<FlowType, u64> = device
            .state
            .fields
            .iter()
            .filter_map(|(ft, f)| f.map(|f| (*ft, f)))
            .collect();
        let xfrm = match t.input_xfrm {
            nic::XFRM_SYM_XOR => Transform::Xor,
            nic::XFRM_SYM_OR_XOR => Transform::OrXor,
            _ => Transform::None,
        };
        Some(Expected {
            hasher: Toeplitz::new(key),
            fields,
            xfrm,
        })
    });
    // Open and join every socket before any packet is counted, so the
    // group's member k is queue k.
    let group = (std::process::id() & 0xffff) as u16;
    let cfg = RingConfig {
        block_size: 1 << 20,
        block_count: 16,
        retire_ms: 20,
        rx_hash: true,
        ..RingConfig::default()
    };
    let mut socks = Vec::with_capacity(queues as usize);
    for _ in 0..queues {
        let s =
            PacketSocket::open(interface, &cfg).map_err(|e| runtime(format!("nic verify: {e}")))?;
        s.fanout(group, Fanout::QueueMapping)
            .map_err(|e| runtime(format!("nic verify: {interface}: {e}")))?;
        socks.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let limit = a.packets.unwrap_or(u64::MAX);
    let expected = Arc::new(expected);
    eprintln!(
        "symrss: nic verify: capturing on {interface}, {queues} queues (PACKET_FANOUT_QM), for {} s{}",
        a.seconds,
        a.packets
            .map_or(String::new(), |n| format!(" or {n} packets"))
    );
    let handles: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let (stop, total, expected) =
                (Arc::clone(&stop), Arc::clone(&total), Arc::clone(&expected));
            std::thread::spawn(move || {
                capture_queue(s, &stop, &total, limit, expected.as_ref().as_ref())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds.max(0.0));
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let per_queue: Vec<QueueSeen> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| runtime("a capture thread panicked")))
        .collect::<Result<_, _>>()?;
    report(a, queues, &per_queue, expected.is_some())
}

/// Per flow: for each direction, the queues it reached and its packets.
#[derive(Default)]
struct FlowSeen {
    queues: [BTreeSet<u32>; 2],
    packets: [u64; 2],
}

fn report(
    a: &VerifyArgs,
    queues: u32,
    per_queue: &[QueueSeen],
    compared_hash: bool,
) -> Result<ExitCode, Failure> {
    let mut flows: HashMap<FlowId, FlowSeen> = HashMap::new();
    for (q, seen) in per_queue.iter().enumerate() {
        for (&(id, forward), &n) in &seen.flows {
            let f = flows.entry(id).or_default();
            let d = usize::from(!forward);
            f.queues[d].insert(q as u32);
            f.packets[d] += n;
        }
    }
    let packets: u64 = per_queue.iter().map(|s| s.packets).sum();
    let non_ip: u64 = per_queue.iter().map(|s| s.non_ip).sum();
    let drops: u64 = per_queue.iter().map(|s| s.kernel_drops).sum();
    let two_way = flows
        .values()
        .filter(|f| f.packets[0] > 0 && f.packets[1] > 0)
        .count();
    let mut split: Vec<(&FlowId, &FlowSeen)> = flows
        .iter()
        .filter(|(_, f)| {
            let all: BTreeSet<u32> = f.queues[0].union(&f.queues[1]).copied().collect();
            all.len() > 1
        })
        .collect();
    split.sort_by_key(|(_, f)| std::cmp::Reverse(f.packets[0] + f.packets[1]));
    let (compared, matched, zero) = per_queue.iter().fold((0, 0, 0), |acc, s| {
        (
            acc.0 + s.hash_compared,
            acc.1 + s.hash_matched,
            acc.2 + s.hash_zero,
        )
    });
    let symmetric = two_way > 0 && split.is_empty();
    let verdict = if split.is_empty() && two_way == 0 {
        "inconclusive: no flow was seen in both directions (generate two-way traffic while verifying)".to_string()
    } else if split.is_empty() {
        format!("symmetric: all {two_way} two-way flows kept both directions on one queue")
    } else {
        format!(
            "BROKEN: {} of {} flows reached more than one queue ({} of {} two-way flows seen)",
            split.len(),
            flows.len(),
            two_way,
            flows.len()
        )
    };
    let hash_note = if !compared_hash {
        "RX hash not compared: the device's key is not readable or its hash function is not Toeplitz".to_string()
    } else if compared == 0 {
        "RX hash: no TCP/UDP packet to compare".to_string()
    } else if matched == compared {
        format!(
            "RX hash: all {compared} TCP/UDP packets carry exactly symrss's Toeplitz hash for the configured key"
        )
    } else {
        format!(
            "RX hash: {matched} of {compared} TCP/UDP packets match symrss's Toeplitz hash for the configured key ({zero} had none); \
             a mismatch means the driver reports another hash (or the kernel's software hash), not the NIC's Toeplitz value"
        )
    };
    let flow_name = |id: &FlowId| {
        let t = &id.0;
        match t.ports() {
            Some((sp, dp)) => format!(
                "{} {}:{sp} <-> {}:{dp}",
                proto_name(id.1),
                t.src_ip(),
                t.dst_ip()
            ),
            None => format!("{} {} <-> {}", proto_name(id.1), t.src_ip(), t.dst_ip()),
        }
    };
    if a.json {
        print_json(&json!({
            "interface": a.interface,
            "queues": queues,
            "packets": packets,
            "non_ip": non_ip,
            "kernel_drops": drops,
            "per_queue": per_queue.iter().map(|s| s.packets).collect::<Vec<_>>(),
            "flows": flows.len(),
            "two_way_flows": two_way,
            "split_flows": split.len(),
            "symmetric": symmetric,
            "verdict": verdict,
            "split": split.iter().take(a.show).map(|(id, f)| json!({
                "flow": flow_name(id),
                "forward_queues": f.queues[0],
                "reverse_queues": f.queues[1],
                "forward_packets": f.packets[0],
                "reverse_packets": f.packets[1],
            })).collect::<Vec<_>>(),
            "rx_hash": {"compared": compared, "matched": matched, "zero": zero, "note": hash_note},
        }))?;
    } else {
        println!("{}: {verdict}", a.interface);
        let mut t = Table::new(&["queue", "packets"]);
        for (q, s) in per_queue.iter().enumerate() {
            t.row(vec![q.to_string(), s.packets.to_string()]);
        }
        print!("{}", t.render());
        println!(
            "packets {packets} (non-IP {non_ip}, dropped by the kernel {drops}); flows {}, two-way {two_way}, split {}",
            flows.len(),
            split.len()
        );
        for (id, f) in split.iter().take(a.show) {
            println!(
                "  split: {}: forward {} pkts on {:?}, reverse {} pkts on {:?}",
                flow_name(id),
                f.packets[0],
                f.queues[0],
                f.packets[1],
                f.queues[1]
            );
        }
        println!("{hash_note}");
    }
    Ok(if symmetric {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_hash_expectation_is_the_microsoft_toeplitz_of_the_configured_fields() {
        // Microsoft's first RSS verification vector: 66.9.149.187:2794 →
        // 161.142.100.80:1766, 4-tuple 0x51ccc178, 2-tuple 0x323e8fc2.
        let t = Tuple::v4(
            [66, 9, 149, 187].into(),
            [161, 142, 100, 80].into(),
            Some((2794, 1766)),
        );
        let exp = |fields: u64, xfrm| Expected {
            hasher: Toeplitz::new(RssKey::microsoft(40)),
            fields: FlowType::ALL.iter().map(|&ft| (ft, fields)).collect(),
            xfrm,
        };
        assert_eq!(
            exp(rxh::SDFN, Transform::None).hash(&t, 6),
            Some(0x51cc_c178)
        );
        assert_eq!(
            exp(rxh::SD, Transform::None).hash(&t, 17),
            Some(0x323e_8fc2)
        );
        // Not a TCP/UDP flow type: nothing to compare.
        assert_eq!(exp(rxh::SDFN, Transform::None).hash(&t, 1), None);
        // Under symmetric-xor both directions give the same value.
        let x = exp(rxh::SDFN, Transform::Xor);
        assert_eq!(x.hash(&t, 6), x.hash(&t.reversed(), 6));
    }
}
