//! The `Origin` check: an allow-list of `scheme://host[:port]` entries (with `*.` wildcards),
//! `any`, or, by default, same-origin against the host nginx serves the request for.
//!
//! Everything is compared in canonical form: scheme and host lower-cased, and a port that is
//! the scheme's default (80 for http, 443 for https) treated as no port.
//!
//! Hand-written: `url` parses whole URLs (paths, IDNA, percent-encoding) into an allocated
//! `Url`; an Origin needs these exact byte rules, `*.` entries and no allocation per request.

use std::fmt;

/// One allow-list entry, in canonical form; a request's Origin is a [`RequestOrigin`].
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
                    let tail = host.len().checked_sub(suffix.len()).filter(|&at| at > 0);
                    tail.and_then(|at| host.get(at..))
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
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
        let parts = split(value, false)?;
        Ok(RequestOrigin {
            scheme: parts.scheme,
            host: parts.host,
            port: parts.port,
        })
    }

    /// Same-origin test against the host nginx serves the request for: host and port only,
    /// with 80 and 443 dropped on both sides. The scheme is not compared: an authority does
    /// not carry one, and behind TLS termination the page's scheme need not be the
    /// connection's. So `http://h:443` matches `h`; list origins explicitly where that matters.
    pub fn same_host(&self, served: ServedHost<'_>) -> bool {
        // Exact bytes first: browsers send lower case, and nginx lower-cases the name.
        if served.name != self.host && !served.name.eq_ignore_ascii_case(self.host) {
            return false;
        }
        let Ok(other_port) = served.port() else {
            return false;
        };
        let drop_default = |p: Option<u16>| p.filter(|p| *p != 80 && *p != 443);
        let port = match self.port {
            Some(p) => Some(p),
            None => default_port(self.scheme),
        };
        drop_default(port) == drop_default(other_port)
    }
}

/// The host a request is served for, as nginx chose its server block: the name nginx
/// validated, and the authority it took it from, which the port is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedHost<'a> {
    /// `r->headers_in.server`: lower-case, without port or trailing dot.
    pub name: &'a [u8],
    /// `host[:port]` as the client sent it: the `Host` header, the request line's authority
    /// (absolute form), or HTTP/2's `:authority`.
    pub authority: &'a [u8],
}

impl<'a> ServedHost<'a> {
    /// Splits an authority as nginx does (`ngx_http_validate_host`): the name ends at the
    /// first `:` outside a leading `[...]` literal, and a trailing dot is not part of it.
    /// nginx also lower-cases the name; comparisons here ignore case instead.
    pub fn from_authority(authority: &'a [u8]) -> ServedHost<'a> {
        let end = name_end(authority);
        let name = authority.get(..end).unwrap_or_default();
        let name = match name {
            [rest @ .., b'.'] => rest,
            _ => name,
        };
        ServedHost { name, authority }
    }

    /// The port the client named with the host: `None` without one, an error when what
    /// follows the name is not `:` and a port number.
    pub fn port(&self) -> Result<Option<u16>, OriginError> {
        match self
            .authority
            .get(name_end(self.authority)..)
            .unwrap_or_default()
        {
            [] => Ok(None),
            [b':', port @ ..] => parse_port(port).map(Some),
            _ => Err(OriginError::BadPort),
        }
    }
}

/// Where the name of an authority ends, as `ngx_http_validate_host` splits it.
fn name_end(authority: &[u8]) -> usize {
    if authority.first() == Some(&b'[') {
        return authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |close| close + 1);
    }
    authority
        .iter()
        .position(|&b| b == b':')
        .unwrap_or(authority.len())
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
#[derive(Debug)]
struct Parts<'a> {
    scheme: &'a [u8],
    host: &'a [u8],
    port: Option<u16>,
    wildcard: bool,
}

/// Byte classes: what may appear in a scheme, and in a DNS label.
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

fn is(class: u8, b: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

/// Parses `scheme://host[:port]`, a request's Origin or (with `allow_wildcard`) an allow-list
/// entry, in one pass. A refusal names the first fault in this order: no `://`, the scheme, a
/// path, query or user part, an empty host, the port, the host.
fn split(value: &[u8], allow_wildcard: bool) -> Result<Parts<'_>, OriginError> {
    let scheme_len = value.iter().take_while(|&&b| is(SCHEME, b)).count();
    let (scheme, rest) = value.split_at_checked(scheme_len).unwrap_or_default();
    let rest = match rest.strip_prefix(b"://") {
        Some(rest) if scheme.first().is_some_and(u8::is_ascii_alphabetic) => rest,
        // A scheme holds no ':', so a "://" further on follows an invalid one.
        _ if value.windows(3).any(|w| w == b"://") => return Err(OriginError::BadScheme),
        _ => return Err(OriginError::NoScheme),
    };
    let (host, port, wildcard) = split_authority(rest, allow_wildcard).map_err(|e| {
        if rest.iter().any(|b| b"/?#@".contains(b)) {
            OriginError::HasPath
        } else {
            e
        }
    })?;
    Ok(Parts {
        scheme,
        host,
        port: port.filter(|p| Some(*p) != default_port(scheme)),
        wildcard,
    })
}

/// `host[:port]`, where host is a DNS name, `*.` and a DNS name (`allow_wildcard`), or a
/// bracketed IPv6 literal.
fn split_authority(
    s: &[u8],
    allow_wildcard: bool,
) -> Result<(&[u8], Option<u16>, bool), OriginError> {
    if let Some(literal) = s.strip_prefix(b"[") {
        let close = literal
            .iter()
            .position(|&b| b == b']')
            .ok_or(OriginError::BadHost)?;
        let (inner, after) = literal.split_at_checked(close).unwrap_or_default();
        let valid = |b: &u8| b.is_ascii_hexdigit() || b == &b':' || b == &b'.';
        if inner.is_empty() || !inner.iter().all(valid) {
            return Err(OriginError::BadHost);
        }
        let host = s.get(..close + 2).unwrap_or_default();
        let port = match after.get(1..).unwrap_or_default() {
            [] => None,
            [b':', port @ ..] => Some(parse_port(port)?),
            _ => return Err(OriginError::BadHost),
        };
        return Ok((host, port, false));
    }
    let wildcard = allow_wildcard && s.starts_with(b"*.");
    let name = if wildcard {
        s.get(2..).unwrap_or_default()
    } else {
        s
    };
    let (len, valid) = dns_name(name);
    let (host, after) = name.split_at_checked(len).unwrap_or_default();
    let port = match after {
        [] | [b':', ..] if host.is_empty() && !wildcard => return Err(OriginError::BadHost),
        [] => None,
        [b':', port @ ..] => Some(parse_port(port)?),
        _ => return Err(bad_host(s, wildcard)),
    };
    if valid {
        Ok((host, port, wildcard))
    } else {
        Err(OriginError::BadHost)
    }
}

/// The fault in `host[:port]` whose host goes on with a byte no DNS name holds: as for any
/// host, a bad port is named first.
fn bad_host(s: &[u8], wildcard: bool) -> OriginError {
    let (host, port) = match s.iter().position(|&b| b == b':') {
        Some(i) => (s.get(..i).unwrap_or_default(), s.get(i + 1..)),
        None => (s, None),
    };
    if let Some(Err(e)) = port.map(parse_port) {
        return e;
    }
    let name = if wildcard {
        host.get(2..).unwrap_or_default()
    } else {
        host
    };
    if name.contains(&b'*') {
        OriginError::WildcardNotAllowed
    } else {
        OriginError::BadHost
    }
}

/// The length of the run of label bytes and dots that starts `s`, and whether that run is a
/// DNS name: dot-separated non-empty labels of at most 63 bytes, at most 253 in all.
fn dns_name(s: &[u8]) -> (usize, bool) {
    let label_ok = |len: usize| (1..=63).contains(&len);
    let (mut len, mut label_start, mut valid) = (0, 0, true);
    while let Some(&b) = s.get(len) {
        if !is(LABEL, b) {
            if b != b'.' {
                break;
            }
            valid &= label_ok(len - label_start);
            label_start = len + 1;
        }
        len += 1;
    }
    (len, valid && label_ok(len - label_start) && len <= 253)
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

fn lower(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_ascii_lowercase()
}

/// What `wcs_token_auth_origins` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Unset: the Origin must name the host nginx serves the request for.
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
    pub fn allows(
        &self,
        origin: OriginHeader<'_>,
        host: Option<ServedHost<'_>>,
        require: bool,
    ) -> bool {
        match self {
            OriginPolicy::Any => origin != OriginHeader::Absent || !require,
            OriginPolicy::SameOrigin => {
                one_origin(origin, require, |o| host.is_some_and(|h| o.same_host(h)))
            }
            OriginPolicy::AllowList(list) => {
                one_origin(origin, require, |o| list.iter().any(|p| p.matches(&o)))
            }
        }
    }
}

/// A missing Origin passes unless required, several never do, and one must parse and `pass`.
fn one_origin(
    origin: OriginHeader<'_>,
    require: bool,
    pass: impl FnOnce(RequestOrigin<'_>) -> bool,
) -> bool {
    match origin {
        OriginHeader::Absent => !require,
        OriginHeader::Several => false,
        OriginHeader::One(value) => RequestOrigin::parse(value).is_ok_and(pass),
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
            Some(ServedHost::from_authority(b"wcs.example.com")),
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
    fn parts_are_read_with_the_default_port_dropped() {
        for (value, scheme, host, port) in [
            ("https://a.example.com", "https", "a.example.com", None),
            ("HTTPS://A.Example.COM:443", "HTTPS", "A.Example.COM", None),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", Some(8080)),
            ("http://h:443", "http", "h", Some(443)),
            ("WSS://X_Y.z-w:1", "WSS", "X_Y.z-w", Some(1)),
            ("a+b.c-d://h", "a+b.c-d", "h", None),
            ("https://[::1]:8080", "https", "[::1]", Some(8080)),
            ("ws://[::ffff:1.2.3.4]", "ws", "[::ffff:1.2.3.4]", None),
        ] {
            let p = split(value.as_bytes(), false).unwrap();
            let want = (scheme.as_bytes(), host.as_bytes(), port, false);
            assert_eq!((p.scheme, p.host, p.port, p.wildcard), want, "{value}");
        }
        let p = split(b"https://*.a.b:8443", true).unwrap();
        assert_eq!(
            (p.host, p.port, p.wildcard),
            (&b"a.b"[..], Some(8443), true)
        );
    }

    #[test]
    fn an_entry_matches_its_own_text_in_any_letter_case() {
        for v in ["https://A.b.com:8443", "http://[::1]:80", "wss://x.y"] {
            let entry = Origin::parse_pattern(v.as_bytes()).unwrap();
            for text in [
                v.to_string(),
                v.to_ascii_lowercase(),
                v.to_ascii_uppercase(),
            ] {
                let origin = RequestOrigin::parse(text.as_bytes()).unwrap();
                assert!(entry.matches(&origin), "{v} vs {text}");
            }
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
    fn same_origin_compares_with_the_served_authority() {
        let p = OriginPolicy::SameOrigin;
        let same = |o: &str, h: &str| {
            let served = ServedHost::from_authority(h.as_bytes());
            p.allows(OriginHeader::One(o.as_bytes()), Some(served), false)
        };
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
        assert!(
            same("https://wcs.example.com", "wcs.example.com."),
            "nginx drops the dot"
        );
        assert!(same("http://wcs.example.com:8080", "wcs.example.com.:8080"));
        assert!(!p.allows(OriginHeader::One(b"https://wcs.example.com"), None, false));
    }

    #[test]
    fn the_name_nginx_serves_decides_and_the_authority_gives_the_port() {
        // An absolute-form request line: nginx serves "localhost" whatever Host says.
        let served = |name: &'static str, authority: &'static str| ServedHost {
            name: name.as_bytes(),
            authority: authority.as_bytes(),
        };
        let o = |v: &'static str| RequestOrigin::parse(v.as_bytes()).unwrap();
        assert!(o("http://localhost").same_host(served("localhost", "LocalHost")));
        assert!(!o("http://evil.com").same_host(served("localhost", "localhost")));
        assert!(o("http://localhost:8080").same_host(served("localhost", "localhost:8080")));
        assert!(!o("http://localhost:8080").same_host(served("localhost", "localhost:8081")));
        assert!(!o("http://localhost:8080").same_host(served("localhost", "localhost")));
        assert!(!o("http://localhost").same_host(served("localhost", "localhost:x")));
    }

    #[test]
    fn authorities_split_as_nginx_splits_them() {
        for (authority, name, port) in [
            ("h", "h", Ok(None)),
            ("h:8080", "h", Ok(Some(8080))),
            ("h.:8080", "h", Ok(Some(8080))),
            ("h.", "h", Ok(None)),
            ("[::1]:8080", "[::1]", Ok(Some(8080))),
            ("[::1]", "[::1]", Ok(None)),
            ("[::1", "[::1", Ok(None)),
            ("h:", "h", Err(OriginError::BadPort)),
            ("h:80:80", "h", Err(OriginError::BadPort)),
            ("[::1]x", "[::1]", Err(OriginError::BadPort)),
            ("", "", Ok(None)),
        ] {
            let served = ServedHost::from_authority(authority.as_bytes());
            assert_eq!(served.name, name.as_bytes(), "{authority}");
            assert_eq!(served.port(), port, "{authority}");
        }
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
        assert!(!OriginPolicy::SameOrigin.allows(
            OriginHeader::Several,
            Some(ServedHost::from_authority(b"a.com")),
            false
        ));
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

    #[test]
    fn a_refusal_names_the_first_fault() {
        let err = |s: &str| Origin::parse_pattern(s.as_bytes()).unwrap_err();
        assert_eq!(
            err("1http://a.com/"),
            OriginError::BadScheme,
            "scheme, then path"
        );
        assert_eq!(
            err("https://a b/c"),
            OriginError::HasPath,
            "path, then host"
        );
        assert_eq!(
            err("https://:8x"),
            OriginError::BadHost,
            "empty host, then port"
        );
        assert_eq!(
            err("https://a..b:8x"),
            OriginError::BadPort,
            "port, then host"
        );
        assert_eq!(err("https://a!*:0"), OriginError::BadPort);
        assert_eq!(err("https://a!*"), OriginError::WildcardNotAllowed);
        assert_eq!(err("https://*.a!b"), OriginError::BadHost);
        assert_eq!(err("https://*.:443"), OriginError::BadHost);
        assert_eq!(err("https://[::1]x"), OriginError::BadHost);
        assert_eq!(err("https://[::1]:x"), OriginError::BadPort);
        assert_eq!(err("https://[::1"), OriginError::BadHost);
        assert_eq!(err("https://[]"), OriginError::BadHost);
        assert_eq!(err("https://[g]"), OriginError::BadHost);
    }

    #[test]
    fn names_keep_dns_lengths() {
        let ok = |s: String| RequestOrigin::parse(s.as_bytes()).is_ok();
        assert!(ok(format!("https://{}.com", "a".repeat(63))));
        assert!(!ok(format!("https://{}.com", "a".repeat(64))));
        assert!(
            ok(format!("https://{}", vec!["a".repeat(49); 5].join("."))),
            "249 bytes"
        );
        assert!(
            !ok(format!("https://{}", vec!["a".repeat(50); 5].join("."))),
            "254 bytes"
        );
        for bad in ["https://.a", "https://a.", "https://a..b", "https://"] {
            assert!(!ok(bad.to_string()), "{bad}");
        }
    }
}
