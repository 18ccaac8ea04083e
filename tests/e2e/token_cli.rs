//! The `wcs-token` CLI against the real module: what it issues nginx accepts, what it
//! revokes or prunes nginx refuses, and its `check` agrees with the module's verdict.
//!
//! The binary belongs to another workspace package, so cargo gives this package no
//! `CARGO_BIN_EXE_` for it: it is `$WCS_TOKEN`, else `wcs-token` in this test binary's
//! target profile directory, where `cargo test --workspace` (or `cargo build -p wcs-token`)
//! puts it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

pub(crate) fn cli_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WCS_TOKEN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/wcs-token
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("wcs-token"))
        .expect("target directory");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release -p wcs-token` or set WCS_TOKEN",
        bin.display()
    );
    bin
}

fn cli(nginx: &Nginx, args: &[&str]) -> Output {
    Command::new(cli_bin())
        .arg("--dir")
        .arg(nginx.prefix.tokens())
        .args(args)
        .output()
        .expect("run wcs-token")
}

fn issue(nginx: &Nginx) -> String {
    let o = cli(nginx, &["issue"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Opens the WebSocket with the token; the status nginx logged for it.
pub(crate) fn nginx_verdict(nginx: &Nginx, token: &str, requests_so_far: &mut usize) -> String {
    let (k, v) = cookie(token);
    if let Ok(mut ws) = nginx.ws("/wss", &[(k, &v)]) {
        assert_eq!(roundtrip(&mut ws, "ping"), "ping");
        let _ = ws.close(None);
    }
    *requests_so_far += 1;
    let lines = nginx.access_lines(*requests_so_far);
    let line = lines
        .get(*requests_so_far - 1)
        .unwrap_or_else(|| panic!("no access log line: {lines:?}"));
    line.rsplit("status=").next().unwrap_or("").to_string()
}

fn start(extra: &str) -> (MockWcs, Nginx) {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start(
        "wcs_token_auth_cache_ttl 0;",
        &wss_location(&mock.url(), extra),
    );
    (mock, nginx)
}

#[test]
fn an_issued_token_opens_the_websocket_and_a_revoked_one_is_refused() {
    let (_mock, nginx) = start("");
    let token = issue(&nginx);
    let (k, v) = cookie(&token);
    let mut ws = nginx
        .ws("/wss", &[(k, &v)])
        .expect("upgrade with the issued token");
    assert_eq!(roundtrip(&mut ws, "through nginx"), "through nginx");
    ws.close(None).unwrap();
    drop(ws);

    let o = cli(&nginx, &["revoke", &token]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(nginx.ws("/wss", &[(k, &v)]).err(), Some(403));
    let lines = nginx.access_lines(2);
    assert!(lines[0].contains(" 101 status=allowed"), "{lines:?}");
    assert!(lines[1].ends_with(" 403 status=unknown_token"), "{lines:?}");
    assert!(nginx
        .prefix
        .error_log()
        .contains("wcs_token_auth: unknown token in cookie \"AUTH\""));
    nginx.assert_no_crash();
}

#[test]
fn a_revoked_token_is_refused_once_the_default_cache_ttl_is_over() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start("", &wss_location(&mock.url(), ""));
    let token = issue(&nginx);
    let (k, v) = cookie(&token);
    drop(nginx.ws("/wss", &[(k, &v)]).expect("upgrade"));
    assert!(cli(&nginx, &["revoke", &token]).status.success());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(nginx.ws("/wss", &[(k, &v)]).err(), Some(403));
}

#[test]
fn check_agrees_with_the_module() {
    let (_mock, nginx) = start("wcs_token_auth_max_age 1h;");
    let fresh = issue(&nginx);
    let old = issue(&nginx);
    let file = nginx.prefix.tokens().join(&old);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let revoked = issue(&nginx);
    assert!(cli(&nginx, &["revoke", &revoked]).status.success());
    let mut n = 0;
    for token in [
        fresh.as_str(),
        old.as_str(),
        revoked.as_str(),
        "../../../../etc/passwd",
        ".hidden",
        "never-issued",
    ] {
        let o = cli(&nginx, &["check", "--max-age", "1h", "--", token]);
        let cli_says = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let nginx_says = nginx_verdict(&nginx, token, &mut n);
        let expected = if nginx_says == "allowed" {
            "valid"
        } else {
            &nginx_says
        };
        assert_eq!(cli_says, expected, "{token}");
        assert_eq!(
            o.status.code(),
            Some(if cli_says == "valid" { 0 } else { 1 })
        );
    }
    // Each verdict occurred, so the comparison covered them.
    let log = nginx.prefix.access_log();
    for status in [
        "allowed",
        "expired_token",
        "unknown_token",
        "malformed_token",
    ] {
        assert!(log.contains(&format!("status={status}")), "{log}");
    }
}

#[test]
fn prune_removes_what_the_module_calls_expired_and_nothing_else() {
    let (_mock, nginx) = start("wcs_token_auth_max_age 1h;");
    let fresh = issue(&nginx);
    let old = issue(&nginx);
    std::fs::File::options()
        .write(true)
        .open(nginx.prefix.tokens().join(&old))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3700))
        .unwrap();
    let mut n = 0;
    assert_eq!(nginx_verdict(&nginx, &old, &mut n), "expired_token");
    let o = cli(&nginx, &["prune", "--max-age", "1h"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert_eq!(out.trim(), format!("removed {old} (age 1h1m)"));
    assert_eq!(nginx_verdict(&nginx, &old, &mut n), "unknown_token");
    assert_eq!(nginx_verdict(&nginx, &fresh, &mut n), "allowed");
}
