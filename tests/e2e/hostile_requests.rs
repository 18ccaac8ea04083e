//! Hostile requests against real nginx: malformed, oversized, duplicated and folded headers,
//! odd bytes, old protocol versions, pipelining and clients that vanish mid-handshake.
//!
//! After every case the worker must still be the same process (no `exited on signal`), and a
//! valid request must still be accepted. A refusal by the module writes exactly one log line.
//! A second test throws randomly assembled requests and checks each answer against a model
//! of the rules (20 000; `WCS_LONG=1`: a million).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::traffic::{long_run, report, Rng};
use crate::common::*;

const TOKEN: &str = "valid-Token_0123456789.abc";

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 200 from behind the module.
    Allowed,
    /// A 403 from the module, and one log line containing this.
    Refused(&'static str),
    /// nginx's own refusal before the module runs (400, 494 shown as 400, 414, and 505 for
    /// an unknown HTTP version).
    Rejected,
    /// Any 4xx; if it is the module's 403, exactly one log line.
    Any4xx,
    /// The client went away: nothing to read, nginx must just cope.
    Vanish,
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// The allow-listed locations: `/wss` proxies to the mock WCS, `/check` serves a file.
fn server(upstream: &str) -> String {
    let origins = "wcs_token_auth_origins https://wcs.example.com https://*.example.com;";
    format!(
        r#"location = /check {{
            wcs_token_auth tokens;
            {origins}
            root html; try_files /index.html =404;
        }}
        location = /sameorigin {{ wcs_token_auth tokens; root html; try_files /index.html =404; }}
        {}"#,
        wss_location(upstream, origins)
    )
}

fn request(path: &str, version: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut r = format!("GET {path} {version}\r\n").into_bytes();
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r
}

/// An HTTP/1.1 request with Host and `Connection: close` and the given headers.
fn req11(path: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut all: Vec<(&str, &[u8])> = vec![("Host", b"wcs.example.com"), ("Connection", b"close")];
    all.extend_from_slice(headers);
    request(path, "HTTP/1.1", &all)
}

fn upgrade_headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("Upgrade", b"websocket"),
        ("Connection", b"Upgrade"),
        ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", b"13"),
    ]
}

fn case(name: &str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect,
    }
}

fn cases() -> Vec<Case> {
    let good = format!("AUTH={TOKEN}");
    let good = good.as_bytes();
    let origin_ok: &[u8] = b"https://wcs.example.com";
    let mut v = Vec::new();
    use Expect::*;

    // Cookie: oversized, malformed, odd bytes.
    let big = format!("{}; {}", "x=".to_string() + &"y".repeat(9000), "AUTH=nope");
    v.push(case(
        "Cookie of 9 kB (over large_client_header_buffers)",
        req11("/check", &[("Cookie", big.as_bytes())]),
        Rejected,
    ));
    let near = format!("pad={}; AUTH={TOKEN}", "p".repeat(7000));
    v.push(case(
        "Cookie of 7 kB with the token at its end",
        req11("/check", &[("Cookie", near.as_bytes())]),
        Allowed,
    ));
    let huge_token = format!("AUTH={}", "a".repeat(6000));
    v.push(case(
        "6 kB token",
        req11("/check", &[("Cookie", huge_token.as_bytes())]),
        Refused("malformed token"),
    ));
    let headers_40k: Vec<(&str, &[u8])> = (0..40).map(|_| ("X-Pad", &[b'z'; 1000][..])).collect();
    v.push(case(
        "40 headers of 1 kB (over the total header buffers)",
        req11("/check", &headers_40k),
        Rejected,
    ));
    for (name, value, expect) in [
        ("Cookie without =", &b"AUTH"[..], Refused("no token")),
        ("Cookie of separators", b";;;===;; ;=", Refused("no token")),
        (
            "AUTH with = in the value",
            b"AUTH=a=b",
            Refused("malformed token"),
        ),
        ("quoted token", b"AUTH=\"abc\"", Refused("malformed token")),
        (
            "token with a space",
            b"AUTH=ab cd",
            Refused("malformed token"),
        ),
        (
            "percent-encoded ../",
            b"AUTH=..%2F..%2Fetc%2Fpasswd",
            Refused("malformed token"),
        ),
        ("token ..", b"AUTH=..", Refused("malformed token")),
        (
            "token /etc/passwd",
            b"AUTH=/etc/passwd",
            Refused("malformed token"),
        ),
        (
            "token with a slash",
            b"AUTH=a/b",
            Refused("malformed token"),
        ),
        (
            "non-UTF-8 token",
            b"AUTH=\xff\xfe\xc3\x28",
            Refused("malformed token"),
        ),
        (
            "UTF-8 look-alike token",
            "AUTH=tok\u{2024}en".as_bytes(),
            Refused("malformed token"),
        ),
        (
            "control bytes in the token",
            b"AUTH=a\x01\x7fb",
            Refused("malformed token"),
        ),
        (
            "DEL and high bytes as the name",
            b"\x7f\xff=1",
            Refused("no token"),
        ),
        ("NUL in the Cookie", b"AUTH=ab\x00cd", Rejected),
        ("bare CR in the Cookie", b"AUTH=ab\rcd", Any4xx),
        (
            "token name in another case",
            b"auth=valid-Token_0123456789.abc",
            Refused("no token"),
        ),
        (
            "token prefix",
            b"AUTH=valid-Token",
            Refused("unknown token"),
        ),
        (
            "token with a suffix",
            b"AUTH=valid-Token_0123456789.abcd",
            Refused("unknown token"),
        ),
        (
            "empty token first, valid second",
            b"AUTH=; AUTH=valid-Token_0123456789.abc",
            Refused("no token"),
        ),
    ] {
        v.push(case(name, req11("/check", &[("Cookie", value)]), expect));
    }
    let token_with_nul = [b"AUTH=".as_slice(), TOKEN.as_bytes(), b"\0"].concat();
    v.push(case(
        "valid token followed by NUL",
        req11("/check", &[("Cookie", &token_with_nul)]),
        Rejected,
    ));

    // Hundreds of cookies and headers.
    let many: String = (0..500).map(|i| format!("c{i}={i}; ")).collect();
    v.push(case(
        "500 cookies, no token",
        req11("/check", &[("Cookie", many.as_bytes())]),
        Refused("no token"),
    ));
    let many_then_token = format!("{many}AUTH={TOKEN}");
    v.push(case(
        "500 cookies, the token last",
        req11("/check", &[("Cookie", many_then_token.as_bytes())]),
        Allowed,
    ));
    let cookie_lines: Vec<String> = (0..300).map(|i| format!("c{i}={i}")).collect();
    let mut h: Vec<(&str, &[u8])> = cookie_lines
        .iter()
        .map(|c| ("Cookie", c.as_bytes()))
        .collect();
    h.push(("Cookie", good));
    v.push(case(
        "300 Cookie headers, the token in the last",
        req11("/check", &h),
        Allowed,
    ));
    let bad_lines: Vec<(&str, &[u8])> = (0..300).map(|_| ("Cookie", &b"AUTH=nope"[..])).collect();
    v.push(case(
        "300 Cookie headers with an unknown token",
        req11("/check", &bad_lines),
        Refused("unknown token"),
    ));
    let mut h: Vec<(&str, &[u8])> = (0..500).map(|_| ("X-Client-IP", &b"6.6.6.6"[..])).collect();
    h.push(("Cookie", b"AUTH=nope"));
    v.push(case(
        "500 spoofed X-Client-IP headers, unknown token",
        req11("/wss", &h),
        Refused("unknown token"),
    ));

    // Duplicate and folded headers.
    v.push(case(
        "two Origin headers",
        req11(
            "/check",
            &[
                ("Origin", origin_ok),
                ("Origin", origin_ok),
                ("Cookie", good),
            ],
        ),
        Refused("several Origin headers"),
    ));
    v.push(case(
        "two Cookie headers, unknown token first",
        req11("/check", &[("Cookie", b"AUTH=nope"), ("Cookie", good)]),
        Refused("unknown token"),
    ));
    v.push(case(
        "two Host headers",
        request(
            "/check",
            "HTTP/1.1",
            &[
                ("Host", b"wcs.example.com"),
                ("Host", b"evil.example"),
                ("Cookie", good),
            ],
        ),
        Rejected,
    ));
    let mut folded = req11("/check", &[("Cookie", b"x=1")]);
    folded.truncate(folded.len() - 2);
    folded.extend_from_slice(format!(" AUTH={TOKEN}\r\n\r\n").as_bytes());
    v.push(case("token in a folded Cookie line", folded, Any4xx));
    let mut folded = req11(
        "/check",
        &[("Cookie", good), ("Origin", b"https://evil.example")],
    );
    folded.truncate(folded.len() - 2);
    folded.extend_from_slice(b"\t.wcs.example.com\r\n\r\n");
    v.push(case("folded Origin line", folded, Any4xx));

    // Origin: each with a valid token, so only the Origin check can refuse.
    for origin in [
        &b"null"[..],
        b"",
        b"https://",
        b"https://evil.example",
        b"https://wcs.example.com.evil.example",
        b"https://badexample.com",
        b"https://example.com",
        b"https://wcs.example.com@evil.example",
        b"https://evil.example#@wcs.example.com",
        b"https://wcs.example.com/path",
        b"http://wcs.example.com",
        b"https://wcs.example.com:99999",
        b"https://wcs.example.com:-1",
        b"https://wcs.example.com:",
        b"https://[::1",
        b"https://*.example.com",
        b"https://\xff\xfe.example.com",
        b"https://wcs.example.com\x01",
        b"javascript:alert(1)",
        b"https://..example.com",
        b"https://a..example.com",
    ] {
        v.push(case(
            &format!("Origin {}", origin.escape_ascii()),
            req11("/check", &[("Origin", origin), ("Cookie", good)]),
            Refused("wcs_token_auth: origin"),
        ));
    }
    let long_origin = format!("https://{}.example.com", "a".repeat(7000));
    v.push(case(
        "Origin of 7 kB",
        req11(
            "/check",
            &[("Origin", long_origin.as_bytes()), ("Cookie", b"AUTH=nope")],
        ),
        Refused("wcs_token_auth: origin"),
    ));
    v.push(case(
        "allowed Origin in capitals with its default port",
        req11(
            "/check",
            &[("Origin", b"HTTPS://WCS.EXAMPLE.COM:443"), ("Cookie", good)],
        ),
        Allowed,
    ));

    // HTTP/1.0, HTTP/0.9, no Host.
    v.push(case(
        "HTTP/1.0 without Host, valid token",
        request("/check", "HTTP/1.0", &[("Cookie", good)]),
        Allowed,
    ));
    v.push(case(
        "HTTP/1.0 without Host, unknown token",
        request("/check", "HTTP/1.0", &[("Cookie", b"AUTH=nope")]),
        Refused("unknown token"),
    ));
    v.push(case(
        "HTTP/1.0 without Host, same-origin check with an Origin",
        request(
            "/sameorigin",
            "HTTP/1.0",
            &[("Origin", b"http://127.0.0.1"), ("Cookie", good)],
        ),
        Refused("wcs_token_auth: origin"),
    ));
    v.push(case(
        "HTTP/1.1 without Host",
        request(
            "/check",
            "HTTP/1.1",
            &[("Connection", b"close"), ("Cookie", good)],
        ),
        Rejected,
    ));
    v.push(case(
        "empty Host",
        request(
            "/check",
            "HTTP/1.1",
            &[("Host", b""), ("Connection", b"close"), ("Cookie", good)],
        ),
        Rejected,
    ));
    v.push(case(
        "Host with a path",
        request(
            "/check",
            "HTTP/1.1",
            &[
                ("Host", b"a/../b"),
                ("Connection", b"close"),
                ("Cookie", good),
            ],
        ),
        Rejected,
    ));
    v.push(case(
        "HTTP/2.0 request line over HTTP/1",
        request(
            "/check",
            "HTTP/2.0",
            &[("Host", b"wcs.example.com"), ("Cookie", good)],
        ),
        Rejected,
    ));

    // WebSocket handshakes.
    let mut h = upgrade_headers();
    h.push(("Cookie", b"AUTH=../../../../etc/passwd"));
    v.push(case(
        "upgrade with the article's traversal",
        req11("/wss", &h),
        Refused("malformed token"),
    ));
    let mut h = upgrade_headers();
    h.push(("Origin", b"https://evil.example"));
    h.push(("Cookie", good));
    v.push(case(
        "upgrade from a foreign page",
        req11("/wss", &h),
        Refused("wcs_token_auth: origin"),
    ));

    // Clients that go away.
    let mut h = upgrade_headers();
    h.push(("Cookie", good));
    let full = req11("/wss", &h);
    v.push(case(
        "upgrade cut in the middle of a header",
        full[..full.len() / 2].to_vec(),
        Vanish,
    ));
    v.push(case(
        "valid upgrade, client gone before the answer",
        full.clone(),
        Vanish,
    ));
    v.push(case(
        "unknown-token upgrade, client gone before the answer",
        {
            let mut h = upgrade_headers();
            h.push(("Cookie", b"AUTH=nope"));
            req11("/wss", &h)
        },
        Vanish,
    ));
    v
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends `bytes` and closes at once with a reset (SO_LINGER 0), without reading.
fn vanish(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(bytes).expect("send");
    sleep(Duration::from_millis(5));
    reset(s);
}

fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(s);
}

/// The worker is the same process, nothing crashed, and a valid request still passes.
fn assert_healthy(nginx: &Nginx, worker: i32, after: &str) {
    sleep(Duration::from_millis(20));
    nginx.assert_no_crash();
    assert_eq!(
        nginx.worker_pids(),
        [worker],
        "worker replaced after {after}"
    );
    let ok = nginx.get("/check", &[("Cookie", &format!("AUTH={TOKEN}"))]);
    assert_eq!(ok.status, 200, "valid request after {after}");
}

#[test]
fn hostile_requests_get_4xx_and_never_hurt_the_worker() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start("", &server(&mock.url()));
    nginx.prefix.add_token(TOKEN);
    let worker = nginx.running_workers()[0];
    let cases = cases();
    let mut log_lines = nginx.module_log_lines().len();
    for c in &cases {
        if c.expect == Expect::Vanish {
            vanish(nginx.port, &c.bytes);
            assert_healthy(&nginx, worker, &c.name);
            log_lines = nginx.module_log_lines().len();
            continue;
        }
        let resp = raw(nginx.port, &c.bytes);
        let lines = nginx.module_log_lines();
        let new_lines = &lines[log_lines..];
        log_lines = lines.len();
        let name = &c.name;
        match c.expect {
            Expect::Allowed => assert_eq!(resp.status, 200, "{name}: {}", resp.head),
            Expect::Refused(reason) => {
                assert_eq!(resp.status, 403, "{name}: {}", resp.head);
                assert_eq!(new_lines.len(), 1, "{name}: one log line: {new_lines:?}");
                assert!(new_lines[0].contains(reason), "{name}: {}", new_lines[0]);
                assert!(new_lines[0].len() < 1024, "{name}: log line bounded");
                assert!(!new_lines[0].contains(TOKEN), "{name}: token logged");
            }
            Expect::Rejected => {
                assert!(
                    [400, 414, 505].contains(&resp.status),
                    "{name}: nginx's own refusal: {}",
                    resp.head
                );
                assert!(new_lines.is_empty(), "{name}: module not reached");
            }
            Expect::Any4xx => {
                eprintln!("{name}: {}", resp.status);
                assert!((400..500).contains(&resp.status), "{name}: {}", resp.head);
                let module_lines = usize::from(resp.status == 403);
                assert!(new_lines.len() <= module_lines, "{name}: {new_lines:?}");
            }
            Expect::Vanish => unreachable!(),
        }
        assert_healthy(&nginx, worker, name);
    }

    let refused = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Refused(_)))
        .count();
    let extra = hostile_connections(&nginx, worker);
    report(&format!(
        "hostile: {} crafted requests ({} refused by the module, {} by nginx, {} other 4xx, \
         {} accepted valid ones, {} vanishing clients) + {extra}, worker pid unchanged, \
         0 crashes",
        cases.len(),
        refused,
        cases
            .iter()
            .filter(|c| c.expect == Expect::Rejected)
            .count(),
        cases.iter().filter(|c| c.expect == Expect::Any4xx).count(),
        cases.iter().filter(|c| c.expect == Expect::Allowed).count(),
        cases.iter().filter(|c| c.expect == Expect::Vanish).count(),
    ));
    // The raw bytes of hostile values never reach the log unescaped.
    let log = std::fs::read(nginx.prefix.path().join("logs/error.log")).unwrap();
    assert!(!log.contains(&0xff), "unescaped byte in the error log");
}

/// Cases that need more than one request on a connection: pipelining, a spoofed header list
/// that must reach WCS as one header, an upgraded connection reset mid-stream. Returns a
/// description for the report.
fn hostile_connections(nginx: &Nginx, worker: i32) -> String {
    let port = nginx.port;
    let good = format!("AUTH={TOKEN}");

    // 100 pipelined requests in one write, alternating valid and unknown tokens.
    let mut bytes = Vec::new();
    for i in 0..100 {
        let c = if i % 2 == 0 {
            good.as_str()
        } else {
            "AUTH=nope"
        };
        let close: &[(&str, &[u8])] = if i == 99 {
            &[("Connection", b"close")]
        } else {
            &[]
        };
        let mut h: Vec<(&str, &[u8])> =
            vec![("Host", b"wcs.example.com"), ("Cookie", c.as_bytes())];
        h.extend_from_slice(close);
        bytes.extend(request("/check", "HTTP/1.1", &h));
    }
    let before = nginx.module_log_lines().len();
    let statuses = pipelined(port, &bytes);
    let expected: Vec<u16> = (0..100)
        .map(|i| if i % 2 == 0 { 200 } else { 403 })
        .collect();
    assert_eq!(statuses, expected, "pipelined answers in order");
    assert_eq!(nginx.module_log_lines().len() - before, 50);
    assert_healthy(nginx, worker, "pipelining");

    // A pipelined request nginx rejects ends the connection; the ones after it are not run.
    let mut bytes = request(
        "/check",
        "HTTP/1.1",
        &[("Host", b"wcs.example.com"), ("Cookie", good.as_bytes())],
    );
    bytes.extend(request(
        "/check",
        "HTTP/1.1",
        &[("Cookie", good.as_bytes())],
    ));
    bytes.extend(request(
        "/check",
        "HTTP/1.1",
        &[("Host", b"wcs.example.com"), ("Cookie", good.as_bytes())],
    ));
    assert_eq!(pipelined(port, &bytes), [200, 400]);
    assert_healthy(nginx, worker, "pipelining after a bad request");

    // 500 spoofed X-Client-IP headers with a valid token: WCS sees exactly one, nginx's.
    let mut h: Vec<(&str, &[u8])> = (0..500).map(|_| ("x-client-ip", &b"6.6.6.6"[..])).collect();
    h.push(("Cookie", good.as_bytes()));
    let resp = raw(port, &req11("/wss", &h));
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(header_values(&resp.body, "X-Client-IP"), ["127.0.0.1"]);
    assert_healthy(nginx, worker, "500 X-Client-IP headers");

    // Upgraded, a frame echoed, then the client resets the connection mid-stream; and one that
    // resets right after the 101.
    for frames in [1, 0] {
        let (k, v) = cookie(TOKEN);
        let mut ws = nginx.ws("/wss", &[(k, &v)]).expect("upgrade");
        if frames > 0 {
            assert_eq!(roundtrip(&mut ws, "x"), "x");
        }
        let stream = ws.get_ref().try_clone().expect("clone");
        reset(stream);
        drop(ws);
        assert_healthy(nginx, worker, "a reset WebSocket");
    }

    // Slowloris-style: a handshake trickled byte by byte, then abandoned.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut h = upgrade_headers();
    h.push(("Cookie", good.as_bytes()));
    for b in req11("/wss", &h).iter().take(200) {
        s.write_all(&[*b]).expect("trickle");
    }
    drop(s);
    assert_healthy(nginx, worker, "a trickled, abandoned handshake");

    // HTTP/0.9: no status line, but the module still refuses.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /check\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(!out.contains("static page"), "HTTP/0.9 passed: {out}");
    assert_healthy(nginx, worker, "HTTP/0.9");

    "100 pipelined + 3 pipelined after a bad one + 1 with 500 spoofed X-Client-IP + 2 reset \
     WebSockets + 1 trickled handshake + 1 HTTP/0.9"
        .to_string()
}

/// Sends pipelined requests in one write and returns the status of each answer, in order.
fn pipelined(port: u16, bytes: &[u8]) -> Vec<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let mut statuses = Vec::new();
    let mut rest = &buf[..];
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        statuses.push(status_of(&head));
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        rest = &rest[(end + 4 + len).min(rest.len())..];
    }
    statuses
}

/// A random request assembled from hostile parts, and what the rules say about it.
struct Random {
    bytes: Vec<u8>,
    allowed: bool,
}

const ORIGINS_OK: [&[u8]; 4] = [
    b"https://wcs.example.com",
    b"https://a.b.example.com",
    b"HTTPS://Wcs.Example.Com:443",
    b"https://x-1.example.com",
];
const ORIGINS_BAD: [&[u8]; 8] = [
    b"null",
    b"https://example.com",
    b"https://badexample.com",
    b"https://wcs.example.com.evil.example",
    b"http://wcs.example.com",
    b"https://wcs.example.com:8443",
    b"https://wcs.example.com/",
    b"https://\xc3\xa9.example.com",
];

fn random_bytes(rng: &mut Rng, min: usize, max: usize) -> Vec<u8> {
    let n = min + rng.below(max - min + 1);
    // Anything nginx takes in a header value: visible ASCII, space, tab and bytes >= 0x80.
    (0..n)
        .map(|_| match rng.below(10) {
            0 => b' ',
            1 => b';',
            2 => b'=',
            3 => 0x80 + rng.below(128) as u8,
            _ => 0x21 + rng.below(94) as u8,
        })
        .collect()
}

fn random_request(rng: &mut Rng) -> Random {
    let mut cookie_headers: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.below(4) {
        let mut pairs: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rng.below(6) {
            let name: Vec<u8> = match rng.below(6) {
                0 | 1 => b"AUTH".to_vec(),
                2 => b" AUTH\t".to_vec(),
                3 => b"auth".to_vec(),
                4 => b"AUTHX".to_vec(),
                _ => random_bytes(rng, 1, 8),
            };
            let value: Vec<u8> = match rng.below(8) {
                0 | 1 => TOKEN.as_bytes().to_vec(),
                2 => format!(" {TOKEN}\t").into_bytes(),
                3 => TOKEN.as_bytes()[..rng.below(TOKEN.len())].to_vec(),
                4 => format!("../{TOKEN}").into_bytes(),
                5 => format!(".{TOKEN}").into_bytes(),
                6 => TOKEN.to_ascii_uppercase().into_bytes(),
                _ => random_bytes(rng, 0, 40),
            };
            let sep: &[u8] = if rng.chance(90) { b"=" } else { b"" };
            pairs.push([name.as_slice(), sep, value.as_slice()].concat());
        }
        let sep: &[u8] = if rng.chance(50) { b"; " } else { b";" };
        cookie_headers.push(pairs.join(sep));
    }
    let origins: Vec<&[u8]> = (0..rng.below(3).saturating_sub(rng.below(2)))
        .map(|_| {
            if rng.chance(60) {
                ORIGINS_OK[rng.below(ORIGINS_OK.len())]
            } else {
                ORIGINS_BAD[rng.below(ORIGINS_BAD.len())]
            }
        })
        .collect();

    // The model: one allowed Origin or none; the first AUTH cookie is the token.
    let origin_ok = match origins.as_slice() {
        [] => true,
        [o] => ORIGINS_OK.contains(o),
        _ => false,
    };
    let trim = |s: &[u8]| -> Vec<u8> {
        let s = s
            .iter()
            .skip_while(|b| **b == b' ' || **b == b'\t')
            .copied()
            .collect::<Vec<_>>();
        let end = s
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t')
            .map_or(0, |i| i + 1);
        s[..end].to_vec()
    };
    let token = cookie_headers.iter().find_map(|h| {
        h.split(|b| *b == b';').find_map(|pair| {
            let eq = pair.iter().position(|b| *b == b'=')?;
            (trim(&pair[..eq]) == b"AUTH").then(|| trim(&pair[eq + 1..]))
        })
    });
    let allowed = origin_ok && token.as_deref() == Some(TOKEN.as_bytes());

    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let mut order: Vec<usize> = (0..cookie_headers.len() + origins.len()).collect();
    // Shuffle where Origins go among the Cookies; the Cookies keep their order.
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let mut cookies_sorted: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| i < cookie_headers.len())
        .collect();
    cookies_sorted.sort_unstable();
    let mut next_cookie = cookies_sorted.into_iter();
    for i in &order {
        if *i < cookie_headers.len() {
            let c = next_cookie.next().expect("as many as cookies");
            headers.push(("Cookie", &cookie_headers[c]));
        } else {
            headers.push(("Origin", origins[i - cookie_headers.len()]));
        }
    }
    if rng.chance(20) {
        headers.push(("X-Client-IP", b"6.6.6.6"));
    }
    Random {
        bytes: req11("/check", &headers),
        allowed,
    }
}

#[test]
fn random_hostile_requests_get_the_answer_the_rules_give() {
    let count = if long_run() { 1_000_000 } else { 20_000 };
    let nginx = Nginx::start("", &server("http://127.0.0.1:9"));
    nginx.prefix.add_token(TOKEN);
    let worker = nginx.running_workers()[0];
    let mut rng = Rng::new(0x5eed_1234);
    let (mut allowed, mut refused) = (0, 0);
    let started = Instant::now();
    for i in 0..count {
        let r = random_request(&mut rng);
        let resp = raw(nginx.port, &r.bytes);
        let want = if r.allowed { 200 } else { 403 };
        assert_eq!(
            resp.status,
            want,
            "request {i}: {}\n{}",
            r.bytes.escape_ascii(),
            resp.head
        );
        if r.allowed {
            allowed += 1;
        } else {
            refused += 1;
        }
    }
    assert_healthy(&nginx, worker, "random requests");
    assert_eq!(
        nginx.module_log_lines().len(),
        refused,
        "one log line per refusal"
    );
    assert!(
        allowed > count / 20 && refused > count / 2,
        "{allowed} {refused}"
    );
    report(&format!(
        "hostile random: {count} requests ({allowed} allowed, {refused} refused) in {:?}, \
         0 answers differing from the model, worker pid unchanged",
        started.elapsed()
    ));
}
