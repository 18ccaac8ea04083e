//! The access decision, from the request's headers to the granted token or a [`Refusal`].
//!
//! Order matters: the Origin is checked first (it costs no system call), then the cookie, the
//! cache of signed tokens where these are accepted, the token's shape (a malformed token never
//! reaches the filesystem), then the cache of token files, and only then the token directory,
//! or the signature and the revocation directory.

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
        // The cache first: only a value these same rules verified is found under their id,
        // so a hit is a signed token without detecting its shape again (which costs more
        // than the look-up).
        if let Some(Entry::Signed { expires_at }) = cache.get(sp.id, value, clock.now_ms) {
            if clock.unix_secs < expires_at {
                return Ok(Grant::Signed(value));
            }
            cache.remove(sp.id, value);
            return Err(Refusal::ExpiredToken(cookie_name));
        }
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

/// The signed path after a cache miss (see [`authorize`]): the signature and claims, then the
/// revocation directory. Only accepted tokens are cached.
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
    // Only expiry and revocation end a token these rules accepted: its entry, stale now, goes.
    let claims = signed::verify(&sp.rules, token, clock.unix_secs).map_err(|e| match e {
        SignedError::Malformed => Refusal::MalformedToken(cookie_name),
        SignedError::BadSignature => Refusal::BadSignature(cookie_name),
        SignedError::BadClaims => Refusal::BadClaims(cookie_name),
        SignedError::Expired => {
            cache.remove(sp.id, token);
            Refusal::ExpiredToken(cookie_name)
        }
    })?;
    if let Some(revoked) = &sp.rules.revoked {
        let dir = store::open_dir(revoked).map_err(|e| Refusal::RevokedDir(revoked, e))?;
        match signed::is_revoked(dir.as_fd(), &claims) {
            Ok(false) => {}
            Ok(true) => {
                cache.remove(sp.id, token);
                return Err(Refusal::RevokedToken(cookie_name));
            }
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

    mod signed_path {
        use super::*;
        use crate::signed::KeySet;
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        use serde_json::json;
        use std::rc::Rc;

        const NOW: i64 = 1_700_000_000;
        const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
        const RULES: u32 = 0x8000_0000;

        fn rules() -> SignedRules {
            // base64url of SECRET.
            let set = json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256",
                "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]});
            SignedRules {
                keys: Rc::new(KeySet::parse(set.to_string().as_bytes()).unwrap()),
                leeway_secs: 0,
                issuer: None,
                audience: None,
                revoked: None,
            }
        }

        fn mint(secret: &[u8], claims: serde_json::Value) -> String {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("h".into());
            encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap()
        }

        fn token(claims: serde_json::Value) -> String {
            mint(SECRET, claims)
        }

        fn cpath(p: &std::path::Path) -> CString {
            CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
        }

        struct Fixture {
            tokens: tempfile::TempDir,
            revoked: tempfile::TempDir,
            policy: Policy,
            cache: TokenCache,
        }

        impl Fixture {
            /// Signed tokens only, unless `with_dir`.
            fn new(with_dir: bool) -> Fixture {
                let tokens = tempfile::tempdir().unwrap();
                let revoked = tempfile::tempdir().unwrap();
                let policy = Policy {
                    dir: with_dir.then(|| cpath(tokens.path())),
                    dir_id: 0,
                    signed: Some(SignedPolicy {
                        rules: rules(),
                        id: RULES,
                    }),
                    cookie_name: b"AUTH".to_vec(),
                    origins: OriginPolicy::SameOrigin,
                    require_origin: false,
                    max_age_secs: None,
                };
                Fixture {
                    tokens,
                    revoked,
                    policy,
                    cache: TokenCache::new(100, 1000),
                }
            }

            fn with_revoked(mut self) -> Fixture {
                let sp = self.policy.signed.as_mut().unwrap();
                sp.rules.revoked = Some(cpath(self.revoked.path()));
                self
            }

            fn ask<'s>(
                &'s mut self,
                cookie: &'s [u8],
                now_ms: u64,
                unix_secs: i64,
            ) -> Result<Grant<'s>, Refusal<'s>> {
                let cookies = [cookie];
                let req = RequestHeaders {
                    origin: OriginHeader::Absent,
                    host: None,
                    cookies: cookies.into_iter(),
                };
                let clock = Clock { now_ms, unix_secs };
                authorize(&self.policy, req, &mut self.cache, clock)
            }

            fn status(&mut self, token: &str, now_ms: u64, unix_secs: i64) -> Status {
                let cookie = format!("AUTH={token}");
                let cookie = cookie.as_bytes();
                let out = self.ask(cookie, now_ms, unix_secs);
                status(&out)
            }
        }

        #[test]
        fn a_valid_signed_token_is_granted_as_such() {
            let mut f = Fixture::new(false);
            let t = token(json!({"exp": NOW + 60, "sub": "alice"}));
            let cookie = format!("AUTH={t}");
            let out = f.ask(cookie.as_bytes(), 0, NOW);
            assert_eq!(out.unwrap(), Grant::Signed(t.as_bytes()));
            assert_eq!(f.cache.len(), 1);
        }

        #[test]
        fn which_path_a_value_takes() {
            let mut f = Fixture::new(false);
            fs::write(f.tokens.path().join("plain"), "").unwrap();
            assert_eq!(f.status("", 0, NOW), Status::NoToken);
            assert_eq!(
                f.status("plain", 0, NOW),
                Status::MalformedToken,
                "no directory: any other value is malformed"
            );
            assert_eq!(f.status("a.b.c", 0, NOW), Status::MalformedToken);

            let mut f = Fixture::new(true);
            fs::write(f.tokens.path().join("plain"), "").unwrap();
            let out = f.ask(b"AUTH=plain", 0, NOW);
            assert!(matches!(out, Ok(Grant::File(t)) if t.as_bytes() == b"plain"));
            assert_eq!(f.status("nope", 0, NOW), Status::UnknownToken);
            let t = token(json!({"exp": NOW + 60}));
            let cookie = format!("AUTH={t}");
            let out = f.ask(cookie.as_bytes(), 0, NOW);
            assert!(matches!(out, Ok(Grant::Signed(_))));
        }

        #[test]
        fn without_signed_rules_a_jws_is_a_file_name() {
            let mut f = Fixture::new(true);
            f.policy.signed = None;
            let t = token(json!({"exp": NOW + 60}));
            assert_eq!(f.status(&t, 0, NOW), Status::UnknownToken);
            fs::write(f.tokens.path().join(&t), "").unwrap();
            let cookie = format!("AUTH={t}");
            let out = f.ask(cookie.as_bytes(), 0, NOW);
            assert!(matches!(out, Ok(Grant::File(_))));
        }

        #[test]
        fn each_refused_signed_token_has_its_status_and_is_not_cached() {
            let mut f = Fixture::new(true);
            let cases = [
                (
                    mint(
                        b"another secret of 32 bytes length",
                        json!({"exp": NOW + 60}),
                    ),
                    Status::BadSignature,
                ),
                (token(json!({"sub": "no exp"})), Status::BadClaims),
                (
                    token(json!({"exp": NOW + 60, "nbf": NOW + 10})),
                    Status::BadClaims,
                ),
                (token(json!({"exp": NOW})), Status::ExpiredToken),
                (
                    format!(
                        "{}.!!!.x",
                        token(json!({"exp": NOW + 60})).split('.').next().unwrap()
                    ),
                    Status::MalformedToken,
                ),
            ];
            for (t, want) in cases {
                assert_eq!(f.status(&t, 0, NOW), want, "{t}");
            }
            assert!(f.cache.is_empty(), "only accepted tokens are cached");
        }

        #[test]
        fn a_signed_token_over_the_limit_is_malformed() {
            let mut f = Fixture::new(true);
            let pad = "x".repeat(signed::MAX_LEN);
            let t = token(json!({"exp": NOW + 60, "pad": pad}));
            assert!(t.len() > signed::MAX_LEN);
            assert_eq!(f.status(&t, 0, NOW), Status::MalformedToken);
        }

        #[test]
        fn a_cache_hit_still_ends_at_exp() {
            let mut f = Fixture::new(false);
            let t = token(json!({"exp": NOW + 2}));
            assert_eq!(f.status(&t, 0, NOW), Status::Allowed);
            assert_eq!(f.status(&t, 10, NOW + 1), Status::Allowed);
            assert_eq!(f.cache.len(), 1);
            assert_eq!(
                f.status(&t, 20, NOW + 2),
                Status::ExpiredToken,
                "hit, expired"
            );
            assert!(f.cache.is_empty(), "the expired entry is dropped");
        }

        #[test]
        fn a_cached_token_is_not_verified_again_within_the_ttl() {
            let mut f = Fixture::new(false).with_revoked();
            let t = token(json!({"exp": NOW + 60, "jti": "j1"}));
            assert_eq!(f.status(&t, 0, NOW), Status::Allowed);
            fs::write(f.revoked.path().join("jti.j1"), "").unwrap();
            assert_eq!(f.status(&t, 999, NOW), Status::Allowed, "cached");
            assert_eq!(f.status(&t, 1000, NOW), Status::RevokedToken, "ttl over");
            assert!(f.cache.is_empty(), "a revoked token is not cached");
        }

        #[test]
        fn other_rules_verify_afresh() {
            let mut f = Fixture::new(false);
            let t = token(json!({"exp": NOW + 60, "aud": "a"}));
            assert_eq!(f.status(&t, 0, NOW), Status::Allowed);
            let sp = f.policy.signed.as_mut().unwrap();
            sp.rules.audience = Some("b".into());
            sp.id = RULES + 1;
            assert_eq!(f.status(&t, 1, NOW), Status::BadClaims);
            // The same rules id is trusted: that is why equal ids must mean equal rules.
            f.policy.signed.as_mut().unwrap().id = RULES;
            assert_eq!(f.status(&t, 2, NOW), Status::Allowed);
        }

        #[test]
        fn a_hit_under_the_rules_id_skips_shape_detection() {
            // Only verified tokens are ever stored under a rules id; this entry is planted to
            // show that a hit is granted without the value being parsed again.
            let mut f = Fixture::new(true);
            let planted = "not-a-jws";
            let entry = Entry::Signed {
                expires_at: NOW + 1,
            };
            f.cache.insert(RULES, planted.as_bytes(), entry, 0);
            assert_eq!(f.status(planted, 1, NOW), Status::Allowed);
            assert_eq!(f.status(planted, 2, NOW + 1), Status::ExpiredToken);
            assert_eq!(f.status(planted, 3, NOW + 1), Status::UnknownToken, "gone");
        }

        #[test]
        fn a_file_entry_never_grants_a_signed_token() {
            let mut f = Fixture::new(false);
            let t = token(json!({"exp": NOW + 60}));
            f.cache
                .insert(RULES, t.as_bytes(), Entry::File { mtime: NOW }, 0);
            f.policy.signed.as_mut().unwrap().rules = {
                let mut r = rules();
                r.issuer = Some("i".into());
                r
            };
            assert_eq!(f.status(&t, 1, NOW), Status::BadClaims);
        }

        #[test]
        fn revocation_by_jti_and_by_sub() {
            let mut f = Fixture::new(false).with_revoked();
            let a = token(json!({"exp": NOW + 60, "jti": "j1"}));
            fs::write(f.revoked.path().join("jti.j1"), "").unwrap();
            assert_eq!(f.status(&a, 0, NOW), Status::RevokedToken);
            // sub.bob's mtime is the real time now: tokens issued before it are revoked.
            fs::write(f.revoked.path().join("sub.bob"), "").unwrap();
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let now = now.as_secs() as i64;
            let old = token(json!({"exp": now + 60, "sub": "bob", "iat": now - 100}));
            let fresh = token(json!({"exp": now + 60, "sub": "bob", "iat": now + 5}));
            let other = token(json!({"exp": now + 60, "sub": "carol", "iat": now - 100}));
            assert_eq!(f.status(&old, 0, now + 5), Status::RevokedToken);
            assert_eq!(
                f.status(&fresh, 0, now + 5),
                Status::Allowed,
                "issued after"
            );
            assert_eq!(f.status(&other, 0, now + 5), Status::Allowed);
        }

        #[test]
        fn a_missing_or_unreadable_revocation_directory_is_a_server_fault() {
            let mut f = Fixture::new(false).with_revoked();
            let gone = cpath(&f.revoked.path().join("gone"));
            f.policy.signed.as_mut().unwrap().rules.revoked = Some(gone);
            let t = token(json!({"exp": NOW + 60}));
            let cookie = format!("AUTH={t}");
            let out = f.ask(cookie.as_bytes(), 0, NOW);
            assert_eq!(status(&out), Status::Error);
            let refusal = out.unwrap_err();
            assert!(matches!(
                refusal,
                Refusal::RevokedDir(_, DirError::Missing(_))
            ));
            assert!(refusal.is_server_fault(), "never \"nothing is revoked\"");
            assert_eq!(refusal.os_error(), Some(2));
            assert!(f.cache.is_empty());
        }

        #[test]
        fn signed_refusals_log_their_lines() {
            let dir = CString::new("/var/lib/nginx/revoked").unwrap();
            let errno = |n| std::io::Error::from_raw_os_error(n);
            let cases: [(Refusal<'_>, Status, &str); 5] = [
                (
                    Refusal::BadSignature(b"AUTH"),
                    Status::BadSignature,
                    r#"wcs_token_auth: bad signature on signed token in cookie "AUTH""#,
                ),
                (
                    Refusal::BadClaims(b"AUTH"),
                    Status::BadClaims,
                    r#"wcs_token_auth: bad claims in signed token in cookie "AUTH""#,
                ),
                (
                    Refusal::RevokedToken(b"AUTH"),
                    Status::RevokedToken,
                    r#"wcs_token_auth: revoked token in cookie "AUTH""#,
                ),
                (
                    Refusal::RevokedDir(&dir, DirError::Missing(errno(2))),
                    Status::Error,
                    r#"wcs_token_auth: revocation directory "/var/lib/nginx/revoked" does not exist"#,
                ),
                (
                    Refusal::RevokedDir(&dir, DirError::Failed(errno(13))),
                    Status::Error,
                    r#"wcs_token_auth: cannot read revocation directory "/var/lib/nginx/revoked""#,
                ),
            ];
            for (refusal, st, line) in &cases {
                assert_eq!(refusal.to_string(), *line);
                assert_eq!(refusal.status(), *st);
            }
            assert!(!cases[2].0.is_server_fault());
            assert!(cases[3].0.is_server_fault() && cases[4].0.is_server_fault());
            assert_eq!(cases[4].0.os_error(), Some(13));
            let words = [
                (Status::BadSignature, "bad_signature"),
                (Status::BadClaims, "bad_claims"),
                (Status::RevokedToken, "revoked_token"),
            ];
            for (st, word) in words {
                assert_eq!(st.as_str(), word);
            }
        }
    }
}
