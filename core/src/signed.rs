//! Signed tokens: JWS compact serialization (RFC 7515/7519) verified against a JWK Set.
//!
//! The key decides the algorithm: a token's header may only select a key (`kid`) and must
//! name that key's algorithm. Claims are checked with the location's leeway, issuer and
//! audience; revocation is a file named after the token's `jti` or `sub` in a directory.
//!
//! API CONTRACT (the bodies are placeholders until the implementation lands).

use std::ffi::CString;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use crate::store::DirError;

/// Longest signed token accepted, in bytes.
pub const MAX_LEN: usize = 4096;

/// Longest revocation file name (`NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// A public JWK Set, checked when the configuration is loaded.
pub struct KeySet {
    len: usize,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("keys", &self.len).finish()
    }
}

impl KeySet {
    /// Parses a JWK Set; `Err` is the reason `nginx -t` prints after the file name, such as
    /// `two keys have "kid" "a"` or `key "a": an RSA key must have at least 2048 bits`.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let _ = json;
        Err("signed tokens are not implemented yet".into())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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
    /// long to name a revocation file while a revocation directory is configured.
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

/// Is `value` in JWS compact form: three base64url segments (no padding) separated by two
/// dots, the first decoding to a JSON object? Says nothing of its length or validity.
pub fn is_signed_shape(value: &[u8]) -> bool {
    let _ = value;
    false
}

/// Verifies `token`'s signature and claims at `unix_secs`; revocation is [`is_revoked`]'s.
pub fn verify(rules: &SignedRules, token: &[u8], unix_secs: i64) -> Result<Claims, SignedError> {
    let _ = (rules, token, unix_secs);
    Err(SignedError::Malformed)
}

/// The [`Claims`] of a token that [`verify`] accepted under `rules` before (a cached one),
/// without verifying it again.
pub fn claims_of_verified(rules: &SignedRules, token: &[u8]) -> Option<Claims> {
    let _ = (rules, token);
    None
}

/// `PREFIX.VALUE`, each byte of VALUE outside `A-Z a-z 0-9 - _ . @ +` as `%XX` (uppercase
/// hex); `None` when the name would be longer than [`MAX_NAME`].
pub fn revocation_name(prefix: &str, value: &str) -> Option<String> {
    let _ = (prefix, value);
    None
}

/// Is the token revoked in the revocation directory `dir`: `jti.X` exists, or `sub.Y` exists
/// with an mtime not before the token's `iat` (any `sub.Y` for a token without `iat`)?
/// Regular files only, never following symbolic links.
pub fn is_revoked(dir: BorrowedFd<'_>, claims: &Claims) -> Result<bool, DirError> {
    let _ = (dir, claims);
    Ok(false)
}

/// `$wcs_token_auth_claim_NAME` of a verified token: a string claim as it is, a number or
/// boolean as its JSON text; `None` for anything else, a missing claim, or a string with a
/// byte below 0x20 or 0x7F.
pub fn claim_value(token: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let _ = (token, name);
    None
}
