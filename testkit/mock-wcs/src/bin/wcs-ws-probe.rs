//! `wcs-ws-probe URL [--cookie NAME=VALUE] [--origin ORIGIN] [--header "NAME: VALUE"]... [--message TEXT]`
//!
//! Opens a WebSocket like a browser page would, sends one text frame and prints the echo.
//! Exit status 0 when the upgrade succeeded and the frame came back, 1 otherwise. Plain
//! `ws://` only: put it in front of nginx's plain listener, or use a browser for `wss://`.

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::{Error, HandshakeError, Message};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let (mut cookie, mut origin, mut message) = (None, None, "hello WCS".to_string());
    let mut extra = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
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
             [--header \"NAME: VALUE\"]... [--message TEXT]"
        );
        return ExitCode::from(2);
    };
    match probe(&url, cookie, origin, &extra, &message) {
        Ok(echo) => {
            println!("upgraded (101); sent {message:?}, WCS echoed {echo:?}");
            ExitCode::SUCCESS
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
) -> Result<String, String> {
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
            Message::Text(t) => return Ok(t.to_string()),
            Message::Binary(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => continue,
        }
    }
}
