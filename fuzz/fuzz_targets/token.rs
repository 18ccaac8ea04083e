//! `token::parse`: the gate between a cookie value and a file name.
//!
//! Properties: an accepted token is the input itself (not a copy, nothing outside it), 1 to 255
//! bytes of `A-Za-z0-9-_.`, never contains `/` or NUL, never starts with `.` (so never `.` or
//! `..`), and names exactly one entry of the token directory; every input that fits the rule
//! is accepted.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::token::{self, TokenError, MAX_LEN};

fuzz_target!(|data: &[u8]| {
    let fits_rule = !data.is_empty()
        && data.len() <= MAX_LEN
        && data[0] != b'.'
        && data
            .iter()
            .all(|b| matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
    match token::parse(data) {
        Ok(t) => {
            let b = t.as_bytes();
            assert!(std::ptr::eq(b, data), "the token is the input itself");
            assert!(
                !b.contains(&b'/'),
                "accepted token with '/': {}",
                b.escape_ascii()
            );
            assert!(!b.contains(&0));
            assert_ne!(b[0], b'.', "accepted token with a leading '.'");
            assert!(fits_rule, "accepted {}", b.escape_ascii());
            let mut parts = Path::new(OsStr::from_bytes(b)).components();
            assert_eq!(parts.next(), Some(Component::Normal(OsStr::from_bytes(b))));
            assert_eq!(parts.next(), None, "a token names one directory entry");
        }
        Err(TokenError::Empty) => assert!(data.is_empty()),
        Err(TokenError::Malformed) => {
            assert!(!data.is_empty());
            assert!(!fits_rule, "refused a valid token {}", data.escape_ascii());
        }
    }
});
