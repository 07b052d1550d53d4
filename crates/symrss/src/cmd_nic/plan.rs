//! `symrss nic plan | apply`: the key, indirection table and hash fields
//! that make a device's RSS symmetric, and programming them with a full
//! read-back.

use std::process::ExitCode;

use serde_json::{Value, json};
use symrss_engine::nic::{
    self, DriverProfile, KeyControl, Mode, Plan, PlanRequest, Step, colon_hex, fields_letters, rxh,
    xfrm_name,
};
use symrss_sys::ethtool::Ethtool;

use crate::Failure;
use crate::output::print_json;

use super::{
    Device, PlanArgs, dash, describe_indir, hfunc_name, print_verdict_details, read_device,
    runtime, verdict_json,
};

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
    // What the device cannot do is a runtime fact, not a usage error.
    .map_err(|e| Failure::Runtime(e.to_string()))?;
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

pub(super) fn plan_cmd(a: &PlanArgs) -> Result<ExitCode, Failure> {
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

pub(super) fn apply(a: &PlanArgs) -> Result<ExitCode, Failure> {
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
