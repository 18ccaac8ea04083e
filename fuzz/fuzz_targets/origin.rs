//! `Origin` parsing and matching, and `OriginPolicy::allows`.
//!
//! Input lines: an allow-list entry, a request `Origin` value, an authority (`Host`, the
//! request line's, `:authority`).
//!
//! Properties: without a `*`, a value is a valid request Origin exactly when it is a valid
//! entry; a parsed request Origin has no wildcard, path, query or user part, and parses in any
//! letter case; every entry matches the same text sent as an Origin, in any case; whenever
//! an entry matches, an independent reading of both texts agrees (same scheme, same port with
//! defaults dropped, same host, or for `*.domain` a host ending in `.domain` at a label
//! boundary with at least one label in front); in particular `https://*.example.com` only
//! matches hosts ending in `.example.com` at a label boundary; a same-origin match means the
//! same host (a trailing dot aside) and port as the authority, and the answer is the same
//! whether the name is given as sent or lower-cased as nginx gives it; the policy refuses
//! what does not parse, several Origin headers and, when required, a missing one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::origin::{Origin, OriginHeader, OriginPolicy, RequestOrigin, ServedHost};
use wcs_token_auth_fuzz::fields;

/// An independent reading of `scheme://host[:port]`: lower-cased scheme and host, port with
/// the scheme's default dropped. `None` where it does not even have that shape.
fn canon(s: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Option<u16>)> {
    let s = s.to_ascii_lowercase();
    let sep = s.windows(3).position(|w| w == b"://")?;
    let (scheme, authority) = (&s[..sep], &s[sep + 3..]);
    let (host, port) = split_host_port(authority)?;
    let default = match scheme {
        b"http" | b"ws" => Some(80),
        b"https" | b"wss" => Some(443),
        _ => None,
    };
    let port = port.filter(|p| Some(*p) != default);
    Some((scheme.to_vec(), host.to_vec(), port))
}

fn split_host_port(a: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let colon = if a.first() == Some(&b'[') {
        let close = a.iter().position(|&b| b == b']')?;
        match a.get(close + 1) {
            None => None,
            Some(b':') => Some(close + 1),
            Some(_) => return None,
        }
    } else {
        a.iter().position(|&b| b == b':')
    };
    match colon {
        None => Some((a, None)),
        Some(i) => {
            let digits = std::str::from_utf8(&a[i + 1..]).ok()?;
            Some((&a[..i], Some(digits.parse().ok()?)))
        }
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `host` is `something.domain` where `something` ends with a whole label.
fn is_subdomain_of(host: &[u8], domain: &[u8]) -> bool {
    host.len() > domain.len() + 1
        && host.ends_with(domain)
        && host[host.len() - domain.len() - 1] == b'.'
        && is_label_byte(host[host.len() - domain.len() - 2])
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data);
    let pattern_text = f[0];
    let origin_text = f.get(1).copied().unwrap_or_default();
    let host_text = f.get(2).copied();
    let served = host_text.map(ServedHost::from_authority);

    // A request Origin and an allow-list entry are read by the same parser: without a `*`,
    // they accept exactly the same values.
    let origin = RequestOrigin::parse(origin_text);
    if !origin_text.contains(&b'*') {
        let entry = Origin::parse_pattern(origin_text);
        assert_eq!(entry.is_ok(), origin.is_ok(), "{origin_text:?}");
    }
    if let Ok(o) = &origin {
        let sep = origin_text.windows(3).position(|w| w == b"://").unwrap();
        let authority = &origin_text[sep + 3..];
        assert!(
            !authority.iter().any(|b| b"*/?#@".contains(b)),
            "{origin_text:?}"
        );
        let itself = Origin::parse_pattern(origin_text).expect("an Origin is a valid entry");
        assert!(itself.matches(o), "an entry matches its own text");
        for text in [
            origin_text.to_ascii_lowercase(),
            origin_text.to_ascii_uppercase(),
        ] {
            let other = RequestOrigin::parse(&text).expect("an Origin parses in any letter case");
            assert!(itself.matches(&other), "{text:?}");
        }
    }

    let wildcard = Origin::parse_pattern(b"https://*.example.com").unwrap();
    if let Ok(o) = &origin {
        if wildcard.matches(o) {
            let (scheme, host, port) = canon(origin_text).expect("a matched origin reads back");
            assert_eq!(scheme, b"https");
            assert_eq!(port, None);
            assert!(
                is_subdomain_of(&host, b"example.com"),
                "{}",
                host.escape_ascii()
            );
        }
    }

    let pattern = Origin::parse_pattern(pattern_text);
    if let (Ok(p), Ok(o)) = (&pattern, &origin) {
        if p.matches(o) {
            let (ps, ph, pp) = canon(pattern_text).expect("an entry reads back");
            let (os, oh, op) = canon(origin_text).expect("an origin reads back");
            assert_eq!(ps, os);
            assert_eq!(pp, op);
            match ph.strip_prefix(b"*.") {
                Some(domain) => assert!(is_subdomain_of(&oh, domain), "{oh:?} vs {ph:?}"),
                None => assert_eq!(ph, oh),
            }
        }
    }

    if let (Ok(o), Some(h), Some(served)) = (&origin, host_text, served) {
        let lowered = served.name.to_ascii_lowercase();
        let as_nginx_gives_it = ServedHost {
            name: &lowered,
            authority: h,
        };
        assert_eq!(o.same_host(served), o.same_host(as_nginx_gives_it));
        if o.same_host(served) {
            let (os, oh, op) = canon(origin_text).unwrap();
            let (hh, hp) = split_host_port(h).expect("a matching authority reads back");
            let hh = hh.strip_suffix(b".").unwrap_or(hh);
            assert_eq!(oh, hh.to_ascii_lowercase());
            let default = match os.as_slice() {
                b"http" | b"ws" => Some(80),
                b"https" | b"wss" => Some(443),
                _ => None,
            };
            let drop = |p: Option<u16>| p.filter(|p| *p != 80 && *p != 443);
            assert_eq!(drop(op.or(default)), drop(hp));
        }
    }

    // The policy as the handler uses it.
    if let Ok(p) = &pattern {
        let policy = OriginPolicy::AllowList(vec![p.clone()]);
        let allowed = policy.allows(OriginHeader::One(origin_text), served, true);
        assert_eq!(allowed, origin.as_ref().is_ok_and(|o| p.matches(o)));
        assert!(!policy.allows(OriginHeader::Several, served, false));
        assert!(!policy.allows(OriginHeader::Absent, served, true));
    }
    let same = OriginPolicy::SameOrigin.allows(OriginHeader::One(origin_text), served, false);
    let expected = match (&origin, served) {
        (Ok(o), Some(h)) => o.same_host(h),
        _ => false,
    };
    assert_eq!(same, expected);
});
