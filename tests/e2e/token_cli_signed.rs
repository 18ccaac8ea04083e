//! The `wcs-token` signed-token commands against the real module: a key set it creates passes
//! `nginx -t`, a token it signs opens the WebSocket, what it revokes nginx refuses, and its
//! `check` prints the status nginx logs for the same token under the same rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use crate::token_cli::{cli_bin, nginx_verdict};

fn run(args: &[&str]) -> Output {
    Command::new(cli_bin())
        .args(args)
        .output()
        .expect("run wcs-token")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "wcs-token {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A prefix whose `conf/` holds a fresh private and public set with one key `k1`.
struct Keys {
    prefix: Prefix,
    private: PathBuf,
    public: PathBuf,
}

fn keys(alg: &str) -> Keys {
    let prefix = Prefix::new();
    let private = prefix.path().join("conf/private.json");
    let public = prefix.path().join("conf/public.json");
    ok(&[
        "jwks",
        "new",
        "--alg",
        alg,
        "--kid",
        "k1",
        "--private",
        s(&private),
        "--public",
        s(&public),
    ]);
    Keys {
        prefix,
        private,
        public,
    }
}

/// The article's location with signed tokens only: `jwks=` relative to the configuration's
/// directory, as an operator writes it.
fn proxied_location(upstream: &str, extra: &str) -> String {
    format!(
        r#"location /wss {{
            wcs_token_auth jwks=public.json;
            {extra}
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}"#
    )
}

fn sign(private: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "sign",
        "--private",
        s(private),
        "--sub",
        "alice",
        "--ttl",
        "1h",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn a_key_set_of_each_algorithm_passes_nginx_t_and_its_tokens_open_the_websocket() {
    for alg in ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"] {
        let k = keys(alg);
        let mock = MockWcs::start(false).unwrap();
        k.prefix
            .write_conf(free_port(), "", &proxied_location(&mock.url(), ""));
        let t = k.prefix.test_conf();
        assert!(
            t.status.success(),
            "{alg}: nginx -t: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        let nginx = Nginx::start_in(k.prefix, "", &proxied_location(&mock.url(), ""));
        let token = sign(&k.private, &[]);
        let (name, value) = cookie(&token);
        let mut ws = nginx
            .ws("/wss", &[(name, &value)])
            .unwrap_or_else(|status| panic!("{alg}: refused with {status}"));
        assert_eq!(roundtrip(&mut ws, alg), alg);
        let _ = ws.close(None);
        drop(ws);
        let lines = nginx.access_lines(1);
        assert!(lines[0].contains(" 101 status=allowed"), "{alg}: {lines:?}");
        nginx.assert_no_crash();
    }
}

#[test]
fn the_private_set_fails_nginx_t_with_the_reason() {
    let k = keys("ES256");
    std::fs::copy(&k.private, &k.public).unwrap();
    k.prefix
        .write_conf(free_port(), "", &proxied_location("http://127.0.0.1:9", ""));
    let t = k.prefix.test_conf();
    let stderr = String::from_utf8_lossy(&t.stderr);
    assert!(!t.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid key set") && stderr.contains("\"d\""),
        "{stderr}"
    );
    // check refuses it the same way.
    let o = run(&["check", "--jwks", s(&k.public), "a.b.c"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn revoked_by_sub_or_jti_is_refused_and_a_token_issued_later_works() {
    let k = keys("EdDSA");
    let revoked = k.prefix.path().join("revoked");
    std::fs::create_dir(&revoked).unwrap();
    let mock = MockWcs::start(false).unwrap();
    let extra = format!("wcs_token_auth_revoked {};", s(&revoked));
    let private = k.private.clone();
    let nginx = Nginx::start_in(
        k.prefix,
        "wcs_token_auth_cache_ttl 0;",
        &proxied_location(&mock.url(), &extra),
    );
    let mut n = 0;
    let before = sign(&private, &["--jti", "auto"]);
    assert_eq!(nginx_verdict(&nginx, &before, &mut n), "allowed");

    let path = ok(&["revoke", "--revoked", s(&revoked), "--sub", "alice"]);
    assert_eq!(path, s(&revoked.join("sub.alice")));
    assert_eq!(nginx_verdict(&nginx, &before, &mut n), "revoked_token");
    assert!(nginx
        .prefix
        .error_log()
        .contains("wcs_token_auth: revoked token in cookie \"AUTH\""));

    // A token issued in a later second than the revocation is good again.
    std::thread::sleep(Duration::from_millis(1100));
    let after = sign(&private, &["--jti", "id/2 é"]);
    assert_eq!(nginx_verdict(&nginx, &after, &mut n), "allowed");
    // ... until its own jti is revoked, percent-encoded as the module looks it up.
    let path = ok(&["revoke", "--revoked", s(&revoked), "--jti", "id/2 é"]);
    assert_eq!(path, s(&revoked.join("jti.id%2F2%20%C3%A9")));
    assert_eq!(nginx_verdict(&nginx, &after, &mut n), "revoked_token");
    let lines = nginx.access_lines(n);
    assert!(lines[1].ends_with(" 403 status=revoked_token"), "{lines:?}");
    nginx.assert_no_crash();
}

#[test]
fn check_agrees_with_the_module() {
    let k = keys("ES256");
    let revoked = k.prefix.path().join("revoked");
    std::fs::create_dir(&revoked).unwrap();
    let other = keys("ES256");
    let mock = MockWcs::start(false).unwrap();
    let extra = format!(
        "wcs_token_auth_jwt_issuer backend; wcs_token_auth_jwt_leeway 0s; \
         wcs_token_auth_revoked {};",
        s(&revoked)
    );
    let (private, public) = (k.private.clone(), k.public.clone());
    let nginx = Nginx::start_in(
        k.prefix,
        "wcs_token_auth_cache_ttl 0;",
        &proxied_location(&mock.url(), &extra),
    );
    let good = sign(&private, &["--iss", "backend"]);
    let short = ok(&[
        "sign",
        "--private",
        s(&private),
        "--sub",
        "alice",
        "--ttl",
        "1s",
        "--iss",
        "backend",
    ]);
    let forged = sign(&other.private, &["--iss", "backend"]);
    let wrong_iss = sign(&private, &["--iss", "elsewhere"]);
    let revoked_one = sign(&private, &["--iss", "backend", "--jti", "gone"]);
    ok(&["revoke", "--revoked", s(&revoked), "--jti", "gone"]);
    std::thread::sleep(Duration::from_millis(2100));

    let mut n = 0;
    let mut seen = Vec::new();
    for token in [
        good.as_str(),
        short.as_str(),
        forged.as_str(),
        wrong_iss.as_str(),
        revoked_one.as_str(),
        "not-a-jws",
        "e30.e30.",
    ] {
        let o = run(&[
            "check",
            "--jwks",
            s(&public),
            "--issuer",
            "backend",
            "--revoked",
            s(&revoked),
            "--",
            token,
        ]);
        let cli_says = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let nginx_says = nginx_verdict(&nginx, token, &mut n);
        assert_eq!(cli_says, nginx_says, "{token}");
        assert_eq!(
            o.status.code(),
            Some(if cli_says == "allowed" { 0 } else { 1 }),
            "{token}"
        );
        seen.push(nginx_says);
    }
    // Each verdict occurred, so the comparison covered them.
    for status in [
        "allowed",
        "expired_token",
        "bad_signature",
        "bad_claims",
        "revoked_token",
        "malformed_token",
    ] {
        assert!(seen.iter().any(|s| s == status), "{status}: {seen:?}");
    }
    nginx.assert_no_crash();
}

#[test]
fn rotation_with_jwks_add_and_remove_takes_effect_on_reload() {
    let k = keys("ES256");
    let (private, public) = (k.private.clone(), k.public.clone());
    let jwks = |args: &[&str]| {
        let mut all = vec!["jwks"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--private", s(&private), "--public", s(&public)]);
        ok(&all)
    };
    let mock = MockWcs::start(false).unwrap();
    let http = "wcs_token_auth_cache_ttl 0;";
    let server = proxied_location(&mock.url(), "");
    let mut nginx = Nginx::start_in(k.prefix, http, &server);
    let mut n = 0;
    let old = sign(&private, &[]);
    jwks(&["add", "--alg", "EdDSA", "--kid", "k2"]);
    let new = sign(&private, &["--kid", "k2"]);
    // Until the reload, nginx knows only the old key.
    assert_eq!(nginx_verdict(&nginx, &new, &mut n), "bad_signature");
    nginx.reload(http, &server);
    assert_eq!(nginx_verdict(&nginx, &old, &mut n), "allowed");
    assert_eq!(nginx_verdict(&nginx, &new, &mut n), "allowed");
    jwks(&["remove", "--kid", "k1"]);
    nginx.reload(http, &server);
    assert_eq!(nginx_verdict(&nginx, &old, &mut n), "bad_signature");
    assert_eq!(nginx_verdict(&nginx, &new, &mut n), "allowed");
    assert!(!nginx.prefix.error_log().contains("[emerg]"));
    nginx.assert_no_crash();
}
