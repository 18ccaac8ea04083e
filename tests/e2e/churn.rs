//! Sustained load while token files come and go by the thousand and nginx reloads: every
//! answer is checked against what the token directory held when the request was made.
//!
//! Rules (times are the test's monotonic clock; the worker's is the same clock):
//! - a token whose file existed from before the request was sent until after its answer came
//!   back must be accepted;
//! - a token removed at `t` must be refused for every request sent after
//!   `t + cache_ttl + MARGIN_MS` (the worker's clock counts whole milliseconds, so its view
//!   of an interval can be up to 1 ms short; the rest of the margin is slack);
//! - a token that never existed is always refused;
//! - a request is failed when it gets no complete answer on a fresh connection, or an answer
//!   other than 200/403. An idle keep-alive connection closed by a worker leaving after a
//!   reload is not a failed request (browsers retry on a fresh connection; so does the client).
//!
//! - with `wcs_token_auth_session_check`, a WebSocket kept open on a churn token must be
//!   closed after its token's removal began (never before) and by the removal's end (or the
//!   handshake, if later) + the interval + 100 ms, across reloads too.
//!
//! `WCS_LONG=1` runs for five minutes with 20 reloads instead of 12 s with 4.

use std::collections::{HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use crate::common::traffic::{long_run, report, Answer, Client, Rng};
use crate::common::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;

const TTL_MS: u64 = 300;
const MARGIN_MS: u64 = 2;
const LIVE_POOL: usize = 300;
const RECENTLY_REMOVED: usize = 600;
const STABLE: usize = 20;
const CLIENTS: usize = 4;
/// Threads that each keep one WebSocket open on a churn token until nginx closes it.
const HOLDERS: usize = 4;
const SESSION_CHECK_MS: u64 = 300;
/// The close bound beyond the interval.
const CLOSE_SLACK_MS: u64 = 100;

struct Life {
    created: Instant,
    /// When `rm` was about to run.
    removing: Option<Instant>,
    /// When `rm` had returned.
    removed: Option<Instant>,
}

#[derive(Default)]
struct Store {
    lives: HashMap<String, Life>,
    live: VecDeque<String>,
    recently_removed: VecDeque<String>,
    stable: Vec<String>,
    created: u64,
    deleted: u64,
}

#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    websockets: u64,
    accepted: u64,
    refused: u64,
    /// Accepted although removed, within the allowed bound: the cache at work.
    accepted_after_removal_within_ttl: u64,
    /// The latest such accept, counted from the end of the removal.
    latest_accept_after_removal: Duration,
    /// Refusals that the revocation bound required (sent after removal + ttl + margin).
    refusals_required_by_bound: u64,
    wrong: Vec<String>,
    failed: Vec<String>,
    idle_closes: u64,
    connections: u64,
    /// Handshakes whose WebSocket the session check closed before the echo (the token's
    /// removal had begun): counted as accepted.
    closed_on_revoke: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.requests += o.requests;
        self.websockets += o.websockets;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.accepted_after_removal_within_ttl += o.accepted_after_removal_within_ttl;
        self.latest_accept_after_removal = self
            .latest_accept_after_removal
            .max(o.latest_accept_after_removal);
        self.refusals_required_by_bound += o.refusals_required_by_bound;
        self.wrong.extend(o.wrong);
        self.failed.extend(o.failed);
        self.idle_closes += o.idle_closes;
        self.connections += o.connections;
        self.closed_on_revoke += o.closed_on_revoke;
    }
}

#[derive(Clone, Copy)]
enum Pick {
    Stable,
    Live,
    Removed,
    Stranger,
}

/// Judges one answer against the token's history; `now` is after the answer arrived.
fn judge(
    store: &Store,
    tally: &mut Tally,
    token: &str,
    sent: Instant,
    got: Instant,
    answer: &Answer,
) {
    let ttl = Duration::from_millis(TTL_MS + MARGIN_MS);
    let life = store.lives.get(token);
    let status = match answer {
        Answer::Status(s) => *s,
        Answer::Failed(e) => {
            tally.failed.push(format!("{token}: {e}"));
            return;
        }
    };
    match status {
        200 | 101 => {
            tally.accepted += 1;
            match life {
                None => tally
                    .wrong
                    .push(format!("{token}: never existed, accepted")),
                Some(l) => match l.removed {
                    Some(end) if sent > end + ttl => tally.wrong.push(format!(
                        "{token}: accepted {:?} after its removal",
                        sent - end
                    )),
                    Some(end) => {
                        tally.accepted_after_removal_within_ttl += 1;
                        tally.latest_accept_after_removal = tally
                            .latest_accept_after_removal
                            .max(sent.saturating_duration_since(end));
                    }
                    None => {}
                },
            }
        }
        403 => {
            tally.refused += 1;
            if let Some(l) = life {
                let removal_began_in_time = l.removing.is_some_and(|r| r <= got);
                if l.created <= sent && !removal_began_in_time {
                    tally
                        .wrong
                        .push(format!("{token}: refused while its file existed"));
                }
                if l.removed.is_some_and(|end| sent > end + ttl) {
                    tally.refusals_required_by_bound += 1;
                }
            }
        }
        other => tally.failed.push(format!("{token}: status {other}")),
    }
}

/// A WebSocket handshake with a token, one frame echoed, closed: the handshake's status.
fn websocket(port: u16, token: &str) -> Answer {
    let mut req = format!("ws://127.0.0.1:{port}/wss")
        .into_client_request()
        .expect("request");
    req.headers_mut().append(
        "Cookie",
        HeaderValue::from_str(&format!("AUTH={token}")).expect("value"),
    );
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return Answer::Failed(format!("ws connect: {e}")),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    match tungstenite::client::client(req, stream) {
        Ok((mut ws, _)) => {
            let echoed = ws
                .send(tungstenite::Message::text("churn"))
                .and_then(|_| ws.read());
            let _ = ws.close(None);
            match echoed {
                Ok(m) if m.to_text().is_ok_and(|t| t == "churn") => Answer::Status(101),
                Ok(m) => Answer::Failed(format!("ws echo: {m:?}")),
                Err(e) => Answer::Failed(format!("ws echo: {e}")),
            }
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Answer::Status(resp.status().as_u16())
        }
        Err(e) => Answer::Failed(format!("ws handshake: {e}")),
    }
}

fn client_loop(port: u16, seed: u64, store: &Mutex<Store>, stop: &AtomicBool) -> Tally {
    let mut rng = Rng::new(seed);
    let mut client = Client::new(port);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let pick = match rng.below(100) {
            0..=14 => Pick::Stable,
            15..=64 => Pick::Live,
            65..=89 => Pick::Removed,
            _ => Pick::Stranger,
        };
        let token = {
            let s = store.lock().unwrap();
            let from = |v: &VecDeque<String>, rng: &mut Rng| {
                (!v.is_empty()).then(|| v[rng.below(v.len())].clone())
            };
            match pick {
                Pick::Stable => Some(s.stable[rng.below(s.stable.len())].clone()),
                Pick::Live => from(&s.live, &mut rng),
                Pick::Removed => from(&s.recently_removed, &mut rng),
                Pick::Stranger => Some(format!("stranger{}", rng.token())),
            }
        };
        let Some(token) = token else { continue };
        let as_websocket = matches!(pick, Pick::Live) && rng.chance(4);
        let sent = Instant::now();
        let answer = if as_websocket {
            tally.websockets += 1;
            websocket(port, &token)
        } else {
            client.get("/check", &[("Cookie", &format!("AUTH={token}"))])
        };
        let got = Instant::now();
        tally.requests += 1;
        let revoked = |t: &str| {
            let s = store.lock().unwrap();
            s.lives.get(t).is_some_and(|l| l.removing.is_some())
        };
        let answer = match answer {
            // A session is tracked from the access phase on: its token removed before the
            // upstream's 101 came back, the round may close it during the handshake.
            Answer::Failed(e)
                if as_websocket
                    && (e.starts_with("ws echo") || e.starts_with("ws handshake"))
                    && revoked(&token) =>
            {
                tally.closed_on_revoke += 1;
                Answer::Status(101)
            }
            other => other,
        };
        judge(
            &store.lock().unwrap(),
            &mut tally,
            &token,
            sent,
            got,
            &answer,
        );
    }
    tally.idle_closes = client.idle_closes;
    tally.connections = client.connections;
    tally
}

/// What the session holders saw.
#[derive(Default, Debug)]
struct Sessions {
    /// Upgrades, each kept open until closed.
    opened: u64,
    /// Handshakes refused (403): the token went while it was picked.
    refused: u64,
    closed_by_nginx: u64,
    /// Still open at the end of the run, closed by the test.
    closed_by_test: u64,
    /// Closed before its token's removal began.
    early: Vec<String>,
    /// Closed later than the bound.
    late: Vec<String>,
    failed: Vec<String>,
    latest_close: Duration,
}

/// Keeps one WebSocket open at a time on a live churn token and judges its close.
fn hold_loop(port: u16, seed: u64, store: &Mutex<Store>, stop: &AtomicBool) -> Sessions {
    let mut rng = Rng::new(seed);
    let mut out = Sessions::default();
    let bound = Duration::from_millis(SESSION_CHECK_MS + CLOSE_SLACK_MS);
    while !stop.load(Ordering::Relaxed) {
        let token = {
            let s = store.lock().unwrap();
            (!s.live.is_empty()).then(|| s.live[rng.below(s.live.len())].clone())
        };
        let Some(token) = token else {
            sleep(Duration::from_millis(5));
            continue;
        };
        let mut ws = match ws_connect_result(port, &token) {
            Ok(ws) => ws,
            Err(Answer::Status(403)) => {
                out.refused += 1;
                continue;
            }
            Err(other) => {
                out.failed.push(format!("{token}: {other:?}"));
                continue;
            }
        };
        let opened = Instant::now();
        out.opened += 1;
        let closed = loop {
            if stop.load(Ordering::Relaxed) {
                break None;
            }
            let _ = ws
                .get_mut()
                .set_read_timeout(Some(Duration::from_millis(20)));
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break Some(Instant::now()),
            }
        };
        let Some(closed) = closed else {
            let _ = ws.close(None);
            out.closed_by_test += 1;
            break;
        };
        out.closed_by_nginx += 1;
        let s = store.lock().unwrap();
        let life = s.lives.get(&token);
        match life.and_then(|l| l.removing.map(|r| (r, l.removed))) {
            Some((removing, _)) if removing > closed => out
                .early
                .push(format!("{token}: closed before its removal began")),
            None => out
                .early
                .push(format!("{token}: closed while its file existed")),
            Some((removing, removed)) => {
                let from = removed.unwrap_or(removing).max(opened);
                let took = closed.saturating_duration_since(from);
                out.latest_close = out.latest_close.max(took);
                if took > bound {
                    out.late
                        .push(format!("{token}: closed {took:?} after its removal"));
                }
            }
        }
    }
    out
}

/// A WebSocket handshake with a token, kept open: the socket, or how the handshake ended.
fn ws_connect_result(port: u16, token: &str) -> Result<Ws, Answer> {
    let mut req = format!("ws://127.0.0.1:{port}/wss")
        .into_client_request()
        .expect("request");
    req.headers_mut().append(
        "Cookie",
        HeaderValue::from_str(&format!("AUTH={token}")).expect("value"),
    );
    let stream = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| Answer::Failed(format!("ws connect: {e}")))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    match tungstenite::client::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Err(Answer::Status(resp.status().as_u16()))
        }
        Err(e) => Err(Answer::Failed(format!("ws handshake: {e}"))),
    }
}

/// Creates and removes token files, oldest first, keeping about `LIVE_POOL` of them.
fn churn_loop(prefix: &Prefix, seed: u64, store: &Mutex<Store>, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..5 {
            let token = rng.token();
            prefix.add_token(&token);
            let mut s = store.lock().unwrap();
            s.lives.insert(
                token.clone(),
                Life {
                    created: Instant::now(),
                    removing: None,
                    removed: None,
                },
            );
            s.live.push_back(token);
            s.created += 1;
        }
        loop {
            let token = {
                let mut s = store.lock().unwrap();
                if s.live.len() <= LIVE_POOL {
                    break;
                }
                let token = s.live.pop_front().expect("non-empty");
                if let Some(l) = s.lives.get_mut(&token) {
                    l.removing = Some(Instant::now());
                }
                token
            };
            prefix.remove_token(&token);
            let mut s = store.lock().unwrap();
            if let Some(l) = s.lives.get_mut(&token) {
                l.removed = Some(Instant::now());
            }
            s.recently_removed.push_back(token);
            if s.recently_removed.len() > RECENTLY_REMOVED {
                s.recently_removed.pop_front();
            }
            s.deleted += 1;
        }
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn load_with_token_churn_and_reloads_gives_no_wrong_answer() {
    let (duration, reloads) = if long_run() {
        (Duration::from_secs(300), 20)
    } else {
        (Duration::from_secs(12), 4)
    };
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        "location = /check {{ wcs_token_auth tokens; root html; try_files /index.html =404; }}\n{}",
        wss_location(
            &mock.url(),
            &format!("wcs_token_auth_session_check {SESSION_CHECK_MS}ms;")
        )
    );
    let nginx = Nginx::start(&format!("wcs_token_auth_cache_ttl {TTL_MS}ms;"), &server);
    let port = nginx.port;

    let store = Mutex::new(Store::default());
    {
        let mut s = store.lock().unwrap();
        for i in 0..STABLE {
            let t = format!("stable-{i}");
            nginx.prefix.add_token(&t);
            s.lives.insert(
                t.clone(),
                Life {
                    created: Instant::now(),
                    removing: None,
                    removed: None,
                },
            );
            s.stable.push(t);
        }
    }
    // WebSockets opened before the first reload and used throughout.
    let mut open: Vec<Ws> = (0..10)
        .map(|i| {
            nginx
                .ws("/wss", &[("Cookie", &format!("AUTH=stable-{i}"))])
                .expect("upgrade")
        })
        .collect();

    let stop = AtomicBool::new(false);
    let mut reloads_done = 0;
    let (tally, sessions) = thread::scope(|scope| {
        let churner = scope.spawn(|| churn_loop(&nginx.prefix, 7, &store, &stop));
        let holders: Vec<_> = (0..HOLDERS)
            .map(|i| {
                let (store, stop) = (&store, &stop);
                scope.spawn(move || hold_loop(port, 200 + i as u64, store, stop))
            })
            .collect();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (store, stop) = (&store, &stop);
                scope.spawn(move || client_loop(port, 100 + i as u64, store, stop))
            })
            .collect();
        let start = Instant::now();
        let every = duration / (reloads + 1);
        // A slow reload on a busy machine delays the next ones; all of them run.
        while start.elapsed() < duration || reloads_done < reloads {
            sleep(Duration::from_millis(200));
            if start.elapsed() >= every * (reloads_done + 1) && reloads_done < reloads {
                nginx.signal_reload();
                reloads_done += 1;
                for (i, ws) in open.iter_mut().enumerate() {
                    let text = format!("after reload {reloads_done} on {i}");
                    assert_eq!(roundtrip(ws, &text), text, "open WebSocket survives");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        churner.join().expect("churner");
        let mut tally = Tally::default();
        for c in clients {
            tally.add(c.join().expect("client"));
        }
        let mut sessions = Sessions::default();
        for h in holders {
            let o = h.join().expect("holder");
            sessions.opened += o.opened;
            sessions.refused += o.refused;
            sessions.closed_by_nginx += o.closed_by_nginx;
            sessions.closed_by_test += o.closed_by_test;
            sessions.early.extend(o.early);
            sessions.late.extend(o.late);
            sessions.failed.extend(o.failed);
            sessions.latest_close = sessions.latest_close.max(o.latest_close);
        }
        (tally, sessions)
    });

    for (i, ws) in open.iter_mut().enumerate() {
        assert_eq!(roundtrip(ws, &format!("end {i}")), format!("end {i}"));
    }
    let after = nginx.get("/check", &[("Cookie", "AUTH=stable-0")]);
    assert_eq!(after.status, 200, "a valid request after the run");
    nginx.assert_no_crash();
    // nginx logged exactly the requests that got an answer (plus the 10 long-lived
    // WebSockets, logged when they close, and the check above): no request was read and
    // then dropped, so every idle close retried was really idle.
    let kept = open.len();
    for mut ws in open.drain(..) {
        ws.close(None).expect("close");
        while ws.read().is_ok() {}
    }
    let expected = (tally.requests + sessions.opened + sessions.refused) as usize + kept + 1;
    let logged = nginx.access_lines(expected).len();

    let s = store.lock().unwrap();
    report(&format!(
        "churn: {} requests ({} WebSocket handshakes, {} accepted, {} refused) in {:?}, \
         {} reloads, {} token files created, {} deleted, {} open WebSockets kept, \
         {} refusals required by the revocation bound, {} accepts within cache_ttl ({TTL_MS} ms) \
         after removal (latest sent {:?} after it), {} idle keep-alive closes retried, {} wrong answers, {} failed requests; \
         held sessions: {} opened, {} closed by nginx on revoke (latest {:?} after the removal, bound {} ms), \
         {} early closes, {} late closes, {} failed",
        tally.requests,
        tally.websockets,
        tally.accepted,
        tally.refused,
        duration,
        reloads_done,
        s.created + STABLE as u64,
        s.deleted,
        kept,
        tally.refusals_required_by_bound,
        tally.accepted_after_removal_within_ttl,
        tally.latest_accept_after_removal,
        tally.idle_closes,
        tally.wrong.len(),
        tally.failed.len(),
        sessions.opened,
        sessions.closed_by_nginx,
        sessions.latest_close,
        SESSION_CHECK_MS + CLOSE_SLACK_MS,
        sessions.early.len(),
        sessions.late.len(),
        sessions.failed.len(),
    ));
    assert!(
        sessions.early.is_empty(),
        "early closes: {:?}",
        sessions.early
    );
    assert!(sessions.late.is_empty(), "late closes: {:?}", sessions.late);
    assert!(sessions.failed.is_empty(), "{:?}", sessions.failed);
    assert!(
        sessions.closed_by_nginx >= 10,
        "sessions were closed on revoke: {sessions:?}"
    );
    assert!(
        tally.wrong.is_empty(),
        "{} wrong answers, first: {:?}",
        tally.wrong.len(),
        &tally.wrong[..tally.wrong.len().min(10)]
    );
    assert!(
        tally.failed.is_empty(),
        "{} failed requests, first: {:?}",
        tally.failed.len(),
        &tally.failed[..tally.failed.len().min(10)]
    );
    assert_eq!(reloads_done, reloads);
    assert_eq!(
        logged, expected,
        "requests logged by nginx = requests answered"
    );
    assert!(s.deleted >= 1000, "thousands of token files: {}", s.deleted);
    assert!(
        tally.refusals_required_by_bound >= 100,
        "the revocation bound was exercised: {tally:?}"
    );
    // Every refusal wrote exactly one line, every closed session one, and nothing else did.
    let (closes, lines): (Vec<String>, Vec<String>) = nginx
        .module_log_lines()
        .into_iter()
        .partition(|l| l.contains("closed session: token revoked"));
    assert_eq!(
        closes.len() as u64,
        sessions.closed_by_nginx + tally.closed_on_revoke
    );
    assert_eq!(
        lines.len() as u64,
        tally.refused + sessions.refused,
        "one log line per refusal; e.g. {:?}",
        lines.iter().find(|l| !l.contains("unknown token"))
    );
    assert!(lines.iter().all(|l| l.contains("unknown token in cookie")));
}
