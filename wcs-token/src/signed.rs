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
use wcs_token_auth_core::auth::Status;
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
    let status = if token.is_empty() {
        Status::NoToken
    } else if token.len() > signed::MAX_LEN || !signed::is_signed_shape(token) {
        Status::MalformedToken
    } else {
        match signed::verify(&rules, token, now) {
            Err(SignedError::Malformed) => Status::MalformedToken,
            Err(SignedError::BadSignature) => Status::BadSignature,
            Err(SignedError::BadClaims) => Status::BadClaims,
            Err(SignedError::Expired) => Status::ExpiredToken,
            Ok(claims) => match (&rules.revoked, &o.revoked) {
                (Some(dir), Some(path)) => {
                    let fd = store::open_dir(dir).map_err(|e| revocation_dir_failure(path, &e))?;
                    match signed::is_revoked(fd.as_fd(), &claims) {
                        Ok(true) => Status::RevokedToken,
                        Ok(false) => Status::Allowed,
                        Err(e) => return Err(revocation_dir_failure(path, &e)),
                    }
                }
                _ => Status::Allowed,
            },
        }
    };
    Ok(status.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{self, parse_algorithm, ALGORITHMS};
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    const NOW: i64 = 1_800_000_000;

    struct Sets {
        _dir: tempfile::TempDir,
        private: PathBuf,
        public: PathBuf,
    }

    fn sets(alg: &str) -> Sets {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private.json");
        let public = dir.path().join("public.json");
        jwks::create(parse_algorithm(alg).unwrap(), "k1", &private, &public).unwrap();
        Sets {
            _dir: dir,
            private,
            public,
        }
    }

    fn sign_opts(s: &Sets) -> SignOptions {
        SignOptions {
            private: s.private.clone(),
            kid: None,
            sub: "alice".into(),
            ttl_secs: 3600,
            audiences: vec![],
            issuer: None,
            jti: None,
            claims: vec![],
        }
    }

    fn check_opts(s: &Sets) -> CheckOptions {
        CheckOptions {
            jwks: s.public.clone(),
            issuer: None,
            audience: None,
            leeway_secs: 0,
            revoked: None,
        }
    }

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn header(token: &str) -> Value {
        let part = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn what_sign_mints_the_module_accepts_until_exp() {
        for alg in ALGORITHMS {
            let s = sets(alg);
            let token = sign(&sign_opts(&s), NOW).unwrap();
            assert_eq!(header(&token)["alg"], alg);
            assert_eq!(header(&token)["kid"], "k1");
            let c = check_opts(&s);
            let t = token.as_bytes();
            assert_eq!(check(&c, t, NOW).unwrap(), "allowed", "{alg}");
            assert_eq!(check(&c, t, NOW + 3599).unwrap(), "allowed", "{alg}");
            assert_eq!(check(&c, t, NOW + 3600).unwrap(), "expired_token", "{alg}");
            let leeway = CheckOptions {
                leeway_secs: 30,
                ..c.clone()
            };
            assert_eq!(check(&leeway, t, NOW + 3629).unwrap(), "allowed");
            // Another key set of the same kind does not verify it.
            let other = sets(alg);
            assert_eq!(
                check(&check_opts(&other), t, NOW).unwrap(),
                "bad_signature",
                "{alg}"
            );
        }
    }

    #[test]
    fn sign_sets_the_claims_asked_for() {
        let s = sets("EdDSA");
        let o = SignOptions {
            audiences: vec!["wcs".into()],
            issuer: Some("backend".into()),
            jti: Some(Jti::Value("t-1".into())),
            claims: vec![
                ("room".into(), Value::String("r1".into())),
                ("level".into(), Value::from(3)),
                ("iat".into(), Value::from(NOW - 10)),
            ],
            ..sign_opts(&s)
        };
        let p = payload(&sign(&o, NOW).unwrap());
        assert_eq!(
            p,
            serde_json::json!({"sub": "alice", "exp": NOW + 3600, "iat": NOW - 10, "aud": "wcs",
                "iss": "backend", "jti": "t-1", "room": "r1", "level": 3})
        );
        let two = SignOptions {
            audiences: vec!["a".into(), "b".into()],
            jti: Some(Jti::Auto),
            ..sign_opts(&s)
        };
        let p = payload(&sign(&two, NOW).unwrap());
        assert_eq!(p["aud"], serde_json::json!(["a", "b"]));
        assert_eq!(p["iat"], NOW);
        let jti = p["jti"].as_str().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(jti).unwrap().len(), 16);
        let again = payload(&sign(&two, NOW).unwrap());
        assert_ne!(again["jti"], p["jti"]);
    }

    #[test]
    fn issuer_and_audience_are_the_modules_rules() {
        let s = sets("ES256");
        let token = sign(
            &SignOptions {
                audiences: vec!["wcs".into(), "other".into()],
                issuer: Some("backend".into()),
                ..sign_opts(&s)
            },
            NOW,
        )
        .unwrap();
        let t = token.as_bytes();
        let with = |iss: Option<&str>, aud: Option<&str>| CheckOptions {
            issuer: iss.map(String::from),
            audience: aud.map(String::from),
            ..check_opts(&s)
        };
        assert_eq!(
            check(&with(Some("backend"), Some("wcs")), t, NOW).unwrap(),
            "allowed"
        );
        assert_eq!(
            check(&with(Some("else"), None), t, NOW).unwrap(),
            "bad_claims"
        );
        assert_eq!(
            check(&with(None, Some("nope")), t, NOW).unwrap(),
            "bad_claims"
        );
    }

    #[test]
    fn check_words_for_what_is_not_a_valid_signed_token() {
        let s = sets("HS256");
        let c = check_opts(&s);
        assert_eq!(check(&c, b"", NOW).unwrap(), "no_token");
        assert_eq!(
            check(&c, b"plain-file-token", NOW).unwrap(),
            "malformed_token"
        );
        let token = sign(&sign_opts(&s), NOW).unwrap();
        let mut long = token.clone().into_bytes();
        long.resize(signed::MAX_LEN + 1, b'A');
        assert_eq!(check(&c, &long, NOW).unwrap(), "malformed_token");
        let mut forged = token.into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(check(&c, &forged, NOW).unwrap(), "bad_signature");
        let missing = CheckOptions {
            jwks: s.public.with_extension("nope"),
            ..c.clone()
        };
        assert!(check(&missing, b"x", NOW)
            .unwrap_err()
            .0
            .contains("cannot read key set"));
        // The private set is not a key set nginx loads: check says why, as nginx -t would.
        let private = CheckOptions {
            jwks: s.private.clone(),
            ..c
        };
        // (An HMAC private set is its public set; an asymmetric one has "d".)
        assert!(check(&private, b"x", NOW).is_ok());
        let es = sets("ES256");
        let err = check(
            &CheckOptions {
                jwks: es.private.clone(),
                ..check_opts(&es)
            },
            b"x",
            NOW,
        )
        .unwrap_err();
        assert!(
            err.0.contains("invalid key set") && err.0.contains("\"d\""),
            "{}",
            err.0
        );
    }

    fn set_mtime(path: &Path, secs_ago: u64) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    }

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn revoke_by_jti_and_by_sub_as_the_module_reads_it() {
        let s = sets("EdDSA");
        let dir = tempfile::tempdir().unwrap();
        let now = now_secs();
        let o = SignOptions {
            sub: "alice@example.com/x y".into(),
            jti: Some(Jti::Value("id 1/é".into())),
            ..sign_opts(&s)
        };
        let old = sign(
            &SignOptions {
                claims: vec![("iat".into(), Value::from(now - 100))],
                ..o.clone()
            },
            now,
        )
        .unwrap();
        let c = CheckOptions {
            revoked: Some(dir.path().to_path_buf()),
            ..check_opts(&s)
        };
        assert_eq!(check(&c, old.as_bytes(), now).unwrap(), "allowed");

        let path = revoke(dir.path(), &Revocation::Jti("id 1/é".into())).unwrap();
        assert_eq!(path, dir.path().join("jti.id%201%2F%C3%A9"));
        assert_eq!(check(&c, old.as_bytes(), now).unwrap(), "revoked_token");
        // Revoking twice is revoking.
        revoke(dir.path(), &Revocation::Jti("id 1/é".into())).unwrap();
        fs::remove_file(&path).unwrap();

        let path = revoke(dir.path(), &Revocation::Sub("alice@example.com/x y".into())).unwrap();
        assert_eq!(path, dir.path().join("sub.alice@example.com%2Fx%20y"));
        assert_eq!(check(&c, old.as_bytes(), now).unwrap(), "revoked_token");
        // A sub file older than the token's iat does not revoke it; touching it again does.
        set_mtime(&path, 200);
        assert_eq!(check(&c, old.as_bytes(), now).unwrap(), "allowed");
        revoke(dir.path(), &Revocation::Sub("alice@example.com/x y".into())).unwrap();
        assert_eq!(check(&c, old.as_bytes(), now).unwrap(), "revoked_token");

        let gone = CheckOptions {
            revoked: Some(dir.path().join("missing")),
            ..c
        };
        assert!(check(&gone, old.as_bytes(), now)
            .unwrap_err()
            .0
            .contains("revocation directory"));
    }

    #[test]
    fn revoke_refuses_long_names_links_and_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(signed::MAX_NAME - 3);
        let err = revoke(dir.path(), &Revocation::Sub(long.clone())).unwrap_err();
        assert!(err.0.contains("longer than 255 bytes"), "{}", err.0);
        assert!(revoke(dir.path(), &Revocation::Sub(long[1..].into())).is_ok());

        symlink("/etc/hostname", dir.path().join("jti.l")).unwrap();
        let err = revoke(dir.path(), &Revocation::Jti("l".into())).unwrap_err();
        assert!(err.0.contains("not a regular file"), "{}", err.0);
        fs::create_dir(dir.path().join("sub.d")).unwrap();
        let err = revoke(dir.path(), &Revocation::Sub("d".into())).unwrap_err();
        assert!(err.0.contains("not a regular file"), "{}", err.0);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("jti.f"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = revoke(dir.path(), &Revocation::Jti("f".into())).unwrap_err();
        assert!(err.0.contains("not a regular file"), "{}", err.0);

        let err = revoke(&dir.path().join("nope"), &Revocation::Jti("a".into())).unwrap_err();
        assert!(err.0.contains("does not exist"), "{}", err.0);
    }

    #[test]
    fn sign_chooses_the_key_by_kid() {
        let s = sets("HS256");
        jwks::add(
            parse_algorithm("ES256").unwrap(),
            "k2",
            &s.private,
            &s.public,
        )
        .unwrap();
        let err = sign(&sign_opts(&s), NOW).unwrap_err();
        assert!(err.0.contains("--kid (k1, k2)"), "{}", err.0);
        let token = sign(
            &SignOptions {
                kid: Some("k2".into()),
                ..sign_opts(&s)
            },
            NOW,
        )
        .unwrap();
        assert_eq!(header(&token)["alg"], "ES256");
        assert_eq!(
            check(&check_opts(&s), token.as_bytes(), NOW).unwrap(),
            "allowed"
        );
        // Signing with the public set says why it cannot.
        let err = sign(
            &SignOptions {
                private: s.public.clone(),
                kid: Some("k2".into()),
                ..sign_opts(&s)
            },
            NOW,
        )
        .unwrap_err();
        assert!(err.0.contains("public key"), "{}", err.0);
    }
}
