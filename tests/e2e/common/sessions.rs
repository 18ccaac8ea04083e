//! Helpers for the open-session tests: a location with `wcs_token_auth_session_check`, telling
//! a WebSocket that nginx closed from one that is merely quiet, and counting sockets.

use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

use tungstenite::{Error, Message};

use super::{wss_location, Ws};

/// The article's location with open sessions re-checked every `interval`.
pub fn checked_location(upstream: &str, interval: &str, extra: &str) -> String {
    wss_location(
        upstream,
        &format!("wcs_token_auth_session_check {interval};\n            {extra}"),
    )
}

/// Waits up to `timeout` for nginx to close `ws`; returns how long that took, or `None` if it
/// is still open (frames that arrive meanwhile are dropped).
pub fn wait_closed(ws: &mut Ws, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let left = timeout.checked_sub(start.elapsed())?;
        let _ = ws
            .get_mut()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(_) => continue,
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                if start.elapsed() >= timeout {
                    return None;
                }
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// A frame goes through and comes back: the session is open end to end.
pub fn echoes(ws: &mut Ws, text: &str) -> bool {
    let _ = ws.get_mut().set_read_timeout(Some(Duration::from_secs(5)));
    if ws.send(Message::text(text)).is_err() {
        return false;
    }
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return t.as_str() == text,
            Ok(Message::Binary(_)) => return false,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// Established TCP connections to local port `port` (the nginx → mock WCS side when `port`
/// is the mock's).
pub fn established_to(port: u16) -> usize {
    let out = Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Lines of the error log that contain `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}
