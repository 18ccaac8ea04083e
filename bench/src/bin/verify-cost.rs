//! `verify-cost [SECONDS]`
//!
//! What verifying a signed token costs in-process, per algorithm (HS256, ES256, EdDSA,
//! RS256; the keys and tokens of `signed-fixtures`), measured on `wcs_token_auth_core::signed`
//! as the module calls it:
//! - `verify`, valid token: a cache miss (signature and claims);
//! - `verify`, forged tokens (real header and `kid`, random claims): with a genuine signature
//!   over other claims (the flood of `bench.sh`: a whole signature check each), and with
//!   random signature bytes (which some algorithms turn down early);
//! - `jsonwebtoken::crypto::verify` alone on the valid token (the signature check, the key
//!   built from its JWK once), to show how much of `verify` is the signature.
//!
//! Then what a cache hit costs besides nginx, per token (a file token's 8 bytes and each
//! algorithm's): finding the cookie in a `Cookie` header, `TokenCache::get` (a hit), and
//! `is_signed_shape` (on a location with `jwks=`, every request pays it first).
//!
//! Each figure is the median (and minimum) over 9 batches of the thread's CPU time per call
//! (`CLOCK_THREAD_CPUTIME_ID`: time spent waiting for a CPU on a busy machine is not counted),
//! each batch running for SECONDS / 9 of CPU time (1 s in all by default). Prints markdown
//! tables.

use std::hint::black_box;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use wcs_bench::signed_fixtures::{self, AlgFixture};
use wcs_token_auth_core::cache::{Entry, TokenCache};
use wcs_token_auth_core::cookie;
use wcs_token_auth_core::signed::{self, KeySet, SignedRules};

const BATCHES: usize = 9;

/// This thread's CPU time so far.
fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Median and minimum time per call of `f`, in µs.
fn measure(batch: Duration, mut f: impl FnMut(usize)) -> (f64, f64) {
    // Calibrate: how many calls fill a batch.
    let mut n = 1usize;
    loop {
        let t = cpu_now();
        for i in 0..n {
            f(i);
        }
        let spent = cpu_now().saturating_sub(t);
        if spent >= batch / 4 || n >= 1 << 30 {
            let per = spent.as_secs_f64() / n as f64;
            n = ((batch.as_secs_f64() / per.max(1e-9)) as usize).max(1);
            break;
        }
        n *= 2;
    }
    let mut per_call: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = cpu_now();
            for i in 0..n {
                f(i);
            }
            cpu_now().saturating_sub(t).as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    (per_call[BATCHES / 2], per_call[0])
}

fn fmt((median, min): (f64, f64)) -> String {
    if median < 1.0 {
        format!("{:.3} ({:.3})", median, min)
    } else {
        format!("{:.1} ({:.1})", median, min)
    }
}

fn algorithm(alg: &str) -> Option<Algorithm> {
    alg.parse().ok()
}

fn row(
    a: &AlgFixture,
    rules: &SignedRules,
    jwks: &JwkSet,
    now: i64,
    batch: Duration,
) -> Result<String, String> {
    let token = a.token.as_bytes();
    // A measurement of a refusal would be meaningless: check the answers first.
    signed::verify(rules, token, now)
        .map_err(|e| format!("{}: the valid token is refused ({e:?})", a.alg))?;
    let forged: Vec<&[u8]> = a.forged.iter().map(|t| t.as_bytes()).collect();
    let forged_random: Vec<&[u8]> = a.forged_random.iter().map(|t| t.as_bytes()).collect();
    for t in forged.iter().chain(&forged_random) {
        if signed::verify(rules, t, now) != Err(signed::SignedError::BadSignature) {
            return Err(format!(
                "{}: a forged token is not refused as a bad signature",
                a.alg
            ));
        }
    }
    let jwk = jwks
        .find(a.kid)
        .ok_or_else(|| format!("{}: no key {}", a.alg, a.kid))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", a.alg))?;
    let alg = algorithm(a.alg).ok_or_else(|| format!("{}: unknown algorithm", a.alg))?;
    let (message, sig) = a
        .token
        .rsplit_once('.')
        .ok_or_else(|| format!("{}: not a JWS", a.alg))?;
    if !jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key, alg).unwrap_or(false) {
        return Err(format!("{}: jsonwebtoken refuses the valid token", a.alg));
    }

    let valid = measure(batch, |_| {
        let _ = black_box(signed::verify(rules, black_box(token), now));
    });
    let bad = |set: &[&[u8]]| {
        measure(batch, |i| {
            let t = set.get(i % set.len().max(1)).copied().unwrap_or(token);
            let _ = black_box(signed::verify(rules, black_box(t), now));
        })
    };
    let (bad, bad_random) = (bad(&forged), bad(&forged_random));
    let sig_only = measure(batch, |_| {
        let _ = black_box(jsonwebtoken::crypto::verify(
            black_box(sig),
            black_box(message.as_bytes()),
            &key,
            alg,
        ));
    });
    Ok(format!(
        "| {} | {} | {} | {} | {} | {} |",
        a.alg,
        token.len(),
        fmt(valid),
        fmt(bad),
        fmt(bad_random),
        fmt(sig_only),
    ))
}

/// Cookie search, cache hit and shape detection of one token, as a table row.
fn hit_row(name: &str, token: &str, now: i64, batch: Duration) -> String {
    let header = format!("lang=en; AUTH={token}; theme=dark");
    let find = measure(batch, |_| {
        let _ = black_box(cookie::find([black_box(header.as_bytes())], b"AUTH"));
    });
    let mut cache = TokenCache::new(10_000, 600_000);
    let entry = Entry::Signed {
        expires_at: now + 3600,
    };
    cache.insert(0x8000_0000, token.as_bytes(), entry, 1);
    let get = measure(batch, |_| {
        let _ = black_box(cache.get(0x8000_0000, black_box(token.as_bytes()), 2));
    });
    let shape = measure(batch, |_| {
        let _ = black_box(signed::is_signed_shape(black_box(token.as_bytes())));
    });
    format!(
        "| {name} | {} | {} | {} | {} |",
        token.len(),
        fmt(find),
        fmt(get),
        fmt(shape)
    )
}

fn main() -> ExitCode {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let batch = Duration::from_secs_f64(seconds.max(0.01) / BATCHES as f64);
    let fixtures = match signed_fixtures::make(1000) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("verify-cost: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match KeySet::parse(fixtures.jwks.as_bytes()) {
        Ok(k) => Rc::new(k),
        Err(e) => {
            eprintln!("verify-cost: the key set is refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    let jwks: JwkSet = match serde_json::from_str(&fixtures.jwks) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("verify-cost: jsonwebtoken cannot read the key set: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rules = SignedRules {
        keys,
        leeway_secs: 0,
        issuer: None,
        audience: None,
        revoked: None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    println!("µs of CPU time per call, median over {BATCHES} batches (minimum in brackets)\n");
    println!("| algorithm | token bytes | verify, valid | verify, forged (genuine signature) | verify, forged (random signature) | jsonwebtoken::crypto::verify alone |");
    println!("|---|---|---|---|---|---|");
    let mut failed = false;
    for a in &fixtures.algs {
        match row(a, &rules, &jwks, now, batch) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("verify-cost: {e}");
                failed = true;
            }
        }
    }
    println!("\n| token | bytes | cookie::find | TokenCache::get, hit | is_signed_shape |");
    println!("|---|---|---|---|---|");
    println!("{}", hit_row("file token", "t0000000", now, batch));
    for a in &fixtures.algs {
        println!("{}", hit_row(a.alg, &a.token, now, batch));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
