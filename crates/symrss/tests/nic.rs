//! `symrss nic`: the set-requests `nic apply` sends are byte for byte what
//! Debian's `ethtool` sends for the commands `nic plan` prints (both run
//! against a fake RSS device: an LD_PRELOAD ioctl shim built here with
//! gcc); a device that does not hold what was written makes `apply` fail;
//! and, as root in private network namespaces, `show`/`apply` on veth give
//! the clear "RSS not supported" answers and `verify` on a 4-queue veth
//! reports exactly the traffic replayed through it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use symrss_testdata::{Netns, TempDir, await_ready, live_network, run, tool, veth_pair};

const SYMRSS: &str = env!("CARGO_BIN_EXE_symrss");

/// Builds the shim into a fresh temp dir; `None` (skip) without gcc.
fn build_shim() -> Option<(TempDir, PathBuf)> {
    tool("gcc")?;
    let dir = TempDir::new("shim");
    let so = dir.path().join("ethtool_shim.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ethtool_shim.c");
    run(Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl"));
    Some((dir, so))
}

fn shimmed(program: &str, so: &Path, env: &[(&str, &str)], log: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("LD_PRELOAD", so).env("SHIM_LOG", log);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_string).collect()
}

#[test]
fn apply_sends_exactly_what_ethtool_sends_for_the_planned_commands() {
    let Some((dir, so)) = build_shim() else {
        return;
    };
    if tool("ethtool").is_none() {
        return;
    }
    let devices: [&[(&str, &str)]; 2] = [
        &[("SHIM_DRIVER", "ixgbe")],
        &[
            ("SHIM_DRIVER", "i40e"),
            ("SHIM_KEY_SIZE", "52"),
            ("SHIM_INDIR_SIZE", "512"),
            ("SHIM_MAX_COMBINED", "64"),
        ],
    ];
    for (d, env) in devices.iter().enumerate() {
        for (queues, udp) in [("8", "sd"), ("3", "sdfn")] {
            let plan_log = dir.path().join(format!("plan-{d}-{queues}.log"));
            // What both `plan` and `apply` are asked for.
            let request = [
                "fake0",
                "--mode",
                "key",
                "--queues",
                queues,
                "--udp-fields",
                udp,
            ];
            let plan = run(shimmed(SYMRSS, &so, env, &plan_log)
                .args(["nic", "plan"])
                .args(request)
                .arg("--json"));
            let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
            let commands: Vec<String> = plan["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            assert_eq!(commands.len(), 6, "{commands:?}");
            assert!(!plan_log.exists(), "plan must not change anything");

            let ethtool_log = dir.path().join(format!("ethtool-{d}-{queues}.log"));
            for cmd in &commands {
                let w = words(cmd);
                assert_eq!(w[0], "ethtool");
                run(shimmed("ethtool", &so, env, &ethtool_log).args(&w[1..]));
            }
            let symrss_log = dir.path().join(format!("symrss-{d}-{queues}.log"));
            let out = run(shimmed(SYMRSS, &so, env, &symrss_log)
                .args(["nic", "apply"])
                .args(request));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("read back equal"), "{stdout}");
            assert!(stdout.contains("fake0: symmetric"), "{stdout}");
            let ethtool_bytes = std::fs::read_to_string(&ethtool_log).unwrap();
            let symrss_bytes = std::fs::read_to_string(&symrss_log).unwrap();
            let kinds: Vec<&str> = symrss_bytes
                .lines()
                .map(|l| l.split(' ').next().unwrap())
                .collect();
            // Growing: channels first; shrinking below the 4 the device has:
            // the table first (the kernel refuses channels a table uses).
            let first = if queues == "3" {
                ["SRSSH", "SCHANNELS"]
            } else {
                ["SCHANNELS", "SRSSH"]
            };
            assert_eq!(kinds[..2], first);
            assert_eq!(kinds[2..], ["SRXFH"; 4]);
            assert_eq!(symrss_bytes, ethtool_bytes, "device {d}, {queues} queues");
        }
    }
}

#[test]
fn apply_fails_loudly_when_the_device_does_not_hold_the_key() {
    let Some((dir, so)) = build_shim() else {
        return;
    };
    let log = dir.path().join("stuck.log");
    let out = shimmed(SYMRSS, &so, &[("SHIM_STUCK_KEY", "1")], &log)
        .args(["nic", "apply", "fake0", "--mode", "key", "--queues", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not hold what was written"), "{err}");
    assert!(err.contains("key reads"), "{err}");
    // Show on the fake device after a shim restart: the asymmetric default
    // key is reported as such, with a counterexample symrss can recompute.
    let show = shimmed(SYMRSS, &so, &[], &log)
        .args(["nic", "show", "fake0", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["rss"]["key_length"], 40);
    assert_eq!(v["verdict"]["symmetric"], false);
    assert_eq!(v["flow_hash"][0]["fields"], "sdfn");
}

#[test]
fn plans_for_drivers_that_cannot_set_a_key_point_to_software() {
    let out =
        run(Command::new(SYMRSS).args(["nic", "plan", "--driver", "ixgbevf", "--queues", "4"]));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("cannot set its RSS key"), "{s}");
    assert!(s.contains("symrss capture -i IF --app ids:4:keyed"), "{s}");
    assert!(!s.contains("ethtool -X"), "{s}");
    let bad = Command::new(SYMRSS)
        .args(["nic", "plan", "--driver", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("known: ixgbe"));
}

/// Two namespaces joined by a 4-queue veth pair.
struct Link {
    a: Netns,
    b: Netns,
}

fn link() -> Option<Link> {
    live_network()?;
    let a = Netns::create("nica");
    let b = Netns::create("nicb");
    veth_pair(&a, "sva", &b, "svb", 4);
    Some(Link { a, b })
}

#[test]
fn veth_show_and_apply_say_rss_is_not_supported_and_change_nothing() {
    let Some(l) = link() else { return };
    let show = |ns: &Netns| {
        let out = run(ns.exec(SYMRSS).args(["nic", "show", "svb", "--json"]));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let before = show(&l.b);
    assert_eq!(before["driver"], "veth");
    assert_eq!(before["rss"]["supported"], false);
    assert_eq!(before["rx_queues"], 4);
    assert!(before["channels"].is_object(), "{before}");
    let summary = before["verdict"]["summary"].as_str().unwrap();
    assert!(summary.contains("RSS not supported by veth"), "{summary}");
    assert!(summary.contains("software"), "{summary}");

    let out =
        l.b.exec(SYMRSS)
            .args(["nic", "apply", "svb", "--queues", "2"])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RSS not supported by veth"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("symrss capture -i svb"), "{err}");
    assert_eq!(show(&l.b)["channels"], before["channels"]);
}

/// `flows` two-way TCP/UDP flows, `per_direction` packets each way,
/// directions interleaved; written as a pcap for tcpreplay.
fn two_way_trace(path: &Path, flows: u16, per_direction: u16) -> u64 {
    use symrss_wire::build::*;
    let f = std::fs::File::create(path).unwrap();
    let mut w =
        symrss_pcap::PcapWriter::new(f, 1, 65535, symrss_pcap::TsResolution::Micro).unwrap();
    let mut n = 0u64;
    for _ in 0..per_direction {
        for flow in 0..flows {
            let (a, b) = ([10, 77, (flow >> 8) as u8, flow as u8], [10, 88, 0, 1]);
            let (sp, dp) = (20000 + flow, if flow % 2 == 0 { 443 } else { 53 });
            for (s, d, p, q) in [(a, b, sp, dp), (b, a, dp, sp)] {
                let l4 = if flow % 2 == 0 {
                    (TCP, tcp(p, q, &[0; 16]))
                } else {
                    (UDP, udp(p, q, &[0; 16]))
                };
                let frame = ethernet(ETH_IPV4, &ipv4(s, d, l4.0, &l4.1));
                w.write_packet(
                    1_700_000_000_000_000_000 + i128::from(n) * 1000,
                    frame.len() as u32,
                    &frame,
                )
                .unwrap();
                n += 1;
            }
        }
    }
    w.finish().unwrap();
    n
}

#[test]
fn verify_on_a_multiqueue_veth_reports_exactly_what_was_replayed() {
    let Some(l) = link() else { return };
    if tool("tcpreplay").is_none() {
        return;
    }
    let dir = TempDir::new("verify");
    let trace = dir.path().join("two-way.pcap");
    let flows = 40u16;
    let sent = two_way_trace(&trace, flows, 5);
    let mut child =
        l.b.exec(SYMRSS)
            .args([
                "nic",
                "verify",
                "svb",
                "--seconds",
                "60",
                "--json",
                "--show",
                "100",
                "--packets",
            ])
            .arg(sent.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Wait until every queue's socket is open and joined.
    let _stderr = await_ready(&mut child, "capturing on svb, 4 queues");
    run(l
        .a
        .exec("tcpreplay")
        .args(["-q", "--pps", "2000", "-i", "sva"])
        .arg(&trace));
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    // Everything replayed was seen, once, and nothing else.
    assert_eq!(v["packets"], sent, "{v}");
    assert_eq!(v["non_ip"], 0);
    assert_eq!(v["kernel_drops"], 0);
    let per_queue: u64 = v["per_queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_u64().unwrap())
        .sum();
    assert_eq!(per_queue, sent);
    assert_eq!(v["queues"], 4);
    assert_eq!(v["flows"], u64::from(flows));
    assert_eq!(v["two_way_flows"], u64::from(flows));
    // The verdict follows from what it saw: exit 0 iff no flow was split,
    // and every listed split flow is one of ours with both directions.
    let split = v["split_flows"].as_u64().unwrap();
    assert_eq!(
        out.status.code(),
        Some(if split == 0 { 0 } else { 1 }),
        "{v}"
    );
    assert_eq!(v["symmetric"], split == 0);
    let listed = v["split"].as_array().unwrap();
    assert_eq!(listed.len() as u64, split);
    let mut names = HashSet::new();
    for s in listed {
        let name = s["flow"].as_str().unwrap();
        assert!(
            name.contains("10.88.0.1") && name.contains("10.77."),
            "{name}"
        );
        assert_eq!(
            s["forward_packets"].as_u64().unwrap() + s["reverse_packets"].as_u64().unwrap(),
            10
        );
        assert!(names.insert(name.to_string()));
    }
    // veth has no RSS key: no RX-hash comparison is claimed.
    assert_eq!(v["rx_hash"]["compared"], 0);
}
