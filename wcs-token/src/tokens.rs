//! The token directory: creating, removing, looking up and listing token files, always
//! relative to an open handle on the directory and never through a symbolic link. The token
//! rules (`core::token`) and the lookup (`core::store`) are the module's own.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use wcs_token_auth_core::store::{self, DirError, Lookup};
use wcs_token_auth_core::token::{self, Token};

use crate::owner::Owner;

/// Token files are private to their owner and group (the module only looks them up).
pub const MODE: u32 = 0o640;

/// An error that makes the command fail with exit status 2.
#[derive(Debug)]
pub struct Failure(pub String);

pub struct TokenDir {
    path: PathBuf,
    fd: OwnedFd,
}

/// A directory entry, as `list` and `prune` see it.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Token {
        name: String,
        mtime: i64,
    },
    /// Its name could never be a token: the module would refuse it as malformed.
    NotAToken(Vec<u8>),
    /// A valid name, but a directory, symbolic link or other non-regular file.
    NotRegular(String),
}

impl TokenDir {
    /// Opens the directory for lookups, creation and removal (search permission suffices).
    pub fn open(path: &Path) -> Result<TokenDir, Failure> {
        let fd = store::open_dir(&c_path(path)?).map_err(|e| dir_failure(path, &e))?;
        Ok(TokenDir {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// Opens the directory for reading its entries (read permission needed).
    pub fn open_for_listing(path: &Path) -> Result<TokenDir, Failure> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = fs::open(c_path(path)?.as_c_str(), flags, Mode::empty())
            .map_err(|e| dir_failure(path, &store::dir_error(e)))?;
        Ok(TokenDir {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a fresh random token file and returns the token.
    pub fn issue(&self, owner: Option<Owner>) -> Result<String, Failure> {
        // O_EXCL makes a collision an error instead of a reuse; with 256 bits it never
        // happens, but a retry costs nothing.
        for _ in 0..3 {
            let token = random_token()?;
            match self.create(&token, owner) {
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(Failure(format!(
                        "cannot create a token in \"{}\": {}",
                        self.path.display(),
                        io::Error::from(e)
                    )))
                }
                Ok(()) => return Ok(token),
            }
        }
        Err(Failure(format!(
            "cannot create a token in \"{}\": three random names already existed",
            self.path.display()
        )))
    }

    fn create(&self, token: &str, owner: Option<Owner>) -> Result<(), Errno> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = fs::openat(&self.fd, token, flags, Mode::from_raw_mode(MODE))?;
        // The umask may have narrowed the mode (or a default ACL widened it): set it exactly.
        let finish = fs::fchmod(&file, Mode::from_raw_mode(MODE)).and_then(|()| match owner {
            Some(o) => fs::fchown(
                &file,
                o.uid.map(fs::Uid::from_raw),
                o.gid.map(fs::Gid::from_raw),
            ),
            None => Ok(()),
        });
        if let Err(e) = finish {
            // Never leave behind a token that was not issued as asked.
            let _ = fs::unlinkat(&self.fd, token, AtFlags::empty());
            return Err(e);
        }
        Ok(())
    }

    pub fn lookup(&self, token: Token<'_>) -> Result<Lookup, Failure> {
        store::lookup_in(self.fd.as_fd(), token).map_err(|e| dir_failure(&self.path, &e))
    }

    /// Removes a token file; `false` if there was no such token.
    pub fn remove(&self, token: Token<'_>) -> Result<bool, Failure> {
        if self.lookup(token)? == Lookup::NotFound {
            return Ok(false);
        }
        match fs::unlinkat(&self.fd, token.as_bytes(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Failure(format!(
                "cannot remove the token from \"{}\": {}",
                self.path.display(),
                io::Error::from(e)
            ))),
        }
    }

    /// Every entry but `.` and `..`, sorted by name.
    pub fn entries(&self) -> Result<Vec<Entry>, Failure> {
        let read_failure = |e: Errno| {
            Failure(format!(
                "cannot read token directory \"{}\": {}",
                self.path.display(),
                io::Error::from(e)
            ))
        };
        let mut dir = fs::Dir::read_from(&self.fd).map_err(read_failure)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(read_failure)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let Ok(token) = token::parse(name) else {
                out.push(Entry::NotAToken(name.to_vec()));
                continue;
            };
            // A valid token name is ASCII.
            let text = String::from_utf8_lossy(name).into_owned();
            match self.lookup(token)? {
                Lookup::Found { mtime } => out.push(Entry::Token { name: text, mtime }),
                Lookup::NotFound => {
                    // Gone since the directory was read, or not a regular file.
                    match fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
                            out.push(Entry::NotRegular(text))
                        }
                        _ => {}
                    }
                }
            }
        }
        out.sort_by(|a, b| sort_key(a).cmp(sort_key(b)));
        Ok(out)
    }
}

fn sort_key(e: &Entry) -> &[u8] {
    match e {
        Entry::Token { name, .. } | Entry::NotRegular(name) => name.as_bytes(),
        Entry::NotAToken(name) => name,
    }
}

/// 256 bits from the kernel's CSPRNG, as 43 characters of base64url.
pub fn random_token() -> Result<String, Failure> {
    loop {
        let mut bytes = [0u8; 32];
        random_bytes(&mut bytes)?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        // A leading '-' would read as an option in `wcs-token revoke TOKEN` and in most
        // shell tools; redrawing costs 0.02 bits of the 256.
        if !token.starts_with('-') && token::parse(token.as_bytes()).is_ok() {
            return Ok(token);
        }
    }
}

/// Fills `bytes` from the kernel's CSPRNG (getrandom(2), blocking until it is seeded).
pub fn random_bytes(bytes: &mut [u8]) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => continue,
            Err(e) => {
                return Err(Failure(format!(
                    "cannot read random bytes: {}",
                    io::Error::from(e)
                )))
            }
        }
    }
    Ok(())
}

fn c_path(path: &Path) -> Result<CString, Failure> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Failure(format!("invalid directory \"{}\"", path.display())))
}

fn dir_failure(path: &Path, e: &DirError) -> Failure {
    Failure(match e {
        DirError::Missing(err) => format!(
            "token directory \"{}\" does not exist: {err}",
            path.display()
        ),
        DirError::Failed(err) => {
            format!("cannot use token directory \"{}\": {err}", path.display())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn random_tokens_are_valid_distinct_and_43_chars() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.len(), 43);
            assert_eq!(URL_SAFE_NO_PAD.decode(t).map(|b| b.len()), Ok(32), "{t}");
            assert!(token::parse(t.as_bytes()).is_ok());
            assert!(!t.starts_with('-') && !t.starts_with('.'));
        }
    }

    #[test]
    fn issue_creates_a_0640_regular_file_despite_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let dir = TokenDir::open(d.path()).unwrap();
        let t = dir.issue(None).unwrap();
        let meta = std::fs::symlink_metadata(d.path().join(&t)).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, MODE);
        assert!(matches!(
            dir.lookup(token::parse(t.as_bytes()).unwrap()),
            Ok(Lookup::Found { .. })
        ));
    }

    #[test]
    fn create_never_follows_or_replaces() {
        let d = tempfile::tempdir().unwrap();
        let dir = TokenDir::open(d.path()).unwrap();
        std::fs::write(d.path().join("taken"), "x").unwrap();
        symlink("/nonexistent-target", d.path().join("link")).unwrap();
        assert_eq!(dir.create("taken", None), Err(Errno::EXIST));
        assert_eq!(dir.create("link", None), Err(Errno::EXIST));
        assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"x");
    }

    #[test]
    fn entries_sort_tokens_from_strangers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b-token"), "").unwrap();
        std::fs::write(d.path().join("a_token"), "").unwrap();
        std::fs::write(d.path().join(".hidden"), "").unwrap();
        std::fs::write(d.path().join("with space"), "").unwrap();
        std::fs::create_dir(d.path().join("subdir")).unwrap();
        symlink(d.path().join("a_token"), d.path().join("link")).unwrap();
        let dir = TokenDir::open_for_listing(d.path()).unwrap();
        let entries = dir.entries().unwrap();
        let tokens: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Token { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(tokens, ["a_token", "b-token"]);
        assert!(entries.contains(&Entry::NotAToken(b".hidden".to_vec())));
        assert!(entries.contains(&Entry::NotAToken(b"with space".to_vec())));
        assert!(entries.contains(&Entry::NotRegular("subdir".into())));
        assert!(entries.contains(&Entry::NotRegular("link".into())));
    }

    #[test]
    fn remove_only_removes_regular_token_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("tok"), "").unwrap();
        std::fs::create_dir(d.path().join("adir")).unwrap();
        let dir = TokenDir::open(d.path()).unwrap();
        let tok = |s: &'static str| token::parse(s.as_bytes()).unwrap();
        assert!(dir.remove(tok("tok")).unwrap());
        assert!(!dir.remove(tok("tok")).unwrap());
        assert!(!dir.remove(tok("adir")).unwrap());
        assert!(d.path().join("adir").is_dir());
    }

    #[test]
    fn a_missing_directory_says_so() {
        let d = tempfile::tempdir().unwrap();
        let Err(Failure(msg)) = TokenDir::open(&d.path().join("nope")) else {
            panic!("opened a missing directory");
        };
        assert!(msg.contains("does not exist"), "{msg}");
    }
}
