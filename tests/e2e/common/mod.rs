//! Test harness: a real nginx with the built module, in a fresh prefix on a free loopback
//! port, in front of a mock WCS; and small HTTP and WebSocket clients.
#![allow(dead_code, unused_imports)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

pub use mock_wcs::{MockWcs, HEADERS_REQUEST};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

pub mod eio_fs;
pub mod h2;
pub mod jwt;
pub mod sessions;
pub mod traffic;

/// The nginx binary under test: `$WCS_NGINX`, else the one this module was built against.
pub fn nginx_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WCS_NGINX") {
        return p.into();
    }
    let built = option_env!("WCS_NGINX_BUILD_DIR").map(|d| Path::new(d).join("nginx"));
    match built {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "no nginx binary: set WCS_NGINX (the module was built against a tree without one)"
        ),
    }
}

/// The module under test: `$WCS_MODULE`, else the cdylib cargo built beside this test binary
/// (in `deps/`: `cargo test` does not copy it up to `target/release/`).
pub fn module_so() -> PathBuf {
    if let Some(p) = std::env::var_os("WCS_MODULE") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let so = exe.with_file_name("libngx_http_wcs_token_auth_module.so");
    assert!(so.is_file(), "{} is missing", so.display());
    so
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A prefix directory with `conf/`, `logs/`, `html/` and the token directory `tokens/`.
pub struct Prefix {
    dir: tempfile::TempDir,
    /// Main-context lines written right after the module's `load_module`.
    pub main_extra: String,
}

impl Prefix {
    pub fn new() -> Prefix {
        let dir = tempfile::Builder::new()
            .prefix("wcs-nginx-")
            .tempdir()
            .expect("tempdir");
        for sub in ["conf", "logs", "html", "tokens", "tmp"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        // Workers run as nobody when the tests run as root: let them in.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.path().join("html/index.html"), "static page\n").expect("write");
        Prefix {
            dir,
            main_extra: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tokens(&self) -> PathBuf {
        self.path().join("tokens")
    }

    pub fn add_token(&self, token: &str) {
        fs::write(self.tokens().join(token), "").expect("create token");
    }

    pub fn add_token_aged(&self, token: &str, age: Duration) {
        self.add_token(token);
        let f = fs::File::options()
            .write(true)
            .open(self.tokens().join(token))
            .expect("open");
        f.set_modified(SystemTime::now() - age).expect("set mtime");
    }

    pub fn remove_token(&self, token: &str) {
        fs::remove_file(self.tokens().join(token)).expect("remove token");
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.path().join("logs/error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        fs::read_to_string(self.path().join("logs/access.log")).unwrap_or_default()
    }

    /// Writes `conf/nginx.conf` with the module loaded around the given `http` and `server`
    /// block contents. `{port}` in them is replaced by `port`.
    pub fn write_conf(&self, port: u16, http: &str, server: &str) -> PathBuf {
        let p = self.path().display();
        let user = if is_root() {
            "user nobody nogroup;"
        } else {
            ""
        };
        let conf = format!(
            r#"load_module {module};
{main_extra}
{user}
worker_processes 1;
daemon off;
error_log {p}/logs/error.log info;
pid {p}/logs/nginx.pid;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    log_format wcs '$remote_addr "$request" $status status=$wcs_token_auth_status';
    access_log {p}/logs/access.log wcs;
    {http}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        {server}
    }}
}}
"#,
            module = module_so().display(),
            main_extra = self.main_extra,
            http = http.replace("{port}", &port.to_string()),
            server = server.replace("{port}", &port.to_string()),
        );
        let path = self.path().join("conf/nginx.conf");
        fs::write(&path, conf).expect("write conf");
        path
    }

    /// `nginx -t` on the current configuration.
    pub fn test_conf(&self) -> Output {
        self.test_conf_with(&nginx_bin())
    }

    /// Runs `nginx -s SIGNAL` for this prefix's configuration and asserts it was delivered.
    pub fn signal(&self, signal: &str) {
        let out = Command::new(nginx_bin())
            .arg("-p")
            .arg(self.path())
            .arg("-c")
            .arg(self.path().join("conf/nginx.conf"))
            .args(["-s", signal])
            .output()
            .expect("nginx -s");
        assert!(
            out.status.success(),
            "nginx -s {signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `nginx -t` on the current configuration, with the given nginx binary.
    pub fn test_conf_with(&self, nginx: &Path) -> Output {
        Command::new(nginx)
            .arg("-p")
            .arg(self.path())
            .arg("-e")
            .arg(self.path().join("logs/error.log"))
            .arg("-c")
            .arg(self.path().join("conf/nginx.conf"))
            .arg("-t")
            .output()
            .expect("run nginx -t")
    }
}

/// The location block most tests use: the article's, with the module switched on.
pub fn wss_location(upstream: &str, extra: &str) -> String {
    proxied_location("/wss", upstream, "tokens", extra)
}

/// A location that proxies to `upstream` with the module set to `auth` (the arguments of
/// `wcs_token_auth`) and the `extra` directives.
pub fn proxied_location(path: &str, upstream: &str, auth: &str, extra: &str) -> String {
    format!(
        r#"location {path} {{
            wcs_token_auth {auth};
            {extra}
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }}"#
    )
}

/// A running nginx; stopped (and waited for) on drop.
pub struct Nginx {
    pub prefix: Prefix,
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx with the given `http` and `server` block contents.
    pub fn start(http: &str, server: &str) -> Nginx {
        Self::start_in(Prefix::new(), http, server)
    }

    pub fn start_in(prefix: Prefix, http: &str, server: &str) -> Nginx {
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            prefix.write_conf(port, http, server);
            let _ = fs::remove_file(prefix.path().join("logs/error.log"));
            let mut child = Command::new(nginx_bin())
                .arg("-p")
                .arg(prefix.path())
                .arg("-e")
                .arg(prefix.path().join("logs/error.log"))
                .arg("-c")
                .arg(prefix.path().join("conf/nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx");
            if wait_ready(&mut child, port) {
                return Nginx {
                    prefix,
                    port,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = prefix.error_log();
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start:\n{last_log}");
    }

    pub fn master_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs `nginx -s reload` and asserts that the signal was delivered.
    pub fn send_reload(&self) {
        self.prefix.signal("reload");
    }

    /// Rewrites the configuration and runs `nginx -s reload`; returns once a new worker runs and every
    /// old one has stopped accepting (old ones linger while open connections finish, as nginx
    /// intends).
    pub fn reload(&mut self, http: &str, server: &str) {
        self.prefix.write_conf(self.port, http, server);
        let before = self.worker_pids();
        self.send_reload();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let now = self.worker_pids();
            let log = self.prefix.error_log();
            let old_quiet = before.iter().all(|p| {
                // "PID#TID": TID is 0 in an nginx built without threads.
                !now.contains(p)
                    || log.lines().any(|l| {
                        l.contains(&format!(" {p}#")) && l.ends_with(": gracefully shutting down")
                    })
            });
            if old_quiet && now.iter().any(|p| !before.contains(p)) {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        panic!(
            "reload did not replace the workers:\n{}",
            self.prefix.error_log()
        );
    }

    /// The master's live child processes (its workers).
    pub fn worker_pids(&self) -> Vec<i32> {
        let master = self.master_pid();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(master)
                && fields.first() != Some(&"Z")
            {
                pids.push(pid);
            }
        }
        pids
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.port, path, headers)
    }

    pub fn ws(&self, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        ws_connect(self.port, path, headers)
    }

    /// Waits until the access log has `n` lines and returns them.
    pub fn access_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = self.prefix.access_log().lines().map(String::from).collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that no worker died (a panic in Rust aborts the process).
    pub fn assert_no_crash(&self) {
        let log = self.prefix.error_log();
        assert!(
            !log.contains("exited on signal"),
            "a worker crashed:\n{log}"
        );
    }
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill with our child's pid and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends raw bytes (which should ask for `Connection: close`) and reads the whole answer.
pub fn raw(port: u16, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(port, req.as_bytes())
}

/// The headers a mock WCS reported, as (name, value) pairs.
pub fn reported_headers(report: &str) -> Vec<(String, String)> {
    report
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// All values of `name` (case-insensitive) in a mock's report.
pub fn header_values(report: &str, name: &str) -> Vec<String> {
    reported_headers(report)
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

pub type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket through nginx; `Err(status)` when the upgrade is refused.
pub fn ws_connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        let name: tungstenite::http::HeaderName = k.parse().expect("header name");
        req.headers_mut()
            .append(name, HeaderValue::from_str(v).expect("header value"));
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    match tungstenite::client::client(req, stream) {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Err(resp.status().as_u16())
        }
        Err(e) => panic!("websocket handshake failed: {e}"),
    }
}

/// Sends a text frame and returns the text that comes back.
pub fn roundtrip(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::text(text)).expect("send frame");
    loop {
        match ws.read().expect("read frame") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => continue,
        }
    }
}

pub fn cookie(token: &str) -> (&'static str, String) {
    ("Cookie", format!("AUTH={token}"))
}
