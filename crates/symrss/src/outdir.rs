//! Where outputs may go: application names that are safe as directory and
//! interface names, output directories that hold only what this run
//! writes, no writing through symbolic links, and no input that is also
//! an output.
//!
//! Contract:
//! * An app name is 1–32 characters of `[A-Za-z0-9_-]`, starting with a
//!   letter or digit ([`check_app_name`]): never `.`, `..`, a path or an
//!   option-looking word. With a `veth` or `tap` sink, `NAME-q<i>` must also fit
//!   the kernel's interface names (IFNAMSIZ: 15 characters).
//! * `split` writes into an empty (or new) directory; `--force` removes
//!   only the files a `split` writes (`summary.json`, `NAME/q<i>.pcap`,
//!   `NAME/q<i>.lt<N>.pcap`, `NAME/q<i>.pcapng`) and names what it leaves.
//! * An app directory that is a symbolic link is refused; files are
//!   created with `O_NOFOLLOW` ([`symrss_pcap::create_output`]).
//! * An input that is (same device and inode) one of the run's outputs is
//!   refused before anything is truncated.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Failure;

/// Most queues an app may have (software steering; NICs have fewer).
pub const MAX_QUEUES: u32 = 1024;
/// Longest app name.
pub const MAX_APP_NAME: usize = 32;
/// Longest interface name the kernel takes (IFNAMSIZ − 1).
pub const MAX_IFNAME: usize = 15;

/// Checks an app name (see the module docs).
pub fn check_app_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty()
        || name.len() > MAX_APP_NAME
        || !name.chars().all(ok_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        let shown: String = name.chars().take(40).collect();
        let more = if name.chars().count() > 40 { "…" } else { "" };
        return Err(format!(
            "app name `{shown}{more}`: use 1 to {MAX_APP_NAME} letters, digits, '_' or '-', starting \
             with a letter or digit (it names a directory, files and interfaces)"
        ));
    }
    Ok(())
}

/// Checks that the interfaces `NAME-q0 … NAME-q<Q-1>` fit IFNAMSIZ.
pub fn check_interface_names(name: &str, queues: u32) -> Result<(), String> {
    let longest = format!("{name}-q{}", queues.saturating_sub(1));
    if longest.len() > MAX_IFNAME {
        return Err(format!(
            "app {name}: the interface `{longest}` is longer than the {MAX_IFNAME} characters \
             an interface name may have; use a name of at most {} characters with {queues} queues",
            MAX_IFNAME.saturating_sub(longest.len() - name.len())
        ));
    }
    Ok(())
}

/// Whether `file` (a name inside an app directory) is one `split` or a
/// pcap sink writes: `q<i>.pcap`, `q<i>.<n>.pcap`, `q<i>.lt<N>.pcap`,
/// `q<i>.pcapng`.
fn is_queue_file(file: &str) -> bool {
    let Some(rest) = file.strip_prefix('q') else {
        return false;
    };
    let Some(rest) = rest
        .strip_suffix(".pcap")
        .or_else(|| rest.strip_suffix(".pcapng"))
    else {
        return false;
    };
    let mut parts = rest.split('.');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let queue_ok = parts.next().is_some_and(digits);
    let tail_ok = parts.all(|p| digits(p) || p.strip_prefix("lt").is_some_and(digits));
    queue_ok && tail_ok
}

/// Refuses a symbolic link at `dir`, then creates it (and its parents).
pub fn real_dir(dir: &Path) -> Result<(), String> {
    if let Ok(m) = std::fs::symlink_metadata(dir)
        && m.file_type().is_symlink()
    {
        return Err(format!(
            "{}: is a symbolic link; symrss does not write through links",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// (device, inode) of every input that is a file (stdin included when it
/// is redirected from one).
fn input_ids(inputs: &[PathBuf]) -> Vec<((u64, u64), PathBuf)> {
    inputs
        .iter()
        .filter_map(|p| {
            let probe = if p.as_os_str() == "-" {
                Path::new("/dev/stdin")
            } else {
                p.as_path()
            };
            let m = std::fs::metadata(probe).ok()?;
            m.is_file().then(|| ((m.dev(), m.ino()), p.clone()))
        })
        .collect()
}

/// Refuses when `path` exists and is one of the inputs.
fn not_an_input(path: &Path, inputs: &[((u64, u64), PathBuf)]) -> Result<(), Failure> {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if let Some((_, input)) = inputs.iter().find(|(id, _)| *id == (m.dev(), m.ino())) {
        return Err(Failure::Usage(format!(
            "input {} is also an output of this run ({}): write to another directory",
            input.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Prepares `split`'s output directory for the apps named `apps` (see the
/// module docs).
pub fn prepare_split(
    root: &Path,
    apps: &[&str],
    inputs: &[PathBuf],
    force: bool,
) -> Result<(), Failure> {
    let usage = Failure::Usage;
    let ids = input_ids(inputs);
    if root.exists() && !root.is_dir() {
        return Err(usage(format!(
            "{}: exists and is not a directory",
            root.display()
        )));
    }
    let mut entries: Vec<String> = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    // No file this run may write (or remove) is an input, whether or not
    // the directory is empty (hard links elsewhere count): only existing
    // files can be, and those are the summary and the apps' queue files.
    not_an_input(&root.join("summary.json"), &ids)?;
    for name in apps {
        if let Ok(rd) = std::fs::read_dir(root.join(name)) {
            for e in rd.filter_map(Result::ok) {
                if is_queue_file(&e.file_name().to_string_lossy()) {
                    not_an_input(&e.path(), &ids)?;
                }
            }
        }
    }
    if !entries.is_empty() && !force {
        let shown: Vec<&str> = entries.iter().take(5).map(String::as_str).collect();
        let more = entries.len().saturating_sub(5);
        return Err(usage(format!(
            "{} is not empty ({}{}): split writes into an empty directory, so no stale queue \
             file of an earlier run sits beside this run's; choose a new directory, or --force \
             to remove the files split writes (summary.json, NAME/q<i>.pcap …) and keep the rest",
            root.display(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )));
    }
    let ours: HashSet<&str> = apps.iter().copied().collect();
    let mut kept = Vec::new();
    for entry in &entries {
        let path = root.join(entry);
        if entry == "summary.json" {
            std::fs::remove_file(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            continue;
        }
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !ours.contains(entry.as_str()) || !is_dir {
            kept.push(path.display().to_string());
            continue;
        }
        let rd = std::fs::read_dir(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        for e in rd.filter_map(Result::ok) {
            let file = e.file_name().to_string_lossy().into_owned();
            if is_queue_file(&file) && e.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(e.path())
                    .map_err(|err| usage(format!("{}: {err}", e.path().display())))?;
            } else {
                kept.push(e.path().display().to_string());
            }
        }
    }
    if !kept.is_empty() {
        eprintln!(
            "symrss: --force: left alone (not written by this split): {}",
            kept.join(", ")
        );
    }
    for name in apps {
        real_dir(&root.join(name)).map_err(Failure::Runtime)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_a_safe_alphabet() {
        for ok in ["ids", "rec-1", "a_b", "9", &"x".repeat(32)] {
            assert!(check_app_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-x",
            "_x",
            "a.b",
            "ü",
            " a",
            &"x".repeat(33),
        ] {
            assert!(check_app_name(bad).is_err(), "{bad}");
        }
        let long = "y".repeat(300);
        let e = check_app_name(&long).unwrap_err();
        assert!(
            e.len() < 300,
            "the message shows a prefix, not the whole name"
        );
    }

    #[test]
    fn tap_names_fit_ifnamsiz() {
        assert!(check_interface_names("suricata", 4).is_ok());
        // abcdefghijkl-q9 is 15 characters: the most that fits.
        assert!(check_interface_names("abcdefghijkl", 10).is_ok());
        assert!(check_interface_names("abcdefghijkl", 11).is_err());
        assert!(check_interface_names("abcdefghijklm", 1).is_err());
    }

    #[test]
    fn queue_files_are_recognised() {
        for ours in [
            "q0.pcap",
            "q12.pcap",
            "q3.lt113.pcap",
            "q1.4.pcap",
            "q0.pcapng",
        ] {
            assert!(is_queue_file(ours), "{ours}");
        }
        for theirs in [
            "q.pcap",
            "notes.txt",
            "q0.pcap.bak",
            "q0.ltx.pcap",
            "Q0.pcap",
            "q0",
        ] {
            assert!(!is_queue_file(theirs), "{theirs}");
        }
    }
}
