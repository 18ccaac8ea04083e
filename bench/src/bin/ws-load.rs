//! `ws-load URL [--cookie NAME=VALUE] [--origin ORIGIN] [--connections N] [--duration SECS]
//! [--expect STATUS]`
//!
//! Opens WebSocket connections to `URL` on `N` threads for `SECS` seconds, each thread one
//! connection at a time: connect, handshake, drop. Prints one line,
//! `handshakes=H seconds=S rate=R p50_us=.. p99_us=.. unexpected=U`, where a handshake
//! counts when its status is `STATUS` (101 by default) and `unexpected` counts the others
//! (and errors). With `--duration 0` it performs exactly one handshake, prints its status and
//! exits 0 only if it was the expected one: the bench's correctness check.

use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{generate_key, Request};
use tungstenite::http::HeaderValue;
use tungstenite::{Error, HandshakeError};

struct Args {
    url: String,
    cookie: Option<String>,
    origin: Option<String>,
    connections: usize,
    duration: f64,
    expect: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        url: String::new(),
        cookie: None,
        origin: None,
        connections: 4,
        duration: 5.0,
        expect: 101,
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--cookie" => args.cookie = Some(value("--cookie")?),
            "--origin" => args.origin = Some(value("--origin")?),
            "--connections" => {
                args.connections = value("--connections")?
                    .parse()
                    .map_err(|_| "bad --connections")?
            }
            "--duration" => {
                args.duration = value("--duration")?.parse().map_err(|_| "bad --duration")?
            }
            "--expect" => args.expect = value("--expect")?.parse().map_err(|_| "bad --expect")?,
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => args.url = a,
        }
    }
    if args.url.is_empty() {
        return Err("no URL".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws-load: {e}\nusage: ws-load ws://HOST:PORT/PATH [--cookie AUTH=TOKEN] [--origin ORIGIN] [--connections N] [--duration SECS] [--expect STATUS]");
            return ExitCode::from(2);
        }
    };
    let template = match template(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ws-load: {e}");
            return ExitCode::from(2);
        }
    };
    if args.duration <= 0.0 {
        let status = handshake(&template);
        println!("status={}", status.map_or(0, |s| s));
        return if status == Some(args.expect) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let template = template.clone();
            let expect = args.expect;
            thread::spawn(move || run(&template, expect, deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut unexpected = 0u64;
    for w in workers {
        if let Ok((lat, bad)) = w.join() {
            latencies.extend(lat);
            unexpected += bad;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
        latencies[i - 1]
    };
    println!(
        "handshakes={} seconds={seconds:.3} rate={:.1} p50_us={} p99_us={} unexpected={unexpected}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        pct(0.50),
        pct(0.99),
    );
    ExitCode::SUCCESS
}

/// The request every handshake starts from; each gets a fresh `Sec-WebSocket-Key`.
fn template(args: &Args) -> Result<Request, String> {
    let mut req = args
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let headers = req.headers_mut();
    for (name, value) in [("cookie", &args.cookie), ("origin", &args.origin)] {
        if let Some(v) = value {
            let v = HeaderValue::from_str(v).map_err(|_| format!("bad {name} value"))?;
            headers.insert(name, v);
        }
    }
    Ok(req)
}

/// One connection: connect, upgrade, drop. The response status, or `None` on a network error.
fn handshake(template: &Request) -> Option<u16> {
    let mut req = template.clone();
    let key = HeaderValue::from_str(&generate_key()).ok()?;
    req.headers_mut().insert("sec-websocket-key", key);
    let host = req.uri().host()?.to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).ok()?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    match tungstenite::client::client(req, stream) {
        Ok((_ws, response)) => Some(response.status().as_u16()),
        Err(HandshakeError::Failure(Error::Http(response))) => Some(response.status().as_u16()),
        Err(_) => None,
    }
}

/// Handshakes until `deadline`: the latencies (µs) of the expected ones, and how many were not.
fn run(template: &Request, expect: u16, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut unexpected = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        if handshake(template) == Some(expect) {
            latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        } else {
            unexpected += 1;
        }
    }
    (latencies, unexpected)
}
