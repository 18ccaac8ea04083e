use super::*;

use std::fs as stdfs;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use jsonwebtoken::{encode, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Freshly generated asymmetric keys: private DER for jsonwebtoken, public JWKs for the set,
/// and the public keys' PEM/DER bytes an attacker could use as an HMAC secret.
struct Keys {
    rsa_private: Vec<u8>,
    rsa_jwk: Value,
    rsa_public_bytes: Vec<Vec<u8>>,
    ec_private: Vec<u8>,
    ec_jwk: Value,
    ec_public_bytes: Vec<Vec<u8>>,
    ed_private: Vec<u8>,
    ed_jwk: Value,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
        use rsa::traits::PublicKeyParts as _;
        let mut rng = rand::rngs::OsRng;

        let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let rsa_pub = rsa.to_public_key();
        let ec = p256::SecretKey::random(&mut rng);
        let ec_pub = ec.public_key();
        let point = p256::EncodedPoint::from(ec_pub);
        let ed = ed25519_dalek::SigningKey::generate(&mut rng);
        Keys {
            rsa_private: rsa.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            rsa_jwk: json!({"kty": "RSA", "kid": "r", "alg": "RS256",
                "n": b64(&rsa_pub.n().to_bytes_be()), "e": b64(&rsa_pub.e().to_bytes_be())}),
            rsa_public_bytes: vec![
                rsa_pub
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap()
                    .into_bytes(),
                rsa_pub.to_public_key_der().unwrap().as_bytes().to_vec(),
                rsa_pub.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
                rsa_pub.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            ],
            ec_private: ec.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            ec_jwk: json!({"kty": "EC", "kid": "e", "crv": "P-256",
                "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
            ec_public_bytes: vec![
                ec_pub
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap()
                    .into_bytes(),
                ec_pub.to_public_key_der().unwrap().as_bytes().to_vec(),
                point.as_bytes().to_vec(),
            ],
            ed_private: ed.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            ed_jwk: json!({"kty": "OKP", "kid": "d", "crv": "Ed25519",
                "x": b64(ed.verifying_key().as_bytes())}),
        }
    })
}

fn hs_jwk() -> Value {
    json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(SECRET)})
}

fn set(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

fn parse(v: &Value) -> Result<KeySet, String> {
    KeySet::parse(v.to_string().as_bytes())
}

fn rules(set: Value) -> SignedRules {
    SignedRules {
        keys: Rc::new(parse(&set).unwrap()),
        leeway_secs: 0,
        issuer: None,
        audience: None,
        revoked: None,
    }
}

/// Every key of this file, each with a `kid`.
fn all_rules() -> SignedRules {
    let k = keys();
    rules(set(&[
        hs_jwk(),
        k.rsa_jwk.clone(),
        k.ec_jwk.clone(),
        k.ed_jwk.clone(),
    ]))
}

fn mint(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let k = keys();
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => EncodingKey::from_secret(SECRET),
        Algorithm::RS256 => EncodingKey::from_rsa_der(&k.rsa_private),
        Algorithm::ES256 => EncodingKey::from_ec_der(&k.ec_private),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&k.ed_private),
        other => panic!("{other:?}"),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, &key).unwrap()
}

fn hs(claims: Value) -> String {
    mint(Algorithm::HS256, Some("h"), &claims)
}

/// A token with this exact header and payload text, HMAC-SHA256-signed with `secret`.
fn raw_hs(header: &str, payload: &str, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

fn exp() -> Value {
    json!({ "exp": NOW + 60 })
}

fn check(r: &SignedRules, token: &str, now: i64) -> Result<Claims, SignedError> {
    verify(r, token.as_bytes(), now)
}

// ---- KeySet::parse ----

#[test]
fn parses_each_supported_key_type() {
    let k = keys();
    for jwk in [
        hs_jwk(),
        k.rsa_jwk.clone(),
        k.ec_jwk.clone(),
        k.ed_jwk.clone(),
    ] {
        assert_eq!(
            parse(&set(std::slice::from_ref(&jwk))).unwrap().len(),
            1,
            "{jwk}"
        );
    }
    assert_eq!(all_rules().keys.len(), 4);
    for (alg, n) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        let jwk = json!({"kty": "oct", "alg": alg, "k": b64(&vec![7; n])});
        assert!(parse(&set(&[jwk])).is_ok(), "{alg} with {n} bytes");
        let short = json!({"kty": "oct", "alg": alg, "k": b64(&vec![7; n - 1])});
        let e = parse(&set(&[short])).unwrap_err();
        assert!(e.contains(&format!("at least {n} bytes")), "{e}");
    }
}

#[test]
fn asymmetric_alg_may_be_given_when_it_is_the_keys() {
    let k = keys();
    let mut ec = k.ec_jwk.clone();
    ec["alg"] = json!("ES256");
    let mut ed = k.ed_jwk.clone();
    ed["alg"] = json!("EdDSA");
    ed["use"] = json!("sig");
    assert!(parse(&set(&[ec, ed.clone()])).is_ok());
    ed["alg"] = json!("Ed25519");
    assert!(parse(&set(&[ed])).is_ok());
}

fn refused(v: Value, want: &str) {
    let e = parse(&v).expect_err(&v.to_string());
    assert!(e.contains(want), "{v}: {e:?} lacks {want:?}");
}

#[test]
fn refuses_sets_that_are_not_sets() {
    for (text, want) in [
        ("", "invalid JSON"),
        ("{\"keys\": [", "invalid JSON"),
        ("[]", "not a JWK Set"),
        ("{}", "no \"keys\""),
        ("{\"keys\": {}}", "\"keys\" is not an array"),
        ("{\"keys\": []}", "no keys"),
        ("{\"keys\": [1]}", "key 1"),
        ("{\"keys\": [], \"keys\": []}", "twice"),
    ] {
        let e = KeySet::parse(text.as_bytes()).expect_err(text);
        assert!(e.contains(want), "{text}: {e:?}");
    }
}

#[test]
fn refuses_unsupported_keys() {
    let k = keys();
    refused(
        set(&[json!({"kty": "foo", "kid": "a"})]),
        "unsupported \"kty\" \"foo\"",
    );
    refused(set(&[json!({"kid": "a"})]), "key \"a\": no \"kty\"");
    let mut ec = k.ec_jwk.clone();
    ec["crv"] = json!("P-384");
    refused(set(&[ec]), "unsupported \"crv\" \"P-384\"");
    let mut ed = k.ed_jwk.clone();
    ed["crv"] = json!("X25519");
    refused(set(&[ed]), "unsupported \"crv\" \"X25519\"");
    let mut hs = hs_jwk();
    hs["alg"] = json!("RS256");
    refused(set(&[hs.clone()]), "unsupported \"alg\" \"RS256\"");
    hs["alg"] = json!("none");
    refused(set(&[hs.clone()]), "unsupported \"alg\" \"none\"");
    hs.as_object_mut().unwrap().remove("alg");
    refused(set(&[hs]), "must name its \"alg\"");
    let mut enc = hs_jwk();
    enc["use"] = json!("enc");
    refused(set(&[enc]), "\"use\" is \"enc\"");
}

#[test]
fn refuses_an_alg_that_is_not_the_keys() {
    let k = keys();
    for (jwk, alg) in [
        (&k.rsa_jwk, "ES256"),
        (&k.rsa_jwk, "PS256"),
        (&k.rsa_jwk, "HS256"),
        (&k.ec_jwk, "RS256"),
        (&k.ec_jwk, "ES384"),
        (&k.ed_jwk, "HS256"),
        (&k.ed_jwk, "none"),
    ] {
        let mut j = jwk.clone();
        j["alg"] = json!(alg);
        refused(set(&[j]), "does not match");
    }
}

#[test]
fn refuses_private_members_on_asymmetric_keys() {
    let k = keys();
    for (jwk, member) in [
        (&k.rsa_jwk, "d"),
        (&k.rsa_jwk, "p"),
        (&k.rsa_jwk, "q"),
        (&k.rsa_jwk, "dp"),
        (&k.rsa_jwk, "dq"),
        (&k.rsa_jwk, "qi"),
        (&k.ec_jwk, "d"),
        (&k.ed_jwk, "d"),
    ] {
        let mut j = jwk.clone();
        j[member] = json!("AAAA");
        refused(set(&[j]), &format!("private member \"{member}\""));
    }
}

#[test]
fn refuses_weak_or_broken_asymmetric_keys() {
    use rsa::traits::PublicKeyParts as _;
    let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
    let jwk = json!({"kty": "RSA", "kid": "s", "n": b64(&small.n().to_bytes_be()),
        "e": b64(&small.e().to_bytes_be())});
    refused(
        set(&[jwk]),
        "key \"s\": an RSA key must have at least 2048 bits, this one has 1024",
    );
    // The verifier would refuse these on every request: nginx -t refuses them instead.
    let huge = json!({"kty": "RSA", "kid": "big", "n": b64(&[0xC5; 520]), "e": "AQAB"});
    refused(set(&[huge]), "key \"big\": not a usable RSA public key");
    let mut e1 = keys().rsa_jwk.clone();
    e1["e"] = json!("AQ");
    refused(set(&[e1]), "not a usable RSA public key");
    let mut ec = keys().ec_jwk.clone();
    ec["y"] = ec["x"].clone();
    refused(set(&[ec]), "not a valid P-256 public key");
    let mut ed = keys().ed_jwk.clone();
    ed["x"] = json!(b64(&[1; 31]));
    refused(set(&[ed]), "32 bytes");
    let mut padded = hs_jwk();
    padded["k"] = json!(format!("{}=", b64(&[7; 32])));
    refused(set(&[padded]), "not base64url");
}

#[test]
fn refuses_ambiguous_kids() {
    let mut other = hs_jwk();
    other["k"] = json!(b64(&[9; 32]));
    refused(set(&[hs_jwk(), other]), "two keys have \"kid\" \"h\"");
    let mut nokid = keys().ec_jwk.clone();
    nokid.as_object_mut().unwrap().remove("kid");
    refused(set(&[hs_jwk(), nokid.clone()]), "key 2 has no \"kid\"");
    assert!(parse(&set(&[nokid])).is_ok(), "one key needs no kid");
    refused(
        set(&[json!({"kty": "oct", "kid": 1, "alg": "HS256", "k": b64(SECRET)})]),
        "\"kid\" is not a string",
    );
}

#[test]
fn refuses_a_key_with_a_member_twice() {
    let text = format!(
        "{{\"keys\":[{{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"{}\",\"k\":\"{}\"}}]}}",
        b64(SECRET),
        b64(&[1; 32])
    );
    let e = KeySet::parse(text.as_bytes()).unwrap_err();
    assert!(e.contains("member \"k\" appears twice"), "{e}");
}

// ---- is_signed_shape ----

#[test]
fn shape() {
    let t = hs(exp());
    assert!(is_signed_shape(t.as_bytes()));
    let h = b64(b"{}");
    for yes in [format!("{h}.a.b"), format!("{h}.-_.9")] {
        assert!(is_signed_shape(yes.as_bytes()), "{yes}");
    }
    for no in [
        String::new(),
        "..".into(),
        format!("{h}.a"),
        format!("{h}.a.b.c"),
        format!("{h}..b"),
        format!("{h}.a."),
        format!(".{h}.a"),
        format!("{h}=.a.b"),
        format!("{}.a.b", b64(b"{}   ").replace('-', "+") + "+"),
        format!("{h}.a+.b"),
        format!("{h}.a/.b"),
        format!("{h}.a.b="),
        format!("{h}.a.b "),
        format!("{}.a.b", b64(b"[]")),
        format!("{}.a.b", b64(b"\"x\"")),
        format!("{}.a.b", b64(b"{")),
        format!("{}.a.b", b64(b"{} x")),
        format!("{}.a.b", b64(b"{\"a\":\"\xe8\"}")),
        "e.a.b".into(),
        "abcdef-token.with.dots".into(),
    ] {
        assert!(!is_signed_shape(no.as_bytes()), "{no}");
    }
}

// ---- verify: algorithms and keys ----

#[test]
fn accepts_tokens_minted_by_jsonwebtoken_for_each_algorithm() {
    let r = all_rules();
    for (alg, kid) in [
        (Algorithm::HS256, "h"),
        (Algorithm::RS256, "r"),
        (Algorithm::ES256, "e"),
        (Algorithm::EdDSA, "d"),
    ] {
        let t = mint(
            alg,
            Some(kid),
            &json!({"exp": NOW + 60, "sub": "alice", "iat": NOW}),
        );
        assert!(is_signed_shape(t.as_bytes()));
        let c = check(&r, &t, NOW).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(
            c,
            Claims {
                expires_at: NOW + 60,
                iat: Some(NOW),
                jti_file: None,
                sub_file: Some("sub.alice".into())
            }
        );
        // The same token with one bit of its signature changed.
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(&r, &forged, NOW),
            Err(SignedError::BadSignature),
            "{alg:?}"
        );
        // Another payload under the same signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = b64(json!({"exp": NOW + 60, "sub": "mallory", "iat": NOW})
            .to_string()
            .as_bytes());
        parts[1] = &other;
        assert_eq!(
            check(&r, &parts.join("."), NOW),
            Err(SignedError::BadSignature)
        );
    }
    for (alg, n) in [(Algorithm::HS384, 48), (Algorithm::HS512, 64)] {
        let name = format!("{alg:?}");
        let secret = vec![3; n];
        let r = rules(set(&[
            json!({"kty": "oct", "alg": name, "k": b64(&secret)}),
        ]));
        let t = encode(
            &Header::new(alg),
            &exp(),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert!(check(&r, &t, NOW).is_ok(), "{name}");
        let t = encode(
            &Header::new(alg),
            &exp(),
            &EncodingKey::from_secret(&[4; 64]),
        )
        .unwrap();
        assert_eq!(check(&r, &t, NOW), Err(SignedError::BadSignature));
    }
}

#[test]
fn eddsa_is_also_named_ed25519() {
    // RFC 9864's fully-specified name for the same algorithm on the same key type.
    let r = all_rules();
    let t = mint(Algorithm::EdDSA, Some("d"), &exp());
    let (_, rest) = t.split_once('.').unwrap();
    let header = b64(br#"{"alg":"Ed25519","kid":"d"}"#);
    let message = format!("{header}.{}", rest.rsplit_once('.').unwrap().0);
    let key = EncodingKey::from_ed_der(&keys().ed_private);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    assert!(check(&r, &format!("{message}.{sig}"), NOW).is_ok());
    // Never for another key type.
    let hs = raw_hs(r#"{"alg":"Ed25519","kid":"h"}"#, &exp().to_string(), SECRET);
    assert_eq!(check(&r, &hs, NOW), Err(SignedError::BadSignature));
}

#[test]
fn a_wrong_secret_is_a_bad_signature() {
    let t = raw_hs(r#"{"alg":"HS256","kid":"h"}"#, &exp().to_string(), &[1; 32]);
    assert_eq!(check(&all_rules(), &t, NOW), Err(SignedError::BadSignature));
    let good = raw_hs(r#"{"alg":"HS256","kid":"h"}"#, &exp().to_string(), SECRET);
    assert!(check(&all_rules(), &good, NOW).is_ok());
}

#[test]
fn alg_none_or_missing_is_refused() {
    let r = rules(set(&[hs_jwk()]));
    let payload = b64(exp().to_string().as_bytes());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","kid":"h"}"#,
        r#"{"alg":"None","kid":"h"}"#,
        r#"{"alg":"NONE","kid":"h"}"#,
        r#"{"kid":"h"}"#,
        r#"{"alg":null,"kid":"h"}"#,
        r#"{"alg":["HS256"],"kid":"h"}"#,
        r#"{"alg":"hs256","kid":"h"}"#,
    ] {
        let h = b64(header.as_bytes());
        // An unsecured JWS has an empty signature: not even the shape.
        let unsigned = format!("{h}.{payload}.");
        assert_eq!(
            check(&r, &unsigned, NOW),
            Err(SignedError::Malformed),
            "{header}"
        );
        assert!(!is_signed_shape(unsigned.as_bytes()));
        let with_sig = format!("{h}.{payload}.{}", b64(&[0; 32]));
        assert_eq!(
            check(&r, &with_sig, NOW),
            Err(SignedError::BadSignature),
            "{header}"
        );
        // Even the HMAC of the right secret does not help a header that does not name HS256.
        let signed = raw_hs(header, &exp().to_string(), SECRET);
        assert_eq!(
            check(&r, &signed, NOW),
            Err(SignedError::BadSignature),
            "{header}"
        );
    }
}

#[test]
fn hmac_with_a_public_keys_bytes_is_refused() {
    let k = keys();
    let claims = exp().to_string();
    let cases = [
        (&k.rsa_jwk, "r", &k.rsa_public_bytes),
        (&k.ec_jwk, "e", &k.ec_public_bytes),
    ];
    for (jwk, kid, publics) in cases {
        let only = rules(set(std::slice::from_ref(jwk)));
        let mixed = all_rules();
        let mut secrets: Vec<Vec<u8>> = publics.clone();
        secrets.push(jwk.to_string().into_bytes());
        for secret in &secrets {
            for header in [
                format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#),
                r#"{"alg":"HS256"}"#.to_string(),
            ] {
                let t = raw_hs(&header, &claims, secret);
                assert_eq!(check(&only, &t, NOW), Err(SignedError::BadSignature));
                assert_eq!(check(&mixed, &t, NOW), Err(SignedError::BadSignature));
            }
        }
        // A set without the kid in its only key would also have to refuse it.
        let mut nokid = jwk.clone();
        nokid.as_object_mut().unwrap().remove("kid");
        let t = raw_hs(r#"{"alg":"HS256"}"#, &claims, &publics[0]);
        assert_eq!(
            check(&rules(set(&[nokid])), &t, NOW),
            Err(SignedError::BadSignature)
        );
    }
}

#[test]
fn a_kid_naming_another_key_type_is_refused() {
    let r = all_rules();
    let c = exp();
    for (alg, kid) in [
        (Algorithm::RS256, "h"),
        (Algorithm::RS256, "e"),
        (Algorithm::ES256, "d"),
        (Algorithm::ES256, "r"),
        (Algorithm::EdDSA, "e"),
        (Algorithm::EdDSA, "h"),
        (Algorithm::HS256, "r"),
        (Algorithm::HS256, "d"),
    ] {
        let t = mint(alg, Some(kid), &c);
        assert_eq!(
            check(&r, &t, NOW),
            Err(SignedError::BadSignature),
            "{alg:?} {kid}"
        );
    }
}

#[test]
fn kid_selects_and_only_selects() {
    let r = all_rules();
    let c = exp().to_string();
    // No kid with several keys: no key.
    assert_eq!(
        check(&r, &raw_hs(r#"{"alg":"HS256"}"#, &c, SECRET), NOW),
        Err(SignedError::BadSignature)
    );
    // One key: no kid needed, but a kid must be its own.
    let one = rules(set(&[hs_jwk()]));
    assert!(check(&one, &raw_hs(r#"{"alg":"HS256"}"#, &c, SECRET), NOW).is_ok());
    let mut nokid = hs_jwk();
    nokid.as_object_mut().unwrap().remove("kid");
    let anon = rules(set(&[nokid]));
    assert!(check(&anon, &raw_hs(r#"{"alg":"HS256"}"#, &c, SECRET), NOW).is_ok());
    assert_eq!(
        check(
            &anon,
            &raw_hs(r#"{"alg":"HS256","kid":"h"}"#, &c, SECRET),
            NOW
        ),
        Err(SignedError::BadSignature)
    );
    for kid in [
        json!("../h"),
        json!("h/../h"),
        json!("/etc/passwd"),
        json!("h\u{0}"),
        json!("\u{0}"),
        json!("H"),
        json!(" h"),
        json!(1),
        json!(null),
        json!(["h"]),
        json!({"kid": "h"}),
        json!("h".repeat(2000)),
    ] {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        let t = raw_hs(&header, &c, SECRET);
        assert_eq!(
            check(&r, &t, NOW),
            Err(SignedError::BadSignature),
            "{header}"
        );
        assert_eq!(
            check(&one, &t, NOW),
            Err(SignedError::BadSignature),
            "{header}"
        );
    }
    // 10 KB of kid: past the length limit before anything else.
    let header = json!({"alg": "HS256", "kid": "h".repeat(10 * 1024)}).to_string();
    assert_eq!(
        check(&r, &raw_hs(&header, &c, SECRET), NOW),
        Err(SignedError::Malformed)
    );
}

#[test]
fn url_headers_are_ignored() {
    let r = all_rules();
    let header = json!({"alg": "HS256", "kid": "h", "jku": "http://127.0.0.1:1/jwks.json",
        "x5u": "http://127.0.0.1:1/cert.pem", "jwk": keys().rsa_jwk, "x5c": ["AAAA"], "typ": "JWT"})
    .to_string();
    assert!(check(&r, &raw_hs(&header, &exp().to_string(), SECRET), NOW).is_ok());
    // A `jwk` header carrying the attacker's own key changes nothing either.
    let evil = [5u8; 32];
    let header = json!({"alg": "HS256", "kid": "h",
        "jwk": {"kty": "oct", "alg": "HS256", "k": b64(&evil)}})
    .to_string();
    assert_eq!(
        check(&r, &raw_hs(&header, &exp().to_string(), &evil), NOW),
        Err(SignedError::BadSignature)
    );
}

#[test]
fn crit_is_bad_claims() {
    let r = all_rules();
    for crit in [json!(["exp"]), json!([]), json!("b64"), json!(null)] {
        let header = json!({"alg": "HS256", "kid": "h", "crit": crit, "exp": 1}).to_string();
        let t = raw_hs(&header, &exp().to_string(), SECRET);
        assert_eq!(check(&r, &t, NOW), Err(SignedError::BadClaims), "{header}");
    }
}

#[test]
fn a_header_is_a_json_object_with_distinct_members() {
    let r = all_rules();
    let c = exp().to_string();
    for header in [
        r#"{"alg":"HS256","kid":"h","kid":"h"}"#,
        r#"{"alg":"none","alg":"HS256","kid":"h"}"#,
        r#"{"alg":"HS256","kid":"h","k\u0069d":"r"}"#,
        r#"{"alg":"HS256","kid":"h"}x"#,
        r#"{"alg":"HS256","kid":"h""#,
        r#"[]"#,
        r#""HS256""#,
        "",
    ] {
        let t = raw_hs(header, &c, SECRET);
        assert_eq!(check(&r, &t, NOW), Err(SignedError::Malformed), "{header}");
    }
    // JSON is UTF-8, in strings too.
    let message = format!(
        "{}.{}",
        b64(b"{\"alg\":\"HS256\",\"kid\":\"h\",\"x\":\"\xe8\"}"),
        b64(c.as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        check(&r, &format!("{message}.{sig}"), NOW),
        Err(SignedError::Malformed)
    );
    // Whitespace around the object is JSON.
    let spaced = raw_hs(" {\"alg\":\"HS256\",\"kid\":\"h\"} ", &c, SECRET);
    assert!(check(&r, &spaced, NOW).is_ok());
}

#[test]
fn base64url_only_without_padding() {
    let r = all_rules();
    // Find a token whose text has `-` or `_`, then write it in the standard alphabet.
    let t = (0..1000)
        .map(|i| hs(json!({"exp": NOW + 60, "n": i})))
        .find(|t| t.contains('-') || t.contains('_'))
        .unwrap();
    assert!(check(&r, &t, NOW).is_ok());
    let std_alphabet = t.replace('-', "+").replace('_', "/");
    assert_eq!(check(&r, &std_alphabet, NOW), Err(SignedError::Malformed));
    assert!(!is_signed_shape(std_alphabet.as_bytes()));
    // Padding on any segment (each made a multiple of 4 and padded the standard way).
    let parts: Vec<&str> = t.split('.').collect();
    for i in 0..3 {
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        let pad = ((4 - p[i].len() % 4) % 4).max(1);
        p[i].push_str(&"=".repeat(pad));
        let padded = p.join(".");
        assert_eq!(
            check(&r, &padded, NOW),
            Err(SignedError::Malformed),
            "{padded}"
        );
    }
    // A signature of 32 bytes is 43 characters whose last has two unused bits, which must
    // be zero ('B' sets one); and a length no base64 can have.
    let mut bad_tail: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    bad_tail[2].pop();
    bad_tail[2].push('B');
    assert_eq!(
        check(&r, &bad_tail.join("."), NOW),
        Err(SignedError::Malformed)
    );
    let mut bad_len: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    bad_len[2].push_str("AA");
    assert_eq!(
        check(&r, &bad_len.join("."), NOW),
        Err(SignedError::Malformed)
    );
}

#[test]
fn at_most_max_len_bytes() {
    // Tokens of exactly MAX_LEN and MAX_LEN + 1 bytes, both correctly signed.
    let mut found = [None, None];
    'search: for kid in ["h", "hh", "hhh"] {
        let r = rules(set(&[
            json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64(SECRET)}),
        ]));
        for n in 2900..3100 {
            let t = mint(
                Algorithm::HS256,
                Some(kid),
                &json!({"exp": NOW + 60, "pad": "x".repeat(n)}),
            );
            for (i, len) in [MAX_LEN, MAX_LEN + 1].into_iter().enumerate() {
                if t.len() == len && found[i].is_none() {
                    found[i] = Some(check(&r, &t, NOW).map(|_| ()));
                }
            }
            if found.iter().all(Option::is_some) {
                break 'search;
            }
        }
    }
    assert_eq!(found, [Some(Ok(())), Some(Err(SignedError::Malformed))]);
}

#[test]
fn a_payload_is_a_json_object_with_distinct_members() {
    let r = all_rules();
    let h = r#"{"alg":"HS256","kid":"h"}"#;
    for payload in [
        "[]".to_string(),
        "\"x\"".into(),
        "1".into(),
        "null".into(),
        "not json".into(),
        format!(r#"{{"exp":{},"exp":{}}}"#, NOW + 60, NOW + 60),
        format!(r#"{{"exp":{},"sub":"a","sub":"b"}}"#, NOW + 60),
    ] {
        assert_eq!(
            check(&r, &raw_hs(h, &payload, SECRET), NOW),
            Err(SignedError::BadClaims),
            "{payload}"
        );
    }
}

// ---- verify: claims ----

fn claims_at(r: &SignedRules, claims: Value, now: i64) -> Result<Claims, SignedError> {
    check(r, &hs(claims), now)
}

#[test]
fn exp_is_required_and_numeric() {
    let r = all_rules();
    for c in [
        json!({}),
        json!({"exp": null}),
        json!({"exp": "1800000000"}),
        json!({"exp": [1_800_000_000]}),
        json!({"exp": true}),
    ] {
        assert_eq!(
            claims_at(&r, c.clone(), NOW),
            Err(SignedError::BadClaims),
            "{c}"
        );
    }
}

#[test]
fn expired_from_exp_plus_leeway_on() {
    let mut r = all_rules();
    let c = json!({"exp": NOW + 10});
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 9).unwrap().expires_at,
        NOW + 10
    );
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 10),
        Err(SignedError::Expired)
    );
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 11),
        Err(SignedError::Expired)
    );
    r.leeway_secs = 30;
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 39).unwrap().expires_at,
        NOW + 40
    );
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 40),
        Err(SignedError::Expired)
    );
    // A fractional exp ends at its whole second, rounded down.
    r.leeway_secs = 0;
    let frac = json!({"exp": (NOW + 10) as f64 + 0.9});
    assert_eq!(
        claims_at(&r, frac.clone(), NOW + 9).unwrap().expires_at,
        NOW + 10
    );
    assert_eq!(claims_at(&r, frac, NOW + 10), Err(SignedError::Expired));
    assert_eq!(
        claims_at(&r, json!({"exp": -1}), NOW),
        Err(SignedError::Expired)
    );
    // Integers are exact, also beyond f64's 53 bits.
    let big = claims_at(&r, json!({"exp": 9_007_199_254_740_993i64}), NOW).unwrap();
    assert_eq!(big.expires_at, 9_007_199_254_740_993);
    // Beyond i64 seconds is the end of time, not an overflow.
    let far = claims_at(&r, json!({"exp": 1e300}), NOW).unwrap();
    assert_eq!(far.expires_at, i64::MAX);
    r.leeway_secs = u64::MAX;
    assert_eq!(
        claims_at(&r, json!({"exp": u64::MAX}), NOW)
            .unwrap()
            .expires_at,
        i64::MAX
    );
}

#[test]
fn nbf_with_leeway() {
    let mut r = all_rules();
    let c = json!({"exp": NOW + 60, "nbf": NOW + 5});
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 4),
        Err(SignedError::BadClaims)
    );
    assert!(claims_at(&r, c.clone(), NOW + 5).is_ok());
    r.leeway_secs = 5;
    assert!(claims_at(&r, c.clone(), NOW).is_ok());
    assert_eq!(claims_at(&r, c, NOW - 1), Err(SignedError::BadClaims));
    r.leeway_secs = 0;
    let frac = json!({"exp": NOW + 60, "nbf": NOW as f64 + 4.5});
    assert_eq!(
        claims_at(&r, frac.clone(), NOW + 4),
        Err(SignedError::BadClaims)
    );
    assert!(claims_at(&r, frac, NOW + 5).is_ok());
    for bad in [json!("1"), json!(null), json!({})] {
        let c = json!({"exp": NOW + 60, "nbf": bad});
        assert_eq!(claims_at(&r, c, NOW), Err(SignedError::BadClaims));
    }
}

#[test]
fn iat_with_leeway() {
    let mut r = all_rules();
    let c = json!({"exp": NOW + 60, "iat": NOW + 1});
    assert_eq!(claims_at(&r, c.clone(), NOW), Err(SignedError::BadClaims));
    assert_eq!(
        claims_at(&r, c.clone(), NOW + 1).unwrap().iat,
        Some(NOW + 1)
    );
    r.leeway_secs = 1;
    assert!(claims_at(&r, c.clone(), NOW).is_ok());
    r.leeway_secs = 0;
    // For revocation, a fractional iat counts from its whole second.
    let frac = json!({"exp": NOW + 60, "iat": NOW as f64 - 0.5});
    assert_eq!(claims_at(&r, frac, NOW).unwrap().iat, Some(NOW - 1));
    let future = json!({"exp": NOW + 60, "iat": NOW as f64 + 0.5});
    assert_eq!(claims_at(&r, future, NOW), Err(SignedError::BadClaims));
    for bad in [json!("1"), json!(null), json!(true)] {
        let c = json!({"exp": NOW + 60, "iat": bad});
        assert_eq!(claims_at(&r, c, NOW), Err(SignedError::BadClaims));
    }
}

#[test]
fn issuer() {
    let mut r = all_rules();
    assert!(claims_at(&r, json!({"exp": NOW + 60, "iss": 5}), NOW).is_ok());
    r.issuer = Some("https://backend".into());
    assert!(claims_at(&r, json!({"exp": NOW + 60, "iss": "https://backend"}), NOW).is_ok());
    for iss in [
        json!("https://backend/"),
        json!("https://BACKEND"),
        json!(null),
        json!(["https://backend"]),
    ] {
        let c = json!({"exp": NOW + 60, "iss": iss});
        assert_eq!(claims_at(&r, c, NOW), Err(SignedError::BadClaims));
    }
    assert_eq!(
        claims_at(&r, json!({"exp": NOW + 60}), NOW),
        Err(SignedError::BadClaims)
    );
}

#[test]
fn audience() {
    let mut r = all_rules();
    assert!(claims_at(&r, json!({"exp": NOW + 60, "aud": 5}), NOW).is_ok());
    r.audience = Some("wcs".into());
    for aud in [json!("wcs"), json!(["other", "wcs"]), json!(["wcs"])] {
        let c = json!({"exp": NOW + 60, "aud": aud});
        assert!(claims_at(&r, c.clone(), NOW).is_ok(), "{c}");
    }
    for aud in [
        json!("WCS"),
        json!("wcs "),
        json!(["other"]),
        json!([]),
        json!(["wcs", 1]),
        json!(null),
        json!({"wcs": true}),
    ] {
        let c = json!({"exp": NOW + 60, "aud": aud});
        assert_eq!(
            claims_at(&r, c.clone(), NOW),
            Err(SignedError::BadClaims),
            "{c}"
        );
    }
    assert_eq!(
        claims_at(&r, json!({"exp": NOW + 60}), NOW),
        Err(SignedError::BadClaims)
    );
}

#[test]
fn revocation_names_in_claims() {
    let mut r = all_rules();
    let c = json!({"exp": NOW + 60, "jti": "a/b", "sub": "alice@example.com"});
    let got = claims_at(&r, c.clone(), NOW).unwrap();
    assert_eq!(got.jti_file.as_deref(), Some("jti.a%2Fb"));
    assert_eq!(got.sub_file.as_deref(), Some("sub.alice@example.com"));
    // Too long to name a file: fine without a revocation directory, refused with one.
    let long = json!({"exp": NOW + 60, "jti": "/".repeat(100), "sub": "x".repeat(251)});
    let got = claims_at(&r, long.clone(), NOW).unwrap();
    assert_eq!(got.jti_file, None);
    assert_eq!(got.sub_file.as_deref().map(str::len), Some(255));
    r.revoked = Some(CString::new("/nonexistent").unwrap());
    assert_eq!(claims_at(&r, long, NOW), Err(SignedError::BadClaims));
    let long_sub = json!({"exp": NOW + 60, "sub": "x".repeat(252)});
    assert_eq!(claims_at(&r, long_sub, NOW), Err(SignedError::BadClaims));
    assert!(claims_at(&r, c, NOW).is_ok());
    // A jti or sub that is not a string could not be revoked by name either.
    for c in [
        json!({"exp": NOW + 60, "sub": 1}),
        json!({"exp": NOW + 60, "jti": 1}),
        json!({"exp": NOW + 60, "sub": null}),
        json!({"exp": NOW + 60, "jti": ["a"]}),
    ] {
        assert_eq!(
            claims_at(&r, c.clone(), NOW),
            Err(SignedError::BadClaims),
            "{c}"
        );
        let mut without = r.clone();
        without.revoked = None;
        let got = claims_at(&without, c.clone(), NOW).unwrap();
        assert_eq!((got.jti_file, got.sub_file), (None, None), "{c}");
    }
}

#[test]
fn claims_of_a_verified_token() {
    let mut r = all_rules();
    r.leeway_secs = 7;
    let t = hs(json!({"exp": NOW + 60, "iat": NOW, "jti": "j 1", "sub": "s"}));
    let verified = check(&r, &t, NOW).unwrap();
    // Long after it expired: claims_of_verified does not check time.
    assert_eq!(claims_of_verified(&r, t.as_bytes()), Some(verified.clone()));
    assert_eq!(verified.expires_at, NOW + 67);
    assert_eq!(verified.jti_file.as_deref(), Some("jti.j%201"));
    assert_eq!(claims_of_verified(&r, b"x.y.z"), None);
    assert_eq!(claims_of_verified(&r, b""), None);
}

// ---- revocation names and lookup ----

#[test]
fn revocation_name_examples() {
    assert_eq!(
        revocation_name("jti", "abc-_.@+XYZ09").as_deref(),
        Some("jti.abc-_.@+XYZ09")
    );
    assert_eq!(
        revocation_name("sub", "a b/c%").as_deref(),
        Some("sub.a%20b%2Fc%25")
    );
    assert_eq!(
        revocation_name("sub", "é\u{0}\u{7f}").as_deref(),
        Some("sub.%C3%A9%00%7F")
    );
    assert_eq!(revocation_name("sub", "..").as_deref(), Some("sub..."));
    assert_eq!(revocation_name("sub", "").as_deref(), Some("sub."));
    assert_eq!(
        revocation_name("sub", &"x".repeat(251)).map(|n| n.len()),
        Some(255)
    );
    assert_eq!(revocation_name("sub", &"x".repeat(252)), None);
    assert_eq!(
        revocation_name("sub", &format!("{}/", "x".repeat(248))).map(|n| n.len()),
        Some(255)
    );
    assert_eq!(
        revocation_name("sub", &format!("{}/", "x".repeat(249))),
        None
    );
}

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.@+".contains(&b)
}

proptest! {
    #[test]
    fn revocation_names_decode_back(value in any::<String>(), prefix in "(jti|sub)") {
        let encoded_len: usize = value.bytes().map(|b| if kept(b) { 1 } else { 3 }).sum();
        match revocation_name(&prefix, &value) {
            None => prop_assert!(prefix.len() + 1 + encoded_len > MAX_NAME),
            Some(name) => {
                prop_assert_eq!(name.len(), prefix.len() + 1 + encoded_len);
                prop_assert!(name.len() <= MAX_NAME);
                let rest = name.strip_prefix(&format!("{prefix}.")).unwrap();
                let mut decoded = Vec::new();
                let mut bytes = rest.bytes();
                while let Some(b) = bytes.next() {
                    if b == b'%' {
                        let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                        prop_assert!(hex.len() == 2 && hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)), "{}", name);
                        decoded.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                    } else {
                        prop_assert!(kept(b), "{}", name);
                        decoded.push(b);
                    }
                }
                prop_assert_eq!(decoded, value.into_bytes());
            }
        }
    }
}

fn claims(jti: Option<&str>, sub: Option<&str>, iat: Option<i64>) -> Claims {
    Claims {
        expires_at: i64::MAX,
        iat,
        jti_file: jti.map(|j| revocation_name("jti", j).unwrap()),
        sub_file: sub.map(|s| revocation_name("sub", s).unwrap()),
    }
}

fn touch(path: &std::path::Path, mtime: i64) {
    stdfs::write(path, "").unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64);
    stdfs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn revoked_by_jti_or_by_sub_from_its_mtime() {
    let d = tempfile::tempdir().unwrap();
    let dir = stdfs::File::open(d.path()).unwrap();
    let fd = dir.as_fd();
    touch(&d.path().join("jti.j%2F1"), NOW);
    touch(&d.path().join("sub.alice"), NOW);
    assert!(is_revoked(fd, &claims(Some("j/1"), None, None)).unwrap());
    assert!(!is_revoked(fd, &claims(Some("j/2"), None, None)).unwrap());
    assert!(is_revoked(fd, &claims(Some("j/2"), Some("alice"), None)).unwrap());
    assert!(is_revoked(fd, &claims(None, Some("alice"), Some(NOW - 1))).unwrap());
    assert!(is_revoked(fd, &claims(None, Some("alice"), Some(NOW))).unwrap());
    assert!(!is_revoked(fd, &claims(None, Some("alice"), Some(NOW + 1))).unwrap());
    assert!(!is_revoked(fd, &claims(None, Some("bob"), None)).unwrap());
    assert!(!is_revoked(fd, &claims(None, None, None)).unwrap());
    // Issued after the file: a jti file still revokes it.
    assert!(is_revoked(fd, &claims(Some("j/1"), Some("alice"), Some(NOW + 1))).unwrap());
}

#[test]
fn only_regular_files_revoke() {
    let d = tempfile::tempdir().unwrap();
    let dir = stdfs::File::open(d.path()).unwrap();
    touch(&d.path().join("target"), NOW);
    std::os::unix::fs::symlink(d.path().join("target"), d.path().join("jti.link")).unwrap();
    std::os::unix::fs::symlink(d.path().join("target"), d.path().join("sub.link")).unwrap();
    stdfs::create_dir(d.path().join("sub.adir")).unwrap();
    let fd = dir.as_fd();
    assert!(!is_revoked(fd, &claims(Some("link"), Some("link"), None)).unwrap());
    assert!(!is_revoked(fd, &claims(None, Some("adir"), None)).unwrap());
}

#[test]
fn a_lookup_that_fails_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    touch(&d.path().join("file"), NOW);
    // A handle on a regular file, not a directory: ENOTDIR.
    let not_dir = stdfs::File::open(d.path().join("file")).unwrap();
    let got = is_revoked(not_dir.as_fd(), &claims(Some("x"), None, None));
    assert!(matches!(got, Err(DirError::Failed(_))), "{got:?}");
}

// ---- claim_value ----

#[test]
fn claim_values() {
    let t = hs(
        json!({"exp": NOW + 60, "sub": "alice", "q": "a\"b", "u": "é",
        "n": 1.5, "big": 12345678901234567890u64, "t": true, "f": false, "z": null,
        "o": {"a": 1}, "a": [1], "nl": "a\nb", "del": "a\u{7f}", "tab": "a\tb", "neg": -3}),
    );
    let v = |name: &str| {
        claim_value(t.as_bytes(), name.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(v("sub").as_deref(), Some("alice"));
    assert_eq!(v("q").as_deref(), Some("a\"b"));
    assert_eq!(v("u").as_deref(), Some("é"));
    assert_eq!(v("n").as_deref(), Some("1.5"));
    assert_eq!(v("big").as_deref(), Some("12345678901234567890"));
    assert_eq!(v("neg").as_deref(), Some("-3"));
    assert_eq!(v("exp"), Some((NOW + 60).to_string()));
    assert_eq!(v("t").as_deref(), Some("true"));
    assert_eq!(v("f").as_deref(), Some("false"));
    for none in ["z", "o", "a", "nl", "del", "tab", "missing", ""] {
        assert_eq!(v(none), None, "{none}");
    }
    // The number as the token wrote it.
    let raw = raw_hs(r#"{"alg":"HS256"}"#, r#"{"exp":1e10,"x":1.50}"#, SECRET);
    assert_eq!(
        claim_value(raw.as_bytes(), b"x").as_deref(),
        Some(&b"1.50"[..])
    );
    assert_eq!(
        claim_value(raw.as_bytes(), b"exp").as_deref(),
        Some(&b"1e10"[..])
    );
    assert_eq!(claim_value(b"not a token", b"sub"), None);
    assert_eq!(claim_value(t.as_bytes(), b"\xff"), None);
}
