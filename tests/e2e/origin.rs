//! The Origin rules, end to end.

use crate::common::*;

fn origin_status(nginx: &Nginx, origin: Option<&str>) -> u16 {
    let mut headers = vec![("Cookie", "AUTH=tok")];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    match nginx.ws("/wss", &headers) {
        Ok(_) => 101,
        Err(s) => s,
    }
}

fn start(mock: &MockWcs, extra: &str) -> Nginx {
    let nginx = Nginx::start("", &wss_location(&mock.url(), extra));
    nginx.prefix.add_token("tok");
    nginx
}

#[test]
fn allow_list_matches_exact_and_wildcard_entries() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(
        &mock,
        "wcs_token_auth_origins https://app.example.com https://*.example.org:8443;",
    );
    let cases = [
        ("https://app.example.com", 101),
        ("HTTPS://APP.EXAMPLE.COM", 101),
        ("https://app.example.com:443", 101),
        ("http://app.example.com", 403),
        ("https://app.example.com:8443", 403),
        ("https://evil.com", 403),
        ("https://app.example.com.evil.com", 403),
        ("https://a.example.org:8443", 101),
        ("https://a.b.example.org:8443", 101),
        ("https://example.org:8443", 403),
        ("https://badexample.org:8443", 403),
        ("https://a.example.org", 403),
        ("null", 403),
        ("", 403),
    ];
    for (origin, want) in cases {
        assert_eq!(origin_status(&nginx, Some(origin)), want, "{origin}");
    }
    assert_eq!(
        origin_status(&nginx, None),
        101,
        "no Origin passes without require_origin"
    );
    let log = nginx.prefix.error_log();
    assert!(
        log.contains("origin \"https://evil.com\" is not allowed"),
        "{log}"
    );
    assert!(nginx
        .prefix
        .access_log()
        .contains("403 status=origin_denied"));
}

#[test]
fn unset_means_same_origin_as_the_host_header() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "");
    let port = nginx.port;
    // The client sends Host: 127.0.0.1:PORT.
    assert_eq!(
        origin_status(&nginx, Some(&format!("http://127.0.0.1:{port}"))),
        101
    );
    assert_eq!(
        origin_status(&nginx, Some(&format!("https://127.0.0.1:{port}"))),
        101
    );
    assert_eq!(
        origin_status(&nginx, Some(&format!("http://127.0.0.1:{}", port + 1))),
        403
    );
    assert_eq!(origin_status(&nginx, Some("http://127.0.0.1")), 403);
    assert_eq!(origin_status(&nginx, Some("https://evil.example")), 403);
    assert_eq!(origin_status(&nginx, Some("null")), 403);
    // Default ports are dropped on both sides.
    let r = get_with_host(&nginx, "wcs.example.com:443", "https://wcs.example.com");
    assert_eq!(r, 200);
    let r = get_with_host(&nginx, "wcs.example.com", "https://wcs.example.com:443");
    assert_eq!(r, 200);
    let r = get_with_host(&nginx, "wcs.example.com", "https://wcs.example.com:8443");
    assert_eq!(r, 403);
}

fn get_with_host(nginx: &Nginx, host: &str, origin: &str) -> u16 {
    let req = format!(
        "GET /wss HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nCookie: AUTH=tok\r\nConnection: close\r\n\r\n"
    );
    raw(nginx.port, req.as_bytes()).status
}

#[test]
fn any_switches_the_check_off() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "wcs_token_auth_origins any;");
    assert_eq!(origin_status(&nginx, Some("https://evil.example")), 101);
    assert_eq!(origin_status(&nginx, Some("null")), 101);
    assert_eq!(origin_status(&nginx, None), 101);
}

#[test]
fn require_origin_refuses_requests_without_one() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(
        &mock,
        "wcs_token_auth_origins https://app.example.com;\nwcs_token_auth_require_origin on;",
    );
    assert_eq!(origin_status(&nginx, None), 403);
    assert!(nginx.prefix.error_log().contains("no Origin header"));
    assert_eq!(origin_status(&nginx, Some("https://app.example.com")), 101);
}

#[test]
fn origin_is_checked_before_the_token() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "wcs_token_auth_origins https://app.example.com;");
    let r = nginx.get(
        "/wss",
        &[
            ("Origin", "https://evil.example"),
            ("Cookie", "AUTH=../../etc/passwd"),
        ],
    );
    assert_eq!(r.status, 403);
    assert!(nginx.access_lines(1)[0].ends_with("status=origin_denied"));
}

#[test]
fn several_origin_headers_are_refused() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "wcs_token_auth_origins https://app.example.com;");
    let h = [
        ("Cookie", "AUTH=tok"),
        ("Origin", "https://app.example.com"),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(nginx.get("/wss", &h).status, 403);
    assert!(nginx.prefix.error_log().contains("several Origin headers"));
}

/// A raw request to /wss with a valid token, `Connection: close` and the given lines.
fn raw_status(nginx: &Nginx, request_line: &str, lines: &[&str]) -> u16 {
    let mut req = format!("{request_line}\r\nCookie: AUTH=tok\r\nConnection: close\r\n");
    for l in lines {
        req.push_str(&format!("{l}\r\n"));
    }
    req.push_str("\r\n");
    raw(nginx.port, req.as_bytes()).status
}

#[test]
fn same_origin_compares_with_the_host_of_an_absolute_form_request_line() {
    // RFC 9112, 3.2.2: nginx serves the request line's host and ignores Host.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "");
    let port = nginx.port;
    let line = format!("GET http://localhost:{port}/wss HTTP/1.1");
    let ours = format!("Origin: http://localhost:{port}");
    assert_eq!(
        raw_status(
            &nginx,
            &line,
            &["Host: evil.com", "Origin: http://evil.com"]
        ),
        403
    );
    assert_eq!(raw_status(&nginx, &line, &["Host: evil.com", &ours]), 200);
    let other_port = format!("Origin: http://localhost:{}", port + 1);
    assert_eq!(
        raw_status(&nginx, &line, &["Host: evil.com", &other_port]),
        403
    );
    // The port, too, is the request line's; without one, the scheme's default.
    let no_port = "GET http://localhost/wss HTTP/1.1";
    let host = format!("Host: localhost:{port}");
    assert_eq!(raw_status(&nginx, no_port, &[&host, &ours]), 403);
    assert_eq!(
        raw_status(&nginx, no_port, &[&host, "Origin: http://localhost"]),
        200
    );
    // HTTP/1.0 needs no Host: the request line names the host.
    let line_10 = format!("GET http://LocalHost:{port}/wss HTTP/1.0");
    assert_eq!(raw_status(&nginx, &line_10, &[&ours]), 200);
    assert_eq!(
        raw_status(&nginx, &line_10, &["Origin: http://evil.com"]),
        403
    );
    // Without any host, an Origin cannot be the same.
    assert_eq!(raw_status(&nginx, "GET /wss HTTP/1.0", &[&ours]), 403);
    nginx.assert_no_crash();
}
