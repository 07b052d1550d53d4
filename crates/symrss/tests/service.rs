//! What a sensor is installed with: the systemd unit in
//! `contrib/systemd` passes `systemd-analyze verify`, and its command line
//! with every example configuration in `contrib/examples` is one
//! `capture` accepts (checked with `--print-config`, which opens nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

use symrss_testdata::{TempDir, tool};

const SYMRSS: &str = env!("CARGO_BIN_EXE_symrss");

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib")
}

fn unit_text() -> String {
    std::fs::read_to_string(contrib().join("systemd/symrss@.service")).unwrap()
}

/// The unit's ExecStart arguments after the binary, for instance `name`.
fn exec_start(name: &str) -> Vec<String> {
    let text = unit_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/symrss"));
    words.map(|w| w.replace("%i", name)).collect()
}

#[test]
fn every_example_config_is_accepted_with_the_units_command_line() {
    let examples: Vec<PathBuf> = std::fs::read_dir(contrib().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(examples.len() >= 3, "{examples:?}");
    let dir = TempDir::new("units");
    for example in examples {
        let name = example.file_stem().unwrap().to_str().unwrap().to_string();
        // The unit reads /etc/symrss/NAME.toml; here the example itself.
        let args: Vec<String> = exec_start(&name)
            .into_iter()
            .map(|a| {
                a.replace(
                    &format!("/etc/symrss/{name}.toml"),
                    example.to_str().unwrap(),
                )
            })
            .collect();
        let out = Command::new(SYMRSS)
            .args(&args)
            .arg("--print-config")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("control = \"/run/symrss/{name}.sock\"")),
            "{name}: {text}"
        );
        assert!(text.contains("[[app]]"), "{name}: {text}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if tool("systemd-analyze").is_none() {
        return;
    }
    let unit = unit_text();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that ExecStart's binary exists: point it at this build.
    let dir = TempDir::new("unit");
    std::fs::write(
        dir.path().join("symrss@.service"),
        unit.replace("/usr/bin/symrss", SYMRSS),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("symrss@sensor.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manual pages and completions come from the command definitions:
/// every command has a page, each page names its command's flags, and
/// the completions know the commands and their flags.
#[test]
fn manual_pages_and_completions_cover_every_command() {
    let dir = TempDir::new("man");
    let out = Command::new(SYMRSS)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (page, flag) in [
        ("symrss.1", "capture"),
        ("symrss-capture.1", "\\-\\-control"),
        ("symrss-split.1", "\\-\\-app"),
        ("symrss-stats.1", "\\-\\-socket"),
        ("symrss-nic-apply.1", "\\-\\-udp\\-fields"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is a man page");
        assert!(text.contains(flag), "{page} names {flag}");
    }
    let main = Command::new(SYMRSS).arg("man").output().unwrap();
    let main = String::from_utf8_lossy(&main.stdout);
    assert!(
        main.contains(".TH symrss 1"),
        "`symrss man` prints symrss(1)"
    );
    assert!(
        main.contains("symrss\\-capture(1)"),
        "and points at the command pages"
    );
    let bash = Command::new(SYMRSS)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let bash = String::from_utf8_lossy(&bash.stdout);
    assert!(bash.contains("complete -F _symrss"), "{bash}");
    for word in ["capture", "--control", "stats", "--max-flows"] {
        assert!(bash.contains(word), "bash completions know {word}");
    }
    if tool("bash").is_some() {
        // The script loads in bash without an error.
        let check = Command::new("bash")
            .args(["-n", "-c"])
            .arg(bash.as_ref())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
