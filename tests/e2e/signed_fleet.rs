//! Several edge servers, one JWK Set, no shared token directory: two nginx instances verify
//! the same signed tokens, follow a key rotation on reload, enforce a `sub.` revocation file
//! copied to each within `cache_ttl`, and close their WebSocket sessions at `exp`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::common::jwt::*;
use crate::common::sessions::{count_lines, echoes, wait_closed};
use crate::common::*;

const CACHE_TTL_MS: u64 = 400;

struct Edge {
    nginx: Nginx,
    http: String,
    server: String,
}

impl Edge {
    fn revoked(&self) -> PathBuf {
        self.nginx.prefix.path().join("revoked")
    }

    /// Reloads with the same configuration (the key set is read again) and waits for the
    /// new worker.
    fn reload(&mut self) {
        let (http, server) = (self.http.clone(), self.server.clone());
        self.nginx.reload(&http, &server);
    }

    fn status_of(&self, token: &str) -> (u16, String) {
        let n = self.nginx.prefix.access_log().lines().count() + 1;
        let resp = self
            .nginx
            .get("/wss", &[("Cookie", &format!("AUTH={token}"))]);
        let lines = self.nginx.access_lines(n);
        let status = lines
            .get(n - 1)
            .and_then(|l| l.rsplit_once("status="))
            .map(|(_, s)| s.to_string())
            .unwrap_or_default();
        (resp.status, status)
    }

    /// The WebSocket this edge closed logged `status`, and its error log holds one `line`.
    fn logged_one_closed_session(&self, status: &str, line: &str) {
        let port = self.nginx.port;
        let lines = self.nginx.access_lines(1);
        let want = format!(" 101 status={status}");
        assert!(
            lines.iter().any(|l| l.contains(&want)),
            "port {port}: {lines:?}"
        );
        let log = self.nginx.prefix.error_log();
        assert_eq!(count_lines(&log, line), 1, "port {port}:\n{log}");
    }

    fn expect(&self, what: &str, token: &str, code: u16, status: &str) {
        let got = self.status_of(token);
        assert_eq!(
            got,
            (code, status.to_string()),
            "{what} on port {}",
            self.nginx.port
        );
    }
}

/// Two edges on one key-set file (in `shared`), each with its own revocation directory.
fn two_edges(mock: &MockWcs, keys: &Path, extra: &str) -> [Edge; 2] {
    [0, 1].map(|_| {
        let prefix = Prefix::new();
        fs::create_dir(prefix.path().join("revoked")).unwrap();
        let http = format!("wcs_token_auth_cache_ttl {CACHE_TTL_MS}ms;");
        let server = proxied_location(
            "/wss",
            &mock.url(),
            &format!("jwks={}", keys.display()),
            &format!(
                "wcs_token_auth_revoked {};\n{extra}",
                prefix.path().join("revoked").display()
            ),
        );
        let nginx = Nginx::start_in(prefix, &http, &server);
        Edge {
            nginx,
            http,
            server,
        }
    })
}

fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("wcs-jwks-")
        .tempdir()
        .unwrap();
    fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d
}

#[test]
fn one_key_set_on_two_edges_through_a_key_rotation() {
    let mock = MockWcs::start(false).unwrap();
    let shared = shared_dir();
    let keys = shared.path().join("keys.json");
    let a = Key::generate(Alg::ES256, "a");
    let b = Key::generate(Alg::EdDSA, "b");
    fs::write(&keys, jwks(&[&a], false)).unwrap();
    let mut edges = two_edges(&mock, &keys, "");

    let token_a = a.mint(&claims("alice", 600));
    for e in &edges {
        e.expect("A before rotation", &token_a, 200, "allowed");
        e.expect(
            "B unknown yet",
            &b.mint(&claims("bob", 600)),
            403,
            "bad_signature",
        );
    }

    // Add B, reload both: A and B both work.
    fs::write(&keys, jwks(&[&a, &b], false)).unwrap();
    for e in &mut edges {
        e.reload();
    }
    let token_b = b.mint(&claims("bob", 600));
    for e in &edges {
        e.expect("A after adding B", &token_a, 200, "allowed");
        e.expect(
            "new A after adding B",
            &a.mint(&claims("ann", 600)),
            200,
            "allowed",
        );
        e.expect("B after adding B", &token_b, 200, "allowed");
    }

    // Remove A, reload both: A refused everywhere, B still works.
    fs::write(&keys, jwks(&[&b], false)).unwrap();
    for e in &mut edges {
        e.reload();
    }
    for e in &edges {
        e.expect("A after its removal", &token_a, 403, "bad_signature");
        e.expect(
            "new A after its removal",
            &a.mint(&claims("amy", 600)),
            403,
            "bad_signature",
        );
        e.expect("B after A's removal", &token_b, 200, "allowed");
        e.nginx.assert_no_crash();
    }
}

#[test]
fn a_sub_revocation_copied_to_both_edges_is_enforced_by_both_within_cache_ttl() {
    let mock = MockWcs::start(false).unwrap();
    let shared = shared_dir();
    let keys = shared.path().join("keys.json");
    let k = Key::generate(Alg::RS256, "k");
    fs::write(&keys, jwks(&[&k], false)).unwrap();
    let edges = two_edges(&mock, &keys, "");
    let now = now();
    let old = k.mint(&json!({"sub": "alice", "iat": now - 5, "exp": now + 600, "jti": "o"}));
    let other = k.mint(&json!({"sub": "bob", "iat": now - 5, "exp": now + 600, "jti": "b"}));
    for e in &edges {
        e.expect("before", &old, 200, "allowed");
    }
    // The backend's "log alice out everywhere": one file, copied to each edge.
    let mtime = UNIX_EPOCH + Duration::from_secs((now - 1) as u64);
    let revoked_at = Instant::now();
    for e in &edges {
        let f = fs::File::create(e.revoked().join("sub.alice")).unwrap();
        f.set_modified(mtime).unwrap();
    }
    let mut last_accept = [None, None];
    let mut refused_at = [None, None];
    while revoked_at.elapsed() < Duration::from_millis(CACHE_TTL_MS + 600) {
        for (i, e) in edges.iter().enumerate() {
            let sent = revoked_at.elapsed();
            match e.status_of(&old) {
                (200, _) => {
                    assert!(
                        refused_at[i].is_none(),
                        "edge {i}: accepted again after a refusal"
                    );
                    last_accept[i] = Some(sent);
                }
                (403, s) if s == "revoked_token" => {
                    refused_at[i].get_or_insert(sent);
                }
                other => panic!("edge {i}: {other:?}"),
            }
        }
    }
    for i in 0..2 {
        assert!(
            refused_at[i].is_some(),
            "edge {i} never refused the revoked token"
        );
        if let Some(t) = last_accept[i] {
            assert!(
                t < Duration::from_millis(CACHE_TTL_MS),
                "edge {i} accepted {t:?} after the revocation (cache_ttl {CACHE_TTL_MS} ms)"
            );
        }
        eprintln!(
            "edge {i}: last accept {:?}, first refusal {:?} after the sub. file",
            last_accept[i], refused_at[i]
        );
    }
    // Another subject, and alice's tokens issued after the file, still work on both.
    let fresh = k.mint(&json!({"sub": "alice", "iat": now, "exp": now + 600, "jti": "n"}));
    for e in &edges {
        e.expect("another subject", &other, 200, "allowed");
        e.expect("alice's new token", &fresh, 200, "allowed");
    }
}

#[test]
fn sessions_on_both_edges_close_at_exp() {
    let mock = MockWcs::start(false).unwrap();
    let shared = shared_dir();
    let keys = shared.path().join("keys.json");
    let k = Key::generate(Alg::EdDSA, "k");
    fs::write(&keys, jwks(&[&k], false)).unwrap();
    let edges = two_edges(&mock, &keys, "wcs_token_auth_session_check 200ms;");
    let exp = now() + 3;
    let token = k.mint(&json!({"sub": "alice", "iat": now(), "exp": exp, "jti": "s"}));
    let (h, v) = cookie(&token);
    let mut sockets: Vec<Ws> = edges
        .iter()
        .map(|e| e.nginx.ws("/wss", &[(h, &v)]).expect("upgrade"))
        .collect();
    for ws in &mut sockets {
        assert!(echoes(ws, "before exp"));
    }
    let exp_at = UNIX_EPOCH + Duration::from_secs(exp as u64);
    let handles: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            std::thread::spawn(move || {
                let closed = wait_closed(&mut ws, Duration::from_secs(8));
                (closed, SystemTime::now())
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (closed, when) = h.join().unwrap();
        assert!(closed.is_some(), "edge {i}: the session outlived exp");
        // Closed once the clock reached exp, and within the check interval after it.
        let late = when
            .duration_since(exp_at)
            .unwrap_or_else(|e| panic!("edge {i}: closed {:?} before exp", e.duration()));
        assert!(
            late < Duration::from_millis(200 + 400),
            "edge {i}: closed {late:?} after exp"
        );
        eprintln!("edge {i}: closed {late:?} after exp");
    }
    for e in &edges {
        e.logged_one_closed_session("session_expired", "closed session: token expired");
        e.expect("the expired token afterwards", &token, 403, "expired_token");
    }
}

#[test]
fn a_sub_revocation_copied_to_both_edges_closes_their_sessions() {
    let mock = MockWcs::start(false).unwrap();
    let shared = shared_dir();
    let keys = shared.path().join("keys.json");
    let k = Key::generate(Alg::ES256, "k");
    fs::write(&keys, jwks(&[&k], false)).unwrap();
    let edges = two_edges(&mock, &keys, "wcs_token_auth_session_check 200ms;");
    let now = now();
    let token = k.mint(&json!({"sub": "alice", "iat": now - 5, "exp": now + 600, "jti": "w"}));
    let (h, v) = cookie(&token);
    let mut sockets: Vec<Ws> = edges
        .iter()
        .map(|e| e.nginx.ws("/wss", &[(h, &v)]).expect("upgrade"))
        .collect();
    for ws in &mut sockets {
        assert!(echoes(ws, "before the revocation"));
    }
    let written = Instant::now();
    for e in &edges {
        let f = fs::File::create(e.revoked().join("sub.alice")).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs((now - 1) as u64))
            .unwrap();
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let closed = wait_closed(ws, Duration::from_secs(3));
        assert!(
            closed.is_some(),
            "edge {i}: the session outlived its revocation"
        );
        // From the files' creation (the sockets are read one after the other).
        let took = written.elapsed();
        assert!(
            took < Duration::from_millis(200 + 400),
            "edge {i}: closed after {took:?}"
        );
        eprintln!("edge {i}: session closed {took:?} after the sub. file");
    }
    for e in &edges {
        e.logged_one_closed_session("session_revoked", "closed session: token revoked");
    }
}
