//! The access decision, from the request's headers to the granted token or a [`Refusal`].
//!
//! Order matters: the Origin is checked first (it costs no system call), then the cookie and
//! the token's shape (a malformed token never reaches the filesystem), then the cache, and
//! only then the token directory, or the signature and the revocation directory.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::AsFd;

use crate::cache::{Entry, TokenCache};
use crate::cookie;
use crate::expiry;
use crate::origin::{OriginHeader, OriginPolicy, ServedHost};
use crate::signed::{self, SignedError, SignedRules};
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
    /// A signed token: unknown `kid`, `alg` not the key's, or a wrong signature.
    BadSignature,
    /// A signed token whose claims the location's rules refuse.
    BadClaims,
    /// A signed token named in the revocation directory.
    RevokedToken,
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
            Status::BadSignature => "bad_signature",
            Status::BadClaims => "bad_claims",
            Status::RevokedToken => "revoked_token",
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
    /// The token directory, absolute; `None` where only signed tokens are accepted.
    pub dir: Option<CString>,
    /// Identifies `dir` in the shared cache.
    pub dir_id: u32,
    /// `jwks=` and the rules that go with it; `None`: no signed tokens here.
    pub signed: Option<SignedPolicy>,
    pub cookie_name: Vec<u8>,
    pub origins: OriginPolicy,
    pub require_origin: bool,
    pub max_age_secs: Option<u64>,
}

/// A location's rules for signed tokens, and their id in the shared cache: locations whose
/// rules are equal share an id, so a token verified under one set of rules is never taken as
/// verified under another.
#[derive(Debug, Clone)]
pub struct SignedPolicy {
    pub rules: SignedRules,
    /// Never equal to a token directory's id.
    pub id: u32,
}

/// What a request was let through with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant<'a> {
    /// A token that names a file in the token directory.
    File(Token<'a>),
    /// A signed token's bytes, verified under the location's rules.
    Signed(&'a [u8]),
}

impl<'a> Grant<'a> {
    /// The cookie value that was granted.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Grant::File(t) => t.as_bytes(),
            Grant::Signed(t) => t,
        }
    }
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
    /// Wall-clock seconds since the epoch, for `max_age` and a signed token's claims.
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
    BadSignature(&'a [u8]),
    BadClaims(&'a [u8]),
    RevokedToken(&'a [u8]),
    /// The token directory (named here) is unusable: [`DirError::Missing`] is the operator's
    /// mistake, [`DirError::Failed`] a broken server.
    Dir(&'a CStr, DirError),
    /// The revocation directory (named here) is unusable. Either way a broken server: without
    /// it no token can be known not to be revoked.
    RevokedDir(&'a CStr, DirError),
}

impl Refusal<'_> {
    pub fn status(&self) -> Status {
        match self {
            Refusal::Origin(_) => Status::OriginDenied,
            Refusal::NoToken(_) => Status::NoToken,
            Refusal::MalformedToken(_) => Status::MalformedToken,
            Refusal::UnknownToken(_) => Status::UnknownToken,
            Refusal::ExpiredToken(_) => Status::ExpiredToken,
            Refusal::BadSignature(_) => Status::BadSignature,
            Refusal::BadClaims(_) => Status::BadClaims,
            Refusal::RevokedToken(_) => Status::RevokedToken,
            Refusal::Dir(..) | Refusal::RevokedDir(..) => Status::Error,
        }
    }

    /// The server, not the client, is at fault: 500 and a `crit` line rather than 403.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Refusal::Dir(_, DirError::Failed(_)) | Refusal::RevokedDir(..)
        )
    }

    /// The system error behind the refusal, for nginx to append to the log line.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Refusal::Dir(_, e) | Refusal::RevokedDir(_, e) => e.io_error().raw_os_error(),
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
            Refusal::BadSignature(c) => {
                let c = c.escape_ascii();
                write!(f, "bad signature on signed token in cookie \"{c}\"")
            }
            Refusal::BadClaims(c) => {
                let c = c.escape_ascii();
                write!(f, "bad claims in signed token in cookie \"{c}\"")
            }
            Refusal::RevokedToken(c) => {
                write!(f, "revoked token in cookie \"{}\"", c.escape_ascii())
            }
            Refusal::Dir(dir, DirError::Missing(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "token directory \"{dir}\" does not exist")
            }
            Refusal::Dir(dir, DirError::Failed(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "cannot read token directory \"{dir}\"")
            }
            Refusal::RevokedDir(dir, DirError::Missing(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "revocation directory \"{dir}\" does not exist")
            }
            Refusal::RevokedDir(dir, DirError::Failed(_)) => {
                let dir = dir.to_bytes().escape_ascii();
                write!(f, "cannot read revocation directory \"{dir}\"")
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

/// Decides a request: which path the cookie value takes is the location's to say. With
/// signed rules, a value in JWS compact form is a signed token; any other value is a token
/// file's name where a token directory is configured, and malformed where none is.
pub fn authorize<'a, C>(
    policy: &'a Policy,
    req: RequestHeaders<'a, C>,
    cache: &mut TokenCache,
    clock: Clock,
) -> Result<Grant<'a>, Refusal<'a>>
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
    if value.is_empty() {
        return Err(Refusal::NoToken(cookie_name));
    }
    if let Some(sp) = &policy.signed {
        if signed::is_signed_shape(value) {
            return authorize_signed(sp, cookie_name, value, cache, clock);
        }
    }
    match &policy.dir {
        Some(dir) => authorize_file(policy, dir, cookie_name, value, cache, clock),
        None => Err(Refusal::MalformedToken(cookie_name)),
    }
}

/// The token directory's path: the cache, then the file's presence and age.
fn authorize_file<'a>(
    policy: &Policy,
    dir: &'a CStr,
    cookie_name: &'a [u8],
    value: &'a [u8],
    cache: &mut TokenCache,
    clock: Clock,
) -> Result<Grant<'a>, Refusal<'a>> {
    let token = match token::parse(value) {
        Ok(t) => t,
        Err(TokenError::Empty) => return Err(Refusal::NoToken(cookie_name)),
        Err(TokenError::Malformed) => return Err(Refusal::MalformedToken(cookie_name)),
    };
    let fresh = |mtime: i64| expiry::is_fresh(mtime, clock.unix_secs, policy.max_age_secs);

    let key = token.as_bytes();
    if let Some(Entry::File { mtime }) = cache.get(policy.dir_id, key, clock.now_ms) {
        if fresh(mtime) {
            return Ok(Grant::File(token));
        }
        // Expired by the cached mtime; the file may have been touched since, so look again.
    }
    match store::lookup(dir, token) {
        Ok(Lookup::Found { mtime }) if fresh(mtime) => {
            cache.insert(policy.dir_id, key, Entry::File { mtime }, clock.now_ms);
            Ok(Grant::File(token))
        }
        Ok(Lookup::Found { .. }) => {
            cache.remove(policy.dir_id, key);
            Err(Refusal::ExpiredToken(cookie_name))
        }
        Ok(Lookup::NotFound) => {
            cache.remove(policy.dir_id, key);
            Err(Refusal::UnknownToken(cookie_name))
        }
        Err(e) => Err(Refusal::Dir(dir, e)),
    }
}

/// The signed path: the cache (its entry still ends at `exp`), else the signature and
/// claims, then the revocation directory. Only accepted tokens are cached.
fn authorize_signed<'a>(
    sp: &'a SignedPolicy,
    cookie_name: &'a [u8],
    token: &'a [u8],
    cache: &mut TokenCache,
    clock: Clock,
) -> Result<Grant<'a>, Refusal<'a>> {
    if token.len() > signed::MAX_LEN {
        return Err(Refusal::MalformedToken(cookie_name));
    }
    if let Some(entry) = cache.get(sp.id, token, clock.now_ms) {
        match entry {
            Entry::Signed { expires_at } if clock.unix_secs < expires_at => {
                return Ok(Grant::Signed(token));
            }
            Entry::Signed { .. } => {
                cache.remove(sp.id, token);
                return Err(Refusal::ExpiredToken(cookie_name));
            }
            // Not under a rules id; verified afresh below, which replaces it.
            Entry::File { .. } => {}
        }
    }
    let claims = signed::verify(&sp.rules, token, clock.unix_secs).map_err(|e| match e {
        SignedError::Malformed => Refusal::MalformedToken(cookie_name),
        SignedError::BadSignature => Refusal::BadSignature(cookie_name),
        SignedError::BadClaims => Refusal::BadClaims(cookie_name),
        SignedError::Expired => Refusal::ExpiredToken(cookie_name),
    })?;
    if let Some(revoked) = &sp.rules.revoked {
        let dir = store::open_dir(revoked).map_err(|e| Refusal::RevokedDir(revoked, e))?;
        match signed::is_revoked(dir.as_fd(), &claims) {
            Ok(false) => {}
            Ok(true) => return Err(Refusal::RevokedToken(cookie_name)),
            Err(e) => return Err(Refusal::RevokedDir(revoked, e)),
        }
    }
    let entry = Entry::Signed {
        expires_at: claims.expires_at,
    };
    cache.insert(sp.id, token, entry, clock.now_ms);
    Ok(Grant::Signed(token))
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
                    dir: Some(cdir),
                    dir_id: 0,
                    signed: None,
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
        ) -> Result<Grant<'s>, Refusal<'s>> {
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
        f.policy.dir = Some(CString::new(gone.as_os_str().as_encoded_bytes()).unwrap());
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
