//! Fail closed: the token directory is removed, replaced by a file, by a symbolic-link loop,
//! by another directory, or made unreadable, while clients keep sending a valid token.
//!
//! Each change is one atomic system call (`rename`, `renameat2(RENAME_EXCHANGE)`, `chmod`),
//! so every answer belongs to a known state of the directory. Rules:
//! - no accept for a request sent later than `cache_ttl + MARGIN_MS` after the change (a
//!   token checked just before it may be served from the worker's cache until then);
//! - every refusal has the phase's status and exactly one log line with the phase's reason;
//! - once the directory is back, the very next request is accepted, without a reload.
//!
//! `WCS_LONG=1` goes through the five failures 20 times instead of once.
//!
//! A filesystem returning EIO is a small FUSE server in the test process
//! (common/eio_fs.rs); it needs root and /dev/fuse, and says NOT RUN without them.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use crate::common::eio_fs::EioFs;
use crate::common::traffic::{long_run, report, Answer, Client};
use crate::common::*;

const TTL_MS: u64 = 300;
const MARGIN_MS: u64 = 2;
const HOLD: Duration = Duration::from_millis(1000);
const TOKEN: &str = "steady-token";

/// One state the directory is put in.
struct Phase<'a> {
    name: &'static str,
    status: u16,
    /// The module's log line for each refusal contains all of these.
    reason: &'static [&'static str],
    /// Made when the phase begins; `restore` undoes it.
    change: Box<dyn Fn() + Sync + 'a>,
    restore: Box<dyn Fn() + Sync + 'a>,
}

fn exchange(a: &Path, b: &Path) {
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two valid NUL-terminated paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

fn phases(p: &Path) -> Vec<Phase<'_>> {
    vec![
        Phase {
            name: "directory removed",
            status: 403,
            reason: &["does not exist (2: No such file or directory)"],
            change: Box::new(|| fs::rename(p.join("tokens"), p.join("tokens.away")).unwrap()),
            restore: Box::new(|| fs::rename(p.join("tokens.away"), p.join("tokens")).unwrap()),
        },
        Phase {
            name: "directory replaced by a file",
            status: 403,
            reason: &["does not exist (20: Not a directory)"],
            change: Box::new(|| {
                fs::write(p.join("tokens.swap"), "").unwrap();
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
            }),
            restore: Box::new(|| {
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
                fs::remove_file(p.join("tokens.swap")).unwrap();
            }),
        },
        Phase {
            name: "directory replaced by a symbolic-link loop",
            status: 500,
            reason: &[
                "[crit]",
                "cannot read token directory",
                "(40: Too many levels of symbolic links)",
            ],
            change: Box::new(|| {
                std::os::unix::fs::symlink("tokens", p.join("tokens.swap")).unwrap();
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
            }),
            restore: Box::new(|| {
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
                fs::remove_file(p.join("tokens.swap")).unwrap();
            }),
        },
        Phase {
            name: "directory unreadable",
            status: 500,
            reason: &[
                "[crit]",
                "cannot read token directory",
                "(13: Permission denied)",
            ],
            change: Box::new(|| {
                fs::set_permissions(p.join("tokens"), fs::Permissions::from_mode(0o000)).unwrap()
            }),
            restore: Box::new(|| {
                fs::set_permissions(p.join("tokens"), fs::Permissions::from_mode(0o755)).unwrap()
            }),
        },
        Phase {
            name: "directory replaced by another one without the token",
            status: 403,
            reason: &["unknown token in cookie"],
            change: Box::new(|| {
                fs::create_dir(p.join("tokens.swap")).unwrap();
                fs::set_permissions(p.join("tokens.swap"), fs::Permissions::from_mode(0o755))
                    .unwrap();
                fs::write(p.join("tokens.swap/other-token"), "").unwrap();
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
            }),
            restore: Box::new(|| {
                exchange(&p.join("tokens"), &p.join("tokens.swap"));
                fs::remove_dir_all(p.join("tokens.swap")).unwrap();
            }),
        },
    ]
}

struct Sample {
    sent: Instant,
    got: Instant,
    answer: Answer,
}

/// Sends a valid token from two clients while each phase is made, held and undone, and
/// checks every answer and log line against the rules above. Returns (requests, refusals,
/// refusals required after cache_ttl, phases run).
fn exercise(
    nginx: &Nginx,
    dir: &Path,
    phases: &[Phase<'_>],
    rounds: usize,
) -> (usize, usize, usize, usize) {
    let master_workers = nginx.running_workers();
    let samples = Mutex::new(Vec::<Sample>::new());
    let stop = AtomicBool::new(false);
    // (phase index, change began, change done, restore began, restore done)
    let mut marks = Vec::new();

    thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut client = Client::new(nginx.port);
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let answer = client.get("/check", &[("Cookie", &format!("AUTH={TOKEN}"))]);
                    mine.push(Sample {
                        sent,
                        got: Instant::now(),
                        answer,
                    });
                    sleep(Duration::from_millis(1));
                }
                samples.lock().unwrap().extend(mine);
            });
        }
        sleep(Duration::from_millis(300));
        for (i, phase) in (0..rounds).flat_map(|_| phases.iter().enumerate()) {
            let began = Instant::now();
            (phase.change)();
            let done = Instant::now();
            if phase.name.contains("another one") {
                let other = nginx.get("/check", &[("Cookie", "AUTH=other-token")]);
                assert_eq!(other.status, 200, "the new directory's token works at once");
            }
            sleep(HOLD);
            let restore_began = Instant::now();
            (phase.restore)();
            let restored = Instant::now();
            marks.push((i, began, done, restore_began, restored));
            sleep(HOLD / 2);
        }
        stop.store(true, Ordering::Relaxed);
    });

    let samples = samples.into_inner().unwrap();
    let lines = nginx.module_log_lines();
    let ttl = Duration::from_millis(TTL_MS + MARGIN_MS);
    let mut refusals_per_phase = vec![0usize; phases.len()];
    let mut required_refusals = 0;
    for s in &samples {
        let status = match &s.answer {
            Answer::Status(st) => *st,
            Answer::Failed(e) => panic!("failed request: {e}"),
        };
        // The phase in force when the answer was made: the last one begun before it arrived.
        let current = marks.iter().rev().find(|m| m.1 <= s.got);
        match current {
            None => assert_eq!(status, 200, "before any change"),
            Some(&(i, _, done, restore_began, restored)) => {
                let p = &phases[i];
                if s.sent > restored {
                    assert_eq!(status, 200, "{}: not recovered without a reload", p.name);
                } else if s.sent > done + ttl && s.got < restore_began {
                    assert_eq!(status, p.status, "{}: accepted or wrong status", p.name);
                    required_refusals += 1;
                } else {
                    assert!(
                        [200, p.status].contains(&status),
                        "{}: {status} in the transition",
                        p.name
                    );
                }
                if status != 200 {
                    refusals_per_phase[i] += 1;
                }
            }
        }
    }
    for (i, p) in phases.iter().enumerate() {
        let mine: Vec<&String> = lines
            .iter()
            .filter(|l| p.reason.iter().all(|r| l.contains(r)))
            .collect();
        assert_eq!(
            mine.len(),
            refusals_per_phase[i],
            "{}: one log line per refusal",
            p.name
        );
        assert!(refusals_per_phase[i] > 50, "{}: too little traffic", p.name);
        if p.reason.iter().any(|r| r.contains("directory")) {
            assert!(
                mine.iter()
                    .all(|l| l.contains(&format!("\"{}\"", dir.display()))),
                "{}: the log line names the directory",
                p.name
            );
        }
    }
    let refusals: usize = refusals_per_phase.iter().sum();
    assert_eq!(lines.len(), refusals, "no other module log lines");
    assert_eq!(
        nginx.worker_pids(),
        master_workers,
        "same worker, no reload"
    );
    nginx.assert_no_crash();
    (samples.len(), refusals, required_refusals, marks.len())
}

fn start(dir: &str) -> Nginx {
    Nginx::start(
        &format!("wcs_token_auth_cache_ttl {TTL_MS}ms;"),
        &format!(
            "location = /check {{ wcs_token_auth {dir}; root html; try_files /index.html =404; }}"
        ),
    )
}

#[test]
fn directory_failures_refuse_with_one_line_each_and_recover_without_reload() {
    let nginx = start("tokens");
    nginx.prefix.add_token(TOKEN);
    let prefix = nginx.prefix.path().to_path_buf();
    let rounds = if long_run() { 20 } else { 1 };
    let (requests, refusals, required, failures) =
        exercise(&nginx, &prefix.join("tokens"), &phases(&prefix), rounds);
    report(&format!(
        "fail closed: {requests} requests with a valid token through {failures} directory \
         failures (removed, replaced by a file, by a symlink loop, by another directory, \
         unreadable), {refusals} refusals each with one log line ({required} required after \
         cache_ttl), 0 accepts after cache_ttl, recovered without a reload every time"
    ));
}

#[test]
fn a_filesystem_returning_eio_gets_500_with_one_line_each_and_recovers() {
    let mnt = tempfile::Builder::new()
        .prefix("wcs-eio-")
        .tempdir()
        .unwrap();
    fs::set_permissions(mnt.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let eio = match EioFs::mount(mnt.path()) {
        Ok(f) => f,
        Err(e) => {
            report(&format!(
                "fail closed, EIO: NOT RUN: cannot mount a FUSE filesystem here ({e})"
            ));
            return;
        }
    };
    eio.add_token(TOKEN);
    let dir = eio.tokens_dir();
    let nginx = start(&dir.display().to_string());
    let phases = [Phase {
        name: "filesystem returning EIO",
        status: 500,
        reason: &[
            "[crit]",
            "cannot read token directory",
            "(5: Input/output error)",
        ],
        change: Box::new(|| eio.set_failing(true)),
        restore: Box::new(|| eio.set_failing(false)),
    }];
    let rounds = if long_run() { 20 } else { 2 };
    let (requests, refusals, required, failures) = exercise(&nginx, &dir, &phases, rounds);
    report(&format!(
        "fail closed, EIO: {requests} requests with a valid token through {failures} \
         spells of a FUSE filesystem answering EIO, {refusals} refusals (500) each with one \
         log line ({required} required after cache_ttl), 0 accepts after cache_ttl, \
         recovered without a reload every time"
    ));
}
