//! Signed tokens: JWS compact serialization (RFC 7515/7519) verified against a JWK Set.
//!
//! The key decides the algorithm: a token's header may only select a key (`kid`) and must
//! name that key's algorithm. Claims are checked with the location's leeway, issuer and
//! audience; revocation is a file named after the token's `jti` or `sub` in a directory.
//!
//! `jsonwebtoken` supplies the keys and the signature check only: its `decode` would accept
//! what this module refuses (duplicate JSON members, keys chosen by the header's `alg`) and
//! has no revocation, so the token's segments and claims are read here with `serde_json`.
//!
//! Dates are whole seconds, rounded towards refusal: a fractional `exp` is rounded down,
//! `nbf` and `iat` up for the "not in the future" checks; `iat` is rounded down for
//! revocation (a `sub.` file of the same second revokes).

use std::ffi::CString;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rustix::fs::{self, AtFlags, FileType};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::store::DirError;

/// Longest signed token accepted, in bytes.
pub const MAX_LEN: usize = 4096;

/// Longest revocation file name (`NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// One verification key: the algorithm is the key's, never the token's.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    /// `alg` as a JOSE header names it.
    alg_name: &'static str,
    key: DecodingKey,
}

impl Key {
    /// Does a header's `alg` name this key's algorithm? `Ed25519` is EdDSA's fully-specified
    /// name (RFC 9864), which newer libraries write.
    fn is_named_by(&self, alg: &str) -> bool {
        alg == self.alg_name || (self.alg == Algorithm::EdDSA && alg == "Ed25519")
    }
}

/// A public JWK Set, checked when the configuration is loaded.
pub struct KeySet {
    keys: Vec<Key>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("keys", &self.len()).finish()
    }
}

impl KeySet {
    /// Parses a JWK Set; `Err` is the reason `nginx -t` prints after the file name, such as
    /// `two keys have "kid" "a"` or `key "a": an RSA key must have at least 2048 bits`.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let top = Members::parse(json).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => format!("not a JWK Set: {e}"),
            _ => format!("invalid JSON: {e}"),
        })?;
        let raw_keys = top
            .get("keys")
            .ok_or_else(|| "not a JWK Set: no \"keys\" member".to_string())?;
        let raw_keys: Vec<&RawValue> = serde_json::from_str(raw_keys.get())
            .map_err(|_| "not a JWK Set: \"keys\" is not an array".to_string())?;
        if raw_keys.is_empty() {
            return Err("the set has no keys".into());
        }
        let mut keys = Vec::with_capacity(raw_keys.len());
        for (i, raw) in raw_keys.iter().enumerate() {
            keys.push(parse_key(raw, i + 1)?);
        }
        for (i, k) in keys.iter().enumerate() {
            match &k.kid {
                Some(kid) if keys.iter().skip(i + 1).any(|o| o.kid.as_ref() == Some(kid)) => {
                    return Err(format!("two keys have \"kid\" \"{}\"", kid.escape_debug()));
                }
                None if keys.len() > 1 => {
                    return Err(format!(
                        "key {} has no \"kid\": each key needs one when the set has several",
                        i + 1
                    ));
                }
                _ => {}
            }
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a header's `kid` names; without `kid`, the only key of a one-key set.
    fn select(&self, kid: Option<&RawValue>) -> Option<&Key> {
        match kid {
            None => match self.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
            Some(raw) => {
                let kid: String = serde_json::from_str(raw.get()).ok()?;
                self.keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid.as_str()))
            }
        }
    }
}

/// Members a public key must not have: private parts (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

fn parse_key(raw: &RawValue, index: usize) -> Result<Key, String> {
    let m = Members::parse(raw.get().as_bytes()).map_err(|e| format!("key {index}: {e}"))?;
    let text = |name: &str| -> Result<Option<String>, String> {
        match m.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<String>(v.get())
                .map(Some)
                .map_err(|_| format!("\"{name}\" is not a string")),
        }
    };
    let kid = text("kid").map_err(|e| format!("key {index}: {e}"))?;
    let label = match &kid {
        Some(kid) => format!("key \"{}\"", kid.escape_debug()),
        None => format!("key {index}"),
    };
    let fail = |why: String| format!("{label}: {why}");
    let kty = text("kty")
        .map_err(fail)?
        .ok_or_else(|| fail("no \"kty\"".into()))?;
    let alg = text("alg").map_err(fail)?;
    if let Some(u) = text("use").map_err(fail)? {
        if u != "sig" {
            return Err(fail(format!(
                "\"use\" is \"{}\", not \"sig\"",
                u.escape_debug()
            )));
        }
    }
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let s = text(name)?.ok_or_else(|| format!("no \"{name}\""))?;
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| format!("\"{name}\" is not base64url without padding"))
    };
    if kty != "oct" {
        if let Some(p) = PRIVATE_MEMBERS.iter().find(|p| m.get(p).is_some()) {
            return Err(fail(format!(
                "has the private member \"{p}\"; the key set must hold public keys only"
            )));
        }
    }
    let (alg, alg_name, key) = match kty.as_str() {
        "oct" => {
            let (alg, name, min) = match alg.as_deref() {
                Some("HS256") => (Algorithm::HS256, "HS256", 32),
                Some("HS384") => (Algorithm::HS384, "HS384", 48),
                Some("HS512") => (Algorithm::HS512, "HS512", 64),
                Some(other) => {
                    return Err(fail(format!(
                        "unsupported \"alg\" \"{}\" for an \"oct\" key (HS256, HS384 or HS512)",
                        other.escape_debug()
                    )))
                }
                None => {
                    return Err(fail(
                        "an \"oct\" key must name its \"alg\" (HS256, HS384 or HS512)".into(),
                    ))
                }
            };
            let k = bytes("k").map_err(fail)?;
            if k.len() < min {
                return Err(fail(format!(
                    "an {name} secret must have at least {min} bytes, this one has {}",
                    k.len()
                )));
            }
            (alg, name, DecodingKey::from_secret(&k))
        }
        "OKP" => {
            expect_curve(&text("crv").map_err(fail)?, "Ed25519", "OKP").map_err(fail)?;
            expect_alg(&alg, &["EdDSA", "Ed25519"], "an Ed25519").map_err(fail)?;
            let x = bytes("x").map_err(fail)?;
            let x: [u8; 32] = x
                .try_into()
                .map_err(|_| fail("\"x\" is not 32 bytes".into()))?;
            ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| fail("not a valid Ed25519 public key".into()))?;
            let key = text("x")
                .ok()
                .flatten()
                .and_then(|x| DecodingKey::from_ed_components(&x).ok())
                .ok_or_else(|| fail("\"x\" is not usable".into()))?;
            (Algorithm::EdDSA, "EdDSA", key)
        }
        "EC" => {
            expect_curve(&text("crv").map_err(fail)?, "P-256", "EC").map_err(fail)?;
            expect_alg(&alg, &["ES256"], "a P-256").map_err(fail)?;
            let x = bytes("x").map_err(fail)?;
            let y = bytes("y").map_err(fail)?;
            if x.len() != 32 || y.len() != 32 {
                return Err(fail("\"x\" and \"y\" must be 32 bytes each".into()));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| fail("not a valid P-256 public key".into()))?;
            let key = match (text("x"), text("y")) {
                (Ok(Some(x)), Ok(Some(y))) => DecodingKey::from_ec_components(&x, &y).ok(),
                _ => None,
            }
            .ok_or_else(|| fail("\"x\" or \"y\" is not usable".into()))?;
            (Algorithm::ES256, "ES256", key)
        }
        "RSA" => {
            expect_alg(&alg, &["RS256"], "an RSA").map_err(fail)?;
            let n = bytes("n").map_err(fail)?;
            let e = bytes("e").map_err(fail)?;
            let n_int = rsa::BigUint::from_bytes_be(&n);
            let bits = n_int.bits();
            if bits < 2048 {
                return Err(fail(format!(
                    "an RSA key must have at least 2048 bits, this one has {bits}"
                )));
            }
            rsa::RsaPublicKey::new(n_int, rsa::BigUint::from_bytes_be(&e))
                .map_err(|e| fail(format!("not a usable RSA public key: {e}")))?;
            (
                Algorithm::RS256,
                "RS256",
                DecodingKey::from_rsa_raw_components(&n, &e),
            )
        }
        other => {
            return Err(fail(format!(
                "unsupported \"kty\" \"{}\" (oct, OKP, EC or RSA)",
                other.escape_debug()
            )))
        }
    };
    Ok(Key {
        kid,
        alg,
        alg_name,
        key,
    })
}

fn expect_curve(crv: &Option<String>, want: &str, kty: &str) -> Result<(), String> {
    match crv.as_deref() {
        Some(c) if c == want => Ok(()),
        Some(c) => Err(format!(
            "unsupported \"crv\" \"{}\" for kty \"{kty}\" (only {want})",
            c.escape_debug()
        )),
        None => Err("no \"crv\"".into()),
    }
}

fn expect_alg(alg: &Option<String>, names: &[&str], what: &str) -> Result<(), String> {
    match alg.as_deref() {
        None => Ok(()),
        Some(a) if names.contains(&a) => Ok(()),
        Some(a) => Err(format!(
            "\"alg\" \"{}\" does not match {what} key, whose algorithm is {}",
            a.escape_debug(),
            names.first().copied().unwrap_or_default()
        )),
    }
}

/// A JSON object's members, each value left as its JSON text; a member named twice is an
/// error (RFC 7515 section 4: a JOSE header with duplicate names is refused, and one reader
/// must not see another value than the signer meant). Own visitor: serde_json silently keeps
/// the last of two members with one name and has no option to refuse them.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'a> Members<'a> {
    fn parse(json: &'a [u8]) -> Result<Members<'a>, serde_json::Error> {
        serde_json::from_slice(json)
    }

    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    members.push((k, v));
                }
                let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                names.sort_unstable();
                if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
                    let name = w.first().copied().unwrap_or_default();
                    return Err(de::Error::custom(format_args!(
                        "member \"{}\" appears twice",
                        name.escape_debug()
                    )));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// Accepts any JSON object and keeps nothing of it.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// A location's rules for signed tokens.
#[derive(Debug, Clone)]
pub struct SignedRules {
    pub keys: Rc<KeySet>,
    /// `wcs_token_auth_jwt_leeway`, seconds.
    pub leeway_secs: u64,
    /// `wcs_token_auth_jwt_issuer`: `iss` must equal it.
    pub issuer: Option<String>,
    /// `wcs_token_auth_jwt_audience`: `aud` (string or array of strings) must contain it.
    pub audience: Option<String>,
    /// `wcs_token_auth_revoked`, absolute.
    pub revoked: Option<CString>,
}

/// Why a signed token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedError {
    /// Not a JWS the module reads: bad base64url, a header that is not a JSON object or has a
    /// key twice, longer than [`MAX_LEN`].
    Malformed,
    /// Unknown `kid`, `alg` not the key's (or `none`), or the signature does not verify.
    BadSignature,
    /// `exp` missing or not a number, `nbf`/`iat` in the future beyond leeway, `iss`/`aud`
    /// mismatch, a `crit` header, a payload that is not a JSON object, or a `jti`/`sub` too
    /// long (or not a string) to name a revocation file while a revocation directory is
    /// configured.
    BadClaims,
    /// The time has reached `exp` + leeway.
    Expired,
}

/// What the module needs from a verified token's claims: its end, and its revocation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `exp` + leeway, whole seconds since the epoch: refused from this second on.
    pub expires_at: i64,
    /// `iat`, whole seconds, when present.
    pub iat: Option<i64>,
    /// `jti.<percent-encoded jti>` when the token has a string `jti`.
    pub jti_file: Option<String>,
    /// `sub.<percent-encoded sub>` when the token has a string `sub`.
    pub sub_file: Option<String>,
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The three segments of a compact JWS, each non-empty and of the base64url alphabet. Own
/// code: two splits and an alphabet test, cheaper than a decode (which stays the crate's).
fn segments(value: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut parts = value.split(|&b| b == b'.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let ok = |seg: &[u8]| !seg.is_empty() && seg.iter().all(|&b| is_b64url(b));
    (ok(h) && ok(p) && ok(s)).then_some((h, p, s))
}

/// Is `value` in JWS compact form: three base64url segments (no padding) separated by two
/// dots, the first decoding to a JSON object? Says nothing of its length or validity.
pub fn is_signed_shape(value: &[u8]) -> bool {
    let Some((header, _, _)) = segments(value) else {
        return false;
    };
    // JSON text is UTF-8 (RFC 8259), which serde_json does not check in what it skips.
    let Ok(json) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    std::str::from_utf8(&json).is_ok_and(|json| serde_json::from_str::<AnyObject>(json).is_ok())
}

/// Verifies `token`'s signature and claims at `unix_secs`; revocation is [`is_revoked`]'s.
pub fn verify(rules: &SignedRules, token: &[u8], unix_secs: i64) -> Result<Claims, SignedError> {
    if token.len() > MAX_LEN {
        return Err(SignedError::Malformed);
    }
    let (h64, p64, s64) = segments(token).ok_or(SignedError::Malformed)?;
    let decode = |seg: &[u8]| {
        URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|_| SignedError::Malformed)
    };
    let header_json = decode(h64)?;
    let payload_json = decode(p64)?;
    // Decoded only to tell a malformed signature from a wrong one; jsonwebtoken decodes it
    // again.
    decode(s64)?;
    let header = Members::parse(&header_json).map_err(|_| SignedError::Malformed)?;
    // No extension is understood, so a token that makes one critical is refused (RFC 7515
    // section 4.1.11).
    if header.get("crit").is_some() {
        return Err(SignedError::BadClaims);
    }
    let alg: String = header
        .get("alg")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .ok_or(SignedError::BadSignature)?;
    let key = rules
        .keys
        .select(header.get("kid"))
        .ok_or(SignedError::BadSignature)?;
    // `none`, and any algorithm but the key's, never reach a verifier.
    if !key.is_named_by(&alg) {
        return Err(SignedError::BadSignature);
    }
    let signature = std::str::from_utf8(s64).map_err(|_| SignedError::Malformed)?;
    let signed_part = token
        .get(..h64.len() + 1 + p64.len())
        .ok_or(SignedError::Malformed)?;
    match jsonwebtoken::crypto::verify(signature, signed_part, &key.key, key.alg) {
        Ok(true) => {}
        _ => return Err(SignedError::BadSignature),
    }
    let payload = Members::parse(&payload_json).map_err(|_| SignedError::BadClaims)?;
    check_claims(rules, &payload, Some(unix_secs))
}

/// A NumericDate in whole seconds, both ways.
#[derive(Clone, Copy)]
struct Date {
    floor: i64,
    ceil: i64,
}

impl Date {
    fn of(n: &serde_json::Number) -> Option<Date> {
        if let Some(i) = n.as_i64() {
            return Some(Date { floor: i, ceil: i });
        }
        // A fraction, or beyond i64: `as` saturates, so a date past i64 seconds is the end of
        // time.
        let f = n.as_f64()?;
        Some(Date {
            floor: f.floor() as i64,
            ceil: f.ceil() as i64,
        })
    }
}

/// The claims the module reads, or why they are refused; time checks only with `now`.
fn check_claims(
    rules: &SignedRules,
    payload: &Members<'_>,
    now: Option<i64>,
) -> Result<Claims, SignedError> {
    let leeway = i64::try_from(rules.leeway_secs).unwrap_or(i64::MAX);
    let date = |name: &str| -> Result<Option<Date>, SignedError> {
        match payload.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<serde_json::Number>(v.get())
                .ok()
                .and_then(|n| Date::of(&n))
                .map(Some)
                .ok_or(SignedError::BadClaims),
        }
    };
    let text = |name: &str| -> Result<Option<String>, SignedError> {
        match payload.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<String>(v.get())
                .map(Some)
                .map_err(|_| SignedError::BadClaims),
        }
    };
    let exp = date("exp")?.ok_or(SignedError::BadClaims)?;
    let nbf = date("nbf")?;
    let iat = date("iat")?;
    let expires_at = exp.floor.saturating_add(leeway);
    if let Some(now) = now {
        if now >= expires_at {
            return Err(SignedError::Expired);
        }
        let late = now.saturating_add(leeway);
        if nbf.is_some_and(|nbf| late < nbf.ceil) {
            return Err(SignedError::BadClaims);
        }
        if iat.is_some_and(|iat| iat.ceil > late) {
            return Err(SignedError::BadClaims);
        }
    }
    if let Some(want) = &rules.issuer {
        if text("iss")?.as_ref() != Some(want) {
            return Err(SignedError::BadClaims);
        }
    }
    if let Some(want) = &rules.audience {
        let aud = payload.get("aud").ok_or(SignedError::BadClaims)?;
        let auds: Vec<String> = match serde_json::from_str::<String>(aud.get()) {
            Ok(one) => vec![one],
            Err(_) => serde_json::from_str(aud.get()).map_err(|_| SignedError::BadClaims)?,
        };
        if !auds.contains(want) {
            return Err(SignedError::BadClaims);
        }
    }
    // A revocation file names a string `jti`/`sub`. One that cannot be named (too long, or
    // not a string) could never be revoked: refused while a revocation directory is set.
    let name = |prefix: &str| -> Result<Option<String>, SignedError> {
        let named = match payload.get(prefix) {
            None => return Ok(None),
            Some(v) => serde_json::from_str::<String>(v.get())
                .ok()
                .and_then(|v| revocation_name(prefix, &v)),
        };
        match named {
            None if rules.revoked.is_some() => Err(SignedError::BadClaims),
            named => Ok(named),
        }
    };
    Ok(Claims {
        expires_at,
        iat: iat.map(|iat| iat.floor),
        jti_file: name("jti")?,
        sub_file: name("sub")?,
    })
}

/// The decoded payload of a token of the right shape.
fn payload_json(token: &[u8]) -> Option<Vec<u8>> {
    let (_, p64, _) = segments(token)?;
    URL_SAFE_NO_PAD.decode(p64).ok()
}

/// The [`Claims`] of a token that [`verify`] accepted under `rules` before (a cached one),
/// without verifying it again.
pub fn claims_of_verified(rules: &SignedRules, token: &[u8]) -> Option<Claims> {
    let json = payload_json(token)?;
    let payload = Members::parse(&json).ok()?;
    check_claims(rules, &payload, None).ok()
}

/// Bytes kept as they are in a revocation file name; the rest is `%XX`.
const NAME_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@')
    .remove(b'+');

/// `PREFIX.VALUE`, each byte of VALUE outside `A-Z a-z 0-9 - _ . @ +` as `%XX` (uppercase
/// hex); `None` when the name would be longer than [`MAX_NAME`].
pub fn revocation_name(prefix: &str, value: &str) -> Option<String> {
    let mut name = String::with_capacity(prefix.len() + 1 + value.len());
    name.push_str(prefix);
    name.push('.');
    for piece in percent_encoding::utf8_percent_encode(value, NAME_KEEPS) {
        name.push_str(piece);
        if name.len() > MAX_NAME {
            return None;
        }
    }
    (name.len() <= MAX_NAME).then_some(name)
}

/// Is the token revoked in the revocation directory `dir`: `jti.X` exists, or `sub.Y` exists
/// with an mtime not before the token's `iat` (any `sub.Y` for a token without `iat`)?
/// Regular files only, never following symbolic links.
pub fn is_revoked(dir: BorrowedFd<'_>, claims: &Claims) -> Result<bool, DirError> {
    if let Some(name) = &claims.jti_file {
        if file_mtime(dir, name)?.is_some() {
            return Ok(true);
        }
    }
    if let Some(name) = &claims.sub_file {
        if let Some(mtime) = file_mtime(dir, name)? {
            return Ok(claims.iat.is_none_or(|iat| mtime >= iat));
        }
    }
    Ok(false)
}

/// The mtime of the regular file `name` in `dir`; `None` when there is none.
fn file_mtime(dir: BorrowedFd<'_>, name: &str) -> Result<Option<i64>, DirError> {
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
            Ok(Some(st.st_mtime))
        }
        Ok(_) => Ok(None),
        Err(e) if e == rustix::io::Errno::NOENT => Ok(None),
        Err(e) => Err(DirError::Failed(e.into())),
    }
}

/// `$wcs_token_auth_claim_NAME` of a verified token: a string claim as it is, a number or
/// boolean as its JSON text; `None` for anything else, a missing claim, or a string with a
/// byte below 0x20 or 0x7F.
pub fn claim_value(token: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let name = std::str::from_utf8(name).ok()?;
    let json = payload_json(token)?;
    let payload = Members::parse(&json).ok()?;
    let raw = payload.get(name)?.get();
    match raw.as_bytes().first()? {
        b'"' => {
            let s: String = serde_json::from_str(raw).ok()?;
            (!s.bytes().any(|b| b < 0x20 || b == 0x7F)).then(|| s.into_bytes())
        }
        b't' | b'f' | b'-' | b'0'..=b'9' => Some(raw.as_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
