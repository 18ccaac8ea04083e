//! `cookie::find`: the cookie the token is taken from.
//!
//! Input: the first line is the cookie name (replaced by `AUTH` unless it is a valid name, as
//! `nginx -t` guarantees), every further line one `Cookie` header.
//!
//! Properties: the value found lies inside one of the headers (nothing read past the input);
//! it holds no `;` and no surrounding blanks; in its header it is preceded, since the last `;`,
//! by exactly `blanks name blanks = blanks` (exact, case-sensitive name); no earlier pair in
//! that header or in an earlier header has that name; and when nothing is found, no pair
//! anywhere has that name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::cookie;
use wcs_token_auth_core::directive;
use wcs_token_auth_fuzz::{fields, is_ows, is_within};

/// Whether one `;`-separated pair is a cookie called `name`, read independently of the code
/// under test: skip blanks, the name, blanks, then `=`.
fn pair_has_name(pair: &[u8], name: &[u8]) -> bool {
    let mut i = 0;
    while i < pair.len() && is_ows(pair[i]) {
        i += 1;
    }
    if !pair[i..].starts_with(name) {
        return false;
    }
    i += name.len();
    while i < pair.len() && is_ows(pair[i]) {
        i += 1;
    }
    pair.get(i) == Some(&b'=')
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data);
    let name = directive::cookie_name(f[0]).unwrap_or(b"AUTH");
    let headers = &f[1..];

    let found = cookie::find(headers.iter().copied(), name);

    let named = |h: &[u8]| h.split(|&b| b == b';').any(|p| pair_has_name(p, name));
    let Some(value) = found else {
        assert!(
            !headers.iter().any(|h| named(h)),
            "a cookie named {name:?} was missed"
        );
        return;
    };
    let at = headers
        .iter()
        .position(|h| is_within(h, value))
        .expect("the value lies inside one of the headers");
    assert!(
        !headers[..at].iter().any(|h| named(h)),
        "not the first header with the cookie"
    );
    assert!(!value.contains(&b';'));
    assert!(value.first().is_none_or(|&b| !is_ows(b)));
    assert!(value.last().is_none_or(|&b| !is_ows(b)));

    let header = headers[at];
    let start = value.as_ptr() as usize - header.as_ptr() as usize;
    let pair_start = header[..start]
        .iter()
        .rposition(|&b| b == b';')
        .map_or(0, |i| i + 1);
    let before = &header[pair_start..start];
    // blanks name blanks '=' blanks, with '=' the first one of the pair
    let eq = before
        .iter()
        .position(|&b| b == b'=')
        .expect("an '=' before the value");
    assert!(before[eq + 1..].iter().all(|&b| is_ows(b)));
    let lhs = &before[..eq];
    let trimmed: Vec<u8> = lhs.iter().copied().skip_while(|&b| is_ows(b)).collect();
    let trimmed_len = trimmed
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(0, |i| i + 1);
    assert_eq!(
        &trimmed[..trimmed_len],
        name,
        "the value belongs to another name"
    );
    let earlier = &header[..pair_start.saturating_sub(1).min(pair_start)];
    assert!(
        pair_start == 0 || !named(earlier),
        "an earlier pair in the header has the name"
    );
    // The value ends where its pair ends (before the next ';' or the end, blanks aside).
    let end = start + value.len();
    let pair_end = header[end..]
        .iter()
        .position(|&b| b == b';')
        .map_or(header.len(), |i| end + i);
    assert!(header[end..pair_end].iter().all(|&b| is_ows(b)));
});
