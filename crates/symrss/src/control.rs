//! The control socket of a running `capture`, and its client (`symrss
//! stats`, `symrss control`).
//!
//! Protocol: a Unix stream socket (default `/run/symrss/<name>.sock`, mode
//! 0660, owned by `--user` when given). A client sends one command line —
//! `stats`, `rotate` or `stop` — and reads one JSON document until the
//! server closes: for `stats` the capture's stats document (the same as
//! `--stats-json`, at most a second old); for `rotate` and `stop` (what
//! SIGHUP and SIGTERM do) `{"ok": true}`; for anything else `{"error":
//! "..."}`. A client that sends nothing or reads nothing is dropped after
//! a second, so it holds up no other client.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where control sockets live by default.
pub const DIR: &str = "/run/symrss";
/// How long a client may take to send its command or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// The default socket of a capture: `DIR/<config file stem>.sock` (a
/// service instance: `symrss@sensor` reads `sensor.toml`), or
/// `DIR/capture-<pid>.sock` without a config file (captures started by
/// hand do not collide).
pub fn default_path(config: Option<&Path>) -> PathBuf {
    match config.and_then(|c| c.file_stem()).and_then(|s| s.to_str()) {
        Some(stem) => Path::new(DIR).join(format!("{stem}.sock")),
        None => Path::new(DIR).join(format!("capture-{}.sock", std::process::id())),
    }
}

/// A served control socket; the file goes when this is dropped (if the
/// process still may remove it).
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `state` (the latest stats document) on `path` from a thread of
/// its own. A socket file left by a capture that is gone is replaced; one
/// a running capture answers on is an error. `owner`: who may use it
/// (uid, gid) besides root.
pub fn serve(
    path: &Path,
    state: Arc<Mutex<String>>,
    owner: Option<(u32, u32)>,
) -> Result<Server, String> {
    let shown = path.display();
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("control socket {shown}: {e}"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {shown}: another capture is serving it (give this one --control PATH)"
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("control socket {shown}: {e}"))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("control socket {shown}: {e}"))?;
    let server = Server {
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("control socket {shown}: {e}"))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("control socket {shown}: {e}"))?;
    }
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &state);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(server)
}

/// Reads one command from `stream` and answers it.
fn answer(mut stream: UnixStream, state: &Mutex<String>) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let _ = BufReader::new((&stream).take(256)).read_line(&mut line);
    let reply = match line.trim() {
        "stats" => state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "rotate" => {
            symrss_sys::signals::request_rotate();
            r#"{"ok": true}"#.to_string()
        }
        "stop" => {
            symrss_sys::signals::request_stop();
            r#"{"ok": true}"#.to_string()
        }
        other => serde_json::json!({
            "error": format!("unknown command `{other}`: the commands are stats, rotate, stop"),
        })
        .to_string(),
    };
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(b"\n");
}

/// Sends `command` to the capture at `path` and returns its answer.
pub fn request(path: &Path, command: &str) -> Result<serde_json::Value, String> {
    let shown = path.display();
    let mut s = UnixStream::connect(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                " (is a capture running? it serves this socket, or give --socket)"
            }
            std::io::ErrorKind::PermissionDenied => " (run as root or as the capture's --user)",
            std::io::ErrorKind::ConnectionRefused => " (the capture that served it is gone)",
            _ => "",
        };
        format!("{shown}: {e}{hint}")
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: not a stats document: {e}"))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("{shown}: {e}"));
    }
    Ok(v)
}

/// The socket to talk to: `given`, else the only one in [`DIR`] a capture
/// answers on (files left by captures that are gone are skipped).
pub fn find(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .filter(|p| UnixStream::connect(p).is_ok())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        0 => Err(format!(
            "no control socket in {DIR}: is a capture running? (or give --socket PATH)"
        )),
        1 => Ok(found.remove(0)),
        _ => Err(format!(
            "several captures serve sockets in {DIR}: {}; pick one with --socket",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_socket_answers_stats_and_refuses_unknown_commands() {
        let dir = std::env::temp_dir().join(format!("symrss-control-{}", std::process::id()));
        let path = dir.join("sub/test.sock");
        let state = Arc::new(Mutex::new(r#"{"captured": 7}"#.to_string()));
        let server = serve(&path, Arc::clone(&state), None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert_eq!(request(&path, "stats").unwrap()["captured"], 7);
        *state.lock().unwrap() = r#"{"captured": 9}"#.to_string();
        assert_eq!(request(&path, "stats").unwrap()["captured"], 9);
        let e = request(&path, "reboot").unwrap_err();
        assert!(e.contains("unknown command `reboot`"), "{e}");
        // A second server on a live socket is refused; a stale file is not.
        let e = serve(&path, Arc::clone(&state), None).unwrap_err();
        assert!(e.contains("another capture is serving it"), "{e}");
        assert_eq!(find(Some(&path)).unwrap(), path);
        drop(server);
        assert!(!path.exists(), "removed with the server");
        std::fs::write(&path, "").unwrap();
        let again = serve(&path, state, None).unwrap();
        assert_eq!(request(&path, "stats").unwrap()["captured"], 9);
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_default_socket_is_named_after_the_config_file() {
        assert_eq!(
            default_path(Some(Path::new("/etc/symrss/sensor.toml"))),
            Path::new("/run/symrss/sensor.sock")
        );
        assert_eq!(
            default_path(None),
            Path::new(&format!("/run/symrss/capture-{}.sock", std::process::id()))
        );
        let e = request(Path::new("/nonexistent/x.sock"), "stats").unwrap_err();
        assert!(e.contains("is a capture running?"), "{e}");
    }
}
