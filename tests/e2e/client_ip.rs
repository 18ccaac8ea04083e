//! X-Client-IP reaches WCS exactly once, holding the address nginx sees; whatever the client
//! sent under that name, in any letter case, is gone.

use crate::common::*;

fn start(mock: &MockWcs, http: &str, extra: &str) -> Nginx {
    let nginx = Nginx::start(http, &wss_location(&mock.url(), extra));
    nginx.prefix.add_token("tok");
    nginx
}

#[test]
fn websocket_upstream_sees_one_x_client_ip_with_the_real_address() {
    let mock = MockWcs::start(true).unwrap();
    let nginx = start(&mock, "", "");
    let headers = [
        ("Cookie", "AUTH=tok"),
        ("X-Client-IP", "6.6.6.6"),
        ("x-client-ip", "7.7.7.7"),
        ("X-CLIENT-IP", "8.8.8.8"),
    ];
    let mut ws = nginx.ws("/wss", &headers).expect("upgrade");
    let report = roundtrip(&mut ws, HEADERS_REQUEST);
    assert_eq!(
        header_values(&report, "X-Client-IP"),
        ["127.0.0.1"],
        "{report}"
    );
}

#[test]
fn spoofed_copies_are_removed_wherever_they_sit_in_the_header_list() {
    // nginx keeps request headers in a list of 20-element parts: put spoofed copies first,
    // last, at part boundaries and in the middle of later parts.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    for layout in [
        vec![0usize],
        vec![0, 1, 2],
        vec![17, 18, 19, 20, 21],
        vec![5, 39, 40, 41, 60],
        vec![44],
    ] {
        let mut req = format!(
            "GET /wss HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            nginx.port
        );
        // Host and Connection are elements 0 and 1.
        for i in 2..70 {
            if layout.contains(&i) {
                let name = if i % 2 == 0 {
                    "X-Client-IP"
                } else {
                    "x-CLIENT-ip"
                };
                req.push_str(&format!("{name}: 6.6.6.{i}\r\n"));
            } else if i == 30 {
                req.push_str("Cookie: AUTH=tok\r\n");
            } else {
                req.push_str(&format!("X-Filler-{i}: {i}\r\n"));
            }
        }
        req.push_str("\r\n");
        let r = raw(nginx.port, req.as_bytes());
        assert_eq!(r.status, 200, "{layout:?}");
        assert_eq!(
            header_values(&r.body, "X-Client-IP"),
            ["127.0.0.1"],
            "{layout:?}: {}",
            r.body
        );
        // Every other header arrived intact and in order.
        let fillers: Vec<_> = reported_headers(&r.body)
            .into_iter()
            .filter(|(k, _)| k.starts_with("X-Filler-"))
            .map(|(k, _)| k)
            .collect();
        let want: Vec<_> = (2..70)
            .filter(|i| !layout.contains(i) && *i != 30)
            .map(|i| format!("X-Filler-{i}"))
            .collect();
        assert_eq!(fillers, want, "{layout:?}");
    }
    nginx.assert_no_crash();
}

#[test]
fn client_address_is_the_one_realip_gives() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(
        &mock,
        "set_real_ip_from 127.0.0.1;\nreal_ip_header X-Forwarded-For;",
        "",
    );
    let r = nginx.get(
        "/wss",
        &[
            ("Cookie", "AUTH=tok"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Client-IP", "6.6.6.6"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        header_values(&r.body, "X-Client-IP"),
        ["203.0.113.9"],
        "{}",
        r.body
    );
}

#[test]
fn explicit_proxy_set_header_still_wins() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "proxy_set_header X-Client-IP \"from-config\";");
    let r = nginx.get(
        "/wss",
        &[("Cookie", "AUTH=tok"), ("X-Client-IP", "6.6.6.6")],
    );
    assert_eq!(
        header_values(&r.body, "X-Client-IP"),
        ["from-config"],
        "{} {}\n{}",
        r.status,
        r.head,
        r.body
    );
}

#[test]
fn header_name_is_configurable_and_can_be_switched_off() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "wcs_token_auth_client_ip_header X-WCS-Client;");
    let r = nginx.get(
        "/wss",
        &[
            ("Cookie", "AUTH=tok"),
            ("x-wcs-client", "6.6.6.6"),
            ("X-Client-IP", "1.1.1.1"),
        ],
    );
    assert_eq!(
        header_values(&r.body, "X-WCS-Client"),
        ["127.0.0.1"],
        "{}",
        r.body
    );
    assert_eq!(
        header_values(&r.body, "X-Client-IP"),
        ["1.1.1.1"],
        "only the configured name is managed"
    );

    let nginx = start(&mock, "", "wcs_token_auth_client_ip_header off;");
    let r = nginx.get("/wss", &[("Cookie", "AUTH=tok")]);
    assert!(
        header_values(&r.body, "X-Client-IP").is_empty(),
        "{}",
        r.body
    );
}

#[test]
fn other_headers_nginx_tracks_survive_the_removal() {
    // Host and Cookie are referenced from r->headers_in; unlinking neighbours must not break them.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(
        &mock,
        "",
        "proxy_set_header Host $host; proxy_set_header X-Seen-Cookie $http_cookie;",
    );
    let req = "GET /wss HTTP/1.1\r\nX-Client-IP: 1.1.1.1\r\nHost: wcs.example.com\r\nX-Client-IP: 2.2.2.2\r\nCookie: AUTH=tok\r\nX-Client-IP: 3.3.3.3\r\nConnection: close\r\n\r\n";
    let r = raw(nginx.port, req.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(header_values(&r.body, "Host"), ["wcs.example.com"]);
    assert_eq!(header_values(&r.body, "X-Seen-Cookie"), ["AUTH=tok"]);
    assert_eq!(header_values(&r.body, "X-Client-IP"), ["127.0.0.1"]);
}

#[test]
fn an_internal_redirect_still_leaves_exactly_one() {
    // try_files jumps to a named location, so the access phase, and the module, run twice.
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        r#"wcs_token_auth tokens;
        location /wss {{ try_files /nonexistent @wcs; }}
        location @wcs {{ proxy_pass {}; }}"#,
        mock.url()
    );
    let nginx = Nginx::start("", &server);
    nginx.prefix.add_token("tok");
    let headers = [
        ("Cookie", "AUTH=tok"),
        ("X-Client-IP", "6.6.6.6"),
        ("x-client-ip", "7.7.7.7"),
    ];
    let r = nginx.get("/wss", &headers);
    assert_eq!(r.status, 200);
    assert_eq!(
        header_values(&r.body, "X-Client-IP"),
        ["127.0.0.1"],
        "{}",
        r.body
    );
}

#[test]
fn an_http_0_9_request_is_refused_for_its_missing_token() {
    // HTTP/0.9 carries no headers and nginx leaves its header list all zero: there is nothing
    // to replace, and the request is refused like any other without a token, not failed.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "", "");
    let r = raw(nginx.port, b"GET /wss\r\n");
    let answer = format!("{}{}", r.head, r.body);
    assert!(answer.contains("403 Forbidden"), "{answer}");
    let log = nginx.prefix.error_log();
    assert!(log.contains("no token in cookie \"AUTH\""), "{log}");
    nginx.assert_no_crash();
}

#[test]
fn with_underscores_in_headers_every_spelling_of_the_name_is_removed() {
    // CGI-style consumers and $http_x_client_ip read X_Client_IP as X-Client-IP.
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start("underscores_in_headers on;", &wss_location(&mock.url(), ""));
    nginx.prefix.add_token("tok");
    let r = nginx.get(
        "/wss",
        &[
            ("X_Client_IP", "6.6.6.6"),
            ("x-client_ip", "7.7.7.7"),
            ("Cookie", "AUTH=tok"),
            ("X_CLIENT-IP", "8.8.8.8"),
            ("X-Client-IPs", "9.9.9.9"),
        ],
    );
    assert_eq!(r.status, 200);
    let spellings: Vec<_> = reported_headers(&r.body)
        .into_iter()
        .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case("x-client-ip"))
        .collect();
    assert_eq!(
        spellings,
        [("X-Client-IP".to_string(), "127.0.0.1".to_string())],
        "{}",
        r.body
    );
    assert_eq!(
        header_values(&r.body, "X-Client-IPs"),
        ["9.9.9.9"],
        "other names stay"
    );
}
