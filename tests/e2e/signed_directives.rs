//! Signed tokens through the directives: `wcs_token_auth [DIR] [jwks=FILE]`, the `_jwt_*` and
//! `_revoked` directives as `nginx -t` checks them and as locations inherit them, which path a
//! cookie value takes, `$wcs_token_auth_claim_NAME` upstream, the cache per rules with `exp`
//! checked on every hit, and a missing revocation directory.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::common::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// SECRET in base64url, as the JWK's `k`.
const SECRET_K: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn b64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string()
}

/// The one-key HS256 set every test but the key set refusals uses.
fn hs_set() -> String {
    json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": SECRET_K}]}).to_string()
}

fn mint_with(secret: &[u8], claims: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("h".into());
    encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("sign")
}

/// A token the set accepts, with these claims.
fn mint(claims: Value) -> String {
    mint_with(SECRET, claims)
}

/// A prefix whose `conf/jwks.json` is the HS256 set.
fn prefix_with_keys() -> Prefix {
    let prefix = Prefix::new();
    fs::write(prefix.path().join("conf/jwks.json"), hs_set()).expect("write key set");
    prefix
}

fn location(path: &str, upstream: &str, directives: &str) -> String {
    format!("location {path} {{ {directives} proxy_pass {upstream}; }}")
}

fn get_with(nginx: &Nginx, path: &str, token: &str) -> Response {
    let c = format!("AUTH={token}");
    nginx.get(path, &[("Cookie", &c)])
}

/// The status word the access log's last line shows.
fn last_status(nginx: &Nginx, lines: usize) -> String {
    let all = nginx.access_lines(lines);
    let last = all.last().cloned().unwrap_or_default();
    last.rsplit_once("status=")
        .map(|(_, s)| s.to_string())
        .unwrap_or(last)
}

/// `nginx -t` in `prefix` with `server` contents: (success, stderr).
fn nginx_t_in(prefix: &Prefix, http: &str, server: &str) -> (bool, String) {
    prefix.write_conf(free_port(), http, server);
    let out = prefix.test_conf();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_key_set_fault_fails_nginx_t_naming_the_file_and_the_reason() {
    let rsa = openssl::rsa::Rsa::generate(1024).expect("rsa");
    let ed = openssl::pkey::PKey::generate_ed25519().expect("ed25519");
    let (x, d) = (
        b64url(&ed.raw_public_key().expect("x")),
        b64url(&ed.raw_private_key().expect("d")),
    );
    let oct = |kid: Option<&str>| {
        let mut k = json!({"kty": "oct", "alg": "HS256", "k": SECRET_K});
        if let Some(kid) = kid {
            k["kid"] = json!(kid);
        }
        k
    };
    // (contents of conf/jwks.json, or None for a directory there; what stderr must say)
    let cases: Vec<(Option<String>, &[&str])> = vec![
        (None, &["cannot read key set", "Is a directory"]),
        (
            Some("{\"keys\": [".into()),
            &["invalid key set", "invalid JSON"],
        ),
        (
            Some(
                json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}).to_string(),
            ),
            &["invalid key set", "unsupported \"crv\" \"P-384\""],
        ),
        (
            Some(json!({"keys": [oct(Some("a")), oct(Some("a"))]}).to_string()),
            &["invalid key set", "two keys have \"kid\" \"a\""],
        ),
        (
            Some(json!({"keys": [oct(Some("a")), oct(None)]}).to_string()),
            &["invalid key set", "key 2 has no \"kid\""],
        ),
        (
            Some(
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": x, "d": d}]})
                    .to_string(),
            ),
            &["invalid key set", "private member \"d\""],
        ),
        (
            Some(
                json!({"keys": [{"kty": "oct", "alg": "HS256", "k": b64url(b"sixteen byte key")}]})
                    .to_string(),
            ),
            &["invalid key set", "at least 32 bytes"],
        ),
        (
            Some(
                json!({"keys": [{"kty": "RSA", "kid": "r", "n": b64url(&rsa.n().to_vec()),
                    "e": b64url(&rsa.e().to_vec())}]})
                .to_string(),
            ),
            &["invalid key set", "at least 2048 bits, this one has 1024"],
        ),
        (
            Some(json!({"keys": [{"kty": "oct", "k": SECRET_K}]}).to_string()),
            &["invalid key set", "must name its \"alg\""],
        ),
    ];
    for (contents, expect) in cases {
        let prefix = Prefix::new();
        let file = prefix.path().join("conf/jwks.json");
        match &contents {
            Some(c) => fs::write(&file, c).expect("write key set"),
            None => fs::create_dir(&file).expect("mkdir"),
        }
        let (ok, stderr) = nginx_t_in(&prefix, "", "wcs_token_auth jwks=jwks.json;");
        assert!(!ok, "nginx -t accepted {contents:?}");
        assert!(stderr.contains("[emerg]"), "{stderr}");
        let named = format!(
            "key set \"{}\" in \"wcs_token_auth\" directive",
            file.display()
        );
        assert!(stderr.contains(&named), "expected {named:?} in:\n{stderr}");
        for e in expect {
            assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
        }
    }
    // No file at all: the system's reason.
    let prefix = Prefix::new();
    let (ok, stderr) = nginx_t_in(&prefix, "", "wcs_token_auth jwks=missing.json;");
    assert!(!ok);
    assert!(
        stderr.contains("cannot read key set") && stderr.contains("No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn directive_argument_faults_fail_nginx_t() {
    let cases: [(&str, &[&str]); 9] = [
        (
            "wcs_token_auth jwks=jwks.json jwks=other.json;",
            &["invalid value \"jwks=other.json\" in \"wcs_token_auth\" directive, \"jwks=\" is given twice"],
        ),
        (
            "wcs_token_auth off jwks=jwks.json;",
            &["invalid value \"off\" in \"wcs_token_auth\" directive, \"off\" takes no other parameter"],
        ),
        (
            "wcs_token_auth tokens other;",
            &["invalid value \"other\"", "only one token directory"],
        ),
        (
            "wcs_token_auth jwks=;",
            &["invalid value \"jwks=\"", "must name a key set file"],
        ),
        (
            "wcs_token_auth tokens jwks=jwks.json extra;",
            &["invalid number of arguments in \"wcs_token_auth\" directive"],
        ),
        (
            "wcs_token_auth_jwt_leeway 500ms;",
            &["invalid value \"500ms\" in \"wcs_token_auth_jwt_leeway\" directive"],
        ),
        (
            "wcs_token_auth_jwt_issuer \"\";",
            &["invalid value \"\" in \"wcs_token_auth_jwt_issuer\" directive, it must not be empty"],
        ),
        (
            "wcs_token_auth_jwt_audience a; wcs_token_auth_jwt_audience b;",
            &["\"wcs_token_auth_jwt_audience\" directive is duplicate"],
        ),
        (
            "wcs_token_auth_revoked \"\";",
            &["invalid value \"\" in \"wcs_token_auth_revoked\" directive"],
        ),
    ];
    for (server, expect) in cases {
        let prefix = prefix_with_keys();
        let (ok, stderr) = nginx_t_in(&prefix, "", server);
        assert!(!ok, "nginx -t accepted {server}");
        assert!(stderr.contains("[emerg]"), "{stderr}");
        for e in expect {
            assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
        }
    }
}

#[test]
fn every_new_directive_passes_nginx_t_at_every_level() {
    let prefix = prefix_with_keys();
    let http = "wcs_token_auth jwks=jwks.json; wcs_token_auth_jwt_leeway 30s;
        wcs_token_auth_jwt_issuer https://idp.example; wcs_token_auth_jwt_audience wcs;
        wcs_token_auth_revoked revoked;";
    let server = "wcs_token_auth tokens jwks=jwks.json; wcs_token_auth_jwt_leeway 0;
        wcs_token_auth_jwt_issuer other; wcs_token_auth_jwt_audience other;
        wcs_token_auth_revoked off;
        location /a { wcs_token_auth jwks=jwks.json tokens; wcs_token_auth_jwt_leeway 1m;
            wcs_token_auth_jwt_issuer i; wcs_token_auth_jwt_audience a;
            wcs_token_auth_revoked /var/lib/wcs/revoked; }
        location /b { wcs_token_auth tokens; }
        location /c { wcs_token_auth off; }";
    let (ok, stderr) = nginx_t_in(&prefix, http, server);
    assert!(ok, "{stderr}");
}

#[test]
fn a_directory_and_a_key_set_take_both_paths() {
    let mock = MockWcs::start(false).unwrap();
    let server = location("/wss", &mock.url(), "wcs_token_auth tokens jwks=jwks.json;");
    let nginx = Nginx::start_in(prefix_with_keys(), "", &server);
    nginx.prefix.add_token("tok");
    let good = mint(json!({"exp": now() + 600}));
    let forged = mint_with(
        b"not the key set's secret, 32 byte",
        json!({"exp": now() + 600}),
    );
    let cases = [
        ("tok", 200, "allowed"),
        (good.as_str(), 200, "allowed"),
        ("nope", 403, "unknown_token"),
        (forged.as_str(), 403, "bad_signature"),
        ("", 403, "no_token"),
    ];
    for (i, (token, code, word)) in cases.into_iter().enumerate() {
        assert_eq!(get_with(&nginx, "/wss", token).status, code, "{token}");
        assert_eq!(last_status(&nginx, i + 1), word, "{token}");
    }
    let log = nginx.prefix.error_log();
    assert!(
        log.contains("wcs_token_auth: bad signature on signed token in cookie \"AUTH\""),
        "{log}"
    );
    assert!(!log.contains(&forged), "a log line never holds the token");
}

#[test]
fn a_key_set_alone_refuses_any_other_value_as_malformed() {
    let mock = MockWcs::start(false).unwrap();
    let server = location("/wss", &mock.url(), "wcs_token_auth jwks=jwks.json;");
    let nginx = Nginx::start_in(prefix_with_keys(), "", &server);
    // A file by that name changes nothing: there is no token directory here.
    nginx.prefix.add_token("tok");
    for (i, token) in ["tok", "a.b.c", "e30.e30"].into_iter().enumerate() {
        assert_eq!(get_with(&nginx, "/wss", token).status, 403, "{token}");
        assert_eq!(last_status(&nginx, i + 1), "malformed_token", "{token}");
    }
    let good = mint(json!({"exp": now() + 600}));
    assert_eq!(get_with(&nginx, "/wss", &good).status, 200);
    assert!(nginx
        .prefix
        .error_log()
        .contains("wcs_token_auth: malformed token in cookie \"AUTH\""));
}

#[test]
fn the_new_directives_inherit_from_http_to_server_to_location() {
    let mock = MockWcs::start(false).unwrap();
    let u = mock.url();
    let http = "wcs_token_auth jwks=jwks.json; wcs_token_auth_jwt_issuer I;
        wcs_token_auth_revoked revoked;";
    let server = [
        "wcs_token_auth_jwt_audience A;".to_string(),
        location("/inherit", &u, ""),
        location("/aud-b", &u, "wcs_token_auth_jwt_audience B;"),
        location("/leeway", &u, "wcs_token_auth_jwt_leeway 1h;"),
        location("/not-revoked", &u, "wcs_token_auth_revoked off;"),
        location("/off", &u, "wcs_token_auth off;"),
    ]
    .join("\n");
    let prefix = prefix_with_keys();
    fs::create_dir(prefix.path().join("revoked")).expect("mkdir");
    fs::write(prefix.path().join("revoked/jti.gone"), "").expect("revoke");
    let nginx = Nginx::start_in(prefix, http, &server);
    let t = now();
    let ok = mint(json!({"exp": t + 600, "iss": "I", "aud": "A"}));
    let other_iss = mint(json!({"exp": t + 600, "iss": "J", "aud": "A"}));
    let aud_b = mint(json!({"exp": t + 600, "iss": "I", "aud": ["x", "B"]}));
    let late = mint(json!({"exp": t - 60, "iss": "I", "aud": "A"}));
    let revoked = mint(json!({"exp": t + 600, "iss": "I", "aud": "A", "jti": "gone"}));
    let cases = [
        ("/inherit", &ok, 200, "allowed"),
        ("/inherit", &other_iss, 403, "bad_claims"),
        ("/inherit", &aud_b, 403, "bad_claims"),
        ("/inherit", &late, 403, "expired_token"),
        ("/inherit", &revoked, 403, "revoked_token"),
        ("/aud-b", &aud_b, 200, "allowed"),
        ("/aud-b", &ok, 403, "bad_claims"),
        ("/aud-b", &other_iss, 403, "bad_claims"),
        ("/leeway", &late, 200, "allowed"),
        ("/leeway", &other_iss, 403, "bad_claims"),
        ("/not-revoked", &revoked, 200, "allowed"),
        ("/off", &other_iss, 200, ""),
    ];
    for (i, (path, token, code, word)) in cases.into_iter().enumerate() {
        let r = get_with(&nginx, path, token);
        assert_eq!(r.status, code, "{path} {token}");
        assert_eq!(last_status(&nginx, i + 1), word, "{path} {token}");
    }
    let log = nginx.prefix.error_log();
    for line in [
        "wcs_token_auth: bad claims in signed token in cookie \"AUTH\"",
        "wcs_token_auth: expired token in cookie \"AUTH\"",
        "wcs_token_auth: revoked token in cookie \"AUTH\"",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}

#[test]
fn claim_variables_reach_the_upstream() {
    let mock = MockWcs::start(false).unwrap();
    let directives = "wcs_token_auth tokens jwks=jwks.json;
        proxy_set_header X-Sub $wcs_token_auth_claim_sub;
        proxy_set_header X-N $wcs_token_auth_claim_n;
        proxy_set_header X-Admin $wcs_token_auth_claim_admin;
        proxy_set_header X-Obj $wcs_token_auth_claim_obj;
        proxy_set_header X-Ctl $wcs_token_auth_claim_ctl;
        proxy_set_header X-Missing $wcs_token_auth_claim_missing;
        proxy_set_header X-Seen \"[$wcs_token_auth_claim_sub]\";";
    let server = location("/wss", &mock.url(), directives);
    let nginx = Nginx::start_in(prefix_with_keys(), "", &server);
    nginx.prefix.add_token("tok");
    let t = mint(
        json!({"exp": now() + 600, "sub": "alice@example.com", "n": -4.5e3,
        "admin": true, "obj": {"a": 1}, "ctl": "a\r\nX-Evil: 1"}),
    );
    let r = get_with(&nginx, "/wss", &t);
    assert_eq!(r.status, 200);
    let h = |name| header_values(&r.body, name);
    assert_eq!(h("X-Sub"), ["alice@example.com"], "{}", r.body);
    assert_eq!(h("X-N"), ["-4500.0"], "a number as its JSON text");
    assert_eq!(h("X-Admin"), ["true"]);
    for empty in ["X-Obj", "X-Ctl", "X-Missing", "X-Evil"] {
        assert!(h(empty).is_empty(), "{empty}: {}", r.body);
    }
    // A file token has no claims.
    let r = get_with(&nginx, "/wss", "tok");
    assert_eq!(r.status, 200);
    assert_eq!(header_values(&r.body, "X-Seen"), ["[]"], "{}", r.body);
    assert!(header_values(&r.body, "X-Sub").is_empty());
}

#[test]
fn an_auth_request_grant_gives_the_main_request_its_claims() {
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        r#"location /api {{ auth_request /tokencheck;
            proxy_set_header X-Sub "[$wcs_token_auth_claim_sub]"; proxy_pass {}; }}
        location = /tokencheck {{ internal; wcs_token_auth jwks=jwks.json; empty_gif; }}"#,
        mock.url()
    );
    let nginx = Nginx::start_in(prefix_with_keys(), "", &server);
    let t = mint(json!({"exp": now() + 600, "sub": "bob"}));
    let r = get_with(&nginx, "/api", &t);
    assert_eq!(r.status, 200, "{}", nginx.prefix.error_log());
    assert_eq!(header_values(&r.body, "X-Sub"), ["[bob]"], "{}", r.body);
    let forged = mint_with(
        b"not the key set's secret, 32 byte",
        json!({"exp": now() + 600}),
    );
    assert_eq!(get_with(&nginx, "/api", &forged).status, 403);
    assert_eq!(last_status(&nginx, 2), "bad_signature");
}

#[test]
fn a_token_accepted_under_some_rules_is_verified_afresh_under_others() {
    let mock = MockWcs::start(false).unwrap();
    let u = mock.url();
    let http = "wcs_token_auth_cache_ttl 1h; wcs_token_auth jwks=jwks.json;";
    let server = [
        location("/a", &u, "wcs_token_auth_jwt_audience A;"),
        location("/a2", &u, "wcs_token_auth_jwt_audience A;"),
        location("/b", &u, "wcs_token_auth_jwt_audience B;"),
    ]
    .join("\n");
    let nginx = Nginx::start_in(prefix_with_keys(), http, &server);
    let t = mint(json!({"exp": now() + 600, "aud": "A"}));
    assert_eq!(get_with(&nginx, "/a", &t).status, 200);
    assert_eq!(
        get_with(&nginx, "/b", &t).status,
        403,
        "cached under A only"
    );
    assert_eq!(last_status(&nginx, 2), "bad_claims");
    assert_eq!(get_with(&nginx, "/a2", &t).status, 200);
    assert_eq!(get_with(&nginx, "/a", &t).status, 200);
}

#[test]
fn a_cached_token_is_refused_the_moment_it_expires() {
    let mock = MockWcs::start(false).unwrap();
    let http = "wcs_token_auth_cache_ttl 1h;";
    let server = location(
        "/wss",
        &mock.url(),
        "wcs_token_auth jwks=jwks.json; wcs_token_auth_revoked revoked;",
    );
    let prefix = prefix_with_keys();
    fs::create_dir(prefix.path().join("revoked")).expect("mkdir");
    let nginx = Nginx::start_in(prefix, http, &server);
    let exp = now() + 2;
    let t = mint(json!({"exp": exp, "jti": "j1"}));
    assert_eq!(get_with(&nginx, "/wss", &t).status, 200);
    // Revoked now: the next answer comes from the cache, which still says yes.
    fs::write(nginx.prefix.path().join("revoked/jti.j1"), "").expect("revoke");
    assert_eq!(get_with(&nginx, "/wss", &t).status, 200, "a cache hit");
    while now() < exp {
        sleep(Duration::from_millis(50));
    }
    let r = get_with(&nginx, "/wss", &t);
    assert_eq!(r.status, 403, "expired though cached for an hour");
    assert_eq!(last_status(&nginx, 3), "expired_token");
}

#[test]
fn a_missing_revocation_directory_is_a_server_error() {
    let mock = MockWcs::start(false).unwrap();
    let server = location(
        "/wss",
        &mock.url(),
        "wcs_token_auth tokens jwks=jwks.json; wcs_token_auth_revoked revoked;",
    );
    let nginx = Nginx::start_in(prefix_with_keys(), "", &server);
    nginx.prefix.add_token("tok");
    let t = mint(json!({"exp": now() + 600}));
    assert_eq!(get_with(&nginx, "/wss", &t).status, 500);
    assert_eq!(last_status(&nginx, 1), "error");
    let log = nginx.prefix.error_log();
    let dir = nginx.prefix.path().join("revoked");
    let want = format!(
        "wcs_token_auth: revocation directory \"{}\" does not exist",
        dir.display()
    );
    let hit = log
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no {want:?} in:\n{log}"));
    assert!(hit.contains("[crit]"), "{hit}");
    // File tokens do not depend on it.
    assert_eq!(get_with(&nginx, "/wss", "tok").status, 200);
    fs::create_dir(&dir).expect("mkdir");
    assert_eq!(get_with(&nginx, "/wss", &t).status, 200);
    nginx.assert_no_crash();
}
