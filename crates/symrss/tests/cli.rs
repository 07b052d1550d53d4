//! End-to-end tests of the `symrss` binary: JSON contracts, exit codes,
//! and cross-checks between commands (a `key check` counterexample is
//! re-hashed with `symrss hash`; a `key gen` key is re-checked).

use std::process::{Command, Output};

use serde_json::Value;

fn symrss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_symrss"))
        .args(args)
        .output()
        .expect("run symrss")
}

fn json(args: &[&str]) -> Value {
    let out = symrss(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn hash_json_matches_microsoft_vector() {
    let v = json(&[
        "hash",
        "--key",
        "ms",
        "66.9.149.187",
        "161.142.100.80",
        "2794",
        "1766",
        "--json",
    ]);
    assert_eq!(v["hash"], "0x51ccc178");
    assert_eq!(v["input_hex"], "420995bba18e64500aea06e6");
    assert_eq!(v["symmetric"], false);
    let v = json(&[
        "hash",
        "--key",
        "ms",
        "66.9.149.187",
        "161.142.100.80",
        "--json",
        "--reta",
        "128",
        "--queues",
        "4",
    ]);
    assert_eq!(v["hash"], "0x323e8fc2");
    assert_eq!(v["queue"], (0x323e_8fc2u32 % 128 % 4) as u64);
    let v = json(&[
        "hash",
        "--key",
        "sym",
        "--key-len",
        "52",
        "10.0.0.1",
        "10.0.0.2",
        "1000",
        "80",
        "--json",
    ]);
    assert_eq!(v["hash"], v["reverse"]["hash"]);
    let v = json(&[
        "hash",
        "--scheme",
        "keyed",
        "2001:db8::1",
        "2001:db8::2",
        "5353",
        "53",
        "--proto",
        "udp",
        "--json",
    ]);
    assert_eq!(v["symmetric"], true);
}

#[test]
fn key_check_counterexample_rehashes_with_hash_command() {
    let v = json(&["key", "check", "ms", "--json"]);
    assert_eq!(v["length"], 40);
    assert_eq!(v["symmetric"], false);
    let layouts = v["layouts"].as_array().unwrap();
    assert_eq!(layouts.len(), 4);
    for l in layouts {
        let ce = &l["counterexample"];
        assert_ne!(ce["hash"], ce["reverse_hash"]);
        let mut args = vec![
            "hash",
            "--key",
            "ms",
            "--json",
            ce["src"].as_str().unwrap(),
            ce["dst"].as_str().unwrap(),
        ];
        let (sp, dp);
        if let (Some(s), Some(d)) = (ce["sport"].as_u64(), ce["dport"].as_u64()) {
            (sp, dp) = (s.to_string(), d.to_string());
            args.extend([sp.as_str(), dp.as_str()]);
        }
        let h = json(&args);
        assert_eq!(h["hash"], ce["hash"], "{}", l["layout"]);
        assert_eq!(h["reverse"]["hash"], ce["reverse_hash"]);
    }
    let v = json(&["key", "check", "sym", "--json"]);
    assert_eq!(v["symmetric"], true);
    assert_eq!(v["layouts"][1]["layout"], "tcp4");
    assert_eq!(v["layouts"][1]["rank"], 16);
    let codes: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"period16_low_entropy") && codes.contains(&"xor_transform_zero"));
    assert_eq!(
        symrss(&["key", "check", "ms", "--strict"]).status.code(),
        Some(1)
    );
    assert_eq!(
        symrss(&["key", "check", "sym", "--strict"]).status.code(),
        Some(0)
    );
}

#[test]
fn generated_keys_pass_key_check() {
    for len in ["40", "52"] {
        let g = json(&["key", "gen", "--len", len, "--seed", "42", "--json"]);
        assert_eq!(g["seed"], 42);
        let key = g["key_hex"].as_str().unwrap();
        let c = json(&["key", "check", key, "--json"]);
        assert_eq!(c["symmetric"], true);
        assert_eq!(c["layouts"][1]["rank"], 32);
        assert_eq!(c["length"].to_string(), len);
        // ethtool's colon form parses to the same key.
        let c2 = json(&[
            "key",
            "check",
            g["ethtool_hkey"].as_str().unwrap(),
            "--json",
        ]);
        assert_eq!(c2["key_hex"], key);
    }
    let l = json(&["key", "gen", "--levels", "4x8", "--seed", "3", "--json"]);
    assert_eq!(l["levels"]["independent"], true);
    for (lay, base) in l["levels"]["layouts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(l["levels"]["same_key_baseline"].as_array().unwrap())
    {
        assert_eq!(lay["worst_host_queues"], 8);
        assert_eq!(base["independent"], false);
        assert_eq!(base["worst_host_queues"], 2);
    }
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let out = symrss(&["hash", "--key", "6d5z", "10.0.0.1", "10.0.0.2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad character at position 3"));
    let out = symrss(&["hash", "10.0.0.1", "2001:db8::1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = symrss(&["hash", "--scheme", "nope", "10.0.0.1", "10.0.0.2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
    assert_eq!(
        symrss(&["key", "gen", "--len", "41"]).status.code(),
        Some(2)
    );
}

#[test]
fn demo_runs_and_reports_computed_splits() {
    let out = symrss(&["demo"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("The symmetric software schemes split none"),
        "{text}"
    );
    // The table's rows: the symmetric schemes deliver everything and split nothing.
    for line in text
        .lines()
        .filter(|l| l.starts_with("sym ") || l.starts_with("keyed "))
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "0", "{line}");
        assert_eq!(cols[3], "0", "{line}");
        assert_eq!(cols[5], cols[7], "delivered = received: {line}");
    }
    let ms = text.lines().find(|l| l.starts_with("ms ")).unwrap();
    assert_ne!(ms.split_whitespace().nth(1), Some("0"), "{ms}");
}

#[test]
fn bench_json_names_the_contract_results() {
    let v = json(&["bench", "hash", "--calls", "4096", "--json"]);
    let names: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "hash.ipv4.ms",
        "hash.ipv6.ms",
        "hash.ipv4.sym",
        "hash.ipv6.sym",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ns_per_op"].as_f64().unwrap() > 0.0)
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    // A table far larger than a pipe buffer: split into 2 x 1024 queues.
    let dir = std::env::temp_dir().join(format!("symrss-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("one.pcap");
    let mut w = symrss_pcap::PcapWriter::new(
        std::fs::File::create(&pcap).unwrap(),
        1,
        65535,
        symrss_pcap::TsResolution::Micro,
    )
    .unwrap();
    w.write_packet(0, 60, &[0u8; 60]).unwrap();
    w.finish().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_symrss"))
        .arg("split")
        .arg(&pcap)
        .args(["--app", "a:1024", "--app", "b:1024", "-o"])
        .arg(dir.join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The NIC profile list in README.md and in `analyze --help` is the
/// driver table's (`nic plan --driver` names the same on a miss).
#[test]
fn readme_and_help_list_the_same_nic_profiles() {
    let list = |text: &str, after: &str| -> Vec<String> {
        let at = text.find(after).unwrap_or_else(|| panic!("no `{after}`"));
        let open = at + text[at..].find('(').unwrap() + 1;
        let close = open + text[open..].find([')', ';']).unwrap();
        text[open..close]
            .split(',')
            .map(|d| d.split_whitespace().collect::<String>())
            .collect()
    };
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let in_readme = list(&readme, "`nic:<driver>`");
    let help = symrss(&["analyze", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    let in_help = list(&help, "nic:<driver>[:key]");
    let miss = symrss(&["nic", "plan", "--driver", "no-such-driver"]);
    let known = String::from_utf8_lossy(&miss.stderr).into_owned();
    let known: Vec<String> = known
        .split("known: ")
        .nth(1)
        .unwrap()
        .trim()
        .split(", ")
        .map(str::to_string)
        .collect();
    assert_eq!(in_readme, known, "README.md");
    assert_eq!(in_help, known, "analyze --help");
    assert_eq!(known.len(), 12);
}
