//! Named pipes (FIFOs) as capture outputs: a reader (`tcpdump -r FIFO`,
//! `tshark -r FIFO`, an IDS in read mode) attaches whenever it wants.
//!
//! [`open_writer`] opens the write end only if a reader is there
//! (`O_NONBLOCK` open fails with `ENXIO` otherwise) and then switches the
//! descriptor to blocking writes, so a slow reader slows its queue (whose
//! loss policy then counts the drops) instead of losing bytes mid-record.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with NUL"))
}

/// Creates a FIFO at `path` (an existing FIFO is kept; anything else there
/// is an error).
pub fn create(path: &Path) -> io::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_fifo() {
            return Ok(());
        }
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a FIFO", path.display()),
        ));
    }
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mkfifo {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// The write end of the FIFO if a reader has it open, else `None` (never
/// through a symbolic link: `O_NOFOLLOW`).
pub fn open_writer(path: &Path) -> io::Result<Option<File>> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn writer_opens_only_with_a_reader_and_sees_it_leave() {
        let path = std::env::temp_dir().join(format!("symrss-fifo-{}", std::process::id()));
        create(&path).unwrap();
        create(&path).unwrap();
        assert!(open_writer(&path).unwrap().is_none(), "no reader yet");
        let p = path.clone();
        let reader = std::thread::spawn(move || {
            let mut f = File::open(&p).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            s
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut w = loop {
            if let Some(w) = open_writer(&path).unwrap() {
                break w;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the reader never came"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        w.write_all(b"hello").unwrap();
        drop(w);
        assert_eq!(reader.join().unwrap(), "hello");
        std::fs::remove_file(&path).unwrap();
        let file = std::env::temp_dir().join(format!("symrss-notfifo-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        assert!(create(&file).is_err());
        std::fs::remove_file(&file).unwrap();
    }
}
