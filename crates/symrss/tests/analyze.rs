//! `symrss analyze` end to end: the JSON contract on real captures, zero
//! split flows under symmetric schemes, damaged files reported with their
//! offset while the packets before the damage are still analysed, stdin.

use std::process::{Command, Stdio};

use serde_json::Value;

fn symrss() -> Command {
    Command::new(env!("CARGO_BIN_EXE_symrss"))
}

fn corpus_file(name: &str) -> Option<std::path::PathBuf> {
    let dir = symrss_testdata::corpus_dir()?;
    Some(dir.join(name))
}

#[test]
fn json_contract_and_symmetric_schemes_on_a_real_capture() {
    let Some(path) = corpus_file("mercury__capture2.pcap") else {
        return;
    };
    let out = symrss_testdata::run(
        symrss()
            .arg("analyze")
            .arg(&path)
            .args(["--queues", "8", "--json"]),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 5617);
    assert!(v["flows"].as_u64().unwrap() > 100);
    let schemes = v["schemes"].as_array().unwrap();
    let names: Vec<&str> = schemes
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ms", "sym", "sym-ip", "xor", "sort", "keyed", "nic:ixgbe"]
    );
    for s in schemes {
        let queues = s["queues"].as_array().unwrap();
        assert_eq!(queues.len(), 8);
        let total: u64 = queues.iter().map(|q| q["packets"].as_u64().unwrap()).sum();
        assert_eq!(total, 5617, "{}", s["name"]);
        for k in [
            "flows_split",
            "packets_on_minority_queue",
            "imbalance_packets",
            "imbalance_flows",
        ] {
            assert!(!s[k].is_null(), "{k} missing");
        }
        let split = s["flows_split"].as_u64().unwrap();
        match s["name"].as_str().unwrap() {
            "ms" => {
                assert!(split > 100);
                assert_eq!(
                    s["split_explained"][0]["class"],
                    "directions_hash_differently"
                );
            }
            "nic:ixgbe" => {}
            _ => assert_eq!(split, 0, "{}", s["name"]),
        }
        assert!(s["imbalance_packets"].as_f64().unwrap() >= 1.0);
    }
}

#[test]
fn damaged_file_reports_offset_and_keeps_earlier_packets() {
    let Some(good) = corpus_file("zeek__echo-connections.pcap") else {
        return;
    };
    let bytes = std::fs::read(&good).unwrap();
    let dir = std::env::temp_dir().join(format!("symrss-an-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..100_000]).unwrap();
    let out = symrss()
        .arg("analyze")
        .arg(&cut)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a damaged input is a runtime failure"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.pcap") && err.contains("byte offset"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["packets"].as_u64().unwrap();
    assert!(n > 500, "packets before the cut are analysed: {n}");
    assert_eq!(v["files"][0]["packets"], n);
    assert!(v["files"][0]["error"].as_str().unwrap().contains("offset"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_stdin_and_writes_svg() {
    let Some(path) = corpus_file("zeek__gtp1_gn_normal_incl_fragmentation.pcap") else {
        return;
    };
    let svg = std::env::temp_dir().join(format!("symrss-an-{}.svg", std::process::id()));
    let mut child = symrss()
        .args([
            "analyze",
            "-",
            "--layer",
            "innermost",
            "--scheme",
            "sym",
            "--scheme",
            "nic:i40e",
            "--json",
            "--svg",
        ])
        .arg(&svg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(&path).unwrap(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 108);
    assert_eq!(v["layer"], "innermost");
    assert_eq!(v["schemes"][0]["flows_split"], 0);
    assert!(v["fragments"]["first"].as_u64().unwrap() > 0);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("nic:i40e"));
    std::fs::remove_file(&svg).unwrap();
}

#[test]
fn unknown_scheme_is_a_usage_error() {
    let out = symrss()
        .args(["analyze", "x.pcap", "--scheme", "nic:e1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown NIC profile"));
}
