//! Every directive value's rule and, for a broken value, the reason `nginx -t` prints after
//! `invalid value "V" in "NAME" directive, `. Times use nginx's own syntax.

use crate::header_name::{cgi_name, same_cgi_name};

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

/// `wcs_token_auth`: a directory (`Some`), or `off` (`None`).
pub fn token_dir(value: &[u8]) -> Result<Option<&[u8]>, &'static str> {
    match value {
        b"off" => Ok(None),
        b"" => Err("it must be a directory or \"off\""),
        v if v.contains(&0) => Err("it contains a NUL byte"),
        v => Ok(Some(v)),
    }
}

/// `wcs_token_auth [DIR] [jwks=FILE] | off`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuth<'a> {
    Off,
    /// At least one of the two is set.
    On {
        dir: Option<&'a [u8]>,
        jwks: Option<&'a [u8]>,
    },
}

/// `wcs_token_auth`'s arguments: `off` alone, or a directory and a `jwks=` key set file,
/// each at most once, at least one of them. `Err` names the argument at fault.
pub fn token_auth<'a>(args: &[&'a [u8]]) -> Result<TokenAuth<'a>, (&'a [u8], &'static str)> {
    let (mut dir, mut jwks) = (None, None);
    for &arg in args {
        if arg.contains(&0) {
            return Err((arg, "it contains a NUL byte"));
        }
        if arg == b"off" {
            return match args.len() {
                1 => Ok(TokenAuth::Off),
                _ => Err((arg, "\"off\" takes no other parameter")),
            };
        }
        if let Some(file) = arg.strip_prefix(b"jwks=") {
            if jwks.is_some() {
                return Err((arg, "\"jwks=\" is given twice"));
            }
            if file.is_empty() {
                return Err((arg, "\"jwks=\" must name a key set file"));
            }
            jwks = Some(file);
        } else if arg.is_empty() {
            return Err((arg, "it must be a directory, \"jwks=FILE\" or \"off\""));
        } else if dir.replace(arg).is_some() {
            return Err((arg, "only one token directory may be given"));
        }
    }
    match (dir, jwks) {
        (None, None) => Err((b"", "it must be a directory, \"jwks=FILE\" or \"off\"")),
        (dir, jwks) => Ok(TokenAuth::On { dir, jwks }),
    }
}

/// `wcs_token_auth_jwt_leeway`: whole seconds, 0 allowed.
pub fn jwt_leeway(value: &[u8]) -> Result<u64, &'static str> {
    parse_time_secs(value).ok_or("it must be a time in whole seconds, such as 30s or 0")
}

/// `wcs_token_auth_jwt_issuer` and `_audience`: the text a claim must hold, compared as
/// JSON strings are, so UTF-8.
pub fn jwt_claim_text(value: &[u8]) -> Result<String, &'static str> {
    match std::str::from_utf8(value) {
        Ok("") => Err("it must not be empty"),
        Ok(v) => Ok(v.to_owned()),
        Err(_) => Err("it must be UTF-8 text"),
    }
}

/// `wcs_token_auth_revoked`: a directory (`Some`), or `off` (`None`).
pub fn revoked_dir(value: &[u8]) -> Result<Option<&[u8]>, &'static str> {
    match value {
        b"off" => Ok(None),
        b"" => Err("it must be a directory or \"off\""),
        v if v.contains(&0) => Err("it contains a NUL byte"),
        v => Ok(Some(v)),
    }
}

/// `wcs_token_auth_cookie`: an RFC 6265 cookie-name, that is an RFC 7230 token.
pub fn cookie_name(value: &[u8]) -> Result<&[u8], &'static str> {
    match is_http_token(value) {
        true => Ok(value),
        false => Err("it must be a cookie name"),
    }
}

/// `wcs_token_auth_client_ip_header`: a header name (`Some`), or `off` (`None`).
///
/// Refused: headers nginx keeps a pointer to in `r->headers_in` (`parsed_by_nginx` knows
/// them; replacing one behind nginx's back would leave that pointer on an unlinked entry), and
/// headers the access decision or the WebSocket handshake needs. The request path removes
/// every spelling that [`same_cgi_name`] matches, so both checks see the name that way:
/// `parsed_by_nginx` gets it lower-cased with `_` written as `-` (`x-forwarded-for` for
/// `X_Forwarded_For`).
pub fn client_ip_header(
    value: &[u8],
    parsed_by_nginx: impl FnOnce(&[u8]) -> bool,
) -> Result<Option<&[u8]>, &'static str> {
    match value {
        b"off" => Ok(None),
        v if !is_http_token(v) => Err("it must be a header name or \"off\""),
        v => {
            let folded = cgi_name(v);
            if parsed_by_nginx(&folded) {
                Err("nginx itself parses this header")
            } else if is_reserved_header(&folded) {
                Err("the access check or the WebSocket handshake needs this header")
            } else {
                Ok(Some(v))
            }
        }
    }
}

/// `wcs_token_auth_max_age`: whole seconds, at least one (`Some`), or `off` (`None`).
pub fn max_age(value: &[u8]) -> Result<Option<u64>, &'static str> {
    match value {
        b"off" => Ok(None),
        v => match parse_time_secs(v) {
            Some(secs) if secs > 0 => Ok(Some(secs)),
            _ => Err("it must be a time of 1s or more, or \"off\""),
        },
    }
}

/// The longest `wcs_token_auth_session_check`: nginx compares timer keys as signed 32-bit
/// differences on 32-bit targets, so a later due time would read as already past.
pub const MAX_SESSION_CHECK_MS: u64 = 24 * 86_400 * 1000;

/// `wcs_token_auth_session_check`: how often open sessions are re-checked, in milliseconds
/// (`Some`, from 1 ms to [`MAX_SESSION_CHECK_MS`]), or `off` (`None`).
pub fn session_check(value: &[u8]) -> Result<Option<u64>, &'static str> {
    match value {
        b"off" => Ok(None),
        v => match parse_time_ms(v) {
            Some(ms) if ms > 0 && ms <= MAX_SESSION_CHECK_MS => Ok(Some(ms)),
            _ => Err("it must be a time from 1ms to 24d, such as 1s or 500ms, or \"off\""),
        },
    }
}

/// `wcs_token_auth_cache_ttl`, in milliseconds; 0 turns the cache off.
pub fn cache_ttl(value: &[u8]) -> Result<u64, &'static str> {
    parse_time_ms(value).ok_or("it must be a time such as 1s or 500ms")
}

/// `wcs_token_auth_cache_size`: an entry count from 1 to [`MAX_CACHE_SIZE`].
pub fn cache_size(value: &[u8]) -> Result<usize, &'static str> {
    const WHY: &str = "it must be a number from 1 to 100000000";
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return Err(WHY);
    }
    let n = value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    match (1..=MAX_CACHE_SIZE).contains(&n) {
        true => Ok(n as usize),
        false => Err(WHY),
    }
}

/// Headers the access decision or the WebSocket handshake depends on: the module must never
/// replace them with the client address. `name` is as [`cgi_name`] writes it.
fn is_reserved_header(name: &[u8]) -> bool {
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
    RESERVED.iter().any(|r| same_cgi_name(r, name))
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
    fn token_dir_is_a_path_or_off() {
        assert_eq!(token_dir(b"off"), Ok(None));
        assert_eq!(token_dir(b"tokens"), Ok(Some(&b"tokens"[..])));
        assert_eq!(token_dir(b""), Err("it must be a directory or \"off\""));
        assert_eq!(token_dir(b"a\0b"), Err("it contains a NUL byte"));
    }

    #[test]
    fn token_auth_takes_a_directory_a_key_set_or_both() {
        let on = |dir: Option<&'static [u8]>, jwks: Option<&'static [u8]>| {
            Ok(TokenAuth::On { dir, jwks })
        };
        assert_eq!(token_auth(&[b"off"]), Ok(TokenAuth::Off));
        assert_eq!(token_auth(&[b"tokens"]), on(Some(b"tokens"), None));
        assert_eq!(token_auth(&[b"jwks=k.json"]), on(None, Some(b"k.json")));
        assert_eq!(
            token_auth(&[b"jwks=k.json", b"/t"]),
            on(Some(b"/t"), Some(b"k.json")),
            "in either order"
        );
        assert_eq!(
            token_auth(&[b"/t", b"jwks=/k"]),
            on(Some(b"/t"), Some(b"/k"))
        );
    }

    #[test]
    fn token_auth_refusals_name_the_argument() {
        type Case = (&'static [&'static [u8]], &'static [u8], &'static str);
        let cases: [Case; 8] = [
            (
                &[b"jwks=a", b"jwks=b"],
                b"jwks=b",
                "\"jwks=\" is given twice",
            ),
            (
                &[b"off", b"jwks=x"],
                b"off",
                "\"off\" takes no other parameter",
            ),
            (
                &[b"jwks=x", b"off"],
                b"off",
                "\"off\" takes no other parameter",
            ),
            (
                &[b"/a", b"/b"],
                b"/b",
                "only one token directory may be given",
            ),
            (&[b"jwks="], b"jwks=", "\"jwks=\" must name a key set file"),
            (&[b"a\0b"], b"a\0b", "it contains a NUL byte"),
            (
                &[b""],
                b"",
                "it must be a directory, \"jwks=FILE\" or \"off\"",
            ),
            (&[], b"", "it must be a directory, \"jwks=FILE\" or \"off\""),
        ];
        for (args, value, why) in cases {
            assert_eq!(token_auth(args), Err((value, why)), "{args:?}");
        }
    }

    #[test]
    fn jwt_values() {
        assert_eq!(jwt_leeway(b"0"), Ok(0));
        assert_eq!(jwt_leeway(b"30s"), Ok(30));
        assert_eq!(jwt_leeway(b"2m"), Ok(120));
        for bad in [&b"500ms"[..], b"", b"-1", b"soon"] {
            assert!(jwt_leeway(bad).is_err(), "{}", bad.escape_ascii());
        }
        assert_eq!(jwt_claim_text(b"https://idp"), Ok("https://idp".into()));
        assert_eq!(jwt_claim_text(b""), Err("it must not be empty"));
        assert_eq!(jwt_claim_text(b"\xff"), Err("it must be UTF-8 text"));
        assert_eq!(revoked_dir(b"off"), Ok(None));
        assert_eq!(revoked_dir(b"/r"), Ok(Some(&b"/r"[..])));
        assert!(revoked_dir(b"").is_err() && revoked_dir(b"a\0").is_err());
    }

    #[test]
    fn cookie_names_are_http_tokens() {
        assert_eq!(cookie_name(b"AUTH"), Ok(&b"AUTH"[..]));
        for bad in [&b""[..], b"a b", b"a=b", b"a;b", b"a:b", b"\xff"] {
            assert_eq!(cookie_name(bad), Err("it must be a cookie name"));
        }
    }

    #[test]
    fn client_ip_header_rules_apply_in_order() {
        // Exact comparison: the name arrives folded, as nginx's table spells it in lower case.
        let nginx = |v: &[u8]| v == b"x-forwarded-for" || v == b"host";
        assert_eq!(client_ip_header(b"off", nginx), Ok(None));
        assert_eq!(
            client_ip_header(b"X-Client-IP", nginx),
            Ok(Some(&b"X-Client-IP"[..]))
        );
        for bad in [&b""[..], b"X Client", b"a:b", b"\xff"] {
            assert_eq!(
                client_ip_header(bad, nginx),
                Err("it must be a header name or \"off\"")
            );
        }
        // Host is both parsed by nginx and reserved: nginx's reason comes first.
        for parsed in [
            &b"X-Forwarded-For"[..],
            b"Host",
            b"X_Forwarded_For",
            b"x_forwarded-FOR",
            b"HOST",
        ] {
            assert_eq!(
                client_ip_header(parsed, nginx),
                Err("nginx itself parses this header")
            );
        }
        for reserved in [
            &b"Origin"[..],
            b"COOKIE",
            b"Sec-WebSocket-Key",
            b"upgrade",
            b"connection",
            b"Sec_WebSocket_Key",
            b"sec-websocket_VERSION",
            b"Sec_WebSocket_Protocol",
            b"SEC_WEBSOCKET_EXTENSIONS",
        ] {
            assert_eq!(
                client_ip_header(reserved, nginx),
                Err("the access check or the WebSocket handshake needs this header")
            );
        }
        assert_eq!(
            client_ip_header(b"X-Origin", nginx),
            Ok(Some(&b"X-Origin"[..]))
        );
        // Kept as written: the request path matches every spelling of it.
        assert_eq!(
            client_ip_header(b"X_Client_IP", nginx),
            Ok(Some(&b"X_Client_IP"[..]))
        );
        for near in [
            &b"X-Forwarded-Fo"[..],
            b"XForwarded-For",
            b"X.Forwarded.For",
        ] {
            assert_eq!(client_ip_header(near, nginx), Ok(Some(near)));
        }
    }

    #[test]
    fn max_age_is_one_second_or_more_or_off() {
        assert_eq!(max_age(b"off"), Ok(None));
        assert_eq!(max_age(b"1h30m"), Ok(Some(5400)));
        assert_eq!(max_age(b"1"), Ok(Some(1)));
        for bad in [&b"500ms"[..], b"0", b"0s", b"999ms", b"soon", b""] {
            assert_eq!(
                max_age(bad),
                Err("it must be a time of 1s or more, or \"off\""),
                "{:?}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn session_check_is_a_positive_time_or_off() {
        assert_eq!(session_check(b"off"), Ok(None));
        assert_eq!(session_check(b"1s"), Ok(Some(1000)));
        assert_eq!(session_check(b"250ms"), Ok(Some(250)));
        assert_eq!(session_check(b"2"), Ok(Some(2000)));
        assert_eq!(session_check(b"24d"), Ok(Some(MAX_SESSION_CHECK_MS)));
        for bad in [
            &b""[..],
            b"0",
            b"0s",
            b"on",
            b"-1s",
            b"1x",
            b"24d1ms",
            b"1y",
            b"300000000y",
        ] {
            assert!(session_check(bad).is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn cache_ttl_is_an_nginx_time_in_ms() {
        assert_eq!(cache_ttl(b"500ms"), Ok(500));
        assert_eq!(cache_ttl(b"1s"), Ok(1000));
        assert_eq!(cache_ttl(b"0"), Ok(0));
        for bad in [&b"soon"[..], b"1x", b""] {
            assert_eq!(cache_ttl(bad), Err("it must be a time such as 1s or 500ms"));
        }
    }

    #[test]
    fn cache_size_is_a_positive_count() {
        assert_eq!(cache_size(b"10000"), Ok(10_000));
        assert_eq!(cache_size(b"1"), Ok(1));
        assert_eq!(cache_size(b"100000000"), Ok(100_000_000));
        for bad in [
            &b"0"[..],
            b"",
            b"-5",
            b"10k",
            b"1e3",
            b"100000001",
            b"999999999999999",
        ] {
            assert_eq!(
                cache_size(bad),
                Err("it must be a number from 1 to 100000000")
            );
        }
    }

    #[test]
    fn cache_size_message_names_the_real_bound() {
        let why = cache_size(b"0").unwrap_err();
        assert!(why.ends_with(&format!(" {MAX_CACHE_SIZE}")), "{why}");
    }
}
