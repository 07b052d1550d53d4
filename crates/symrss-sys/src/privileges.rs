//! Dropping root after setup (`--user`): once the capture sockets, TAPs
//! and output files are open, the daemon runs as an unprivileged user, as
//! tcpdump's `-Z` does. Supplementary groups are cleared, then the group
//! and the user are set (in that order: after `setuid` the process could
//! no longer change its group).

use std::ffi::CString;
use std::io;

/// A user's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserIds {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Looks up `name` in the user database.
pub fn lookup(name: &str) -> io::Result<UserIds> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name with NUL"))?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: `passwd` is plain data (all-zero valid); getpwnam_r writes
    // into `pwd` and `buf` (whose length is passed) and sets `result` to
    // `&pwd` or null.
    let (rc, found, ids) = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        (
            rc,
            !result.is_null(),
            UserIds {
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
            },
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if !found {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user named `{name}`"),
        ));
    }
    Ok(ids)
}

/// Gives `path` to the user (so it can rotate files in a directory).
pub fn chown(path: &std::path::Path, ids: UserIds) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid))
}

/// Becomes the user for good (all threads: glibc applies set*id process-wide).
pub fn drop_to(ids: UserIds) -> io::Result<()> {
    // SAFETY: setgroups with an empty list, then setgid/setuid with plain
    // ids; each result is checked.
    let rc = unsafe {
        if libc::setgroups(0, std::ptr::null()) < 0 || libc::setgid(ids.gid) < 0 {
            -1
        } else {
            libc::setuid(ids.uid)
        }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("dropping privileges: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_rejects_unknown_users() {
        assert_eq!(lookup("root").unwrap(), UserIds { uid: 0, gid: 0 });
        let e = lookup("no-such-user-symrss").unwrap_err();
        assert!(e.to_string().contains("no user named"), "{e}");
    }
}
