//! Traffic for the reliability tests: a keep-alive HTTP client that tells an idle connection
//! closed by nginx from an unanswered request, a seeded random source, the `WCS_LONG` switch,
//! in-place reloads, and the figures the tests report.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{nginx_bin, Nginx};

/// `WCS_LONG=1` asks for the long variants (minutes instead of seconds).
pub fn long_run() -> bool {
    std::env::var("WCS_LONG").is_ok_and(|v| v == "1")
}

/// Prints a figure line; with `$WCS_REPORT` set, also appends it there (scripts/test.sh
/// collects them into its summary).
pub fn report(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("WCS_REPORT") {
        let nginx = nginx_bin();
        let line = format!("{line} [{}]\n", nginx.display());
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// xorshift64*: reproducible randomness without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A token-shaped name: 32 hex digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Sent on a fresh connection and not answered (or answered with garbage).
    Failed(String),
}

/// A keep-alive HTTP/1.1 client, like a browser's connection to one host.
///
/// When nginx closes an idle keep-alive connection (a worker leaving after a reload does
/// that) just as a request is written to it, the request is retried once on a fresh
/// connection, as browsers do for idempotent requests (RFC 9112, 9.3.1). Such a retry is
/// counted in `idle_closes`, not as a failure. A request on a fresh connection that gets no
/// complete answer is a failure.
pub struct Client {
    pub port: u16,
    conn: Option<TcpStream>,
    pub idle_closes: u64,
    pub connections: u64,
    /// How long one answer may take (nginx under valgrind needs more than the default).
    pub read_timeout: Duration,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            conn: None,
            idle_closes: 0,
            connections: 0,
            read_timeout: Duration::from_secs(10),
        }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        match self.request(path, headers) {
            Ok((status, _)) => Answer::Status(status),
            Err(why) => Answer::Failed(why),
        }
    }

    /// `GET path`: the status and the body, or why no answer came.
    pub fn request(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), String> {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        if let Some(conn) = self.conn.take() {
            match exchange(&conn, req.as_bytes()) {
                Ok((status, body, keep)) => {
                    if keep {
                        self.conn = Some(conn);
                    }
                    return Ok((status, body));
                }
                Err(Exchange::NothingBack) => self.idle_closes += 1,
                Err(Exchange::Broken(e)) => return Err(format!("reused: {e}")),
            }
        }
        let conn =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        self.connections += 1;
        let _ = conn.set_read_timeout(Some(self.read_timeout));
        let _ = conn.set_nodelay(true);
        match exchange(&conn, req.as_bytes()) {
            Ok((status, body, keep)) => {
                if keep {
                    self.conn = Some(conn);
                }
                Ok((status, body))
            }
            Err(Exchange::NothingBack) => Err("fresh connection closed".into()),
            Err(Exchange::Broken(e)) => Err(e),
        }
    }
}

enum Exchange {
    /// The connection was closed before a single byte of the answer came back.
    NothingBack,
    Broken(String),
}

/// Writes a request and reads one answer: (status, body, connection still usable).
fn exchange(mut conn: &TcpStream, req: &[u8]) -> Result<(u16, Vec<u8>, bool), Exchange> {
    if let Err(e) = conn.write_all(req) {
        return Err(match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Exchange::NothingBack,
            _ => Exchange::Broken(format!("write: {e}")),
        });
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(Exchange::NothingBack),
            Ok(0) => return Err(Exchange::Broken("closed inside the head".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(Exchange::NothingBack)
            }
            Err(e) => return Err(Exchange::Broken(format!("read: {e}"))),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Exchange::Broken(format!("bad status line: {head:?}")))?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| Exchange::Broken(format!("no content-length: {head:?}")))?;
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        match conn.read(&mut chunk) {
            Ok(0) => return Err(Exchange::Broken("closed inside the body".into())),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(Exchange::Broken(format!("read body: {e}"))),
        }
    }
    let keep = !head.contains("\r\nconnection: close");
    Ok((status, body, keep))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Nginx {
    /// `nginx -s reload` with the configuration as it is (callable while other threads send
    /// traffic); returns once a new worker runs. Old workers finish their open connections.
    pub fn signal_reload(&self) {
        let before = self.worker_pids();
        self.send_reload();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.worker_pids().iter().any(|p| !before.contains(p)) {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        panic!("reload started no new worker:\n{}", self.prefix.error_log());
    }

    /// The worker pids, waiting for the first ones after a start (nginx listens before
    /// it forks its workers).
    pub fn running_workers(&self) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.worker_pids();
            if !pids.is_empty() || Instant::now() > deadline {
                return pids;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Lines the module wrote to the error log.
    pub fn module_log_lines(&self) -> Vec<String> {
        self.prefix
            .error_log()
            .lines()
            .filter(|l| l.contains("wcs_token_auth: "))
            .map(String::from)
            .collect()
    }
}
