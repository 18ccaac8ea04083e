//! `wcs_token_auth_session_check`: open WebSockets whose token stops being valid are closed,
//! within the interval plus 100 ms, and only those.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use crate::common::sessions::*;
use crate::common::*;

/// The bound the manual promises beyond the interval.
const SLACK: Duration = Duration::from_millis(100);

fn start(mock: &MockWcs, interval: &str, extra: &str) -> Nginx {
    Nginx::start("", &checked_location(&mock.url(), interval, extra))
}

fn open(nginx: &Nginx, token: &str) -> Ws {
    let (k, v) = cookie(token);
    nginx.ws("/wss", &[(k, &v)]).expect("upgrade")
}

#[test]
fn revoking_a_token_closes_its_sessions_within_the_bound_and_spares_the_others() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "1s", "");
    nginx.prefix.add_token("doomed");
    nginx.prefix.add_token("kept");
    let mut doomed = [open(&nginx, "doomed"), open(&nginx, "doomed")];
    let mut kept = open(&nginx, "kept");
    for ws in &mut doomed {
        assert!(echoes(ws, "before"));
    }
    assert!(echoes(&mut kept, "before"));
    assert_eq!(established_to(mock.port()), 3, "three upstream connections");

    nginx.prefix.remove_token("doomed");
    let t = Instant::now();
    for ws in &mut doomed {
        let closed = wait_closed(ws, Duration::from_secs(3)).map(|_| t.elapsed());
        let closed = closed.expect("the revoked session is closed");
        assert!(closed <= Duration::from_secs(1) + SLACK, "{closed:?}");
    }
    assert!(
        echoes(&mut kept, "after"),
        "the valid session keeps echoing"
    );
    sleep(Duration::from_millis(200));
    assert_eq!(
        established_to(mock.port()),
        1,
        "their upstream sockets closed"
    );

    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "wcs_token_auth: closed session: token revoked"),
        2,
        "{log}"
    );
    assert!(!log.contains("doomed"), "the token is never logged:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("closed session"))
        .unwrap_or_default();
    assert!(
        line.contains("[error]") && line.contains("client: 127.0.0.1"),
        "{line}"
    );
    eprintln!("{line}");
    assert!(!log.contains("[alert]"), "{log}");
    let lines = nginx.access_lines(2);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" 101 status=session_revoked"))
            .count(),
        2,
        "{lines:?}"
    );
    kept.close(None).unwrap();
    drop(kept);
    let lines = nginx.access_lines(3);
    assert!(lines[2].contains(" 101 status=allowed"), "{lines:?}");
    nginx.assert_no_crash();
}

#[test]
fn max_age_expires_a_session_unless_its_file_is_touched() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "500ms", "wcs_token_auth_max_age 3s;");
    nginx.prefix.add_token("leased");
    let leased_at = Instant::now();
    nginx.prefix.add_token("renewed");
    let mut leased = open(&nginx, "leased");
    let mut renewed = open(&nginx, "renewed");
    let touch = |token: &str| {
        let f = fs::File::options()
            .write(true)
            .open(nginx.prefix.tokens().join(token))
            .unwrap();
        f.set_modified(SystemTime::now()).unwrap();
    };
    let start = Instant::now();
    // The lease ends when the file is over 3 s old (whole seconds: between 3 s and 4 s after it
    // was written); at 2.5 s it is still valid, so an early expiry fails here.
    let still_valid_at = Duration::from_millis(2500);
    let mut checked_early = false;
    while start.elapsed() < Duration::from_secs(6) {
        if !checked_early && leased_at.elapsed() >= still_valid_at {
            assert!(
                echoes(&mut leased, "still"),
                "the lease is still valid at 2.5 s"
            );
            checked_early = true;
        }
        touch("renewed");
        assert!(echoes(&mut renewed, "tick"), "a renewed lease stays open");
        let pause = if checked_early {
            Duration::from_millis(300)
        } else {
            still_valid_at.saturating_sub(leased_at.elapsed())
        };
        sleep(pause.min(Duration::from_millis(300)));
    }
    assert!(checked_early);
    let closed = wait_closed(&mut leased, Duration::from_millis(1));
    assert!(closed.is_some(), "the untouched lease ended");
    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "closed session: token expired"),
        1,
        "{log}"
    );
    let lines = nginx.access_lines(1);
    assert!(
        lines[0].contains(" 101 status=session_expired"),
        "{lines:?}"
    );
}

#[test]
fn a_request_answered_but_still_discarding_its_body_is_left_alone() {
    // nginx answers a static file at once and keeps the request only to read and drop the
    // rest of its body (lingering): the request is finalized, and revoking its token now must
    // neither relabel nor log it.
    let nginx = Nginx::start(
        "",
        r#"location = /index.html {
            wcs_token_auth tokens;
            wcs_token_auth_session_check 200ms;
        }"#,
    );
    nginx.prefix.add_token("answered");
    let mut s = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    let head = "GET /index.html HTTP/1.1\r\nHost: localhost\r\nCookie: AUTH=answered\r\n\
                Connection: close\r\nContent-Length: 100000\r\n\r\n0123456789";
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("static page") {
        let n = s.read(&mut buf).expect("the answer comes before the body");
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    nginx.prefix.remove_token("answered");
    // Five rounds while nginx still reads the body (its lingering_timeout is 5 s).
    sleep(Duration::from_secs(1));
    let log = nginx.prefix.error_log();
    assert_eq!(count_lines(&log, "closed session"), 0, "{log}");
    assert_eq!(
        nginx.prefix.access_log(),
        "",
        "the request has not ended yet"
    );
    // The rest of the body arrives; the request ends as nginx meant it to.
    s.write_all(&[b'x'; 100_000 - 10]).unwrap();
    // nginx then lingers until the client stops sending: say so, and wait for its close.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = s.read_to_end(&mut got);
    let lines = nginx.access_lines(1);
    assert_eq!(lines.len(), 1, "{lines:?}\n{}", nginx.prefix.error_log());
    assert!(lines[0].contains(" 200 status=allowed"), "{lines:?}");
    assert_eq!(count_lines(&nginx.prefix.error_log(), "closed session"), 0);
    nginx.assert_no_crash();
}

#[test]
fn a_removed_directory_closes_every_session_of_it() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "500ms", "");
    nginx.prefix.add_token("a");
    nginx.prefix.add_token("b");
    let mut ws = [open(&nginx, "a"), open(&nginx, "b")];
    let moved = nginx.prefix.path().join("tokens.old");
    fs::rename(nginx.prefix.tokens(), &moved).unwrap();
    for w in &mut ws {
        let closed = wait_closed(w, Duration::from_secs(2));
        assert!(closed.is_some_and(|d| d <= Duration::from_millis(500) + SLACK));
    }
    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "closed session: token directory missing"),
        2,
        "{log}"
    );
    let lines = nginx.access_lines(2);
    assert!(
        lines.iter().all(|l| l.contains("status=session_revoked")),
        "{lines:?}"
    );
    fs::rename(&moved, nginx.prefix.tokens()).unwrap();
}

#[test]
fn an_unreadable_directory_keeps_every_session_with_one_crit_line_per_round() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "500ms", "");
    nginx.prefix.add_token("a");
    nginx.prefix.add_token("b");
    let mut ws = [open(&nginx, "a"), open(&nginx, "a"), open(&nginx, "b")];
    let tokens = nginx.prefix.tokens();
    fs::set_permissions(&tokens, fs::Permissions::from_mode(0o000)).unwrap();
    sleep(Duration::from_millis(2600));
    let log = nginx.prefix.error_log();
    fs::set_permissions(&tokens, fs::Permissions::from_mode(0o755)).unwrap();
    for w in &mut ws {
        assert!(echoes(w, "still here"), "kept while unreadable");
    }
    let crit = count_lines(&log, "[crit]");
    let kept = count_lines(&log, "cannot read token directory");
    let line = log
        .lines()
        .find(|l| l.contains("[crit]"))
        .unwrap_or_default();
    assert!(
        line.ends_with("open sessions kept (13: Permission denied)"),
        "{line}"
    );
    eprintln!("{line}");
    assert_eq!(crit, kept, "{log}");
    // 2.6 s at 500 ms: five or six rounds, one line each, however many sessions.
    assert!((5..=6).contains(&kept), "{kept} lines:\n{log}");
    assert!(!log.contains("closed session"), "{log}");
    assert!(nginx.prefix.access_log().is_empty());
}

#[test]
fn off_and_the_default_never_close_an_open_session() {
    let mock = MockWcs::start(false).unwrap();
    for extra in ["wcs_token_auth_session_check off;", ""] {
        let nginx = Nginx::start("", &wss_location(&mock.url(), extra));
        nginx.prefix.add_token("t");
        let mut ws = open(&nginx, "t");
        nginx.prefix.remove_token("t");
        assert_eq!(wait_closed(&mut ws, Duration::from_millis(1500)), None);
        assert!(echoes(&mut ws, "still here"));
        assert!(!nginx.prefix.error_log().contains("closed session"));
    }
}

#[test]
fn a_grant_without_a_token_is_not_tracked() {
    let mock = MockWcs::start(false).unwrap();
    let extra = "satisfy any; allow 127.0.0.1; deny all;";
    let nginx = start(&mock, "300ms", extra);
    let mut ws = nginx.ws("/wss", &[]).expect("allowed by address");
    assert_eq!(wait_closed(&mut ws, Duration::from_millis(1000)), None);
    assert!(echoes(&mut ws, "still here"));
}

#[test]
fn old_workers_keep_checking_after_a_reload_and_exit_once_their_sessions_end() {
    let mock = MockWcs::start(false).unwrap();
    let server = checked_location(&mock.url(), "500ms", "");
    let mut nginx = Nginx::start("", &server);
    nginx.prefix.add_token("doomed");
    nginx.prefix.add_token("kept");
    let mut doomed = open(&nginx, "doomed");
    let mut kept = open(&nginx, "kept");
    let old = nginx.worker_pids();
    nginx.reload("", &server);
    assert!(
        old.iter().all(|p| nginx.worker_pids().contains(p)),
        "old worker serves on"
    );

    nginx.prefix.remove_token("doomed");
    let closed = wait_closed(&mut doomed, Duration::from_secs(2));
    assert!(
        closed.is_some_and(|d| d <= Duration::from_millis(500) + SLACK),
        "{closed:?}"
    );
    assert!(echoes(&mut kept, "in the old worker"));
    assert!(
        old.iter().all(|p| nginx.worker_pids().contains(p)),
        "kept session keeps it"
    );

    kept.close(None).unwrap();
    drop(kept);
    let deadline = Instant::now() + Duration::from_secs(3);
    while old.iter().any(|p| nginx.worker_pids().contains(p)) {
        assert!(Instant::now() < deadline, "the old worker did not exit");
        sleep(Duration::from_millis(20));
    }
    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "closed session: token revoked"),
        1,
        "{log}"
    );
    nginx.assert_no_crash();
}

/// nginx under valgrind memcheck (scripts/memory.sh points `WCS_MEMCHECK_NGINX` at an nginx
/// built with NGX_DEBUG_PALLOC): `n` rounds of sessions closed by their client, by the module
/// on revoke (also one granted twice, through an internal redirect), and long static
/// responses closed on revoke. As one process, or (`reload`) as
/// master and workers with a reload halfway, after which the old worker closes a revoked
/// session it still serves and exits. Returns (memory errors, bytes definitely lost), summed
/// over every process valgrind followed.
fn memcheck_sessions(n: usize, reload: bool) -> (u64, u64) {
    let mock = MockWcs::start(false).unwrap();
    let prefix = Prefix::new();
    // Larger than any socket buffer: the response stays in progress while the client waits.
    fs::write(prefix.path().join("html/big"), vec![b'x'; 64 << 20]).unwrap();
    let port = free_port();
    // /redirected reaches @ws through try_files: one request granted twice.
    let server = format!(
        "{}
        location = /big {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check 200ms;
            root html;
        }}
        {}",
        checked_location(&mock.url(), "200ms", ""),
        redirecting_locations(&mock.url(), "tokens").replacen(
            "location /wss",
            "location /redirected",
            1
        )
    );
    let conf = prefix.write_conf(port, "", &server);
    if !reload {
        let text = fs::read_to_string(&conf).unwrap();
        let single = text.replacen("daemon off;", "daemon off;\nmaster_process off;", 1);
        fs::write(&conf, single).unwrap();
    }
    // One report per process: the workers are forks of the master.
    let vlog = prefix.path().join("logs/valgrind.%p.log");
    let nginx = std::env::var_os("WCS_MEMCHECK_NGINX").map_or_else(nginx_bin, Into::into);
    let mut child = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--leak-check=full",
            "--errors-for-leak-kinds=none",
        ])
        .args(["--num-callers=30", "--keep-debuginfo=yes"])
        .arg(format!("--log-file={}", vlog.display()))
        .arg(nginx)
        .arg("-p")
        .arg(prefix.path())
        .arg("-e")
        .arg(prefix.path().join("logs/error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn valgrind");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        sleep(Duration::from_millis(50));
    }
    let slow = Duration::from_secs(20); // nginx under valgrind is slow
    let mut held = None;
    for i in 0..n {
        if reload && i == n / 2 {
            // A session the old worker keeps serving after the reload, and closes on revoke.
            prefix.add_token("held");
            let (k, v) = cookie("held");
            let mut ws = ws_connect(port, "/wss", &[(k, &v)]).expect("upgrade");
            assert!(echoes(&mut ws, "before the reload"));
            prefix.signal("reload");
            sleep(Duration::from_secs(3)); // the new worker starts under valgrind
            assert!(echoes(&mut ws, "after the reload"));
            held = Some(ws);
        }
        let (kept, doomed) = (format!("kept{i}"), format!("doomed{i}"));
        prefix.add_token(&kept);
        prefix.add_token(&doomed);
        let (k, v) = cookie(&kept);
        let mut by_client = ws_connect(port, "/wss", &[(k, &v)]).expect("upgrade");
        let (k, v) = cookie(&doomed);
        let mut by_module = ws_connect(port, "/wss", &[(k, &v)]).expect("upgrade");
        let (k, v) = cookie(&doomed);
        let mut redirected = ws_connect(port, "/redirected", &[(k, &v)]).expect("upgrade");
        let mut download = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(
            &mut download,
            format!("GET /big HTTP/1.1\r\nHost: x\r\nCookie: AUTH={doomed}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert!(echoes(&mut by_client, "a"));
        assert!(echoes(&mut by_module, "b"));
        assert!(echoes(&mut redirected, "c"));
        prefix.remove_token(&doomed);
        for ws in [&mut by_module, &mut redirected] {
            assert!(wait_closed(ws, slow).is_some(), "closed on revoke");
        }
        by_client.close(None).unwrap();
        let _ = wait_closed(&mut by_client, slow);
        let mut sink = Vec::new();
        download.set_read_timeout(Some(slow)).unwrap();
        let _ = std::io::Read::read_to_end(&mut download, &mut sink);
        assert!(sink.len() < 64 << 20, "the download was cut short");
        prefix.remove_token(&kept);
    }
    let closed_by_module = 3 * n + usize::from(held.is_some());
    if let Some(mut ws) = held {
        prefix.remove_token("held");
        assert!(
            wait_closed(&mut ws, slow).is_some(),
            "the old worker closed it"
        );
    }
    sleep(Duration::from_secs(1));
    // SAFETY: kill with our child's pid and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
    let _ = child.wait();
    let log = prefix.error_log();
    assert!(
        !log.contains("[alert]") && !log.contains("exited on signal"),
        "{log}"
    );
    assert_eq!(
        count_lines(&log, "closed session: token revoked"),
        closed_by_module,
        "{log}"
    );
    let after = |report: &str, label: &str| -> u64 {
        report.rfind(label).map_or(0, |at| {
            let rest = report[at + label.len()..].trim_start();
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .collect();
            num.replace(',', "").parse().unwrap_or(0)
        })
    };
    let (mut errors, mut lost, mut processes) = (0, 0, 0);
    for entry in fs::read_dir(prefix.path().join("logs")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("valgrind.") {
            continue;
        }
        let report = fs::read_to_string(entry.path()).unwrap();
        assert!(report.contains("ERROR SUMMARY:"), "{name}: {report}");
        let e = after(&report, "ERROR SUMMARY:");
        if e > 0 {
            eprintln!("{report}");
        }
        errors += e;
        lost += after(&report, "definitely lost:");
        processes += 1;
    }
    let mode = if reload {
        "across a reload"
    } else {
        "one process"
    };
    eprintln!(
        "memcheck ({mode}, {processes} processes), {n} rounds of sessions: {errors} errors, \
         {lost} B definitely lost"
    );
    (errors, lost)
}

#[test]
#[ignore = "slow: run by scripts/memory.sh"]
fn memcheck_sessions_closed_by_the_module_and_by_clients() {
    let (short, long) = if crate::common::traffic::long_run() {
        (20, 100)
    } else {
        (5, 20)
    };
    for reload in [false, true] {
        let (e1, lost1) = memcheck_sessions(short, reload);
        let (e2, lost2) = memcheck_sessions(long, reload);
        assert_eq!((e1, e2), (0, 0), "valgrind found memory errors");
        assert_eq!(lost1, lost2, "definitely lost grows with sessions");
    }
}

/// Starts nginx with room for `connections` connections per worker (the harness's default is
/// 512): the configuration is edited and reloaded in place.
fn start_big(mock: &MockWcs, interval: &str, connections: usize) -> Nginx {
    enlarge(start(mock, interval, ""), connections)
}

fn enlarge(nginx: Nginx, connections: usize) -> Nginx {
    let events = format!("worker_connections {connections};");
    let rlimit = format!("worker_rlimit_nofile {};", connections + 100);
    reconfigure(nginx, &rlimit, Some(&events))
}

/// Adds `main` to the main context (and sets `events`), then reloads and waits until only the
/// new worker runs.
fn reconfigure(nginx: Nginx, main: &str, events: Option<&str>) -> Nginx {
    let conf = nginx.prefix.path().join("conf/nginx.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text = text.replacen(
        "worker_processes 1;",
        &format!("worker_processes 1;\n{main}"),
        1,
    );
    if let Some(events) = events {
        text = text.replace("worker_connections 512;", events);
    }
    fs::write(&conf, text).unwrap();
    let before = nginx.worker_pids();
    nginx.send_reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nginx.worker_pids().iter().all(|p| before.contains(p)) {
        assert!(Instant::now() < deadline, "no new worker");
        sleep(Duration::from_millis(20));
    }
    // Let the old worker leave before the test counts anything.
    while nginx.worker_pids().len() > 1 {
        assert!(Instant::now() < deadline, "the old worker stays");
        sleep(Duration::from_millis(20));
    }
    nginx
}

#[test]
fn of_a_thousand_sessions_exactly_the_five_hundred_revoked_are_closed() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = start_big(&mock, "1s", 2500);
    // 250 tokens, 4 sessions each; the first 125 tokens are revoked.
    let token = |i: usize| format!("tok{i:03}");
    for t in 0..250 {
        nginx.prefix.add_token(&token(t));
    }
    let mut sessions: Vec<(usize, Ws)> = (0..1000)
        .map(|i| (i % 250, open(&nginx, &token(i % 250))))
        .collect();
    assert_eq!(established_to(mock.port()), 1000);
    let t = Instant::now();
    for tok in 0..125 {
        nginx.prefix.remove_token(&token(tok));
    }
    // Removing 125 files takes a few ms; the bound is counted from the last one.
    let removed = t.elapsed();
    sleep((Duration::from_secs(1) + SLACK).saturating_sub(t.elapsed()) + removed);
    let mut closed_revoked = 0;
    for (tok, ws) in &mut sessions {
        let closed = wait_closed(ws, Duration::from_millis(1)).is_some();
        if *tok < 125 {
            assert!(
                closed,
                "a session of a revoked token is open after the bound"
            );
            closed_revoked += 1;
        } else {
            assert!(!closed, "a session of a valid token was closed");
        }
    }
    assert_eq!(closed_revoked, 500);
    for (tok, ws) in &mut sessions {
        if *tok >= 125 {
            assert!(echoes(ws, "kept"), "a valid session stopped echoing");
        }
    }
    assert_eq!(
        established_to(mock.port()),
        500,
        "their upstream sockets closed"
    );
    let log = nginx.prefix.error_log();
    assert_eq!(count_lines(&log, "closed session: token revoked"), 500);
    assert_eq!(
        count_lines(&nginx.prefix.access_log(), "status=session_revoked"),
        500
    );
    nginx.assert_no_crash();
}

/// The close latency: 200 sessions, each with its own token, removed at times spread over
/// three intervals; how long after its removal each one sees its socket closed.
#[test]
fn close_latency_distribution_stays_within_the_interval_plus_100ms() {
    use std::sync::mpsc;
    const N: usize = 200;
    let interval = Duration::from_secs(1);
    let mock = MockWcs::start(false).unwrap();
    let nginx = start_big(&mock, "1s", 1000);
    let token = |i: usize| format!("lat{i:03}");
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    for i in 0..N {
        nginx.prefix.add_token(&token(i));
        let mut ws = open(&nginx, &token(i));
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let closed = wait_closed(&mut ws, Duration::from_secs(10));
            let _ = tx.send((i, closed.map(|_| Instant::now())));
        }));
    }
    let start = Instant::now();
    let mut removed_at = vec![start; N];
    for (i, at) in removed_at.iter_mut().enumerate() {
        // Spread over 3 s with an odd step, so removals fall at every phase of the grid.
        let due = start + Duration::from_micros(i as u64 * 15_013);
        sleep(due.saturating_duration_since(Instant::now()));
        nginx.prefix.remove_token(&token(i));
        *at = Instant::now();
    }
    drop(tx);
    let mut latencies: Vec<Duration> = Vec::new();
    for (i, closed) in rx {
        let closed = closed.unwrap_or_else(|| panic!("session {i} was not closed"));
        latencies.push(closed.saturating_duration_since(removed_at[i]));
    }
    for r in readers {
        r.join().unwrap();
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100].as_millis();
    crate::common::traffic::report(&format!(
        "session close latency, session_check 1s, {N} samples: min {} ms, p50 {} ms, p90 {} ms, \
         p99 {} ms, max {} ms",
        latencies[0].as_millis(),
        pct(50),
        pct(90),
        pct(99),
        pct(100)
    ));
    assert_eq!(latencies.len(), N);
    assert!(
        latencies[N - 1] <= interval + SLACK,
        "{:?}",
        latencies[N - 1]
    );
}

/// CPU time the process has spent on a CPU, from the scheduler (nanoseconds).
fn cpu_ns(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How often the process went to sleep and was woken (its voluntary context switches).
fn wakeups(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The worker's CPU cost of the rounds: 10,000 open requests over `WCS_SESSION_BENCH_TOKENS`
/// tokens (1,000), held open with a request body that never arrives (one socket each, so the
/// worker stays far below the file limit), idle for `WCS_SESSION_BENCH_SECS` (20) with
/// `session_check 1s` and then with `off`.
#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn worker_cpu_of_rounds_with_ten_thousand_sessions() {
    use std::io::Write;
    use std::net::TcpStream;
    const SESSIONS: usize = 10_000;
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let secs = env("WCS_SESSION_BENCH_SECS", 20);
    let tokens = env("WCS_SESSION_BENCH_TOKENS", 1_000).clamp(1, SESSIONS as u64) as usize;
    let hold = |name: &str, check: &str| {
        format!(
            "location /{name} {{
                wcs_token_auth tokens;
                wcs_token_auth_session_check {check};
                client_body_timeout 1h;
                proxy_pass http://127.0.0.1:9/;
            }}"
        )
    };
    let server = format!("{}\n{}", hold("checked", "1s"), hold("unchecked", "off"));
    let nginx = enlarge(Nginx::start("", &server), SESSIONS + 500);
    let token = |i: usize| format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for t in 0..tokens {
        nginx.prefix.add_token(&token(t));
    }
    let worker = nginx.worker_pids()[0];
    let mut results = Vec::new();
    for path in ["unchecked", "checked"] {
        let mut held = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let mut s = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
            let req = format!(
                "POST /{path} HTTP/1.1\r\nHost: x\r\nCookie: AUTH={}\r\nContent-Length: 10\r\n\r\n",
                token(i % tokens)
            );
            s.write_all(req.as_bytes()).unwrap();
            held.push(s);
        }
        sleep(Duration::from_secs(2)); // every request has reached the access phase
        let (before, woken) = (cpu_ns(worker), wakeups(worker));
        sleep(Duration::from_secs(secs));
        let used = cpu_ns(worker) - before;
        // Rounds a second: with every client idle, the worker wakes only for its timer.
        let rounds = wakeups(worker).saturating_sub(woken) as f64 / secs as f64;
        results.push((path, used, rounds));
        if path == "checked" {
            // The same rounds close what is revoked: one token, its ten requests.
            nginx.prefix.remove_token(&token(0));
            sleep(Duration::from_millis(1200));
            let log = nginx.prefix.error_log();
            assert_eq!(
                count_lines(&log, "closed session: token revoked"),
                SESSIONS.div_ceil(tokens)
            );
        }
        drop(held);
        sleep(Duration::from_secs(1));
    }
    let pct = |ns: u64| ns as f64 / (secs as f64 * 1e9) * 100.0;
    let (off, on, rounds) = (results[0].1, results[1].1, results[1].2);
    let per_second_us = on.saturating_sub(off) as f64 / secs as f64 / 1e3;
    crate::common::traffic::report(&format!(
        "worker CPU with {SESSIONS} open requests over {tokens} tokens, idle {secs} s: \
         session_check off {:.3} % of a core, session_check 1s {:.3} % of a core \
         ({per_second_us:.0} us a second, {rounds:.0} rounds a second, {:.0} us per round)",
        pct(off),
        pct(on),
        per_second_us / rounds.max(1.0),
    ));
    nginx.assert_no_crash();
}

/// `nginx -s quit` with sessions tracked: the worker leaves as soon as its last session ends,
/// and `worker_shutdown_timeout` still ends the others on time.
#[test]
fn tracked_sessions_never_delay_quit_or_the_shutdown_timeout() {
    let mock = MockWcs::start(false).unwrap();
    for shutdown_timeout in [None, Some(Duration::from_secs(1))] {
        let mut nginx = start(&mock, "200ms", "");
        if let Some(t) = shutdown_timeout {
            let main = format!("worker_shutdown_timeout {}ms;", t.as_millis());
            nginx = reconfigure(nginx, &main, None);
        }
        nginx.prefix.add_token("t");
        let mut ws = open(&nginx, "t");
        assert!(echoes(&mut ws, "tracked"));
        nginx.prefix.signal("quit");
        let asked = Instant::now();
        let limit = match shutdown_timeout {
            // nginx keeps serving an open WebSocket through a graceful quit...
            None => {
                sleep(Duration::from_millis(700));
                assert!(echoes(&mut ws, "still served"));
                assert!(!nginx.worker_pids().is_empty());
                // ...until its client leaves: then the worker exits at once.
                ws.close(None).unwrap();
                drop(ws);
                Instant::now() + Duration::from_millis(500)
            }
            Some(t) => asked + t + Duration::from_millis(500),
        };
        while !nginx.worker_pids().is_empty() {
            assert!(
                Instant::now() < limit,
                "the worker outlived its sessions ({shutdown_timeout:?})"
            );
            sleep(Duration::from_millis(10));
        }
        eprintln!(
            "worker exited {:?} after quit ({shutdown_timeout:?})",
            asked.elapsed()
        );
        nginx.assert_no_crash();
    }
}

#[test]
fn nginx_t_refuses_a_bad_interval_and_a_repeat_and_takes_off_at_every_level() {
    let check = |http: &str, server: &str| {
        let prefix = Prefix::new();
        prefix.write_conf(free_port(), http, server);
        let out = prefix.test_conf();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for bad in ["0", "0s", "on", "1x", "-1s", "25d", "300000000y"] {
        let (ok, stderr) = check(&format!("wcs_token_auth_session_check {bad};"), "");
        assert!(!ok, "{bad}");
        let want = format!(
            "invalid value \"{bad}\" in \"wcs_token_auth_session_check\" directive, it must be a \
             time from 1ms to 24d, such as 1s or 500ms, or \"off\""
        );
        assert!(stderr.contains(&want), "{stderr}");
    }
    let twice = "location / { wcs_token_auth_session_check 1s; wcs_token_auth_session_check 2s; }";
    let (ok, stderr) = check("", twice);
    assert!(
        !ok && stderr.contains("\"wcs_token_auth_session_check\" directive is duplicate"),
        "{stderr}"
    );
    let levels = "wcs_token_auth_session_check 500ms;";
    let server =
        "wcs_token_auth_session_check off; location / { wcs_token_auth_session_check 1m30s; }";
    let (ok, stderr) = check(levels, server);
    assert!(ok, "{stderr}");
}

/// A location that inherits `session_check` from `server` tracks; one that says `off` does not.
#[test]
fn session_check_is_inherited_and_off_in_an_inner_block_wins() {
    let mock = MockWcs::start(false).unwrap();
    let server = format!(
        "wcs_token_auth_session_check 300ms;
        {}
        location /wss-unchecked {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check off;
            proxy_pass {};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection \"upgrade\";
        }}",
        wss_location(&mock.url(), ""),
        mock.url()
    );
    let nginx = Nginx::start("", &server);
    nginx.prefix.add_token("t");
    let (k, v) = cookie("t");
    let mut checked = nginx.ws("/wss", &[(k, &v)]).expect("upgrade");
    let mut unchecked = nginx.ws("/wss-unchecked", &[(k, &v)]).expect("upgrade");
    nginx.prefix.remove_token("t");
    assert!(wait_closed(&mut checked, Duration::from_secs(2)).is_some());
    assert!(echoes(&mut unchecked, "not tracked"));
}

/// HTTP/2: revoking resets the stream (curl sees RST_STREAM), the request is finalized once
/// and logged as `session_revoked`. (Whether the connection then carries another stream is
/// not tested: curl 7.88 fails a second request on a reused prior-knowledge h2c connection
/// even without the module.)
#[test]
fn over_http2_revoke_resets_the_stream() {
    let h2 = free_port();
    let http = format!(
        "server {{
        listen 127.0.0.1:{h2} http2;
        server_name h2;
        location /checked/ {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check 300ms;
            alias html/;
        }}
    }}"
    );
    let nginx = Nginx::start(&http, "");
    let curl = slow_h2_download(&nginx, h2);
    sleep(Duration::from_millis(1000));
    nginx.prefix.remove_token("t");
    // The client reads buffered data before it sees the reset: time nginx's close instead.
    let t = Instant::now();
    while !nginx.prefix.error_log().contains("closed session") {
        assert!(t.elapsed() < Duration::from_secs(3), "not closed");
        sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    let out = curl.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        downloaded(&stdout) < BIG,
        "the stream was cut: {stdout} {stderr}"
    );
    assert!(
        stderr.contains("stream 1 was not closed cleanly"),
        "{stderr}"
    );
    assert!(took <= Duration::from_millis(300) + SLACK, "{took:?}");
    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "closed session: token revoked"),
        1,
        "{log}"
    );
    assert!(!log.contains("[alert]"), "{log}");
    let access = nginx.access_lines(1);
    assert!(
        access[0].contains("/checked/big HTTP/2.0\" 200 status=session_revoked"),
        "{access:?}"
    );
    nginx.assert_no_crash();
}

/// The size of `html/big`: long enough at 2 MB/s to be cut in the middle.
const BIG: u64 = 16 << 20;

/// Writes `html/big`, issues token `t`, and starts curl fetching `/checked/big` over h2c at
/// 2 MB/s with it, reporting `%{http_code} %{size_download}` on stdout.
fn slow_h2_download(nginx: &Nginx, port: u16) -> std::process::Child {
    fs::write(
        nginx.prefix.path().join("html/big"),
        vec![b'x'; BIG as usize],
    )
    .unwrap();
    nginx.prefix.add_token("t");
    let url = format!("http://127.0.0.1:{port}/checked/big");
    Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--limit-rate", "2M"])
        .args(["-w", "%{http_code} %{size_download}", "-b", "AUTH=t"])
        .args(["-o", "/dev/null", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl")
}

/// The byte count of `slow_h2_download`'s report; the whole file when there is none.
fn downloaded(report: &str) -> u64 {
    report
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(BIG)
}

/// Wake-ups of `pid` from `epoll_wait` timeouts (a timer was due) during `dur`, by strace.
fn timer_wakeups(pid: i32, dur: Duration) -> usize {
    let out = Command::new("timeout")
        .arg(format!("{:.1}", dur.as_secs_f64()))
        .args([
            "strace",
            "-e",
            "trace=epoll_wait,epoll_pwait",
            "-p",
            &pid.to_string(),
        ])
        .output()
        .expect("strace");
    let text = String::from_utf8_lossy(&out.stderr);
    // A strace that could not attach counts nothing, which would pass for "no timer".
    assert!(
        !text.contains("attach: ptrace"),
        "strace could not attach to the worker (a container needs CAP_SYS_PTRACE): {text}"
    );
    text.lines()
        .filter(|l| l.starts_with("epoll_") && l.trim_end().ends_with("= 0"))
        .count()
}

/// A worker with nothing tracked arms no timer: it wakes up for the rounds only while a
/// session is open.
#[test]
fn a_worker_without_sessions_arms_no_timer() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: no strace");
        return;
    }
    let mock = MockWcs::start(false).unwrap();
    let nginx = start(&mock, "200ms", "");
    nginx.prefix.add_token("t");
    // The master listens before its worker is forked: wait for the worker.
    let deadline = Instant::now() + Duration::from_secs(5);
    let worker = loop {
        if let Some(&pid) = nginx.worker_pids().first() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no worker");
        sleep(Duration::from_millis(10));
    };
    let idle = timer_wakeups(worker, Duration::from_millis(1500));
    let mut ws = open(&nginx, "t");
    let tracked = timer_wakeups(worker, Duration::from_millis(1500));
    assert!(echoes(&mut ws, "x"));
    ws.close(None).unwrap();
    let _ = wait_closed(&mut ws, Duration::from_secs(2));
    drop(ws);
    sleep(Duration::from_millis(300));
    let after = timer_wakeups(worker, Duration::from_millis(1500));
    eprintln!("timer wake-ups in 1.5 s: idle {idle}, one session {tracked}, after it {after}");
    assert_eq!(idle, 0, "no session, no timer");
    assert!(
        tracked >= 4,
        "the rounds run while a session is open: {tracked}"
    );
    assert_eq!(after, 0, "the timer is gone with the last session");
}

/// A WebSocket location whose `try_files` redirects into the named location `@ws`, both
/// protected with `session_check`: the access phase, and the module, run twice for the one
/// request. `@ws` reads its tokens from `ws_dir`.
fn redirecting_locations(upstream: &str, ws_dir: &str) -> String {
    format!(
        r#"location /wss {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check 1s;
            try_files /nonexistent @ws;
        }}
        location @ws {{
            wcs_token_auth {ws_dir};
            wcs_token_auth_session_check 300ms;
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }}"#
    )
}

/// Asserts the one request was closed once, on revoke, with nothing worse logged.
fn assert_closed_once(nginx: &Nginx) {
    let log = nginx.prefix.error_log();
    assert_eq!(
        count_lines(&log, "closed session: token revoked"),
        1,
        "{log}"
    );
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{log}");
    sleep(Duration::from_millis(200));
    let lines = nginx.access_lines(1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("status=session_revoked"), "{lines:?}");
    nginx.assert_no_crash();
}

#[test]
fn a_request_granted_again_after_an_internal_redirect_is_one_session_of_the_last_location() {
    let mock = MockWcs::start(false).unwrap();
    let nginx = Nginx::start("", &redirecting_locations(&mock.url(), "ws_tokens"));
    let ws_tokens = nginx.prefix.path().join("ws_tokens");
    fs::create_dir(&ws_tokens).unwrap();
    fs::write(ws_tokens.join("t"), "").unwrap();
    nginx.prefix.add_token("t");
    let mut ws = open(&nginx, "t");
    assert!(echoes(&mut ws, "through @ws"));

    // The request is served by @ws now: the first location's directory no longer counts.
    nginx.prefix.remove_token("t");
    assert_eq!(wait_closed(&mut ws, Duration::from_millis(1500)), None);
    assert!(echoes(&mut ws, "still open"));

    fs::remove_file(ws_tokens.join("t")).unwrap();
    let closed = wait_closed(&mut ws, Duration::from_secs(2));
    assert!(
        closed.is_some_and(|d| d <= Duration::from_millis(300) + SLACK),
        "closed by @ws's rules: {closed:?}"
    );
    assert_closed_once(&nginx);
    sleep(Duration::from_millis(100));
    assert_eq!(established_to(mock.port()), 0, "the upstream socket closed");
}

/// Over HTTP/2 a closed stream's request outlives the round that closed it: a request
/// tracked twice would be finalized twice.
#[test]
fn over_http2_a_request_granted_twice_is_closed_once() {
    let h2 = free_port();
    let http = format!(
        "server {{
        listen 127.0.0.1:{h2} http2;
        server_name h2;
        location /checked/ {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check 300ms;
            try_files /nonexistent /served/big;
        }}
        location /served/ {{
            wcs_token_auth tokens;
            wcs_token_auth_session_check 300ms;
            alias html/;
        }}
    }}"
    );
    let nginx = Nginx::start(&http, "");
    let curl = slow_h2_download(&nginx, h2);
    sleep(Duration::from_millis(1000));
    nginx.prefix.remove_token("t");
    let out = curl.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(downloaded(&stdout) < BIG, "the stream was cut: {stdout}");
    sleep(Duration::from_millis(700));
    assert_closed_once(&nginx);
}

/// An `auth_request` target with `session_check` tracks the main request, which proxies the
/// WebSocket; where the main location checks the token too, the request is granted twice. (The
/// target serves a file: `return` would answer in the rewrite phase, before any check.)
#[test]
fn a_grant_in_an_auth_request_subrequest_closes_the_main_requests_websocket() {
    let mock = MockWcs::start(false).unwrap();
    for main_checks in [false, true] {
        let main = if main_checks {
            "wcs_token_auth tokens; wcs_token_auth_session_check 1s;"
        } else {
            ""
        };
        let server = format!(
            r#"location = /auth {{
                internal;
                wcs_token_auth tokens;
                wcs_token_auth_session_check 300ms;
                root html;
                try_files /index.html =404;
            }}
            {}"#,
            wss_location(&mock.url(), &format!("auth_request /auth; {main}")).replacen(
                "wcs_token_auth tokens;",
                "",
                1
            )
        );
        let nginx = Nginx::start("", &server);
        nginx.prefix.add_token("t");
        let mut ws = open(&nginx, "t");
        assert!(echoes(&mut ws, "allowed by the subrequest"));
        nginx.prefix.remove_token("t");
        let closed = wait_closed(&mut ws, Duration::from_secs(2));
        assert!(
            closed.is_some_and(|d| d <= Duration::from_millis(300) + SLACK),
            "main location checks too: {main_checks}: {closed:?}"
        );
        assert_closed_once(&nginx);
        sleep(Duration::from_millis(100));
        assert_eq!(established_to(mock.port()), 0);
    }
}
