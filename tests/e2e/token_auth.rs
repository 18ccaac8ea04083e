//! The token rules, end to end: real nginx, real WebSocket upgrades, mock WCS behind it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread::sleep;
use std::time::Duration;

use crate::common::*;

fn start(mock: &MockWcs, http: &str, extra: &str) -> Nginx {
    Nginx::start(http, &wss_location(&mock.url(), extra))
}

#[test]
fn valid_token_upgrades_and_frames_echo_over_ws_and_wss_upstreams() {
    for tls in [false, true] {
        let mock = MockWcs::start(tls).unwrap();
        let nginx = start(&mock, "", "");
        nginx.prefix.add_token("ABCDEF1234565789");
        let (k, v) = cookie("ABCDEF1234565789");
        let mut ws = nginx.ws("/wss", &[(k, &v)]).expect("upgrade");
        assert_eq!(roundtrip(&mut ws, "hello"), "hello");
        assert_eq!(roundtrip(&mut ws, "second frame"), "second frame");
        ws.close(None).unwrap();
        drop(ws);
        let lines = nginx.access_lines(1);
        assert!(lines[0].contains(" 101 status=allowed"), "{lines:?}");
    }
}

#[test]
fn refusals_are_403_with_status_and_one_error_line_without_the_token() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    nginx.prefix.add_token("good");
    fs::write(nginx.prefix.path().join("secret"), "").unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 7] = [
        (&[], "no_token", "no token in cookie \"AUTH\""),
        (
            &[("Cookie", "AUTH=")],
            "no_token",
            "no token in cookie \"AUTH\"",
        ),
        (
            &[("Cookie", "auth=good")],
            "no_token",
            "no token in cookie \"AUTH\"",
        ),
        (
            &[("Cookie", "AUTH=wrong-token-value")],
            "unknown_token",
            "unknown token in cookie \"AUTH\"",
        ),
        (
            &[("Cookie", "AUTH=../secret")],
            "malformed_token",
            "malformed token in cookie \"AUTH\"",
        ),
        (
            &[("Cookie", "AUTH=../../../../etc/passwd")],
            "malformed_token",
            "malformed token",
        ),
        (
            &[("Cookie", "AUTH=.hidden")],
            "malformed_token",
            "malformed token",
        ),
    ];
    for (i, (headers, status, reason)) in cases.iter().enumerate() {
        assert_eq!(nginx.ws("/wss", headers).err(), Some(403), "{headers:?}");
        let lines = nginx.access_lines(i + 1);
        assert!(
            lines[i].ends_with(&format!("403 status={status}")),
            "{headers:?}: {lines:?}"
        );
        let log = nginx.prefix.error_log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
        assert_eq!(errors.len(), i + 1, "one error line per refusal:\n{log}");
        assert!(errors[i].contains(reason), "{}", errors[i]);
        assert!(errors[i].contains("client: 127.0.0.1"), "{}", errors[i]);
    }
    let log = nginx.prefix.error_log();
    for secret in ["wrong-token-value", "passwd", "../secret", ".hidden"] {
        assert!(
            !log.contains(secret),
            "the token leaked into the log:\n{log}"
        );
    }
    nginx.assert_no_crash();
}

#[test]
fn the_articles_traversal_cookie_does_not_pass() {
    // The article's `if (!-f /var/lib/nginx/tokens/$cookie_AUTH)` lets this through.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    let resp = nginx.get("/wss", &[("Cookie", "AUTH=../../../../etc/passwd")]);
    assert_eq!(resp.status, 403);
    let resp = nginx.get("/wss", &[("Cookie", "AUTH=..%2F..%2Fetc%2Fpasswd")]);
    assert_eq!(resp.status, 403);
}

#[test]
fn a_symlink_or_directory_in_the_token_dir_is_not_a_token() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    nginx.prefix.add_token("real");
    std::os::unix::fs::symlink(
        nginx.prefix.tokens().join("real"),
        nginx.prefix.tokens().join("link"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", nginx.prefix.tokens().join("passwd")).unwrap();
    fs::create_dir(nginx.prefix.tokens().join("adir")).unwrap();
    for t in ["link", "passwd", "adir"] {
        assert_eq!(
            nginx
                .get("/wss", &[("Cookie", &format!("AUTH={t}"))])
                .status,
            403,
            "{t}"
        );
    }
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=real")]).status, 200);
}

#[test]
fn cookie_is_found_among_others_and_in_a_second_cookie_header() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    nginx.prefix.add_token("tok123");
    let among = [("Cookie", "theme=dark; auth=nope; AUTH=tok123; lang=en")];
    let mut ws = nginx.ws("/wss", &among).expect("among others");
    assert_eq!(roundtrip(&mut ws, "x"), "x");
    let second = [("Cookie", "theme=dark; lang=en"), ("Cookie", "AUTH=tok123")];
    let mut ws = nginx.ws("/wss", &second).expect("second Cookie header");
    assert_eq!(roundtrip(&mut ws, "y"), "y");
    // The first AUTH decides, even when a later one would be valid.
    let first_wins = [("Cookie", "AUTH=bogus"), ("Cookie", "AUTH=tok123")];
    assert_eq!(nginx.ws("/wss", &first_wins).err(), Some(403));
}

#[test]
fn custom_cookie_name_is_matched_exactly() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "wcs_token_auth_cookie wcs_session;");
    nginx.prefix.add_token("t1");
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=t1")]).status, 403);
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "WCS_SESSION=t1")]).status,
        403
    );
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "wcs_session=t1")]).status,
        200
    );
}

#[test]
fn revocation_is_enforced_within_cache_ttl_and_new_tokens_work_at_once() {
    let mock = MockWcs::start(false).unwrap();
    // Not a whole number of seconds: the cache must keep time in milliseconds.
    let nginx = start(&mock, "wcs_token_auth_cache_ttl 1500ms;", "");
    let c = [("Cookie", "AUTH=fresh")];
    assert_eq!(nginx.get("/wss", &c).status, 403, "not created yet");
    nginx.prefix.add_token("fresh");
    assert_eq!(
        nginx.get("/wss", &c).status,
        200,
        "accepted on the very next request"
    );
    nginx.prefix.remove_token("fresh");
    assert_eq!(nginx.get("/wss", &c).status, 200, "still cached");
    sleep(Duration::from_millis(1700));
    assert_eq!(
        nginx.get("/wss", &c).status,
        403,
        "refused once cache_ttl has passed"
    );
    nginx.prefix.add_token("fresh");
    assert_eq!(
        nginx.get("/wss", &c).status,
        200,
        "re-created: accepted at once"
    );
}

#[test]
fn cache_ttl_zero_disables_the_cache() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "wcs_token_auth_cache_ttl 0;", "");
    nginx.prefix.add_token("t");
    let c = [("Cookie", "AUTH=t")];
    assert_eq!(nginx.get("/wss", &c).status, 200);
    nginx.prefix.remove_token("t");
    assert_eq!(nginx.get("/wss", &c).status, 403, "no caching at all");
}

#[test]
fn cached_answer_is_used_within_ttl() {
    // The cache must actually work: with a long ttl a removed token still passes for a while.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "wcs_token_auth_cache_ttl 1h;", "");
    nginx.prefix.add_token("t");
    let c = [("Cookie", "AUTH=t")];
    assert_eq!(nginx.get("/wss", &c).status, 200);
    nginx.prefix.remove_token("t");
    assert_eq!(nginx.get("/wss", &c).status, 200);
}

#[test]
fn max_age_expires_old_tokens_and_touch_renews_them() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "wcs_token_auth_max_age 1h;");
    nginx
        .prefix
        .add_token_aged("old", Duration::from_secs(2 * 3600));
    nginx
        .prefix
        .add_token_aged("young", Duration::from_secs(60));
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=young")]).status, 200);
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=old")]).status, 403);
    let lines = nginx.access_lines(2);
    assert!(lines[1].ends_with("403 status=expired_token"), "{lines:?}");
    assert!(nginx
        .prefix
        .error_log()
        .contains("expired token in cookie \"AUTH\""));
    nginx.prefix.add_token("old"); // rewriting the file is what `touch` does to mtime
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "AUTH=old")]).status,
        200,
        "renewed"
    );
}

#[test]
fn off_in_a_nested_location_switches_the_check_off() {
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        r#"wcs_token_auth tokens;
        location / {{
            root html;
            location /public/ {{ wcs_token_auth off; proxy_pass {u}; }}
        }}
        location /api/ {{ proxy_pass {u}; }}"#,
        u = mock.url()
    );
    let nginx = Nginx::start("", &server);
    assert_eq!(
        nginx.get("/index.html", &[]).status,
        403,
        "inherited from server"
    );
    assert_eq!(
        nginx.get("/api/x", &[]).status,
        403,
        "inherited from server"
    );
    let resp = nginx.get("/public/x", &[("X-Client-IP", "6.6.6.6")]);
    assert_eq!(resp.status, 200);
    let lines = nginx.access_lines(3);
    assert!(
        lines[2].ends_with("200 status="),
        "empty where the module is off: {lines:?}"
    );
    assert_eq!(
        header_values(&resp.body, "X-Client-IP"),
        ["6.6.6.6"],
        "untouched where off"
    );
}

#[test]
fn missing_token_directory_is_403_and_unreadable_is_500() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    let c = [("Cookie", "AUTH=t")];
    fs::set_permissions(nginx.prefix.tokens(), fs::Permissions::from_mode(0o000)).unwrap();
    let r = nginx.get("/wss", &c);
    fs::set_permissions(nginx.prefix.tokens(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(r.status, 500);
    let log = nginx.prefix.error_log();
    assert!(
        log.lines().any(|l| l.contains("[crit]")
            && l.contains("cannot read token directory")
            && l.contains("(13: Permission denied)")),
        "{log}"
    );

    fs::remove_dir(nginx.prefix.tokens()).unwrap();
    assert_eq!(nginx.get("/wss", &c).status, 403);
    let log = nginx.prefix.error_log();
    assert!(
        log.lines().any(|l| l.contains("[error]")
            && l.contains("does not exist")
            && l.contains("(2: No such file or directory)")),
        "{log}"
    );
    let lines = nginx.access_lines(2);
    assert!(
        lines[0].ends_with("500 status=error") && lines[1].ends_with("403 status=error"),
        "{lines:?}"
    );

    // Recovers without a reload once the directory is back.
    fs::create_dir(nginx.prefix.tokens()).unwrap();
    nginx.prefix.add_token("t");
    assert_eq!(nginx.get("/wss", &c).status, 200);
    nginx.assert_no_crash();
}

#[test]
fn error_page_403_works_and_keeps_the_status_variable() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start(
        "",
        &format!(
            "error_page 403 /denied.html;\nlocation = /denied.html {{ root html; internal; }}\n{}",
            wss_location(&mock.url(), "")
        ),
    );
    fs::write(nginx.prefix.path().join("html/denied.html"), "go away\n").unwrap();
    let r = nginx.get("/wss", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "go away\n");
    let lines = nginx.access_lines(1);
    assert!(lines[0].ends_with("403 status=no_token"), "{lines:?}");
}

#[test]
fn satisfy_any_lets_allow_rules_combine_with_the_token_check() {
    let mock = MockWcs::start(false).unwrap();
    // The client is 127.0.0.1: `allow` grants what the token check refuses.
    let nginx = start(&mock, "", "satisfy any; allow 127.0.0.1; deny all;");
    let r = nginx.get("/wss", &[("X-Client-IP", "6.6.6.6")]);
    assert_eq!(
        r.status, 200,
        "the module returned 403 without finalizing the request"
    );
    assert_eq!(
        header_values(&r.body, "X-Client-IP"),
        ["127.0.0.1"],
        "{}",
        r.body
    );
    assert!(nginx.access_lines(1)[0].ends_with("200 status=no_token"));

    let nginx = start(&mock, "", "satisfy any; allow 127.0.0.2; deny all;");
    assert_eq!(nginx.get("/wss", &[]).status, 403);
    nginx.prefix.add_token("t");
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=t")]).status, 200);
}

#[test]
fn cache_size_bounds_the_entries_per_worker() {
    // One entry, a long ttl: caching t2 evicts t1, so t1's removal shows at once while
    // t2's does not.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(
        &mock,
        "wcs_token_auth_cache_size 1; wcs_token_auth_cache_ttl 1h;",
        "",
    );
    nginx.prefix.add_token("t1");
    nginx.prefix.add_token("t2");
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=t1")]).status, 200);
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=t2")]).status, 200);
    nginx.prefix.remove_token("t1");
    nginx.prefix.remove_token("t2");
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "AUTH=t1")]).status,
        403,
        "evicted"
    );
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "AUTH=t2")]).status,
        200,
        "still cached"
    );
}

#[test]
fn settings_are_inherited_from_the_http_level() {
    let mock = MockWcs::start(false).unwrap();
    let http = "wcs_token_auth tokens; wcs_token_auth_cookie SID; wcs_token_auth_origins https://app.example.com;";
    let nginx = Nginx::start(
        http,
        &format!("location /wss {{ proxy_pass {}; }}", mock.url()),
    );
    nginx.prefix.add_token("t");
    assert_eq!(nginx.get("/wss", &[("Cookie", "AUTH=t")]).status, 403);
    assert_eq!(nginx.get("/wss", &[("Cookie", "SID=t")]).status, 200);
    let evil = [("Cookie", "SID=t"), ("Origin", "https://evil.example")];
    assert_eq!(nginx.get("/wss", &evil).status, 403);
}

#[test]
fn token_length_limit_is_255_bytes() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    let longest = "a".repeat(255);
    nginx.prefix.add_token(&longest);
    assert_eq!(
        nginx
            .get("/wss", &[("Cookie", &format!("AUTH={longest}"))])
            .status,
        200
    );
    let too_long = "a".repeat(256);
    assert_eq!(
        nginx
            .get("/wss", &[("Cookie", &format!("AUTH={too_long}"))])
            .status,
        403
    );
    assert!(nginx.access_lines(2)[1].ends_with("403 status=malformed_token"));
}
