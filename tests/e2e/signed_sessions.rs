//! `wcs_token_auth_session_check` with signed tokens: a WebSocket opened with one is closed
//! when its `exp` (plus leeway) is reached, not up to an interval later, and when a `jti.` or
//! `sub.` file in the revocation directory revokes it, within the interval plus 100 ms; a
//! `sub.` file older than the token's `iat` revokes nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::common::sessions::*;
use crate::common::*;

/// The bound the manual promises beyond the interval.
const SLACK: Duration = Duration::from_millis(100);

/// The HMAC key both sides know: the tests sign with it, nginx's JWK Set holds it base64url.
const SECRET: &[u8] = b"a secret for signed session tests, 48 bytes long";
const SECRET_B64URL: &str = "YSBzZWNyZXQgZm9yIHNpZ25lZCBzZXNzaW9uIHRlc3RzLCA0OCBieXRlcyBsb25n";

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn at_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// An HS256 token with these claims, as a backend's JWT library makes it.
fn mint(claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// nginx with a location per (path, directives): signed tokens only (`jwks=` and no token
/// directory), proxied to the mock WCS. The revocation directory is `revoked/` in the prefix,
/// `{revoked}` in the directives.
fn start(mock: &MockWcs, locations: &[(&str, &str)]) -> Nginx {
    let prefix = Prefix::new();
    let jwks = prefix.path().join("conf/jwks.json");
    let set = json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": SECRET_B64URL}]});
    fs::write(&jwks, set.to_string()).unwrap();
    let revoked = prefix.path().join("revoked");
    fs::create_dir(&revoked).unwrap();
    let upstream = mock.url();
    let server: String = locations
        .iter()
        .map(|(path, extra)| {
            let extra = extra.replace("{revoked}", &revoked.display().to_string());
            format!(
                r#"location {path} {{
            wcs_token_auth jwks={jwks};
            {extra}
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }}
        "#,
                jwks = jwks.display()
            )
        })
        .collect();
    Nginx::start_in(prefix, "", &server)
}

fn open(nginx: &Nginx, path: &str, token: &str) -> Ws {
    let (k, v) = cookie(token);
    nginx.ws(path, &[(k, &v)]).expect("upgrade")
}

/// When nginx closes `ws`, on the wall clock; `None` if it is still open at `deadline`.
fn closed_at(ws: &mut Ws, deadline: SystemTime) -> Option<SystemTime> {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    wait_closed(ws, left).map(|_| SystemTime::now())
}

fn set_mtime(file: &Path, mtime: SystemTime) {
    let f = fs::File::options().write(true).open(file).unwrap();
    f.set_modified(mtime).unwrap();
}

#[test]
fn a_signed_session_is_closed_when_exp_plus_leeway_is_reached_not_an_interval_later() {
    let mock = MockWcs::start(false).unwrap();
    // A minute's interval: only a round at `exp` itself closes the session in time (the
    // token's phase falls within 300 ms after it with a chance of 1 in 200).
    let check = "wcs_token_auth_session_check 60s;";
    let lenient = format!("{check} wcs_token_auth_jwt_leeway 2s;");
    let nginx = start(&mock, &[("/wss", check), ("/lenient", &lenient)]);
    let exp = unix_now() + 3;
    let token = mint(json!({"sub": "expiring-7f3a", "exp": exp, "iat": exp - 3}));
    let mut strict = open(&nginx, "/wss", &token);
    let mut lenient = open(&nginx, "/lenient", &token);
    let exp_at = at_unix(exp);

    // Still valid in the second before exp.
    let before = exp_at - Duration::from_millis(400);
    sleep(before.duration_since(SystemTime::now()).unwrap_or_default());
    assert!(echoes(&mut strict, "before exp"));
    assert!(echoes(&mut lenient, "before exp"));

    let closed = closed_at(&mut strict, exp_at + Duration::from_secs(2)).expect("closed at exp");
    let late = closed.duration_since(exp_at).expect("not before exp");
    assert!(
        late <= Duration::from_millis(300),
        "closed {late:?} after exp"
    );
    eprintln!("strict: closed {late:?} after exp");

    // The leeway's location keeps it for two more seconds.
    sleep(Duration::from_secs(1));
    assert!(echoes(&mut lenient, "within leeway"));
    let lenient_end = exp_at + Duration::from_secs(2);
    let closed = closed_at(&mut lenient, lenient_end + Duration::from_secs(2)).expect("closed");
    let late = closed
        .duration_since(lenient_end)
        .expect("not before exp + leeway");
    assert!(
        late <= Duration::from_millis(300),
        "closed {late:?} after exp + leeway"
    );
    eprintln!("lenient: closed {late:?} after exp + 2 s");

    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "[error]"),
        2,
        "one line per closed session, and nothing else at error:\n{log}"
    );
    assert_eq!(
        count_lines(&log, "wcs_token_auth: closed session: token expired"),
        2,
        "{log}"
    );
    assert!(
        !log.contains(&token) && !log.contains("expiring-7f3a"),
        "neither the token nor a claim is logged:\n{log}"
    );
    let lines = nginx.access_lines(2);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" 101 status=session_expired"))
            .count(),
        2,
        "{lines:?}"
    );
    nginx.assert_no_crash();
}

#[test]
fn revocation_files_close_the_signed_sessions_they_name_within_the_interval() {
    let mock = MockWcs::start(false).unwrap();
    let interval = Duration::from_millis(500);
    let conf = "wcs_token_auth_session_check 500ms; wcs_token_auth_revoked {revoked};";
    let nginx = start(&mock, &[("/wss", conf)]);
    let revoked = nginx.prefix.path().join("revoked");

    let iat = unix_now();
    let exp = iat + 3600;
    let claims = |jti: &str, sub: &str| json!({"jti": jti, "sub": sub, "iat": iat, "exp": exp});
    let by_jti = mint(claims("jti-0c1d", "alice-0c1d"));
    let bob = mint(claims("jti-9e2b", "bob-9e2b"));
    // Revoked by `sub`, percent-encoded into the file name.
    let carol = mint(claims("jti-5a7c", "carol 5a7c"));
    let dave = mint(claims("jti-3f8e", "dave-3f8e"));
    let mut by_jti_ws = [open(&nginx, "/wss", &by_jti), open(&nginx, "/wss", &by_jti)];
    let mut bob_ws = open(&nginx, "/wss", &bob);
    let mut carol_ws = open(&nginx, "/wss", &carol);
    let mut dave_ws = open(&nginx, "/wss", &dave);
    assert_eq!(established_to(mock.port()), 5, "five upstream connections");

    // bob's file predates his token: it revokes tokens issued before it, not his.
    fs::write(revoked.join("sub.bob-9e2b"), "").unwrap();
    set_mtime(
        &revoked.join("sub.bob-9e2b"),
        at_unix(iat) - Duration::from_secs(5),
    );
    fs::write(revoked.join("jti.jti-0c1d"), "").unwrap();
    let t = Instant::now();
    for ws in &mut by_jti_ws {
        let closed = wait_closed(ws, Duration::from_secs(3)).map(|_| t.elapsed());
        let closed = closed.expect("both sessions of the revoked jti are closed");
        assert!(closed <= interval + SLACK, "{closed:?}");
    }
    // Three rounds more: bob, carol and dave are still served.
    sleep(interval * 3);
    for ws in [&mut bob_ws, &mut carol_ws, &mut dave_ws] {
        assert!(
            echoes(ws, "still here"),
            "an older sub. file revokes nothing"
        );
    }

    // `touch` logs bob out: the file's mtime is now not before his token's iat.
    set_mtime(&revoked.join("sub.bob-9e2b"), SystemTime::now());
    let t = Instant::now();
    let closed = wait_closed(&mut bob_ws, Duration::from_secs(3)).map(|_| t.elapsed());
    assert!(closed.is_some_and(|d| d <= interval + SLACK), "{closed:?}");

    fs::write(revoked.join("sub.carol%205a7c"), "").unwrap();
    let t = Instant::now();
    let closed = wait_closed(&mut carol_ws, Duration::from_secs(3)).map(|_| t.elapsed());
    assert!(closed.is_some_and(|d| d <= interval + SLACK), "{closed:?}");
    assert!(echoes(&mut dave_ws, "still here"));
    sleep(Duration::from_millis(200));
    assert_eq!(
        established_to(mock.port()),
        1,
        "the revoked sessions' upstream sockets are closed"
    );

    // A revocation directory that disappears ends the sessions that depend on it.
    fs::rename(&revoked, nginx.prefix.path().join("revoked.old")).unwrap();
    let t = Instant::now();
    let closed = wait_closed(&mut dave_ws, Duration::from_secs(3)).map(|_| t.elapsed());
    assert!(closed.is_some_and(|d| d <= interval + SLACK), "{closed:?}");

    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "wcs_token_auth: closed session: token revoked"),
        4,
        "{log}"
    );
    assert_eq!(
        count_lines(
            &log,
            "wcs_token_auth: closed session: revocation directory missing"
        ),
        1,
        "{log}"
    );
    for secret in [&by_jti, &bob, &carol, &dave] {
        assert!(!log.contains(secret.as_str()), "a token is logged:\n{log}");
    }
    for claim in ["0c1d", "9e2b", "5a7c", "3f8e"] {
        assert!(!log.contains(claim), "a claim is logged:\n{log}");
    }
    let lines = nginx.access_lines(5);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" 101 status=session_revoked"))
            .count(),
        5,
        "{lines:?}"
    );
    nginx.assert_no_crash();
}

#[test]
fn an_unreadable_revocation_directory_keeps_signed_sessions_with_one_crit_line_per_interval() {
    let mock = MockWcs::start(false).unwrap();
    let conf = "wcs_token_auth_session_check 500ms; wcs_token_auth_revoked {revoked};";
    let nginx = start(&mock, &[("/wss", conf)]);
    let revoked = nginx.prefix.path().join("revoked");
    let exp = unix_now() + 3600;
    let a = mint(json!({"jti": "a", "sub": "s", "exp": exp}));
    let b = mint(json!({"jti": "b", "sub": "s", "exp": exp}));
    let mut ws = [
        open(&nginx, "/wss", &a),
        open(&nginx, "/wss", &a),
        open(&nginx, "/wss", &b),
    ];
    fs::set_permissions(&revoked, fs::Permissions::from_mode(0o000)).unwrap();
    sleep(Duration::from_millis(2600));
    let log = nginx.prefix.error_log();
    fs::set_permissions(&revoked, fs::Permissions::from_mode(0o755)).unwrap();
    for w in &mut ws {
        assert!(echoes(w, "still here"), "kept while unreadable");
    }
    let crit: Vec<&str> = log.lines().filter(|l| l.contains("[crit]")).collect();
    // 2.6 s at 500 ms: five or six rounds' worth, one line each whatever the sessions.
    assert!((4..=6).contains(&crit.len()), "{log}");
    let expected = format!(
        "wcs_token_auth: cannot read revocation directory \"{}\", open sessions kept",
        revoked.display()
    );
    assert!(crit.iter().all(|l| l.contains(&expected)), "{log}");
    assert_eq!(count_lines(&log, "closed session"), 0, "{log}");
    nginx.assert_no_crash();
}
