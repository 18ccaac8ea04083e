//! The access decision, from the request's headers to the granted token or a [`Refusal`].
//!
//! Order matters: the Origin is checked first (it costs no system call), then the cookie and
//! the token's shape (a malformed token never reaches the filesystem), then the cache, and
//! only then the token directory.

use std::ffi::{CStr, CString};
use std::fmt;

use crate::cache::{Entry, TokenCache};
use crate::cookie;
use crate::expiry;
use crate::origin::{OriginHeader, OriginPolicy, ServedHost};
use crate::store::{self, DirError, Lookup};
use crate::token::{self, Token, TokenError};

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
    /// An allowed request the module closed because its token file was removed (or its
    /// directory was).
    SessionRevoked,
    /// An allowed request the module closed because its token outlived `max_age`.
    SessionExpired,
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
            Status::SessionRevoked => "session_revoked",
            Status::SessionExpired => "session_expired",
        }
    }
}

/// A location's rules, built once when the configuration is merged.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The token directory, absolute.
    pub dir: CString,
    /// Identifies `dir` in the shared cache.
    pub dir_id: u32,
    pub cookie_name: Vec<u8>,
    pub origins: OriginPolicy,
    pub require_origin: bool,
    pub max_age_secs: Option<u64>,
}

/// What the decision needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeaders<'a, C> {
    pub origin: OriginHeader<'a>,
    /// The host nginx serves the request for; `None` when the client named none (HTTP/1.0
    /// without `Host`, HTTP/0.9).
    pub host: Option<ServedHost<'a>>,
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

/// Why a request is not let through. `Display` gives the error-log line; the token itself
/// never appears in it.
#[derive(Debug)]
pub enum Refusal<'a> {
    /// The Origin rules refuse what the client sent.
    Origin(OriginHeader<'a>),
    /// The cookie (named here) holds no token.
    NoToken(&'a [u8]),
    MalformedToken(&'a [u8]),
    UnknownToken(&'a [u8]),
    ExpiredToken(&'a [u8]),
    /// The token directory (named here) is unusable: [`DirError::Missing`] is the operator's
    /// mistake, [`DirError::Failed`] a broken server.
    Dir(&'a CStr, DirError),
}

impl Refusal<'_> {
    pub fn status(&self) -> Status {
        match self {
            Refusal::Origin(_) => Status::OriginDenied,
            Refusal::NoToken(_) => Status::NoToken,
            Refusal::MalformedToken(_) => Status::MalformedToken,
            Refusal::UnknownToken(_) => Status::UnknownToken,
            Refusal::ExpiredToken(_) => Status::ExpiredToken,
            Refusal::Dir(..) => Status::Error,
        }
    }

    /// The server, not the client, is at fault: 500 and a `crit` line rather than 403.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Refusal::Dir(_, DirError::Failed(_)))
    }

    /// The system error behind the refusal, for nginx to append to the log line.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Refusal::Dir(_, e) => e.io_error().raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most this much of a client's Origin is logged.
        const SHOWN: usize = 256;
        f.write_str("wcs_token_auth: ")?;
        match self {
            Refusal::Origin(OriginHeader::Absent) => f.write_str("no Origin header"),
            Refusal::Origin(OriginHeader::Several) => f.write_str("several Origin headers"),
            Refusal::Origin(OriginHeader::One(v)) => {
                let shown = v.get(..SHOWN).unwrap_or(v).escape_ascii();
                write!(f, "origin \"{shown}\" is not allowed")
            }
            Refusal::NoToken(c) => write!(f, "no token in cookie \"{}\"", c.escape_ascii()),
            Refusal::MalformedToken(c) => {
                write!(f, "malformed token in cookie \"{}\"", c.escape_ascii())
            }
            Refusal::UnknownToken(c) => {
                write!(f, "unknown token in cookie \"{}\"", c.escape_ascii())
            }
            Refusal::ExpiredToken(c) => {
                write!(f, "expired token in cookie \"{}\"", c.escape_ascii())
            }
            Refusal::Dir(dir, DirError::Missing(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "token directory \"{dir}\" does not exist")
            }
            Refusal::Dir(dir, DirError::Failed(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "cannot read token directory \"{dir}\"")
            }
        }
    }
}

/// The value of `$wcs_token_auth_status` for a decision.
pub fn status<T>(decision: &Result<T, Refusal<'_>>) -> Status {
    decision
        .as_ref()
        .map_or_else(Refusal::status, |_| Status::Allowed)
}

pub fn authorize<'a, C>(
    policy: &'a Policy,
    req: RequestHeaders<'a, C>,
    cache: &mut TokenCache,
    clock: Clock,
) -> Result<Token<'a>, Refusal<'a>>
where
    C: IntoIterator<Item = &'a [u8]>,
{
    if !policy
        .origins
        .allows(req.origin, req.host, policy.require_origin)
    {
        return Err(Refusal::Origin(req.origin));
    }
    let cookie_name = policy.cookie_name.as_slice();
    let value = cookie::find(req.cookies, cookie_name).unwrap_or_default();
    let token = match token::parse(value) {
        Ok(t) => t,
        Err(TokenError::Empty) => return Err(Refusal::NoToken(cookie_name)),
        Err(TokenError::Malformed) => return Err(Refusal::MalformedToken(cookie_name)),
    };
    let fresh = |mtime: i64| expiry::is_fresh(mtime, clock.unix_secs, policy.max_age_secs);

    let key = token.as_bytes();
    if let Some(entry) = cache.get(policy.dir_id, key, clock.now_ms) {
        if fresh(entry.mtime) {
            return Ok(token);
        }
        // Expired by the cached mtime; the file may have been touched since, so look again.
    }
    match store::lookup(&policy.dir, token) {
        Ok(Lookup::Found { mtime }) if fresh(mtime) => {
            cache.insert(policy.dir_id, key, Entry { mtime }, clock.now_ms);
            Ok(token)
        }
        Ok(Lookup::Found { .. }) => {
            cache.remove(policy.dir_id, key);
            Err(Refusal::ExpiredToken(cookie_name))
        }
        Ok(Lookup::NotFound) => {
            cache.remove(policy.dir_id, key);
            Err(Refusal::UnknownToken(cookie_name))
        }
        Err(e) => Err(Refusal::Dir(&policy.dir, e)),
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
        policy: Policy,
        cache: TokenCache,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let cdir = CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            Fixture {
                dir,
                policy: Policy {
                    dir: cdir,
                    dir_id: 0,
                    cookie_name: b"AUTH".to_vec(),
                    origins: OriginPolicy::SameOrigin,
                    require_origin: false,
                    max_age_secs: None,
                },
                cache: TokenCache::new(100, 1000),
            }
        }

        fn ask<'s>(
            &'s mut self,
            origin: OriginHeader<'s>,
            cookies: &[&'s [u8]],
            now_ms: u64,
        ) -> Result<Token<'s>, Refusal<'s>> {
            let req = RequestHeaders {
                origin,
                host: Some(ServedHost::from_authority(b"wcs.example.com")),
                cookies: cookies.iter().copied(),
            };
            let unix_secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            authorize(
                &self.policy,
                req,
                &mut self.cache,
                Clock { now_ms, unix_secs },
            )
        }

        fn status(&mut self, cookies: &[&[u8]], now_ms: u64) -> Status {
            status(&self.ask(OriginHeader::Absent, cookies, now_ms))
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
        assert_eq!(status(&out), Status::OriginDenied);
        f.policy.require_origin = true;
        assert_eq!(f.status(&[b"AUTH=x"], 0), Status::OriginDenied);
        let out = f.ask(
            OriginHeader::One(b"https://wcs.example.com"),
            &[b"AUTH=x"],
            0,
        );
        assert_eq!(status(&out), Status::UnknownToken);
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
        f.policy.max_age_secs = Some(60);
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
        let gone = f.dir.path().join("gone");
        f.policy.dir = CString::new(gone.as_os_str().as_encoded_bytes()).unwrap();
        let out = f.ask(OriginHeader::Absent, &[b"AUTH=tok"], 0);
        assert!(matches!(out, Err(Refusal::Dir(_, DirError::Missing(_)))));
        assert_eq!(status(&out), Status::Error);
        let refusal = out.unwrap_err();
        assert!(!refusal.is_server_fault());
        assert_eq!(refusal.os_error(), Some(2), "ENOENT, for nginx to append");
    }

    #[test]
    fn each_refusal_logs_its_own_line() {
        let dir = CString::new("/var/lib/nginx/tokens").unwrap();
        let errno = |n| std::io::Error::from_raw_os_error(n);
        let long = [b'a'; 300];
        let cases: [(Refusal<'_>, &str); 10] = [
            (
                Refusal::NoToken(b"AUTH"),
                r#"wcs_token_auth: no token in cookie "AUTH""#,
            ),
            (
                Refusal::MalformedToken(b"AUTH"),
                r#"wcs_token_auth: malformed token in cookie "AUTH""#,
            ),
            (
                Refusal::UnknownToken(b"AUTH"),
                r#"wcs_token_auth: unknown token in cookie "AUTH""#,
            ),
            (
                Refusal::ExpiredToken(b"S\"x"),
                r#"wcs_token_auth: expired token in cookie "S\"x""#,
            ),
            (
                Refusal::Origin(OriginHeader::One(b"https://evil.example")),
                r#"wcs_token_auth: origin "https://evil.example" is not allowed"#,
            ),
            (
                Refusal::Origin(OriginHeader::One(b"https://a\n")),
                r#"wcs_token_auth: origin "https://a\n" is not allowed"#,
            ),
            (
                Refusal::Origin(OriginHeader::Absent),
                "wcs_token_auth: no Origin header",
            ),
            (
                Refusal::Origin(OriginHeader::Several),
                "wcs_token_auth: several Origin headers",
            ),
            (
                Refusal::Dir(&dir, DirError::Missing(errno(2))),
                r#"wcs_token_auth: token directory "/var/lib/nginx/tokens" does not exist"#,
            ),
            (
                Refusal::Dir(&dir, DirError::Failed(errno(13))),
                r#"wcs_token_auth: cannot read token directory "/var/lib/nginx/tokens""#,
            ),
        ];
        for (refusal, line) in &cases {
            assert_eq!(refusal.to_string(), *line);
        }
        let shown = Refusal::Origin(OriginHeader::One(&long)).to_string();
        let a256 = "a".repeat(256);
        assert_eq!(
            shown,
            format!("wcs_token_auth: origin \"{a256}\" is not allowed")
        );
        assert!(cases[9].0.is_server_fault() && !cases[8].0.is_server_fault());
        assert_eq!(cases[9].0.os_error(), Some(13));
        assert_eq!(cases[0].0.os_error(), None);
    }
}
