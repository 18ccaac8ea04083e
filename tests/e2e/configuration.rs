//! Directive parsing as `nginx -t` reports it, reloads, and the example configuration.

use std::fs;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

/// Runs `nginx -t` with `http` and `server` contents; returns (success, stderr).
fn nginx_t(http: &str, server: &str) -> (bool, String) {
    let prefix = Prefix::new();
    prefix.write_conf(free_port(), http, server);
    let out = prefix.test_conf();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(http: &str, server: &str, expect: &[&str]) {
    let (ok, stderr) = nginx_t(http, server);
    assert!(!ok, "nginx -t accepted:\n{http}\n{server}");
    assert!(stderr.contains("[emerg]"), "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
}

#[test]
fn valid_configuration_passes_nginx_t() {
    let http = "wcs_token_auth_cache_ttl 500ms; wcs_token_auth_cache_size 1;";
    let server = r#"wcs_token_auth tokens;
        wcs_token_auth_cookie AUTH;
        wcs_token_auth_origins https://a.example.com https://*.example.org:8443 http://[::1]:8080;
        wcs_token_auth_require_origin on;
        wcs_token_auth_client_ip_header X-Client-IP;
        wcs_token_auth_max_age 1h30m;
        location /a { wcs_token_auth off; wcs_token_auth_origins any; wcs_token_auth_max_age off; }
        location /b { wcs_token_auth /absolute/dir; wcs_token_auth_client_ip_header off; }"#;
    let (ok, stderr) = nginx_t(http, server);
    assert!(ok, "{stderr}");
}

#[test]
fn bad_values_fail_nginx_t_naming_the_directive_and_the_value() {
    let cases: [(&str, &str, &[&str]); 23] = [
        (
            "",
            "wcs_token_auth_cookie \"\";",
            &["invalid value \"\"", "\"wcs_token_auth_cookie\""],
        ),
        (
            "",
            "wcs_token_auth_cookie \"a b\";",
            &["invalid value \"a b\"", "\"wcs_token_auth_cookie\""],
        ),
        (
            "wcs_token_auth_cache_size 0;",
            "",
            &["invalid value \"0\"", "\"wcs_token_auth_cache_size\""],
        ),
        (
            "wcs_token_auth_cache_size lots;",
            "",
            &["invalid value \"lots\"", "\"wcs_token_auth_cache_size\""],
        ),
        (
            "wcs_token_auth_cache_ttl 1x;",
            "",
            &["invalid value \"1x\"", "\"wcs_token_auth_cache_ttl\""],
        ),
        (
            "",
            "wcs_token_auth_max_age soon;",
            &["invalid value \"soon\"", "\"wcs_token_auth_max_age\""],
        ),
        (
            "",
            "wcs_token_auth_max_age 500ms;",
            &["invalid value \"500ms\"", "\"wcs_token_auth_max_age\""],
        ),
        (
            "",
            "location / { wcs_token_auth_cache_size 10; }",
            &["\"wcs_token_auth_cache_size\" directive is not allowed here"],
        ),
        (
            "",
            "wcs_token_auth_cache_ttl 1s;",
            &["\"wcs_token_auth_cache_ttl\" directive is not allowed here"],
        ),
        (
            "",
            "wcs_token_auth_origins https://a.com/path;",
            &[
                "invalid value \"https://a.com/path\"",
                "\"wcs_token_auth_origins\"",
                "no path",
            ],
        ),
        (
            "",
            "wcs_token_auth_origins https://a.com:65536;",
            &["invalid value \"https://a.com:65536\"", "port"],
        ),
        (
            "",
            "wcs_token_auth_origins a.com;",
            &["invalid value \"a.com\"", "\"wcs_token_auth_origins\""],
        ),
        (
            "",
            "wcs_token_auth_origins any https://a.com;",
            &["invalid value \"any\"", "cannot be combined"],
        ),
        (
            "",
            "wcs_token_auth_require_origin maybe;",
            &[
                "invalid value \"maybe\"",
                "\"wcs_token_auth_require_origin\"",
            ],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header Host;",
            &[
                "invalid value \"Host\"",
                "\"wcs_token_auth_client_ip_header\"",
                "nginx itself parses",
            ],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header Origin;",
            &["invalid value \"Origin\"", "WebSocket handshake needs"],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header Sec-WebSocket-Key;",
            &[
                "invalid value \"Sec-WebSocket-Key\"",
                "WebSocket handshake needs",
            ],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header X-Forwarded-For;",
            &["invalid value \"X-Forwarded-For\"", "nginx itself parses"],
        ),
        // The request path removes `_` spellings too, so nginx -t refuses them alike.
        (
            "",
            "wcs_token_auth_client_ip_header X_Forwarded_For;",
            &[
                "invalid value \"X_Forwarded_For\"",
                "\"wcs_token_auth_client_ip_header\"",
                "nginx itself parses",
            ],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header content_LENGTH;",
            &["invalid value \"content_LENGTH\"", "nginx itself parses"],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header Sec_WebSocket_Key;",
            &[
                "invalid value \"Sec_WebSocket_Key\"",
                "WebSocket handshake needs",
            ],
        ),
        (
            "",
            "wcs_token_auth_client_ip_header \"X Client\";",
            &[
                "invalid value \"X Client\"",
                "\"wcs_token_auth_client_ip_header\"",
            ],
        ),
        (
            "",
            "wcs_token_auth a; wcs_token_auth b;",
            &["\"wcs_token_auth\" directive is duplicate"],
        ),
    ];
    for (http, server, expect) in cases {
        assert_refused(http, server, expect);
    }
}

#[test]
fn reload_keeps_the_module_working_and_open_websockets_alive() {
    let mock = MockWcs::start(false).unwrap();
    let mut nginx = Nginx::start("", &wss_location(&mock.url(), ""));
    nginx.prefix.add_token("tok");
    let mut open_ws = nginx
        .ws("/wss", &[("Cookie", "AUTH=tok")])
        .expect("upgrade");
    assert_eq!(roundtrip(&mut open_ws, "before"), "before");

    nginx.reload(
        "",
        &wss_location(&mock.url(), "wcs_token_auth_cookie SESSION;"),
    );
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "AUTH=tok")]).status,
        403,
        "new config in force"
    );
    assert_eq!(nginx.get("/wss", &[("Cookie", "SESSION=tok")]).status, 200);
    let mut ws = nginx
        .ws("/wss", &[("Cookie", "SESSION=tok")])
        .expect("upgrade after reload");
    assert_eq!(roundtrip(&mut ws, "after"), "after");
    assert_eq!(roundtrip(&mut open_ws, "still open"), "still open");

    nginx.reload("", &wss_location(&mock.url(), ""));
    assert_eq!(
        nginx.get("/wss", &[("Cookie", "AUTH=tok")]).status,
        200,
        "second reload"
    );
    nginx.assert_no_crash();
}

/// The shipped example, with its Debian paths pointed into a test prefix.
fn example_conf(prefix: &Prefix, port: u16, upstream: &str) -> String {
    let p = prefix.path().display().to_string();
    let conf = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/nginx-conf/nginx.conf"
    ))
    .unwrap();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user nobody nogroup;"
    } else {
        ""
    };
    conf.replace("/usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so", &module_so().display().to_string())
        .replace("user www-data;", user)
        .replace("worker_processes auto;", "worker_processes 1;\ndaemon off;")
        .replace("/run/nginx.pid", &format!("{p}/logs/nginx.pid"))
        .replace("/var/log/nginx/", &format!("{p}/logs/"))
        .replace("/etc/nginx/", &format!("{p}/conf/"))
        .replace("/etc/pki/tls/yourdomain/", &format!("{p}/conf/"))
        .replace("/var/lib/nginx/tokens", &format!("{p}/tokens"))
        .replace("/usr/share/nginx/html", &format!("{p}/html"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("https://localhost:8443", upstream)
        .replace("http {", &format!(
            "http {{\n    client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy;\n    fastcgi_temp_path {p}/tmp/fastcgi; uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;"
        ))
}

#[test]
fn example_configuration_passes_nginx_t_and_serves_wss() {
    let mock = MockWcs::start(true).unwrap();
    let prefix = Prefix::new();
    let conf_dir = prefix.path().join("conf");
    mock_wcs::write_self_signed(
        &conf_dir.join("yourdomain.crt"),
        &conf_dir.join("yourdomain.key"),
    )
    .unwrap();
    fs::write(conf_dir.join("mime.types"), "types { text/html html; }\n").unwrap();
    let port = free_port();
    fs::write(
        conf_dir.join("nginx.conf"),
        example_conf(&prefix, port, &mock.url()),
    )
    .unwrap();
    let out = prefix.test_conf();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = std::process::Command::new(nginx_bin())
        .arg("-p")
        .arg(prefix.path())
        .arg("-e")
        .arg(prefix.path().join("logs/error.log"))
        .arg("-c")
        .arg(conf_dir.join("nginx.conf"))
        .spawn()
        .unwrap();
    let stop = scopeguard(move || {
        // SAFETY: kill with our child's pid and a valid signal number.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    });
    wait_port(port);
    prefix.add_token("tok");

    let origin = "https://app.yourdomain.com";
    let mut ws =
        wss_connect(port, &[("Cookie", "AUTH=tok"), ("Origin", origin)]).expect("wss upgrade");
    assert_eq!(roundtrip_tls(&mut ws, "over tls"), "over tls");
    assert_eq!(
        wss_connect(
            port,
            &[("Cookie", "AUTH=tok"), ("Origin", "https://evil.com")]
        )
        .err(),
        Some(403)
    );
    assert_eq!(
        wss_connect(
            port,
            &[
                ("Cookie", "AUTH=../../../../etc/passwd"),
                ("Origin", origin)
            ]
        )
        .err(),
        Some(403)
    );
    drop(ws);
    // nginx logs the upgraded request only once it sees the WebSocket close: wait for that
    // before stopping it, or a fast shutdown can lose the line.
    let access_log = prefix.path().join("logs/access.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut access = String::new();
    while std::time::Instant::now() < deadline {
        access = fs::read_to_string(&access_log).unwrap_or_default();
        if access.contains("wcs_auth=allowed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stop);
    assert!(
        access.contains("wcs_auth=allowed")
            && access.contains("wcs_auth=origin_denied")
            && access.contains("wcs_auth=malformed_token"),
        "{access}"
    );
}

struct Guard<F: FnOnce()>(Option<F>);
impl<F: FnOnce()> Drop for Guard<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
fn scopeguard<F: FnOnce()>(f: F) -> Guard<F> {
    Guard(Some(f))
}

fn wait_port(port: u16) {
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nginx did not listen on {port}");
}

type TlsWs = tungstenite::WebSocket<openssl::ssl::SslStream<TcpStream>>;

/// A browser-like `wss://` client that trusts the test's self-signed certificate.
fn wss_connect(port: u16, headers: &[(&str, &str)]) -> Result<TlsWs, u16> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://localhost:{port}/wss")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name: tungstenite::http::HeaderName = k.parse().unwrap();
        req.headers_mut().append(name, v.parse().unwrap());
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut ctx = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    ctx.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let tls = ctx.build().connect("localhost", tcp).unwrap();
    match tungstenite::client::client(req, tls) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    }
}

fn roundtrip_tls(ws: &mut TlsWs, text: &str) -> String {
    ws.send(tungstenite::Message::text(text)).unwrap();
    loop {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            return t.to_string();
        }
    }
}
