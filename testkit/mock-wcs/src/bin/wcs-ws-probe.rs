//! `wcs-ws-probe URL [--cookie NAME=VALUE] [--origin ORIGIN] [--header "NAME: VALUE"]... [--message TEXT] [--hold SECS]`
//!
//! Opens a WebSocket like a browser page would, sends one text frame and prints the echo.
//! Exit status 0 when the upgrade succeeded and the frame came back, 1 otherwise. Plain
//! `ws://` only: put it in front of nginx's plain listener, or use a browser for `wss://`.
//! With `--hold SECS` it then keeps the WebSocket open for up to SECS seconds and prints
//! when the server closed it (to watch `wcs_token_auth_session_check` close it on revoke);
//! exit status 0 if the server closed it, 1 if it was still open.

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Error, HandshakeError, Message, WebSocket};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let (mut cookie, mut origin, mut message) = (None, None, "hello WCS".to_string());
    let mut extra = Vec::new();
    let mut hold = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--hold" => hold = args.next().and_then(|s| s.parse::<f64>().ok()),
            "--cookie" => cookie = args.next(),
            "--origin" => origin = args.next(),
            "--message" => message = args.next().unwrap_or_default(),
            "--header" => extra.extend(args.next()),
            _ => url = Some(a),
        }
    }
    let Some(url) = url else {
        eprintln!(
            "usage: wcs-ws-probe ws://HOST:PORT/wss [--cookie AUTH=TOKEN] [--origin ORIGIN] \
             [--header \"NAME: VALUE\"]... [--message TEXT] [--hold SECS]"
        );
        return ExitCode::from(2);
    };
    match probe(&url, cookie, origin, &extra, &message) {
        Ok((echo, ws)) => {
            println!("upgraded (101); sent {message:?}, WCS echoed {echo:?}");
            match hold {
                None => ExitCode::SUCCESS,
                Some(secs) => hold_open(ws, Duration::from_secs_f64(secs.max(0.001))),
            }
        }
        Err(e) => {
            println!("refused: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(
    url: &str,
    cookie: Option<String>,
    origin: Option<String>,
    extra: &[String],
    message: &str,
) -> Result<(String, WebSocket<TcpStream>), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let headers = req.headers_mut();
    for (name, value) in [("cookie", cookie), ("origin", origin)] {
        if let Some(v) = value {
            headers.insert(name, v.parse().map_err(|_| format!("bad {name} value"))?);
        }
    }
    for h in extra {
        let (name, value) = h.split_once(':').ok_or(format!("bad header {h:?}"))?;
        let name: tungstenite::http::HeaderName = name
            .trim()
            .parse()
            .map_err(|_| format!("bad header name {name:?}"))?;
        let value = value
            .trim()
            .parse()
            .map_err(|_| format!("bad header value {value:?}"))?;
        headers.append(name, value);
    }
    let host = req.uri().host().unwrap_or("127.0.0.1").to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let (mut ws, _) = tungstenite::client::client(req, stream).map_err(|e| match e {
        HandshakeError::Failure(Error::Http(r)) => format!("HTTP {}", r.status()),
        other => other.to_string(),
    })?;
    ws.send(Message::text(message)).map_err(|e| e.to_string())?;
    loop {
        match ws.read().map_err(|e| e.to_string())? {
            Message::Text(t) => return Ok((t.to_string(), ws)),
            Message::Binary(b) => return Ok((String::from_utf8_lossy(&b).into_owned(), ws)),
            _ => continue,
        }
    }
}

/// Waits up to `limit` for the server to close the WebSocket.
fn hold_open(mut ws: WebSocket<TcpStream>, limit: Duration) -> ExitCode {
    let start = Instant::now();
    println!(
        "holding the WebSocket open for up to {:.1} s",
        limit.as_secs_f64()
    );
    loop {
        let Some(left) = limit.checked_sub(start.elapsed()) else {
            println!("still open after {:.1} s", limit.as_secs_f64());
            return ExitCode::FAILURE;
        };
        let _ = ws
            .get_mut()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match ws.read() {
            Ok(_) => continue,
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                println!(
                    "closed by the server after {:.3} s",
                    start.elapsed().as_secs_f64()
                );
                return ExitCode::SUCCESS;
            }
        }
    }
}
