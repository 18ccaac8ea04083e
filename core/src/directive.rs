//! Parsing directive arguments, with nginx's own syntax where nginx has one.

/// Time units as nginx's `ngx_parse_time` knows them, largest first, in milliseconds.
const UNITS: [(&[u8], u64); 8] = [
    (b"y", 365 * 86_400_000),
    (b"M", 30 * 86_400_000),
    (b"w", 7 * 86_400_000),
    (b"d", 86_400_000),
    (b"h", 3_600_000),
    (b"ms", 1),
    (b"m", 60_000),
    (b"s", 1000),
];

/// Parses an nginx time such as `1s`, `500ms`, `1h30m` or `90` (seconds) into milliseconds.
/// Units must be given largest first, each at most once, as nginx requires.
pub fn parse_time_ms(value: &[u8]) -> Option<u64> {
    let mut rest = value;
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n = rest[..digits].iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        rest = &rest[digits..];
        let unit = if rest.is_empty() {
            1000 // a bare number is seconds
        } else {
            let (name, ms) = UNITS.iter().find(|(name, _)| rest.starts_with(name))?;
            rest = &rest[name.len()..];
            *ms
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// A time in whole seconds (`ms` is refused), as for `wcs_token_auth_max_age`.
pub fn parse_time_secs(value: &[u8]) -> Option<u64> {
    if value.windows(2).any(|w| w == b"ms") {
        return None;
    }
    parse_time_ms(value).map(|ms| ms / 1000)
}

/// Largest accepted `wcs_token_auth_cache_size`; far above any sane setting.
pub const MAX_CACHE_SIZE: u64 = 100_000_000;

/// A positive entry count.
pub fn parse_cache_size(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    (1..=MAX_CACHE_SIZE).contains(&n).then_some(n as usize)
}

/// RFC 6265 cookie-name: an RFC 7230 token.
pub fn is_cookie_name(value: &[u8]) -> bool {
    is_http_token(value)
}

/// RFC 7230 field-name: a token.
pub fn is_header_name(value: &[u8]) -> bool {
    is_http_token(value)
}

/// Headers the access decision or the WebSocket handshake depends on: the module must never
/// replace them with the client address.
pub fn is_reserved_header(name: &[u8]) -> bool {
    const RESERVED: [&[u8]; 9] = [
        b"host",
        b"cookie",
        b"origin",
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn is_http_token(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_nginx_syntax() {
        assert_eq!(parse_time_ms(b"1s"), Some(1000));
        assert_eq!(parse_time_ms(b"0"), Some(0));
        assert_eq!(parse_time_ms(b"90"), Some(90_000));
        assert_eq!(parse_time_ms(b"500ms"), Some(500));
        assert_eq!(parse_time_ms(b"2m"), Some(120_000));
        assert_eq!(parse_time_ms(b"1h30m"), Some(5_400_000));
        assert_eq!(parse_time_ms(b"1d"), Some(86_400_000));
        assert_eq!(parse_time_ms(b"1M"), Some(30 * 86_400_000));
        assert_eq!(parse_time_ms(b"1m500ms"), Some(60_500));
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            &b""[..],
            b"s",
            b"1x",
            b"-1s",
            b"1.5s",
            b"1s1h",
            b"1s1s",
            b"1 s",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{:?}", bad.escape_ascii());
        }
    }

    #[test]
    fn max_age_is_whole_seconds() {
        assert_eq!(parse_time_secs(b"1h"), Some(3600));
        assert_eq!(parse_time_secs(b"30"), Some(30));
        assert_eq!(parse_time_secs(b"500ms"), None);
    }

    #[test]
    fn cache_size_is_a_positive_count() {
        assert_eq!(parse_cache_size(b"10000"), Some(10_000));
        assert_eq!(parse_cache_size(b"1"), Some(1));
        for bad in [&b"0"[..], b"", b"-5", b"10k", b"1e3", b"999999999999999"] {
            assert_eq!(parse_cache_size(bad), None);
        }
    }

    #[test]
    fn handshake_and_decision_headers_are_reserved() {
        for name in [
            &b"Origin"[..],
            b"COOKIE",
            b"Sec-WebSocket-Key",
            b"upgrade",
            b"Host",
        ] {
            assert!(is_reserved_header(name));
        }
        assert!(!is_reserved_header(b"X-Client-IP"));
        assert!(!is_reserved_header(b"X-Origin"));
    }

    #[test]
    fn names_are_http_tokens() {
        assert!(is_cookie_name(b"AUTH"));
        assert!(is_header_name(b"X-Client-IP"));
        for bad in [&b""[..], b"a b", b"a=b", b"a;b", b"a:b", b"\xff"] {
            assert!(!is_cookie_name(bad));
            assert!(!is_header_name(bad));
        }
    }
}
