//! A stand-in for Flashphoner WCS: accepts WebSocket upgrades (plain or TLS with a self-signed
//! certificate, like WCS on `https://localhost:8443`), echoes every frame, and tells the
//! client which request headers it received.
//!
//! - A WebSocket text message `__headers__` is answered with the handshake's request headers.
//! - A plain HTTP request is answered `200` with the request line and headers as the body.
//!
//! Headers are reported one per line as `Name: value`, in the order and case received.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::{X509NameBuilder, X509};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// The text message that asks for the handshake's headers.
pub const HEADERS_REQUEST: &str = "__headers__";

const MAX_HEAD: usize = 64 * 1024;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A running mock; stops when dropped.
pub struct MockWcs {
    addr: SocketAddr,
    tls: bool,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl MockWcs {
    /// Starts on a free port of 127.0.0.1.
    pub fn start(tls: bool) -> io::Result<MockWcs> {
        Self::bind("127.0.0.1:0".parse().expect("literal address"), tls)
    }

    pub fn bind(addr: SocketAddr, tls: bool) -> io::Result<MockWcs> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let acceptor = if tls {
            Some(Arc::new(self_signed_acceptor()?))
        } else {
            None
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let acceptor = acceptor.clone();
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                    let _ = serve(conn, acceptor.as_deref());
                });
            }
        });
        Ok(MockWcs {
            addr,
            tls,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL for nginx's `proxy_pass`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// Blocks the calling thread while the mock serves (for the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MockWcs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn self_signed() -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(365)?)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok((cert.build(), key))
}

fn self_signed_acceptor() -> io::Result<SslAcceptor> {
    let build = || -> Result<SslAcceptor, openssl::error::ErrorStack> {
        let (cert, key) = self_signed()?;
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
        acceptor.set_private_key(&key)?;
        acceptor.set_certificate(&cert)?;
        Ok(acceptor.build())
    };
    build().map_err(io::Error::other)
}

fn serve(conn: TcpStream, acceptor: Option<&SslAcceptor>) -> io::Result<()> {
    let mut stream: Box<dyn Stream> = match acceptor {
        Some(a) => Box::new(a.accept(conn.try_clone()?).map_err(io::Error::other)?),
        None => Box::new(conn.try_clone()?),
    };
    loop {
        let Some((head, rest)) = read_head(&mut stream)? else {
            return Ok(());
        };
        let request = Request::parse(&head);
        if request
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            return websocket(stream, &request, rest);
        }
        let body = request.report();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        if request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            let _ = conn.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn websocket(mut stream: Box<dyn Stream>, request: &Request, rest: Vec<u8>) -> io::Result<()> {
    let key = request.header("sec-websocket-key").unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    stream.flush()?;
    let mut ws = WebSocket::from_partially_read(stream, rest, Role::Server, None);
    loop {
        let reply = match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == HEADERS_REQUEST => {
                Message::text(request.report())
            }
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => m,
            Ok(Message::Close(_)) | Err(_) => return Ok(()),
            Ok(_) => continue,
        };
        if ws.send(reply).is_err() {
            return Ok(());
        }
    }
}

/// Reads up to the end of the request head; returns it and any bytes read past it.
fn read_head(stream: &mut dyn Stream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Request {
    line: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn parse(head: &[u8]) -> Request {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        Request { line, headers }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn report(&self) -> String {
        let mut out = format!("{}\n", self.line);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out
    }
}

/// Writes a fresh self-signed certificate and key for `localhost` as PEM files (for tests
/// and the demo that put TLS in front of nginx).
pub fn write_self_signed(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> io::Result<()> {
    let (cert, key) = self_signed().map_err(io::Error::other)?;
    std::fs::write(cert_path, cert.to_pem().map_err(io::Error::other)?)?;
    std::fs::write(
        key_path,
        key.private_key_to_pem_pkcs8().map_err(io::Error::other)?,
    )?;
    Ok(())
}
