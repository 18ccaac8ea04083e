//! A protected location is protected however a request reaches it: as an `auth_request`
//! target, through `mirror` and SSI `include virtual` (subrequests, for which nginx runs no
//! access phase), and when another access handler grants first under `satisfy any`.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// The module's lines in the error log.
fn module_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("wcs_token_auth:"))
        .collect()
}

/// The headers of a report (a mock's, or a captured request head) that CGI reads as
/// `HTTP_X_CLIENT_IP`: any letter case, `-` or `_`.
fn client_ip_fields(report: &str) -> Vec<String> {
    report
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case("x-client-ip"))
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// An upstream that answers every request with an empty 200 and hands over its head.
fn capturing_upstream() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&head).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn an_auth_request_target_decides_for_the_main_request() {
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        r#"location /api {{ auth_request /tokencheck; proxy_pass {}; }}
        location = /tokencheck {{ internal; wcs_token_auth tokens; empty_gif; }}"#,
        mock.url()
    );
    let nginx = Nginx::start("", &server);
    nginx.prefix.add_token("tok");
    let origin = format!("http://127.0.0.1:{}", nginx.port);

    assert_eq!(nginx.get("/api", &[]).status, 403);
    assert_eq!(nginx.get("/api", &[("Cookie", "AUTH=nope")]).status, 403);
    let evil = [("Cookie", "AUTH=tok"), ("Origin", "http://evil.example")];
    assert_eq!(nginx.get("/api", &evil).status, 403);
    let r = nginx.get("/api", &[("Cookie", "AUTH=tok"), ("Origin", &origin)]);
    assert_eq!(r.status, 200, "{}\n{}", r.head, nginx.prefix.error_log());

    // The subrequest shares r->variables with the main request: its log line has the reason.
    let lines = nginx.access_lines(4);
    for (line, want) in lines.iter().zip([
        "403 status=no_token",
        "403 status=unknown_token",
        "403 status=origin_denied",
        "200 status=allowed",
    ]) {
        assert!(line.ends_with(want), "{lines:?}");
    }
    let log = nginx.prefix.error_log();
    let refusals = module_lines(&log);
    assert_eq!(refusals.len(), 3, "one line per refusal:\n{log}");
    for line in &refusals {
        assert!(
            line.contains("[error]") && line.contains("/tokencheck"),
            "{line}"
        );
    }
    nginx.assert_no_crash();
}

#[test]
fn an_ssi_include_of_a_protected_location_is_decided_and_leaves_the_page_its_headers() {
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        r#"underscores_in_headers on;
        location = /page.html {{ ssi on; root html; }}
        location /plain {{ proxy_pass {url}; }}
        {wss}"#,
        url = mock.url(),
        wss = wss_location(&mock.url(), "")
    );
    let nginx = Nginx::start("", &server);
    nginx.prefix.add_token("tok");
    fs::write(
        nginx.prefix.path().join("html/page.html"),
        "<!--# include virtual=\"/wss\" -->|<!--# include virtual=\"/plain\" -->",
    )
    .unwrap();
    let spoofed = [("X-Client-IP", "6.6.6.6"), ("X_Client_IP", "7.7.7.7")];

    let r = nginx.get("/page.html", &spoofed);
    let (protected, _) = r.body.split_once('|').expect("two parts");
    assert!(protected.contains("403 Forbidden"), "{}", r.body);
    assert!(
        !protected.contains("GET /wss"),
        "the upstream was reached:\n{}",
        r.body
    );
    let log = nginx.prefix.error_log();
    assert_eq!(module_lines(&log).len(), 1, "{log}");
    assert!(log.contains("no token in cookie \"AUTH\""), "{log}");

    let mut headers = spoofed.to_vec();
    headers.push(("Cookie", "AUTH=tok"));
    let r = nginx.get("/page.html", &headers);
    let (protected, plain) = r.body.split_once('|').expect("two parts");
    assert_eq!(
        client_ip_fields(protected),
        ["X-Client-IP: 127.0.0.1"],
        "{}",
        r.body
    );
    // The page's own list is the client's, untouched: an unprotected include still sees it.
    assert_eq!(
        client_ip_fields(plain),
        ["X-Client-IP: 6.6.6.6", "X_Client_IP: 7.7.7.7"],
        "{}",
        r.body
    );
    let lines = nginx.access_lines(2);
    assert!(lines[0].ends_with("200 status=no_token"), "{lines:?}");
    assert!(lines[1].ends_with("200 status=allowed"), "{lines:?}");
    nginx.assert_no_crash();
}

#[test]
fn a_mirror_to_a_protected_location_is_decided_and_sends_one_client_ip() {
    let (upstream, requests) = capturing_upstream();
    let server = format!(
        r#"underscores_in_headers on;
        location = /index.html {{ mirror /mirrored; root html; }}
        location = /mirrored {{ internal; wcs_token_auth tokens; proxy_pass http://127.0.0.1:{upstream}; }}"#
    );
    let nginx = Nginx::start("", &server);
    nginx.prefix.add_token("tok");
    let spoofed = [("X-Client-IP", "6.6.6.6"), ("x-client_ip", "7.7.7.7")];

    let r = nginx.get("/index.html", &spoofed);
    assert_eq!(r.status, 200);
    wait_for("the mirror's refusal", || {
        !module_lines(&nginx.prefix.error_log()).is_empty()
    });
    assert!(
        requests.recv_timeout(Duration::from_millis(500)).is_err(),
        "a refused mirror reached its upstream"
    );

    let mut headers = spoofed.to_vec();
    headers.push(("Cookie", "AUTH=tok"));
    assert_eq!(nginx.get("/index.html", &headers).status, 200);
    let head = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("the mirror reaches its upstream");
    assert_eq!(
        client_ip_fields(&head),
        ["X-Client-IP: 127.0.0.1"],
        "{head}"
    );
    let log = nginx.prefix.error_log();
    assert_eq!(module_lines(&log).len(), 1, "{log}");
    nginx.assert_no_crash();
}

/// `tests/e2e/fixtures/grant_module.c`, built against the nginx tree the module was built
/// for: loaded after the module, its access handler runs first.
fn grant_module() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let Some(objs) = option_env!("WCS_NGINX_BUILD_DIR").map(PathBuf::from) else {
            panic!("the module was built without an nginx tree to build the test module in");
        };
        let src = if objs.join("../src/core").is_dir() {
            objs.join("..")
        } else {
            // The nginx-src crate configures out of tree; its build info names the source.
            let info = fs::read_to_string(objs.join("last-build-info")).expect("build info");
            PathBuf::from(info.split('"').nth(1).expect("source path"))
        };
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ngx_http_wcs_test_grant.so");
        let mut cc = Command::new("cc");
        cc.args(["-shared", "-fPIC", "-O", "-o"]).arg(&out);
        for dir in [
            "src/core",
            "src/event",
            "src/event/modules",
            "src/event/quic",
            "src/os/unix",
            "src/http",
            "src/http/modules",
            "src/http/v2",
        ] {
            cc.arg("-I").arg(src.join(dir));
        }
        cc.arg("-I").arg(&objs);
        cc.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/fixtures/grant_module.c"
        ));
        let built = cc.output().expect("run cc");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        out
    })
    .clone()
}

fn start_with_grant_module(server: &str) -> Nginx {
    let mut prefix = Prefix::new();
    prefix.main_extra = format!("load_module {};", grant_module().display());
    let nginx = Nginx::start_in(prefix, "", server);
    nginx.prefix.add_token("tok");
    nginx
}

#[test]
fn a_handler_that_grants_first_under_satisfy_any_still_leaves_one_client_ip() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start_with_grant_module(&wss_location(
        &mock.url(),
        "satisfy any; wcs_test_grant on;",
    ));
    let r = nginx.get("/wss", &[("X-Client-IP", "6.6.6.6")]);
    assert_eq!(r.status, 200, "the other handler grants");
    assert_eq!(
        client_ip_fields(&r.body),
        ["X-Client-IP: 127.0.0.1"],
        "{}",
        r.body
    );
    // The module's access handler never ran, so there is no decision to report.
    assert!(nginx.access_lines(1)[0].ends_with("200 status="));

    // With location-level realip, the address realip set in the preaccess phase.
    let mock = MockWcs::start(false).unwrap();
    let nginx = start_with_grant_module(&wss_location(
        &mock.url(),
        "satisfy any; wcs_test_grant on; set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;",
    ));
    let r = nginx.get(
        "/wss",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Client-IP", "6.6.6.6"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        client_ip_fields(&r.body),
        ["X-Client-IP: 203.0.113.9"],
        "{}",
        r.body
    );
    nginx.assert_no_crash();
}

#[test]
fn satisfy_any_with_auth_basic_or_allow_granting_leaves_one_client_ip() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start(
        "",
        &wss_location(
            &mock.url(),
            "satisfy any; auth_basic wcs; auth_basic_user_file htpasswd;",
        ),
    );
    fs::write(nginx.prefix.path().join("conf/htpasswd"), "u:{PLAIN}p\n").unwrap();
    let spoofed = ("X-Client-IP", "6.6.6.6");
    assert_eq!(nginx.get("/wss", &[spoofed]).status, 401);
    let r = nginx.get("/wss", &[("Authorization", "Basic dTpw"), spoofed]);
    assert_eq!(r.status, 200, "auth_basic grants");
    assert_eq!(
        client_ip_fields(&r.body),
        ["X-Client-IP: 127.0.0.1"],
        "{}",
        r.body
    );

    // realip at location level runs before every access handler: `allow` sees its address.
    let nginx = Nginx::start(
        "",
        &wss_location(
            &mock.url(),
            "satisfy any; allow 203.0.113.9; deny all; set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;",
        ),
    );
    let r = nginx.get("/wss", &[("X-Forwarded-For", "203.0.113.9"), spoofed]);
    assert_eq!(r.status, 200, "allow grants");
    assert_eq!(
        client_ip_fields(&r.body),
        ["X-Client-IP: 203.0.113.9"],
        "{}",
        r.body
    );
    let r = nginx.get("/wss", &[("X-Forwarded-For", "203.0.113.10"), spoofed]);
    assert_eq!(r.status, 403);
    nginx.assert_no_crash();
}
