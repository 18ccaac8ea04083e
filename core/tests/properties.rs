//! Property tests of the request-path parsers and matchers, on generated well-formed and
//! near-miss inputs (the fuzz targets in `fuzz/` cover arbitrary bytes; these run in every
//! `cargo test`).

use proptest::prelude::*;
use wcs_token_auth_core::cookie;
use wcs_token_auth_core::directive;
use wcs_token_auth_core::origin::{Origin, OriginHeader, OriginPolicy, RequestOrigin};
use wcs_token_auth_core::token;

const TOKEN_BYTES: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_-]{1,12}"
}

proptest! {
    #[test]
    fn any_bytes_accepted_as_token_are_one_safe_file_name(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(t) = token::parse(&bytes) {
            let b = t.as_bytes();
            prop_assert!(!b.is_empty() && b.len() <= token::MAX_LEN);
            prop_assert!(!b.contains(&b'/'));
            prop_assert_ne!(b[0], b'.');
            prop_assert!(b.iter().all(|c| TOKEN_BYTES.contains(c)));
        }
    }

    #[test]
    fn every_name_of_the_token_alphabet_is_accepted(
        first in prop::sample::select(&TOKEN_BYTES[..TOKEN_BYTES.len() - 1]),
        rest in prop::collection::vec(prop::sample::select(TOKEN_BYTES), 0..255),
    ) {
        let mut t = vec![first];
        t.extend(rest);
        prop_assert_eq!(token::parse(&t).map(|t| t.as_bytes().to_vec()), Ok(t));
    }

    /// Headers built from (name, value) pairs, blanks around names and values: the first pair
    /// named exactly `AUTH`, across headers in order, gives the value.
    #[test]
    fn the_first_exactly_named_cookie_wins(
        headers in prop::collection::vec(
            prop::collection::vec(
                (
                    prop::sample::select(vec!["AUTH", "auth", "Auth", "AUTHX", "XAUTH", "a", "b_2"]),
                    "[A-Za-z0-9./=_-]{0,20}",
                    "[ \t]{0,2}",
                    "[ \t]{0,2}",
                ),
                0..6,
            ),
            0..4,
        )
    ) {
        let texts: Vec<String> = headers
            .iter()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(n, v, b1, b2)| format!("{b1}{n}{b2}={b1}{v}{b2}"))
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect();
        let expected = headers
            .iter()
            .flatten()
            .find(|(n, ..)| *n == "AUTH")
            .map(|(_, v, ..)| v.as_bytes());
        let found = cookie::find(texts.iter().map(|t| t.as_bytes()), b"AUTH");
        prop_assert_eq!(found, expected);
    }

    /// `*.example.com` matches one or more whole labels in front of `example.com`, in any
    /// letter case and with the default port, and nothing that merely ends in the text.
    #[test]
    fn wildcard_matches_whole_labels_only(
        labels in prop::collection::vec(label(), 0..4),
        glue in "[a-zA-Z0-9_-]{0,3}",
        upper in any::<bool>(),
        port in prop::sample::select(vec!["", ":443", ":8443"]),
    ) {
        let pattern = Origin::parse_pattern(b"https://*.example.com").unwrap();
        let mut host = labels.join(".");
        if !labels.is_empty() {
            host.push('.');
        }
        // `glue` stuck to the domain: "badexample.com" must not match.
        host.push_str(&glue);
        host.push_str("example.com");
        let mut text = format!("https://{host}{port}");
        if upper {
            text = text.to_ascii_uppercase();
        }
        let origin = RequestOrigin::parse(text.as_bytes()).unwrap();
        let should = !labels.is_empty() && glue.is_empty() && port != ":8443";
        prop_assert_eq!(pattern.matches(&origin), should, "{}", text);
        if pattern.matches(&origin) {
            prop_assert!(host.to_ascii_lowercase().ends_with(".example.com"));
        }
    }

    #[test]
    fn an_exact_entry_matches_its_own_origin_and_no_other_host(
        a in prop::collection::vec(label(), 1..4),
        b in prop::collection::vec(label(), 1..4),
        port in prop::option::of(1u16..),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let (ha, hb) = (a.join("."), b.join("."));
        let entry = format!("https://{ha}{port}");
        let policy = OriginPolicy::from_args([entry.as_bytes()]).unwrap();
        prop_assert!(policy.allows(OriginHeader::One(entry.as_bytes()), None, true));
        let other = format!("https://{hb}{port}");
        let same_host = ha.eq_ignore_ascii_case(&hb);
        prop_assert_eq!(policy.allows(OriginHeader::One(other.as_bytes()), None, true), same_host);
        prop_assert!(!policy.allows(OriginHeader::Several, None, false));
    }

    /// nginx time syntax: units largest first, each once, sum in milliseconds.
    #[test]
    fn times_in_unit_order_parse_to_their_sum(
        parts in prop::sample::subsequence(
            vec![("y", 365 * 86_400_000u64), ("M", 30 * 86_400_000), ("w", 7 * 86_400_000),
                 ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)],
            1..=8,
        ),
        counts in prop::collection::vec(0u64..1000, 8),
    ) {
        let text: String = parts.iter().zip(&counts).map(|((u, _), n)| format!("{n}{u}")).collect();
        let sum: u64 = parts.iter().zip(&counts).map(|((_, ms), n)| ms * n).sum();
        prop_assert_eq!(directive::parse_time_ms(text.as_bytes()), Some(sum), "{}", text);
        if parts.len() >= 2 {
            // The same parts in reverse order break the largest-first rule.
            let reversed: String = parts.iter().zip(&counts).rev().map(|((u, _), n)| format!("{n}{u}")).collect();
            prop_assert_eq!(directive::parse_time_ms(reversed.as_bytes()), None, "{}", reversed);
        }
    }
}
