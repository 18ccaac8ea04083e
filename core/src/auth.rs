//! The access decision, from the request's headers to an [`Outcome`].
//!
//! Order matters: the Origin is checked first (it costs no system call), then the cookie and
//! the token's shape (a malformed token never reaches the filesystem), then the cache, and
//! only then the token directory.

use std::ffi::CStr;

use crate::cache::{Entry, TokenCache};
use crate::cookie;
use crate::expiry;
use crate::origin::{OriginHeader, OriginPolicy};
use crate::store::{self, DirError, Lookup};
use crate::token::{self, TokenError};

/// The value of `$wcs_token_auth_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Allowed,
    NoToken,
    MalformedToken,
    UnknownToken,
    ExpiredToken,
    OriginDenied,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Allowed => "allowed",
            Status::NoToken => "no_token",
            Status::MalformedToken => "malformed_token",
            Status::UnknownToken => "unknown_token",
            Status::ExpiredToken => "expired_token",
            Status::OriginDenied => "origin_denied",
            Status::Error => "error",
        }
    }
}

/// A location's rules, as configured.
#[derive(Debug)]
pub struct Policy<'a> {
    /// The token directory, absolute.
    pub dir: &'a CStr,
    /// Identifies `dir` in the shared cache.
    pub dir_id: u32,
    pub cookie_name: &'a [u8],
    pub origins: &'a OriginPolicy,
    pub require_origin: bool,
    pub max_age_secs: Option<u64>,
}

/// What the decision needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeaders<'a, C> {
    pub origin: OriginHeader<'a>,
    pub host: Option<&'a [u8]>,
    /// The values of all `Cookie` headers, in order.
    pub cookies: C,
}

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic milliseconds, for the cache.
    pub now_ms: u64,
    /// Wall-clock seconds since the epoch, for `max_age`.
    pub unix_secs: i64,
}

#[derive(Debug)]
pub enum Outcome {
    Allowed,
    /// Refused because of what the client sent (403).
    Refused(Status),
    /// The token directory is unusable; [`DirError::Missing`] is 403, [`DirError::Failed`] 500.
    DirError(DirError),
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Allowed => Status::Allowed,
            Outcome::Refused(s) => *s,
            Outcome::DirError(_) => Status::Error,
        }
    }
}

pub fn authorize<'a, C>(
    policy: &Policy<'_>,
    req: RequestHeaders<'a, C>,
    cache: &mut TokenCache,
    clock: Clock,
) -> Outcome
where
    C: IntoIterator<Item = &'a [u8]>,
{
    if !policy
        .origins
        .allows(req.origin, req.host, policy.require_origin)
    {
        return Outcome::Refused(Status::OriginDenied);
    }
    let value = cookie::find(req.cookies, policy.cookie_name).unwrap_or_default();
    let token = match token::parse(value) {
        Ok(t) => t,
        Err(TokenError::Empty) => return Outcome::Refused(Status::NoToken),
        Err(TokenError::Malformed) => return Outcome::Refused(Status::MalformedToken),
    };
    let fresh = |mtime: i64| expiry::is_fresh(mtime, clock.unix_secs, policy.max_age_secs);

    let key = token.as_bytes();
    if let Some(entry) = cache.get(policy.dir_id, key, clock.now_ms) {
        if fresh(entry.mtime) {
            return Outcome::Allowed;
        }
        // Expired by the cached mtime; the file may have been touched since, so look again.
    }
    match store::lookup(policy.dir, token) {
        Ok(Lookup::Found { mtime }) if fresh(mtime) => {
            cache.insert(policy.dir_id, key, Entry { mtime }, clock.now_ms);
            Outcome::Allowed
        }
        Ok(Lookup::Found { .. }) => {
            cache.remove(policy.dir_id, key);
            Outcome::Refused(Status::ExpiredToken)
        }
        Ok(Lookup::NotFound) => {
            cache.remove(policy.dir_id, key);
            Outcome::Refused(Status::UnknownToken)
        }
        Err(e) => Outcome::DirError(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    struct Fixture {
        dir: tempfile::TempDir,
        cdir: CString,
        origins: OriginPolicy,
        cache: TokenCache,
        max_age: Option<u64>,
        require_origin: bool,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let cdir = CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            Fixture {
                dir,
                cdir,
                origins: OriginPolicy::SameOrigin,
                cache: TokenCache::new(100, 1000),
                max_age: None,
                require_origin: false,
            }
        }

        fn ask(&mut self, origin: OriginHeader<'_>, cookies: &[&[u8]], now_ms: u64) -> Outcome {
            let policy = Policy {
                dir: &self.cdir,
                dir_id: 0,
                cookie_name: b"AUTH",
                origins: &self.origins,
                require_origin: self.require_origin,
                max_age_secs: self.max_age,
            };
            let req = RequestHeaders {
                origin,
                host: Some(b"wcs.example.com"),
                cookies: cookies.iter().copied(),
            };
            let unix_secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            authorize(&policy, req, &mut self.cache, Clock { now_ms, unix_secs })
        }

        fn status(&mut self, cookies: &[&[u8]], now_ms: u64) -> Status {
            self.ask(OriginHeader::Absent, cookies, now_ms).status()
        }
    }

    #[test]
    fn statuses_for_each_kind_of_token() {
        let mut f = Fixture::new();
        fs::write(f.dir.path().join("good"), "").unwrap();
        assert_eq!(f.status(&[], 0), Status::NoToken);
        assert_eq!(f.status(&[b"AUTH="], 0), Status::NoToken);
        assert_eq!(f.status(&[b"other=good"], 0), Status::NoToken);
        assert_eq!(
            f.status(&[b"AUTH=../../../../etc/passwd"], 0),
            Status::MalformedToken
        );
        assert_eq!(f.status(&[b"AUTH=nope"], 0), Status::UnknownToken);
        assert_eq!(f.status(&[b"a=1", b"AUTH=good"], 0), Status::Allowed);
    }

    #[test]
    fn origin_is_checked_before_the_token() {
        let mut f = Fixture::new();
        let out = f.ask(
            OriginHeader::One(b"https://evil.example"),
            &[b"AUTH=../x"],
            0,
        );
        assert_eq!(out.status(), Status::OriginDenied);
        f.require_origin = true;
        assert_eq!(f.status(&[b"AUTH=x"], 0), Status::OriginDenied);
        let out = f.ask(
            OriginHeader::One(b"https://wcs.example.com"),
            &[b"AUTH=x"],
            0,
        );
        assert_eq!(out.status(), Status::UnknownToken);
    }

    #[test]
    fn revocation_takes_effect_within_the_ttl_and_new_tokens_at_once() {
        let mut f = Fixture::new();
        let file = f.dir.path().join("tok");
        assert_eq!(f.status(&[b"AUTH=tok"], 0), Status::UnknownToken);
        fs::write(&file, "").unwrap();
        assert_eq!(
            f.status(&[b"AUTH=tok"], 1),
            Status::Allowed,
            "no cached 'unknown'"
        );
        fs::remove_file(&file).unwrap();
        assert_eq!(f.status(&[b"AUTH=tok"], 500), Status::Allowed, "cached");
        assert_eq!(
            f.status(&[b"AUTH=tok"], 1001),
            Status::UnknownToken,
            "ttl over"
        );
    }

    #[test]
    fn max_age_expires_and_touch_renews_even_when_cached() {
        let mut f = Fixture::new();
        f.max_age = Some(60);
        let file = f.dir.path().join("tok");
        fs::write(&file, "").unwrap();
        assert_eq!(f.status(&[b"AUTH=tok"], 0), Status::Allowed);
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        f.cache = TokenCache::new(100, 1000);
        assert_eq!(f.status(&[b"AUTH=tok"], 0), Status::ExpiredToken);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        assert_eq!(f.status(&[b"AUTH=tok"], 1), Status::Allowed, "touch renews");
    }

    #[test]
    fn directory_problems_are_errors() {
        let mut f = Fixture::new();
        f.cdir = CString::new(f.dir.path().join("gone").as_os_str().as_encoded_bytes()).unwrap();
        let out = f.ask(OriginHeader::Absent, &[b"AUTH=tok"], 0);
        assert!(matches!(out, Outcome::DirError(DirError::Missing(_))));
        assert_eq!(out.status(), Status::Error);
    }
}
