//! Looking a token up in the token directory.
//!
//! The token is resolved relative to a handle on the directory (`openat`/`fstatat`), never
//! pasted into a path string, and a symbolic link is never followed: only a regular file
//! whose name is exactly the token counts.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};

use crate::token::Token;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A regular file; its modification time in seconds since the epoch.
    Found { mtime: i64 },
    /// No such file, or not a regular file (directory, symlink, socket...).
    NotFound,
}

/// Why the directory itself could not be consulted.
#[derive(Debug)]
pub enum DirError {
    /// The directory does not exist (ENOENT, ENOTDIR): a configuration problem, refused with 403.
    Missing(io::Error),
    /// It exists but cannot be read (EACCES, EIO...): a broken server, 500.
    Failed(io::Error),
}

impl DirError {
    pub fn io_error(&self) -> &io::Error {
        match self {
            DirError::Missing(e) | DirError::Failed(e) => e,
        }
    }
}

pub fn lookup(dir: &CStr, token: Token<'_>) -> Result<Lookup, DirError> {
    lookup_in(open_dir(dir)?.as_fd(), token)
}

/// Opens the token directory for lookups (`O_PATH`: only search permission is needed, as
/// for `-f dir/token`).
pub fn open_dir(dir: &CStr) -> Result<OwnedFd, DirError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    fs::open(dir, flags, Mode::empty()).map_err(dir_error)
}

/// Classifies an error opening the token directory.
pub fn dir_error(e: rustix::io::Errno) -> DirError {
    if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR {
        DirError::Missing(e.into())
    } else {
        DirError::Failed(e.into())
    }
}

/// Looks `token` up in an already open token directory.
pub fn lookup_in(dir: BorrowedFd<'_>, token: Token<'_>) -> Result<Lookup, DirError> {
    match fs::statat(dir, token.as_bytes(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
            Ok(Lookup::Found { mtime: st.st_mtime })
        }
        Ok(_) => Ok(Lookup::NotFound),
        Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR => {
            Ok(Lookup::NotFound)
        }
        Err(e) => Err(DirError::Failed(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token;
    use std::ffi::CString;
    use std::fs as stdfs;
    use std::os::unix::fs::symlink;

    fn cdir(p: &std::path::Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    fn tok(s: &str) -> Token<'_> {
        token::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn finds_regular_files_only() {
        let d = tempfile::tempdir().unwrap();
        stdfs::write(d.path().join("good"), "").unwrap();
        stdfs::create_dir(d.path().join("adir")).unwrap();
        symlink(d.path().join("good"), d.path().join("link")).unwrap();
        let dir = cdir(d.path());
        assert!(matches!(
            lookup(&dir, tok("good")),
            Ok(Lookup::Found { .. })
        ));
        assert!(matches!(lookup(&dir, tok("missing")), Ok(Lookup::NotFound)));
        assert!(matches!(lookup(&dir, tok("adir")), Ok(Lookup::NotFound)));
        assert!(matches!(lookup(&dir, tok("link")), Ok(Lookup::NotFound)));
    }

    #[test]
    fn reports_the_file_mtime() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t");
        stdfs::write(&f, "").unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        stdfs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(when)
            .unwrap();
        assert_eq!(
            lookup(&cdir(d.path()), tok("t")).unwrap(),
            Lookup::Found { mtime: 1_000_000 }
        );
    }

    #[test]
    fn a_missing_directory_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let gone = cdir(&d.path().join("nope"));
        assert!(matches!(lookup(&gone, tok("t")), Err(DirError::Missing(_))));
        stdfs::write(d.path().join("file"), "").unwrap();
        let not_dir = cdir(&d.path().join("file"));
        assert!(matches!(
            lookup(&not_dir, tok("t")),
            Err(DirError::Missing(_))
        ));
    }
}
