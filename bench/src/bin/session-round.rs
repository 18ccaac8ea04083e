//! `session-round [SESSIONS] [TOKENS] [ROUNDS]`
//!
//! The worker's cost of one `wcs_token_auth_session_check` round, measured on the pure round
//! (`wcs_token_auth_core::session`) against a real token directory: SESSIONS open sessions
//! (10,000 by default) over TOKENS distinct tokens (1,000), all due in every round, checked
//! ROUNDS times (200). Prints one line,
//! `sessions=.. tokens=.. rounds=.. lookups_per_round=.. p50_us=.. p99_us=.. max_us=.. cpu_at_1s_pct=..`,
//! where `cpu_at_1s_pct` is the median round's share of one core at `session_check 1s`.

use std::ffi::CString;
use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use wcs_token_auth_core::session::{FreshStore, Registry, Rules};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let (sessions, tokens, rounds) = (arg(1, 10_000), arg(2, 1_000).max(1), arg(3, 200).max(1));
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
        dir: &cdir,
        max_age_secs: Some(86_400),
        interval_ms: 1,
    };
    for s in 0..sessions {
        reg.track(s, token(s % tokens).as_bytes(), rules, 0);
    }
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut us = Vec::with_capacity(rounds);
    let mut lookups = 0;
    for r in 0..rounds {
        let start = Instant::now();
        let round = reg.round(r as u64 + 1, unix, &mut FreshStore);
        us.push(start.elapsed().as_secs_f64() * 1e6);
        lookups = round.lookups;
        if !round.close.is_empty() || round.checked != sessions {
            eprintln!("session-round: unexpected round {round:?}");
            return ExitCode::FAILURE;
        }
    }
    let _ = fs::remove_dir_all(&dir);
    us.sort_by(f64::total_cmp);
    let pct = |p: usize| us.get((us.len() - 1) * p / 100).copied().unwrap_or(0.0);
    println!(
        "sessions={sessions} tokens={tokens} rounds={rounds} lookups_per_round={lookups} \
         p50_us={:.0} p99_us={:.0} max_us={:.0} cpu_at_1s_pct={:.3}",
        pct(50),
        pct(99),
        pct(100),
        pct(50) / 1e6 * 100.0
    );
    ExitCode::SUCCESS
}
