//! The token check, the Origin rules and the client-address header over HTTP/2: h2c (prior
//! knowledge) and h2 over TLS. HTTP/2 splits `Cookie` into crumbs, one field each, which nginx
//! joins; header names are lower case on the wire (nginx refuses others), so the client's
//! copies of X-Client-IP differ by `-` and `_` only.

use crate::common::*;

struct H2 {
    nginx: Nginx,
    h2c: u16,
    tls: u16,
    _mock: MockWcs,
}

fn start() -> H2 {
    let mock = MockWcs::start(false).unwrap();
    let prefix = Prefix::new();
    let conf = prefix.path().join("conf");
    mock_wcs::write_self_signed(&conf.join("cert.pem"), &conf.join("key.pem")).unwrap();
    let (h2c, tls) = (free_port(), free_port());
    let wss = wss_location(&mock.url(), "");
    let http = format!(
        r#"underscores_in_headers on;
    server {{ listen 127.0.0.1:{h2c} http2; server_name localhost; {wss} }}
    server {{
        listen 127.0.0.1:{tls} ssl http2; server_name localhost;
        ssl_certificate cert.pem; ssl_certificate_key key.pem;
        {wss}
    }}"#
    );
    let nginx = Nginx::start_in(prefix, &http, "");
    nginx.prefix.add_token("tok");
    H2 {
        nginx,
        h2c,
        tls,
        _mock: mock,
    }
}

/// The headers of a report that CGI reads as `HTTP_X_CLIENT_IP`.
fn client_ip_fields(report: &str) -> Vec<(String, String)> {
    reported_headers(report)
        .into_iter()
        .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case("x-client-ip"))
        .collect()
}

fn check(h: &H2, tls: bool) {
    let port = if tls { h.tls } else { h.h2c };
    let scheme = if tls { "https" } else { "http" };
    let authority = format!("localhost:{port}");
    let ours = format!("{scheme}://localhost:{port}");
    let get = |headers: &[(&str, &str)]| h2::get(port, tls, &authority, "/wss", headers);

    assert_eq!(get(&[]).status, 403, "no cookie");
    let crumbs = [
        ("cookie", "a=b"),
        ("cookie", "AUTH=tok"),
        ("cookie", "c=d"),
        ("x-client-ip", "6.6.6.6"),
        ("x-client-ip", "7.7.7.7"),
        ("x_client-ip", "8.8.8.8"),
        ("origin", ours.as_str()),
    ];
    let r = get(&crumbs);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(
        client_ip_fields(&r.body),
        [("X-Client-IP".to_string(), "127.0.0.1".to_string())],
        "{}",
        r.body
    );
    assert_eq!(
        header_values(&r.body, "cookie"),
        ["a=b; AUTH=tok; c=d"],
        "{}",
        r.body
    );

    // The first AUTH crumb decides, as the first AUTH cookie does over HTTP/1.1.
    let first = get(&[("cookie", "AUTH=nope"), ("cookie", "AUTH=tok")]);
    assert_eq!(first.status, 403);
    let last = get(&[("cookie", "x=y"), ("cookie", "AUTH=tok")]);
    assert_eq!(last.status, 200);

    // Same origin is :authority's host and port.
    let other_port = format!("{scheme}://localhost:{}", port + 1);
    for (origin, want) in [
        (ours.as_str(), 200),
        ("https://evil.example", 403),
        (other_port.as_str(), 403),
        ("null", 403),
    ] {
        let r = get(&[("cookie", "AUTH=tok"), ("origin", origin)]);
        assert_eq!(r.status, want, "{origin}");
    }
}

#[test]
fn h2c_checks_token_origin_and_client_ip() {
    let h = start();
    check(&h, false);
    let log = h.nginx.prefix.error_log();
    assert_eq!(
        log.matches("wcs_token_auth:").count(),
        5,
        "one line per refusal:\n{log}"
    );
    h.nginx.assert_no_crash();
}

#[test]
fn h2_over_tls_checks_token_origin_and_client_ip() {
    let h = start();
    check(&h, true);
    let lines = h.nginx.access_lines(9);
    assert!(
        lines[0].contains("HTTP/2.0\" 403 status=no_token"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("HTTP/2.0\" 200 status=allowed"),
        "{lines:?}"
    );
    assert!(lines[2].ends_with("403 status=unknown_token"), "{lines:?}");
    h.nginx.assert_no_crash();
}
