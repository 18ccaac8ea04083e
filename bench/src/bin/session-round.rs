//! `session-round [SESSIONS] [TOKENS] [SECONDS]`
//!
//! The worker's cost of `wcs_token_auth_session_check 1s`, measured on the pure rounds
//! (`wcs_token_auth_core::session`) against a real token directory: SESSIONS open sessions
//! (10,000 by default) over TOKENS distinct tokens (1,000), all allowed at the same moment,
//! then SECONDS (20) of rounds run back to back, each at the time the worker's timer would fire
//! it. Prints one line,
//! `sessions=.. tokens=.. seconds=.. rounds_per_s=.. lookups_per_round=.. p50_us=.. p99_us=.. max_us=.. cpu_at_1s_pct=..`,
//! where the percentiles are of one round's duration (how long the worker's event loop is held)
//! and `cpu_at_1s_pct` is all rounds' time per simulated second, as a share of one core.

use std::ffi::CString;
use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use wcs_token_auth_core::session::{Check, FreshStore, Now, Registry, Rules};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let (sessions, tokens, seconds) = (arg(1, 10_000), arg(2, 1_000).max(1), arg(3, 20).max(1));
    let dir = std::env::temp_dir().join(format!("wcs-session-round-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("session-round: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let token = |i: usize| format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for t in 0..tokens {
        if let Err(e) = fs::write(dir.join(token(t)), "") {
            eprintln!("session-round: {e}");
            return ExitCode::FAILURE;
        }
    }
    let Ok(cdir) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return ExitCode::FAILURE;
    };
    let mut reg = Registry::new();
    let rules = Rules {
        check: Check::File {
            dir: &cdir,
            max_age_secs: Some(86_400),
        },
        interval_ms: 1000,
    };
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for s in 0..sessions {
        reg.track(
            s,
            token(s % tokens).as_bytes(),
            rules,
            Now { ms: 0, unix_ms },
        );
    }
    // The first second settles the schedule (every session was allowed at 0); the rest is timed.
    let (from, until) = (1_000, (seconds as u64 + 1) * 1_000);
    let mut us = Vec::new();
    let (mut lookups, mut checked) = (0, 0);
    while let Some(now) = reg.next_due_ms().filter(|&due| due < until) {
        let start = Instant::now();
        let round = reg.round(Now { ms: now, unix_ms }, &mut FreshStore);
        let took = start.elapsed().as_secs_f64() * 1e6;
        if !round.close.is_empty() || !round.unreadable.is_empty() {
            eprintln!("session-round: unexpected round {round:?}");
            return ExitCode::FAILURE;
        }
        if now >= from {
            us.push(took);
            lookups += round.lookups;
            checked += round.checked;
        }
    }
    // Each session once a second; a check up to the window early may fall either side of the
    // timed span's ends.
    if checked.abs_diff(sessions * seconds) > sessions / 50 || us.is_empty() {
        eprintln!("session-round: {checked} checks in {seconds} s of {sessions} sessions");
        return ExitCode::FAILURE;
    }
    let _ = fs::remove_dir_all(&dir);
    us.sort_by(f64::total_cmp);
    let pct = |p: usize| us.get((us.len() - 1) * p / 100).copied().unwrap_or(0.0);
    let total_us: f64 = us.iter().sum();
    println!(
        "sessions={sessions} tokens={tokens} seconds={seconds} rounds_per_s={:.0} \
         lookups_per_round={:.1} p50_us={:.0} p99_us={:.0} max_us={:.0} cpu_at_1s_pct={:.3}",
        us.len() as f64 / seconds as f64,
        lookups as f64 / us.len() as f64,
        pct(50),
        pct(99),
        pct(100),
        total_us / seconds as f64 / 1e6 * 100.0
    );
    ExitCode::SUCCESS
}
