//! Test-only helpers shared by the workspace's test suites.
//!
//! The shared test data lives beside the repository (`../shared`) or at
//! `$SYMRSS_SHARED`; the capture corpus may be moved with `$SYMRSS_CORPUS`.
//! When something a test needs is missing, [`prerequisite`] prints
//! `skipped: <reason>` and the test returns, except under CI (`CI=true`),
//! where a missing prerequisite fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Under CI a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Reports a missing prerequisite: panics under CI, else prints the skip
/// reason. Returns `None` so callers can `let Some(x) = ... else { return }`.
pub fn prerequisite<T>(found: Option<T>, reason: impl FnOnce() -> String) -> Option<T> {
    if found.is_none() {
        let msg = format!("skipped: {}", reason());
        assert!(!in_ci(), "{msg} (CI=true requires it)");
        eprintln!("{msg}");
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

/// Whether a peer tool runs (`tool --version`); skip/fail if not.
pub fn tool(name: &str) -> Option<PathBuf> {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    prerequisite(ok.then(|| PathBuf::from(name)), || {
        format!("{name} not installed (apt-get install it; .ci/run does)")
    })
}
