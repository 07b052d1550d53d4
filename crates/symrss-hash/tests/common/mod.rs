//! Locating the shared test data (`../shared` beside the repository, or
//! `$SYMRSS_SHARED`). Missing data skips with a printed reason, except under
//! CI (`CI=true`), where it fails.

use std::path::PathBuf;

pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SYMRSS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = dir.join(what);
    if path.exists() {
        return Some(path);
    }
    let msg = format!("skipped: {} not found (set SYMRSS_SHARED)", path.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true requires it");
    }
    eprintln!("{msg}");
    None
}
