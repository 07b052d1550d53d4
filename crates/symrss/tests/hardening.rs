//! The hostile cases of `symrss split` and the option checks of every
//! command: stop signals and SIGKILL mid-run, a full disk, traversal and
//! symlinked outputs, an input that is also an output, stale files of an
//! earlier run, empty captures, queues beyond 128, unbounded sizes and
//! usage errors that must exit 2 before anything is touched.
//!
//! Oracles: symrss's own reader (every record whole, packet counts) and,
//! where installed, `capinfos`; the summary must say
//! `received = delivered + dropped` with `delivered` equal to the packets
//! in the files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use symrss_pcap::{CaptureReader, PcapWriter, TsResolution};
use symrss_testdata::TempDir;
use symrss_wire::build::{ETH_IPV4, TCP, ethernet, ipv4, tcp};

fn symrss() -> Command {
    Command::new(env!("CARGO_BIN_EXE_symrss"))
}

fn run(args: &[&str]) -> Output {
    symrss().args(args).output().expect("run symrss")
}

/// `symrss split INPUT -o OUT ARGS...`.
fn split(input: &Path, out: &Path, args: &[&str]) -> Output {
    symrss()
        .arg("split")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("run symrss")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Packet `i` of a stream of `flows` TCP flows (both directions), its
/// index in the payload.
fn frame(i: u64, flows: u64) -> Vec<u8> {
    let f = i % flows;
    let (a, b) = (
        [10, 0, (f >> 8) as u8, f as u8],
        [10, 1, (f >> 8) as u8, f as u8],
    );
    let (sport, dport) = (1024 + (f % 50_000) as u16, 80);
    let payload = i.to_le_bytes();
    let ip = if (i / flows).is_multiple_of(2) {
        ipv4(a, b, TCP, &tcp(sport, dport, &payload))
    } else {
        ipv4(b, a, TCP, &tcp(dport, sport, &payload))
    };
    ethernet(ETH_IPV4, &ip)
}

fn ts(i: u64) -> i128 {
    1_700_000_000_000_000_000 + i128::from(i) * 1000
}

/// A pcap of `n` packets over `flows` flows.
fn trace(path: &Path, n: u64, flows: u64) {
    let mut w = PcapWriter::create(path, 1, 65535, TsResolution::Nano).unwrap();
    for i in 0..n {
        let f = frame(i, flows);
        w.write_packet(ts(i), f.len() as u32, &f).unwrap();
    }
    w.finish().unwrap();
}

/// Every record of a file (the reader must reach a clean end): the
/// packet indices carried in the payloads.
fn indices(path: &Path) -> Vec<u64> {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                let d = p.data;
                out.push(u64::from_le_bytes(d[d.len() - 8..].try_into().unwrap()));
            }
            Ok(None) => return out,
            Err(e) => panic!("{}: not whole: {e}", path.display()),
        }
    }
}

/// Checks a summary against the files: per queue the packets listed are
/// the packets in the file; per app received = delivered + dropped.
/// Returns the packet indices found in each app's files.
fn check_summary(out: &Path, summary: &Value) -> Vec<Vec<u64>> {
    // capinfos as a second reader where it is installed (CI installs it).
    let capinfos = symrss_testdata::tool("capinfos");
    let mut per_app = Vec::new();
    for app in summary["apps"].as_array().unwrap() {
        let mut seen = Vec::new();
        let mut delivered = 0;
        for q in app["queues"].as_array().unwrap() {
            let file = out.join(q["file"].as_str().unwrap());
            let got = if file.exists() {
                indices(&file)
            } else {
                Vec::new()
            };
            assert_eq!(
                got.len() as u64,
                q["packets"].as_u64().unwrap(),
                "{}",
                file.display()
            );
            if let Some(capinfos) = &capinfos
                && file.exists()
            {
                let o = Command::new(capinfos)
                    .arg("-c")
                    .arg(&file)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr);
                assert!(!text.contains("cut short"), "{}: {text}", file.display());
            }
            delivered += got.len() as u64;
            seen.extend(got);
        }
        assert_eq!(app["delivered"].as_u64().unwrap(), delivered);
        let dropped = app["dropped"]["queue_full"].as_u64().unwrap()
            + app["dropped"]["sink_error"].as_u64().unwrap();
        assert_eq!(
            app["received"].as_u64().unwrap(),
            delivered + dropped,
            "{}: received = delivered + dropped",
            app["name"]
        );
        seen.sort_unstable();
        per_app.push(seen);
    }
    per_app
}

fn summary_of(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// Feeds an endless pcap stream into `child`'s stdin from a thread (it
/// ends when the child goes away).
fn feed_forever(child: &mut Child) {
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let w = PcapWriter::new(Vec::new(), 1, 65535, TsResolution::Nano).unwrap();
        let mut i = 0u64;
        let header = w.finish().unwrap();
        if stdin.write_all(&header).is_err() {
            return;
        }
        loop {
            let mut chunk = Vec::with_capacity(1 << 16);
            for _ in 0..512 {
                let f = frame(i, 1000);
                chunk.extend_from_slice(&(((ts(i) / 1_000_000_000) as u32).to_le_bytes()));
                chunk.extend_from_slice(&(((ts(i) % 1_000_000_000) as u32).to_le_bytes()));
                chunk.extend_from_slice(&(f.len() as u32).to_le_bytes());
                chunk.extend_from_slice(&(f.len() as u32).to_le_bytes());
                chunk.extend_from_slice(&f);
                i += 1;
            }
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
    });
}

/// `symrss split - -o OUT ARGS...` reading an endless stream.
fn split_stream(out: &Path, args: &[&str]) -> Child {
    let mut child = symrss()
        .args(["split", "-", "-o"])
        .arg(out)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    feed_forever(&mut child);
    child
}

/// Waits (bounded) until the queue files under `dir` hold records.
fn await_output(dir: &Path, min_bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let size: u64 = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if size >= min_bytes {
            return;
        }
        assert!(Instant::now() < deadline, "no output in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "split did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &Child, signal: i32) {
    // The process is ours (spawned above) and still running.
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn split_stops_cleanly_on_every_stop_signal() {
    use std::os::unix::process::ExitStatusExt;
    for (signal, code) in [(15, 143), (2, 130), (1, 129), (13, 141)] {
        let tmp = TempDir::new("sigstop");
        let out = tmp.path().join("out");
        let mut child = split_stream(&out, &["--app", "ids:4", "--app", "rec:1:keyed"]);
        await_output(&out.join("ids"), 4 * 24 + 1);
        kill(&child, signal);
        let status = wait_bounded(&mut child);
        assert_eq!(status.code(), Some(code), "signal {signal}: {status:?}");
        assert_eq!(status.signal(), None);
        let summary = summary_of(&out);
        assert_eq!(summary["interrupted"], true);
        assert_eq!(summary["signal"], signal);
        let n = summary["input_packets"].as_u64().unwrap();
        assert!(n > 0);
        // Lossless: every packet read is in exactly one queue of each app,
        // and they are the first n of the stream.
        for seen in check_summary(&out, &summary) {
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "signal {signal}");
        }
    }
}

#[test]
fn a_killed_split_leaves_whole_records() {
    let tmp = TempDir::new("sigkill");
    let out = tmp.path().join("out");
    let mut child = split_stream(&out, &["--app", "ids:2"]);
    await_output(&out.join("ids"), 600_000);
    kill(&child, 9);
    wait_bounded(&mut child);
    let mut total = 0;
    for q in 0..2 {
        total += whole_until_killed(&out.join(format!("ids/q{q}.pcap")));
    }
    assert!(total > 0);
}

/// The records of a file whose writer was killed: all whole, except that
/// the kernel may stop a `write(2)` under SIGKILL at a page boundary of
/// the file (it checks for a fatal signal before copying each page), so a
/// last record cut exactly at a multiple of the page size is what the OS
/// allows; anything else partial fails.
fn whole_until_killed(path: &Path) -> usize {
    let len = std::fs::metadata(path).unwrap().len();
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    loop {
        match r.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => return n,
            Err(e) if len.is_multiple_of(4096) && e.to_string().contains("file ends inside") => {
                return n;
            }
            Err(e) => panic!("{}: not whole: {e} (file size {len})", path.display()),
        }
    }
}

#[test]
fn app_names_cannot_leave_the_output_directory() {
    let tmp = TempDir::new("names");
    let input = tmp.path().join("in.pcap");
    trace(&input, 10, 2);
    let long = "x".repeat(300);
    for name in [
        "..",
        ".",
        "a/b",
        "../x",
        "-rf",
        "summary.json",
        long.as_str(),
    ] {
        let app = format!("--app={name}:2");
        let o = run(&[
            "split",
            input.to_str().unwrap(),
            "-o",
            tmp.path().join("dir/out").to_str().unwrap(),
            &app,
        ]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("app name"), "{}", stderr(&o));
        let c = run(&[
            "capture",
            "-i",
            "lo",
            "-w",
            tmp.path().to_str().unwrap(),
            &format!("--app={name}:2:sym"),
        ]);
        assert_eq!(c.status.code(), Some(2), "capture {name}: {}", stderr(&c));
    }
    assert!(!tmp.path().join("dir").exists(), "nothing was created");
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the input is there");
}

#[test]
fn symlinks_at_output_paths_are_not_followed() {
    let tmp = TempDir::new("symlink");
    let input = tmp.path().join("in.pcap");
    trace(&input, 50, 5);
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("ids")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("ids/q0.pcap")).unwrap();
    // Without --force the directory is not empty: refused.
    let o = split(&input, &out, &["--app", "ids:2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // With --force the link is left alone and not written through.
    let o = split(&input, &out, &["--app", "ids:2", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // An app directory that is a link is refused too.
    let out2 = tmp.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out2.join("ids")).unwrap();
    let o = split(&input, &out2, &["--app", "ids:2", "--force"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn an_input_that_is_an_output_is_refused_before_anything_is_truncated() {
    let tmp = TempDir::new("inout");
    let out = tmp.path().join("out");
    let input = tmp.path().join("in.pcap");
    trace(&input, 300, 20);
    let o = split(&input, &out, &["--app", "ids:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let q0 = out.join("ids/q0.pcap");
    let before = std::fs::read(&q0).unwrap();
    for force in [false, true] {
        let mut args = vec![
            "split",
            q0.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--app",
            "ids:1",
        ];
        if force {
            args.push("--force");
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("also an output"), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(&q0).unwrap(),
            before,
            "the input is untouched"
        );
    }
    // A hard link to an output is the same file.
    let link = tmp.path().join("link.pcap");
    std::fs::hard_link(&q0, &link).unwrap();
    let o = split(&link, &out, &["--app", "ids:1", "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&q0).unwrap(), before);
}

#[test]
fn stale_files_of_an_earlier_run_are_refused_or_removed() {
    let tmp = TempDir::new("stale");
    let out = tmp.path().join("out");
    let input = tmp.path().join("in.pcap");
    trace(&input, 400, 40);
    let split = |queues: &str, force: bool| {
        let app = format!("ids:{queues}");
        let mut args = vec![
            "split",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--app",
            &app,
            "--json",
        ];
        if force {
            args.push("--force");
        }
        run(&args)
    };
    assert!(split("4", false).status.success());
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let o = split("2", false);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not empty") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert!(
        out.join("ids/q3.pcap").exists(),
        "nothing removed without --force"
    );
    let o = split("2", true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("ids/q2.pcap").exists() && !out.join("ids/q3.pcap").exists());
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    assert!(
        stderr(&o).contains("notes.txt"),
        "what is left is named: {}",
        stderr(&o)
    );
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    for seen in check_summary(&out, &summary) {
        assert_eq!(seen, (0..400).collect::<Vec<_>>());
    }
}

#[test]
fn an_empty_capture_still_gets_every_queue_file() {
    let tmp = TempDir::new("empty");
    let input = tmp.path().join("empty.pcap");
    trace(&input, 0, 1);
    let out = tmp.path().join("out");
    let o = split(
        &input,
        &out,
        &["--app", "ids:3", "--app", "rec:1", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let apps = summary["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0]["queues"].as_array().unwrap().len(), 3);
    for f in ["ids/q0.pcap", "ids/q1.pcap", "ids/q2.pcap", "rec/q0.pcap"] {
        assert!(indices(&out.join(f)).is_empty(), "{f}: a valid, empty pcap");
    }
}

#[test]
fn a_missing_input_creates_no_output() {
    let tmp = TempDir::new("missing");
    let out = tmp.path().join("out");
    let o = run(&["split", "/nonexistent.pcap", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.pcap"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn queues_beyond_128_receive_packets() {
    let tmp = TempDir::new("q200");
    let input = tmp.path().join("in.pcap");
    trace(&input, 40_000, 20_000);
    let out = tmp.path().join("out");
    let o = split(&input, &out, &["--app", "ids:200", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let queues = summary["apps"][0]["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 200);
    let empty: Vec<usize> = (0..200).filter(|&q| queues[q]["packets"] == 0).collect();
    assert!(empty.is_empty(), "empty queues: {empty:?}");
    let a = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--queues",
        "200",
        "--scheme",
        "sym",
        "--json",
    ]);
    assert!(a.status.success(), "{}", stderr(&a));
    let v: Value = serde_json::from_slice(&a.stdout).unwrap();
    let q = v["schemes"][0]["queues"].as_array().unwrap();
    assert_eq!(q.len(), 200);
    assert!(q.iter().all(|q| q["packets"].as_u64().unwrap() > 0));
}

#[test]
fn unbounded_or_malformed_options_are_usage_errors() {
    let tmp = TempDir::new("usage");
    let w = tmp.path().to_str().unwrap();
    let mut cases: Vec<Vec<&str>> = vec![
        vec![
            "hash",
            "--key",
            "ms",
            "1.2.3.4",
            "5.6.7.8",
            "--reta",
            "4294967295",
            "--queues",
            "4",
        ],
        vec![
            "hash", "--key", "ms", "1.2.3.4", "5.6.7.8", "--queues", "100000",
        ],
        vec!["nic", "plan", "--driver", "ixgbe", "--queues", "100000"],
        vec![
            "capture",
            "-i",
            "symrss-none0",
            "-i",
            "symrss-none0",
            "-w",
            w,
        ],
        vec!["split", "x.pcap", "-o", w, "--app", "ids:0"],
        // Keys: too short for the input, lengths NICs do not use, typos,
        // a field given twice.
        vec!["hash", "--key", "6d", "1.2.3.4", "5.6.7.8"],
        vec![
            "hash",
            "--key",
            "6d5a6d5a6d5a6d5a6d5a6d5a6d5a6d5a",
            "2001:db8::1",
            "2001:db8::2",
            "1",
            "2",
        ],
        vec!["key", "check", "sym", "--key-len", "41"],
        vec!["key", "check", "sym", "--key-len", "7"],
        vec!["key", "check", "6d::5a"],
        vec!["key", "check", "6d:5a:"],
        vec![
            "hash",
            "--scheme",
            "toeplitz:key=sym,key=ms",
            "1.2.3.4",
            "5.6.7.8",
        ],
        vec![
            "split",
            "x.pcap",
            "-o",
            w,
            "--app",
            "ids:2:toeplitz:key=6d5a6d5a",
        ],
    ];
    // `capture -i symrss-none0 -w DIR` and then each of these: refused
    // before any interface is opened.
    let capture: [&[&str]; 14] = [
        &["--xdp-frames", "1000"],
        &["--xdp-ring", "32"],
        &["--workers", "0"],
        &["--workers", "100000"],
        &["--workers", "2", "--inline-sinks"],
        &["--block-size", "1000"],
        &["--block-count", "0"],
        &["--duration", "1e19"],
        &["--duration", "-1"],
        &["--rotate-size", "99999999999G"],
        &["--rotate-files", "0"],
        &["--app", "abcdefghijklm:2:sym:tap"],
        &["--app", "abcdefghijkl:11:sym:veth"],
        &["--app", "ids:2000"],
    ];
    for extra in capture {
        let mut args = vec!["capture", "-i", "symrss-none0", "-w", w];
        args.extend_from_slice(extra);
        cases.push(args);
    }
    for args in &cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
    assert_eq!(std::fs::read_dir(w).unwrap().count(), 0, "nothing written");
}
/// A small tmpfs mounted for one test (root only) and unmounted after.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        symrss_testdata::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(at),
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_whole_files_and_a_truthful_summary() {
    if symrss_testdata::mount_rights().is_none() {
        return;
    }
    let tmp = TempDir::new("enospc");
    let input = tmp.path().join("in.pcap");
    trace(&input, 30_000, 500);
    // The whole output on a 512 KiB tmpfs.
    let out = tmp.path().join("small");
    let _fs = Tmpfs::mount(&out, "512k");
    let o = split(
        &input,
        &out,
        &["--app", "ids:4", "--app", "rec:2:keyed", "--json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("No space left on device") && err.contains("q"),
        "{err}"
    );
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let total_errors: u64 = summary["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["dropped"]["sink_error"].as_u64().unwrap())
        .sum();
    assert!(total_errors > 0);
    check_summary(&out, &summary);
    // No empty or cut summary.json on the full disk.
    if let Ok(text) = std::fs::read(out.join("summary.json")) {
        let on_disk: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(on_disk, summary);
    }
    drop(_fs);
    // Only one app's directory full: the other app is complete.
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let _fs = Tmpfs::mount(&out.join("rec"), "256k");
    let o = split(
        &input,
        &out,
        &[
            "--app",
            "ids:4",
            "--app",
            "rec:2:keyed",
            "--json",
            "--force",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let seen = check_summary(&out, &summary);
    assert_eq!(seen[0], (0..30_000).collect::<Vec<_>>(), "ids is whole");
    assert!(seen[1].len() < 30_000 && !seen[1].is_empty());
    assert_eq!(
        summary_of(&out),
        summary,
        "summary.json (on the roomy disk) is the same"
    );
}

#[test]
fn dissection_errors_are_counted_with_the_first_example() {
    let tmp = TempDir::new("dissect");
    let a = tmp.path().join("a.pcap");
    trace(&a, 5, 2);
    let b = tmp.path().join("b.pcap");
    let mut w = PcapWriter::create(&b, 1, 65535, TsResolution::Nano).unwrap();
    for i in 0..6u64 {
        let f = if i == 3 || i == 5 {
            // An IPv4 header cut after 3 bytes.
            ethernet(ETH_IPV4, &[0x45, 0, 0])
        } else {
            frame(i, 2)
        };
        w.write_packet(ts(10 + i), f.len() as u32, &f).unwrap();
    }
    w.finish().unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "split",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dissect_errors"]["count"], 2);
    let first = v["dissect_errors"]["first"].as_str().unwrap();
    assert!(
        first.contains("b.pcap packet 3") && first.contains("offset"),
        "{first}"
    );
    assert!(stderr(&o).contains("b.pcap packet 3"), "{}", stderr(&o));
}

#[test]
fn analyze_says_when_the_flow_bound_was_reached() {
    let tmp = TempDir::new("maxflows");
    let input = tmp.path().join("in.pcap");
    trace(&input, 1000, 100);
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--max-flows",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["flow_limit_reached"], true);
    assert_eq!(v["flows"], 10);
    assert_eq!(
        v["packets_untracked"], 900,
        "the 90 untracked flows' packets"
    );
    let o = run(&["analyze", input.to_str().unwrap(), "--max-flows", "10"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("--max-flows bound (10) was reached"));
    let o = run(&["analyze", input.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["flow_limit_reached"].clone(), v["flows"].clone()),
        (Value::Bool(false), Value::from(100))
    );
}

#[test]
fn times_classic_pcap_cannot_hold_are_kept_in_pcapng_and_short_lengths_counted() {
    let tmp = TempDir::new("fidelity");
    let input = tmp.path().join("in.pcapng");
    let mut w = PcapWriter::create_pcapng(&input, 1, 65535).unwrap();
    let mut want = Vec::new();
    for i in 0..40u64 {
        // Every fourth packet before 1970, every tenth after 2106.
        let t = if i % 4 == 0 {
            -3_000_000_000 - i128::from(i)
        } else if i % 10 == 0 {
            5_000_000_000_000_000_000 + i128::from(i)
        } else {
            ts(i)
        };
        let f = frame(i, 5);
        w.write_packet(t, f.len() as u32, &f).unwrap();
        want.push((i, t));
    }
    w.finish().unwrap();
    let out = tmp.path().join("out");
    let o = split(&input, &out, &["--app", "ids:2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("q<i>.pcapng"), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let outside = want
        .iter()
        .filter(|(_, t)| !symrss_pcap::timestamp_fits(*t))
        .count();
    assert_eq!(v["fidelity"]["timestamps_outside_pcap"], outside as u64);
    let mut got = Vec::new();
    for q in v["apps"][0]["queues"].as_array().unwrap() {
        let mut files = vec![q["file"].as_str().unwrap().to_string()];
        files.extend(
            q["pcapng_files"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f.as_str().unwrap().to_string()),
        );
        let mut in_queue = 0;
        for f in files {
            let mut r = CaptureReader::open(&out.join(&f)).unwrap();
            while let Some(p) = r.next_packet().unwrap() {
                let d = p.data;
                got.push((
                    u64::from_le_bytes(d[d.len() - 8..].try_into().unwrap()),
                    p.ts_ns,
                ));
                in_queue += 1;
            }
        }
        assert_eq!(q["packets"], in_queue);
    }
    got.sort_unstable();
    assert_eq!(got, want, "every packet once, with its exact time");
    // A classic pcap record whose original length is below its captured
    // length: written with the captured length, and counted.
    let short = tmp.path().join("short.pcap");
    let f = frame(0, 1);
    let mut bytes = PcapWriter::new(Vec::new(), 1, 65535, TsResolution::Micro)
        .unwrap()
        .finish()
        .unwrap();
    for orig in [f.len() as u32, 10, 20] {
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&(f.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&orig.to_le_bytes());
        bytes.extend_from_slice(&f);
    }
    std::fs::write(&short, bytes).unwrap();
    let out2 = tmp.path().join("out2");
    let o = split(&short, &out2, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fidelity"]["orig_len_raised"], 2);
    assert!(
        stderr(&o).contains("original length below"),
        "{}",
        stderr(&o)
    );
}
