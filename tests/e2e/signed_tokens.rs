//! Signed tokens (JWT) end to end: tokens minted by PyJWT and jose through the backend
//! snippets in docs/examples, the claim and revocation rules, and crafted attacks. Every
//! answer is checked with its `$wcs_token_auth_status` in the access log and, for a refusal,
//! its one error-log line.

use std::cell::Cell;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::common::jwt::*;
use crate::common::*;

const ISSUER: &str = "backend";
const AUDIENCE: &str = "wcs";

/// One nginx with a JWK Set of four keys (`hs`, `es`, `ed`, `rs`) and these locations:
/// `/wss` (issuer, audience and the revocation directory `revoked/`), `/plain` (the key set
/// alone), `/leeway` (30 s of leeway), `/both` (the token directory and the key set).
struct Site {
    _mock: MockWcs,
    nginx: Nginx,
    keys: Vec<Key>,
    lines: Cell<usize>,
}

impl Site {
    fn start(http: &str) -> Site {
        let keys: Vec<Key> = ALL
            .iter()
            .zip(["hs", "es", "ed", "rs"])
            .map(|(&alg, kid)| Key::generate(alg, kid))
            .collect();
        let prefix = Prefix::new();
        let p = prefix.path().to_path_buf();
        fs::create_dir(p.join("revoked")).unwrap();
        let refs: Vec<&Key> = keys.iter().collect();
        fs::write(p.join("conf/keys.json"), jwks(&refs, false)).unwrap();
        let mock = MockWcs::start(false).unwrap();
        let up = mock.url();
        let jwks_arg = format!("jwks={}", p.join("conf/keys.json").display());
        let revoked = p.join("revoked");
        let server = [
            proxied_location(
                "/wss",
                &up,
                &jwks_arg,
                &format!(
                    "wcs_token_auth_jwt_issuer {ISSUER};\n\
                     wcs_token_auth_jwt_audience {AUDIENCE};\n\
                     wcs_token_auth_revoked {};",
                    revoked.display()
                ),
            ),
            proxied_location("/plain", &up, &jwks_arg, ""),
            proxied_location("/leeway", &up, &jwks_arg, "wcs_token_auth_jwt_leeway 30s;"),
            proxied_location("/both", &up, &format!("tokens {jwks_arg}"), ""),
        ]
        .join("\n");
        let http = format!("large_client_header_buffers 4 32k;\n{http}");
        let nginx = Nginx::start_in(prefix, &http, &server);
        Site {
            _mock: mock,
            nginx,
            keys,
            lines: Cell::new(0),
        }
    }

    fn key(&self, kid: &str) -> &Key {
        self.keys.iter().find(|k| k.kid == kid).expect("kid")
    }

    fn path(&self) -> &Path {
        self.nginx.prefix.path()
    }

    fn revoked(&self) -> PathBuf {
        self.path().join("revoked")
    }

    /// Sends `token` to `path` and checks the answer, its access-log status and, for a
    /// refusal, exactly one new module line in the error log with the status's reason.
    fn expect(&self, what: &str, path: &str, token: &str, code: u16, status: &str) {
        let before = module_lines(&self.nginx.prefix.error_log());
        let resp = self
            .nginx
            .get(path, &[("Cookie", &format!("AUTH={token}"))]);
        let n = self.lines.get() + 1;
        self.lines.set(n);
        let lines = self.nginx.access_lines(n);
        let last = lines.get(n - 1).cloned().unwrap_or_default();
        assert!(
            resp.status == code && last.ends_with(&format!(" {code} status={status}")),
            "{what}: expected {code} status={status}, got {} and access line {last:?}",
            resp.status
        );
        let log = self.nginx.prefix.error_log();
        let after = module_lines(&log);
        if code == 200 {
            assert_eq!(after.len(), before.len(), "{what}: logged {after:?}");
        } else {
            assert_eq!(after.len(), before.len() + 1, "{what}: one line: {after:?}");
            let line = after.last().expect("a line");
            assert!(line.contains(reason(status)), "{what}: {line}");
        }
        // Neither the token nor its signature ever reaches the log.
        let sig = token.rsplit('.').next().unwrap_or(token);
        assert!(
            sig.len() < 8 || !log.contains(sig),
            "{what}: the token leaked into the error log"
        );
        self.nginx.assert_no_crash();
    }

    fn allowed(&self, what: &str, path: &str, token: &str) {
        self.expect(what, path, token, 200, "allowed");
    }

    fn refused(&self, what: &str, path: &str, token: &str, status: &str) {
        self.expect(what, path, token, 403, status);
    }
}

fn module_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("wcs_token_auth:") && (l.contains("[error]") || l.contains("[crit]"))
        })
        .map(String::from)
        .collect()
}

fn reason(status: &str) -> &'static str {
    match status {
        "bad_signature" => "bad signature on signed token in cookie \"AUTH\"",
        "bad_claims" => "bad claims in signed token in cookie \"AUTH\"",
        "expired_token" => "expired token in cookie \"AUTH\"",
        "revoked_token" => "revoked token in cookie \"AUTH\"",
        "malformed_token" => "malformed token in cookie \"AUTH\"",
        "unknown_token" => "unknown token in cookie \"AUTH\"",
        "error" => "revocation directory",
        other => panic!("no reason for {other}"),
    }
}

/// Creates `dir/name` with its mtime set to `mtime` (seconds since the epoch).
fn touch_at(dir: &Path, name: &str, mtime: i64) {
    let f = fs::File::create(dir.join(name)).expect("create revocation file");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime as u64))
        .expect("set mtime");
}

/// Sleeps until just past the start of the next whole second; returns that second.
fn next_second() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let wait = Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos() as u64);
    sleep(wait + Duration::from_millis(30));
    now.as_secs() as i64 + 1
}

// ---------------------------------------------------------------------------------------
// Interoperability: the backend snippets in docs/examples, run as the docs show them.

/// Runs docs/examples/mint_token.py (PyJWT) or docs/examples/mint-token.mjs (jose).
struct Minter<'a> {
    tool: &'static str,
    interop: &'a Interop,
    node_dir: &'a Path,
}

impl Minter<'_> {
    fn mint(&self, key: &Path, args: &[String]) -> String {
        let mut cmd = match self.tool {
            "pyjwt" => {
                let mut c = Command::new(&self.interop.python);
                c.arg(examples_dir().join("mint_token.py"));
                c
            }
            _ => {
                // Node resolves `jose` from the script's directory: run the docs' file through
                // a link that sits beside the installed node_modules.
                let mut c = Command::new("node");
                c.arg("--preserve-symlinks-main")
                    .arg(self.node_dir.join("mint-token.mjs"));
                c
            }
        };
        cmd.arg("--key").arg(key).args(args);
        run_minter(cmd)
    }
}

fn interop(tool: &'static str) {
    let Some(interop) = Interop::from_env() else {
        return;
    };
    let site = Site::start("");
    let conf = site.path().join("conf");
    let node_dir = site.path().join("node");
    fs::create_dir(&node_dir).unwrap();
    symlink(&interop.node_modules, node_dir.join("node_modules")).unwrap();
    symlink(
        examples_dir().join("mint-token.mjs"),
        node_dir.join("mint-token.mjs"),
    )
    .unwrap();
    let minter = Minter {
        tool,
        interop: &interop,
        node_dir: &node_dir,
    };
    let refs: Vec<&Key> = site.keys.iter().collect();
    let private = conf.join("private.jwks");
    fs::write(&private, jwks(&refs, true)).unwrap();
    // The same kids, other keys: what a forger or a stale backend signs with.
    let wrong: Vec<Key> = site
        .keys
        .iter()
        .map(|k| Key::generate(k.alg, &k.kid))
        .collect();
    let wrong_refs: Vec<&Key> = wrong.iter().collect();
    let wrong_private = conf.join("wrong.jwks");
    fs::write(&wrong_private, jwks(&wrong_refs, true)).unwrap();
    // A PEM (PKCS#8) private key, as a backend may hold it.
    let pem = conf.join("es.pem");
    fs::write(&pem, site.key("es").private_pem()).unwrap();

    let s = |v: &str| v.to_string();
    let now = now();
    for key in &site.keys {
        let kid = key.kid.as_str();
        let alg = key.alg.name();
        let what = |case: &str| format!("{tool} {alg} {case}");
        let args = |sub: &str, extra: &[String]| {
            let mut a = vec![
                s("--kid"),
                s(kid),
                s("--sub"),
                s(sub),
                s("--ttl"),
                s("300"),
                s("--iss"),
                s(ISSUER),
            ];
            if !extra.iter().any(|e| e == "--aud") {
                a.extend([s("--aud"), s(AUDIENCE)]);
            }
            a.extend(extra.iter().cloned());
            a
        };
        let good = minter.mint(&private, &args("alice", &[]));
        site.allowed(&what("valid"), "/wss", &good);
        let array = minter.mint(
            &private,
            &args("alice", &[s("--aud"), s("other"), s("--aud"), s(AUDIENCE)]),
        );
        site.allowed(&what("aud array"), "/wss", &array);

        let forged = minter.mint(&wrong_private, &args("alice", &[]));
        site.refused(&what("wrong key"), "/wss", &forged, "bad_signature");
        let expired = minter.mint(
            &private,
            &args(
                "alice",
                &[
                    s("--iat"),
                    (now - 100).to_string(),
                    s("--exp"),
                    (now - 10).to_string(),
                ],
            ),
        );
        site.refused(&what("expired"), "/wss", &expired, "expired_token");
        let early = minter.mint(
            &private,
            &args("alice", &[s("--nbf"), (now + 60).to_string()]),
        );
        site.refused(&what("not yet valid"), "/wss", &early, "bad_claims");
        let aud = minter.mint(&private, &args("alice", &[s("--aud"), s("other")]));
        site.refused(&what("wrong aud"), "/wss", &aud, "bad_claims");
        let iss = minter.mint(&private, &args("alice", &[s("--iss"), s("someone-else")]));
        site.refused(&what("wrong iss"), "/wss", &iss, "bad_claims");

        let jti = format!("{tool}-{kid}-revoked");
        fs::write(site.revoked().join(format!("jti.{jti}")), "").unwrap();
        let by_jti = minter.mint(&private, &args("alice", &[s("--jti"), jti.clone()]));
        site.refused(&what("revoked jti"), "/wss", &by_jti, "revoked_token");
        site.allowed(&what("revoked jti, no revocation dir"), "/plain", &by_jti);

        let sub = format!("gone-{tool}-{kid}");
        let iat = now - 5;
        touch_at(&site.revoked(), &format!("sub.{sub}"), now - 1);
        let by_sub = minter.mint(&private, &args(&sub, &[s("--iat"), iat.to_string()]));
        site.refused(&what("revoked sub"), "/wss", &by_sub, "revoked_token");
        let later = minter.mint(&private, &args(&sub, &[]));
        site.allowed(&what("sub issued after its revocation"), "/wss", &later);
    }
    let from_pem = minter.mint(
        &pem,
        &[
            s("--alg"),
            s("ES256"),
            s("--kid"),
            s("es"),
            s("--sub"),
            s("pem"),
            s("--aud"),
            s(AUDIENCE),
            s("--iss"),
            s(ISSUER),
        ],
    );
    site.allowed(&format!("{tool} ES256 from a PEM key"), "/wss", &from_pem);
    let log = site.nginx.prefix.access_log();
    crate::common::traffic::report(&format!(
        "signed-token interoperability, {tool}: {} requests with tokens minted by docs/examples: {} accepted, \
         {} refused with the expected status",
        log.lines().count(),
        log.lines()
            .filter(|l| l.ends_with("status=allowed"))
            .count(),
        log.lines()
            .filter(|l| !l.ends_with("status=allowed"))
            .count(),
    ));
}

#[test]
fn pyjwt_tokens_are_accepted_and_its_bad_ones_refused() {
    interop("pyjwt");
}

#[test]
fn jose_tokens_are_accepted_and_its_bad_ones_refused() {
    interop("jose");
}

// ---------------------------------------------------------------------------------------
// Claims.

#[test]
fn exp_is_required_and_must_be_a_number() {
    let site = Site::start("");
    let es = site.key("es");
    let now = now();
    let cases = [
        ("no exp", json!({"sub": "a", "iat": now})),
        (
            "exp a string",
            json!({"sub": "a", "iat": now, "exp": (now + 60).to_string()}),
        ),
        ("exp null", json!({"sub": "a", "iat": now, "exp": null})),
        (
            "exp an array",
            json!({"sub": "a", "iat": now, "exp": [now + 60]}),
        ),
    ];
    for (what, claims) in cases {
        site.refused(what, "/plain", &es.mint(&claims), "bad_claims");
    }
    site.allowed("exp alone", "/plain", &es.mint(&json!({"exp": now + 60})));
}

#[test]
fn a_token_is_expired_from_exactly_exp_plus_leeway() {
    let site = Site::start("wcs_token_auth_cache_ttl 10s;");
    let es = site.key("es");
    let t = next_second();
    // Valid until the end of second t: refused from t+1 on, cached or not.
    let plain = |n: i64| es.mint(&json!({"sub": "a", "exp": t + 1, "jti": format!("p{n}")}));
    let lee = |n: i64| es.mint(&json!({"sub": "a", "exp": t + 1 - 30, "jti": format!("l{n}")}));
    // ECDSA signatures differ on every signing: keep the tokens the cache holds.
    let (plain0, lee0) = (plain(0), lee(0));
    site.allowed("last second, no leeway", "/plain", &plain0);
    site.allowed("last second of the leeway", "/leeway", &lee0);
    let t1 = next_second();
    assert_eq!(t1, t + 1, "the test took more than a second");
    site.refused("cached, at exp", "/plain", &plain0, "expired_token");
    site.refused("cached, at exp + leeway", "/leeway", &lee0, "expired_token");
    site.refused("fresh, at exp", "/plain", &plain(1), "expired_token");
    site.refused(
        "fresh, at exp + leeway",
        "/leeway",
        &lee(1),
        "expired_token",
    );
}

#[test]
fn leeway_allows_skew_for_exp_nbf_and_iat_and_no_more() {
    let site = Site::start("");
    let es = site.key("es");
    let now = now();
    let tok = |claims: Value| es.mint(&claims);
    // Leeway 30 s. Accepted cases keep a second or more of margin on the side time moves to.
    let on_leeway = [
        ("exp 20 s ago", json!({"exp": now - 20}), "allowed"),
        ("exp 30 s ago", json!({"exp": now - 30}), "expired_token"),
        ("exp 40 s ago", json!({"exp": now - 40}), "expired_token"),
        (
            "nbf in 30 s",
            json!({"exp": now + 60, "nbf": now + 30}),
            "allowed",
        ),
        (
            "nbf in 40 s",
            json!({"exp": now + 60, "nbf": now + 40}),
            "bad_claims",
        ),
        (
            "iat in 30 s",
            json!({"exp": now + 60, "iat": now + 30}),
            "allowed",
        ),
        (
            "iat in 40 s",
            json!({"exp": now + 60, "iat": now + 40}),
            "bad_claims",
        ),
    ];
    for (what, claims, status) in on_leeway {
        let code = if status == "allowed" { 200 } else { 403 };
        site.expect(
            &format!("leeway 30s: {what}"),
            "/leeway",
            &tok(claims),
            code,
            status,
        );
    }
    let no_leeway = [
        ("exp now", json!({"exp": now}), "expired_token"),
        ("exp 1 s ago", json!({"exp": now - 1}), "expired_token"),
        ("exp in 30 s", json!({"exp": now + 30}), "allowed"),
        ("nbf now", json!({"exp": now + 60, "nbf": now}), "allowed"),
        (
            "nbf in 3 s",
            json!({"exp": now + 60, "nbf": now + 3}),
            "bad_claims",
        ),
        ("iat now", json!({"exp": now + 60, "iat": now}), "allowed"),
        (
            "iat in 3 s",
            json!({"exp": now + 60, "iat": now + 3}),
            "bad_claims",
        ),
        (
            "nbf a string",
            json!({"exp": now + 60, "nbf": "0"}),
            "bad_claims",
        ),
    ];
    for (what, claims, status) in no_leeway {
        let code = if status == "allowed" { 200 } else { 403 };
        site.expect(
            &format!("no leeway: {what}"),
            "/plain",
            &tok(claims),
            code,
            status,
        );
    }
}

#[test]
fn audience_may_be_an_array_and_issuer_must_match() {
    let site = Site::start("");
    let es = site.key("es");
    let now = now();
    let with = |aud: Value, iss: Value| {
        let mut c = json!({"sub": "a", "exp": now + 60});
        if !aud.is_null() {
            c["aud"] = aud;
        }
        if !iss.is_null() {
            c["iss"] = iss;
        }
        es.mint(&c)
    };
    let cases = [
        ("aud string", json!("wcs"), json!(ISSUER), "allowed"),
        (
            "aud array with it",
            json!(["other", "wcs"]),
            json!(ISSUER),
            "allowed",
        ),
        (
            "aud array without it",
            json!(["other", "more"]),
            json!(ISSUER),
            "bad_claims",
        ),
        ("aud empty array", json!([]), json!(ISSUER), "bad_claims"),
        ("aud missing", Value::Null, json!(ISSUER), "bad_claims"),
        ("aud in capitals", json!("WCS"), json!(ISSUER), "bad_claims"),
        ("aud a prefix", json!("wc"), json!(ISSUER), "bad_claims"),
        ("iss missing", json!("wcs"), Value::Null, "bad_claims"),
        ("iss other", json!("wcs"), json!("Backend"), "bad_claims"),
        (
            "iss in an array",
            json!("wcs"),
            json!([ISSUER]),
            "bad_claims",
        ),
    ];
    for (what, aud, iss, status) in cases {
        let code = if status == "allowed" { 200 } else { 403 };
        site.expect(what, "/wss", &with(aud, iss), code, status);
    }
    // Without issuer and audience configured, neither is looked at.
    site.allowed("no rules", "/plain", &with(json!("x"), json!("y")));
}

// ---------------------------------------------------------------------------------------
// Revocation.

fn with_rules(mut claims: Value) -> Value {
    claims["iss"] = json!(ISSUER);
    claims["aud"] = json!(AUDIENCE);
    claims
}

#[test]
fn jti_and_sub_files_revoke_and_sub_files_only_up_to_their_mtime() {
    let site = Site::start("");
    let es = site.key("es");
    let dir = site.revoked();
    let now = now();
    let tok = |sub: &str, iat: Option<i64>, jti: &str| {
        let mut c = json!({"sub": sub, "exp": now + 300, "jti": jti});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        es.mint(&with_rules(c))
    };
    fs::write(dir.join("jti.j-1"), "").unwrap();
    site.refused(
        "jti file",
        "/wss",
        &tok("bob", Some(now), "j-1"),
        "revoked_token",
    );
    site.allowed("another jti", "/wss", &tok("bob", Some(now), "j-2"));
    site.allowed(
        "no jti",
        "/wss",
        &es.mint(&with_rules(json!({"sub": "bob", "exp": now + 300}))),
    );

    let iat = now - 100;
    touch_at(&dir, "sub.early", iat - 1);
    site.allowed(
        "sub file older than iat",
        "/wss",
        &tok("early", Some(iat), "e"),
    );
    touch_at(&dir, "sub.same", iat);
    site.refused(
        "sub file in iat's second",
        "/wss",
        &tok("same", Some(iat), "s"),
        "revoked_token",
    );
    touch_at(&dir, "sub.late", iat + 1);
    site.refused(
        "sub file newer than iat",
        "/wss",
        &tok("late", Some(iat), "l"),
        "revoked_token",
    );
    touch_at(&dir, "sub.noiat", now - 1000);
    site.refused(
        "sub file, token without iat",
        "/wss",
        &tok("noiat", None, "n"),
        "revoked_token",
    );
    site.allowed("another subject", "/wss", &tok("carol", Some(iat), "c"));
    // Looked up as it is: no other letter case, no prefix.
    fs::write(dir.join("sub.Dave"), "").unwrap();
    fs::write(dir.join("dave"), "").unwrap();
    site.allowed("sub.Dave is not dave", "/wss", &tok("dave", Some(now), "d"));
}

#[test]
fn revocation_names_are_percent_encoded() {
    let site = Site::start("");
    let es = site.key("es");
    let dir = site.revoked();
    let now = now();
    let tok = |sub: &str, jti: &str| {
        es.mint(&with_rules(
            json!({"sub": sub, "iat": now - 10, "exp": now + 300, "jti": jti}),
        ))
    };
    touch_at(&dir, "sub.alice@example.com%2Fx%20y", now);
    site.refused(
        "encoded sub",
        "/wss",
        &tok("alice@example.com/x y", "1"),
        "revoked_token",
    );
    // Lower-case hex is another name.
    touch_at(&dir, "sub.bob%2fz", now);
    site.allowed("lower-case hex", "/wss", &tok("bob/z", "2"));
    // Kept as they are: A-Z a-z 0-9 - _ . @ +
    fs::write(dir.join("jti.Az09-_.@+"), "").unwrap();
    site.refused(
        "unreserved jti",
        "/wss",
        &tok("x", "Az09-_.@+"),
        "revoked_token",
    );
    // Everything else, UTF-8 byte by byte.
    fs::write(dir.join("jti.%C3%A9%3A%25%2A%00"), "").ok();
    fs::write(dir.join("jti.%C3%A9%3A%25%2A"), "").unwrap();
    site.refused("encoded jti", "/wss", &tok("x", "é:%*"), "revoked_token");
    site.allowed("not revoked", "/wss", &tok("x", "é:%"));
}

#[test]
fn a_symlink_or_directory_named_like_a_revocation_is_not_one() {
    let site = Site::start("");
    let es = site.key("es");
    let dir = site.revoked();
    let now = now();
    let tok = |sub: &str, jti: &str| {
        es.mint(&with_rules(
            json!({"sub": sub, "iat": now - 10, "exp": now + 300, "jti": jti}),
        ))
    };
    fs::write(dir.join("jti.real"), "").unwrap();
    symlink(dir.join("jti.real"), dir.join("jti.link")).unwrap();
    symlink("/etc/passwd", dir.join("sub.linked")).unwrap();
    fs::create_dir(dir.join("jti.adir")).unwrap();
    site.refused(
        "the regular file",
        "/wss",
        &tok("a", "real"),
        "revoked_token",
    );
    site.allowed("a symlink to a revocation", "/wss", &tok("a", "link"));
    site.allowed("a sub symlink", "/wss", &tok("linked", "x"));
    site.allowed("a directory", "/wss", &tok("a", "adir"));
}

#[test]
fn names_over_255_bytes_are_refused_while_a_revocation_directory_is_configured() {
    let site = Site::start("");
    let es = site.key("es");
    let now = now();
    let tok = |sub: &str, jti: &str| {
        es.mint(&with_rules(
            json!({"sub": sub, "iat": now, "exp": now + 300, "jti": jti}),
        ))
    };
    let fits = "a".repeat(255 - "jti.".len());
    let over = "a".repeat(256 - "jti.".len());
    site.allowed("jti name of 255 bytes", "/wss", &tok("a", &fits));
    site.refused(
        "jti name of 256 bytes",
        "/wss",
        &tok("a", &over),
        "bad_claims",
    );
    // 84 slashes are 84 bytes, but 252 once encoded: 256 with "sub.".
    let slashes = "/".repeat(84);
    site.refused(
        "sub long once encoded",
        "/wss",
        &tok(&slashes, "s"),
        "bad_claims",
    );
    site.allowed("sub 83 slashes", "/wss", &tok(&"/".repeat(83), "s2"));
    // No revocation directory: nothing to name, nothing refused.
    let plain = es.mint(&json!({"sub": slashes, "exp": now + 300, "jti": over}));
    site.allowed("long names without a revocation dir", "/plain", &plain);
}

#[test]
fn a_cached_token_is_revoked_within_cache_ttl() {
    let site = Site::start("wcs_token_auth_cache_ttl 1500ms;");
    let es = site.key("es");
    let now = now();
    let token = es.mint(&with_rules(
        json!({"sub": "a", "iat": now, "exp": now + 300, "jti": "c"}),
    ));
    site.allowed("first", "/wss", &token);
    fs::write(site.revoked().join("jti.c"), "").unwrap();
    site.allowed("cached", "/wss", &token);
    sleep(Duration::from_millis(1600));
    site.refused("after cache_ttl", "/wss", &token, "revoked_token");
}

#[test]
fn a_cached_answer_is_reused_only_under_the_same_rules() {
    let site = Site::start("wcs_token_auth_cache_ttl 10s;");
    let es = site.key("es");
    let now = now();
    // Accepted (and cached) where no issuer, audience or revocation is asked for...
    let bare = es.mint(&json!({"sub": "a", "iat": now, "exp": now + 300, "jti": "r"}));
    site.allowed("no rules", "/plain", &bare);
    site.allowed("no rules, cached", "/plain", &bare);
    // ...verified afresh under an issuer and audience.
    site.refused("issuer and audience", "/wss", &bare, "bad_claims");
    // And a revoked token cached where there is no revocation directory.
    let revoked = es.mint(&with_rules(
        json!({"sub": "a", "iat": now, "exp": now + 300, "jti": "v"}),
    ));
    fs::write(site.revoked().join("jti.v"), "").unwrap();
    site.allowed("no revocation directory", "/plain", &revoked);
    site.refused("revocation directory", "/wss", &revoked, "revoked_token");
    // Accepted within the leeway, cached, refused where there is none.
    let late = es.mint(&json!({"sub": "a", "exp": now - 10, "jti": "l"}));
    site.allowed("within leeway", "/leeway", &late);
    site.refused("no leeway", "/plain", &late, "expired_token");
    site.allowed("within leeway again", "/leeway", &late);
}

#[test]
fn a_missing_revocation_directory_is_a_server_error() {
    let site = Site::start("");
    let es = site.key("es");
    let now = now();
    let token = es.mint(&with_rules(
        json!({"sub": "a", "iat": now, "exp": now + 300}),
    ));
    fs::remove_dir(site.revoked()).unwrap();
    site.expect("revocation dir removed", "/wss", &token, 500, "error");
    let log = site.nginx.prefix.error_log();
    let line = module_lines(&log).pop().unwrap();
    assert!(
        line.contains("[crit]")
            && line.contains(&format!(
                "revocation directory \"{}\" does not exist",
                site.revoked().display()
            )),
        "{line}"
    );
    fs::create_dir(site.revoked()).unwrap();
    site.allowed("back", "/wss", &token);
}

// ---------------------------------------------------------------------------------------
// Attacks.

fn claims_ok() -> String {
    let now = now();
    json!({"sub": "mallory", "iat": now, "exp": now + 300}).to_string()
}

#[test]
fn algorithm_confusion_and_forged_headers_are_refused() {
    let site = Site::start("");
    let (hs, es, ed, rs) = (
        site.key("hs"),
        site.key("es"),
        site.key("ed"),
        site.key("rs"),
    );
    let body = claims_ok();
    let none = |h: &str| token_with(h, &body, |_| Vec::new());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "control: valid ES256",
            es.mint_raw(&es.header(), &body),
            "allowed",
        ),
        // An empty segment is not JWS compact form: the classic unsecured token is malformed.
        (
            "alg none with a kid",
            none(r#"{"alg":"none","kid":"es"}"#),
            "malformed_token",
        ),
        (
            "alg none without kid",
            none(r#"{"alg":"none"}"#),
            "malformed_token",
        ),
        (
            "alg none, any signature",
            token_with(r#"{"alg":"none"}"#, &body, |_| b"x".to_vec()),
            "bad_signature",
        ),
        (
            "alg None, any signature",
            token_with(r#"{"alg":"None","kid":"hs"}"#, &body, |_| b"x".to_vec()),
            "bad_signature",
        ),
        (
            "alg none with a signature",
            token_with(r#"{"alg":"none","kid":"es"}"#, &body, |i| es.sign(i)),
            "bad_signature",
        ),
        (
            "HS256 keyed with the RSA public key's PEM",
            token_with(r#"{"alg":"HS256","kid":"rs"}"#, &body, |i| {
                hs256(&rs.public_pem(), i)
            }),
            "bad_signature",
        ),
        (
            "HS256 keyed with the EC public key's PEM",
            token_with(r#"{"alg":"HS256","kid":"es"}"#, &body, |i| {
                hs256(&es.public_pem(), i)
            }),
            "bad_signature",
        ),
        (
            "HS256 keyed with the Ed25519 public key's PEM",
            token_with(r#"{"alg":"HS256","kid":"ed"}"#, &body, |i| {
                hs256(&ed.public_pem(), i)
            }),
            "bad_signature",
        ),
        (
            "kid of an RSA key, signed by the EC key",
            es.mint_raw(r#"{"alg":"ES256","kid":"rs"}"#, &body),
            "bad_signature",
        ),
        (
            "kid of the HMAC key, signed by the RSA key",
            rs.mint_raw(r#"{"alg":"RS256","kid":"hs"}"#, &body),
            "bad_signature",
        ),
        (
            "kid of the Ed25519 key, HMAC-signed",
            hs.mint_raw(r#"{"alg":"HS256","kid":"ed"}"#, &body),
            "bad_signature",
        ),
        (
            "alg ES384 for the P-256 key",
            es.mint_raw(r#"{"alg":"ES384","kid":"es"}"#, &body),
            "bad_signature",
        ),
        (
            "no kid in a set of four",
            es.mint_raw(r#"{"alg":"ES256"}"#, &body),
            "bad_signature",
        ),
        (
            "kid with ../",
            es.mint_raw(r#"{"alg":"ES256","kid":"../conf/keys.json"}"#, &body),
            "bad_signature",
        ),
        (
            "kid with NUL after a real kid",
            es.mint_raw(r#"{"alg":"ES256","kid":"es\u0000"}"#, &body),
            "bad_signature",
        ),
        (
            "kid NUL",
            es.mint_raw(r#"{"alg":"ES256","kid":"\u0000"}"#, &body),
            "bad_signature",
        ),
        (
            "kid of 2 KB",
            es.mint_raw(
                &json!({"alg": "ES256", "kid": "k".repeat(2048)}).to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "kid of 10 KB (token over 4,096 bytes)",
            es.mint_raw(
                &json!({"alg": "ES256", "kid": "k".repeat(10240)}).to_string(),
                &body,
            ),
            "malformed_token",
        ),
        (
            "crit header",
            es.mint_raw(r#"{"alg":"ES256","kid":"es","crit":["exp"]}"#, &body),
            "bad_claims",
        ),
        (
            "crit header naming an extension",
            es.mint_raw(
                r#"{"alg":"ES256","kid":"es","crit":["b64"],"b64":true}"#,
                &body,
            ),
            "bad_claims",
        ),
        (
            "duplicate kid in the header",
            es.mint_raw(r#"{"alg":"ES256","kid":"rs","kid":"es"}"#, &body),
            "malformed_token",
        ),
        (
            "duplicate alg in the header",
            es.mint_raw(r#"{"alg":"none","alg":"ES256","kid":"es"}"#, &body),
            "malformed_token",
        ),
        (
            "header a JSON array",
            es.mint_raw(r#"["ES256","es"]"#, &body),
            "malformed_token",
        ),
        (
            "payload an array",
            es.mint_raw(&es.header(), r#"[{"exp":9999999999}]"#),
            "bad_claims",
        ),
        (
            "payload a string",
            es.mint_raw(&es.header(), r#""exp""#),
            "bad_claims",
        ),
        (
            "payload a number",
            es.mint_raw(&es.header(), "9999999999"),
            "bad_claims",
        ),
        (
            "payload null",
            es.mint_raw(&es.header(), "null"),
            "bad_claims",
        ),
    ];
    for (what, token, status) in &cases {
        let code = if *status == "allowed" { 200 } else { 403 };
        site.expect(what, "/plain", token, code, status);
    }

    // A signature that does not verify: one bit flipped, cut short, another token's; an empty
    // one is not JWS compact form.
    let good = es.mint_raw(&es.header(), &body);
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[10] ^= 1;
    let flipped = format!("{input}.{}", b64(&raw));
    site.refused("signature bit flipped", "/plain", &flipped, "bad_signature");
    let short = format!("{input}.{}", b64(&raw[..63]));
    site.refused("signature cut short", "/plain", &short, "bad_signature");
    site.refused(
        "no signature",
        "/plain",
        &format!("{input}."),
        "malformed_token",
    );
    let other = es.mint_raw(&es.header(), &claims_ok().replace("mallory", "eve"));
    let swapped = format!("{input}.{}", other.rsplit_once('.').unwrap().1);
    site.refused(
        "another token's signature",
        "/plain",
        &swapped,
        "bad_signature",
    );
    for k in [hs, ed, rs] {
        let mut t = k.mint_raw(&k.header(), &body);
        site.allowed(&format!("control: {}", k.alg.name()), "/plain", &t);
        t.push('A');
        site.refused(
            &format!("{} with a byte more", k.alg.name()),
            "/plain",
            &t,
            "bad_signature",
        );
    }
}

#[test]
fn jku_x5u_jwk_and_x5c_headers_are_never_fetched_or_trusted() {
    let site = Site::start("");
    let es = site.key("es");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let attacker = Key::generate(Alg::RS256, "attacker");
    let body = claims_ok();
    let jwk = attacker.public_jwk();
    let cases = [
        (
            "jku to the attacker's set",
            attacker.mint_raw(
                &json!({"alg": "RS256", "kid": "attacker", "jku": format!("{url}/jwks.json")})
                    .to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "x5u to the attacker's certificate",
            attacker.mint_raw(
                &json!({"alg": "RS256", "kid": "attacker", "x5u": format!("{url}/cert.pem")})
                    .to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "jku naming a known kid",
            attacker.mint_raw(
                &json!({"alg": "RS256", "kid": "rs", "jku": format!("{url}/jwks.json")})
                    .to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "embedded jwk",
            attacker.mint_raw(
                &json!({"alg": "RS256", "kid": "rs", "jwk": jwk}).to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "embedded jwk without kid",
            attacker.mint_raw(&json!({"alg": "RS256", "jwk": jwk}).to_string(), &body),
            "bad_signature",
        ),
        (
            "x5c",
            attacker.mint_raw(
                &json!({"alg": "RS256", "kid": "rs", "x5c": [b64(&attacker.public_pem())]})
                    .to_string(),
                &body,
            ),
            "bad_signature",
        ),
        (
            "jku and x5u on a genuine token are ignored",
            es.mint_raw(
                &json!({"alg": "ES256", "kid": "es", "jku": format!("{url}/a"),
                        "x5u": format!("{url}/b")})
                .to_string(),
                &body,
            ),
            "allowed",
        ),
    ];
    for (what, token, status) in &cases {
        let code = if *status == "allowed" { 200 } else { 403 };
        site.expect(what, "/plain", token, code, status);
    }
    sleep(Duration::from_millis(300));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("nginx connected to the jku/x5u listener: {other:?}"),
    }
}

/// A valid ES256 token of exactly `len` bytes: a `pad` claim (and, when the payload alone
/// cannot land on `len`, a header member) fills it up.
fn token_of_len(es: &Key, len: usize) -> String {
    let now = now();
    for hpad in 0..4 {
        let header = json!({"alg": "ES256", "kid": "es", "x": "h".repeat(hpad)}).to_string();
        for pad in 0..len {
            let payload = json!({"exp": now + 300, "pad": "p".repeat(pad)}).to_string();
            let t = es.mint_raw(&header, &payload);
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

#[test]
fn size_and_encoding_limits() {
    let site = Site::start("");
    let es = site.key("es");
    let t4096 = token_of_len(es, 4096);
    site.allowed("4,096 bytes", "/plain", &t4096);
    let t4097 = token_of_len(es, 4097);
    site.refused("4,097 bytes", "/plain", &t4097, "malformed_token");
    site.refused(
        "4,097 bytes, token dir too",
        "/both",
        &t4097,
        "malformed_token",
    );

    // Padding: each segment of a token whose segments are not multiples of 4 long.
    let good = (0..)
        .map(|n| es.mint(&json!({"exp": now() + 300, "n": n})))
        .find(|t| t.split('.').all(|s| s.len() % 4 != 0))
        .unwrap();
    site.allowed("control", "/plain", &good);
    let seg: Vec<&str> = good.split('.').collect();
    let pad = |s: &str| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
    for i in 0..3 {
        let mut s: Vec<String> = seg.iter().map(|s| s.to_string()).collect();
        s[i] = pad(&s[i]);
        let padded = s.join(".");
        site.refused(
            &format!("segment {i} padded"),
            "/plain",
            &padded,
            "malformed_token",
        );
        site.refused(
            &format!("segment {i} padded, token dir"),
            "/both",
            &padded,
            "malformed_token",
        );
    }

    // The standard alphabet: a token whose signature has a `+` or `/` there.
    let (std_tok, std_sig) = (0..)
        .map(|n| es.mint(&json!({"exp": now() + 300, "n": n})))
        .find_map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            let std = STANDARD.encode(URL_SAFE_NO_PAD.decode(sig).unwrap());
            let std = std.trim_end_matches('=').to_string();
            (std.contains('+') && std.contains('/')).then(|| (format!("{input}.{std}"), std))
        })
        .unwrap();
    assert!(std_sig.contains('+'));
    site.refused(
        "+ and / in the signature",
        "/plain",
        &std_tok,
        "malformed_token",
    );
    // A header with `/` in standard base64: `?` encodes to `Pw`, `??>` to `Pz8+`.
    let header = r#"{"alg":"ES256","kid":"es","x":"??>"}"#;
    let body = json!({"exp": now() + 300}).to_string();
    let std_header = STANDARD.encode(header).trim_end_matches('=').to_string();
    assert!(
        std_header.contains('+') || std_header.contains('/'),
        "{std_header}"
    );
    let t = token_with_encoded(&std_header, &URL_SAFE_NO_PAD.encode(&body), es);
    site.refused("+ or / in the header", "/plain", &t, "malformed_token");
    // The same header in base64url verifies: only the alphabet is wrong above.
    site.allowed(
        "that header in base64url",
        "/plain",
        &es.mint_raw(header, &body),
    );
}

/// A token over already-encoded header and payload segments, signed by `key` as they are.
fn token_with_encoded(header: &str, payload: &str, key: &Key) -> String {
    let input = format!("{header}.{payload}");
    format!("{input}.{}", b64(&key.sign(input.as_bytes())))
}

/// The backend snippets docs/signed-tokens.md shows are excerpts of the files the
/// interoperability tests run, so the page cannot drift from what was tested.
#[test]
fn the_minting_snippets_in_the_docs_are_the_tested_files() {
    let page = fs::read_to_string(examples_dir().join("../signed-tokens.md")).unwrap();
    let mut shown = 0;
    for (fence, file) in [
        ("```python\n", "mint_token.py"),
        ("```js\n", "mint-token.mjs"),
    ] {
        let source = fs::read_to_string(examples_dir().join(file)).unwrap();
        for block in page.split(fence).skip(1) {
            let code = block.split("```").next().unwrap();
            assert!(
                source.contains(code),
                "docs/signed-tokens.md shows code that is not in docs/examples/{file}:\n{code}"
            );
            shown += 1;
        }
    }
    assert!(
        shown >= 4,
        "the page shows {shown} snippets, expected the Python and Node ones"
    );
}
