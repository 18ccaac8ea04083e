use super::*;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn rules(set: serde_json::Value) -> SignedRules {
    SignedRules {
        keys: Rc::new(KeySet::parse(set.to_string().as_bytes()).unwrap()),
        leeway_secs: 0,
        issuer: None,
        audience: None,
        revoked: None,
    }
}

fn hs_set() -> serde_json::Value {
    json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(SECRET)}]})
}

fn hs(claims: serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("h".into());
    encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

#[test]
fn hs256_smoke() {
    let r = rules(hs_set());
    let t = hs(json!({"exp": NOW + 10, "sub": "alice"}));
    assert!(is_signed_shape(t.as_bytes()));
    let c = verify(&r, t.as_bytes(), NOW).unwrap();
    assert_eq!(c.expires_at, NOW + 10);
    assert_eq!(c.sub_file.as_deref(), Some("sub.alice"));
    assert_eq!(
        verify(&r, t.as_bytes(), NOW + 10),
        Err(SignedError::Expired)
    );
}
