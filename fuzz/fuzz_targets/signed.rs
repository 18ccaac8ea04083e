//! Signed tokens: `signed::is_signed_shape`, `signed::verify` (header, signature, claims),
//! `signed::claim_value` and `signed::revocation_name`.
//!
//! Input lines: a JOSE header, a payload and a signature (each base64url-encoded by the target
//! into a token), then a claim value. The input itself is also tried as a token.
//!
//! Properties: shape detection agrees with a reference written here (two dots, three
//! non-empty base64url segments, the first decoding to a JSON object) wherever the reference
//! can judge (`serde_json::Value` holds every number of the header); no token is ever
//! accepted by a key set the fuzzer cannot sign for (a random HMAC secret and public keys whose
//! private halves were thrown away), even when it is HMAC-signed with those public keys'
//! bytes; a token HMAC-signed with a known key is accepted only if its header names HS256 and
//! that key and has no `crit`, and its payload is an object whose `exp` (+ leeway) is still
//! ahead, whose `nbf`/`iat` are not ahead and whose `iss`/`aud` match, with the same claims
//! read back by `claims_of_verified`; a claim value never holds a control byte; a revocation
//! name is at most 255 bytes of `A-Za-z0-9-_.@+` and `%XX`, and absent only when too long.
#![no_main]

use std::collections::hash_map::RandomState;
use std::ffi::CString;
use std::hash::BuildHasher;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wcs_token_auth_core::signed::{self, KeySet, SignedError, SignedRules, MAX_LEN, MAX_NAME};
use wcs_token_auth_fuzz::fields;

const NOW: i64 = 1_700_000_000;
const KNOWN: &[u8] = b"the fuzzer knows this HMAC key: 0123456789";

/// Public keys whose private halves no longer exist.
const RSA_N: &str = "0NG-jAhgAlW8sO-Hd-jKvASpHaIQbBp7GtS499YIRFyyS15ehykJyUrqDawaCBW_P9EHJSMZcZmrzp5mZl0uNDX9VvKHBz1TkypoBg-pF-NfVO51cQQJlz_zBDHcEuMe9iNv6u-HolOCi5LLcmUHFH2nPQWuFjlNH2RbNeIUzRkTDQpSyK6pynhc0pqZqpv0aFLMxlh9kV6IuDTFBlYMxo1voro7y6dzvTYyuS8vwM4ylaQXez0WWIxy8pVAzE0786Ky2xTbJkCkJfrfADwdjkbawYLXyEzB9CacYEIvqgpiuGu5FkGZiIzBCDVnTeAqKWKHnvm7VW81YkyMH-ZmOQ";
const EC_X: &str = "WvYzxgHAp850gv7A5KlV8nSSjkooT6mWvGbLRLWOAkY";
const EC_Y: &str = "HeKm64m6fBWET_vp4fGf110iy-jBROhZwDt54yPw3N4";
const ED_X: &str = "761RjFy8Le9iuV3EAfxlFUvQxNtw42brUFx80jDHsvI";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn rules(keys: Value, leeway: u64, strict: bool) -> SignedRules {
    SignedRules {
        keys: Rc::new(KeySet::parse(keys.to_string().as_bytes()).unwrap()),
        leeway_secs: leeway,
        issuer: strict.then(|| "iss".into()),
        audience: strict.then(|| "wcs".into()),
        revoked: strict.then(|| CString::new("/nonexistent").unwrap()),
    }
}

struct Sets {
    /// Keys the fuzzer cannot sign for.
    unknown: SignedRules,
    /// The public keys' bytes, as an attacker would use them for HMAC.
    public_bytes: Vec<Vec<u8>>,
    /// One HMAC key `k` the target signs with: plain rules, and strict ones.
    known: [SignedRules; 2],
}

thread_local! {
    static SETS: Sets = {
        // RandomState is seeded by the OS: a secret this process draws and never shows.
        let secret: Vec<u8> = (0u64..8)
            .flat_map(|i| RandomState::new().hash_one(i).to_le_bytes())
            .collect();
        let unknown = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(&secret)},
            {"kty": "RSA", "kid": "r", "n": RSA_N, "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": EC_X, "y": EC_Y},
            {"kty": "OKP", "kid": "d", "crv": "Ed25519", "x": ED_X},
        ]});
        let d = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let mut point = vec![4];
        point.extend(d(EC_X));
        point.extend(d(EC_Y));
        let known = serde_json::json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": b64(KNOWN)}]});
        Sets {
            unknown: rules(unknown.clone(), 30, false),
            public_bytes: vec![d(RSA_N), point, d(ED_X), unknown.to_string().into_bytes()],
            known: [rules(known.clone(), 0, false), rules(known, 30, true)],
        }
    };
}

/// The shape rule, read independently of the code under test; `None` for a header whose
/// numbers `serde_json::Value` cannot hold (JSON sets no range, so it is still an object).
fn shape_reference(v: &[u8]) -> Option<bool> {
    let parts: Vec<&[u8]> = v.split(|&b| b == b'.').collect();
    let segments_ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !segments_ok {
        return Some(false);
    }
    let Ok(json) = URL_SAFE_NO_PAD.decode(parts[0]) else {
        return Some(false);
    };
    match serde_json::from_slice::<Value>(&json) {
        Ok(h) => Some(h.is_object()),
        Err(e) if e.to_string().starts_with("number out of range") => None,
        Err(_) => Some(false),
    }
}

fn shape_agrees(v: &[u8]) {
    let got = signed::is_signed_shape(v);
    if let Some(want) = shape_reference(v) {
        assert_eq!(got, want, "shape of {}", v.escape_ascii());
    }
}

fn hs256(message: &str, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{sig}")
}

fn never_accepted(sets: &Sets, token: &[u8]) {
    let got = signed::verify(&sets.unknown, token, NOW);
    assert!(
        got.is_err(),
        "accepted without the key: {}",
        token.escape_ascii()
    );
    if token.len() > MAX_LEN {
        assert_eq!(got, Err(SignedError::Malformed));
    }
}

fn whole(v: &Value, round_up: bool) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    Some(if round_up { f.ceil() } else { f.floor() } as i64)
}

/// `text` as a `serde_json::Value`; `None` only for a number out of its range.
fn json(text: &[u8]) -> Option<Value> {
    match serde_json::from_slice(text) {
        Ok(v) => Some(v),
        Err(e) if e.to_string().starts_with("number out of range") => None,
        Err(e) => panic!("an accepted token has a JSON header and payload: {e}"),
    }
}

/// What an accepted, known-key token must be.
fn accepted_is_valid(r: &SignedRules, strict: bool, header: &[u8], payload: &[u8], token: &[u8]) {
    let Ok(c) = signed::verify(r, token, NOW) else {
        return;
    };
    let (h, p) = match (json(header), json(payload)) {
        (Some(h), Some(p)) => (h, p),
        // A number beyond what the reference reads (accepted: JSON sets no range).
        _ => return,
    };
    assert_eq!(h.get("alg"), Some(&Value::from("HS256")));
    assert!(h.get("kid").is_none_or(|k| k == "k"));
    assert!(h.get("crit").is_none());
    let p = p.as_object().expect("an accepted payload is an object");
    let leeway = r.leeway_secs as i64;
    let exp = whole(&p["exp"], false).expect("exp is a number");
    assert_eq!(c.expires_at, exp.saturating_add(leeway));
    assert!(NOW < c.expires_at);
    if let Some(nbf) = p.get("nbf") {
        assert!(whole(nbf, true).expect("nbf is a number") <= NOW + leeway);
    }
    if let Some(iat) = p.get("iat") {
        assert!(whole(iat, true).expect("iat is a number") <= NOW + leeway);
        assert_eq!(c.iat, whole(iat, false));
    }
    for (name, file) in [("jti", &c.jti_file), ("sub", &c.sub_file)] {
        match p.get(name) {
            None => assert!(file.is_none()),
            Some(v) => {
                let named = v.as_str().and_then(|v| signed::revocation_name(name, v));
                assert_eq!(file, &named);
                if strict {
                    assert!(file.is_some(), "no name with a revocation directory");
                }
            }
        }
    }
    if strict {
        assert_eq!(p.get("iss"), Some(&Value::from("iss")));
        let aud = &p["aud"];
        assert!(
            aud == "wcs"
                || aud
                    .as_array()
                    .is_some_and(|a| a.contains(&Value::from("wcs")))
        );
    }
    assert_eq!(signed::claims_of_verified(r, token), Some(c));
}

fn check_name(prefix: &str, value: &str) {
    let encoded: usize = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.@+".contains(&b) {
                1
            } else {
                3
            }
        })
        .sum();
    match signed::revocation_name(prefix, value) {
        None => assert!(prefix.len() + 1 + encoded > MAX_NAME),
        Some(n) => {
            assert!(n.len() <= MAX_NAME);
            assert_eq!(n.len(), prefix.len() + 1 + encoded);
            assert!(n.starts_with(prefix));
            assert!(n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@+%".contains(&b)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    SETS.with(|sets| {
        shape_agrees(data);
        never_accepted(sets, data);

        let f = fields(data);
        let part = |i: usize| f.get(i).copied().unwrap_or_default();
        let (header, payload, sig, value) = (part(0), part(1), part(2), part(3));
        let message = format!("{}.{}", b64(header), b64(payload));
        let token = format!("{message}.{}", b64(sig));
        shape_agrees(token.as_bytes());
        never_accepted(sets, token.as_bytes());
        for secret in std::iter::once(KNOWN).chain(sets.public_bytes.iter().map(Vec::as_slice)) {
            never_accepted(sets, hs256(&message, secret).as_bytes());
        }

        let known = hs256(&message, KNOWN);
        for (r, strict) in sets.known.iter().zip([false, true]) {
            accepted_is_valid(r, strict, header, payload, known.as_bytes());
        }
        let value = String::from_utf8_lossy(value);
        if let Some(v) = signed::claim_value(known.as_bytes(), value.as_bytes()) {
            assert!(!v.iter().any(|&b| b < 0x20 || b == 0x7F));
        }
        check_name("jti", &value);
        check_name("sub", &value);
    });
});
