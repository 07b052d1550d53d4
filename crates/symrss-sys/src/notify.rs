//! The systemd service notification protocol (`sd_notify(3)`), spoken
//! directly: a datagram of `KEY=VALUE` lines to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). No
//! libsystemd: the protocol is one `sendto(2)`.
//!
//! Contract: [`Notifier::from_env`] is `None` when not started by systemd
//! with `Type=notify` (no `$NOTIFY_SOCKET`): every call is then a no-op.
//! [`Notifier::watchdog_interval`] is half of `$WATCHDOG_USEC` when the
//! watchdog is on for this process (`$WATCHDOG_PID` unset or ours), the
//! period at which `WATCHDOG=1` must be sent, as `sd_watchdog_enabled(3)`
//! advises. A failed send is ignored (systemd is not there to hear it).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for, if any.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(
            std::env::var_os("NOTIFY_SOCKET")?.to_str()?,
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        )
    }

    fn from_vars(path: &str, usec: Option<&str>, pid: Option<&str>) -> Option<Self> {
        let to = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            }
            None => SocketAddr::from_pathname(path).ok()?,
        };
        let ours = pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        Some(Self {
            socket: UnixDatagram::unbound().ok()?,
            to,
            watchdog,
        })
    }

    /// How often to send [`Notifier::watchdog`], if the watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (`KEY=VALUE` lines).
    pub fn send(&self, state: &str) {
        let _ = self.socket.send_to_addr(state.as_bytes(), &self.to);
    }

    /// The service is up (`READY=1`) with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A status line (`STATUS=`), shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// The main loop is alive (`WATCHDOG=1`).
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// The service is stopping (`STOPPING=1`).
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

/// A status must be one line: newlines would start new assignments.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket_named_by_the_environment() {
        let dir = std::env::temp_dir().join(format!("symrss-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_vars(path.to_str().unwrap(), Some("2000000"), None).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        n.ready("capturing on eth0\nsecond line");
        n.watchdog();
        let mut buf = [0u8; 256];
        let got = |buf: &mut [u8]| {
            let k = listener.recv(buf).unwrap();
            String::from_utf8_lossy(&buf[..k]).into_owned()
        };
        assert_eq!(
            got(&mut buf),
            "READY=1\nSTATUS=capturing on eth0 second line"
        );
        assert_eq!(got(&mut buf), "WATCHDOG=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_watchdog_is_only_ours_when_its_pid_is() {
        let other = (std::process::id() + 1).to_string();
        let n = Notifier::from_vars("/nonexistent/notify", Some("1000"), Some(&other)).unwrap();
        assert_eq!(n.watchdog_interval(), None);
        let mine = std::process::id().to_string();
        let n = Notifier::from_vars("@symrss-test", Some("1000"), Some(&mine)).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_micros(500)));
        assert!(
            Notifier::from_vars("/x", Some("0"), None)
                .unwrap()
                .watchdog
                .is_none()
        );
        // Sending to nobody is not an error.
        n.watchdog();
    }
}
