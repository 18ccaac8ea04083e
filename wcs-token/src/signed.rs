//! Signed tokens: `sign` mints one with a key of the private set; `check` verifies one with
//! the module's own rules (`core::signed`); `revoke` names a revocation file exactly as the
//! module looks it up.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Header;
use rustix::fs::{FileType, Mode, OFlags, Timestamps, UTIME_NOW};
use rustix::io::Errno;
use serde_json::{Map, Value};
use wcs_token_auth_core::signed::{self, KeySet, SignedError, SignedRules};
use wcs_token_auth_core::store::{self, DirError};

use crate::jwks;
use crate::tokens::{random_bytes, Failure};

/// `sign --jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jti {
    /// 128 random bits, base64url.
    Auto,
    Value(String),
}

/// What `sign` puts in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    pub private: PathBuf,
    pub kid: Option<String>,
    pub sub: String,
    pub ttl_secs: u64,
    pub audiences: Vec<String>,
    pub issuer: Option<String>,
    pub jti: Option<Jti>,
    /// `--claim NAME=VALUE` (a string) or `NAME:=JSON`.
    pub claims: Vec<(String, Value)>,
}

/// Claims `sign` sets from its own options; `--claim` may not set them.
pub const OWN_CLAIMS: [&str; 5] = ["sub", "exp", "aud", "iss", "jti"];

/// The token, signed at `now` with the chosen key of the private set.
pub fn sign(o: &SignOptions, now: i64) -> Result<String, Failure> {
    let set = jwks::read(&o.private)?;
    let jwk = jwks::choose(&set, o.kid.as_deref(), &o.private)?;
    let kid = jwk.kid.clone();
    let (alg, key) = jwk.encoding_key().map_err(|reason| {
        Failure(format!(
            "key \"{}\" in \"{}\": {reason}",
            kid.as_deref().unwrap_or(""),
            o.private.display()
        ))
    })?;
    let mut claims = Map::new();
    claims.insert("iat".into(), now.into());
    for (name, value) in &o.claims {
        claims.insert(name.clone(), value.clone());
    }
    claims.insert("sub".into(), o.sub.clone().into());
    let exp = i64::try_from(o.ttl_secs)
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .ok_or_else(|| Failure("--ttl is too long".into()))?;
    claims.insert("exp".into(), exp.into());
    match o.audiences.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert("aud".into(), many.to_vec().into());
        }
    }
    if let Some(iss) = &o.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    match &o.jti {
        None => {}
        Some(Jti::Value(v)) => {
            claims.insert("jti".into(), v.clone().into());
        }
        Some(Jti::Auto) => {
            let mut bytes = [0u8; 16];
            random_bytes(&mut bytes)?;
            claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(bytes).into());
        }
    }
    for name in ["sub", "jti"] {
        if let Some(Value::String(v)) = claims.get(name) {
            if signed::revocation_name(name, v).is_none() {
                eprintln!(
                    "wcs-token: warning: the {name} is too long to name a revocation file; \
                     nginx refuses this token while wcs_token_auth_revoked is set"
                );
            }
        }
    }
    let mut header = Header::new(alg);
    header.kid = kid;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| Failure(format!("cannot sign the token: {e}")))
}

/// `check --jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    pub jwks: PathBuf,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    pub revoked: Option<PathBuf>,
}

/// The `$wcs_token_auth_status` nginx would log for `token` at `now`, under these rules.
pub fn check(o: &CheckOptions, token: &[u8], now: i64) -> Result<&'static str, Failure> {
    let json = fs::read(&o.jwks)
        .map_err(|e| Failure(format!("cannot read key set \"{}\": {e}", o.jwks.display())))?;
    let keys = KeySet::parse(&json).map_err(|reason| {
        Failure(format!(
            "invalid key set \"{}\", {reason}",
            o.jwks.display()
        ))
    })?;
    let revoked = match &o.revoked {
        Some(dir) => Some(absolute_c(dir)?),
        None => None,
    };
    let rules = SignedRules {
        keys: Rc::new(keys),
        leeway_secs: o.leeway_secs,
        issuer: o.issuer.clone(),
        audience: o.audience.clone(),
        revoked,
    };
    if token.is_empty() {
        return Ok("no_token");
    }
    if token.len() > signed::MAX_LEN || !signed::is_signed_shape(token) {
        return Ok("malformed_token");
    }
    let claims = match signed::verify(&rules, token, now) {
        Ok(claims) => claims,
        Err(SignedError::Malformed) => return Ok("malformed_token"),
        Err(SignedError::BadSignature) => return Ok("bad_signature"),
        Err(SignedError::BadClaims) => return Ok("bad_claims"),
        Err(SignedError::Expired) => return Ok("expired_token"),
    };
    if let (Some(dir), Some(path)) = (&rules.revoked, &o.revoked) {
        let fd = store::open_dir(dir).map_err(|e| revocation_dir_failure(path, &e))?;
        if signed::is_revoked(fd.as_fd(), &claims).map_err(|e| revocation_dir_failure(path, &e))? {
            return Ok("revoked_token");
        }
    }
    Ok("allowed")
}

/// `revoke --jti` / `--sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Jti(String),
    Sub(String),
}

/// Creates `jti.<jti>`, or creates or touches `sub.<sub>` (its mtime is the moment from which
/// on tokens issued to the subject are valid again); returns the file's path.
pub fn revoke(dir: &Path, what: &Revocation) -> Result<PathBuf, Failure> {
    let (prefix, value) = match what {
        Revocation::Jti(v) => ("jti", v),
        Revocation::Sub(v) => ("sub", v),
    };
    let name = signed::revocation_name(prefix, value).ok_or_else(|| {
        Failure(format!(
            "cannot revoke by {prefix}: its file name would be longer than {} bytes \
             (nginx refuses such a token while wcs_token_auth_revoked is set)",
            signed::MAX_NAME
        ))
    })?;
    let fd = store::open_dir(&absolute_c(dir)?).map_err(|e| revocation_dir_failure(dir, &e))?;
    let path = dir.join(&name);
    let failure = |e: Errno| {
        Failure(format!(
            "cannot create \"{}\": {}",
            path.display(),
            io::Error::from(e)
        ))
    };
    // Never through a symbolic link, and never blocking on a FIFO: the module only counts
    // regular files.
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(&fd, name.as_str(), flags, Mode::from_raw_mode(0o644)) {
        Ok(f) => f,
        Err(Errno::LOOP) | Err(Errno::ISDIR) | Err(Errno::NXIO) => {
            return Err(Failure(format!(
                "\"{}\" exists and is not a regular file: nginx would not count it",
                path.display()
            )))
        }
        Err(e) => return Err(failure(e)),
    };
    let st = rustix::fs::fstat(&file).map_err(failure)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Failure(format!(
            "\"{}\" exists and is not a regular file: nginx would not count it",
            path.display()
        )));
    }
    if let Revocation::Sub(_) = what {
        let now = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
        };
        rustix::fs::futimens(&file, &now).map_err(failure)?;
    }
    Ok(path)
}

fn absolute_c(path: &Path) -> Result<CString, Failure> {
    let abs = std::path::absolute(path)
        .map_err(|e| Failure(format!("invalid directory \"{}\": {e}", path.display())))?;
    CString::new(abs.into_os_string().into_encoded_bytes())
        .map_err(|_| Failure(format!("invalid directory \"{}\"", path.display())))
}

fn revocation_dir_failure(path: &Path, e: &DirError) -> Failure {
    Failure(match e {
        DirError::Missing(err) => format!(
            "revocation directory \"{}\" does not exist: {err}",
            path.display()
        ),
        DirError::Failed(err) => format!(
            "cannot read revocation directory \"{}\": {err}",
            path.display()
        ),
    })
}
