//! Test-only helpers shared by the workspace's test suites.
//!
//! The shared test data lives beside the repository (`../shared`) or at
//! `$SYMRSS_SHARED`; the capture corpus may be moved with `$SYMRSS_CORPUS`.
//! When something a test needs is missing, [`prerequisite`] prints
//! `SKIPPED <test>: <reason>` (visible in the normal `cargo test` output)
//! and the test returns, except under CI (`CI=true`), where a missing
//! prerequisite fails the test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command};

/// Under CI a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Reports a missing prerequisite: panics under CI, else prints the skip
/// reason. Returns `None` so callers can `let Some(x) = ... else { return }`.
///
/// The skip line is written to the process's stderr directly, not through
/// `eprintln!`, which the test harness captures and hides for passing
/// tests: a skipped test shows in the normal `cargo test` output as
/// `SKIPPED <test>: <reason>`, so a green run with nothing run is visible.
pub fn prerequisite<T>(found: Option<T>, reason: impl FnOnce() -> String) -> Option<T> {
    if found.is_none() {
        let msg = reason();
        assert!(!in_ci(), "skipped: {msg} (CI=true requires it)");
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "SKIPPED {test}: {msg}");
    }
    found
}

fn shared_root() -> PathBuf {
    std::env::var_os("SYMRSS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// `shared/<what>` if it exists (skip/fail otherwise).
pub fn shared(what: &str) -> Option<PathBuf> {
    let path = shared_root().join(what);
    let found = path.exists().then_some(path.clone());
    prerequisite(found, || {
        format!("{} not found (set SYMRSS_SHARED)", path.display())
    })
}

/// The capture corpus folder.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SYMRSS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_root().join("pcaps"));
    let found = dir.join("MANIFEST.tsv").exists().then_some(dir.clone());
    prerequisite(found, || {
        format!("corpus not found at {} (set SYMRSS_CORPUS)", dir.display())
    })
}

/// One row of `MANIFEST.tsv`.
#[derive(Debug, Clone)]
pub struct CorpusEntry {
    /// Full path of the capture.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// Complete packet records in the file.
    pub packets: u64,
    /// `features_verified` column (e.g. `ipv4=449 udp=464`).
    pub features: String,
}

impl CorpusEntry {
    /// Count of a feature in `features_verified`, 0 if absent.
    pub fn feature(&self, name: &str) -> u64 {
        self.features
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the manifest marks the file as damaged.
    pub fn damaged(&self) -> bool {
        self.features.contains("FILE-ERROR")
    }
}

/// Every capture listed in the corpus manifest.
pub fn corpus() -> Option<Vec<CorpusEntry>> {
    let dir = corpus_dir()?;
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("read MANIFEST.tsv");
    let entries = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            CorpusEntry {
                path: dir.join(cols[0]),
                name: cols[0].to_string(),
                packets: cols[5].parse().expect("packets column"),
                features: cols[7].to_string(),
            }
        })
        .collect();
    Some(entries)
}

/// Whether a peer tool runs (`tool --version`, or `tool -V` as tmux and
/// iproute2 spell it); skip/fail if not.
pub fn tool(name: &str) -> Option<PathBuf> {
    let ok = ["--version", "-V"].iter().any(|flag| {
        Command::new(name)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    prerequisite(ok.then(|| PathBuf::from(name)), || {
        format!("{name} not installed (apt-get install it; .ci/run does)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a test that mounts (a small tmpfs for a full disk) can run:
/// root; skip/fail if not.
pub fn mount_rights() -> Option<()> {
    prerequisite(is_root().then_some(()), || {
        "this test mounts a small tmpfs and needs root".into()
    })
}

/// Whether live network tests can run: root (for namespaces, veth pairs and
/// AF_PACKET) and iproute2's `ip`; skip/fail if not.
pub fn live_network() -> Option<()> {
    prerequisite(is_root().then_some(()), || {
        "live network test needs root (network namespaces, veth, AF_PACKET)".into()
    })?;
    // iproute2's `ip` has `-V`, not `--version`.
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    prerequisite(ip.then_some(()), || {
        "iproute2 (`ip`) not installed (.ci/run installs it)".into()
    })
}

/// A network namespace made for one test and deleted (with its
/// interfaces) when dropped. Names are unique per process and call.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `symrss-<tag>-<pid>-<n>` with IPv6 disabled (no router
    /// solicitations or DAD packets on its links: tests count packets).
    pub fn create(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "symrss-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        run(ns.exec("sysctl").args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair `a` (in `ns_a`) – `b` (in `ns_b`), each with `queues` RX
/// and TX queues, both up, no addresses, MTU 9000 (replayed traces may
/// hold frames larger than 1514 bytes).
pub fn veth_pair(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str, queues: u32) {
    let q = queues.to_string();
    run(Command::new("ip").args([
        "link",
        "add",
        a,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        ns_a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        ns_b.name(),
    ]));
    run(ns_a
        .exec("ip")
        .args(["link", "set", a, "mtu", "9000", "up"]));
    run(ns_b
        .exec("ip")
        .args(["link", "set", b, "mtu", "9000", "up"]));
}

/// Takes a spawned daemon's piped stderr and waits for its first line,
/// which must contain `ready` (what it prints once it is set up); returns
/// the reader for the rest.
pub fn await_ready(child: &mut Child, ready: &str) -> BufReader<ChildStderr> {
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains(ready),
        "expected `{ready}` first, got: {line}"
    );
    stderr
}

/// Runs a setup command and panics with its output if it fails.
pub fn run(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh directory under the system temp dir, removed (with its
/// contents) when dropped. Names are unique per process and call.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `symrss-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "symrss-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `ready` every 20 ms until it holds; panics naming `what` after
/// 60 s (a bounded wait on a condition, never a fixed sleep).
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 60 s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether process `pid` reads the FIFO `path`: has it open (its
/// `/proc/PID/fd` links), or is blocked opening a FIFO until a writer
/// comes (`/proc/PID/wchan` is the kernel's `wait_for_partner`; a writer
/// then finds it as a reader).
pub fn reads_fifo(pid: u32, path: &Path) -> bool {
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
    });
    open || std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|w| w.trim() == "wait_for_partner")
}
