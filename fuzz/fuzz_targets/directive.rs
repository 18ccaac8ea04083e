//! Directive arguments: nginx time syntax, `wcs_token_auth_cache_size`, cookie and header
//! names, reserved headers and the `wcs_token_auth_origins` argument list.
//!
//! The whole input is tried as each kind of argument, and split at spaces as an argument list;
//! the same bytes also drive a structured round trip of the time syntax.
//!
//! Properties: a time built from units (largest first, each once, an optional bare number of
//! seconds last) parses to its exact sum, and any other order is refused; an accepted time has
//! only digits and unit letters; `max_age` is `time / 1000` and refuses `ms`; an accepted cache
//! size is 1..=MAX_CACHE_SIZE written in decimal; an accepted name is a non-empty RFC 7230
//! token; a header's verdict ignores letter case and `_` against `-`, and no spelling of a
//! header nginx parses or the check needs is accepted; two header names are the same CGI name
//! exactly when they are equal once lower-cased with `_` read as `-`; the origin list is `any`
//! alone, or every argument parsed as an entry, or the first bad argument with its reason.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::directive::{self, MAX_CACHE_SIZE};
use wcs_token_auth_core::header_name::same_cgi_name;
use wcs_token_auth_core::origin::{Origin, OriginError, OriginPolicy};

const UNITS: [(&str, u64); 8] = [
    ("y", 365 * 86_400_000),
    ("M", 30 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

fn time_round_trip(u: &mut Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<()> {
    let parts: Vec<(u32, u8)> = Vec::arbitrary(u)?;
    let bare: Option<u32> = Option::arbitrary(u)?;
    let mut text = String::new();
    let mut expected = Some(0u64);
    let mut last = u64::MAX;
    for &(n, unit) in parts.iter().take(10) {
        let (name, ms) = UNITS[usize::from(unit) % UNITS.len()];
        text.push_str(&format!("{n}{name}"));
        expected = if ms < last {
            expected.and_then(|t| t.checked_add(u64::from(n).checked_mul(ms)?))
        } else {
            None
        };
        last = ms;
    }
    if let Some(n) = bare {
        text.push_str(&n.to_string());
        expected = if 1000 < last {
            expected.and_then(|t| t.checked_add(u64::from(n) * 1000))
        } else {
            None
        };
    }
    if text.is_empty() {
        expected = None;
    }
    assert_eq!(
        directive::parse_time_ms(text.as_bytes()),
        expected,
        "{text}"
    );
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let _ = time_round_trip(&mut Unstructured::new(data));

    let ms = directive::parse_time_ms(data);
    if ms.is_some() {
        assert!(data
            .iter()
            .all(|b| b.is_ascii_digit() || b"yMwdhms".contains(b)));
        assert!(data.first().is_some_and(u8::is_ascii_digit));
    }
    let secs = directive::parse_time_secs(data);
    if data.windows(2).any(|w| w == b"ms") {
        assert_eq!(secs, None);
    } else {
        assert_eq!(secs, ms.map(|m| m / 1000));
    }

    if let Ok(n) = directive::cache_size(data) {
        assert!((1..=MAX_CACHE_SIZE as usize).contains(&n));
        let digits: Vec<u8> = data.iter().copied().skip_while(|&b| b == b'0').collect();
        assert_eq!(digits, n.to_string().into_bytes());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = s.parse::<u64>() {
            if !s.starts_with('+') && s.len() <= 12 {
                let ok = (1..=MAX_CACHE_SIZE).contains(&n);
                assert_eq!(directive::cache_size(data).is_ok(), ok, "{s}");
            }
        }
    }

    let token = !data.is_empty() && data.iter().all(|&b| is_tchar(b));
    assert_eq!(directive::cookie_name(data).is_ok(), token);

    // A header's verdict ignores letter case and `_` against `-`; no spelling of a header
    // nginx parses (modelled by one, compared exactly) or one the check needs gets through;
    // only "off" means off; what is kept is the name.
    let nginx = |v: &[u8]| v == b"x-forwarded-for";
    let why = |v: &[u8]| directive::client_ip_header(v, nginx).err();
    let dashed: Vec<u8> = data
        .iter()
        .map(|&c| if c == b'_' { b'-' } else { c })
        .collect();
    let underscored: Vec<u8> = data
        .iter()
        .map(|&c| if c == b'-' { b'_' } else { c })
        .collect();
    assert_eq!(why(data), why(&data.to_ascii_uppercase()));
    assert_eq!(why(data), why(&data.to_ascii_lowercase()));
    assert_eq!(why(data), why(&dashed));
    assert_eq!(why(data), why(&underscored));
    for protected in [&b"X-Forwarded-For"[..], b"Cookie", b"Sec-WebSocket-Key"] {
        if same_cgi_name(data, protected) {
            assert!(why(data).is_some(), "{:?}", String::from_utf8_lossy(data));
        }
    }
    match directive::client_ip_header(data, nginx) {
        Ok(None) => assert_eq!(data, b"off"),
        Ok(Some(name)) => assert!(token && name == data),
        Err(_) => {}
    }
    if !token {
        assert!(why(data).is_some(), "a header name is a token");
    }

    let args: Vec<&[u8]> = data.split(|&b| b == b' ').collect();
    match OriginPolicy::from_args(args.iter().copied()) {
        Ok(OriginPolicy::Any) => assert_eq!(args, [b"any"]),
        Ok(OriginPolicy::AllowList(list)) => {
            assert_eq!(list.len(), args.len());
            for (entry, arg) in list.iter().zip(&args) {
                assert_ne!(*arg, b"any");
                assert_eq!(Origin::parse_pattern(arg).as_ref(), Ok(entry));
            }
        }
        Ok(OriginPolicy::SameOrigin) => panic!("arguments never mean same-origin"),
        Err((bad, why)) => {
            let i = args
                .iter()
                .position(|a| std::ptr::eq(*a, bad))
                .expect("the bad argument is one of the arguments");
            let ok = |a: &&[u8]| *a != b"any" && Origin::parse_pattern(a).is_ok();
            assert!(args[..i].iter().all(ok), "not the first bad argument");
            if bad == b"any" {
                assert_eq!(why, OriginError::AnyNotAlone);
            } else {
                assert_eq!(Origin::parse_pattern(bad).err(), Some(why));
            }
        }
    }

    // Header names as CGI reads them, the two halves of the input against each other.
    let (a, b) = data.split_at(data.len() / 2);
    let cgi = |n: &[u8]| -> Vec<u8> {
        n.iter()
            .map(|&c| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    assert_eq!(same_cgi_name(a, b), cgi(a) == cgi(b));
    assert!(same_cgi_name(a, &cgi(a)));
});
