//! The `Origin` check: an allow-list of `scheme://host[:port]` entries (with `*.` wildcards),
//! `any`, or, by default, same-origin against the request's `Host`.
//!
//! Everything is compared in canonical form: scheme and host lower-cased, and a port that is
//! the scheme's default (80 for http, 443 for https) treated as no port.

use std::fmt;

/// One parsed origin, from a request header or an allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: Host,
    /// `None` when absent or equal to the scheme's default port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: matches one or more labels in front of it.
    AnySubdomainOf(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    NoScheme,
    BadScheme,
    BadHost,
    BadPort,
    HasPath,
    WildcardNotAllowed,
    AnyNotAlone,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OriginError::NoScheme => "it must look like scheme://host[:port]",
            OriginError::BadScheme => "the scheme is invalid",
            OriginError::BadHost => "the host is invalid",
            OriginError::BadPort => "the port must be a number from 1 to 65535",
            OriginError::HasPath => "an origin has no path, query or user part",
            OriginError::WildcardNotAllowed => "a wildcard is only allowed as a leading \"*.\"",
            OriginError::AnyNotAlone => "\"any\" cannot be combined with other origins",
        })
    }
}

impl Origin {
    /// Parses a request's `Origin` header value. `null` and anything unusual are errors.
    pub fn parse(value: &[u8]) -> Result<Origin, OriginError> {
        RequestOrigin::parse(value).map(RequestOrigin::into_owned)
    }

    /// Parses one `wcs_token_auth_origins` entry, where `scheme://*.domain[:port]` is allowed.
    pub fn parse_pattern(value: &[u8]) -> Result<Origin, OriginError> {
        let parts = split(value, true)?;
        let host = if parts.wildcard {
            Host::AnySubdomainOf(format!(".{}", lower(parts.host)))
        } else {
            Host::Exact(lower(parts.host))
        };
        Ok(Origin {
            scheme: lower(parts.scheme),
            host,
            port: parts.port,
        })
    }

    /// Does the request origin `other` match this allow-list entry?
    pub fn matches(&self, other: &RequestOrigin<'_>) -> bool {
        let host = other.host;
        self.scheme.as_bytes().eq_ignore_ascii_case(other.scheme)
            && self.port == other.port
            && match &self.host {
                Host::Exact(h) => h.as_bytes().eq_ignore_ascii_case(host),
                Host::AnySubdomainOf(suffix) => {
                    host.len() > suffix.len()
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
                }
            }
    }
}

/// A request's `Origin`, validated but borrowed from the header: checking it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOrigin<'a> {
    /// As sent: compare case-insensitively.
    scheme: &'a [u8],
    /// As sent: compare case-insensitively.
    host: &'a [u8],
    /// `None` when absent or equal to the scheme's default port.
    port: Option<u16>,
}

impl<'a> RequestOrigin<'a> {
    /// Parses a request's `Origin` header value. `null` and anything unusual are errors.
    pub fn parse(value: &'a [u8]) -> Result<RequestOrigin<'a>, OriginError> {
        let parts = match split_common(value) {
            Some(parts) => parts,
            None => split(value, false)?,
        };
        Ok(RequestOrigin {
            scheme: parts.scheme,
            host: parts.host,
            port: parts.port,
        })
    }

    fn into_owned(self) -> Origin {
        Origin {
            scheme: lower(self.scheme),
            host: Host::Exact(lower(self.host)),
            port: self.port,
        }
    }

    /// Same-origin test against a `Host` header: host and port only, with 80 and 443 dropped
    /// on both sides. The scheme is not compared: `Host` does not carry one, and behind TLS
    /// termination the page's scheme need not be the connection's. So `http://h:443` matches
    /// `Host: h`; list origins explicitly where that matters.
    pub fn same_host(&self, host_header: &[u8]) -> bool {
        // The Origin's host is a valid DNS name or bracketed IPv6 literal, so it holds no ':'
        // outside brackets: Host must start with it and continue with nothing or ":port".
        let Some(prefix) = host_header.get(..self.host.len()) else {
            return false;
        };
        // Exact bytes first: browsers and Host headers are lower-case in practice.
        if prefix != self.host && !prefix.eq_ignore_ascii_case(self.host) {
            return false;
        }
        let other_port = match &host_header[self.host.len()..] {
            [] => None,
            [b':', port @ ..] => match parse_port(port) {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            _ => return false,
        };
        let drop_default = |p: Option<u16>| p.filter(|p| *p != 80 && *p != 443);
        let port = match self.port {
            Some(p) => Some(p),
            None => default_port(self.scheme),
        };
        drop_default(port) == drop_default(other_port)
    }
}

fn default_port(scheme: &[u8]) -> Option<u16> {
    let is = |s: &[u8]| scheme.eq_ignore_ascii_case(s);
    match scheme.len() {
        2 if is(b"ws") => Some(80),
        3 if is(b"wss") => Some(443),
        4 if is(b"http") => Some(80),
        5 if is(b"https") => Some(443),
        _ => None,
    }
}

/// An origin's validated parts, borrowed from the input; `host` is without the `*.` when
/// `wildcard`.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    scheme: &'a [u8],
    host: &'a [u8],
    port: Option<u16>,
    wildcard: bool,
}

/// Byte classes for [`split_common`].
const SCHEME: u8 = 1;
const LABEL: u8 = 2;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        t[b] = if alnum || c == b'+' || c == b'-' || c == b'.' {
            SCHEME
        } else {
            0
        } | if alnum || c == b'-' || c == b'_' {
            LABEL
        } else {
            0
        };
        b += 1;
    }
    t
};

/// One pass over the common shape, `scheme://dns.name[:port]`, for the request path: the same
/// parts [`split`] returns for it, or `None` (then [`split`] decides, and names the error).
fn split_common(value: &[u8]) -> Option<Parts<'_>> {
    let n = value.len();
    let mut i = 0;
    while i < n && CLASS[value[i] as usize] & SCHEME != 0 {
        i += 1;
    }
    let starts_alpha = value.first().is_some_and(u8::is_ascii_alphabetic);
    if !starts_alpha || value.get(i..i + 3) != Some(b"://") {
        return None;
    }
    let scheme = &value[..i];
    i += 3;
    let host_start = i;
    let mut label = 0;
    while i < n {
        let b = value[i];
        if CLASS[b as usize] & LABEL != 0 {
            label += 1;
            if label > 63 {
                return None;
            }
        } else if b == b'.' && label > 0 {
            label = 0;
        } else {
            break;
        }
        i += 1;
    }
    let host = &value[host_start..i];
    if label == 0 || host.len() > 253 {
        return None; // empty, empty last label, or too long
    }
    let port = match &value[i..] {
        [] => None,
        [b':', digits @ ..] => Some(parse_port(digits).ok()?),
        _ => return None,
    };
    Some(Parts {
        scheme,
        host,
        port: port.filter(|p| Some(*p) != default_port(scheme)),
        wildcard: false,
    })
}

/// The reference parser: every shape, and the reason for a refusal.
fn split(value: &[u8], allow_wildcard: bool) -> Result<Parts<'_>, OriginError> {
    let sep = find(value, b"://").ok_or(OriginError::NoScheme)?;
    let scheme = &value[..sep];
    let valid_scheme = matches!(scheme.first(), Some(b) if b.is_ascii_alphabetic())
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return Err(OriginError::BadScheme);
    }

    let rest = &value[sep + 3..];
    if rest.iter().any(|&b| matches!(b, b'/' | b'?' | b'#' | b'@')) {
        return Err(OriginError::HasPath);
    }
    let (host, port) = split_host_port(rest)?;
    let port = port.filter(|p| Some(*p) != default_port(scheme));

    let (host, wildcard) = match host.strip_prefix(b"*.") {
        Some(domain) if allow_wildcard => {
            check_dns_name(domain)?;
            (domain, true)
        }
        _ if host.contains(&b'*') => return Err(OriginError::WildcardNotAllowed),
        _ if host.starts_with(b"[") => (host, false),
        _ => {
            check_dns_name(host)?;
            (host, false)
        }
    };
    Ok(Parts {
        scheme,
        host,
        port,
        wildcard,
    })
}

/// Splits `host[:port]` where host may be a bracketed IPv6 literal.
fn split_host_port(s: &[u8]) -> Result<(&[u8], Option<u16>), OriginError> {
    let (host, port) = if s.starts_with(b"[") {
        let close = s
            .iter()
            .position(|&b| b == b']')
            .ok_or(OriginError::BadHost)?;
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(OriginError::BadHost);
        }
        match &s[close + 1..] {
            [] => (&s[..=close], None),
            [b':', port @ ..] => (&s[..=close], Some(port)),
            _ => return Err(OriginError::BadHost),
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(OriginError::BadHost);
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn parse_port(s: &[u8]) -> Result<u16, OriginError> {
    if s.is_empty() || s.len() > 5 {
        return Err(OriginError::BadPort);
    }
    let mut n = 0u32;
    for &d in s {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return Err(OriginError::BadPort);
        }
        n = n * 10 + u32::from(digit);
    }
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(OriginError::BadPort),
    }
}

/// Dot-separated non-empty labels of letters, digits, `-` and `_`.
fn check_dns_name(name: &[u8]) -> Result<(), OriginError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else if name.contains(&b'*') {
        Err(OriginError::WildcardNotAllowed)
    } else {
        Err(OriginError::BadHost)
    }
}

fn lower(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_ascii_lowercase()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What `wcs_token_auth_origins` allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Unset: the Origin must name the host the request was sent to.
    #[default]
    SameOrigin,
    /// `any`: no check.
    Any,
    AllowList(Vec<Origin>),
}

/// The request's `Origin` header(s), as the shell found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginHeader<'a> {
    Absent,
    One(&'a [u8]),
    /// More than one `Origin` header: a browser never sends that, so it is refused.
    Several,
}

impl OriginPolicy {
    /// Builds the policy from the directive's arguments.
    pub fn from_args<'a, I>(args: I) -> Result<OriginPolicy, (&'a [u8], OriginError)>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let args: Vec<&[u8]> = args.into_iter().collect();
        if args == [b"any"] {
            return Ok(OriginPolicy::Any);
        }
        args.iter()
            .map(|a| {
                if *a == b"any" {
                    Err((*a, OriginError::AnyNotAlone))
                } else {
                    Origin::parse_pattern(a).map_err(|e| (*a, e))
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(OriginPolicy::AllowList)
    }

    /// Does this request pass the Origin rules?
    pub fn allows(&self, origin: OriginHeader<'_>, host: Option<&[u8]>, require: bool) -> bool {
        let value = match origin {
            OriginHeader::Absent => return !require,
            OriginHeader::Several => return matches!(self, OriginPolicy::Any),
            OriginHeader::One(value) => value,
        };
        if let OriginPolicy::Any = self {
            return true;
        }
        let Ok(origin) = RequestOrigin::parse(value) else {
            return false;
        };
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::SameOrigin => host.is_some_and(|h| origin.same_host(h)),
            OriginPolicy::AllowList(list) => list.iter().any(|p| p.matches(&origin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> OriginPolicy {
        OriginPolicy::from_args(entries.iter().map(|s| s.as_bytes())).unwrap()
    }

    fn allows(policy: &OriginPolicy, origin: &str) -> bool {
        policy.allows(
            OriginHeader::One(origin.as_bytes()),
            Some(b"wcs.example.com"),
            false,
        )
    }

    #[test]
    fn exact_entry_compares_scheme_and_host_case_insensitively() {
        let p = list(&["https://App.Example.com"]);
        assert!(allows(&p, "https://app.example.com"));
        assert!(allows(&p, "HTTPS://APP.EXAMPLE.COM"));
        assert!(!allows(&p, "http://app.example.com"));
        assert!(!allows(&p, "https://app.example.com.evil.net"));
        assert!(!allows(&p, "https://evilapp.example.com"));
    }

    #[test]
    fn default_port_equals_no_port() {
        let p = list(&["https://a.example.com", "http://b.example.com:80"]);
        assert!(allows(&p, "https://a.example.com:443"));
        assert!(allows(&p, "http://b.example.com"));
        assert!(!allows(&p, "https://a.example.com:8443"));
        let p = list(&["https://a.example.com:8443"]);
        assert!(allows(&p, "https://a.example.com:8443"));
        assert!(!allows(&p, "https://a.example.com"));
    }

    #[test]
    fn wildcard_matches_whole_labels_only_and_never_the_bare_domain() {
        let p = list(&["https://*.example.com"]);
        assert!(allows(&p, "https://a.example.com"));
        assert!(allows(&p, "https://a.b.example.com"));
        assert!(!allows(&p, "https://example.com"));
        assert!(!allows(&p, "https://badexample.com"));
        assert!(!allows(&p, "https://a.example.com.evil.net"));
        assert!(!allows(&p, "http://a.example.com"));
        assert!(!allows(&p, "https://a.example.com:8443"));
        assert!(allows(&p, "HTTPS://A.Example.COM"), "case-insensitive");
        assert!(allows(&p, "https://a.example.com:443"), "default port");
    }

    #[test]
    fn the_one_pass_parser_agrees_with_the_reference() {
        let mut inputs: Vec<Vec<u8>> = [
            "https://a.example.com",
            "HTTPS://A.Example.COM:443",
            "http://127.0.0.1:8080",
            "http://h:80",
            "ws://h:0",
            "ws://h:65535",
            "ws://h:65536",
            "ws://h:123456",
            "ws://h:",
            "ws://h:8x",
            "a+b.c-d://h",
            "1a://h",
            "://h",
            "h",
            "null",
            "",
            "https://",
            "https://.a",
            "https://a.",
            "https://a..b",
            "https://a_b-c.d",
            "https://a/b",
            "https://a?b",
            "https://u@a",
            "https://*.a.com",
            "https://[::1]:8080",
            "https://a:b://c",
            "ht:tp://a",
            "https://a b",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        inputs.push(format!("https://{}.com", "a".repeat(63)).into_bytes());
        inputs.push(format!("https://{}.com", "a".repeat(64)).into_bytes());
        inputs.push(format!("https://{}", vec!["a".repeat(50); 5].join(".")).into_bytes());
        inputs.push(format!("https://{}", vec!["a".repeat(49); 5].join(".")).into_bytes());
        // Every byte in every position of a typical origin.
        let base = b"https://a.b:1".to_vec();
        for pos in 0..=base.len() {
            for b in 0..=255u8 {
                let mut v = base.clone();
                v.insert(pos, b);
                inputs.push(v);
            }
        }
        for common in [
            "https://a.example.com",
            "http://127.0.0.1:8080",
            "WSS://X_Y.z-w:1",
        ] {
            assert!(split_common(common.as_bytes()).is_some(), "{common}");
        }
        for v in &inputs {
            let reference = split(v, false);
            match split_common(v) {
                Some(fast) => assert_eq!(Ok(&fast), reference.as_ref(), "{}", v.escape_ascii()),
                None => assert!(
                    reference.is_err() || v.contains(&b'['),
                    "the one-pass parser gave up on {} which the reference accepts",
                    v.escape_ascii()
                ),
            }
        }
    }

    #[test]
    fn request_origins_parse_like_owned_ones() {
        for v in ["https://A.b.com:8443", "http://[::1]:80", "wss://x.y"] {
            let r = RequestOrigin::parse(v.as_bytes()).unwrap();
            assert_eq!(r.into_owned(), Origin::parse(v.as_bytes()).unwrap());
            assert_eq!(
                Origin::parse(v.as_bytes()).unwrap(),
                Origin::parse(v.to_ascii_lowercase().as_bytes()).unwrap()
            );
        }
        assert_eq!(
            RequestOrigin::parse(b"https://*.a.com"),
            Err(OriginError::WildcardNotAllowed)
        );
    }

    #[test]
    fn null_and_garbage_never_match() {
        let p = list(&["https://a.example.com"]);
        for bad in [
            "null",
            "",
            "https://",
            "a.example.com",
            "https://a.example.com/",
            "https://*.example.com",
        ] {
            assert!(!allows(&p, bad), "{bad}");
        }
        assert!(!p.allows(OriginHeader::One(b"\xff\x00"), None, false));
    }

    #[test]
    fn same_origin_compares_with_host_header() {
        let p = OriginPolicy::SameOrigin;
        let same =
            |o: &str, h: &str| p.allows(OriginHeader::One(o.as_bytes()), Some(h.as_bytes()), false);
        assert!(same("https://wcs.example.com", "wcs.example.com"));
        assert!(same("https://WCS.example.com:443", "wcs.EXAMPLE.com"));
        assert!(same("https://wcs.example.com", "wcs.example.com:443"));
        assert!(same("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same("http://[::1]:8080", "[::1]:8080"));
        assert!(!same("https://evil.com", "wcs.example.com"));
        assert!(!same("https://wcs.example.com:8443", "wcs.example.com"));
        assert!(!same("http://127.0.0.1:8080", "127.0.0.1:8081"));
        assert!(!same("null", "wcs.example.com"));
        assert!(!same("https://wcs.example.com", "wcs.example.comx"));
        assert!(!same("https://wcs.example.com", "wcs.example.com:"));
        assert!(!same("https://wcs.example.com", "wcs.example.com:443x"));
        assert!(!same("https://wcs.example.com", "wcs.example.co"));
        assert!(same("http://h:8080", "H:08080"));
        assert!(!p.allows(OriginHeader::One(b"https://wcs.example.com"), None, false));
    }

    #[test]
    fn missing_origin_passes_unless_required() {
        for p in [
            OriginPolicy::SameOrigin,
            OriginPolicy::Any,
            list(&["https://a.com"]),
        ] {
            assert!(p.allows(OriginHeader::Absent, None, false));
            assert!(!p.allows(OriginHeader::Absent, None, true));
        }
    }

    #[test]
    fn several_origin_headers_are_refused_unless_any() {
        assert!(!list(&["https://a.com"]).allows(OriginHeader::Several, None, false));
        assert!(!OriginPolicy::SameOrigin.allows(OriginHeader::Several, Some(b"a.com"), false));
        assert!(OriginPolicy::Any.allows(OriginHeader::Several, None, false));
        assert!(
            OriginPolicy::Any.allows(OriginHeader::Several, None, true),
            "an Origin is present"
        );
    }

    #[test]
    fn any_allows_everything() {
        assert!(allows(&OriginPolicy::Any, "null"));
        assert!(allows(&OriginPolicy::Any, "https://evil.com"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let err = |s: &str| OriginPolicy::from_args([s.as_bytes()]).unwrap_err().1;
        assert_eq!(err("https://a.com/path"), OriginError::HasPath);
        assert_eq!(err("https://a.com/"), OriginError::HasPath);
        assert_eq!(err("https://user@a.com"), OriginError::HasPath);
        assert_eq!(err("https://a.com:65536"), OriginError::BadPort);
        assert_eq!(err("https://a.com:0"), OriginError::BadPort);
        assert_eq!(err("https://a.com:"), OriginError::BadPort);
        assert_eq!(err("https://a.com:8x"), OriginError::BadPort);
        assert_eq!(err("a.com"), OriginError::NoScheme);
        assert_eq!(err("null"), OriginError::NoScheme);
        assert_eq!(err("1http://a.com"), OriginError::BadScheme);
        assert_eq!(err("https://a..com"), OriginError::BadHost);
        assert_eq!(err("https://*.*.com"), OriginError::WildcardNotAllowed);
        assert_eq!(err("https://a.*.com"), OriginError::WildcardNotAllowed);
        assert_eq!(err("https://*"), OriginError::WildcardNotAllowed);
        assert_eq!(err("https://*example.com"), OriginError::WildcardNotAllowed);
        let mixed = OriginPolicy::from_args([&b"any"[..], b"https://a.com"]).unwrap_err();
        assert_eq!(mixed, (&b"any"[..], OriginError::AnyNotAlone));
        assert!(OriginPolicy::from_args([&b"https://a.com:65535"[..]]).is_ok());
    }
}
